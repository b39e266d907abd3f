//! `causeway drift REFERENCE CURRENT` compares two files with no project, and says through its
//! exit code whether anything drifted.

use std::fmt::Write as _;

use causeway_types::SeededRng;
use serde_json::Value;

use crate::support::run;

/// A CSV of `rows` transactions: an amount around `shift`, a channel that is online with
/// probability `online`, and a count that never moves.
fn write_csv(path: &std::path::Path, seed: u64, rows: usize, shift: f64, online: f64) {
    let mut rng = SeededRng::new(seed);
    let mut text = String::from("amount,channel,count\n");
    for row in 0..rows {
        let channel = if rng.uniform() < online { "online" } else { "store" };
        writeln!(text, "{:.4},{channel},{}", rng.normal() + shift, row % 5).expect("write");
    }
    std::fs::write(path, text).expect("csv");
}

#[test]
fn drift_compares_two_files_and_exits_by_verdict() {
    let directory = tempfile::tempdir().expect("tempdir");
    let (reference, same, shifted) = (
        directory.path().join("reference.csv"),
        directory.path().join("same.csv"),
        directory.path().join("shifted.csv"),
    );
    write_csv(&reference, 1, 5_000, 0.0, 0.3);
    write_csv(&same, 2, 5_000, 0.0, 0.3);
    write_csv(&shifted, 3, 5_000, 1.0, 0.7);
    let text = |path: &std::path::Path| path.to_str().expect("utf-8").to_string();

    let stable = run(&["drift", &text(&reference), &text(&same)]);
    let stdout = String::from_utf8_lossy(&stable.stdout);
    assert_eq!(stable.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&stable.stderr));
    assert!(stdout.contains("0 of 3 columns drifted"), "{stdout}");

    let moved = run(&["drift", &text(&reference), &text(&shifted)]);
    let stdout = String::from_utf8_lossy(&moved.stdout);
    assert_eq!(moved.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("2 of 3 columns drifted"), "{stdout}");
    assert!(stdout.contains("online:"), "the category that moved is named: {stdout}");

    let json = run(&["drift", &text(&reference), &text(&shifted), "--json", "--columns", "amount"]);
    let report: Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(report["columns"].as_array().map(Vec::len), Some(1));
    assert_eq!(report["columns"][0]["verdict"], "drifted");
    assert!(report["columns"][0]["ks"].as_f64().is_some_and(|ks| ks > 0.3), "{report}");

    // A raised threshold lets a moderate shift pass; a missing file or column is an error (2).
    let lenient = run(&["drift", &text(&reference), &text(&shifted), "--threshold", "50"]);
    assert_eq!(lenient.status.code(), Some(0), "{}", String::from_utf8_lossy(&lenient.stdout));
    let missing = run(&["drift", &text(&reference), "no-such-file.csv"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no-such-file.csv"));
    let unknown = run(&["drift", &text(&reference), &text(&same), "--columns", "price"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("`price`"));
}
