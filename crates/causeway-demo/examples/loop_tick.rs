//! Benchmark: what one loop tick costs over many models and a long prediction log.
//!
//! `cargo run --release -p causeway-demo --example loop_tick -- [--predictions N] [--models M]`
//!
//! Trains the fraud demo's champion once and registers it as M models (a retraining trigger is
//! off, so ticks observe and decide but never train). Logs N predictions through the prediction
//! log over the longest monitoring window, 20 % of them labelled, and measures a steady tick:
//! a summarising pass over one tick's new predictions, then one tick per model. Then adds
//! history older than the windows, 2× and 9× more (3× and 10× in all), and measures again. The
//! anchor is what a tick did before summaries: reading the window's segments back, timed over
//! one model's window at 1×.

use std::sync::Arc;
use std::time::{Duration, Instant};

use causeway_demo::FRAUD_CONFIG;
use causeway_demo::scenario::{DemoOptions, generator, write_history_csv};
use causeway_loop::pipeline::{load_dataset, snapshot_id, train_and_register, training_set};
use causeway_loop::retrain::Retrainer;
use causeway_loop::windows::Summarizer;
use causeway_loop::{Controller, Jobs, Project};
use causeway_models::FeatureKind;
use causeway_monitor::{PredictionLog, PredictionRecord, Role, read_window};
use causeway_types::{LabelRecord, SeededRng};

const DAY_MS: i64 = 86_400_000;

struct Options {
    predictions: u64,
    models: usize,
}

fn options() -> Options {
    let mut options = Options { predictions: 10_000_000, models: 20 };
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    for pair in arguments.chunks(2) {
        let value = pair.get(1).and_then(|value| value.replace('_', "").parse::<u64>().ok());
        match (pair[0].as_str(), value) {
            ("--predictions", Some(value)) => options.predictions = value,
            ("--models", Some(value)) => options.models = value as usize,
            _ => {
                eprintln!("usage: loop_tick [--predictions N] [--models M]");
                std::process::exit(2);
            }
        }
    }
    options
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Logs `count` predictions spread over `[from_ms, to_ms)` round-robin over the models, and
/// labels one in five (arrived by `to_ms`).
fn log_predictions(
    project: &Project,
    models: &[String],
    features: &[FeatureKind],
    count: u64,
    (from_ms, to_ms): (i64, i64),
    rng: &mut SeededRng,
    tag: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let log = PredictionLog::start(project.blobs.clone(), 100_000, 100_000);
    let mut labels = Vec::new();
    let step = ((to_ms - from_ms) as f64 / count.max(1) as f64).max(0.0);
    for index in 0..count {
        let score = rng.uniform();
        let request_id = format!("{tag}-{index}");
        let record = PredictionRecord {
            request_id: request_id.clone(),
            timestamp_ms: from_ms + (index as f64 * step) as i64,
            model: models[index as usize % models.len()].clone(),
            version: 1,
            role: Role::Served,
            score,
            prediction: score,
            latency_us: 200 + (rng.uniform() * 800.0) as u64,
            features: features
                .iter()
                .map(|kind| match kind {
                    FeatureKind::Numeric => rng.normal(),
                    FeatureKind::Categorical { .. } => (rng.uniform() * 5.0).floor(),
                })
                .collect(),
        };
        while !log.log(record.clone()) {
            std::thread::sleep(Duration::from_millis(1));
        }
        if index % 5 == 0 {
            labels.push((
                request_id,
                LabelRecord { label: f64::from(u8::from(rng.uniform() < score)), arrived_ms: to_ms },
            ));
        }
        if labels.len() >= 100_000 {
            project.meta.put_labels(&std::mem::take(&mut labels))?;
        }
    }
    project.meta.put_labels(&labels)?;
    log.flush()?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let options = options();
    let dir = tempfile::tempdir()?;
    let config = FRAUD_CONFIG.replace("retrain_on = [\"performance\"]", "retrain_on = []");
    let project = Arc::new(Project::init(dir.path(), &config)?.0);

    // One champion, registered under every model name.
    let demo = DemoOptions::default();
    let generator = generator(&demo);
    let first_live = generator.day_start_ms(demo.history_days);
    let csv = write_history_csv(&generator, &demo, dir.path(), &mut |_| {})?;
    let suite = project.config.suite("transactions");
    project.ingestor().ingest_file("transactions", &csv, &suite, first_live)?;
    let data = load_dataset(&project, "transactions")?;
    let from = generator.day_start_ms(demo.history_days - demo.training_days);
    let set = training_set(&project, &data, from, first_live, first_live)?;
    let snapshot = snapshot_id(&project, "transactions", from, first_live)?;
    let trained = train_and_register(&project, &set, &snapshot, first_live, "bench")?;
    let features: Vec<FeatureKind> =
        trained.outcome.artifact.signature.features.iter().map(|feature| feature.kind.clone()).collect();
    let models: Vec<String> = (0..options.models).map(|index| format!("model-{index:02}")).collect();
    for model in &models {
        project.meta.create_registered_model(model, "", &[], "bench", first_live)?;
        let mut record = trained.version.clone();
        record.model = model.clone();
        record.version = 1;
        project.meta.register_version(&record, "bench")?;
        project.meta.apply_rollout(&causeway_store::Rollout {
            model,
            change: causeway_store::RolloutChange::Champion(1),
            expected_generation: None,
            actor: "bench",
            at_ms: first_live,
            reason: "benchmark",
        })?;
    }

    let now = first_live + 30 * DAY_MS;
    let monitor = &project.config.monitor;
    let longest = monitor
        .alerts
        .iter()
        .map(|rule| rule.window.millis())
        .chain([monitor.drift_window.millis(), monitor.performance_window.millis()])
        .max()
        .unwrap_or(DAY_MS);
    let window = (now - longest, now);
    let mut rng = SeededRng::new(11);
    println!(
        "{} models, {} predictions in the windows ({} days), 20 % labelled",
        options.models,
        options.predictions,
        longest / DAY_MS
    );
    let started = Instant::now();
    log_predictions(&project, &models, &features, options.predictions, window, &mut rng, "window")?;
    println!("logged in {:.1} s", started.elapsed().as_secs_f64());

    let retrainer: Retrainer = Arc::new(|_: &Project, _: &causeway_loop::retrain::RetrainJob| {
        Err(causeway_loop::Error::Precondition("the benchmark never retrains".into()))
    });
    let mut controllers = Vec::new();
    for model in &models {
        controllers.push(
            Controller::for_model(project.clone(), model, retrainer.clone(), Jobs::Inline)?.summarized_by_caller(),
        );
    }
    let mut summarizer = Summarizer::new(project.clone());
    let started = Instant::now();
    let first = summarizer.pass(now)?;
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "first summarising pass: {} segments, {} predictions, {} labels in {elapsed:.1} s ({:.0} predictions/s)",
        first.segments,
        first.predictions,
        first.labels,
        first.predictions as f64 / elapsed
    );

    // The anchor: a tick before summaries read the window's segments back, per model.
    let started = Instant::now();
    let records = read_window(&project.blobs, window.0, window.1)?;
    let reread = started.elapsed().as_secs_f64();
    println!("anchor: re-reading the window's segments ({} records, all models) takes {reread:.2} s", records.len());
    drop(records);

    let mut results = Vec::new();
    let mut history = 1u64;
    let mut tick_at = now;
    for target in [1u64, 3, 10] {
        if target > history {
            let older = options.predictions * (target - history);
            let span = (now - 89 * DAY_MS, now - longest - DAY_MS);
            let started = Instant::now();
            log_predictions(&project, &models, &features, older, span, &mut rng, &format!("history{target}"))?;
            let logged = started.elapsed().as_secs_f64();
            let started = Instant::now();
            summarizer.pass(tick_at)?;
            println!(
                "{target}× history: logged {older} older predictions in {logged:.1} s, summarised in {:.1} s",
                started.elapsed().as_secs_f64()
            );
            history = target;
        }
        let (mut ticks, mut passes) = (Vec::new(), Vec::new());
        for round in 0..5 {
            // One tick's worth of new traffic, then the pass and a tick of every model.
            tick_at += 60_000;
            let tag = format!("tick{target}-{round}");
            log_predictions(&project, &models, &features, 10_000, (tick_at - 60_000, tick_at), &mut rng, &tag)?;
            let started = Instant::now();
            summarizer.pass(tick_at)?;
            passes.push(started.elapsed().as_secs_f64());
            for controller in &mut controllers {
                controller.tick(tick_at)?;
            }
            ticks.push(started.elapsed().as_secs_f64());
        }
        let (tick, pass) = (median(ticks), median(passes));
        println!(
            "{target}× history: tick over {} models {tick:.3} s (median of 5; the summarising pass {pass:.3} s of it)",
            options.models
        );
        results.push((target, tick));
    }
    let base = results[0].1;
    println!();
    println!("| history | tick (median of 5) | vs 1× | vs re-reading the window |");
    println!("|---|---|---|---|");
    for (target, tick) in &results {
        println!(
            "| {target}× | {tick:.3} s | {:.2}× | {:.0}× faster |",
            tick / base,
            reread * options.models as f64 / tick
        );
    }
    Ok(())
}
