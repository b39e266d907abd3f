//! Bearer tokens and scopes in front of the MLflow API.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use causeway_server::auth::{AuthConfig, authenticate};
use causeway_server::mlflow::{TrackingState, router};
use causeway_store::{MetaStore, Scope};
use causeway_types::{EventKind, ManualClock};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

async fn call(
    app: &Router,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(path).header("content-type", "application/json");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request.body(body.map_or_else(Body::empty, |body| Body::from(body.to_string()))).expect("request");
    let response = app.clone().oneshot(request).await.expect("response");
    let status = response.status();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn tokens_are_required_scoped_and_named_in_the_audit_log() {
    let meta = Arc::new(MetaStore::open_in_memory().expect("store"));
    let (_, read) = meta.create_token("viewer", Scope::Read, 1).expect("token");
    let (_, write) = meta.create_token("ci", Scope::Write, 1).expect("token");
    let (_, admin) = meta.create_token("ops", Scope::Admin, 1).expect("token");
    let app = router(TrackingState::new(meta.clone(), Arc::new(ManualClock::new(5)), None))
        .layer(axum::middleware::from_fn_with_state(AuthConfig { meta: meta.clone(), required: true }, authenticate));
    let get_default = "/api/2.0/mlflow/experiments/get?experiment_id=0";

    let (status, refused) = call(&app, Method::GET, get_default, None, None).await;
    assert_eq!((status, refused["error_code"].as_str()), (StatusCode::UNAUTHORIZED, Some("UNAUTHENTICATED")));
    assert_eq!(call(&app, Method::GET, get_default, Some("cw_forged"), None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(call(&app, Method::GET, get_default, Some(&read), None).await.0, StatusCode::OK);

    let create = json!({"name": "research"});
    let (status, denied) =
        call(&app, Method::POST, "/api/2.0/mlflow/experiments/create", Some(&read), Some(create.clone())).await;
    assert_eq!((status, denied["error_code"].as_str()), (StatusCode::FORBIDDEN, Some("PERMISSION_DENIED")));
    assert_eq!(
        call(&app, Method::POST, "/api/2.0/mlflow/experiments/create", Some(&write), Some(create)).await.0,
        StatusCode::OK
    );

    let model = json!({"name": "fraud"});
    assert_eq!(
        call(&app, Method::POST, "/api/2.0/mlflow/registered-models/create", Some(&read), Some(model.clone())).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(&app, Method::POST, "/api/2.0/mlflow/registered-models/create", Some(&admin), Some(model)).await.0,
        StatusCode::OK
    );
    let version = json!({"name": "fraud", "source": "mlflow-artifacts:/0/r/artifacts/model"});
    assert_eq!(
        call(&app, Method::POST, "/api/2.0/mlflow/model-versions/create", Some(&admin), Some(version)).await.0,
        StatusCode::OK
    );
    let alias = json!({"name": "fraud", "alias": "champion", "version": "1"});
    assert_eq!(
        call(&app, Method::POST, "/api/2.0/mlflow/registered-models/alias", Some(&write), Some(alias.clone())).await.0,
        StatusCode::FORBIDDEN,
        "moving who answers needs admin"
    );
    assert_eq!(
        call(&app, Method::POST, "/api/2.0/mlflow/registered-models/alias", Some(&admin), Some(alias)).await.0,
        StatusCode::OK
    );
    let audit = meta.events(Some(EventKind::Audit)).expect("events");
    assert!(
        audit.iter().any(|event| event.actor == "ops" && event.message.contains("fraud@champion -> version 1")),
        "{audit:#?}"
    );

    meta.revoke_token("ops").expect("revoke");
    assert_eq!(call(&app, Method::GET, get_default, Some(&admin), None).await.0, StatusCode::UNAUTHORIZED);
    assert_ne!(
        call(&app, Method::GET, "/v2/health/live", None, None).await.0,
        StatusCode::UNAUTHORIZED,
        "probes need no token"
    );
}

#[tokio::test]
async fn without_the_requirement_anonymous_calls_pass_but_bad_tokens_do_not() {
    let meta = Arc::new(MetaStore::open_in_memory().expect("store"));
    let app = router(TrackingState::new(meta.clone(), Arc::new(ManualClock::new(5)), None))
        .layer(axum::middleware::from_fn_with_state(AuthConfig { meta, required: false }, authenticate));
    assert_eq!(
        call(&app, Method::POST, "/api/2.0/mlflow/experiments/create", None, Some(json!({"name": "x"}))).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&app, Method::GET, "/api/2.0/mlflow/experiments/get?experiment_id=0", Some("cw_nope"), None).await.0,
        StatusCode::UNAUTHORIZED
    );
}
