//! `loop run|status|pause|resume|retrain` and `labels ingest`: the live loop in the foreground,
//! its status, the commands people give it, and the labels they feed it.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use causeway_loop::controller::{Applied, load_state, send_command};
use causeway_loop::live::{LiveEvent, LiveLoop, LiveObserver, LiveOptions, holder_id};
use causeway_loop::machine::{Command, PauseCause};
use causeway_loop::status::{LoopStatus, status};
use causeway_types::{Clock, Span, SystemClock, format_timestamp};

use super::open;
use crate::args::{LoopModelArgs, ProjectArgs};

/// What a person asks of the loop.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Request {
    Pause,
    Resume,
    Retrain,
}

/// Prints what the live loop does: every event of a tick (to standard output, or with
/// `events_to_stderr` to standard error, where a server's readiness line leaves stdout alone),
/// leadership changes, and each model's failure once until it changes. A closed pipe is not an
/// error: the loop runs on.
pub(crate) fn printing_observer(events_to_stderr: bool) -> LiveObserver {
    let mut last_failure: HashMap<String, String> = HashMap::new();
    Box::new(move |event: &LiveEvent<'_>| match event {
        LiveEvent::Leadership(true) => eprintln!("this control plane runs the loop now"),
        LiveEvent::Leadership(false) => {
            eprintln!("another control plane runs the loop; this one waits and takes over if it stops")
        }
        LiveEvent::Ticked { model, report } => {
            last_failure.remove(*model);
            for event in &report.events {
                let line = format!(
                    "{}  {:<8} {:<8} {}\n",
                    format_timestamp(event.at_ms),
                    event.kind.as_str(),
                    event.subject,
                    event.message
                );
                let _ = if events_to_stderr {
                    std::io::stderr().lock().write_all(line.as_bytes())
                } else {
                    std::io::stdout().lock().write_all(line.as_bytes())
                };
            }
        }
        LiveEvent::Failed { model, error } => {
            let text = error.to_string();
            if last_failure.get(*model) != Some(&text) {
                eprintln!("loop: {model}: {text}");
                last_failure.insert(model.to_string(), text);
            }
        }
    })
}

/// The live loop's options for a project, with the tick overridden when given.
pub(crate) fn live_options(project: &causeway_loop::Project, tick: Option<Span>, once: bool) -> LiveOptions {
    let mut options = match tick.filter(|tick| !tick.is_zero()) {
        Some(tick) => LiveOptions::with_tick(tick, holder_id()),
        None => LiveOptions::for_project(project, holder_id()),
    };
    options.once = once;
    options
}

pub(crate) fn run(dir: &ProjectArgs, tick: Option<Span>, once: bool) -> Result<ExitCode> {
    let project = Arc::new(open(dir)?);
    project.config.loop_models(None)?;
    let options = live_options(&project, tick, once);
    eprintln!(
        "running the loop of {} every {} ({}); Ctrl-C stops it",
        project.config.loop_models(None)?.join(", "),
        options.tick,
        project.dir.display()
    );
    let live = LiveLoop::start(project, options, Arc::new(SystemClock), printing_observer(false))?;
    if once {
        return live.join().map(|()| ExitCode::SUCCESS).map_err(Into::into);
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(causeway_server::run::shutdown_signal());
    eprintln!("stopping the loop");
    live.stop()?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn show_status(target: &LoopModelArgs, json: bool) -> Result<ExitCode> {
    let project = open(&target.dir)?;
    let all = status(&project, target.model.as_deref(), SystemClock.now_ms())?;
    if json {
        println!("{}", serde_json::to_string_pretty(&all)?);
    } else {
        print!("{}", render_status(&all));
    }
    Ok(ExitCode::SUCCESS)
}

fn ago(now: i64, at: i64) -> String {
    let seconds = (now - at).max(0) / 1000;
    let span = match seconds {
        0..60 => format!("{seconds}s"),
        60..3_600 => format!("{}m", seconds / 60),
        3_600..86_400 => format!("{}h", seconds / 3_600),
        _ => format!("{}d", seconds / 86_400),
    };
    format!("{} ({span} ago)", format_timestamp(at))
}

fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e12 { format!("{value:.0}") } else { format!("{value:.4}") }
}

/// The status as people read it.
pub(crate) fn render_status(all: &LoopStatus) -> String {
    let now = all.at_ms;
    let mut text = String::new();
    match &all.leader {
        Some(leader) if leader.live => {
            let _ = writeln!(
                text,
                "control plane: {} (lease until {})",
                leader.holder,
                format_timestamp(leader.expires_ms)
            );
        }
        Some(leader) => {
            let _ = writeln!(
                text,
                "control plane: none running (the last, {}, stopped renewing at {}); start `causeway server` or `causeway loop run`",
                leader.holder,
                format_timestamp(leader.expires_ms)
            );
        }
        None => {
            let _ = writeln!(text, "control plane: none running; start `causeway server` or `causeway loop run`");
        }
    }
    for model in &all.models {
        let _ = writeln!(text, "\n{}", model.model);
        let version = |version: Option<u32>| version.map_or("none".to_string(), |version| format!("v{version}"));
        let _ = writeln!(text, "  champion       {}", version(model.champion));
        let traffic = match (&model.traffic, model.canary_share) {
            (Some(mode), Some(share)) => format!(" ({mode}, {:.0}% of requests)", share * 100.0),
            (Some(mode), None) => format!(" ({mode})"),
            _ => String::new(),
        };
        let _ = writeln!(text, "  challenger     {}{traffic}", version(model.challenger));
        let since = model.stage_since_ms.map(|since| format!(" since {}", ago(now, since))).unwrap_or_default();
        let job = model.job.map(|job| format!(" (job {job})")).unwrap_or_default();
        let _ = writeln!(text, "  stage          {}{job}{since}", model.stage);
        let paused = match &model.paused {
            Some(pause) => format!(
                "yes, since {} ({}); `causeway loop resume` resumes",
                ago(now, pause.since_ms),
                match pause.cause {
                    PauseCause::Rollback => "after a rollback",
                    PauseCause::Person => "by a person",
                }
            ),
            None => "no".into(),
        };
        let _ = writeln!(text, "  paused         {paused}");
        if model.evidence.measures.is_empty() {
            let _ = writeln!(text, "  evidence       none yet");
        } else {
            let _ = writeln!(
                text,
                "  evidence       at {}{}",
                ago(now, model.evidence.at_ms),
                if model.evidence.labelled > 0 {
                    format!(", {} labelled outcomes", model.evidence.labelled)
                } else {
                    String::new()
                }
            );
            for measure in &model.evidence.measures {
                let p_value = match measure.p_value {
                    Some(p) if p < 0.001 => "; p < 0.001".to_string(),
                    Some(p) => format!("; p {p:.3}"),
                    None => String::new(),
                };
                let _ = writeln!(
                    text,
                    "    {} {:<24} {} (must be {} {}{p_value})",
                    if measure.passing { "ok  " } else { "FAIL" },
                    measure.name,
                    number(measure.value),
                    if measure.at_least { "at least" } else { "at most" },
                    number(measure.bound)
                );
            }
        }
        let alerts = if model.firing.is_empty() { "none".to_string() } else { model.firing.join(", ") };
        let _ = writeln!(text, "  alerts         {alerts}");
        if let Some(next) = model.next_scheduled_ms {
            let _ = writeln!(text, "  next schedule  {}", format_timestamp(next));
        }
        if let Some(until) = model.cooldown_until_ms {
            let _ = writeln!(text, "  cool-down      until {}", format_timestamp(until));
        }
        match &model.last_decision {
            Some(decision) => {
                let _ = writeln!(text, "  last decision  {}: {}", format_timestamp(decision.at_ms), decision.message);
            }
            None => {
                let _ = writeln!(text, "  last decision  none yet");
            }
        }
        for queued in &model.queued_commands {
            let _ = writeln!(text, "  queued         {queued}");
        }
    }
    text
}

pub(crate) fn request(target: &LoopModelArgs, request: Request) -> Result<ExitCode> {
    let project = open(&target.dir)?;
    let now = SystemClock.now_ms();
    let by = "cli".to_string();
    let mut needs_tick = false;
    let models = project.config.loop_models(target.model.as_deref())?;
    // With one model the lines need no model name.
    let prefix = |model: &str| if models.len() > 1 { format!("{model}: ") } else { String::new() };
    for model in models.iter().map(String::as_str) {
        let paused_before = load_state(&project, model)?.paused;
        let command = match request {
            Request::Pause => Command::Pause { by: by.clone() },
            Request::Resume => Command::Resume { by: by.clone() },
            Request::Retrain => Command::Retrain { by: by.clone() },
        };
        let prefix = prefix(model);
        match send_command(&project, model, &command, now)? {
            Applied::Done(message) => match (request, paused_before) {
                (Request::Resume, Some(pause)) => {
                    println!("{prefix}{message} (it had paused at {})", format_timestamp(pause.since_ms));
                }
                _ => println!("{prefix}{message}"),
            },
            Applied::Unchanged(message) => println!("{prefix}{message}"),
            Applied::Queued { leader } => {
                println!("{prefix}sent to the running control plane ({leader}); it acts at its next tick");
            }
            Applied::NeedsTick => needs_tick = true,
        }
    }
    if needs_tick {
        // No control plane runs: run one tick here, which takes the queued retraining.
        let project = Arc::new(project);
        let options = live_options(&project, None, true);
        LiveLoop::start(project, options, Arc::new(SystemClock), printing_observer(false))?.join()?;
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn ingest_labels(
    dir: &ProjectArgs,
    file: &std::path::Path,
    model: Option<&str>,
    correct: bool,
) -> Result<ExitCode> {
    let project = open(dir)?;
    let report = causeway_loop::feedback::ingest_labels(&project, file, model, correct, "cli", SystemClock.now_ms())?;
    print!("{}", render_labels(&report, &file.display().to_string()));
    Ok(if report.malformed > 0 || report.write.conflicting > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// What a label ingest did, as people read it.
pub(crate) fn render_labels(report: &causeway_loop::feedback::LabelIngest, file: &str) -> String {
    let count = |count: u64, one: &str, many: &str| format!("{count} {}", if count == 1 { one } else { many });
    let mut text = String::new();
    let write = &report.write;
    let _ = writeln!(
        text,
        "{file}: {} for `{}`: {} stored, {} already stored, {} corrected",
        count(report.rows, "row", "rows"),
        report.model,
        count(write.stored, "label", "labels"),
        write.unchanged,
        write.corrected
    );
    if write.conflicting > 0 {
        let _ = writeln!(
            text,
            "{} (pass --correct to replace, audited): {}",
            count(
                write.conflicting,
                "label differs from the stored one and was kept out",
                "labels differ from the stored ones and were kept out"
            ),
            write.conflicting_ids.join(", ")
        );
    }
    if report.duplicates > 0 {
        let _ = writeln!(
            text,
            "{} a request id seen earlier in the file (the first counts)",
            count(report.duplicates, "row repeats", "rows repeat")
        );
    }
    if report.unknown > 0 {
        let _ = writeln!(
            text,
            "{} in the prediction log (stored: they join when their predictions arrive): {}",
            count(report.unknown, "request id is not", "request ids are not"),
            report.unknown_ids.join(", ")
        );
    }
    if report.malformed > 0 {
        let _ = writeln!(
            text,
            "{} skipped:",
            count(report.malformed, "row could not be read and was", "rows could not be read and were")
        );
        for reason in &report.malformed_rows {
            let _ = writeln!(text, "  {reason}");
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use causeway_loop::machine::{Decision, Evidence, Measure, Pause};
    use causeway_loop::status::{Leader, ModelStatus};

    use super::*;

    const NOW: i64 = 1_796_150_000_000;

    fn measure(name: &str, value: f64, bound: f64, at_least: bool, passing: bool, p_value: Option<f64>) -> Measure {
        Measure { name: name.into(), value, bound, at_least, passing, p_value }
    }

    /// What people read from `causeway loop status`, for a canary and a paused idle model.
    #[test]
    fn loop_status_reads_as_a_person_expects() {
        let canary = ModelStatus {
            model: "churn".into(),
            champion: Some(1),
            challenger: Some(2),
            traffic: Some("canary".into()),
            canary_share: Some(0.1),
            stage: "canary".into(),
            stage_since_ms: Some(NOW - 13_000),
            job: None,
            paused: None,
            evidence: Evidence {
                at_ms: NOW - 1_000,
                labelled: 1_200,
                measures: vec![
                    measure("recall", 0.8054, 0.8054, true, true, Some(1.0)),
                    measure("false_positive_rate", 0.041, 0.03, false, false, Some(0.0004)),
                    measure("p99 latency (ms)", 0.068, 50.0, false, true, None),
                ],
            },
            firing: vec![],
            next_scheduled_ms: Some(NOW + 3_600_000),
            cooldown_until_ms: Some(NOW + 60_000),
            last_decision: Some(Decision {
                at_ms: NOW - 13_000,
                message: "canary: v2 now answers 10% of requests (after 5s in shadow)".into(),
            }),
            queued_commands: vec!["pause by cli (sent 2026-12-01T18:33:19Z)".into()],
        };
        let paused = ModelStatus {
            model: "fraud".into(),
            challenger: None,
            traffic: None,
            canary_share: None,
            stage: "idle".into(),
            stage_since_ms: None,
            paused: Some(Pause { since_ms: NOW - 7_200_000, cause: causeway_loop::machine::PauseCause::Rollback }),
            evidence: Evidence::default(),
            firing: vec!["performance:recall".into()],
            next_scheduled_ms: None,
            cooldown_until_ms: None,
            last_decision: None,
            queued_commands: vec![],
            ..canary.clone()
        };
        let status = LoopStatus {
            at_ms: NOW,
            leader: Some(Leader { holder: "vm:4242:0badf00d".into(), expires_ms: NOW + 9_000, live: true }),
            models: vec![canary, paused],
        };
        causeway_test_support::assert_snapshot(env!("CARGO_MANIFEST_DIR"), "loop_status", &render_status(&status), &[]);
        let nobody = LoopStatus { leader: None, models: Vec::new(), ..status };
        assert!(render_status(&nobody).contains("none running; start `causeway server` or `causeway loop run`"));
    }
}
