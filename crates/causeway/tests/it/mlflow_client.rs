//! The official MLflow client (pinned in `tests/mlflow/requirements.txt`), unmodified, against
//! `causeway server`: `tests/mlflow/acceptance.py` checks every value it reads back. It runs on the
//! embedded stores, and again on PostgreSQL metadata with artifacts in a real S3-compatible server.

use std::process::Command;

use causeway_test_support::{PostgresSchema, S3Server, python, repository_root};

use crate::support::{Server, binary};

/// Runs `causeway ARGS` with extra environment variables and returns its stdout, asserting success.
fn causeway(args: &[&str], environment: &[(&str, String)]) -> String {
    let output =
        binary().args(args).envs(environment.iter().map(|(name, value)| (*name, value))).output().expect("runs");
    assert!(output.status.success(), "causeway {args:?} failed:\n{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Serves a directory with `stores` (extra `--store`/`--artifacts` options) — initialised first
/// with `init_first`, else as `mlflow server` starts, in a bare directory — runs the acceptance
/// script against it, and checks the runs show in `causeway runs` (after `init`, which keeps the
/// stores the server used).
fn acceptance_passes(stores: &[&str], environment: &[(&str, String)], init_first: bool) {
    let python = python();
    let project = tempfile::tempdir().expect("tempdir");
    let dir = project.path().join("project");
    let dir_text = dir.to_str().expect("utf-8");
    let with_stores = |command: &[&str]| -> Vec<String> {
        command.iter().chain(["--dir", dir_text].iter()).chain(stores.iter()).map(|part| part.to_string()).collect()
    };
    let init = with_stores(&["init"]);
    if init_first {
        causeway(&init.iter().map(String::as_str).collect::<Vec<_>>(), environment);
    } else {
        std::fs::create_dir_all(&dir).expect("bare directory");
    }
    let server_args = with_stores(&["server", "--port", "0"]);
    let server = Server::spawn_with(&server_args.iter().map(String::as_str).collect::<Vec<_>>(), environment);
    let output = Command::new(&python)
        .arg(repository_root().join("tests/mlflow/acceptance.py"))
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
    if !init_first {
        causeway(&init.iter().map(String::as_str).collect::<Vec<_>>(), environment);
    }
    let runs = with_stores(&["runs"]);
    let listing = causeway(&runs.iter().map(String::as_str).collect::<Vec<_>>(), environment);
    assert!(listing.contains("parent") && listing.contains("child"), "{listing}");
}

#[test]
fn the_official_mlflow_client_works_unmodified() {
    acceptance_passes(&[], &[], false);
}

#[test]
fn the_official_mlflow_client_works_on_postgresql_and_s3() {
    let s3 = S3Server::start();
    let schema = PostgresSchema::new("mlflow");
    let store = schema.url();
    acceptance_passes(&["--store", &store, "--artifacts", "s3://causeway-artifacts/mlflow"], &s3.environment(), false);
    // The artifacts really are in the bucket, and the metadata really is in PostgreSQL.
    let bucket = Command::new(python())
        .args([
            "-c",
            "import boto3,sys; print(sum(1 for _ in boto3.resource('s3').Bucket('causeway-artifacts').objects.all()))",
        ])
        .envs(s3.environment())
        .output()
        .expect("boto3 lists the bucket");
    let objects: usize = String::from_utf8_lossy(&bucket.stdout).trim().parse().unwrap_or(0);
    assert!(objects >= 5, "objects in the bucket: {objects}; {}", String::from_utf8_lossy(&bucket.stderr));
    let mut client =
        postgres::Client::connect(&causeway_test_support::postgres_url(), postgres::NoTls).expect("connect");
    let runs: i64 =
        client.query_one(&format!("SELECT COUNT(*) FROM \"{}\".runs", schema.name), &[]).expect("count runs").get(0);
    assert!(runs >= 2, "runs in PostgreSQL: {runs}");
}
