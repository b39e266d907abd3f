//! `causeway serve` on a loopback socket, over the project the fraud demo left behind.

use causeway_data::synthetic::to_frame;
use causeway_demo::scenario::{DemoOptions, generator, record_request};
use causeway_features::offline::compute_features;
use causeway_models::{ModelArtifact, Predictor};
use causeway_types::FeatureValue;
use serde_json::{Value, json};

use crate::support::{Server, fraud_demo};

/// Scores records over HTTP and compares each score with offline scoring of the same row:
/// features from the stored dataset, point in time, and the artifact of the version that answered.
#[test]
fn served_record_scores_equal_offline_scores_and_bad_requests_do_not_hurt() {
    let run = fraud_demo();
    assert!(run.success, "{}", run.stdout);
    let server = Server::start(&run.dir);

    assert_eq!(server.request("GET", "/v2/health/live", None).0, 200);
    assert_eq!(server.request("GET", "/v2/health/ready", None).0, 200);
    assert_eq!(server.request("GET", "/v2/models/fraud/ready", None).0, 200);
    assert_eq!(server.request("GET", "/v2/models/nope/ready", None).0, 404);
    let (status, metadata) = server.json("GET", "/v2/models/fraud", &Value::Null);
    assert_eq!(status, 200, "{metadata}");
    let inputs: Vec<&str> =
        metadata["inputs"].as_array().expect("inputs").iter().filter_map(|input| input["name"].as_str()).collect();
    assert!(inputs.contains(&"amount") && inputs.contains(&"customer_mean_amount_30d"), "{inputs:?}");

    // Offline side: the stored data, the feature set, the registry.
    let stored = crate::support::StoredProject::open(&run.dir);
    let spec = stored.config.features().expect("features").clone();
    let (meta, blobs, history) = (&stored.meta, &stored.blobs, &stored.data);
    let options = DemoOptions::default();
    let next_day = generator(&options).day(options.last_day());

    for (index, transaction) in next_day.iter().take(25).enumerate() {
        // An invalid request first: the server answers 400 naming the field, then keeps serving.
        let mut broken = record_request(transaction);
        broken.fields.remove("amount");
        let (status, error) =
            server.json("POST", "/v1/models/fraud/score", &serde_json::to_value(&broken).expect("json"));
        assert_eq!(status, 400, "{error}");
        assert!(error["error"].as_str().unwrap_or_default().contains("`amount`"), "{error}");

        let request = record_request(transaction);
        let (status, decision) =
            server.json("POST", "/v1/models/fraud/score", &serde_json::to_value(&request).expect("json"));
        assert_eq!(status, 200, "{decision}");
        let version = decision["version"].as_u64().expect("version") as u32;
        let served = decision["score"].as_f64().expect("score");

        let row = to_frame(std::slice::from_ref(transaction), false).expect("row");
        let values = compute_features(&spec, &row, history).expect("offline features").remove(0);
        let record = meta.model_version("fraud", version).expect("version");
        let artifact =
            ModelArtifact::from_bytes(&blobs.get(&record.artifact_key).expect("artifact")).expect("artifact");
        let offline = artifact.model.predict_row(&artifact.signature.encode(&values).expect("encode"));
        assert_eq!(served, offline, "transaction {index}: served {served} offline {offline}");

        // The same features as OIP tensors, one per input, give the same score.
        let names = spec.feature_names();
        let tensors: Vec<Value> = names
            .iter()
            .zip(&values)
            .map(|(name, value)| match value {
                FeatureValue::Text(text) => json!({"name": name, "shape": [1], "datatype": "BYTES", "data": [text]}),
                FeatureValue::Number(number) => {
                    json!({"name": name, "shape": [1], "datatype": "FP64", "data": [number]})
                }
                FeatureValue::Missing => json!({"name": name, "shape": [1], "datatype": "FP64", "data": [null]}),
            })
            .collect();
        let path = format!("/v2/models/fraud/versions/{version}/infer");
        let (status, answer) = server.json("POST", &path, &json!({"id": format!("oip-{index}"), "inputs": tensors}));
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["outputs"][0]["data"][0].as_f64(), Some(offline), "{answer}");
        assert_eq!(answer["model_version"].as_str(), Some(version.to_string().as_str()));
    }

    // Malformed tensors and bodies are 4xx with a message; the server keeps answering.
    let (status, error) = server.json(
        "POST",
        "/v2/models/fraud/infer",
        &json!({"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]}),
    );
    assert_eq!(status, 400, "{error}");
    assert!(error["error"].as_str().unwrap_or_default().contains("input `input`"), "{error}");
    assert_eq!(server.request("POST", "/v2/models/fraud/infer", Some("{not json")).0, 400);
    let oversized = "x".repeat(9 * 1024 * 1024);
    assert_eq!(server.request("POST", "/v2/models/fraud/infer", Some(&oversized)).0, 413);
    assert_eq!(server.request("GET", "/v2/health/ready", None).0, 200);

    let (status, stored) = server.json(
        "POST",
        "/v1/labels",
        &json!({"labels": [{"request_id": next_day[0].transaction_id, "label": 1.0}]}),
    );
    assert_eq!((status, stored["stored"].as_u64()), (200, Some(1)), "{stored}");

    // Requests naming models that are not deployed share one label instead of growing `/metrics`
    // by a series per name.
    for index in 0..5 {
        let path = format!("/v2/models/no-such-model-{index}/infer");
        let (status, answer) = server.json("POST", &path, &json!({"inputs": []}));
        assert_eq!(status, 404, "{answer}");
    }

    let (status, metrics) = server.request("GET", "/metrics", None);
    assert_eq!(status, 200);
    assert!(!metrics.contains("no-such-model"), "{metrics}");
    assert!(
        metrics.contains(r#"causeway_prediction_errors_total{model="(not deployed)",endpoint="infer",code="#),
        "{metrics}"
    );
    for name in [
        "causeway_prediction_requests_total",
        "causeway_prediction_errors_total",
        "causeway_prediction_latency_seconds_bucket",
        "causeway_prediction_log_dropped_total",
    ] {
        assert!(metrics.contains(name), "{name} missing from:\n{metrics}");
    }
    assert!(metrics.contains("endpoint=\"score\""), "{metrics}");
}
