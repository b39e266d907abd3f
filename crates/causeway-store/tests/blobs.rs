//! The blob store behaves the same on a local directory and on a real S3-compatible server (moto,
//! from the pinned test environment, started on loopback for this test).
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used, reason = "tests fail loudly")]

use causeway_store::{BlobStore, Error};
use causeway_test_support::S3Server;

fn s3_store(server: &S3Server, bucket_and_prefix: &str) -> BlobStore {
    let environment = server.environment();
    BlobStore::open_url_with(&format!("s3://{bucket_and_prefix}"), move |name| {
        environment.iter().find(|(key, _)| *key == name).map(|(_, value)| value.clone())
    })
    .expect("S3 blob store opens")
}

/// Everything the artifact API relies on, asserted identically for each backend.
/// A reader whose client went away.
struct FailingReader;

impl std::io::Read for FailingReader {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "the client went away"))
    }
}

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
    // Joining parts: small ones (coalesced on S3), and parts over S3's 5 MiB minimum (a real
    // multipart upload there).
    store.put("uploads/u/1", b"hello ").expect("part");
    store.put("uploads/u/2", b"world").expect("part");
    let joined = store.put_joined("runs/r2/artifacts/small.bin", &["uploads/u/1".into(), "uploads/u/2".into()]);
    assert_eq!(joined.expect("join"), 11);
    assert_eq!(store.get("runs/r2/artifacts/small.bin").expect("get"), b"hello world");
    let big: Vec<Vec<u8>> = (0..3_u8).map(|part| vec![part; 9 << 20]).collect();
    let keys: Vec<String> = (0..3).map(|part| format!("uploads/big/{part}")).collect();
    for (key, bytes) in keys.iter().zip(&big) {
        store.put(key, bytes).expect("part");
    }
    assert_eq!(store.put_joined("runs/r2/artifacts/big.bin", &keys).expect("join"), 27 << 20);
    assert!(store.get("runs/r2/artifacts/big.bin").expect("get") == big.concat(), "joined in order");
    // Streaming from a reader: small (one request on S3) and over two S3 parts; a reader that
    // fails half-way leaves the earlier blob whole.
    let streamed = store.put_reader("runs/r2/artifacts/streamed.bin", &mut &b"small body"[..]).expect("stream small");
    assert_eq!((streamed, store.get("runs/r2/artifacts/streamed.bin").expect("get")), (10, b"small body".to_vec()));
    let long: Vec<u8> = (0..(17_u32 << 20)).map(|index| (index % 241) as u8).collect();
    assert_eq!(store.put_reader("runs/r2/artifacts/streamed.bin", &mut &long[..]).expect("stream long"), 17 << 20);
    assert!(store.get("runs/r2/artifacts/streamed.bin").expect("get") == long, "streamed in order");
    let (mut reader, size) = store.open_read("runs/r2/artifacts/streamed.bin").expect("open");
    let mut read_back = Vec::new();
    std::io::Read::read_to_end(&mut reader, &mut read_back).expect("read");
    assert!(size == 17 << 20 && read_back == long, "read back as stored");
    assert!(matches!(store.open_read("runs/r2/artifacts/missing.bin"), Err(Error::NotFound(_))));
    assert!(matches!(store.open_read("runs/r2/artifacts"), Err(Error::NotFound(_))), "a directory is not a blob");
    let mut failing = std::io::Read::chain(&b"partial"[..], FailingReader);
    assert!(store.put_reader("runs/r2/artifacts/streamed.bin", &mut failing).is_err());
    assert!(store.get("runs/r2/artifacts/streamed.bin").expect("get") == long, "the earlier blob stays whole");
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
    behaves_like_a_blob_store(&s3_store(&server, "causeway-test/artifacts"));
    // Two prefixes in one bucket do not see each other; a bucket root works too.
    let other = s3_store(&server, "causeway-test/elsewhere");
    assert!(other.list_directory("").expect("list root").is_empty());
    let root = s3_store(&server, "causeway-root");
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
