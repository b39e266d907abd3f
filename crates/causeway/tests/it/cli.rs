//! The small commands through the binary: init, ingest (accepted and rejected), train (twice,
//! bit-identical), models, promote, rollback, events, help and errors.

use std::path::Path;

use causeway_data::ingest::write_csv;
use causeway_data::synthetic::{FraudConfig, FraudGenerator, to_frame};
use causeway_demo::FRAUD_CONFIG;

use crate::support::{ok, run};

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).to_string()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

fn write_transactions(path: &Path, days: u32, seed: u64) {
    let generator = FraudGenerator::new(FraudConfig {
        seed,
        transactions_per_day: 1_500,
        customers: 1_000,
        ..FraudConfig::default()
    });
    write_csv(&to_frame(&generator.days(0, days), true).expect("frame"), path).expect("csv");
}

#[test]
fn project_commands_from_init_to_rollback() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("project");
    let dir_text = dir.to_str().expect("utf-8");
    assert!(ok(&["init", "--dir", dir_text]).contains("created"));
    std::fs::write(dir.join("causeway.toml"), FRAUD_CONFIG).expect("config");

    let good = root.path().join("transactions.csv");
    write_transactions(&good, 40, 3);
    let ingested = ok(&["ingest", good.to_str().expect("utf-8"), "--name", "transactions", "--dir", dir_text]);
    assert!(ingested.contains("stored") && ingested.contains("passed 8 expectations"), "{ingested}");
    assert!(
        ok(&["ingest", good.to_str().expect("utf-8"), "--name", "transactions", "--dir", dir_text])
            .contains("already stored")
    );

    // A batch breaking an expectation is rejected with a readable report and changes nothing.
    let bad = root.path().join("bad.csv");
    let text = std::fs::read_to_string(&good).expect("csv");
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines[1] = lines[1].replacen(",online,", ",fax,", 1).replacen(",in_store,", ",fax,", 1).replacen(
        ",mobile_app,",
        ",fax,",
        1,
    );
    std::fs::write(&bad, lines.join("\n")).expect("bad csv");
    let rejected = run(&["ingest", bad.to_str().expect("utf-8"), "--name", "transactions", "--dir", dir_text]);
    assert!(!rejected.status.success());
    let message = stderr(&rejected);
    assert!(
        message.contains("was rejected") && message.contains("column `channel`") && message.contains("row 0: fax"),
        "{message}"
    );
    assert_eq!(ok(&["datasets", "--dir", dir_text]).matches("│ transactions ").count(), 1);

    // Training twice on the same data with the same seed gives the same model, byte for byte.
    let first = ok(&["train", "--dir", dir_text, "--days", "20", "--promote"]);
    assert!(first.contains("registered fraud version 1"), "{first}");
    // Cross-validation reports and registers nothing.
    let folds = ok(&["train", "--dir", dir_text, "--days", "20", "--folds", "3"]);
    assert!(folds.contains("cross-validation of gbdt") && folds.contains("mean over 3 folds"), "{folds}");
    assert!(folds.contains("nothing registered") && !folds.contains("registered fraud"), "{folds}");
    let second = ok(&["train", "--dir", dir_text, "--days", "20"]);
    assert!(second.contains("registered fraud version 2"), "{second}");
    let artifacts: Vec<Vec<u8>> = std::fs::read_dir(dir.join(".causeway/artifacts/models/fraud"))
        .expect("artifacts")
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            let name = path.to_string_lossy();
            !name.ends_with(".baseline.json")
                && !name.ends_with(".evaluation.json")
                && !name.ends_with(".holdout.parquet")
        })
        .map(|path| std::fs::read(path).expect("read"))
        .collect();
    assert_eq!(artifacts.len(), 2);
    let strip_run = |bytes: &[u8]| -> serde_json::Value {
        let mut value: serde_json::Value = serde_json::from_slice(bytes).expect("json");
        value["metadata"] = serde_json::Value::Null;
        value
    };
    assert_eq!(strip_run(&artifacts[0]), strip_run(&artifacts[1]), "same seed and data must give the same model");

    // A hyper-parameter search: nine trials by successive halving, every one a child run of the
    // search run; its winner is trained and registered.
    let searched = ok(&["train", "--dir", dir_text, "--days", "20", "--search"]);
    assert!(searched.contains("9 trials, 13 evaluations; best pr_auc"), "{searched}");
    assert!(searched.contains("registered fraud version 3"), "{searched}");
    {
        let meta = causeway_store::MetaStore::open(&dir.join(".causeway/meta.db")).expect("meta");
        let runs = meta.runs().expect("runs");
        let search = runs.iter().find(|run| run.name == "fraud-search").expect("the search run");
        assert_eq!(search.params["strategy"], "SuccessiveHalving");
        let trials: Vec<_> = runs.iter().filter(|run| run.name.starts_with("fraud-trial-")).collect();
        assert_eq!(trials.len(), 9);
        for trial in &trials {
            let tracked = meta.tracked_run(&trial.run_id).expect("trial");
            assert_eq!(tracked.tags.get("mlflow.parentRunId"), Some(&search.run_id), "{}", trial.name);
            assert_eq!(format!("{:?}", tracked.status), "Finished");
        }
        let best = meta.tracked_run(&search.run_id).expect("search").tags["causeway.search.best_run"].clone();
        assert!(trials.iter().any(|trial| trial.run_id == best));
        let registered = runs.iter().filter(|run| run.name == "fraud-gbdt").max_by_key(|run| run.started_ms);
        assert_eq!(registered.map(|run| run.params["search_run"].clone()), Some(search.run_id.clone()));
    }

    let runs = ok(&["runs", "--dir", dir_text]);
    assert!(runs.contains("fraud-gbdt") && runs.contains("fraud-logistic") && runs.contains("FINISHED"), "{runs}");
    assert!(ok(&["promote", "2", "--dir", dir_text]).contains("version 2"));
    assert!(ok(&["models", "--dir", dir_text]).contains("champion"));
    assert!(ok(&["rollback", "--dir", dir_text]).contains("rolled back to version 1"));
    // Promotion goes through [loop.gates]: a gate the version cannot pass refuses it (exit code
    // 1, champion unchanged) until --force, which the audit log records.
    std::fs::write(dir.join("causeway.toml"), FRAUD_CONFIG.replace("min_roc_auc = 0.85", "min_roc_auc = 0.999"))
        .expect("config");
    let refused = run(&["promote", "3", "--dir", dir_text]);
    assert!(!refused.status.success());
    assert!(stdout(&refused).contains("min_roc_auc") && stdout(&refused).contains("FAIL"), "{}", stdout(&refused));
    assert!(stderr(&refused).contains("was not promoted: min_roc_auc (needs ROC-AUC"), "{}", stderr(&refused));
    assert!(ok(&["models", "--dir", dir_text]).contains("champion"));
    let forced = ok(&["promote", "3", "--force", "--dir", dir_text]);
    assert!(forced.contains("fraud@champion -> version 3"), "{forced}");
    let audit = ok(&["events", "--kind", "audit", "--dir", dir_text]);
    assert!(audit.contains("forced past failed gates: min_roc_auc"), "{audit}");
    std::fs::write(dir.join("causeway.toml"), FRAUD_CONFIG).expect("config");
    let audit = ok(&["events", "--kind", "audit", "--dir", dir_text]);
    assert!(audit.contains("fraud@champion -> version 2") && audit.contains("rollback"), "{audit}");
}

#[test]
fn an_external_command_trains_and_its_model_is_registered_like_ours() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("shop");
    let dir_text = dir.to_str().expect("utf-8");
    ok(&["init", "--dir", dir_text]);
    let python = causeway_test_support::python();
    let script = causeway_test_support::repository_root().join("tests/external/train.py");
    let config = |command: &str| {
        format!(
            "{FRAUD_CONFIG}\n[model.external]\ncommand = {command}\ntimeout_minutes = 10\nenvironment = {{ ROUNDS = \"30\" }}\n"
        )
    };
    std::fs::write(dir.join("causeway.toml"), config(&format!("[{python:?}, {:?}]", script.display().to_string())))
        .expect("config");
    let data = root.path().join("transactions.csv");
    write_transactions(&data, 30, 5);
    ok(&["ingest", data.to_str().expect("utf-8"), "--name", "transactions", "--dir", dir_text]);

    let trained = ok(&["train", "--dir", dir_text, "--days", "20", "--external", "--promote"]);
    assert!(trained.contains("trained 30 rounds on"), "the script's output is shown: {trained}");
    assert!(trained.contains("registered fraud version 1") && trained.contains("roc_auc"), "{trained}");
    {
        let meta = causeway_store::MetaStore::open(&dir.join(".causeway/meta.db")).expect("meta");
        let runs = meta.runs().expect("runs");
        let run = runs.iter().find(|run| run.name == "fraud-external").expect("the external run");
        // What the script logged through the MLflow client landed on Causeway's run.
        assert_eq!(run.params["max_depth"], "4");
        assert_eq!(run.params["rounds"], "30");
        assert_eq!(run.params["family"], "external");
        assert!(run.metrics.contains_key("train_logloss") && run.metrics["roc_auc"] > 0.8, "{:?}", run.metrics);
        assert_eq!(format!("{:?}", run.status), "Finished");
        let versions = meta.model_versions("fraud").expect("versions");
        assert_eq!(versions[0].run_id, run.run_id);
        assert_eq!(versions[0].flavor, "tree_ensemble");
    }
    // The registered model has a card (holdout evaluation, slices) like a built-in one.
    let card = ok(&["card", "--dir", dir_text]);
    assert!(card.contains("merchant_category") && card.contains("external"), "{card}");

    // A failing command fails the run and says so; a command writing no model is named.
    std::fs::write(dir.join("causeway.toml"), config("[\"false\"]")).expect("config");
    let failed = run(&["train", "--dir", dir_text, "--days", "20", "--external"]);
    assert!(!failed.status.success());
    assert!(stderr(&failed).contains("the training command `false` failed"), "{}", stderr(&failed));
    std::fs::write(dir.join("causeway.toml"), config("[\"true\"]")).expect("config");
    let empty = run(&["train", "--dir", dir_text, "--days", "20", "--external"]);
    assert!(stderr(&empty).contains("wrote no model file into CAUSEWAY_MODEL_DIR"), "{}", stderr(&empty));
    let meta = causeway_store::MetaStore::open(&dir.join(".causeway/meta.db")).expect("meta");
    let failed_runs = meta.runs().expect("runs").iter().filter(|run| format!("{:?}", run.status) == "Failed").count();
    assert_eq!(failed_runs, 2);
    assert_eq!(meta.model_versions("fraud").expect("versions").len(), 1);
}

#[test]
fn help_explains_every_command_and_errors_exit_non_zero() {
    let commands: [&[&str]; 16] = [
        &["server"],
        &["token", "create"],
        &["token", "list"],
        &["token", "revoke"],
        &["init"],
        &["ingest"],
        &["datasets"],
        &["train"],
        &["runs"],
        &["models"],
        &["promote"],
        &["rollback"],
        &["events"],
        &["serve"],
        &["loop", "resume"],
        &["demo", "fraud"],
    ];
    for command in commands {
        let help = ok(&[command, &["--help"]].concat());
        assert!(help.contains("Example:"), "`{command:?} --help` has no example:\n{help}");
        assert!(help.contains("--dir"), "`{command:?} --help` lacks --dir:\n{help}");
    }
    let root = tempfile::tempdir().expect("tempdir");
    let missing = run(&["models", "--dir", root.path().to_str().expect("utf-8")]);
    assert!(!missing.status.success());
    assert!(stderr(&missing).contains("run `causeway init"), "{}", stderr(&missing));
    let unknown = run(&["promote", "9", "--model", "fraud", "--dir", root.path().to_str().expect("utf-8")]);
    assert!(!unknown.status.success());
}

#[test]
fn the_control_plane_speaks_mlflow_and_its_runs_are_causeway_runs() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("project");
    let dir_text = dir.to_str().expect("utf-8");
    ok(&["init", "--dir", dir_text]);
    let server = crate::support::Server::start_control_plane(&dir);
    let (status, created) =
        server.json("POST", "/api/2.0/mlflow/experiments/create", &serde_json::json!({"name": "research"}));
    assert_eq!(status, 200, "{created}");
    let experiment_id = created["experiment_id"].as_str().expect("id").to_string();
    let (status, run) = server.json(
        "POST",
        "/api/2.0/mlflow/runs/create",
        &serde_json::json!({"experiment_id": experiment_id, "run_name": "notebook-run", "start_time": 1_700_000_000_000_i64}),
    );
    assert_eq!(status, 200, "{run}");
    let run_id = run["run"]["info"]["run_id"].as_str().expect("run id").to_string();
    let batch = serde_json::json!({"run_id": run_id, "metrics": [{"key": "auc", "value": 0.93, "timestamp": 1, "step": 0}], "params": [{"key": "depth", "value": "4"}]});
    assert_eq!(server.json("POST", "/api/2.0/mlflow/runs/log-batch", &batch).0, 200);
    let (status, fetched) =
        server.json("GET", &format!("/api/2.0/mlflow/runs/get?run_id={run_id}"), &serde_json::Value::Null);
    assert_eq!(status, 200, "{fetched}");
    assert_eq!(fetched["run"]["data"]["metrics"][0]["value"], 0.93);
    let runs = ok(&["runs", "--dir", dir_text]);
    assert!(runs.contains("notebook-run") && runs.contains("auc=0.9300"), "{runs}");
    assert_eq!(server.request("GET", "/v2/health/live", None).0, 200, "the data plane is served too");
    let second = crate::support::run(&["serve", "--dir", dir_text, "--listen", "127.0.0.1:0"]);
    assert!(!second.status.success());
    assert!(stderr(&second).contains("held by another Causeway process"), "{}", stderr(&second));
}

#[test]
fn a_non_loopback_server_needs_tokens_unless_insecure() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("project");
    let dir_text = dir.to_str().expect("utf-8");
    ok(&["init", "--dir", dir_text]);
    let refused = run(&["server", "--dir", dir_text, "--host", "0.0.0.0", "--port", "0"]);
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("requires API tokens"), "{}", stderr(&refused));
    let secret = ok(&["token", "create", "--name", "ops", "--scope", "admin", "--dir", dir_text]);
    assert!(secret.trim().starts_with("cw_"), "{secret}");
    let listing = ok(&["token", "list", "--dir", dir_text]);
    assert!(listing.contains("ops") && listing.contains("admin") && !listing.contains(secret.trim()), "{listing}");
    assert!(ok(&["token", "revoke", "--name", "ops", "--dir", dir_text]).contains("revoked"));
    let bad_scope = run(&["token", "create", "--name", "x", "--scope", "root", "--dir", dir_text]);
    assert!(!bad_scope.status.success() && stderr(&bad_scope).contains("unknown scope"));
}
