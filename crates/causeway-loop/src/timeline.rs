//! A model's monitoring over time, for charts: the stored per-bucket summaries (traffic and
//! labelled outcomes) and the replicas' serving counts regrouped into at most `points` equal
//! intervals, with each interval's drift against the version's baseline, live metrics, latency
//! and error rate. Reads only what the summarizer and the replicas stored; judges nothing (the
//! loop's rules decide; this shows what they saw).

use std::collections::BTreeMap;

use causeway_models::TaskKind;
use causeway_monitor::{DriftReport, OutcomeSummary, TrafficSummary, VersionOutcomes};
use causeway_store::SummaryKind;
use serde::Serialize;

use crate::error::Result;
use crate::pipeline::{load_artifact, load_baseline};
use crate::project::Project;

/// The most intervals a series is cut into (each is at least the model's drift window).
pub const MAX_POINTS: usize = 2_000;

/// One interval of one version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MonitorPoint {
    /// When the interval starts (epoch ms).
    pub start_ms: i64,
    /// Predictions in it (served and shadow).
    pub predictions: u64,
    /// Their mean score.
    pub score_mean: Option<f64>,
    /// Median scoring latency (ms).
    pub latency_p50_ms: Option<f64>,
    /// 99th-percentile scoring latency (ms).
    pub latency_p99_ms: Option<f64>,
    /// Drift of every feature and the score from the version's baseline, when it has one.
    pub drift: Option<DriftReport>,
    /// Live metrics on the labelled predictions, when some are labelled.
    pub outcomes: Option<VersionOutcomes>,
    /// Requests the replicas answered in it.
    pub requests: u64,
    /// Of those, how many failed.
    pub errors: u64,
}

/// One version's series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionSeries {
    /// The version.
    pub version: u32,
    /// Its intervals that saw traffic, labels or requests, oldest first.
    pub points: Vec<MonitorPoint>,
}

/// A model's monitoring between two times.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MonitorSeries {
    /// The model.
    pub model: String,
    /// The first interval's start.
    pub from_ms: i64,
    /// The end of the range.
    pub to_ms: i64,
    /// Each interval's width (at least a stored bucket's).
    pub step_ms: i64,
    /// The features, in the champion's baseline order (empty without a baseline).
    pub features: Vec<String>,
    /// Per version that saw anything in the range.
    pub versions: Vec<VersionSeries>,
}

#[derive(Default)]
struct Interval {
    traffic: TrafficSummary,
    outcomes: Option<OutcomeSummary>,
    requests: u64,
    errors: u64,
}

/// `model`'s monitoring from `from_ms` to `to_ms` (by default, everything the summaries still
/// hold: the stored buckets are kept for the longest window), in at most `points` intervals (at
/// most [`MAX_POINTS`]).
pub fn monitor_series(
    project: &Project,
    model: &str,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
    points: usize,
) -> Result<MonitorSeries> {
    let meta = &project.meta;
    let traffic = meta.window_summaries(model, SummaryKind::Traffic, from_ms.unwrap_or(i64::MIN))?;
    let outcomes = meta.window_summaries(model, SummaryKind::Outcomes, from_ms.unwrap_or(i64::MIN))?;
    let stored = || traffic.iter().chain(&outcomes);
    let from_ms = from_ms.or_else(|| stored().map(|stored| stored.key.start_ms).min()).unwrap_or(0);
    let to_ms = to_ms
        .or_else(|| stored().map(|stored| stored.key.start_ms + stored.width_ms).max())
        .unwrap_or(from_ms)
        .max(from_ms + 1);
    let bucket = stored().map(|stored| stored.width_ms).min().unwrap_or(60_000).max(1);
    let points = points.clamp(1, MAX_POINTS) as i64;
    let span = to_ms - from_ms;
    // Whole buckets per interval, so no bucket is split between two.
    // At least the drift window, so each interval's drift is measured on as many predictions as
    // the loop's rules judge (a shorter interval of a daily pattern drifts by construction).
    let drift_window = project.config.scoped(model).map_or(0, |config| config.monitor.drift_window.millis());
    let step_ms = ((span.div_euclid(points) + 1).max(drift_window) + bucket - 1).div_euclid(bucket).max(1) * bucket;
    let start = from_ms.div_euclid(step_ms) * step_ms;
    let slot = |at_ms: i64| at_ms.div_euclid(step_ms) * step_ms;
    let mut intervals: BTreeMap<(u32, i64), Interval> = BTreeMap::new();
    for stored in traffic.iter().filter(|stored| stored.key.start_ms < to_ms) {
        let Ok(summary) = serde_json::from_str::<TrafficSummary>(&stored.body) else { continue };
        intervals.entry((stored.key.version, slot(stored.key.start_ms))).or_default().traffic.merge(&summary);
    }
    for stored in outcomes.iter().filter(|stored| stored.key.start_ms < to_ms) {
        let Ok(summary) = serde_json::from_str::<OutcomeSummary>(&stored.body) else { continue };
        let interval = intervals.entry((stored.key.version, slot(stored.key.start_ms))).or_default();
        interval.outcomes.get_or_insert_with(OutcomeSummary::default).merge(&summary);
    }
    for (version, minute_ms, requests, errors) in meta.serving_counts_between(model, from_ms, to_ms)? {
        let interval = intervals.entry((version, slot(minute_ms))).or_default();
        interval.requests += requests;
        interval.errors += errors;
    }
    let mut baselines = BTreeMap::new();
    let mut tasks = BTreeMap::new();
    for version in intervals.keys().map(|(version, _)| *version).collect::<std::collections::BTreeSet<_>>() {
        let Ok(record) = meta.model_version(model, version) else { continue };
        if let Ok(baseline) = load_baseline(project, &record) {
            baselines.insert(version, baseline);
        }
        if let Ok(artifact) = load_artifact(project, &record) {
            tasks.insert(version, artifact.task.kind());
        }
    }
    let champion = meta.alias(model, causeway_types::CHAMPION)?;
    let features = champion
        .and_then(|champion| baselines.get(&champion))
        .or_else(|| baselines.values().next())
        .map(|baseline| baseline.features.iter().map(|feature| feature.name().to_string()).collect())
        .unwrap_or_default();
    let mut versions: BTreeMap<u32, Vec<MonitorPoint>> = BTreeMap::new();
    for ((version, start_ms), interval) in intervals {
        let traffic = &interval.traffic;
        let seen = traffic.predictions > 0;
        let task = tasks.get(&version).copied().unwrap_or(TaskKind::Binary);
        versions.entry(version).or_default().push(MonitorPoint {
            start_ms,
            predictions: traffic.predictions,
            score_mean: seen.then(|| traffic.score_mean()),
            latency_p50_ms: seen.then(|| traffic.latency.quantile_ms(0.5)),
            latency_p99_ms: seen.then(|| traffic.latency.quantile_ms(0.99)),
            drift: baselines.get(&version).filter(|_| seen).map(|baseline| traffic.drift_report(baseline)),
            outcomes: interval
                .outcomes
                .filter(|outcomes| outcomes.labeled > 0)
                .map(|outcomes| outcomes.outcomes(version, traffic.predictions, task)),
            requests: interval.requests,
            errors: interval.errors,
        });
    }
    Ok(MonitorSeries {
        model: model.to_string(),
        from_ms: start,
        to_ms,
        step_ms,
        features,
        versions: versions.into_iter().map(|(version, points)| VersionSeries { version, points }).collect(),
    })
}
