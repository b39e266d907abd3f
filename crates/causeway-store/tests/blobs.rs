//! The blob store behaves the same on a local directory and on a real S3-compatible server (moto,
//! from the pinned test environment, started on loopback for this test).
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used, reason = "tests fail loudly")]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use causeway_store::{BlobStore, Error};

/// A moto S3 server on a free loopback port, stopped when dropped.
struct S3Server {
    child: Child,
    endpoint: String,
}

impl S3Server {
    fn start() -> Self {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let setup = Command::new("bash").arg(root.join("scripts/python-env.sh")).output().expect("python-env.sh runs");
        assert!(setup.status.success(), "python-env.sh failed:\n{}", String::from_utf8_lossy(&setup.stderr));
        let python = String::from_utf8_lossy(&setup.stdout).lines().last().unwrap_or_default().trim().to_string();
        let port =
            std::net::TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).expect("port").port();
        let mut child = Command::new(&python)
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("moto server starts");
        let stderr = child.stderr.take().expect("stderr");
        let (ready_sender, ready) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("Running on http://") {
                    let _ = ready_sender.send(());
                }
            }
        });
        ready.recv_timeout(Duration::from_secs(120)).expect("moto server ready");
        Self { child, endpoint: format!("http://127.0.0.1:{port}") }
    }

    fn store(&self, bucket_and_prefix: &str) -> BlobStore {
        let endpoint = self.endpoint.clone();
        BlobStore::open_url_with(&format!("s3://{bucket_and_prefix}"), move |name| match name {
            "AWS_ACCESS_KEY_ID" => Some("testing".to_string()),
            "AWS_SECRET_ACCESS_KEY" => Some("testing".to_string()),
            "AWS_ENDPOINT_URL" => Some(endpoint.clone()),
            _ => None,
        })
        .expect("S3 blob store opens")
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Everything the artifact API relies on, asserted identically for each backend.
fn behaves_like_a_blob_store(store: &BlobStore) {
    store.put("runs/r1/artifacts/model/model.pkl", b"pickle").expect("put");
    store.put("runs/r1/artifacts/model/MLmodel", b"flavors: {}").expect("put");
    store.put("runs/r1/artifacts/notes & more.txt", "unicode ✓".as_bytes()).expect("put");
    store.put("runs/r2/artifacts/a.txt", b"other run").expect("put");
    assert_eq!(store.get("runs/r1/artifacts/model/model.pkl").expect("get"), b"pickle");
    assert_eq!(store.get("runs/r1/artifacts/notes & more.txt").expect("get"), "unicode ✓".as_bytes());
    store.put("runs/r1/artifacts/model/model.pkl", b"replaced").expect("overwrite");
    assert_eq!(store.get("runs/r1/artifacts/model/model.pkl").expect("get"), b"replaced");
    // Larger than an HTTP client's default body limit.
    let large: Vec<u8> = (0..12_000_000_u32).map(|index| (index % 251) as u8).collect();
    store.put("runs/r1/artifacts/large.bin", &large).expect("put large");
    assert!(store.get("runs/r1/artifacts/large.bin").expect("get large") == large, "large blob round trip");
    assert!(store.contains("runs/r1/artifacts/model/MLmodel").expect("contains"));
    assert!(!store.contains("runs/r1/artifacts/missing").expect("contains"));
    assert_eq!(
        store.list_directory("runs/r1/artifacts").expect("list"),
        vec![
            ("large.bin".to_string(), false, 12_000_000),
            ("model".to_string(), true, 0),
            ("notes & more.txt".to_string(), false, "unicode ✓".len() as u64),
        ]
    );
    assert_eq!(store.list_directory("runs/r9").expect("list missing"), Vec::new());
    assert_eq!(
        store.list("runs/r1/artifacts/model").expect("list"),
        vec!["runs/r1/artifacts/model/MLmodel", "runs/r1/artifacts/model/model.pkl"]
    );
    store.delete("runs/r1/artifacts/model").expect("delete a directory");
    assert!(store.list("runs/r1/artifacts/model").expect("list").is_empty());
    store.delete("runs/r1/artifacts/large.bin").expect("delete a blob");
    assert!(matches!(store.get("runs/r1/artifacts/large.bin"), Err(Error::NotFound(_))));
    assert!(matches!(store.delete("runs/r1/artifacts/large.bin"), Err(Error::NotFound(_))));
    assert_eq!(store.get("runs/r2/artifacts/a.txt").expect("untouched"), b"other run");
    for bad in ["../x", "/etc/passwd", "a/../../b", "", "a\\..\\b", "./a", "a/"] {
        assert!(matches!(store.get(bad), Err(Error::InvalidKey(_))), "{bad}");
        assert!(matches!(store.put(bad, b"x"), Err(Error::InvalidKey(_))), "{bad}");
    }
}

#[test]
fn local_directory_and_s3_bucket_behave_alike() {
    let directory = tempfile::tempdir().expect("tempdir");
    behaves_like_a_blob_store(&BlobStore::open(directory.path().join("blobs")).expect("local store"));

    let server = S3Server::start();
    behaves_like_a_blob_store(&server.store("causeway-test/artifacts"));
    // Two prefixes in one bucket do not see each other; a bucket root works too.
    let other = server.store("causeway-test/elsewhere");
    assert!(other.list_directory("").expect("list root").is_empty());
    let root = server.store("causeway-root");
    root.put("a/b.txt", b"root").expect("put at the bucket root");
    assert_eq!(root.list_directory("").expect("list root"), vec![("a".to_string(), true, 0)]);

    // Wrong credentials are a clear storage error, not a panic or a silent miss.
    let endpoint = server.endpoint.clone();
    let refused = BlobStore::open_url_with("s3://causeway-test/artifacts", move |name| match name {
        "AWS_ENDPOINT_URL" => Some(endpoint.clone()),
        _ => None,
    });
    let message = refused.err().map(|error| error.to_string()).unwrap_or_default();
    assert!(message.contains("AWS_ACCESS_KEY_ID"), "{message}");
}
