//! Both demo scenarios, asserted from their summaries and the project they leave behind.

use causeway_features::offline::compute_features;
use serde_json::Value;

use crate::support::{DemoRun, bad_challenger_demo, fraud_demo};

/// Phase boundaries of the default demo (2026-01-01 is day 0; live traffic starts on day 45).
const LIVE_START: &str = "2026-02-15";
const COVARIATE_START: &str = "2026-03-01";
const CONCEPT_START: &str = "2026-03-15";
const END: &str = "2026-04-14";

fn messages<'a>(run: &'a DemoRun, field: &str) -> Vec<(&'a str, &'a str)> {
    run.summary[field]
        .as_array()
        .map(|events| {
            events.iter().filter_map(|event| Some((event["at"].as_str()?, event["message"].as_str()?))).collect()
        })
        .unwrap_or_default()
}

fn in_range(at: &str, from: &str, to: &str) -> bool {
    at >= from && at < to
}

fn assert_common_story(run: &DemoRun) {
    assert!(run.success, "demo failed:\n{}", run.stdout);
    assert_eq!(run.summary["passed"], Value::Bool(true), "{}", run.stdout);
    let alerts = messages(run, "alerts");
    let drift: Vec<&(&str, &str)> = alerts.iter().filter(|(_, message)| message.contains("drifted")).collect();
    assert!(
        drift.iter().all(|(at, _)| !in_range(at, LIVE_START, COVARIATE_START)),
        "drift alert in the stable phase: {drift:?}"
    );
    assert!(
        drift.iter().any(|(at, _)| in_range(at, COVARIATE_START, CONCEPT_START)),
        "no drift alert in covariate drift: {drift:?}"
    );
    assert!(
        alerts.iter().any(|(at, message)| in_range(at, CONCEPT_START, END)
            && (message.contains("recall") || message.contains("ROC-AUC"))),
        "no performance alert in concept drift: {alerts:?}"
    );
    let served = &run.summary["served_offline"];
    assert!(served["rows"].as_u64().unwrap_or(0) > 1_000, "{served}");
    assert_eq!(served["max_abs_difference"].as_f64(), Some(0.0), "{served}");
    assert_eq!(run.summary["dropped"].as_u64(), Some(0));
    let report = std::fs::read_to_string(run.dir.join("report.html")).expect("report.html");
    assert!(report.contains("<svg") && report.contains("<polyline"), "report has charts");
    assert!(!report.contains("<script") && !report.contains("<link"), "report is self-contained");
}

#[test]
fn fraud_scenario_promotes_the_retrained_challenger() {
    let run = fraud_demo();
    assert_common_story(run);
    let steps = messages(run, "loop_events");
    let position = |prefix: &str| steps.iter().position(|(_, message)| message.starts_with(prefix));
    let (Some(shadow), Some(canary), Some(promoted)) =
        (position("gates passed"), position("canary:"), position("promoted"))
    else {
        panic!("expected shadow, canary and promotion: {steps:?}");
    };
    assert!(shadow < canary && canary < promoted, "{steps:?}");
    assert!(steps.iter().all(|(_, message)| !message.starts_with("rolled back")), "{steps:?}");
    assert_ne!(run.summary["final_champion"].as_u64(), Some(1));
}

#[test]
fn bad_challenger_is_rolled_back_during_canary() {
    let run = bad_challenger_demo();
    assert_common_story(run);
    let steps = messages(run, "loop_events");
    let canary = steps.iter().position(|(_, message)| message.starts_with("canary:")).expect("a canary");
    let rollback = steps.iter().position(|(_, message)| message.starts_with("rolled back")).expect("a rollback");
    assert!(canary < rollback, "{steps:?}");
    assert!(steps[rollback].1.contains("false-positive rate"), "{steps:?}");
    assert!(steps.iter().all(|(_, message)| !message.starts_with("promoted")), "{steps:?}");
    assert_eq!(run.summary["final_champion"].as_u64(), Some(1));
    let paused = messages(run, "alerts");
    assert!(paused.iter().any(|(_, message)| message.contains("retraining paused")), "{paused:?}");
    let dir = run.dir.to_str().expect("utf-8");
    let resumed = crate::support::run(&["loop", "resume", "--dir", dir]);
    assert!(resumed.status.success() && String::from_utf8_lossy(&resumed.stdout).contains("retraining resumed"));
    let events = crate::support::run(&["events", "--kind", "loop", "--dir", dir]);
    assert!(String::from_utf8_lossy(&events.stdout).contains("retraining resumed"));
}

#[test]
fn training_features_never_see_events_at_or_after_their_row() {
    let run = fraud_demo();
    let stored = crate::support::StoredProject::open(&run.dir);
    let spec = stored.config.features().expect("features");
    // The first 30,000 stored rows (history comes first) keep the brute-force check fast.
    let data = &stored.data.take(&(0..stored.data.rows().min(30_000)).collect::<Vec<_>>());
    let times = data.require("timestamp").expect("timestamp");
    let mut rng = causeway_types::SeededRng::new(11);
    for _ in 0..150 {
        let row = rng.below(data.rows());
        let at = times.number(row).expect("time");
        let rows = data.take(&[row]);
        let with_everything = compute_features(spec, &rows, data).expect("features");
        let past: Vec<usize> =
            (0..data.rows()).filter(|index| times.number(*index).is_some_and(|time| time < at)).collect();
        let only_the_past = compute_features(spec, &rows, &data.take(&past)).expect("features");
        assert_eq!(with_everything, only_the_past, "row {row} saw an event at or after its own time");
    }
}

#[test]
fn every_version_has_a_model_card_with_calibration_and_slices() {
    let run = fraud_demo();
    let dir = run.dir.to_str().expect("utf-8");
    let html = run.dir.join("card.html");
    let output = crate::support::run(&["card", "--dir", dir, "--html", html.to_str().expect("utf-8")]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let card = String::from_utf8_lossy(&output.stdout);
    for section in ["# Model card: fraud version 2", "## Holdout metrics", "## Calibration", "## Slices", "## Lineage"]
    {
        assert!(card.contains(section), "missing {section}:\n{card}");
    }
    assert!(card.contains("aliases: champion"), "{card}");
    assert!(
        card.contains("| channel |") && card.contains("| merchant_category |"),
        "slices per categorical feature:\n{card}"
    );
    assert!(card.contains("Largest gap:"), "{card}");
    let page = std::fs::read_to_string(&html).expect("the HTML card");
    assert!(page.starts_with("<!doctype html>") && page.contains("<h2>Slices</h2>") && !page.contains("<script"));
    let first = crate::support::run(&["card", "--dir", dir, "--version", "1"]);
    assert!(String::from_utf8_lossy(&first.stdout).contains("# Model card: fraud version 1"));
    let missing = crate::support::run(&["card", "--dir", dir, "--version", "99"]);
    assert!(!missing.status.success());
}

/// `demo fraud --live`: the same story with real processes — a control plane and two serving
/// replicas as children, traffic and delayed labels over HTTP, on the wall clock.
#[test]
fn live_demo_promotes_through_a_control_plane_and_two_replicas() {
    let run = crate::support::demo_with(&["--live"]);
    let (summary, dir, stdout) = (&run.summary, &run.dir, &run.stdout);
    assert!(run.success, "live demo failed:\n{stdout}");
    assert_eq!(summary["passed"], Value::Bool(true), "{stdout}");

    let live = &summary["live"];
    let replicas = live["replicas"].as_array().expect("replicas");
    assert_eq!(replicas.len(), 2, "{live}");
    for replica in replicas {
        assert!(replica["answered"].as_u64().unwrap_or(0) > 1_000, "{replica}");
        assert_eq!(replica["failed"], 0, "{replica}");
    }
    let commands: Vec<&str> = live["commands"].as_array().expect("commands").iter().filter_map(Value::as_str).collect();
    assert!(commands[0].starts_with("causeway loop run"), "{commands:?}");
    assert!(commands[1..].iter().all(|command| command.starts_with("causeway serve")), "{commands:?}");
    assert!(live["alert_to_promotion"]["seconds"].as_f64().is_some_and(|seconds| seconds > 0.0), "{live}");

    // Shadow, canary and promotion happened in that order, decided by the control plane.
    let steps: Vec<&str> = summary["loop_events"]
        .as_array()
        .expect("loop events")
        .iter()
        .filter_map(|event| event["message"].as_str())
        .collect();
    let position = |prefix: &str| steps.iter().position(|message| message.starts_with(prefix));
    let (Some(shadow), Some(canary), Some(promoted)) =
        (position("gates passed"), position("canary:"), position("promoted"))
    else {
        panic!("no shadow, canary and promotion: {steps:#?}");
    };
    assert!(shadow < canary && canary < promoted, "{steps:#?}");
    let champion = summary["final_champion"].as_u64().expect("champion");
    assert!(champion > 1, "{summary}");
    // The promoted version answered requests over HTTP afterwards.
    assert!(live["answered_by_version"][champion.to_string()].as_u64().unwrap_or(0) > 0, "{live}");
    assert_eq!(summary["served_offline"]["max_abs_difference"].as_f64(), Some(0.0), "{summary}");
    assert_eq!(summary["dropped"], 0);

    // Every process had its log (a healthy replica writes nothing to it), and the store agrees
    // with the summary after they stopped.
    for log in ["replica-a.log", "replica-b.log"] {
        assert!(dir.join("logs").join(log).is_file(), "no {log}");
    }
    let control = std::fs::read_to_string(dir.join("logs").join("control-plane.log")).expect("log");
    assert!(control.contains("running the loop"), "{control}");
    let status: Value = serde_json::from_str(&crate::support::ok(&[
        "loop",
        "status",
        "--json",
        "--dir",
        dir.to_str().expect("utf-8 path"),
    ]))
    .expect("status is JSON");
    assert_eq!(status["models"][0]["champion"].as_u64(), Some(champion), "{status:#}");
    let report = std::fs::read_to_string(dir.join("report.html")).expect("report.html");
    assert!(report.contains("<svg") && report.contains("<polyline"), "report has charts");
}
