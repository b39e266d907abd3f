//! The routes MLflow's web UI calls beside the client API: bulk metric histories for its charts,
//! one-file uploads into a run, and a logged model's files.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};

use crate::trust::Server;

async fn new_run(server: &Server) -> String {
    let run = server.mlflow(Method::POST, "runs/create", json!({"experiment_id": "0"})).await;
    run.body["run"]["info"]["run_id"].as_str().expect("run id").to_string()
}

async fn log(server: &Server, run_id: &str, key: &str, timestamp: i64, step: i64, value: f64) {
    let body = json!({"run_id": run_id, "key": key, "value": value, "timestamp": timestamp, "step": step});
    assert_eq!(server.mlflow(Method::POST, "runs/log-metric", body).await.status, StatusCode::OK);
}

fn steps_of(answer: &Value) -> Vec<(String, i64)> {
    answer["metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .map(|point| (point["run_id"].as_str().unwrap_or_default().to_string(), point["step"].as_i64().unwrap_or(-1)))
        .collect()
}

#[tokio::test]
async fn bulk_histories_order_limit_and_refuse_as_mlflow() {
    let server = Server::new(false);
    let (first, second) = (new_run(&server).await, new_run(&server).await);
    // Logged out of order: the answer is by timestamp, then step, then value.
    for (timestamp, step, value) in [(2, 3, 12.0), (1, 2, 10.0), (1, 3, 12.0), (1, 3, 11.0)] {
        log(&server, &first, "loss", timestamp, step, value).await;
        log(&server, &second, "loss", timestamp, step, value + 1.0).await;
    }
    let one = server
        .call(
            Method::GET,
            &format!("/ajax-api/2.0/mlflow/metrics/get-history-bulk?run_id={first}&metric_key=loss"),
            None,
        )
        .await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.body);
    let points: Vec<(i64, i64, f64)> = one.body["metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .map(|point| {
            (
                point["timestamp"].as_i64().unwrap_or(0),
                point["step"].as_i64().unwrap_or(0),
                point["value"].as_f64().unwrap_or(0.0),
            )
        })
        .collect();
    assert_eq!(points, vec![(1, 2, 10.0), (1, 3, 11.0), (1, 3, 12.0), (2, 3, 12.0)]);
    assert_eq!(
        one.body["metrics"][0],
        json!({"key": "loss", "value": 10.0, "timestamp": 1, "step": 2, "run_id": first})
    );

    let (low, high) = if first < second { (&first, &second) } else { (&second, &first) };
    let both = server
        .call(Method::GET, &format!("/api/2.0/mlflow/metrics/get-history-bulk?run_id={high}&run_id={low}&run_id=missing&metric_key=loss&max_results=5"), None)
        .await;
    let runs: Vec<String> = steps_of(&both.body).into_iter().map(|(run, _)| run).collect();
    assert_eq!(runs, vec![low.clone(), low.clone(), low.clone(), low.clone(), high.clone()]);

    let too_many: String = (0..101).map(|index| format!("run_id=r{index}&")).collect();
    for (query, message) in [
        ("metric_key=loss".to_string(), "must specify at least one run_id"),
        (format!("{too_many}metric_key=loss"), "cannot specify more than 100 run_ids. Received 101"),
        (format!("run_id={first}"), "must specify a metric_key"),
    ] {
        let refused =
            server.call(Method::GET, &format!("/api/2.0/mlflow/metrics/get-history-bulk?{query}"), None).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(refused.body["error_code"], "INVALID_PARAMETER_VALUE");
        assert!(refused.body["message"].as_str().unwrap_or_default().contains(message), "{}", refused.body);
    }
}

#[tokio::test]
async fn sampled_histories_keep_every_runs_ends() {
    let server = Server::new(false);
    let (short, long) = (new_run(&server).await, new_run(&server).await);
    for step in 0..10 {
        log(&server, &short, "acc", 1, step, 0.5).await;
    }
    for step in 0..20 {
        log(&server, &long, "acc", 1, step, 0.5).await;
    }
    let url = "/api/2.0/mlflow/metrics/get-history-bulk-interval";
    let alone = server.call(Method::GET, &format!("{url}?run_ids={short}&metric_key=acc&max_results=5"), None).await;
    assert_eq!(alone.status, StatusCode::OK, "{}", alone.body);
    let steps: Vec<i64> = steps_of(&alone.body).into_iter().map(|(_, step)| step).collect();
    assert_eq!(steps, vec![0, 2, 4, 6, 8, 9]);
    let both = server
        .call(Method::GET, &format!("{url}?run_ids={short}&run_ids={long}&metric_key=acc&max_results=5"), None)
        .await;
    let steps: Vec<(String, i64)> = steps_of(&both.body);
    let expected: Vec<(String, i64)> = [0, 4, 8, 9]
        .into_iter()
        .map(|step| (short.clone(), step))
        .chain([0, 4, 8, 9, 12, 16, 19].into_iter().map(|step| (long.clone(), step)))
        .collect();
    assert_eq!(steps, expected);

    for (query, message) in [
        ("metric_key=acc".to_string(), "Missing value for required parameter 'run_ids'."),
        (format!("run_ids={short}&metric_key=acc&max_results=0"), "max_results must be between 1 and 2500"),
        (format!("run_ids={short}&max_results=5"), "Missing value for required parameter 'metric_key'"),
        (
            format!("run_ids={short}&metric_key=acc&start_step=1&end_step=0"),
            "end_step must be greater than start_step. ",
        ),
        (format!("run_ids={short}&metric_key=acc&start_step=1"), "both must be specified"),
    ] {
        let refused = server.call(Method::GET, &format!("{url}?{query}"), None).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{query}");
        assert!(refused.body["message"].as_str().unwrap_or_default().contains(message), "{query}: {}", refused.body);
    }
}

async fn upload(server: &Server, query: &str, body: &'static str) -> crate::trust::Answer {
    let request = Request::builder()
        .method(Method::POST)
        .uri(format!("/ajax-api/2.0/mlflow/upload-artifact?{query}"))
        .header("host", "127.0.0.1:5000")
        .body(Body::from(body))
        .expect("request");
    server.send(request).await
}

#[tokio::test]
async fn the_web_uis_upload_lands_in_the_runs_artifacts() {
    let server = Server::new(false);
    let run_id = new_run(&server).await;
    for (query, body, message) in [
        (String::new(), "x", "Request must specify run_uuid."),
        (format!("run_uuid={run_id}"), "x", "Request must specify path."),
        (format!("run_uuid={run_id}&path="), "x", "Request must specify path."),
        (format!("run_uuid={run_id}&path=../test.txt"), "x", "Invalid path"),
        (format!("run_uuid={run_id}&path=test.txt"), "", "Request must specify data."),
    ] {
        let refused = upload(&server, &query, body).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(refused.body["message"], message, "{query}");
    }
    let stored = upload(&server, &format!("run_uuid={run_id}&path=notes/test.txt"), "hello world").await;
    assert_eq!(stored.status, StatusCode::OK, "{}", stored.body);
    let read = server.call(Method::GET, &format!("/get-artifact?run_uuid={run_id}&path=notes/test.txt"), None).await;
    assert_eq!((read.status, read.body["text"].as_str()), (StatusCode::OK, Some("hello world")));
    let listed =
        server.call(Method::GET, &format!("/api/2.0/mlflow/artifacts/list?run_id={run_id}&path=notes"), None).await;
    assert_eq!(listed.body["files"], json!([{"path": "notes/test.txt", "is_dir": false, "file_size": 11}]));
    // MLflow's clients also send `//model-versions/get-artifact`; Flask merges the slashes.
    let escaping =
        server.call(Method::GET, "//model-versions/get-artifact?name=model&version=1&path=../path", None).await;
    assert_eq!((escaping.status, escaping.body["message"].as_str()), (StatusCode::BAD_REQUEST, Some("Invalid path")));
}

#[tokio::test]
async fn a_logged_models_files_are_listed_and_read() {
    let server = Server::new(false);
    let created = server.mlflow(Method::POST, "logged-models", json!({"experiment_id": "0"})).await;
    let model_id = created.body["model"]["info"]["model_id"].as_str().expect("model id").to_string();
    let root = created.body["model"]["info"]["artifact_uri"].as_str().expect("artifact uri").to_string();
    let path = root.strip_prefix("mlflow-artifacts:/").expect("proxied root");
    let request = Request::builder()
        .method(Method::PUT)
        .uri(format!("/api/2.0/mlflow-artifacts/artifacts/{path}/MLmodel"))
        .header("host", "127.0.0.1:5000")
        .body(Body::from(format!("model_id: {model_id}\n")))
        .expect("request");
    assert_eq!(server.send(request).await.status, StatusCode::OK);

    let base = format!("/ajax-api/2.0/mlflow/logged-models/{model_id}/artifacts");
    let listed = server.call(Method::GET, &format!("{base}/directories"), None).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    assert_eq!(listed.body["root_uri"], json!(root));
    assert_eq!(listed.body["files"][0]["path"], "MLmodel");
    let file = server.call(Method::GET, &format!("{base}/files?artifact_file_path=MLmodel"), None).await;
    assert_eq!(file.status, StatusCode::OK);
    assert!(file.body["text"].as_str().unwrap_or_default().contains(&model_id));
    let unnamed = server.call(Method::GET, &format!("{base}/files"), None).await;
    assert_eq!(unnamed.status, StatusCode::BAD_REQUEST);
    let escaping = server.call(Method::GET, &format!("{base}/files?artifact_file_path=../../x"), None).await;
    assert_eq!((escaping.status, escaping.body["message"].as_str()), (StatusCode::BAD_REQUEST, Some("Invalid path")));
    let missing = server.call(Method::GET, "/api/2.0/mlflow/logged-models/m-missing/artifacts/directories", None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn experiment_names_and_locations_follow_mlflows_rules() {
    let server = Server::new(false);
    let long = server.mlflow(Method::POST, "experiments/create", json!({"name": "x".repeat(501)})).await;
    assert_eq!(long.status, StatusCode::BAD_REQUEST);
    assert_eq!(long.body["message"], "'name' exceeds the maximum length of 500 characters");
    let tag = json!({"name": "tagged", "tags": [{"key": "k", "value": "v".repeat(5001)}]});
    assert_eq!(server.mlflow(Method::POST, "experiments/create", tag).await.status, StatusCode::BAD_REQUEST);

    let relative = server
        .mlflow(Method::POST, "experiments/create", json!({"name": "e", "artifact_location": "my_location"}))
        .await;
    let id = relative.body["experiment_id"].as_str().expect("id").to_string();
    let experiment =
        server.call(Method::GET, &format!("/api/2.0/mlflow/experiments/get?experiment_id={id}"), None).await;
    let expected = std::env::current_dir().expect("cwd").join("my_location");
    assert_eq!(experiment.body["experiment"]["artifact_location"], json!(expected.display().to_string()));
    let renamed = json!({"experiment_id": id, "new_name": "y".repeat(501)});
    assert_eq!(server.mlflow(Method::POST, "experiments/update", renamed).await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn logged_models_are_found_by_the_dataset_their_metrics_were_measured_on() {
    let server = Server::new(false);
    let mut ids = Vec::new();
    for _ in 0..2 {
        let created = server.mlflow(Method::POST, "logged-models", json!({"experiment_id": "0"})).await;
        ids.push(created.body["model"]["info"]["model_id"].as_str().expect("model id").to_string());
        server.clock.advance(1);
    }
    let run_id = new_run(&server).await;
    let metric = json!({"run_id": run_id, "key": "auc", "value": 0.9, "timestamp": 1, "step": 0,
        "model_id": ids[0], "dataset_name": "holdout", "dataset_digest": "123"});
    assert_eq!(server.mlflow(Method::POST, "runs/log-metric", metric).await.status, StatusCode::OK);
    let search = |datasets: Value| {
        server.mlflow(Method::POST, "logged-models/search", json!({"experiment_ids": ["0"], "datasets": datasets}))
    };
    let names = |answer: &Value| -> Vec<String> {
        answer["models"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|model| model["info"]["model_id"].as_str().map(str::to_string))
            .collect()
    };
    assert_eq!(names(&search(json!([])).await.body), vec![ids[1].clone(), ids[0].clone()], "newest first");
    assert_eq!(
        names(&search(json!([{"dataset_name": "holdout", "dataset_digest": "123"}])).await.body),
        vec![ids[0].clone()]
    );
    assert_eq!(names(&search(json!([{"dataset_name": "holdout"}])).await.body), vec![ids[0].clone()]);
    assert!(names(&search(json!([{"dataset_name": "holdout", "dataset_digest": "999"}])).await.body).is_empty());
    assert_eq!(search(json!([{"dataset_digest": "123"}])).await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_datasets_an_experiments_runs_read_are_summarised() {
    let server = Server::new(false);
    let run_id = new_run(&server).await;
    let dataset = |name: &str, context: Option<&str>| {
        let tags: Vec<Value> =
            context.map(|value| json!({"key": "mlflow.data.context", "value": value})).into_iter().collect();
        json!({"dataset": {"name": name, "digest": format!("{name}-digest"), "source_type": "local", "source": "{}"}, "tags": tags})
    };
    let inputs = json!({"run_id": run_id, "datasets": [dataset("train", Some("training")), dataset("raw", None)]});
    assert_eq!(server.mlflow(Method::POST, "runs/log-inputs", inputs).await.status, StatusCode::OK);
    let again = json!({"run_id": new_run(&server).await, "datasets": [dataset("train", Some("training"))]});
    assert_eq!(server.mlflow(Method::POST, "runs/log-inputs", again).await.status, StatusCode::OK);

    let found = server.mlflow(Method::POST, "experiments/search-datasets", json!({"experiment_ids": ["0"]})).await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.body);
    assert_eq!(
        found.body["dataset_summaries"],
        json!([
            {"experiment_id": "0", "name": "raw", "digest": "raw-digest"},
            {"experiment_id": "0", "name": "train", "digest": "train-digest", "context": "training"},
        ])
    );
    let none = server.mlflow(Method::POST, "experiments/search-datasets", json!({"experiment_ids": []})).await;
    assert_eq!(none.body["message"], "SearchDatasets request must specify at least one experiment_id.");
    let many: Vec<String> = (0..21).map(|index| index.to_string()).collect();
    let refused = server.mlflow(Method::POST, "experiments/search-datasets", json!({"experiment_ids": many})).await;
    assert!(
        refused.body["message"].as_str().unwrap_or_default().contains("cannot specify more than 20"),
        "{}",
        refused.body
    );
}

#[tokio::test]
async fn artifacts_clients_write_themselves_are_listed_served_and_registered_in_place() {
    let server = Server::with_direct_artifacts(false, true);
    let created = server.mlflow(Method::POST, "experiments/create", json!({"name": "direct"})).await;
    let id = created.body["experiment_id"].as_str().expect("id").to_string();
    let experiment =
        server.call(Method::GET, &format!("/api/2.0/mlflow/experiments/get?experiment_id={id}"), None).await;
    let root = server._directory.path().join("direct");
    assert_eq!(experiment.body["experiment"]["artifact_location"], json!(format!("file://{}/{id}", root.display())));
    let run = server.mlflow(Method::POST, "runs/create", json!({"experiment_id": id})).await;
    let run_id = run.body["run"]["info"]["run_id"].as_str().expect("run id").to_string();
    let artifact_uri = run.body["run"]["info"]["artifact_uri"].as_str().expect("artifact uri").to_string();
    assert_eq!(artifact_uri, format!("file://{}/{id}/{run_id}/artifacts", root.display()));

    // The client writes straight to the root (MLflow's LocalArtifactRepository); the server reads it.
    let model_directory = root.join(&id).join(&run_id).join("artifacts/model");
    std::fs::create_dir_all(&model_directory).expect("mkdir");
    std::fs::write(model_directory.join("MLmodel"), "flavors: {}\n").expect("write");
    let listed =
        server.call(Method::GET, &format!("/api/2.0/mlflow/artifacts/list?run_id={run_id}&path=model"), None).await;
    assert_eq!(listed.body["files"], json!([{"path": "model/MLmodel", "is_dir": false, "file_size": 12}]));
    let file = server.call(Method::GET, &format!("/get-artifact?run_id={run_id}&path=model/MLmodel"), None).await;
    assert_eq!(file.body["text"], "flavors: {}\n");

    // A local source registers from inside the named run's artifact directory only.
    assert_eq!(
        server.mlflow(Method::POST, "registered-models/create", json!({"name": "direct-model"})).await.status,
        StatusCode::OK
    );
    let path = artifact_uri.trim_start_matches("file://").to_string();
    for (source, with_run, accepted) in [
        (format!("{artifact_uri}/model"), true, true),
        (format!("{path}/model/.."), true, true),
        (path.clone(), false, false),
        ("/tmp".to_string(), true, false),
        (format!("{path}/../../elsewhere"), true, false),
    ] {
        let mut body = json!({"name": "direct-model", "source": source});
        if with_run {
            body["run_id"] = json!(run_id);
        }
        let answer = server.mlflow(Method::POST, "model-versions/create", body).await;
        assert_eq!(answer.status == StatusCode::OK, accepted, "{source}: {}", answer.body);
        if !accepted {
            let message = answer.body["message"].as_str().unwrap_or_default();
            assert!(message.contains("To use a local path as a model version source"), "{message}");
        }
    }
    // A logged model's own directory is a home too.
    let logged = server.mlflow(Method::POST, "logged-models", json!({"experiment_id": id})).await;
    let (model_id, location) = (
        logged.body["model"]["info"]["model_id"].as_str().expect("model id").to_string(),
        logged.body["model"]["info"]["artifact_uri"].as_str().expect("location").to_string(),
    );
    assert!(location.starts_with("file://"), "{location}");
    let from_model = json!({"name": "direct-model", "source": location, "model_id": model_id});
    assert_eq!(server.mlflow(Method::POST, "model-versions/create", from_model).await.status, StatusCode::OK);
    // Relative references hidden in a query or behind percent-encoding are refused too.
    let hidden =
        json!({"name": "direct-model", "source": format!("dbfs:/{run_id}/artifacts/a%3f/../../../"), "run_id": run_id});
    let answer = server.mlflow(Method::POST, "model-versions/create", hidden).await;
    assert!(
        answer.body["message"].as_str().unwrap_or_default().starts_with("Invalid model version source"),
        "{}",
        answer.body
    );
    let elsewhere = json!({"name": "direct-model", "source": "file://10.0.0.1/models/x", "run_id": run_id});
    let answer = server.mlflow(Method::POST, "model-versions/create", elsewhere).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(
        answer.body["message"].as_str().unwrap_or_default().contains("is not a valid remote uri"),
        "{}",
        answer.body
    );
}

#[tokio::test]
async fn large_downloads_stream_whole_with_their_length() {
    let server = Server::new(false);
    let bytes: Vec<u8> = (0..(5_u32 << 20) + 12_345).map(|index| (index % 253) as u8).collect();
    server.blobs.put("mlflow-artifacts/0/r/artifacts/model.bin", &bytes).expect("put");
    let request = Request::builder()
        .uri("/api/2.0/mlflow-artifacts/artifacts/0/r/artifacts/model.bin")
        .header("host", "127.0.0.1:5000")
        .body(Body::empty())
        .expect("request");
    let response = tower::ServiceExt::oneshot(server.app.clone(), request).await.expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-length"], bytes.len().to_string().as_str());
    let body = http_body_util::BodyExt::collect(response.into_body()).await.expect("body").to_bytes();
    assert!(body[..] == bytes[..], "the streamed body is the file");
    let missing = server.call(Method::GET, "/api/2.0/mlflow-artifacts/artifacts/0/r/artifacts/none.bin", None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}
