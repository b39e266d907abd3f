//! The MLflow tracking API: the request sequences the official client sends.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use causeway_server::mlflow::{TrackingState, router};
use causeway_store::MetaStore;
use causeway_types::ManualClock;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

fn app() -> Router {
    let meta = Arc::new(MetaStore::open_in_memory().expect("store"));
    router(TrackingState::new(meta, Arc::new(ManualClock::new(1_700_000_000_000)), None))
}

async fn call(app: &Router, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(body.map_or_else(Body::empty, |body| Body::from(body.to_string())))
        .expect("request");
    let response = app.clone().oneshot(request).await.expect("response");
    let status = response.status();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn post(app: &Router, path: &str, body: Value) -> (StatusCode, Value) {
    call(app, Method::POST, &format!("/api/2.0/mlflow/{path}"), Some(body)).await
}

async fn get(app: &Router, path: &str) -> (StatusCode, Value) {
    call(app, Method::GET, &format!("/api/2.0/mlflow/{path}"), None).await
}

#[tokio::test]
async fn set_experiment_start_run_log_and_read_back() {
    let app = app();
    // mlflow.set_experiment: get-by-name, 404, create.
    let (status, missing) = get(&app, "experiments/get-by-name?experiment_name=fraud").await;
    assert_eq!((status, missing["error_code"].as_str()), (StatusCode::NOT_FOUND, Some("RESOURCE_DOES_NOT_EXIST")));
    let (status, created) =
        post(&app, "experiments/create", json!({"name": "fraud", "tags": [{"key": "team", "value": "risk"}]})).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let experiment_id = created["experiment_id"].as_str().expect("id").to_string();
    let (status, again) = post(&app, "experiments/create", json!({"name": "fraud"})).await;
    assert_eq!((status, again["error_code"].as_str()), (StatusCode::BAD_REQUEST, Some("RESOURCE_ALREADY_EXISTS")));
    let (_, experiment) = get(&app, &format!("experiments/get?experiment_id={experiment_id}")).await;
    assert_eq!(experiment["experiment"]["name"], "fraud");
    assert_eq!(experiment["experiment"]["tags"][0]["value"], "risk");

    // mlflow.start_run, log_param, log_metric with steps, log_batch, set_tag, end of run.
    let (status, run) = post(
        &app,
        "runs/create",
        json!({"experiment_id": experiment_id, "start_time": 1_700_000_000_123_i64, "run_name": "gbdt", "tags": [{"key": "mlflow.user", "value": "ada"}]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{run}");
    let run_id = run["run"]["info"]["run_id"].as_str().expect("run id").to_string();
    assert_eq!(run["run"]["info"]["run_uuid"], run["run"]["info"]["run_id"]);
    assert_eq!(run["run"]["info"]["status"], "RUNNING");
    assert_eq!(run["run"]["info"]["artifact_uri"], format!("mlflow-artifacts:/{experiment_id}/{run_id}/artifacts"));
    assert_eq!(
        post(&app, "runs/log-parameter", json!({"run_uuid": run_id, "key": "depth", "value": "5"})).await.0,
        StatusCode::OK
    );
    for step in 0..3 {
        let body = json!({"run_id": run_id, "key": "loss", "value": 1.0 / f64::from(step + 1), "timestamp": 1_000 + step, "step": step});
        assert_eq!(post(&app, "runs/log-metric", body).await.0, StatusCode::OK);
    }
    let batch = json!({
        "run_id": run_id,
        "metrics": [{"key": "auc", "value": 0.91, "timestamp": 5, "step": 0}, {"key": "nan_metric", "value": "NaN", "timestamp": 5, "step": 0}],
        "params": [{"key": "lr", "value": "0.1"}],
        "tags": [{"key": "stage", "value": "dev"}],
    });
    assert_eq!(post(&app, "runs/log-batch", batch).await.0, StatusCode::OK);
    assert_eq!(
        post(&app, "runs/set-tag", json!({"run_id": run_id, "key": "owner", "value": "risk"})).await.0,
        StatusCode::OK
    );
    let (status, changed) =
        post(&app, "runs/log-parameter", json!({"run_id": run_id, "key": "depth", "value": "6"})).await;
    assert_eq!((status, changed["error_code"].as_str()), (StatusCode::BAD_REQUEST, Some("INVALID_PARAMETER_VALUE")));
    let (status, updated) =
        post(&app, "runs/update", json!({"run_id": run_id, "status": "FINISHED", "end_time": 1_700_000_009_000_i64}))
            .await;
    assert_eq!((status, updated["run_info"]["status"].as_str()), (StatusCode::OK, Some("FINISHED")));

    // Read back: every value equals what was written.
    let (_, fetched) = get(&app, &format!("runs/get?run_id={run_id}")).await;
    let data = &fetched["run"]["data"];
    let find = |list: &Value, key: &str| {
        list.as_array().expect("list").iter().find(|entry| entry["key"] == key).cloned().expect("entry")
    };
    assert_eq!(find(&data["params"], "depth")["value"], "5");
    assert_eq!(find(&data["params"], "lr")["value"], "0.1");
    assert_eq!(find(&data["metrics"], "loss")["value"], json!(1.0 / 3.0));
    assert_eq!(find(&data["metrics"], "loss")["step"], 2);
    assert_eq!(find(&data["metrics"], "nan_metric")["value"], "NaN");
    assert_eq!(find(&data["tags"], "owner")["value"], "risk");
    assert_eq!(fetched["run"]["info"]["end_time"], 1_700_000_009_000_i64);
    let (_, history) = get(&app, &format!("metrics/get-history?run_id={run_id}&metric_key=loss&max_results=2")).await;
    assert_eq!(history["metrics"].as_array().map(Vec::len), Some(2));
    let token = history["next_page_token"].as_str().expect("a second page");
    let (_, rest) =
        get(&app, &format!("metrics/get-history?run_id={run_id}&metric_key=loss&max_results=2&page_token={token}"))
            .await;
    assert_eq!(rest["metrics"][0]["step"], 2);
    assert!(rest.get("next_page_token").is_none());

    // delete-tag, delete and restore.
    assert_eq!(post(&app, "runs/delete-tag", json!({"run_id": run_id, "key": "owner"})).await.0, StatusCode::OK);
    assert_eq!(post(&app, "runs/delete", json!({"run_id": run_id})).await.0, StatusCode::OK);
    let (_, deleted) = get(&app, &format!("runs/get?run_id={run_id}")).await;
    assert_eq!(deleted["run"]["info"]["lifecycle_stage"], "deleted");
    let (status, _) =
        post(&app, "runs/log-metric", json!({"run_id": run_id, "key": "late", "value": 1, "timestamp": 1})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(post(&app, "runs/restore", json!({"run_id": run_id})).await.0, StatusCode::OK);
}

#[tokio::test]
async fn search_runs_filters_orders_and_paginates() {
    let app = app();
    for (index, (model, rmse)) in [("gbdt", 0.5), ("gbdt", 0.2), ("linear", 0.9), ("gbdt", 0.7)].into_iter().enumerate()
    {
        let (_, run) = post(&app, "runs/create", json!({"experiment_id": "0", "start_time": 1_000 + index})).await;
        let run_id = run["run"]["info"]["run_id"].as_str().expect("id").to_string();
        let batch = json!({"run_id": run_id, "metrics": [{"key": "rmse", "value": rmse, "timestamp": 1, "step": 0}], "params": [{"key": "model", "value": model}]});
        assert_eq!(post(&app, "runs/log-batch", batch).await.0, StatusCode::OK);
    }
    let search = json!({"experiment_ids": ["0"], "filter": "params.model = 'gbdt' and metrics.rmse < 0.6", "order_by": ["metrics.rmse ASC"]});
    let (status, found) = post(&app, "runs/search", search).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    let rmses: Vec<f64> = found["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .map(|run| run["data"]["metrics"][0]["value"].as_f64().expect("rmse"))
        .collect();
    assert_eq!(rmses, [0.2, 0.5]);
    let (_, first_page) = post(&app, "runs/search", json!({"experiment_ids": ["0"], "max_results": 3})).await;
    assert_eq!(first_page["runs"].as_array().map(Vec::len), Some(3));
    let token = first_page["next_page_token"].as_str().expect("more");
    let (_, second_page) =
        post(&app, "runs/search", json!({"experiment_ids": ["0"], "max_results": 3, "page_token": token})).await;
    assert_eq!(second_page["runs"].as_array().map(Vec::len), Some(1));
    let (status, error) = post(&app, "runs/search", json!({"experiment_ids": ["0"], "filter": "metrics.rmse <"})).await;
    assert_eq!((status, error["error_code"].as_str()), (StatusCode::BAD_REQUEST, Some("INVALID_PARAMETER_VALUE")));
    let (_, experiments) =
        post(&app, "experiments/search", json!({"max_results": 10, "filter": "name = 'Default'"})).await;
    assert_eq!(experiments["experiments"][0]["experiment_id"], "0");
}

#[tokio::test]
async fn batch_limits_and_malformed_requests_are_rejected_and_change_nothing() {
    let app = app();
    let (_, run) = post(&app, "runs/create", json!({"experiment_id": "0"})).await;
    let run_id = run["run"]["info"]["run_id"].as_str().expect("id").to_string();
    let too_many: Vec<Value> = (0..101).map(|index| json!({"key": format!("p{index}"), "value": "x"})).collect();
    let (status, error) = post(&app, "runs/log-batch", json!({"run_id": run_id, "params": too_many})).await;
    assert_eq!((status, error["error_code"].as_str()), (StatusCode::BAD_REQUEST, Some("INVALID_PARAMETER_VALUE")));
    let long_value = "v".repeat(6001);
    let (status, _) =
        post(&app, "runs/log-parameter", json!({"run_id": run_id, "key": "long", "value": long_value})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    for key in ["../escape", "", "a/./b"] {
        let (status, _) = post(&app, "runs/set-tag", json!({"run_id": run_id, "key": key, "value": "x"})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{key}");
    }
    let (status, _) = call(&app, Method::POST, "/api/2.0/mlflow/runs/log-batch", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "missing run_id");
    // A point without a timestamp could not be ordered against the others: MLflow refuses it.
    let untimed = json!({"run_id": run_id, "metrics": [{"key": "mae", "value": 1, "timestamp": 5}, {"key": "mae", "value": 2.5}]});
    let (status, error) = post(&app, "runs/log-batch", untimed).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("Missing value for required parameter 'metrics[1].timestamp'"),
        "{error}"
    );
    let (status, error) = post(&app, "runs/log-metric", json!({"run_id": run_id, "key": "mae", "value": 1})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error["message"].as_str().unwrap_or_default().starts_with("Missing value for required parameter 'timestamp'"),
        "{error}"
    );
    let request = Request::builder()
        .method(Method::POST)
        .uri("/api/2.0/mlflow/runs/log-metric")
        .body(Body::from("{not json"))
        .expect("request");
    assert_eq!(app.clone().oneshot(request).await.expect("response").status(), StatusCode::BAD_REQUEST);
    let (_, unchanged) = get(&app, &format!("runs/get?run_id={run_id}")).await;
    assert_eq!(unchanged["run"]["data"]["params"], json!([]));
    let (status, missing) = get(&app, "runs/get?run_id=nope").await;
    assert_eq!((status, missing["error_code"].as_str()), (StatusCode::NOT_FOUND, Some("RESOURCE_DOES_NOT_EXIST")));
    let (status, unknown) = get(&app, "scorers/list?experiment_id=0").await;
    assert_eq!((status, unknown["error_code"].as_str()), (StatusCode::NOT_FOUND, Some("ENDPOINT_NOT_FOUND")));
}

#[tokio::test]
async fn registry_versions_aliases_and_their_errors() {
    let app = app();
    let (status, created) =
        post(&app, "registered-models/create", json!({"name": "fraud", "description": "card fraud"})).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    assert_eq!(created["registered_model"]["description"], "card fraud");
    let (status, again) = post(&app, "registered-models/create", json!({"name": "fraud"})).await;
    assert_eq!((status, again["error_code"].as_str()), (StatusCode::BAD_REQUEST, Some("RESOURCE_ALREADY_EXISTS")));
    let (status, version) = post(
        &app,
        "model-versions/create",
        json!({"name": "fraud", "source": "mlflow-artifacts:/0/r/artifacts/model", "run_id": "r"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{version}");
    assert_eq!(
        (version["model_version"]["version"].as_str(), version["model_version"]["status"].as_str()),
        (Some("1"), Some("READY"))
    );
    let (status, missing) = post(&app, "model-versions/create", json!({"name": "nope", "source": "s"})).await;
    assert_eq!((status, missing["error_code"].as_str()), (StatusCode::NOT_FOUND, Some("RESOURCE_DOES_NOT_EXIST")));
    let (status, _) =
        post(&app, "registered-models/alias", json!({"name": "fraud", "alias": "champion", "version": "7"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "an alias needs an existing version");
    assert_eq!(
        post(&app, "registered-models/alias", json!({"name": "fraud", "alias": "champion", "version": "1"})).await.0,
        StatusCode::OK
    );
    let (_, by_alias) = get(&app, "registered-models/alias?name=fraud&alias=champion").await;
    assert_eq!(by_alias["model_version"]["aliases"], json!(["champion"]));
    let (_, model) = get(&app, "registered-models/get?name=fraud").await;
    assert_eq!(model["registered_model"]["aliases"], json!([{"alias": "champion", "version": "1"}]));
    assert_eq!(model["registered_model"]["latest_versions"][0]["version"], "1");
    let (status, deleted) = call(
        &app,
        Method::DELETE,
        "/api/2.0/mlflow/registered-models/alias",
        Some(json!({"name": "fraud", "alias": "champion"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    let (status, _) = get(&app, "registered-models/alias?name=fraud&alias=champion").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, found) = get(&app, "model-versions/search?filter=name%3D%27fraud%27").await;
    assert_eq!(found["model_versions"].as_array().map(Vec::len), Some(1));
}
