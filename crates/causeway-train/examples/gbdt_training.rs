//! Times Causeway's GBDT trainer for `bench/training/bench.py`: bins and trains on a matrix of
//! rows, then scores a test matrix.
//!
//! gbdt_training TRAIN.f64 LABELS.f64 TEST.f64 FEATURES SCORES_OUT.f64 PARAMS_JSON
//!
//! Matrices are row-major little-endian f64; PARAMS_JSON is a `GbdtParams` object. Prints one
//! JSON object with the training time (binning included, file reading not) and the tree count.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, reason = "a benchmark tool fails loudly")]

use std::time::Instant;

use causeway_models::Predictor;
use causeway_train::GbdtParams;

fn read_f64(path: &str) -> Vec<f64> {
    let bytes = std::fs::read(path).unwrap_or_else(|error| panic!("{path}: {error}"));
    bytes.chunks_exact(8).map(|chunk| f64::from_le_bytes(chunk.try_into().expect("8 bytes"))).collect()
}

fn rows_of(values: &[f64], width: usize) -> Vec<Vec<f64>> {
    values.chunks_exact(width).map(<[f64]>::to_vec).collect()
}

fn main() {
    let arguments: Vec<String> = std::env::args().collect();
    assert!(
        arguments.len() == 7,
        "usage: gbdt_training TRAIN.f64 LABELS.f64 TEST.f64 FEATURES SCORES_OUT.f64 PARAMS_JSON"
    );
    let width: usize = arguments[4].parse().expect("features");
    let rows = rows_of(&read_f64(&arguments[1]), width);
    let labels = read_f64(&arguments[2]);
    let test = rows_of(&read_f64(&arguments[3]), width);
    let params: GbdtParams = serde_json::from_str(&arguments[6]).expect("parameters");

    let started = Instant::now();
    let (model, _) = causeway_train::gbdt::train(&rows, &labels, &[], &params, None).expect("training");
    let seconds = started.elapsed().as_secs_f64();
    let scores = model.predict_rows(&test);
    let bytes: Vec<u8> = scores.iter().flat_map(|score| score.to_le_bytes()).collect();
    std::fs::write(&arguments[5], bytes).expect("scores written");
    let report = serde_json::json!({
        "seconds": seconds,
        "trees": model.trees.len(),
        "threads": rayon::current_num_threads(),
    });
    println!("{report}");
}
