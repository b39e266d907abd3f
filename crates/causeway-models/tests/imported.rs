//! Imported models score exactly like their originals: `tests/models/make_fixtures.py` (pinned
//! XGBoost and LightGBM, in `.venv-models`) trains and saves models with the libraries' own
//! predictions, and every one is compared here.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used, reason = "tests fail loudly")]

use std::collections::BTreeMap;

use causeway_models::{CompiledEnsemble, Error, FeatureKind, ModelArtifact, ModelFormat, import_model};
use causeway_test_support::model_fixtures;
use causeway_types::FeatureValue;
use serde_json::Value;

/// Predictions may differ from the library's by this much (absolute, or relative above 1).
const TOLERANCE: f64 = 1e-6;

fn matrix(value: &Value) -> Vec<Vec<f64>> {
    value
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| row.as_array().expect("row").iter().map(|cell| cell.as_f64().unwrap_or(f64::NAN)).collect())
        .collect()
}

fn worst_difference(expected: &[Vec<f64>], actual: &[Vec<f64>]) -> f64 {
    assert_eq!(expected.len(), actual.len());
    expected
        .iter()
        .zip(actual)
        .flat_map(|(want, got)| {
            assert_eq!(want.len(), got.len(), "outputs per row");
            want.iter().zip(got).map(|(want, got)| (want - got).abs() / want.abs().max(1.0))
        })
        .fold(0.0, f64::max)
}

#[test]
fn imported_models_score_like_their_originals() {
    let (directory, document) = model_fixtures();
    let cases = document["cases"].as_array().expect("cases");
    assert!(cases.len() >= 24, "every case was generated");
    let mut report = Vec::new();
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let bytes = std::fs::read(directory.path().join(case["file"].as_str().expect("file"))).expect("model file");
        let imported = import_model(&bytes).unwrap_or_else(|error| panic!("{name}: {error}"));
        let rows = matrix(&case["rows"]);
        let outputs: Vec<Vec<f64>> = rows.iter().map(|row| imported.ensemble.predict(row)).collect();
        let margins: Vec<Vec<f64>> = rows.iter().map(|row| imported.ensemble.margins(row)).collect();
        let output_difference = worst_difference(&matrix(&case["output"]), &outputs);
        // onnxruntime gives no raw scores: ONNX cases compare outputs only.
        let margin_difference =
            if case["margin"].is_null() { 0.0 } else { worst_difference(&matrix(&case["margin"]), &margins) };
        // The compiled engine computes bit for bit what the reference evaluation computes, on any
        // number of threads, in whichever layout the model fits.
        let compiled = CompiledEnsemble::new(&imported.ensemble).expect("compiles");
        report.push(format!(
            "{name}: outputs {output_difference:.1e}, margins {margin_difference:.1e} ({} layout)",
            compiled.layout()
        ));
        let flat: Vec<f64> = rows.iter().flatten().copied().collect();
        for threads in [1, 2] {
            let mut scored = vec![0.0; rows.len() * compiled.outputs()];
            compiled.predict_into(&flat, &mut scored, threads).expect("scores");
            let reference: Vec<f64> = outputs.iter().flatten().copied().collect();
            let same = scored.iter().zip(&reference).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{name}: the compiled engine differs from the reference on {threads} thread(s)");
        }
        assert_eq!(compiled.predict_row(&rows[0]), outputs[0], "{name}: one row");
        // The artifact round trip (what serving loads) scores the same, infinite thresholds included.
        let artifact =
            imported.clone().into_artifact(0.5, BTreeMap::new()).unwrap_or_else(|error| panic!("{name}: {error}"));
        let loaded = ModelArtifact::from_bytes(&artifact.to_bytes().expect("bytes"))
            .unwrap_or_else(|error| panic!("{name}: the stored artifact does not load back: {error}"));
        let reloaded: Vec<f64> = loaded.model.predict_outputs(&rows);
        let reference: Vec<f64> = outputs.iter().flatten().copied().collect();
        assert!(
            reloaded.iter().zip(&reference).all(|(a, b)| a.to_bits() == b.to_bits()),
            "{name}: the loaded artifact scores differently"
        );
        // Files that name their categories publish them, and requests may send them as text.
        if let Some(categories) = case.get("categories").and_then(Value::as_object) {
            for (feature, expected) in categories {
                let spec = loaded.signature.features.iter().find(|spec| &spec.name == feature).expect("the feature");
                let expected: Vec<String> = expected
                    .as_array()
                    .expect("list")
                    .iter()
                    .map(|value| value.as_str().expect("text").to_string())
                    .collect();
                assert_eq!(spec.kind, FeatureKind::Categorical { vocabulary: expected }, "{name}: {feature}");
            }
            for (text_row, output) in case["text_rows"].as_array().expect("text rows").iter().zip(&outputs) {
                let values: Vec<FeatureValue> = text_row
                    .as_array()
                    .expect("row")
                    .iter()
                    .map(|cell| match cell {
                        Value::String(text) => FeatureValue::Text(text.clone()),
                        Value::Number(number) => FeatureValue::Number(number.as_f64().expect("number")),
                        _ => FeatureValue::Missing,
                    })
                    .collect();
                let encoded = loaded.signature.encode(&values).expect("encodes");
                assert_eq!(loaded.model.predict_outputs(&[encoded]), *output, "{name}: {text_row}");
            }
        }
        assert!(output_difference <= TOLERANCE, "{name}: outputs differ by {output_difference}\n{}", report.join("\n"));
        assert!(margin_difference <= TOLERANCE, "{name}: margins differ by {margin_difference}\n{}", report.join("\n"));
    }
    println!("largest differences from the original libraries:\n{}", report.join("\n"));
}

#[test]
fn formats_are_detected_and_unsupported_features_are_named() {
    let (directory, _) = model_fixtures();
    let read = |file: &str| std::fs::read(directory.path().join(file)).expect("file");
    assert_eq!(ModelFormat::detect(&read("xgb_binary.json")).expect("json"), ModelFormat::XgboostJson);
    assert_eq!(ModelFormat::detect(&read("xgb_binary_ubj.ubj")).expect("ubj"), ModelFormat::XgboostUbjson);
    assert_eq!(ModelFormat::detect(&read("lgb_binary.txt")).expect("txt"), ModelFormat::LightgbmText);
    assert_eq!(ModelFormat::detect(&read("onnx_xgboost.onnx")).expect("onnx"), ModelFormat::Onnx);
    let onnx = read("onnx_sklearn_gbc.onnx");
    for cut in [20, onnx.len() / 2, onnx.len() - 1] {
        assert!(import_model(&onnx[..cut]).is_err(), "onnx cut at {cut}");
    }
    assert!(matches!(ModelFormat::detect(b"\x07garbage"), Err(Error::Unsupported(_))));
    let linear = import_model(&read("lgb_linear.txt")).expect_err("linear trees are refused");
    assert!(linear.to_string().contains("linear trees"), "{linear}");
    // Names and kinds of the inputs come from the file.
    let categorical = import_model(&read("xgb_categorical.json")).expect("imports");
    assert_eq!(categorical.features.iter().filter(|feature| feature.categorical).count(), 1);
    let lightgbm = import_model(&read("lgb_categorical.txt")).expect("imports");
    assert_eq!(lightgbm.features[3].name, "Column_3");
    assert!(lightgbm.features[3].categorical && !lightgbm.features[0].categorical);
    let stopped = import_model(&read("xgb_early_stopping.json")).expect("imports");
    assert!(stopped.best_iteration.is_some());
    // Damaged files are errors, not panics.
    let json = read("xgb_binary.json");
    for cut in [10, json.len() / 2, json.len() - 3] {
        assert!(import_model(&json[..cut]).is_err(), "cut at {cut}");
    }
    let compiled =
        CompiledEnsemble::new(&import_model(&read("lgb_binary.txt")).expect("imports").ensemble).expect("compiles");
    let mut out = vec![0.0; 2];
    assert!(compiled.predict_into(&[1.0; 7], &mut out, 1).is_err(), "7 values are not rows of 8 features");
    let text = String::from_utf8(read("lgb_binary.txt")).expect("text");
    assert!(import_model(text.replace("left_child=", "left_kid=").as_bytes()).is_err());
}

/// General ONNX graphs (a scaler + logistic regression pipeline, a small neural network, a linear
/// regression, a three-class multinomial pipeline) go through onnxruntime and score as onnxruntime in Python does; a graph whose
/// only output is scikit-learn's ZipMap is refused with the conversion option that avoids it.
#[cfg(feature = "onnxruntime")]
#[test]
fn general_onnx_graphs_score_like_onnxruntime() {
    use causeway_models::{FeatureKind, FeatureSpec, Model, ModelArtifact, OnnxGraph, Predictor, Signature};

    let (directory, document) = model_fixtures();
    let library = document["onnxruntime_library"].as_str().expect("the fixture venv has onnxruntime");
    causeway_models::use_runtime_library(std::path::Path::new(library));
    let graphs = document["graphs"].as_array().expect("graphs");
    assert_eq!(graphs.len(), 5, "every graph case was generated");
    for case in graphs {
        let name = case["name"].as_str().expect("name");
        let bytes = std::fs::read(directory.path().join(case["file"].as_str().expect("file"))).expect("model file");
        // The tree-ensemble importer refuses these by name; the runtime takes them.
        assert!(matches!(import_model(&bytes), Err(Error::Unsupported(_))), "{name}");
        let graph = OnnxGraph::from_bytes(&bytes);
        if let Some(reason) = case["refused"].as_str() {
            let message = graph.expect_err(name).to_string();
            assert!(message.contains(reason), "{name}: {message}");
            continue;
        }
        let graph = graph.unwrap_or_else(|error| panic!("{name}: {error}"));
        let rows = matrix(&case["rows"]);
        let signature = Signature {
            features: (0..graph.features)
                .map(|index| FeatureSpec { name: format!("f{index}"), kind: FeatureKind::Numeric, nullable: true })
                .collect(),
        };
        let artifact = ModelArtifact::new(Model::Onnx(graph), signature, 0.5, Default::default()).expect(name);
        // The graph travels inside the artifact and scores the same after a round trip.
        let reloaded = ModelArtifact::from_bytes(&artifact.to_bytes().expect("bytes")).expect("reloads");
        if let Some(classes) = case["classes"].as_u64() {
            // Every class's probability, and the most likely one's as the row's score.
            let expected = matrix(&case["output"]);
            for model in [&artifact.model, &reloaded.model] {
                assert_eq!(model.outputs(), classes as usize, "{name}");
                let outputs: Vec<Vec<f64>> =
                    model.predict_outputs(&rows).chunks(classes as usize).map(<[f64]>::to_vec).collect();
                let difference = worst_difference(&expected, &outputs);
                assert!(difference <= TOLERANCE, "{name}: differs from onnxruntime by {difference}");
                let best: Vec<Vec<f64>> =
                    expected.iter().map(|row| vec![row.iter().copied().fold(f64::NAN, f64::max)]).collect();
                let scores: Vec<Vec<f64>> = model.predict_rows(&rows).into_iter().map(|score| vec![score]).collect();
                assert!(worst_difference(&best, &scores) <= TOLERANCE, "{name}: top-class probabilities");
            }
            continue;
        }
        let expected: Vec<Vec<f64>> = case["output"]
            .as_array()
            .expect("output")
            .iter()
            .map(|value| vec![value.as_f64().expect("number")])
            .collect();
        for model in [&artifact.model, &reloaded.model] {
            let batch: Vec<Vec<f64>> = model.predict_rows(&rows).into_iter().map(|score| vec![score]).collect();
            let difference = worst_difference(&expected, &batch);
            assert!(difference <= TOLERANCE, "{name}: differs from onnxruntime by {difference}");
            assert!((model.predict_row(&rows[3]) - expected[3][0]).abs() <= TOLERANCE, "{name}: one row");
        }
        // Rows of the wrong width score NaN rather than reading out of bounds.
        assert!(artifact.model.predict_rows(&[vec![1.0]])[0].is_nan());
    }
}
