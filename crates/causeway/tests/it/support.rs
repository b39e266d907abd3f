//! Shared fixtures: the binary, one fraud-demo project reused by several tests, and a minimal
//! HTTP/1.1 client for loopback requests.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use causeway_data::Frame;
use causeway_data::ingest::Ingestor;
use causeway_loop::ProjectConfig;
use causeway_store::{BlobStore, MetaStore};
use serde_json::Value;

/// The `causeway` binary cargo built for these tests.
pub fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_causeway"))
}

/// Runs the binary with `args` and returns its output.
pub fn run(args: &[&str]) -> Output {
    binary().args(args).output().expect("the causeway binary runs")
}

/// Runs the binary with `args`, fails the test unless it succeeds, and returns its stdout.
pub fn ok(args: &[&str]) -> String {
    let output = run(args);
    assert!(
        output.status.success(),
        "causeway {}:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).to_string()
}

/// Runs `causeway ARGS` with extra environment variables.
pub fn run_with(args: &[&str], environment: &[(&str, &str)]) -> Output {
    binary().args(args).envs(environment.iter().copied()).output().expect("the causeway binary runs")
}

/// A demo run: its project directory, summary and exit status.
pub struct DemoRun {
    /// Keeps the directory alive for the whole test binary.
    _root: tempfile::TempDir,
    /// The project directory.
    pub dir: PathBuf,
    /// The `--summary-json` document.
    pub summary: Value,
    /// Whether the binary exited 0.
    pub success: bool,
    /// Everything it printed.
    pub stdout: String,
}

fn demo(scenario: &str) -> DemoRun {
    demo_with(&["--scenario", scenario])
}

/// `causeway demo fraud ARGS --quiet` in a fresh directory, with its JSON summary.
pub fn demo_with(args: &[&str]) -> DemoRun {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("project");
    let summary_path = root.path().join("summary.json");
    let mut command = vec!["demo", "fraud"];
    command.extend(args);
    command.extend([
        "--quiet",
        "--dir",
        dir.to_str().expect("utf-8 path"),
        "--summary-json",
        summary_path.to_str().expect("utf-8 path"),
    ]);
    let output = run(&command);
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let summary: Value = serde_json::from_slice(&std::fs::read(&summary_path).unwrap_or_else(|_| {
        panic!("no summary; stdout:\n{stdout}\nstderr:\n{}", String::from_utf8_lossy(&output.stderr))
    }))
    .expect("summary is JSON");
    DemoRun { _root: root, dir, summary, success: output.status.success(), stdout }
}

/// The fraud scenario, run once per test binary.
pub fn fraud_demo() -> &'static DemoRun {
    static RUN: OnceLock<DemoRun> = OnceLock::new();
    RUN.get_or_init(|| demo("fraud"))
}

/// The bad-challenger scenario, run once per test binary.
pub fn bad_challenger_demo() -> &'static DemoRun {
    static RUN: OnceLock<DemoRun> = OnceLock::new();
    RUN.get_or_init(|| demo("bad-challenger"))
}

/// A running `causeway serve`, killed on drop.
pub struct Server {
    child: Child,
    /// `host:port` it listens on.
    pub address: String,
    /// The first line it printed (what it serves, where, from which project).
    pub readiness: String,
}

impl Server {
    /// Starts `causeway serve --dir DIR` on an ephemeral port and waits for its readiness line.
    pub fn start(dir: &Path) -> Server {
        Self::spawn(&[
            "serve",
            "--dir",
            dir.to_str().expect("utf-8"),
            "--listen",
            "127.0.0.1:0",
            "--reload-seconds",
            "1",
        ])
    }

    /// Starts `causeway server --dir DIR --no-loop` (tracking API included, no live loop: the
    /// shared demo projects must not change under other tests) on an ephemeral port.
    pub fn start_control_plane(dir: &Path) -> Server {
        Self::spawn(&["server", "--dir", dir.to_str().expect("utf-8"), "--port", "0", "--no-loop"])
    }

    fn spawn(args: &[&str]) -> Server {
        Self::spawn_with(args, &[])
    }

    /// Starts `causeway ARGS` with extra environment variables and waits for its readiness line.
    pub fn spawn_with(args: &[&str], environment: &[(&str, String)]) -> Server {
        let mut child = binary()
            .args(args)
            .envs(environment.iter().map(|(name, value)| (*name, value)))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("readiness line");
        let address = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("unexpected first line: {line}"))
            .to_string();
        Server { child, address, readiness: line }
    }

    /// Stops the server as a supervisor does (SIGTERM) and waits for it to exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let signalled = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        assert!(signalled.is_ok_and(|status| status.success()), "kill -TERM");
        self.child.wait().expect("the server exits")
    }

    /// Sends one request and returns (status, body).
    pub fn request(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        Client { address: self.address.clone() }.try_request(method, path, body).expect("a response")
    }

    /// Sends a JSON request and parses the JSON answer.
    pub fn json(&self, method: &str, path: &str, body: &Value) -> (u16, Value) {
        let (status, text) = self.request(method, path, Some(&body.to_string()));
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }
}

/// A minimal HTTP/1.1 client for loopback requests.
pub struct Client {
    /// `host:port`.
    pub address: String,
}

impl Client {
    /// Sends a JSON request; `None` when the connection fails (a stopped server).
    pub fn try_json(&self, method: &str, path: &str, body: &Value) -> Option<(u16, Value)> {
        let (status, text) = self.try_request(method, path, Some(&body.to_string()))?;
        Some((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
    }

    /// Sends one request; `None` when the connection fails.
    pub fn try_request(&self, method: &str, path: &str, body: Option<&str>) -> Option<(u16, String)> {
        let mut stream = TcpStream::connect(&self.address).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
        let body = body.unwrap_or("");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.address,
            body.len()
        );
        // A server may answer (413) and close before reading an oversized body: keep its answer.
        let _ = stream.write_all(request.as_bytes());
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response);
        let text = String::from_utf8_lossy(&response).to_string();
        let (head, rest) = text.split_once("\r\n\r\n")?;
        let status: u16 = head.split_whitespace().nth(1).and_then(|code| code.parse().ok())?;
        let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
        Some((status, if chunked { dechunk(rest) } else { rest.to_string() }))
    }
}

impl Server {
    /// Kills the process at once (SIGKILL on Unix), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn dechunk(body: &str) -> String {
    let mut output = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else { break };
        if size == 0 || after.len() < size {
            break;
        }
        output.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    output
}

/// A project's configuration, stores and every stored `transactions` row, opened without the
/// online store (which a running server holds exclusively).
pub struct StoredProject {
    /// `causeway.toml`.
    pub config: ProjectConfig,
    /// The metadata store.
    pub meta: MetaStore,
    /// The artifacts.
    pub blobs: BlobStore,
    /// All versions of `transactions`, stacked.
    pub data: Frame,
}

impl StoredProject {
    /// Opens the project at `dir`.
    pub fn open(dir: &Path) -> StoredProject {
        let config = ProjectConfig::load(dir).expect("config");
        let meta = MetaStore::open(&dir.join(".causeway/meta.db")).expect("meta");
        let blobs = BlobStore::open(dir.join(".causeway/artifacts")).expect("blobs");
        let frames: Vec<Frame> = {
            let ingestor = Ingestor::new(&meta, &blobs);
            meta.dataset_versions("transactions")
                .expect("versions")
                .iter()
                .map(|version| ingestor.load(version).expect("load"))
                .collect()
        };
        let data = Frame::concat(&frames).expect("concat");
        StoredProject { config, meta, blobs, data }
    }
}
