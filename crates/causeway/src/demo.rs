//! `causeway demo`: progress bars, the narrated timeline and the closing summary around the
//! library's demo runner.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
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
    /// Transactions per simulated day.
    #[arg(long, default_value_t = 2_500)]
    transactions_per_day: usize,
    /// Number of customers.
    #[arg(long, default_value_t = 3_000)]
    customers: usize,
    /// Write a JSON summary to this file.
    #[arg(long)]
    summary_json: Option<PathBuf>,
    /// No progress bars (for logs and CI).
    #[arg(long)]
    quiet: bool,
}

struct Narrator {
    bar: ProgressBar,
    quiet: bool,
    started: Instant,
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
        self.say(format!("  {}  {marker} {}", format_date(event.at_ms), event.message));
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
    let options = DemoOptions {
        scenario: match args.scenario {
            ScenarioArg::Fraud => Scenario::Fraud,
            ScenarioArg::BadChallenger => Scenario::BadChallenger,
        },
        seed: args.seed,
        transactions_per_day: args.transactions_per_day,
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
    let mut narrator = Narrator { bar: ProgressBar::hidden(), quiet: args.quiet, started };
    let outcome = run_demo(&dir, &options, &mut narrator)?;
    narrator.bar.finish_and_clear();
    print_summary(&outcome, started.elapsed().as_secs_f64());
    if let Some(path) = &args.summary_json {
        std::fs::write(path, serde_json::to_vec_pretty(&summary_json(&outcome))?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(if outcome.passed() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn metric(value: Option<f64>) -> String {
    value.map_or_else(|| "–".into(), |value| format!("{value:.3}"))
}

fn print_summary(outcome: &DemoOutcome, seconds: f64) {
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
    changes.set_header(vec!["date", "loop step"]);
    for event in &outcome.loop_events {
        changes.add_row(vec![format_date(event.at_ms), event.message.clone()]);
    }
    println!("\nRetraining, promotions and rollbacks\n{changes}");
    let mut alerts = Table::new();
    alerts.load_style(UTF8_FULL_CONDENSED);
    alerts.set_header(vec!["date", "alert"]);
    for event in &outcome.alerts {
        alerts.add_row(vec![format_date(event.at_ms), event.message.clone()]);
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
        "timings_seconds": outcome.timings.iter().map(|(name, seconds)| (name.clone(), serde_json::json!(seconds))).collect::<serde_json::Map<_, _>>(),
    })
}
