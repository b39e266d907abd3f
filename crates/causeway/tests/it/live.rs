//! The loop live, with real processes on wall-clock time: `causeway server` runs the loop on
//! public datasets of every task (binary churn, multi-class penguins, a housing-price
//! regression); a retraining — asked for with `causeway loop retrain`, started by a performance
//! alert, or by the volume of new labels — is trained on a thread, shadowed, canaried on real
//! HTTP traffic with labels arriving over `/v1/labels`, and promoted. A second control plane (`causeway loop run`) waits while the server holds the
//! lease and takes over when the server is killed.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use causeway_test_support::real_datasets;
use serde_json::{Value, json};

use crate::support::{Server, binary, ok, run};

/// Second-scale durations, so the loop's whole rollout fits a test.
const LIVE_LOOP: &str = r#"
[loop]
tick = "1s"
retrain_on = []
cooldown = "1h"
shadow = "1s"
shadow_min_predictions = 20
canary = "2s"
canary_share = 0.5
min_labeled_positives = 10

# Identical challengers tie on live traffic; a short canary's false-positive rate is noisy.
[loop.gates]
max_false_positive_rate = 0.5
"#;

fn text(path: &Path) -> &str {
    path.to_str().expect("utf-8")
}

fn status(dir: &Path) -> Value {
    let output = ok(&["loop", "status", "--json", "--dir", text(dir)]);
    serde_json::from_str(&output).expect("status is JSON")
}

/// Polls `loop status` until `ready` holds for the first model (a readiness check), or fails
/// after a minute with the last status.
fn wait_for(dir: &Path, what: &str, mut between: impl FnMut(), ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let current = status(dir);
        if ready(&current) {
            return current;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}: {current:#}");
        between();
    }
}

fn model(status: &Value) -> &Value {
    &status["models"][0]
}

/// Requests built from the dataset's rows (every column but the label), with their labels.
fn traffic(file: &Path, label: &str) -> Vec<(Value, Value)> {
    let frame = causeway_data::read_file(file).expect("the dataset reads");
    let names = frame.names().to_vec();
    (0..frame.rows())
        .map(|row| {
            let mut fields = serde_json::Map::new();
            let mut truth = Value::Null;
            for name in &names {
                let column = frame.column(name).expect("column");
                let value = serde_json::to_value(column.feature_value(row)).expect("json");
                if name == label {
                    truth = value;
                } else {
                    fields.insert(name.clone(), value);
                }
            }
            (Value::Object(fields), truth)
        })
        .filter(|(_, truth)| !truth.is_null())
        .collect()
}

/// Sends `count` requests with fresh ids and their labels.
fn send(server: &Server, model: &str, rows: &[(Value, Value)], next: &mut usize, count: usize) {
    let mut labels = Vec::new();
    for _ in 0..count {
        let (fields, truth) = &rows[*next % rows.len()];
        let id = format!("live-{next}");
        *next += 1;
        let (code, answer) =
            server.json("POST", &format!("/v1/models/{model}/score"), &json!({"request_id": id, "fields": fields}));
        assert_eq!(code, 200, "{answer}");
        labels.push(json!({"request_id": id, "label": truth}));
    }
    let (code, answer) = server.json("POST", "/v1/labels", &json!({"model": model, "labels": labels}));
    assert_eq!(code, 200, "{answer}");
}

/// `causeway loop run` beside the server, its messages in `log`; killed on drop.
struct SecondControlPlane {
    child: Child,
    log: std::path::PathBuf,
}

impl SecondControlPlane {
    fn start(dir: &Path, log: std::path::PathBuf) -> Self {
        let file = std::fs::File::create(&log).expect("log file");
        let child = binary()
            .args(["loop", "run", "--dir", text(dir), "--tick", "1s"])
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("loop run starts");
        Self { child, log }
    }

    /// Waits until its messages contain `needle` (a readiness check on its log).
    fn wait_for(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let seen = std::fs::read_to_string(&self.log).unwrap_or_default();
            if seen.contains(needle) {
                return;
            }
            assert!(Instant::now() < deadline, "`loop run` never said `{needle}`:\n{seen}");
            std::thread::yield_now();
        }
    }
}

impl Drop for SecondControlPlane {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One dataset through the live loop: init, train and promote v1, then a manual retraining that
/// the server's loop takes through shadow and canary to promotion on live traffic.
/// What starts the retraining in [`loop_end_to_end`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// `causeway loop retrain`.
    Manual,
    /// A performance alert: the traffic's labels are wrong for most requests.
    Performance,
    /// `[loop] volume` labelled predictions after the champion was trained.
    Volume,
}

fn loop_end_to_end(root: &Path, data: &Path, dataset: &Value, failover: bool, trigger: Trigger) {
    let name = dataset["name"].as_str().expect("name");
    let label = dataset["label"].as_str().expect("label");
    let file = data.join(format!("{name}.csv"));
    let dir = root.join(name);
    let mut init = vec!["init", "--from", text(&file), "--label", label, "--dir", text(&dir)];
    if let Some(positive) = dataset["positive"].as_str() {
        init.extend(["--positive", positive]);
    }
    ok(&init);
    let config = dir.join("causeway.toml");
    let mut toml = std::fs::read_to_string(&config).expect("causeway.toml");
    toml.push_str(&match trigger {
        Trigger::Manual => LIVE_LOOP.to_string(),
        Trigger::Performance => LIVE_LOOP.replace("retrain_on = []", "retrain_on = [\"performance\"]"),
        Trigger::Volume => LIVE_LOOP.replace("retrain_on = []", "retrain_on = [\"volume\"]\nvolume = 60"),
    });
    toml.push_str("\n[monitor]\nmin_labeled_positives = 20\n");
    // The multi-class project also has an alert of its own, sent to a webhook.
    let webhook = (name == "penguins").then(|| causeway_test_support::webhook_receiver(0));
    if let Some((url, _)) = &webhook {
        toml.push_str(&format!(
            "\n[[monitor.alerts]]\nname = \"busy\"\nmetric = \"predictions\"\nabove = 30\nwindow = \"10m\"\n\n[monitor.notify]\nwebhook = \"{url}\"\nretries = 2\n"
        ));
    }
    std::fs::write(&config, toml).expect("write causeway.toml");
    ok(&["train", "--dir", text(&dir), "--promote"]);

    let idle = status(&dir);
    assert_eq!(idle["leader"], Value::Null, "{idle:#}");
    assert_eq!(model(&idle)["champion"], 1);
    let server = Server::spawn_with(
        &["server", "--dir", text(&dir), "--port", "0", "--reload-seconds", "1", "--log-flush", "200ms"],
        &[],
    );
    let leading = wait_for(&dir, "the server to lead", || {}, |status| status["leader"]["live"] == true);
    let server_holder = leading["leader"]["holder"].clone();

    let second = failover.then(|| SecondControlPlane::start(&dir, root.join(format!("{name}-loop-run.log"))));
    if let Some(second) = &second {
        second.wait_for("another control plane runs the loop");
    }

    let rows = traffic(&file, label);
    let mut next = 0;
    // Labels that are wrong for the performance trigger: each request gets another row's label
    // whenever it differs (most of the time, for three species).
    let wrong: Vec<(Value, Value)> = rows
        .iter()
        .enumerate()
        .map(|(index, (fields, truth))| {
            let other = rows.iter().cycle().skip(index + 1).map(|(_, label)| label).find(|label| *label != truth);
            (fields.clone(), other.unwrap_or(truth).clone())
        })
        .collect();
    let first_labels = if trigger == Trigger::Performance { &wrong } else { &rows };
    if trigger == Trigger::Manual {
        let asked = ok(&["loop", "retrain", "--dir", text(&dir)]);
        assert!(asked.contains("sent to the running control plane"), "{asked}");
    }
    let shadow = wait_for(
        &dir,
        "the retrained challenger in shadow",
        || {
            if trigger != Trigger::Manual {
                send(&server, name, first_labels, &mut next, 20);
            }
        },
        |status| {
            let stage = model(status)["stage"].as_str().unwrap_or_default();
            stage == "shadow" || (stage == "idle" && model(status)["last_decision"]["message"].is_string())
        },
    );
    assert_eq!(model(&shadow)["stage"], "shadow", "{shadow:#}");
    assert_eq!(model(&shadow)["challenger"], 2, "{shadow:#}");
    let promoted = wait_for(
        &dir,
        "the challenger's promotion",
        || send(&server, name, &rows, &mut next, 40),
        |status| model(status)["champion"] == 2 || model(status)["paused"].is_object(),
    );
    assert_eq!(model(&promoted)["champion"], 2, "{promoted:#}");
    // The status may already show a later decision (a tick can follow the promotion before this
    // poll: the volume trigger counts again), so the promotion is read from the events.
    assert!(model(&promoted)["last_decision"]["message"].is_string(), "{promoted:#}");
    let events = ok(&["events", "--kind", "loop", "--dir", text(&dir)]);
    let triggered = match trigger {
        Trigger::Manual => "retraining triggered by manual request by cli",
        Trigger::Performance => "retraining triggered by performance:accuracy",
        Trigger::Volume => "retraining triggered by volume (",
    };
    for step in [triggered, "gates passed: v2 enters shadow", "canary: v2", "promoted v2 to champion, replacing v1"] {
        assert!(events.contains(step), "no `{step}` in:\n{events}");
    }
    if let Some((_, bodies)) = &webhook {
        // Every alert reaches the webhook (the performance alert too); ours is among them.
        let mut seen = Vec::new();
        let busy = loop {
            let (_, body) =
                bodies.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| panic!("no alert:busy in {seen:#?}"));
            let body: Value = serde_json::from_str(&body).expect("JSON");
            if body["rule"] == "alert:busy" {
                break body;
            }
            seen.push(body);
        };
        assert_eq!((busy["kind"].as_str(), busy["model"].as_str()), (Some("alert"), Some(name)), "{busy}");
        assert!(busy["message"].as_str().unwrap_or_default().starts_with("alert: busy: predictions"), "{busy}");
    }
    let shown = ok(&["loop", "status", "--dir", text(&dir)]);
    assert!(shown.contains("champion       v2") && shown.contains("last decision"), "{shown}");

    // Pause and resume go to the running control plane.
    assert!(ok(&["loop", "pause", "--dir", text(&dir)]).contains("sent to the running control plane"));
    wait_for(&dir, "the pause", || {}, |status| model(status)["paused"]["cause"] == "person");
    ok(&["loop", "resume", "--dir", text(&dir)]);
    wait_for(&dir, "the resume", || {}, |status| model(status)["paused"].is_null());

    if name == "churn" {
        label_file_is_checked_row_by_row(&dir, &rows);
    }

    if let Some(second) = second {
        // The leader dies without giving its lease up: the waiting control plane takes over once
        // the lease lapses, and only then.
        assert_eq!(status(&dir)["leader"]["holder"], server_holder, "the server led until now");
        let mut server = server;
        server.kill();
        second.wait_for("this control plane runs the loop now");
        let taken = status(&dir);
        assert_eq!(taken["leader"]["live"], true, "{taken:#}");
        assert_ne!(taken["leader"]["holder"], server_holder, "{taken:#}");
    }
}

#[test]
fn the_loop_retrains_shadows_canaries_and_promotes_live_for_every_task() {
    let (data, described) = real_datasets();
    let root = tempfile::tempdir().expect("tempdir");
    for dataset in described.as_array().expect("datasets") {
        let name = dataset["name"].as_str().expect("name");
        let trigger = match name {
            "churn" => Trigger::Manual,
            "penguins" => Trigger::Performance,
            "housing" => Trigger::Volume,
            _ => continue,
        };
        loop_end_to_end(root.path(), data.path(), dataset, name == "churn", trigger);
    }
}

/// Starts `causeway server` with the loop on `dir`.
fn live_server(dir: &Path) -> Server {
    Server::spawn_with(
        &["server", "--dir", text(dir), "--port", "0", "--reload-seconds", "1", "--log-flush", "200ms"],
        &[],
    )
}

/// `kill -9` of the control plane during retraining, in shadow and in canary: each restart
/// resumes where the loop was, registers no second version for the same job, and records every
/// transition once.
#[test]
fn the_loop_survives_kill_dash_nine_in_every_stage() {
    let (data, described) = real_datasets();
    let churn = described
        .as_array()
        .expect("datasets")
        .iter()
        .find(|dataset| dataset["name"] == "churn")
        .expect("churn")
        .clone();
    let root = tempfile::tempdir().expect("tempdir");
    let file = data.path().join("churn.csv");
    let dir = root.path().join("churn");
    ok(&["init", "--from", text(&file), "--label", "churn", "--positive", "yes", "--dir", text(&dir)]);
    let config = dir.join("causeway.toml");
    // A slow trainer, so a retraining is long enough to be killed in; a canary long enough to be
    // killed in too.
    let toml = std::fs::read_to_string(&config).expect("causeway.toml").replace(
        "label = \"churn\"\n",
        "label = \"churn\"\ntrainer = { family = \"gbdt\", rounds = 1500, learning_rate = 0.02, max_depth = 8, early_stopping_rounds = 1500 }\n",
    ) + &LIVE_LOOP.replace("canary = \"2s\"", "canary = \"10s\"");
    std::fs::write(&config, toml).expect("write causeway.toml");
    ok(&["train", "--dir", text(&dir), "--promote"]);
    let rows = traffic(&file, churn["label"].as_str().expect("label"));
    let mut next = 0;

    // 1. Killed while retraining: the restarted loop runs the same job again.
    let mut server = live_server(&dir);
    wait_for(&dir, "the server to lead", || {}, |status| status["leader"]["live"] == true);
    ok(&["loop", "retrain", "--dir", text(&dir)]);
    let retraining = wait_for(&dir, "the retraining", || {}, |status| model(status)["stage"] != "idle");
    assert_eq!(model(&retraining)["stage"], "retraining", "{retraining:#}");
    assert_eq!(model(&retraining)["job"], 1);
    server.kill();
    let server = live_server(&dir);
    let shadow = wait_for(&dir, "the challenger in shadow", || {}, |status| model(status)["stage"] == "shadow");
    assert_eq!(model(&shadow)["challenger"], 2, "{shadow:#}");

    // 2. Killed in shadow: the restarted loop keeps shadowing the same challenger.
    let mut server = server;
    server.kill();
    let server = live_server(&dir);
    let canary = wait_for(
        &dir,
        "the canary",
        || send(&server, "churn", &rows, &mut next, 20),
        |status| model(status)["stage"] == "canary",
    );
    assert_eq!(model(&canary)["challenger"], 2, "{canary:#}");
    let canary_since = model(&canary)["stage_since_ms"].clone();

    // 3. Killed in canary: the restarted loop resumes the canary from when it began.
    let mut server = server;
    server.kill();
    let server = live_server(&dir);
    let resumed = wait_for(&dir, "the restarted leader", || {}, |status| status["leader"]["live"] == true);
    assert_eq!(model(&resumed)["stage"], "canary", "{resumed:#}");
    assert_eq!(model(&resumed)["stage_since_ms"], canary_since);
    let promoted = wait_for(
        &dir,
        "the promotion",
        || send(&server, "churn", &rows, &mut next, 40),
        |status| model(status)["champion"] == 2 || model(status)["paused"].is_object(),
    );
    assert_eq!(model(&promoted)["champion"], 2, "{promoted:#}");

    let meta = causeway_store::MetaStore::open(&dir.join(".causeway/meta.db")).expect("meta");
    let versions: Vec<u32> =
        meta.model_versions("churn").expect("versions").iter().map(|version| version.version).collect();
    assert_eq!(versions, vec![1, 2], "one job, one version");
    let events = ok(&["events", "--kind", "loop", "--dir", text(&dir)]);
    for (step, times) in [
        ("retraining triggered by manual request by cli", 1),
        ("gates passed: v2 enters shadow", 1),
        ("canary: v2", 1),
        ("promoted v2", 1),
    ] {
        assert_eq!(events.matches(step).count(), times, "`{step}` in:\n{events}");
    }
}

/// `causeway labels ingest`: labels the server already holds are unchanged, a differing one is
/// kept out until `--correct` (audited), duplicates, unknown ids and malformed rows are counted
/// and named. Needs the live requests `live-0`, `live-1` and `live-2` of `rows` to be labelled.
fn label_file_is_checked_row_by_row(dir: &Path, rows: &[(Value, Value)]) {
    let label = |index: usize| rows[index].1.as_str().expect("a text label").to_string();
    let flipped = if label(2) == "yes" { "no" } else { "yes" };
    let file = dir.join("labels.csv");
    let csv = format!(
        "request_id,label\nlive-0,{}\nlive-1,{}\nlive-2,{flipped}\nlive-0,{}\nnever-predicted,yes\nlive-3,maybe\n,yes\n",
        label(0),
        label(1),
        label(0)
    );
    std::fs::write(&file, csv).expect("labels.csv");
    let args = ["labels", "ingest", text(&file), "--dir", text(dir)];
    let output = run(&args);
    let shown = format!(
        "$ causeway {}\nexit code {}\n--- stdout\n{}--- stderr\n{}",
        args.join(" "),
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    causeway_test_support::assert_snapshot(
        env!("CARGO_MANIFEST_DIR"),
        "labels_ingest_checks_every_row",
        &shown,
        &[(text(dir), "<DIR>")],
    );
    let corrected = run(&["labels", "ingest", text(&file), "--correct", "--dir", text(dir)]);
    let said = String::from_utf8_lossy(&corrected.stdout);
    assert!(said.contains("1 corrected"), "{said}");
    let audit = ok(&["events", "--kind", "audit", "--dir", text(dir)]);
    assert!(audit.contains("corrected the label of request live-2"), "{audit}");
}

/// The blocks of a drafted `causeway.toml`: (header line, body lines).
fn blocks(text: &str) -> Vec<(String, String)> {
    let mut blocks: Vec<(String, String)> = vec![(String::new(), String::new())];
    for line in text.lines() {
        if line.starts_with('[') {
            blocks.push((line.to_string(), String::new()));
        } else if let Some((_, body)) = blocks.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    blocks
}

fn named<'a>(status: &'a Value, model: &str) -> &'a Value {
    status["models"]
        .as_array()
        .and_then(|models| models.iter().find(|entry| entry["model"] == model))
        .unwrap_or(&Value::Null)
}

/// One project, two models: a multi-class `[model]` (penguins) retrained by a performance alert
/// and a regression in `[[models]]` (housing) with its own dataset, features and `[models.loop]`,
/// retrained by the volume of new labels; one server loops both to promotion.
#[test]
fn one_project_loops_a_multiclass_and_a_regression_model() {
    let (data, _) = real_datasets();
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("zoo");
    let penguins = data.path().join("penguins.csv");
    let housing = data.path().join("housing.csv");
    ok(&["init", "--from", text(&penguins), "--label", "species", "--dir", text(&dir)]);
    let drafts = root.path().join("housing-draft");
    ok(&["init", "--from", text(&housing), "--label", "Sale_Price", "--dir", text(&drafts)]);
    let mut toml = std::fs::read_to_string(dir.join("causeway.toml")).expect("causeway.toml");
    toml.push_str(&LIVE_LOOP.replace("retrain_on = []", "retrain_on = [\"performance\"]"));
    toml.push_str("\n[monitor]\nmin_labeled_positives = 20\n");
    // The housing draft's expectations, model and features become the second model.
    let draft = std::fs::read_to_string(drafts.join("causeway.toml")).expect("draft");
    let (mut model_body, mut features_body) = (String::new(), String::new());
    for (header, body) in blocks(&draft) {
        match header.as_str() {
            "[model]" => model_body = body,
            "[features]" => features_body = body,
            _ if header.starts_with("[[datasets.") => toml.push_str(&format!("\n{header}\n{body}")),
            _ => {}
        }
    }
    toml.push_str(&format!("\n[[models]]\n{model_body}\n[models.features]\n{features_body}"));
    toml.push_str(&format!(
        "\n[models.loop]\n{}",
        LIVE_LOOP
            .replace("[loop]\n", "")
            .replace("[loop.gates]", "[models.loop.gates]")
            .replace("retrain_on = []", "retrain_on = [\"volume\"]\nvolume = 60")
    ));
    std::fs::write(dir.join("causeway.toml"), &toml).expect("write causeway.toml");
    ok(&["ingest", text(&housing), "--name", "housing", "--dir", text(&dir)]);
    let refused = run(&["train", "--dir", text(&dir)]);
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("several models (penguins, housing): name one with --model")
    );
    ok(&["train", "--model", "penguins", "--promote", "--dir", text(&dir)]);
    ok(&["train", "--model", "housing", "--promote", "--dir", text(&dir)]);

    let server = live_server(&dir);
    let traffic_of = |file: &Path, label: &str| traffic(file, label);
    let (penguin_rows, housing_rows) = (traffic_of(&penguins, "species"), traffic_of(&housing, "Sale_Price"));
    let wrong: Vec<(Value, Value)> =
        penguin_rows.iter().map(|(fields, _)| (fields.clone(), Value::String("Gentoo".into()))).collect();
    let (mut next_penguin, mut next_house) = (0, 0);
    let done = wait_for(
        &dir,
        "both models' promotions",
        || {
            // Wrong labels until the penguins model is retrained, right ones after.
            let retrained = status(&dir);
            let penguin_labels =
                if named(&retrained, "penguins")["stage"] == "idle" && named(&retrained, "penguins")["champion"] == 1 {
                    &wrong
                } else {
                    &penguin_rows
                };
            send(&server, "penguins", penguin_labels, &mut next_penguin, 20);
            send(&server, "housing", &housing_rows, &mut next_house, 20);
        },
        |status| named(status, "penguins")["champion"] == 2 && named(status, "housing")["champion"] == 2,
    );
    let events = ok(&["events", "--kind", "loop", "--dir", text(&dir)]);
    assert!(events.contains("retraining triggered by performance:accuracy"), "{events}");
    assert!(events.contains("retraining triggered by volume ("), "{events}");
    assert_eq!(done["models"].as_array().map(Vec::len), Some(2), "{done:#}");
}

/// The drift and schedule triggers with real processes: one project, two models on the churn
/// data — `churn` retrains when its live traffic drifts (one input tripled), `nightly` when its
/// cron schedule comes due (every minute here).
#[test]
fn drift_and_the_schedule_start_retraining_live() {
    let (data, _) = real_datasets();
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("churn");
    let file = data.path().join("churn.csv");
    ok(&["init", "--from", text(&file), "--label", "churn", "--positive", "yes", "--dir", text(&dir)]);
    let mut toml = std::fs::read_to_string(dir.join("causeway.toml")).expect("causeway.toml");
    let model_body = blocks(&toml)
        .into_iter()
        .find(|(header, _)| header == "[model]")
        .map(|(_, body)| body)
        .expect("a [model] section");
    toml.push_str(&LIVE_LOOP.replace("retrain_on = []", "retrain_on = [\"drift\"]"));
    toml.push_str("\n[monitor]\ndrift_window = \"15s\"\n");
    toml.push_str(&format!("\n[[models]]\n{}", model_body.replace("name = \"churn\"", "name = \"nightly\"")));
    toml.push_str(&format!(
        "\n[models.loop]\n{}",
        LIVE_LOOP
            .replace("[loop]\n", "")
            .replace("[loop.gates]", "[models.loop.gates]")
            .replace("retrain_on = []", "retrain_on = [\"schedule\"]\nschedule = \"* * * * *\"")
    ));
    std::fs::write(dir.join("causeway.toml"), &toml).expect("write causeway.toml");
    ok(&["train", "--model", "churn", "--promote", "--dir", text(&dir)]);
    ok(&["train", "--model", "nightly", "--promote", "--dir", text(&dir)]);
    let scheduled = status(&dir);
    assert!(named(&scheduled, "nightly")["next_scheduled_ms"].is_i64(), "{scheduled:#}");

    let server = live_server(&dir);
    // Drifted traffic: the day's minutes tripled.
    let drifted: Vec<(Value, Value)> = traffic(&file, "churn")
        .into_iter()
        .map(|(mut fields, truth)| {
            if let Some(minutes) = fields["total_day_minutes"].as_f64() {
                fields["total_day_minutes"] = json!(minutes * 3.0);
            }
            (fields, truth)
        })
        .collect();
    let mut next = 0;
    let both = wait_for(
        &dir,
        "a drift retraining of churn and a scheduled one of nightly",
        || send(&server, "churn", &drifted, &mut next, 20),
        // A decision of either model's loop starts with its retraining.
        |status| {
            named(status, "churn")["last_decision"].is_object() && named(status, "nightly")["last_decision"].is_object()
        },
    );
    let events = ok(&["events", "--kind", "loop", "--dir", text(&dir)]);
    assert!(events.contains("retraining triggered by drift:total_day_minutes"), "{events}\n{both:#}");
    assert!(events.contains("retraining triggered by schedule `* * * * *`"), "{events}\n{both:#}");
    let alerts = ok(&["events", "--kind", "alert", "--dir", text(&dir)]);
    assert!(alerts.contains("`total_day_minutes` drifted: PSI"), "{alerts}");
}

/// `[loop] train_on = ["predictions"]`: the retraining trains on what was served — the features
/// the prediction log holds and the labels that arrived for them — and its lineage says so.
#[test]
fn a_retraining_can_train_on_the_served_predictions_and_their_labels() {
    let (data, _) = real_datasets();
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("housing");
    let file = data.path().join("housing.csv");
    ok(&["init", "--from", text(&file), "--label", "Sale_Price", "--dir", text(&dir)]);
    let mut toml = std::fs::read_to_string(dir.join("causeway.toml")).expect("causeway.toml");
    toml.push_str(&LIVE_LOOP.replace("retrain_on = []", "retrain_on = []\ntrain_on = [\"predictions\"]"));
    // An alert of our own tells when the loop has seen the labelled traffic.
    toml.push_str("\n[[monitor.alerts]]\nname = \"seen\"\nmetric = \"labelled\"\nabove = 300\nwindow = \"10m\"\nmin_labelled = 1\n");
    std::fs::write(dir.join("causeway.toml"), &toml).expect("write causeway.toml");
    ok(&["train", "--promote", "--dir", text(&dir)]);
    let server = live_server(&dir);
    let rows = traffic(&file, "Sale_Price");
    let mut next = 0;
    wait_for(
        &dir,
        "the loop to see the labelled traffic",
        || send(&server, "housing", &rows, &mut next, 50),
        |status| {
            model(status)["firing"].as_array().is_some_and(|firing| firing.iter().any(|rule| rule == "alert:seen"))
        },
    );
    ok(&["loop", "retrain", "--dir", text(&dir)]);
    wait_for(
        &dir,
        "the retraining",
        || {},
        |status| {
            model(status)["last_decision"]["message"].as_str().is_some_and(|message| !message.starts_with("retraining"))
        },
    );
    let events = ok(&["events", "--kind", "loop", "--dir", text(&dir)]);
    assert!(events.contains("challenger v2 trained on predictions@"), "{events}");
    let meta = causeway_store::MetaStore::open(&dir.join(".causeway/meta.db")).expect("meta");
    let version = meta.model_version("housing", 2).expect("v2");
    assert!(version.dataset.starts_with("predictions@"), "{}", version.dataset);
    drop(server);
}
