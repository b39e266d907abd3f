//! `causeway demo`: progress bars, the narrated timeline and the closing summary around the
//! library's demo runner.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use causeway_demo::live::{LiveOptions, run_live_demo};
use causeway_demo::scenario::{DemoOptions, DemoOutcome, Observer, Scenario, run_demo};
use causeway_types::{Event, EventKind, format_date};
use clap::{Args, Subcommand, ValueEnum};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Debug, Subcommand)]
pub enum DemoCommand {
    /// Card-fraud detection: weeks of transactions replayed in seconds through ingest, features,
    /// training, registry, serving, monitoring, retraining and a shadow/canary rollout.
    ///
    /// Exits 0 only when the loop behaved as the scenario expects. Writes report.html into the
    /// project directory. Afterwards `causeway serve --dir DIR` serves the model `fraud`.
    ///
    /// Example: causeway demo fraud --seed 7 --dir /tmp/fraud
    Fraud(FraudArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ScenarioArg {
    /// Concept drift; the retrained challenger is promoted.
    Fraud,
    /// The challenger is trained on corrupted labels and rolled back during canary.
    BadChallenger,
}

#[derive(Debug, Args)]
pub struct FraudArgs {
    /// The project directory to create (default: a new temporary directory, kept afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Seed of the synthetic data; every seed tells the same story.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Which story to tell.
    #[arg(long, value_enum, default_value_t = ScenarioArg::Fraud)]
    scenario: ScenarioArg,
    /// Transactions per simulated day [default: 2500; 1000 with --live].
    #[arg(long)]
    transactions_per_day: Option<usize>,
    /// Number of customers.
    #[arg(long, default_value_t = 3_000)]
    customers: usize,
    /// Write a JSON summary to this file.
    #[arg(long)]
    summary_json: Option<PathBuf>,
    /// No progress bars (for logs and CI).
    #[arg(long)]
    quiet: bool,
    /// Tell the story with real processes on the wall clock: a control plane (`causeway loop
    /// run`) and two `causeway serve` replicas started as children on loopback, traffic and
    /// delayed labels sent to them over HTTP. About two minutes.
    #[arg(long)]
    live: bool,
    /// With --live: how long a simulated day lasts on the wall clock; every window, shadow and
    /// canary length is scaled by it.
    #[arg(long, default_value = "2s", value_name = "DURATION", requires = "live")]
    day_length: causeway_types::Span,
}

struct Narrator {
    bar: ProgressBar,
    quiet: bool,
    started: Instant,
    /// How event times read: dates for the simulated calendar, times of day for `--live`.
    stamp: fn(i64) -> String,
}

/// `HH:MM:SS` (UTC) of an epoch-millisecond time.
fn time_of_day(ms: i64) -> String {
    let mut text = causeway_types::format_timestamp(ms);
    text.drain(..11);
    text.truncate(8);
    text
}

impl Narrator {
    fn say(&self, line: String) {
        // A hidden bar (no terminal) would swallow the line: print it plainly then.
        if self.quiet || self.bar.is_hidden() {
            println!("{line}");
        } else {
            self.bar.println(line);
        }
    }
}

impl Observer for Narrator {
    fn step(&mut self, title: &str, total: u64) {
        self.bar.finish_and_clear();
        self.bar = if self.quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
        };
        let template = if total > 0 {
            "{spinner} {prefix:<42} [{bar:30}] {pos}/{len} {msg}"
        } else {
            "{spinner} {prefix:<42} {msg}"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            self.bar.set_style(style.progress_chars("=> "));
        }
        self.bar.set_prefix(title.to_string());
        self.bar.enable_steady_tick(std::time::Duration::from_millis(120));
        self.say(format!("[{:>6.1}s] ▶ {title}", self.started.elapsed().as_secs_f64()));
    }

    fn advance(&mut self, done: u64, message: &str) {
        self.bar.set_position(done);
        self.bar.set_message(message.to_string());
    }

    fn event(&mut self, event: &Event) {
        let marker = match event.kind {
            EventKind::Alert => "⚠ alert ",
            EventKind::Resolved => "✓ ok    ",
            EventKind::Loop => "↻ loop  ",
            EventKind::Audit => "· audit ",
            EventKind::Data => "· data  ",
        };
        self.say(format!("  {}  {marker} {}", (self.stamp)(event.at_ms), event.message));
    }
}

pub fn run(command: DemoCommand) -> Result<ExitCode> {
    let DemoCommand::Fraud(args) = command;
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => tempfile::Builder::new()
            .prefix("causeway-demo-")
            .tempdir()
            .context("cannot create a temporary directory")?
            .keep(),
    };
    let scenario = match args.scenario {
        ScenarioArg::Fraud => Scenario::Fraud,
        ScenarioArg::BadChallenger => Scenario::BadChallenger,
    };
    if args.live {
        return run_live(&args, &dir);
    }
    let options = DemoOptions {
        scenario,
        seed: args.seed,
        transactions_per_day: args.transactions_per_day.unwrap_or(2_500),
        customers: args.customers,
        ..DemoOptions::default()
    };
    println!(
        "Causeway demo `{}` (seed {}): {} days of history, then {} live days of {} transactions, in {}",
        options.scenario.as_str(),
        options.seed,
        options.history_days,
        options.live_days(),
        options.transactions_per_day,
        dir.display()
    );
    let started = Instant::now();
    let mut narrator = Narrator { bar: ProgressBar::hidden(), quiet: args.quiet, started, stamp: format_date };
    let outcome = run_demo(&dir, &options, &mut narrator)?;
    finish(&args, narrator, &outcome)
}

fn run_live(args: &FraudArgs, dir: &std::path::Path) -> Result<ExitCode> {
    if args.scenario != ScenarioArg::Fraud {
        anyhow::bail!(
            "--live tells the `fraud` story only: `bad-challenger` trains its challenger on deliberately corrupted labels, \
             which a live control plane never does; run it without --live"
        );
    }
    let executable = std::env::current_exe().context("cannot find the causeway executable to start the children")?;
    let mut options = LiveOptions::new(executable);
    options.demo.seed = args.seed;
    options.demo.customers = args.customers;
    if let Some(count) = args.transactions_per_day {
        options.demo.transactions_per_day = count;
    }
    if args.day_length.millis() < 500 {
        anyhow::bail!("--day-length {} is too short: a simulated day needs at least 500ms", args.day_length);
    }
    options.day = args.day_length.to_std();
    println!(
        "Causeway live demo `fraud` (seed {}): {} days of history, then up to {} live days of {} transactions, a day every {}, in {}",
        options.demo.seed,
        options.demo.history_days,
        options.demo.live_days(),
        options.demo.transactions_per_day,
        args.day_length,
        dir.display()
    );
    let started = Instant::now();
    let mut narrator = Narrator { bar: ProgressBar::hidden(), quiet: args.quiet, started, stamp: time_of_day };
    let outcome = run_live_demo(dir, &options, &mut narrator)?;
    finish(args, narrator, &outcome)
}

/// Prints the summary, writes the JSON summary if asked, and exits 0 only when every
/// expectation held.
fn finish(args: &FraudArgs, narrator: Narrator, outcome: &DemoOutcome) -> Result<ExitCode> {
    narrator.bar.finish_and_clear();
    print_summary(outcome, narrator.stamp, narrator.started.elapsed().as_secs_f64());
    if let Some(path) = &args.summary_json {
        std::fs::write(path, serde_json::to_vec_pretty(&summary_json(outcome))?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(if outcome.passed() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn metric(value: Option<f64>) -> String {
    value.map_or_else(|| "–".into(), |value| format!("{value:.3}"))
}

fn print_summary(outcome: &DemoOutcome, stamp: fn(i64) -> String, seconds: f64) {
    let mut versions = Table::new();
    versions.load_style(UTF8_FULL_CONDENSED);
    versions.set_header(vec![
        "version",
        "family",
        "trained on",
        "holdout AUC",
        "holdout recall",
        "holdout FPR",
        "live AUC",
        "live recall",
        "aliases",
    ]);
    for version in &outcome.versions {
        versions.add_row(vec![
            format!("v{}", version.version),
            version.flavor.clone(),
            version.dataset.clone(),
            metric(version.holdout.get("roc_auc").copied()),
            metric(version.holdout.get("recall").copied()),
            metric(version.holdout.get("false_positive_rate").copied()),
            metric(version.live_roc_auc),
            metric(version.live_recall),
            version.aliases.join(", "),
        ]);
    }
    println!("\nModel versions\n{versions}");
    let mut changes = Table::new();
    changes.load_style(UTF8_FULL_CONDENSED);
    changes.set_header(vec![if outcome.live.is_some() { "time (UTC)" } else { "date" }, "loop step"]);
    for event in &outcome.loop_events {
        changes.add_row(vec![stamp(event.at_ms), event.message.clone()]);
    }
    println!("\nRetraining, promotions and rollbacks\n{changes}");
    let mut alerts = Table::new();
    alerts.load_style(UTF8_FULL_CONDENSED);
    alerts.set_header(vec![if outcome.live.is_some() { "time (UTC)" } else { "date" }, "alert"]);
    for event in &outcome.alerts {
        alerts.add_row(vec![stamp(event.at_ms), event.message.clone()]);
    }
    println!("\nAlerts\n{alerts}");
    let mut checks = Table::new();
    checks.load_style(UTF8_FULL_CONDENSED);
    checks.set_header(vec!["expectation", "result"]);
    for check in &outcome.checks {
        checks.add_row(vec![
            check.expectation.clone(),
            if check.passed { "passed".into() } else { "FAILED".to_string() },
        ]);
    }
    println!("\nExpectations\n{checks}");
    let timings: Vec<String> = outcome.timings.iter().map(|(name, seconds)| format!("{name} {seconds:.1}s")).collect();
    println!(
        "\n{} transactions scored live, {} prediction-log records dropped; served = offline on {} rows (max |Δ| {:.1e})",
        outcome.scored, outcome.dropped, outcome.served_offline.0, outcome.served_offline.1
    );
    if let Some(live) = &outcome.live {
        println!("\nProcesses (each logs to {}/logs/)", outcome.dir.display());
        for command in &live.commands {
            println!("  {command}");
        }
        for (address, answered, failed) in &live.replicas {
            println!("  replica on {address}: {answered} requests answered, {failed} failed");
        }
        let by_version: Vec<String> =
            live.answered_by_version.iter().map(|(version, count)| format!("v{version} {count}")).collect();
        println!(
            "  answered by version: {}; {} labels posted to /v1/labels",
            by_version.join(", "),
            live.labels_posted
        );
        match live.alert_to_promotion {
            Some((seconds, ticks)) => println!(
                "  performance alert to promotion: {seconds:.1}s, {ticks} ticks of {}s ({:.1} simulated days)",
                live.tick_seconds,
                seconds / live.day_seconds
            ),
            None => println!("  performance alert to promotion: did not happen"),
        }
    }
    println!("timings: {} (total {seconds:.1}s)", timings.join(", "));
    println!("report: {}", outcome.report.display());
    println!("serve it: causeway serve --dir {}", outcome.dir.display());
    if outcome.passed() {
        println!("result: the loop behaved as expected");
    } else {
        println!("result: the loop did NOT behave as expected (see FAILED above)");
    }
}

fn summary_json(outcome: &DemoOutcome) -> serde_json::Value {
    serde_json::json!({
        "passed": outcome.passed(),
        "dir": outcome.dir,
        "report": outcome.report,
        "final_champion": outcome.final_champion,
        "scored": outcome.scored,
        "dropped": outcome.dropped,
        "served_offline": {"rows": outcome.served_offline.0, "max_abs_difference": outcome.served_offline.1},
        "checks": outcome.checks.iter().map(|check| serde_json::json!({"expectation": check.expectation, "passed": check.passed})).collect::<Vec<_>>(),
        "versions": outcome.versions.iter().map(|version| serde_json::json!({
            "version": version.version,
            "flavor": version.flavor,
            "dataset": version.dataset,
            "holdout": version.holdout,
            "live_roc_auc": version.live_roc_auc,
            "live_recall": version.live_recall,
            "aliases": version.aliases,
        })).collect::<Vec<_>>(),
        "loop_events": outcome.loop_events.iter().map(|event| serde_json::json!({"at": causeway_types::format_timestamp(event.at_ms), "message": event.message})).collect::<Vec<_>>(),
        "alerts": outcome.alerts.iter().map(|event| serde_json::json!({"at": causeway_types::format_timestamp(event.at_ms), "message": event.message})).collect::<Vec<_>>(),
        "live": outcome.live.as_ref().map(|live| serde_json::json!({
            "day_seconds": live.day_seconds,
            "tick_seconds": live.tick_seconds,
            "commands": live.commands,
            "replicas": live.replicas.iter().map(|(address, answered, failed)| serde_json::json!({"address": address, "answered": answered, "failed": failed})).collect::<Vec<_>>(),
            "answered_by_version": live.answered_by_version.iter().map(|(version, count)| (version.to_string(), serde_json::json!(count))).collect::<serde_json::Map<_, _>>(),
            "labels_posted": live.labels_posted,
            "alert_to_promotion": live.alert_to_promotion.map(|(seconds, ticks)| serde_json::json!({"seconds": seconds, "ticks": ticks})),
        })),
        "timings_seconds": outcome.timings.iter().map(|(name, seconds)| (name.clone(), serde_json::json!(seconds))).collect::<serde_json::Map<_, _>>(),
    })
}
