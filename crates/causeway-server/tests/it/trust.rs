//! A control plane you can trust: who answers follows the registry whoever changes it; artifacts
//! cannot corrupt; the server refuses what a trusted server refuses. Every request goes through
//! the whole assembled server (`app::build`), layers included.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use causeway_models::{FeatureKind, FeatureSpec, GbdtModel, Model, ModelArtifact, Node, Signature, Tree};
use causeway_monitor::PredictionLog;
use causeway_server::access::AccessPolicy;
use causeway_server::app::{ServerParts, build};
use causeway_serving::Engine;
use causeway_store::{BlobStore, MetaStore, Rollout, RolloutChange, Scope};
use causeway_types::{CHAMPION, EventKind, ManualClock, ModelVersionRecord};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

/// A server on a fresh store, with a data plane, as `causeway server` assembles it.
pub(crate) struct Server {
    pub(crate) app: Router,
    meta: Arc<MetaStore>,
    pub(crate) blobs: BlobStore,
    engine: Arc<Engine>,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) _directory: tempfile::TempDir,
}

/// One answer: status, headers and the body as JSON (or as text under `"text"`).
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: axum::http::HeaderMap,
    pub(crate) body: Value,
}

impl Server {
    pub(crate) fn new(require_tokens: bool) -> Self {
        Self::with_direct_artifacts(require_tokens, false)
    }

    /// A server whose new experiments keep their artifacts in `<tempdir>/direct`, which clients
    /// write themselves (`--default-artifact-root`), when `direct` is set.
    pub(crate) fn with_direct_artifacts(require_tokens: bool, direct: bool) -> Self {
        let directory = tempfile::tempdir().expect("tempdir");
        let direct_artifacts = direct.then(|| {
            let root = directory.path().join("direct");
            causeway_server::mlflow::DirectArtifacts {
                uri: format!("file://{}", root.display()),
                blobs: BlobStore::open(&root).expect("direct blobs"),
            }
        });
        let meta = Arc::new(MetaStore::open(&directory.path().join("meta.db")).expect("meta"));
        let blobs = BlobStore::open(directory.path().join("artifacts")).expect("blobs");
        let clock = Arc::new(ManualClock::new(1_700_000_000_000));
        let log = PredictionLog::start(blobs.clone(), 100, 10);
        let engine = Arc::new(Engine::new(meta.clone(), blobs.clone(), None, clock.clone(), log));
        let bound = SocketAddr::from(([127, 0, 0, 1], 5000));
        let app = build(ServerParts {
            meta: meta.clone(),
            blobs: blobs.clone(),
            clock: clock.clone(),
            engine: Some(engine.clone()),
            tracking: true,
            require_tokens,
            access: AccessPolicy::new(bound, Vec::new(), Vec::new()),
            public_url: "http://causeway.internal:5000".into(),
            tracking_options: causeway_server::mlflow::TrackingOptions { direct_artifacts, source_pattern: None },
            ui: None,
            gateway: None,
        });
        Self { app, meta, blobs, engine, clock, _directory: directory }
    }

    pub(crate) async fn send(&self, request: Request<Body>) -> Answer {
        let response = self.app.clone().oneshot(request).await.expect("response");
        let (status, headers) = (response.status(), response.headers().clone());
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| json!({"text": String::from_utf8_lossy(&bytes).to_string()}));
        Answer { status, headers, body }
    }

    pub(crate) async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "127.0.0.1:5000")
            .header("content-type", "application/json")
            .body(body.map_or_else(Body::empty, |body| Body::from(body.to_string())))
            .expect("request");
        self.send(request).await
    }

    pub(crate) async fn mlflow(&self, method: Method, path: &str, body: Value) -> Answer {
        self.call(method, &format!("/api/2.0/mlflow/{path}"), Some(body)).await
    }

    /// Registers a one-tree model answering `leaf` for x > 0.
    fn register(&self, leaf: f64) -> u32 {
        let tree = Tree {
            nodes: vec![
                Node::Split { feature: 0, threshold: 0.0, left: 1, right: 2, missing_left: true },
                Node::Leaf { value: -leaf },
                Node::Leaf { value: leaf },
            ],
        };
        let artifact = ModelArtifact::new(
            Model::Gbdt(GbdtModel::new(0.0, vec![tree])),
            Signature { features: vec![FeatureSpec { name: "x".into(), kind: FeatureKind::Numeric, nullable: true }] },
            0.5,
            BTreeMap::new(),
        )
        .expect("artifact");
        let key = format!("models/m/{leaf}.json");
        self.blobs.put(&key, &artifact.to_bytes().expect("bytes")).expect("put");
        let record = ModelVersionRecord {
            model: "m".into(),
            version: 0,
            run_id: "run".into(),
            dataset: "d@v".into(),
            artifact_key: key,
            flavor: "gbdt".into(),
            created_ms: 0,
            metrics: BTreeMap::new(),
        };
        self.meta.register_version(&record, "test").expect("register").version
    }

    /// The version that answers an inference request now (after the engine follows the store).
    async fn answering(&self) -> Option<String> {
        self.engine.refresh().expect("refresh");
        let request = json!({"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [1.0]}]});
        let answer = self.call(Method::POST, "/v2/models/m/infer", Some(request)).await;
        (answer.status == StatusCode::OK).then(|| answer.body["model_version"].as_str().unwrap_or("?").to_string())
    }
}

#[tokio::test]
async fn who_answers_follows_the_registry_whoever_changes_it() {
    let server = Server::new(false);
    let (first, second) = (server.register(1.0), server.register(2.0));
    // The loop promotes v2 after a rollout.
    for change in [
        RolloutChange::Champion(first),
        RolloutChange::Challenger { version: second, mode: causeway_types::RolloutMode::Canary { share: 0.5 } },
        RolloutChange::Champion(second),
    ] {
        let rollout = Rollout { model: "m", change, expected_generation: None, actor: "loop", at_ms: 1, reason: "" };
        server.meta.apply_rollout(&rollout).expect("rollout");
    }
    assert_eq!(server.answering().await.as_deref(), Some("2"));

    // MLflow's set_registered_model_alias moves what answers, not only the alias.
    let moved = server
        .mlflow(Method::POST, "registered-models/alias", json!({"name": "m", "alias": "champion", "version": "1"}))
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.body);
    assert_eq!(server.answering().await.as_deref(), Some("1"));
    let audit = server.meta.events(Some(EventKind::Audit)).expect("events");
    assert!(audit.iter().any(|event| event.message.contains("traffic of m: champion v1")), "{audit:?}");

    // Deleting the champion alias stops inference (as Triton unloads what was removed)...
    let removed =
        server.call(Method::DELETE, "/api/2.0/mlflow/registered-models/alias?name=m&alias=champion", None).await;
    assert_eq!(removed.status, StatusCode::OK, "{}", removed.body);
    assert_eq!(server.answering().await, None);
    // ...and so does deleting the champion version, the same now as after a restart.
    server.meta.set_alias("m", CHAMPION, second, "test", 2, "").expect("alias");
    assert_eq!(server.answering().await.as_deref(), Some("2"));
    let deleted = server.mlflow(Method::DELETE, "model-versions/delete", json!({"name": "m", "version": "2"})).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    assert_eq!(server.answering().await, None);
    assert_eq!(server.meta.serving_policy("m").expect("policy"), None);
    // Deleting the registered model stops it too.
    server.meta.set_alias("m", CHAMPION, first, "test", 3, "").expect("alias");
    assert_eq!(server.answering().await.as_deref(), Some("1"));
    assert_eq!(
        server.mlflow(Method::DELETE, "registered-models/delete", json!({"name": "m"})).await.status,
        StatusCode::OK
    );
    assert_eq!(server.answering().await, None);
}

#[tokio::test]
async fn cross_site_writes_and_foreign_hosts_are_refused() {
    let server = Server::new(false);
    let (first, _) = (server.register(1.0), server.register(2.0));
    server.meta.set_alias("m", CHAMPION, first, "test", 1, "").expect("alias");
    let forged = |origin: &str, host: &str| {
        Request::builder()
            .method(Method::POST)
            .uri("/api/2.0/mlflow/registered-models/alias")
            .header("host", host)
            .header("origin", origin)
            .header("content-type", "text/plain")
            .body(Body::from(json!({"name": "m", "alias": "champion", "version": "2"}).to_string()))
            .expect("request")
    };
    // A page on another site posting a "simple" request (no preflight) is refused.
    let refused = server.send(forged("http://evil.example", "127.0.0.1:5000")).await;
    assert_eq!(
        (refused.status, refused.body["error_code"].as_str()),
        (StatusCode::FORBIDDEN, Some("PERMISSION_DENIED"))
    );
    assert_eq!(server.meta.alias("m", CHAMPION).expect("alias"), Some(first), "the champion did not move");
    // DNS rebinding: the page's own origin, but a Host this server does not answer to.
    let rebound = server.send(forged("http://evil.example:5000", "evil.example:5000")).await;
    assert_eq!(rebound.status, StatusCode::FORBIDDEN);
    let read = Request::builder().uri("/api/2.0/mlflow/experiments/get?experiment_id=0").header("host", "evil.example");
    assert_eq!(server.send(read.body(Body::empty()).expect("request")).await.status, StatusCode::FORBIDDEN);
    assert_eq!(server.meta.alias("m", CHAMPION).expect("alias"), Some(first));
    // Loopback pages (a notebook, a local UI) may write, and get their CORS answer.
    let local = server.send(forged("http://localhost:8888", "127.0.0.1:5000")).await;
    assert_eq!(local.status, StatusCode::OK, "{}", local.body);
    assert_eq!(
        local.headers.get("access-control-allow-origin").map(|value| value.as_bytes()),
        Some(&b"http://localhost:8888"[..])
    );
    let preflight = Request::builder()
        .method(Method::OPTIONS)
        .uri("/api/2.0/mlflow/runs/create")
        .header("host", "127.0.0.1:5000")
        .header("origin", "http://localhost:8888")
        .body(Body::empty())
        .expect("request");
    assert_eq!(server.send(preflight).await.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn scopes_follow_what_a_request_does_and_every_registry_change_is_audited() {
    let server = Server::new(true);
    let (_, read) = server.meta.create_token("viewer", Scope::Read, 1).expect("token");
    let (_, write) = server.meta.create_token("ci", Scope::Write, 1).expect("token");
    let call = |method: Method, path: &str, token: &str, body: Value| {
        Request::builder()
            .method(method)
            .uri(format!("/api/2.0/mlflow/{path}"))
            .header("host", "127.0.0.1:5000")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::from(body.to_string()))
            .expect("request")
    };
    // Searches POST their filters but only read.
    for path in ["runs/search", "experiments/search", "logged-models/search", "registered-models/search"] {
        let body = json!({"experiment_ids": ["0"], "max_results": 10});
        let answer = server.send(call(Method::POST, path, &read, body)).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.body);
    }
    // A training job with a write token registers its model; moving an alias takes admin.
    for (path, body) in [
        ("registered-models/create", json!({"name": "fraud"})),
        ("registered-models/update", json!({"name": "fraud", "description": "card fraud"})),
        ("registered-models/set-tag", json!({"name": "fraud", "key": "team", "value": "risk"})),
        ("model-versions/create", json!({"name": "fraud", "source": "mlflow-artifacts:/0/r/artifacts/model"})),
        ("model-versions/set-tag", json!({"name": "fraud", "version": "1", "key": "ok", "value": "yes"})),
    ] {
        let method = if path.ends_with("update") { Method::PATCH } else { Method::POST };
        let answer = server.send(call(method, path, &write, body)).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.body);
    }
    // A server that requires tokens is reached by the names its clients use (a rebound page has
    // no token to send).
    let by_service_name = Request::builder()
        .uri("/api/2.0/mlflow/experiments/get?experiment_id=0")
        .header("host", "mlflow.models.svc.cluster.local")
        .header("authorization", format!("Bearer {read}"))
        .body(Body::empty())
        .expect("request");
    assert_eq!(server.send(by_service_name).await.status, StatusCode::OK);
    let latest =
        server.send(call(Method::POST, "registered-models/get-latest-versions", &read, json!({"name": "fraud"}))).await;
    assert_eq!(latest.status, StatusCode::OK, "{}", latest.body);
    let alias = json!({"name": "fraud", "alias": "champion", "version": "1"});
    assert_eq!(
        server.send(call(Method::POST, "registered-models/alias", &write, alias.clone())).await.status,
        StatusCode::FORBIDDEN
    );
    // Other spellings of the route (the web UI's prefix, doubled slashes) need the same scope.
    for spelling in ["/ajax-api/2.0/mlflow/registered-models/alias", "//api/2.0//mlflow/registered-models/alias"] {
        let mut request = call(Method::POST, "registered-models/alias", &write, alias.clone());
        *request.uri_mut() = spelling.parse().expect("uri");
        assert_eq!(server.send(request).await.status, StatusCode::FORBIDDEN, "{spelling}");
    }
    for (path, body) in [
        ("model-versions/update", json!({"name": "fraud", "version": "1", "description": "first"})),
        ("model-versions/delete-tag", json!({"name": "fraud", "version": "1", "key": "ok"})),
        ("registered-models/delete-tag", json!({"name": "fraud", "key": "team"})),
    ] {
        let method = if path.ends_with("update") { Method::PATCH } else { Method::DELETE };
        let answer = server.send(call(method, path, &write, body)).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.body);
    }
    let audit: Vec<String> = server
        .meta
        .events(Some(EventKind::Audit))
        .expect("events")
        .into_iter()
        .filter(|event| event.actor == "ci")
        .map(|event| event.message)
        .collect();
    for expected in [
        "created registered model fraud",
        "changed the description of fraud",
        "set tag team of fraud",
        "registered fraud version 1",
        "set tag ok of fraud version 1",
        "changed the description of fraud version 1",
        "deleted tag ok of fraud version 1",
        "deleted tag team of fraud",
    ] {
        assert!(audit.iter().any(|message| message.starts_with(expected)), "{expected} not in {audit:?}");
    }
}

#[tokio::test]
async fn bad_input_is_a_4xx_in_the_protocols_shape_without_server_paths() {
    let server = Server::new(false);
    let nul = server.call(Method::GET, "/api/2.0/mlflow/runs/get?run_id=a%00b", None).await;
    assert_eq!(
        (nul.status, nul.body["error_code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("INVALID_PARAMETER_VALUE"))
    );
    let nul_body = server.mlflow(Method::POST, "experiments/create", json!({"name": "a\u{0}b"})).await;
    // Tags and parameters are strings, as MLflow requires.
    let run = server.mlflow(Method::POST, "runs/create", json!({"experiment_id": "0"})).await;
    let run_id = run.body["run"]["info"]["run_id"].as_str().unwrap_or_default().to_string();
    let numeric_tag =
        server.mlflow(Method::POST, "runs/set-tag", json!({"run_id": run_id, "key": "k", "value": 31})).await;
    assert_eq!(numeric_tag.status, StatusCode::BAD_REQUEST, "{}", numeric_tag.body);
    assert_eq!(nul_body.status, StatusCode::BAD_REQUEST, "{}", nul_body.body);

    let upload = |path: String, bytes: &'static [u8]| {
        Request::builder()
            .method(Method::PUT)
            .uri(format!("/api/2.0/mlflow-artifacts/artifacts/{path}"))
            .header("host", "127.0.0.1:5000")
            .body(Body::from(bytes))
            .expect("request")
    };
    let long = server.send(upload(format!("0/run/{}", "a".repeat(300)), b"x")).await;
    assert_eq!(long.status, StatusCode::BAD_REQUEST, "{}", long.body);
    assert_eq!(server.send(upload("0/run/dir/file.txt".into(), b"x")).await.status, StatusCode::OK);
    let onto_directory = server.send(upload("0/run/dir".into(), b"y")).await;
    assert_eq!(onto_directory.status, StatusCode::BAD_REQUEST, "{}", onto_directory.body);
    for answer in [&long, &onto_directory] {
        let message = answer.body["message"].as_str().unwrap_or_default();
        assert!(!message.contains(&server._directory.path().display().to_string()), "a server path leaked: {message}");
    }

    // axum's own refusals answer JSON in the protocol's shape.
    let wrong_method = server.call(Method::GET, "/api/2.0/mlflow/runs/create", None).await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(wrong_method.body["error_code"].is_string(), "{}", wrong_method.body);
    let huge = Request::builder()
        .method(Method::POST)
        .uri("/v2/models/m/infer")
        .header("host", "127.0.0.1:5000")
        .body(Body::from(vec![b' '; causeway_server::MAX_BODY_BYTES + 1]))
        .expect("request");
    let too_large = server.send(huge).await;
    assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(too_large.body["error"].is_string(), "{}", too_large.body);
    let bad_utf8 = server.call(Method::GET, "/v2/models/%FF/ready", None).await;
    assert!(bad_utf8.status.is_client_error() && bad_utf8.body["error"].is_string(), "{}", bad_utf8.body);
    // Type errors name the parameter, as MLflow's messages do.
    let typed = server.mlflow(Method::POST, "experiments/create", json!({"name": 123})).await;
    let message = typed.body["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("Invalid value 123 for parameter 'name' supplied"), "{message}");
    let unknown = server.call(Method::GET, "/api/3.0/mlflow/nothing", None).await;
    assert_eq!(
        (unknown.status, unknown.body["error_code"].as_str()),
        (StatusCode::NOT_FOUND, Some("ENDPOINT_NOT_FOUND"))
    );
}

#[tokio::test]
async fn concurrent_uploads_store_exactly_the_bytes_each_sent() {
    let server = Arc::new(Server::new(false));
    let mut uploads = Vec::new();
    for round in 0..12 {
        for (name, bytes) in [
            ("model.json", format!("json {round} ").repeat(5_000)),
            ("model.txt", format!("txt {round} ").repeat(5_000)),
        ] {
            let server = server.clone();
            uploads.push(tokio::spawn(async move {
                let request = Request::builder()
                    .method(Method::PUT)
                    .uri(format!("/api/2.0/mlflow-artifacts/artifacts/0/rc{round}/{name}"))
                    .header("host", "127.0.0.1:5000")
                    .body(Body::from(bytes))
                    .expect("request");
                server.send(request).await.status
            }));
        }
    }
    // Two writers of one key: the last one wins whole.
    for writer in ["a", "b"] {
        let server = server.clone();
        uploads.push(tokio::spawn(async move {
            let request = Request::builder()
                .method(Method::PUT)
                .uri("/api/2.0/mlflow-artifacts/artifacts/0/shared/model.bin")
                .header("host", "127.0.0.1:5000")
                .body(Body::from(writer.repeat(100_000)))
                .expect("request");
            server.send(request).await.status
        }));
    }
    for upload in uploads {
        assert_eq!(upload.await.expect("task"), StatusCode::OK);
    }
    for round in 0..12 {
        for (name, prefix) in [("model.json", "json"), ("model.txt", "txt")] {
            let stored = server.blobs.get(&format!("mlflow-artifacts/0/rc{round}/{name}")).expect("stored");
            assert_eq!(stored, format!("{prefix} {round} ").repeat(5_000).into_bytes(), "rc{round}/{name}");
        }
    }
    let shared = server.blobs.get("mlflow-artifacts/0/shared/model.bin").expect("stored");
    assert!(shared == "a".repeat(100_000).into_bytes() || shared == "b".repeat(100_000).into_bytes());
    let listed = server.call(Method::GET, "/api/2.0/mlflow-artifacts/artifacts?path=0/shared", None).await;
    assert_eq!(listed.body["files"], json!([{"path": "model.bin", "is_dir": false, "file_size": 100_000}]));
}

#[tokio::test]
async fn multipart_uploads_are_checked_streamed_and_expire() {
    let server = Server::new(false);
    let create = |parts: u64| json!({"path": "/local/big.bin", "num_parts": parts});
    let started =
        server.call(Method::POST, "/api/2.0/mlflow-artifacts/mpu/create/0/run/artifacts", Some(create(2))).await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.body);
    let upload_id = started.body["upload_id"].as_str().expect("id").to_string();
    let url = started.body["credentials"][0]["url"].as_str().expect("url").to_string();
    assert!(url.starts_with("http://causeway.internal:5000/"), "part URLs come from the server's own URL: {url}");
    let put_part = |part: u64, bytes: &'static [u8]| {
        Request::builder()
            .method(Method::PUT)
            .uri(format!("/api/2.0/mlflow-artifacts/mpu/upload/{upload_id}/{part}"))
            .header("host", "127.0.0.1:5000")
            .body(Body::from(bytes))
            .expect("request")
    };
    assert_eq!(server.send(put_part(3, b"beyond")).await.status, StatusCode::BAD_REQUEST, "part beyond num_parts");
    let first = server.send(put_part(1, b"hello ")).await;
    let second = server.send(put_part(2, b"world")).await;
    let etag = |answer: &Answer| {
        answer.headers.get("etag").and_then(|value| value.to_str().ok()).unwrap_or_default().to_string()
    };
    let (first_etag, second_etag) = (etag(&first), etag(&second));
    let complete = |parts: Value| json!({"path": "/local/big.bin", "upload_id": upload_id, "parts": parts});
    let path = "/api/2.0/mlflow-artifacts/mpu/complete/0/run/artifacts";
    for refused in [
        json!([]),
        json!([{"part_number": 1, "etag": ""}, {"part_number": 2, "etag": second_etag}]),
        json!([{"part_number": 1, "etag": first_etag}]),
        json!([{"part_number": 1, "etag": first_etag}, {"part_number": 3, "etag": second_etag}]),
    ] {
        let answer = server.call(Method::POST, path, Some(complete(refused.clone()))).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{refused}: {}", answer.body);
    }
    let parts = json!([{"part_number": 1, "etag": first_etag}, {"part_number": 2, "etag": second_etag}]);
    let done = server.call(Method::POST, path, Some(complete(parts))).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert_eq!(server.blobs.get("mlflow-artifacts/0/run/artifacts/big.bin").expect("joined"), b"hello world");

    // An upload left open past its lifetime stops working.
    let stale =
        server.call(Method::POST, "/api/2.0/mlflow-artifacts/mpu/create/0/run/artifacts", Some(create(1))).await;
    let stale_id = stale.body["upload_id"].as_str().expect("id").to_string();
    server.clock.advance(causeway_server::artifacts::UPLOAD_LIFETIME_MS + 1);
    let late = Request::builder()
        .method(Method::PUT)
        .uri(format!("/api/2.0/mlflow-artifacts/mpu/upload/{stale_id}/1"))
        .header("host", "127.0.0.1:5000")
        .body(Body::from("late"))
        .expect("request");
    assert_eq!(server.send(late).await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn registry_search_and_sources_behave_as_mlflow() {
    let server = Server::new(false);
    assert_eq!(
        server.mlflow(Method::POST, "registered-models/create", json!({"name": "fraud"})).await.status,
        StatusCode::OK
    );
    // The 3.x client's filter for searching models that are not prompts.
    let filter = "tag.`mlflow.prompt.is_prompt` != 'true'";
    let found = server
        .call(
            Method::GET,
            &format!(
                "/api/2.0/mlflow/registered-models/search?filter={}",
                filter
                    .replace(' ', "%20")
                    .replace('`', "%60")
                    .replace('\'', "%27")
                    .replace('!', "%21")
                    .replace('=', "%3D")
            ),
            None,
        )
        .await;
    assert_eq!(found.body["registered_models"][0]["name"], "fraud", "{}", found.body);
    for bad in [
        "mlflow-artifacts://host/models/../../../etc",
        "http://elsewhere.example/model",
        "mlflow-artifacts:/0/%2E%2E/x",
    ] {
        let answer =
            server.mlflow(Method::POST, "model-versions/create", json!({"name": "fraud", "source": bad})).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{bad}: {}", answer.body);
    }
    let source = "mlflow-artifacts:/0/r/artifacts/model";
    assert_eq!(
        server.mlflow(Method::POST, "model-versions/create", json!({"name": "fraud", "source": source})).await.status,
        StatusCode::OK
    );
    let by_source = server
        .mlflow(Method::POST, "model-versions/search", json!({"filter": format!("source_path = '{source}'")}))
        .await;
    assert_eq!(by_source.body["model_versions"][0]["version"], "1", "{}", by_source.body);
    // Only the prompt tag counts as different when absent; any other absent tag matches nothing.
    let other = server.mlflow(Method::POST, "registered-models/search", json!({"filter": "tag.team != 'x'"})).await;
    assert_eq!(other.body["registered_models"], json!([]), "{}", other.body);
    // MLflow's web UI calls the same API under /ajax-api/.
    let through_ui = server.call(Method::GET, "/ajax-api/2.0/mlflow/registered-models/get?name=fraud", None).await;
    assert_eq!(through_ui.body["registered_model"]["name"], "fraud", "{}", through_ui.body);
    // Unnamed logged models get distinct readable names.
    let mut names = std::collections::HashSet::new();
    for _ in 0..2 {
        let logged = server.mlflow(Method::POST, "logged-models", json!({"experiment_id": "0"})).await;
        names.insert(logged.body["model"]["info"]["name"].as_str().unwrap_or_default().to_string());
    }
    assert_eq!(names.len(), 2, "{names:?}");
}

#[tokio::test]
async fn every_answer_says_how_long_the_server_took() {
    let server = Server::new(true);
    for path in ["/health", "/api/2.0/mlflow/experiments/search", "/no/such/route"] {
        let answer = server.call(Method::GET, path, None).await;
        let timing = answer.headers.get("server-timing").and_then(|value| value.to_str().ok()).unwrap_or_default();
        let milliseconds: f64 = timing.strip_prefix("app;dur=").and_then(|value| value.parse().ok()).unwrap_or(-1.0);
        assert!(milliseconds >= 0.0, "{path} ({}) answered Server-Timing `{timing}`", answer.status);
    }
}
