//! Each built-in guardrail detector's precision and recall on a labelled set.
//!
//! The set (`tests/data/guardrails-labelled.jsonl`, 142 texts) was written by hand for these
//! tests, not taken from a dataset: positives in the forms people write (cards grouped or not,
//! IBANs of twelve countries, phones in national and international forms, keys of eleven
//! providers in the shapes they publish, injections from the well-known phrasings), and hard
//! negatives that look alike (Luhn and mod-97 failures, dates, IP and version numbers, ISBNs,
//! placeholders, benign "ignore", "previous instructions", "system", "mode"). Card numbers are the
//! networks' published test numbers, IBANs the registries' published examples, keys random
//! strings in the providers' shapes — nothing in it is real.
//!
//! A text counts for a detector when the detector finds anything in it; the figures are per text.
//! Both sets' figures are in `bench/README.md`.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used, reason = "tests fail loudly")]

use causeway_gateway::guardrails::Detector;
use serde_json::Value;

/// Per detector: (positives, precision, recall), and a report naming the misses.
fn evaluate(file: &str) -> (Vec<(Detector, usize, f64, f64)>, String) {
    let path = format!("{}/tests/data/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("the labelled set");
    let cases: Vec<(String, Vec<String>)> = text
        .lines()
        .map(|line| {
            let case: Value = serde_json::from_str(line).expect("a JSON line");
            let kinds =
                case["kinds"].as_array().expect("kinds").iter().map(|kind| kind.as_str().expect("a kind").to_string());
            (case["text"].as_str().expect("text").to_string(), kinds.collect())
        })
        .collect();
    let mut report = format!(
        "{file} ({} texts)\ndetector          positives  precision  recall  false positives / negatives\n",
        cases.len()
    );
    let mut figures = Vec::new();
    for detector in Detector::ALL {
        let name = detector.as_str();
        let (mut true_positives, mut false_positives, mut false_negatives) = (0usize, Vec::new(), Vec::new());
        for (text, kinds) in &cases {
            let labelled = kinds.iter().any(|kind| kind == name);
            let found = !detector.find(text).is_empty();
            match (labelled, found) {
                (true, true) => true_positives += 1,
                (false, true) => false_positives.push(text.as_str()),
                (true, false) => false_negatives.push(text.as_str()),
                (false, false) => {}
            }
        }
        let positives = true_positives + false_negatives.len();
        let precision = true_positives as f64 / (true_positives + false_positives.len()).max(1) as f64;
        let recall = true_positives as f64 / positives.max(1) as f64;
        report.push_str(&format!(
            "{name:<17} {positives:>9}  {precision:>9.3}  {recall:>6.3}  {false_positives:?} / {false_negatives:?}\n"
        ));
        figures.push((detector, positives, precision, recall));
    }
    (figures, report)
}

/// The set the detectors were tuned on: near-perfect, or a change broke something.
#[test]
fn every_detector_is_precise_and_finds_what_it_should_on_the_labelled_set() {
    let (figures, report) = evaluate("guardrails-labelled.jsonl");
    println!("{report}");
    assert!(figures.iter().map(|(_, positives, _, _)| positives).sum::<usize>() >= 80, "{report}");
    for (detector, _, precision, recall) in figures {
        // Secrets and checked numbers must be near-perfect; phones and injections are heuristics.
        let (least_precision, least_recall) = match detector {
            Detector::Phone | Detector::PromptInjection => (0.9, 0.8),
            _ => (0.95, 0.9),
        };
        assert!(
            precision >= least_precision && recall >= least_recall,
            "{}: precision {precision:.3} (at least {least_precision}), recall {recall:.3} (at least {least_recall})\n{report}",
            detector.as_str()
        );
    }
}

/// A second set written after the detectors were tuned and not used to tune them
/// (`guardrails-held-out.jsonl`, 42 texts, same origin): the honest figures, with looser floors
/// (on 2026-12-03 phone precision was 0.667 — a dotted build number and a Danish IBAN's digit
/// groups read as phones — API-key precision 0.8 and injection recall 0.833; tuning on this set
/// would end its use as a held-out set).
#[test]
fn the_detectors_hold_up_on_texts_they_were_not_tuned_on() {
    let (figures, report) = evaluate("guardrails-held-out.jsonl");
    println!("{report}");
    for (detector, _, precision, recall) in figures {
        assert!(
            precision >= 0.6 && recall >= 0.6,
            "{}: precision {precision:.3}, recall {recall:.3} (floors 0.6 / 0.6)\n{report}",
            detector.as_str()
        );
    }
}
