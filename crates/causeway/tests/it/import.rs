//! `causeway import` registers XGBoost, LightGBM and ONNX tree-ensemble files as versions that
//! serve the scores their libraries (onnxruntime for ONNX) compute.

use causeway_test_support::model_fixtures;
use serde_json::{Value, json};

use crate::support::{Server, run, run_with};

/// One OIP tensor per named input holding that column of every row (null is a missing value).
fn column_tensors(names: &[Value], rows: &[Value]) -> Vec<Value> {
    names
        .iter()
        .enumerate()
        .map(|(column, name)| {
            let data: Vec<Value> = rows.iter().map(|row| row[column].clone()).collect();
            json!({"name": name, "shape": [rows.len()], "datatype": "FP64", "data": data})
        })
        .collect()
}

#[test]
fn imported_models_serve_their_libraries_scores_over_http() {
    let (fixtures, document) = model_fixtures();
    let project = tempfile::tempdir().expect("tempdir");
    let dir = project.path().join("project");
    let dir_text = dir.to_str().expect("utf-8");
    assert!(run(&["init", "--dir", dir_text]).status.success());
    let cases: Vec<&Value> = document["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .filter(|case| {
            ["xgb_binary_ubj", "lgb_binary", "xgb_categorical"].contains(&case["name"].as_str().unwrap_or(""))
        })
        .collect();
    assert_eq!(cases.len(), 3);
    for case in &cases {
        let name = case["name"].as_str().expect("name").replace('_', "-");
        let file = fixtures.path().join(case["file"].as_str().expect("file"));
        let imported =
            run(&["import", file.to_str().expect("utf-8"), "--model", &name, "--promote", "--dir", dir_text]);
        assert!(imported.status.success(), "{}", String::from_utf8_lossy(&imported.stderr));
        assert!(String::from_utf8_lossy(&imported.stdout).contains("version 1"));
    }
    let listing = run(&["models", "--dir", dir_text]);
    assert!(
        String::from_utf8_lossy(&listing.stdout).contains("tree_ensemble"),
        "{}",
        String::from_utf8_lossy(&listing.stdout)
    );

    let server = Server::start(&dir);
    for case in &cases {
        let name = case["name"].as_str().expect("name").replace('_', "-");
        let (status, metadata) = server.json("GET", &format!("/v2/models/{name}"), &Value::Null);
        assert_eq!(status, 200, "{metadata}");
        let names: Vec<Value> =
            metadata["inputs"].as_array().expect("inputs").iter().map(|input| input["name"].clone()).collect();
        let rows = case["rows"].as_array().expect("rows");
        // One tensor per feature, every row in one request.
        let tensors = column_tensors(&names, rows);
        let (status, answer) = server.json("POST", &format!("/v2/models/{name}/infer"), &json!({"inputs": tensors}));
        assert_eq!(status, 200, "{answer}");
        let scores = answer["outputs"][0]["data"].as_array().expect("scores");
        let expected = case["output"].as_array().expect("expected");
        assert_eq!(scores.len(), expected.len());
        for (row, (score, want)) in scores.iter().zip(expected).enumerate() {
            let (score, want) = (score.as_f64().expect("score"), want[0].as_f64().expect("want"));
            assert!((score - want).abs() <= 1e-6, "{name} row {row}: served {score}, library {want}");
        }
    }

    // A multi-class model serves every class's probability and the most likely class.
    drop(server);
    let multiclass = document["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .find(|case| case["name"] == "lgb_multiclass")
        .expect("case");
    let file = fixtures.path().join(multiclass["file"].as_str().expect("file"));
    let imported = run(&["import", file.to_str().expect("utf-8"), "--model", "multi", "--promote", "--dir", dir_text]);
    assert!(imported.status.success(), "{}", String::from_utf8_lossy(&imported.stderr));
    let server = Server::start(&dir);
    assert_serves_classes(&server, "multi", multiclass, "LightGBM");
}

/// `model` on `server` answers every class's probability (three classes) as `case` expects,
/// within 1e-6 of `library`, and the most likely class as its label.
fn assert_serves_classes(server: &Server, model: &str, case: &Value, library: &str) {
    let (status, metadata) = server.json("GET", &format!("/v2/models/{model}"), &Value::Null);
    assert_eq!(status, 200, "{metadata}");
    assert_eq!(metadata["outputs"][0]["name"], "probabilities");
    assert_eq!(metadata["outputs"][0]["shape"], json!([-1, 3]));
    let rows = case["rows"].as_array().expect("rows");
    let names: Vec<Value> =
        metadata["inputs"].as_array().expect("inputs").iter().map(|input| input["name"].clone()).collect();
    let tensors = column_tensors(&names, rows);
    let (status, answer) = server.json("POST", &format!("/v2/models/{model}/infer"), &json!({"inputs": tensors}));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["outputs"][0]["shape"], json!([rows.len(), 3]));
    let probabilities = answer["outputs"][0]["data"].as_array().expect("probabilities");
    let labels = answer["outputs"][1]["data"].as_array().expect("labels");
    for (row, want) in case["output"].as_array().expect("expected").iter().enumerate() {
        let want: Vec<f64> = want.as_array().expect("classes").iter().map(|p| p.as_f64().expect("p")).collect();
        for (class, want) in want.iter().enumerate() {
            let got = probabilities[row * 3 + class].as_f64().expect("p");
            assert!((got - want).abs() <= 1e-6, "row {row} class {class}: served {got}, {library} {want}");
        }
        let best = (0..3).fold(0, |best, class| if want[class] > want[best] { class } else { best });
        assert_eq!(labels[row].as_u64(), Some(best as u64), "row {row}");
    }
}

#[test]
fn a_general_onnx_graph_imports_and_serves_through_onnxruntime() {
    let (fixtures, document) = model_fixtures();
    let library = document["onnxruntime_library"].as_str().expect("the fixture venv has onnxruntime").to_string();
    let project = tempfile::tempdir().expect("tempdir");
    let dir = project.path().join("project");
    let dir_text = dir.to_str().expect("utf-8");
    assert!(run(&["init", "--dir", dir_text]).status.success());
    let case = document["graphs"]
        .as_array()
        .expect("graphs")
        .iter()
        .find(|case| case["name"] == "graph_scaler_logistic")
        .expect("case");
    let file = fixtures.path().join(case["file"].as_str().expect("file"));
    let file_text = file.to_str().expect("utf-8");

    // Without the runtime the graph is refused, naming what to install and where to point.
    let refused = run_with(&["import", file_text, "--model", "pipeline", "--dir", dir_text], &[("ORT_DYLIB_PATH", "")]);
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("onnxruntime") && message.contains("ORT_DYLIB_PATH"), "{message}");

    let environment = [("ORT_DYLIB_PATH", library.as_str())];
    let imported =
        run_with(&["import", file_text, "--model", "pipeline", "--promote", "--dir", dir_text], &environment);
    assert!(imported.status.success(), "{}", String::from_utf8_lossy(&imported.stderr));
    let listing = run(&["models", "--dir", dir_text]);
    assert!(String::from_utf8_lossy(&listing.stdout).contains("onnx"), "{}", String::from_utf8_lossy(&listing.stdout));

    let server = Server::spawn_with(
        &["serve", "--dir", dir_text, "--listen", "127.0.0.1:0"],
        &[("ORT_DYLIB_PATH", library.clone())],
    );
    let rows = case["rows"].as_array().expect("rows");
    let width = rows[0].as_array().expect("row").len();
    let names: Vec<Value> = (0..width).map(|column| json!(format!("f{column}"))).collect();
    let tensors = column_tensors(&names, rows);
    let (status, answer) = server.json("POST", "/v2/models/pipeline/infer", &json!({"inputs": tensors}));
    assert_eq!(status, 200, "{answer}");
    let scores = answer["outputs"][0]["data"].as_array().expect("scores");
    let expected = case["output"].as_array().expect("expected");
    assert_eq!(scores.len(), expected.len());
    for (row, (score, want)) in scores.iter().zip(expected).enumerate() {
        let (score, want) = (score.as_f64().expect("score"), want.as_f64().expect("want"));
        assert!((score - want).abs() <= 1e-6, "row {row}: served {score}, onnxruntime {want}");
    }

    // A multi-class graph serves every class's probability and the most likely class.
    drop(server);
    let case = document["graphs"]
        .as_array()
        .expect("graphs")
        .iter()
        .find(|case| case["name"] == "graph_multiclass")
        .expect("case");
    let file = fixtures.path().join(case["file"].as_str().expect("file"));
    let imported = run_with(
        &["import", file.to_str().expect("utf-8"), "--model", "classes", "--promote", "--dir", dir_text],
        &environment,
    );
    assert!(imported.status.success(), "{}", String::from_utf8_lossy(&imported.stderr));
    let server =
        Server::spawn_with(&["serve", "--dir", dir_text, "--listen", "127.0.0.1:0"], &[("ORT_DYLIB_PATH", library)]);
    assert_serves_classes(&server, "classes", case, "onnxruntime");
}

/// `causeway serve --model FILE` serves one file with no project, under the file's name or
/// `--name`, and leaves nothing behind but its temporary project, which it removes.
#[test]
fn a_model_file_serves_alone() {
    let (fixtures, document) = model_fixtures();
    let case = document["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .find(|case| case["name"] == "xgb_binary_ubj")
        .expect("case");
    let file = fixtures.path().join(case["file"].as_str().expect("file"));
    let file_text = file.to_str().expect("utf-8");
    let stem = file.file_stem().expect("stem").to_str().expect("utf-8").to_string();

    let server = Server::spawn_with(&["serve", "--model", file_text, "--listen", "127.0.0.1:0"], &[]);
    let (status, metadata) = server.json("GET", &format!("/v2/models/{stem}"), &Value::Null);
    assert_eq!(status, 200, "{metadata}");
    let names: Vec<Value> =
        metadata["inputs"].as_array().expect("inputs").iter().map(|input| input["name"].clone()).collect();
    let rows = case["rows"].as_array().expect("rows");
    let (status, answer) =
        server.json("POST", &format!("/v2/models/{stem}/infer"), &json!({"inputs": column_tensors(&names, rows)}));
    assert_eq!(status, 200, "{answer}");
    let scores = answer["outputs"][0]["data"].as_array().expect("scores");
    for (row, (score, want)) in scores.iter().zip(case["output"].as_array().expect("expected")).enumerate() {
        let (score, want) = (score.as_f64().expect("score"), want[0].as_f64().expect("want"));
        assert!((score - want).abs() <= 1e-6, "row {row}: served {score}, XGBoost {want}");
    }
    // Stopped as a supervisor stops it, the server removes its temporary project.
    let project = server.readiness.split_whitespace().nth(1).expect("the project directory").to_string();
    assert!(std::path::Path::new(&project).join("causeway.toml").is_file(), "{}", server.readiness);
    assert!(server.terminate().success());
    assert!(!std::path::Path::new(&project).exists(), "{project} was removed");

    let named = Server::spawn_with(&["serve", "--model", file_text, "--name", "fraud", "--listen", "127.0.0.1:0"], &[]);
    let (status, metadata) = named.json("GET", "/v2/models/fraud", &Value::Null);
    assert_eq!(status, 200, "{metadata}");
    assert!(named.terminate().success());

    // A file and a project are two different things to serve; a public address needs --insecure.
    let both = run(&["serve", "--model", file_text, "--dir", "."]);
    assert!(!both.status.success());
    assert!(String::from_utf8_lossy(&both.stderr).contains("--dir"), "{}", String::from_utf8_lossy(&both.stderr));
    let public = run(&["serve", "--model", file_text, "--listen", "0.0.0.0:0"]);
    assert!(!public.status.success());
    assert!(String::from_utf8_lossy(&public.stderr).contains("--insecure"));
    // A file that is not a model is refused by name, before anything listens.
    let scratch = tempfile::tempdir().expect("tempdir");
    let bogus = scratch.path().join("notes.txt");
    std::fs::write(&bogus, "not a model\n").expect("write");
    let refused = run(&["serve", "--model", bogus.to_str().expect("utf-8"), "--listen", "127.0.0.1:0"]);
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("cannot serve") && message.contains("unrecognised model file"), "{message}");
}

/// A model file that names its categories (LightGBM's `pandas_categorical`, XGBoost's stored
/// categories) publishes them in its metadata and takes them as BYTES; record scoring of an
/// imported model takes its own inputs from the fields (not the project's features); a LightGBM
/// model with an infinite threshold imports and serves; an imported regressor answers a
/// prediction and no label.
#[test]
fn imported_categories_infinite_thresholds_and_regressors_serve() {
    let (fixtures, document) = model_fixtures();
    let case = |name: &str| -> &Value {
        document["cases"].as_array().expect("cases").iter().find(|case| case["name"] == name).expect("case")
    };
    let project = tempfile::tempdir().expect("tempdir");
    let dir = project.path().join("project");
    let dir_text = dir.to_str().expect("utf-8");
    assert!(run(&["init", "--dir", dir_text]).status.success());
    for (name, model) in [
        ("lgb_pandas", "lgb-pandas"),
        ("xgb_pandas", "xgb-pandas"),
        ("lgb_infinite_threshold", "infinite"),
        ("lgb_regression", "regressor"),
    ] {
        let file = fixtures.path().join(case(name)["file"].as_str().expect("file"));
        let imported =
            run(&["import", file.to_str().expect("utf-8"), "--model", model, "--promote", "--dir", dir_text]);
        assert!(imported.status.success(), "{name}: {}", String::from_utf8_lossy(&imported.stderr));
    }
    let server = Server::start(&dir);
    for (name, model) in [("lgb_pandas", "lgb-pandas"), ("xgb_pandas", "xgb-pandas")] {
        let case = case(name);
        let (status, metadata) = server.json("GET", &format!("/v2/models/{model}"), &Value::Null);
        assert_eq!(status, 200, "{metadata}");
        assert_eq!(metadata["inputs"][0]["datatype"], "BYTES", "{metadata}");
        assert_eq!(metadata["inputs"][0]["parameters"]["categories"], json!(["blue", "green", "red", "violet"]));
        let rows = case["text_rows"].as_array().expect("rows");
        let colours: Vec<Value> = rows.iter().map(|row| row[0].clone()).collect();
        let sizes: Vec<Value> = rows.iter().map(|row| row[1].clone()).collect();
        let inputs = json!([
            {"name": "colour", "shape": [rows.len()], "datatype": "BYTES", "data": colours},
            {"name": "size", "shape": [rows.len()], "datatype": "FP64", "data": sizes},
        ]);
        let (status, answer) = server.json("POST", &format!("/v2/models/{model}/infer"), &json!({"inputs": inputs}));
        assert_eq!(status, 200, "{answer}");
        let scores = answer["outputs"][0]["data"].as_array().expect("scores");
        for (row, (score, want)) in scores.iter().zip(case["output"].as_array().expect("expected")).enumerate() {
            let (score, want) = (score.as_f64().expect("score"), want[0].as_f64().expect("want"));
            assert!((score - want).abs() <= 1e-6, "{name} row {row}: served {score}, library {want}");
        }
        // Record scoring reads the model's own inputs from the fields.
        let (status, decision) = server.json(
            "POST",
            &format!("/v1/models/{model}/score"),
            &json!({"request_id": "r1", "fields": {"colour": "red", "size": 0.1}}),
        );
        assert_eq!(status, 200, "{decision}");
        assert_eq!(decision["task"], "binary");
        let (status, refused) =
            server.json("POST", &format!("/v1/models/{model}/score"), &json!({"fields": {"colour": "red"}}));
        assert_eq!(status, 400, "{refused}");
        assert!(refused["error"].as_str().unwrap_or("").contains("`size`"), "{refused}");
        // An unseen category is scored as missing and counted.
        let (status, _) = server.json(
            "POST",
            &format!("/v1/models/{model}/score"),
            &json!({"fields": {"colour": "turquoise", "size": 0.1}}),
        );
        assert_eq!(status, 200);
    }
    let (_, metrics) = server.request("GET", "/metrics", None);
    assert!(
        metrics.contains("causeway_unknown_categories_total{model=\"lgb-pandas\",feature=\"colour\"} 1"),
        "{metrics}"
    );

    let infinite = case("lgb_infinite_threshold");
    let (_, metadata) = server.json("GET", "/v2/models/infinite", &Value::Null);
    let names: Vec<Value> =
        metadata["inputs"].as_array().expect("inputs").iter().map(|input| input["name"].clone()).collect();
    let rows = infinite["rows"].as_array().expect("rows");
    let (status, answer) =
        server.json("POST", "/v2/models/infinite/infer", &json!({"inputs": column_tensors(&names, rows)}));
    assert_eq!(status, 200, "{answer}");
    for (row, (score, want)) in answer["outputs"][0]["data"]
        .as_array()
        .expect("scores")
        .iter()
        .zip(infinite["output"].as_array().expect("expected"))
        .enumerate()
    {
        assert!((score.as_f64().expect("score") - want[0].as_f64().expect("want")).abs() <= 1e-6, "row {row}");
    }

    let regression = case("lgb_regression");
    let (_, metadata) = server.json("GET", "/v2/models/regressor", &Value::Null);
    assert_eq!(metadata["parameters"]["task"], "regression");
    assert_eq!(metadata["outputs"], json!([{"name": "prediction", "datatype": "FP64", "shape": [-1]}]));
    let names: Vec<Value> =
        metadata["inputs"].as_array().expect("inputs").iter().map(|input| input["name"].clone()).collect();
    let rows = regression["rows"].as_array().expect("rows");
    let (status, answer) =
        server.json("POST", "/v2/models/regressor/infer", &json!({"inputs": column_tensors(&names, rows)}));
    assert_eq!(status, 200, "{answer}");
    let outputs = answer["outputs"].as_array().expect("outputs");
    assert_eq!(outputs.len(), 1, "a regressor answers no label: {answer}");
    assert_eq!(outputs[0]["name"], "prediction");
    let first = outputs[0]["data"][0].as_f64().expect("prediction");
    assert!((first - regression["output"][0][0].as_f64().expect("want")).abs() <= 1e-6);
}
