//! The loop on a small demo: configuration-driven triggers and the controller's durable state.

#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used, reason = "test code: a panic is a failing test")]

use causeway_demo::scenario::{DemoOptions, Observer, run_demo};
use causeway_loop::config::Trigger;
use std::sync::Arc;

use causeway_loop::retrain::Retrainer;
use causeway_loop::{Controller, Project, Stage};
use causeway_types::Event;

struct Silent;

impl Observer for Silent {
    fn step(&mut self, _: &str, _: u64) {}
    fn advance(&mut self, _: u64, _: &str) {}
    fn event(&mut self, _: &Event) {}
}

/// With `retrain_on = ["drift"]`, the covariate shift alone starts a retraining, before any
/// performance rule fires; the controller's state survives reopening the project.
#[test]
fn a_drift_rule_can_trigger_retraining() {
    let directory = tempfile::tempdir().expect("tempdir");
    let dir = directory.path().join("project");
    let options = DemoOptions {
        transactions_per_day: 1_200,
        customers: 1_500,
        concept_days: 7,
        retrain_on: vec![Trigger::Drift],
        ..DemoOptions::default()
    };
    let outcome = run_demo(&dir, &options, &mut Silent).expect("demo runs");
    let first_retraining = outcome
        .loop_events
        .iter()
        .find(|event| event.message.starts_with("retraining triggered"))
        .unwrap_or_else(|| panic!("no retraining: {:#?}", outcome.loop_events));
    assert!(first_retraining.message.contains("by drift:"), "{}", first_retraining.message);
    let covariate_start =
        1_767_225_600_000 + i64::from(options.history_days + options.stable_days) * causeway_types::DAY_MS;
    assert!(first_retraining.at_ms >= covariate_start, "retrained before the drift began");
    let first_performance_alert =
        outcome.alerts.iter().find(|event| event.message.contains("recall") || event.message.contains("ROC-AUC"));
    assert!(first_performance_alert.is_none_or(|alert| alert.at_ms >= first_retraining.at_ms));

    let project = Arc::new(Project::open(&dir).expect("reopen"));
    let refuse: Retrainer =
        Arc::new(|_, _| Err(causeway_loop::Error::Precondition("no retraining in this test".into())));
    let controller = Controller::new(project.clone(), refuse.clone()).expect("controller");
    assert_ne!(controller.state().last_retrain_ms, None, "the stored state was resumed");
    assert!(matches!(controller.state().stage, Stage::Idle | Stage::Shadow { .. } | Stage::Canary { .. }));
    drop(controller);

    // A rollout the loop believes it runs, which someone else ended (say, an alias set through
    // MLflow): the next tick lets it go instead of overwriting the person's decision.
    let model = project.config.model().expect("model").name.clone();
    let policy = project.meta.serving_policy(&model).expect("policy").expect("a champion");
    let versions = project.meta.model_versions(&model).expect("versions");
    let stranger = versions
        .iter()
        .map(|version| version.version)
        .find(|version| *version != policy.champion && Some(*version) != policy.challenger)
        .expect("another version");
    let mut state = controller_state(&project, &model);
    state["stage"] = serde_json::to_value(Stage::Shadow { challenger: stranger, since_ms: 0 }).expect("stage");
    project.meta.put_state(&format!("loop/{model}"), &state).expect("state");
    let now = outcome.loop_events.last().map_or(0, |event| event.at_ms) + causeway_types::DAY_MS;
    let mut controller = Controller::new(project.clone(), refuse).expect("controller");
    let _ = controller.tick(now);
    let events = project.meta.events(Some(causeway_types::EventKind::Loop)).expect("events");
    assert!(
        events
            .iter()
            .any(|event| event.message.contains(&format!("rollout of v{stranger} was ended outside the loop"))),
        "{:#?}",
        events.iter().rev().take(3).collect::<Vec<_>>()
    );
    assert_eq!(
        project.meta.serving_policy(&model).expect("policy").map(|policy| policy.champion),
        Some(policy.champion)
    );
}

fn controller_state(project: &Project, model: &str) -> serde_json::Value {
    project.meta.state(&format!("loop/{model}")).expect("state").expect("a stored state")
}

/// A label counts only for a prediction within `[monitor] label_horizon`: the prediction index
/// forgets older ones, and their labels are given up on a day after they arrived.
#[test]
fn labels_count_only_within_the_label_horizon() {
    use causeway_monitor::{PredictionLog, PredictionRecord, Role};
    use causeway_types::{DAY_MS, LabelRecord};

    let directory = tempfile::tempdir().expect("tempdir");
    let config = causeway_demo::FRAUD_CONFIG.replacen("[monitor]\n", "[monitor]\nlabel_horizon = \"20d\"\n", 1);
    let project = Arc::new(Project::init(directory.path(), &config).expect("project").0);
    let now = 100 * DAY_MS;
    let log = PredictionLog::start(project.blobs.clone(), 100, 100);
    for (id, age_days) in [("old", 25), ("recent", 5)] {
        let record = PredictionRecord {
            request_id: id.into(),
            timestamp_ms: now - age_days * DAY_MS,
            model: "fraud".into(),
            version: 1,
            role: Role::Served,
            score: 0.9,
            prediction: 0.9,
            latency_us: 100,
            features: Vec::new(),
        };
        assert!(log.log(record));
    }
    log.flush().expect("flush");
    let arrived = LabelRecord { label: 1.0, arrived_ms: now - 3_600_000 };
    project.meta.put_labels(&[("old".into(), arrived), ("recent".into(), arrived)]).expect("labels");

    let mut summarizer = causeway_loop::windows::Summarizer::new(project.clone());
    let report = summarizer.pass(now).expect("pass");
    assert_eq!((report.predictions, report.labels), (2, 1), "both summarised, one label within the horizon");
    assert_eq!(project.meta.indexed_predictions(&["old", "recent"]).expect("index").len(), 1);
    assert_eq!(project.meta.pending_labels(now, None, 10).expect("pending").len(), 1, "`old` still waits");
    summarizer.pass(now + 2 * DAY_MS).expect("a day later");
    assert!(project.meta.pending_labels(now + 2 * DAY_MS, None, 10).expect("pending").is_empty(), "given up on");
}
