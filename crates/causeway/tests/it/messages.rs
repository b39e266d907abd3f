//! What people read when something is wrong: every user-facing error of the CLI's data, training
//! and registry paths, held in golden files (`tests/snapshots/*.txt`; `UPDATE_SNAPSHOTS=1`
//! rewrites them). Temporary paths are replaced by `<DIR>`.

use std::path::Path;

use causeway_test_support::assert_snapshot;

use crate::support::run;

/// Runs `causeway ARGS` in `dir`'s terms and snapshots its exit code, stdout and stderr.
fn snapshot(name: &str, dir: &Path, args: &[&str]) {
    let output = run(args);
    let text = format!(
        "$ causeway {}\nexit code {}\n--- stdout\n{}--- stderr\n{}",
        args.join(" "),
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let dir_text = dir.to_str().expect("utf-8");
    assert_snapshot(env!("CARGO_MANIFEST_DIR"), name, &text, &[(dir_text, "<DIR>")]);
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write a file");
}

/// A small binary-labelled table as a new user would have it.
fn churn_csv(rows: usize, label: &dyn Fn(usize) -> &'static str) -> String {
    let mut text = String::from("customer,minutes,plan,churn\n");
    for row in 0..rows {
        let plan = ["basic", "pro", "family"][row % 3];
        text.push_str(&format!("c{row},{},{plan},{}\n", (row * 37) % 400, label(row)));
    }
    text
}

#[test]
fn reading_files_says_what_is_wrong_once() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path();
    let project = dir.join("project");
    let project_text = project.to_str().expect("utf-8");
    assert!(run(&["init", "--dir", project_text]).status.success());
    let missing = dir.join("nope.csv");
    snapshot(
        "ingest_missing_file",
        dir,
        &["ingest", missing.to_str().expect("utf-8"), "--name", "t", "--dir", project_text],
    );
    let empty = dir.join("empty.csv");
    write(&empty, "");
    snapshot(
        "ingest_empty_file",
        dir,
        &["ingest", empty.to_str().expect("utf-8"), "--name", "t", "--dir", project_text],
    );
    let header_only = dir.join("header.csv");
    write(&header_only, "a,b\n");
    snapshot(
        "ingest_header_only",
        dir,
        &["ingest", header_only.to_str().expect("utf-8"), "--name", "t", "--dir", project_text],
    );
    let ragged = dir.join("ragged.csv");
    write(&ragged, "a,b\n1,2\n3,4,5\n");
    snapshot(
        "ingest_ragged_file",
        dir,
        &["ingest", ragged.to_str().expect("utf-8"), "--name", "t", "--dir", project_text],
    );
    let sheet = dir.join("data.xlsx");
    write(&sheet, "not a sheet");
    snapshot(
        "ingest_unsupported_file",
        dir,
        &["ingest", sheet.to_str().expect("utf-8"), "--name", "t", "--dir", project_text],
    );
    // A semicolon-separated file is read as such: three columns, not one.
    let semicolons = dir.join("semicolons.csv");
    write(&semicolons, "id;amount;city\n1;2,5;Oslo\n2;3,25;Bergen\n");
    snapshot(
        "ingest_semicolons",
        dir,
        &["ingest", semicolons.to_str().expect("utf-8"), "--name", "s", "--dir", project_text],
    );
    snapshot(
        "drift_unknown_column",
        dir,
        &["drift", semicolons.to_str().expect("utf-8"), semicolons.to_str().expect("utf-8"), "--columns", "nope"],
    );
}

#[test]
fn data_that_does_not_fit_the_project_is_named() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path();
    let data = dir.join("customers.csv");
    write(&data, &churn_csv(400, &|row| if row % 4 == 0 { "yes" } else { "no" }));
    let project = dir.join("churn");
    let project_text = project.to_str().expect("utf-8");
    let data_text = data.to_str().expect("utf-8");
    snapshot("init_from", dir, &["init", "--from", data_text, "--label", "churn", "--dir", project_text]);
    // A number column with text in it, in a later batch.
    let bad = dir.join("bad.csv");
    write(&bad, "customer,minutes,plan,churn\nc1,12,basic,no\nc2,about 30,pro,yes\nc3,n/a,pro,no\n");
    snapshot(
        "ingest_text_in_a_number_column",
        dir,
        &["ingest", bad.to_str().expect("utf-8"), "--name", "customers", "--dir", project_text],
    );
    // A batch without a column the features read.
    let partial = dir.join("partial.csv");
    write(&partial, "customer,minutes,churn\nc1,12,no\n");
    snapshot(
        "ingest_missing_feature_column",
        dir,
        &["ingest", partial.to_str().expect("utf-8"), "--name", "customers", "--dir", project_text],
    );
    snapshot("train_days_without_a_time_column", dir, &["train", "--days", "30", "--dir", project_text]);
    snapshot("predict_without_a_champion", dir, &["predict", data_text, "--output", "out.csv", "--dir", project_text]);
    assert!(run(&["train", "--dir", project_text]).status.success());
    let listing = String::from_utf8_lossy(&run(&["datasets", "--dir", project_text]).stdout).to_string();
    let version = listing
        .lines()
        .find_map(|line| line.split('┆').nth(1).map(str::trim).filter(|cell| cell.len() == 12))
        .expect("a dataset version")
        .to_string();
    snapshot("datasets_delete_in_lineage", dir, &["datasets", "delete", &version, "--dir", project_text]);
    // Training on one chosen version: a second batch is stored, the first alone trains.
    let more = dir.join("more.csv");
    let mut later = String::from("customer,minutes,plan,churn\n");
    for row in 0..200 {
        later.push_str(&format!("d{row},{},pro,{}\n", (row * 13) % 300, if row % 3 == 0 { "yes" } else { "no" }));
    }
    write(&more, &later);
    assert!(
        run(&["ingest", more.to_str().expect("utf-8"), "--name", "customers", "--dir", project_text]).status.success()
    );
    snapshot("train_unknown_dataset_version", dir, &["train", "--dataset-version", "0000", "--dir", project_text]);
    let chosen = run(&["train", "--dataset-version", &version, "--dir", project_text]);
    assert!(chosen.status.success(), "{}", String::from_utf8_lossy(&chosen.stderr));
    let card = String::from_utf8_lossy(&run(&["card", "--version", "2", "--dir", project_text]).stdout).to_string();
    let lineage =
        card.lines().find(|line| line.starts_with("| dataset_versions |")).expect("the lineage parameter").to_string();
    assert!(lineage.contains(&version) && !lineage.contains(','), "one version only: {lineage}");
    assert!(card.contains("| training rows | 284 |"), "the first batch of 400 rows, less its holdout: {card}");
    // Deleting by force is allowed, warned about, and audited.
    snapshot("datasets_delete_forced", dir, &["datasets", "delete", &version, "--force", "--dir", project_text]);
    let audit = String::from_utf8_lossy(&run(&["events", "--kind", "audit", "--dir", project_text]).stdout).to_string();
    assert!(audit.contains("forced past the lineage of customers v1, customers v2"), "{audit}");
    snapshot("loop_resume_not_paused", dir, &["loop", "resume", "--dir", project_text]);
    snapshot(
        "init_from_an_existing_project",
        dir,
        &["init", "--from", data_text, "--label", "churn", "--dir", project_text],
    );
    snapshot(
        "init_from_an_unknown_label",
        dir,
        &["init", "--from", data_text, "--label", "churned", "--dir", &format!("{project_text}-2")],
    );
}

#[test]
fn labels_a_task_cannot_take_are_refused_by_value() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path();
    // Three label values where a binary task is declared: named, with their counts.
    let three = dir.join("three.csv");
    write(&three, &churn_csv(300, &|row| ["0", "1", "2"][(row / 2) % 3]));
    let project = dir.join("three");
    let project_text = project.to_str().expect("utf-8");
    snapshot(
        "init_from_three_values",
        dir,
        &["init", "--from", three.to_str().expect("utf-8"), "--label", "churn", "--dir", project_text],
    );
    let config = project.join("causeway.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    let binary = text
        .replace("task = \"multiclass\"", "task = \"binary\"")
        .replace("classes = [\"0\", \"1\", \"2\"]   # in the order the model answers them\n", "");
    write(&config, &binary);
    snapshot("train_three_values_in_a_binary_task", dir, &["train", "--dir", project_text]);
    // Two values that are not a yes/no pair need a positive class.
    let credit = dir.join("credit.csv");
    write(&credit, &churn_csv(300, &|row| if row % 5 == 0 { "bad" } else { "good" }));
    snapshot(
        "init_from_without_a_positive_class",
        dir,
        &[
            "init",
            "--from",
            credit.to_str().expect("utf-8"),
            "--label",
            "churn",
            "--dir",
            &format!("{project_text}-credit"),
        ],
    );
}

#[test]
fn help_says_what_import_takes() {
    let root = tempfile::tempdir().expect("tempdir");
    snapshot("import_help", root.path(), &["import", "--help"]);
}
