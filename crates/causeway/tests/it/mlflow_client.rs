//! The official MLflow client (pinned in `tests/mlflow/requirements.txt`), unmodified, against
//! `causeway server`: `tests/mlflow/acceptance.py` checks every value it reads back.

use std::path::PathBuf;
use std::process::Command;

use crate::support::{Server, run};

fn repository_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repository root")
}

#[test]
fn the_official_mlflow_client_works_unmodified() {
    let root = repository_root();
    let setup = Command::new("bash").arg(root.join("scripts/python-env.sh")).output().expect("python-env.sh runs");
    assert!(setup.status.success(), "python-env.sh failed:\n{}", String::from_utf8_lossy(&setup.stderr));
    let python = String::from_utf8_lossy(&setup.stdout).lines().last().expect("python path").trim().to_string();

    let project = tempfile::tempdir().expect("tempdir");
    let dir = project.path().join("project");
    assert!(run(&["init", "--dir", dir.to_str().expect("utf-8")]).status.success());
    let server = Server::start_control_plane(&dir);
    let output = Command::new(&python)
        .arg(root.join("tests/mlflow/acceptance.py"))
        .env("MLFLOW_TRACKING_URI", format!("http://{}", server.address))
        .env("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        .env("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
        .output()
        .expect("the acceptance script runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains(" passed, 0 failed"),
        "acceptance failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let runs = run(&["runs", "--dir", dir.to_str().expect("utf-8")]);
    let listing = String::from_utf8_lossy(&runs.stdout);
    assert!(listing.contains("parent") && listing.contains("child"), "{listing}");
}
