//! Times the compiled tree engine for `bench/models/bench.py`: batch throughput on 1 and 2
//! threads and single-row latency, on a model file and a matrix of rows.
//!
//! tree_scoring MODEL ROWS.f64 ROWS FEATURES [REFERENCE.f64]
//!
//! ROWS.f64 holds the rows, row-major, as little-endian f64; REFERENCE.f64, when given, the
//! original library's predictions for the first rows, which the output is checked against.
//! Prints one JSON object.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, reason = "a benchmark tool fails loudly")]

use std::time::Instant;

use causeway_models::{CompiledEnsemble, import_model};

fn read_f64(path: &str) -> Vec<f64> {
    let bytes = std::fs::read(path).unwrap_or_else(|error| panic!("{path}: {error}"));
    bytes.chunks_exact(8).map(|chunk| f64::from_le_bytes(chunk.try_into().expect("8 bytes"))).collect()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let arguments: Vec<String> = std::env::args().collect();
    assert!(arguments.len() >= 5, "usage: tree_scoring MODEL ROWS.f64 ROWS FEATURES [REFERENCE.f64]");
    let model = std::fs::read(&arguments[1]).expect("model file");
    let rows = read_f64(&arguments[2]);
    let (count, width): (usize, usize) = (arguments[3].parse().expect("rows"), arguments[4].parse().expect("features"));
    assert_eq!(rows.len(), count * width, "the matrix holds ROWS × FEATURES values");
    let imported = import_model(&model).expect("the model imports");
    let compiled = CompiledEnsemble::new(&imported.ensemble).expect("the model compiles");
    let mut out = vec![0.0; count * compiled.outputs()];

    let mut report = serde_json::Map::new();
    for threads in [1, 2] {
        let timings: Vec<f64> = (0..3)
            .map(|_| {
                let started = Instant::now();
                compiled.predict_into(&rows, &mut out, threads).expect("scores");
                started.elapsed().as_secs_f64()
            })
            .collect();
        report.insert(format!("batch_rows_per_s_{threads}_threads"), (count as f64 / median(timings)).into());
    }
    if let Some(reference) = arguments.get(5) {
        let reference = read_f64(reference);
        let worst = reference.iter().zip(&out).map(|(want, got)| (want - got).abs()).fold(0.0, f64::max);
        report.insert("max_abs_difference_from_library".into(), worst.into());
    }
    // Single rows, one call each, as a server scores them.
    let sample = count.min(20_000);
    let mut latencies = Vec::with_capacity(sample);
    let mut checksum = 0.0;
    for row in rows.chunks_exact(width).take(sample) {
        let started = Instant::now();
        let scores = compiled.predict_row(row);
        latencies.push(started.elapsed().as_secs_f64() * 1e6);
        checksum += scores[0];
    }
    report.insert("single_row_median_us".into(), median(latencies.clone()).into());
    latencies.sort_by(f64::total_cmp);
    report.insert("single_row_p99_us".into(), latencies[latencies.len() * 99 / 100].into());
    report.insert("trees".into(), compiled.ensemble().trees.len().into());
    report.insert("checksum".into(), checksum.into());
    println!("{}", serde_json::Value::Object(report));
}
