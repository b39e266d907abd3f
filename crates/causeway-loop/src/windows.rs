//! The loop's windows over the prediction log, from stored per-bucket summaries.
//!
//! [`Summarizer::pass`] reads each new prediction-log segment once: every prediction is counted
//! into its version's traffic summary for its time bucket (features sketched on the version's
//! baseline) and written to the prediction index. Labels are counted when both they and their
//! predictions are in: a label that arrives joins the indexed predictions of its request; a
//! prediction whose label was counted before it was summarised (a segment that reached the
//! store late) joins that label. Each joined prediction adds to its version's outcome summary,
//! and each pair of versions that scored the same labelled request to their paired sums. One
//! pass (segments, index, summaries, labels) lands in one transaction.
//!
//! [`Windows`] then adds buckets up (keeping them between ticks, reading only what a pass
//! changed): a window `[now − w, now)` is the buckets starting in
//! it, so it is short by less than one bucket; buckets are a hundredth of the model's shortest
//! monitoring window (1 s, 10 s, 1 min, 10 min or 1 h). A tick reads summaries only; what it
//! costs depends on the windows, not on how much history the log holds.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use causeway_monitor::summary::Judged;
use causeway_monitor::{
    Judging, OutcomeSummary, PairedSums, PredictionRecord, Role, Sketcher, TrafficSummary, read_segment_records,
    segment_keys,
};
use causeway_store::{IndexedPrediction, StoredSummary, SummaryKey, SummaryKind, SummaryPass};
use causeway_types::LabelRecord;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Result;
use crate::pipeline::{load_artifact, load_baseline};
use crate::project::Project;

/// Bucket widths a model's summaries use, finest first.
const WIDTHS_MS: [i64; 5] = [1_000, 10_000, 60_000, 600_000, 3_600_000];

/// The widest bucket.
pub const MAX_WIDTH_MS: i64 = WIDTHS_MS[WIDTHS_MS.len() - 1];

/// Records read before a pass writes what it has (bounds memory on a long backlog).
const RECORDS_PER_WRITE: usize = 200_000;

/// Labels joined per write.
const LABELS_PER_WRITE: usize = 5_000;

/// A label whose request was never logged stops being looked for a day after it arrived.
const ORPHAN_AFTER_MS: i64 = 86_400_000;

/// What a pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Segments read.
    pub segments: usize,
    /// Predictions summarised.
    pub predictions: usize,
    /// Labels counted.
    pub labels: usize,
}

/// What a summary needs to know about one model version.
struct VersionFacts {
    sketcher: Sketcher,
    judging: Option<Judging>,
}

/// What a summary needs to know about one model.
struct ModelFacts {
    width_ms: i64,
    /// `(1 + rmse tolerance)²`, the regression pair bound.
    scale: f64,
}

/// Reads new segments and labels into stored summaries. Only the control plane holding the
/// loop's lease runs it (one writer).
pub struct Summarizer {
    project: Arc<Project>,
    versions: HashMap<(String, u32), VersionFacts>,
    models: HashMap<String, ModelFacts>,
    /// The longest `[monitor] label_horizon` of the project's models: how long predictions stay
    /// in the index.
    label_horizon_ms: i64,
}

/// Summaries being built by a pass, by key.
#[derive(Default)]
struct Pending {
    traffic: HashMap<SummaryKey, (i64, TrafficSummary)>,
    outcomes: HashMap<SummaryKey, (i64, OutcomeSummary)>,
    paired: HashMap<SummaryKey, (i64, PairedSums)>,
}

/// The bucket width of a model with these windows (ms): the widest of [`WIDTHS_MS`] at most a
/// hundredth of the shortest.
pub fn bucket_width_ms(shortest_window_ms: i64) -> i64 {
    WIDTHS_MS.iter().rev().copied().find(|width| width * 100 <= shortest_window_ms).unwrap_or(WIDTHS_MS[0])
}

fn bucket_start(timestamp_ms: i64, width_ms: i64) -> i64 {
    timestamp_ms.div_euclid(width_ms) * width_ms
}

impl Summarizer {
    /// A summarizer of `project`'s prediction log.
    pub fn new(project: Arc<Project>) -> Self {
        let config = &project.config;
        let label_horizon_ms = config
            .loop_models(None)
            .unwrap_or_default()
            .iter()
            .filter_map(|model| config.scoped(model).ok())
            .map(|scoped| scoped.monitor.label_horizon.millis())
            .fold(config.monitor.label_horizon.millis(), i64::max);
        Self { project, versions: HashMap::new(), models: HashMap::new(), label_horizon_ms }
    }

    fn model_facts(&mut self, model: &str) -> &ModelFacts {
        if !self.models.contains_key(model) {
            let config = self.project.config.scoped(model).unwrap_or_else(|_| self.project.config.clone());
            let monitor = &config.monitor;
            let shortest = monitor
                .alerts
                .iter()
                .map(|rule| rule.window.millis())
                .chain([monitor.drift_window.millis(), monitor.performance_window.millis()])
                .filter(|window| *window > 0)
                .min()
                .unwrap_or(MAX_WIDTH_MS * 100);
            let scale = (1.0 + config.rollout.gates.rmse_tolerance).powi(2);
            self.models.insert(model.to_string(), ModelFacts { width_ms: bucket_width_ms(shortest), scale });
        }
        &self.models[model]
    }

    fn version_facts(&mut self, model: &str, version: u32) -> &VersionFacts {
        let key = (model.to_string(), version);
        if !self.versions.contains_key(&key) {
            // A version the registry does not know (or without a baseline) is still counted.
            let record = self.project.meta.model_version(model, version).ok();
            let baseline = record.as_ref().and_then(|record| load_baseline(&self.project, record).ok());
            let judging = record
                .as_ref()
                .and_then(|record| load_artifact(&self.project, record).ok())
                .map(|artifact| Judging { task: artifact.task.kind(), threshold: artifact.threshold });
            self.versions.insert(key.clone(), VersionFacts { sketcher: Sketcher::new(baseline), judging });
        }
        &self.versions[&key]
    }

    /// Reads what is new in the log and the labels that arrived by `now_ms` into the stored
    /// summaries.
    pub fn pass(&mut self, now_ms: i64) -> Result<PassReport> {
        let mut report = PassReport::default();
        let done = self.project.meta.summarized_segments()?;
        let fresh: Vec<String> =
            segment_keys(&self.project.blobs)?.into_iter().filter(|key| !done.contains(key)).collect();
        let mut chunk: Vec<String> = Vec::new();
        let mut records: Vec<PredictionRecord> = Vec::new();
        for key in fresh {
            records.extend(read_segment_records(&self.project.blobs, &key)?);
            chunk.push(key);
            if records.len() >= RECORDS_PER_WRITE {
                report.segments += chunk.len();
                report.predictions += records.len();
                self.write_segments(std::mem::take(&mut chunk), std::mem::take(&mut records), now_ms)?;
            }
        }
        if !chunk.is_empty() {
            report.segments += chunk.len();
            report.predictions += records.len();
            self.write_segments(chunk, records, now_ms)?;
        }
        report.labels = self.join_labels(now_ms)?;
        Ok(report)
    }

    /// Summarises the records of some segments, joins those whose label was already counted,
    /// and writes it all.
    fn write_segments(&mut self, segments: Vec<String>, records: Vec<PredictionRecord>, now_ms: i64) -> Result<()> {
        let mut pending = Pending::default();
        let mut index = Vec::with_capacity(records.len());
        for record in &records {
            let width = self.model_facts(&record.model).width_ms;
            let key = SummaryKey {
                model: record.model.clone(),
                kind: SummaryKind::Traffic,
                version: record.version,
                other: 0,
                start_ms: bucket_start(record.timestamp_ms, width),
            };
            let sketcher = &self.version_facts(&record.model, record.version).sketcher;
            let entry = pending.traffic.entry(key).or_insert_with(|| (width, sketcher.empty()));
            sketcher.add(&mut entry.1, &record.features, record.score, record.latency_us);
            // No label can count for a prediction already past the horizon.
            if record.timestamp_ms < now_ms - self.label_horizon_ms {
                continue;
            }
            index.push(IndexedPrediction {
                request_id: record.request_id.clone(),
                model: record.model.clone(),
                version: record.version,
                served: record.role == Role::Served,
                timestamp_ms: record.timestamp_ms,
                score: record.score,
                prediction: record.prediction,
            });
        }
        // Predictions whose label was counted before they reached the store.
        let ids: Vec<&str> = {
            let unique: HashSet<&str> = index.iter().map(|row| row.request_id.as_str()).collect();
            unique.into_iter().collect()
        };
        let counted: HashMap<String, LabelRecord> = self
            .project
            .meta
            .labels_with_state(&ids)?
            .into_iter()
            .filter(|(_, label)| label.joined)
            .map(|(id, label)| (id, label.label))
            .collect();
        if !counted.is_empty() {
            let late: Vec<&str> = counted.keys().map(String::as_str).collect();
            let earlier = self.project.meta.indexed_predictions(&late)?;
            let fresh: Vec<&IndexedPrediction> =
                index.iter().filter(|row| counted.contains_key(&row.request_id)).collect();
            let mut by_request: HashMap<&str, (Vec<&IndexedPrediction>, Vec<&IndexedPrediction>)> = HashMap::new();
            for row in &earlier {
                by_request.entry(row.request_id.as_str()).or_default().0.push(row);
            }
            for row in fresh {
                by_request.entry(row.request_id.as_str()).or_default().1.push(row);
            }
            for (request, (old, new)) in by_request {
                let label = counted[request].label;
                self.count_labelled(&mut pending, &old, &new, label);
            }
        }
        let summaries = self.merged(pending)?;
        self.project.meta.apply_summary_pass(&SummaryPass {
            segments,
            predictions: index,
            summaries,
            joined: Vec::new(),
            orphaned: Vec::new(),
            at_ms: now_ms,
            index_kept_ms: Some(self.label_horizon_ms),
        })?;
        Ok(())
    }

    /// Counts labels that arrived by `now_ms` and are not yet counted, with their requests'
    /// indexed predictions. Returns how many were counted.
    fn join_labels(&mut self, now_ms: i64) -> Result<usize> {
        let mut counted = 0;
        let mut cursor: Option<(i64, String)> = None;
        loop {
            let after = cursor.as_ref().map(|(at, id)| (*at, id.as_str()));
            let labels = self.project.meta.pending_labels(now_ms, after, LABELS_PER_WRITE)?;
            let Some((last, label)) = labels.last() else { break };
            cursor = Some((label.arrived_ms, last.clone()));
            let ids: Vec<&str> = labels.iter().map(|(id, _)| id.as_str()).collect();
            let rows = self.project.meta.indexed_predictions(&ids)?;
            let mut by_request: HashMap<&str, Vec<&IndexedPrediction>> = HashMap::new();
            for row in &rows {
                by_request.entry(row.request_id.as_str()).or_default().push(row);
            }
            let mut pending = Pending::default();
            let (mut joined, mut orphaned) = (Vec::new(), Vec::new());
            for (id, label) in &labels {
                match by_request.get(id.as_str()) {
                    Some(rows) => {
                        self.count_labelled(&mut pending, &[], rows, label.label);
                        joined.push(id.clone());
                    }
                    None if label.arrived_ms < now_ms - ORPHAN_AFTER_MS => orphaned.push(id.clone()),
                    None => {}
                }
            }
            counted += joined.len();
            let summaries = self.merged(pending)?;
            self.project.meta.apply_summary_pass(&SummaryPass {
                summaries,
                joined,
                orphaned,
                at_ms: now_ms,
                index_kept_ms: Some(self.label_horizon_ms),
                ..SummaryPass::default()
            })?;
        }
        Ok(counted)
    }

    /// Counts one labelled request: the outcome of each `new` prediction, and the paired
    /// evidence of each pair of versions of one model with at least one `new` member (`old`
    /// predictions were counted before).
    fn count_labelled(
        &mut self,
        pending: &mut Pending,
        old: &[&IndexedPrediction],
        new: &[&IndexedPrediction],
        label: f64,
    ) {
        for row in new {
            let Some(judging) = self.version_facts(&row.model, row.version).judging else { continue };
            let width = self.model_facts(&row.model).width_ms;
            let key = SummaryKey {
                model: row.model.clone(),
                kind: SummaryKind::Outcomes,
                version: row.version,
                other: 0,
                start_ms: bucket_start(row.timestamp_ms, width),
            };
            pending.outcomes.entry(key).or_insert_with(|| (width, OutcomeSummary::default())).1.add(
                judging,
                row.score,
                row.prediction,
                label,
            );
        }
        let all: Vec<(&IndexedPrediction, bool)> =
            old.iter().map(|row| (*row, false)).chain(new.iter().map(|row| (*row, true))).collect();
        for (champion, champion_new) in &all {
            for (challenger, challenger_new) in &all {
                if champion.model != challenger.model
                    || champion.version == challenger.version
                    || !(*champion_new || *challenger_new)
                {
                    continue;
                }
                let (Some(old_judging), Some(new_judging)) = (
                    self.version_facts(&champion.model, champion.version).judging,
                    self.version_facts(&challenger.model, challenger.version).judging,
                ) else {
                    continue;
                };
                let facts = self.model_facts(&champion.model);
                let (width, scale) = (facts.width_ms, facts.scale);
                let key = SummaryKey {
                    model: champion.model.clone(),
                    kind: SummaryKind::Paired,
                    version: champion.version,
                    other: challenger.version,
                    start_ms: bucket_start(champion.timestamp_ms.max(challenger.timestamp_ms), width),
                };
                let judged = |row: &IndexedPrediction, judging: Judging| Judged {
                    judging,
                    score: row.score,
                    prediction: row.prediction,
                };
                let sums = &mut pending.paired.entry(key).or_insert_with(|| (width, PairedSums::default())).1;
                sums.add(judged(champion, old_judging), judged(challenger, new_judging), label, scale);
            }
        }
    }

    /// The pass's summaries added to what is stored under the same keys.
    fn merged(&self, pending: Pending) -> Result<Vec<StoredSummary>> {
        let mut summaries = Vec::new();
        merge_into(&self.project, pending.traffic, TrafficSummary::merge, &mut summaries)?;
        merge_into(&self.project, pending.outcomes, OutcomeSummary::merge, &mut summaries)?;
        merge_into(&self.project, pending.paired, PairedSums::merge, &mut summaries)?;
        Ok(summaries)
    }
}

fn merge_into<Summary: Serialize + DeserializeOwned>(
    project: &Project,
    pending: HashMap<SummaryKey, (i64, Summary)>,
    merge: fn(&mut Summary, &Summary),
    into: &mut Vec<StoredSummary>,
) -> Result<()> {
    let stored = project.meta.summary_bodies(pending.keys())?;
    for (key, (width_ms, fresh)) in pending {
        let summary = match stored.get(&key).map(|body| serde_json::from_str::<Summary>(body)) {
            Some(Ok(mut summary)) => {
                merge(&mut summary, &fresh);
                summary
            }
            // A body this build cannot read is replaced rather than blocking every later pass.
            Some(Err(error)) => {
                tracing::warn!(?key, %error, "replacing a window summary this build cannot read");
                fresh
            }
            None => fresh,
        };
        into.push(StoredSummary { key, width_ms, body: serde_json::to_string(&summary)?, revision: 0 });
    }
    Ok(())
}

/// One stored bucket, read.
#[derive(Debug, Clone)]
pub struct Bucket<Summary> {
    /// The version (paired: the champion).
    pub version: u32,
    /// Paired: the challenger.
    pub other: u32,
    /// When the bucket starts.
    pub start_ms: i64,
    /// Its width.
    pub width_ms: i64,
    /// What it holds.
    pub summary: Summary,
}

/// Buckets of one kind by (version, other, start).
type Buckets<Summary> = BTreeMap<(u32, u32, i64), Bucket<Summary>>;

/// One model's stored buckets from some time on, kept between ticks: each refresh reads only the
/// buckets written since the last one, and forgets those that left the windows.
#[derive(Default)]
pub struct Windows {
    traffic: Buckets<TrafficSummary>,
    outcomes: Buckets<OutcomeSummary>,
    paired: Buckets<PairedSums>,
    /// The latest revision read, and from when the buckets are held.
    loaded: Option<(i64, i64)>,
}

/// Reads buckets into `into`, returning the latest revision seen.
fn read_into<Summary: DeserializeOwned>(stored: Vec<StoredSummary>, into: &mut Buckets<Summary>, from_ms: i64) -> i64 {
    let mut latest = 0;
    for stored in stored {
        latest = latest.max(stored.revision);
        if stored.key.start_ms + stored.width_ms <= from_ms {
            continue;
        }
        match serde_json::from_str(&stored.body) {
            Ok(summary) => {
                let key = &stored.key;
                into.insert(
                    (key.version, key.other, key.start_ms),
                    Bucket {
                        version: key.version,
                        other: key.other,
                        start_ms: key.start_ms,
                        width_ms: stored.width_ms,
                        summary,
                    },
                );
            }
            Err(error) => tracing::warn!(key = ?stored.key, %error, "skipping a window summary this build cannot read"),
        }
    }
    latest
}

impl Windows {
    /// Brings `model`'s buckets that end after `from_ms` up to date: everything the first time
    /// (or when the windows reach further back than before), afterwards what changed.
    pub fn refresh(&mut self, project: &Project, model: &str, from_ms: i64) -> Result<()> {
        let meta = &project.meta;
        let (kinds, revision) = match self.loaded {
            Some((revision, loaded_from)) if loaded_from <= from_ms => {
                let changed = |kind| meta.window_summaries_changed(model, kind, revision);
                (
                    (changed(SummaryKind::Traffic)?, changed(SummaryKind::Outcomes)?, changed(SummaryKind::Paired)?),
                    revision,
                )
            }
            _ => {
                *self = Self::default();
                let earliest = from_ms.saturating_sub(MAX_WIDTH_MS);
                let all = |kind| meta.window_summaries(model, kind, earliest);
                ((all(SummaryKind::Traffic)?, all(SummaryKind::Outcomes)?, all(SummaryKind::Paired)?), 0)
            }
        };
        let latest = read_into(kinds.0, &mut self.traffic, from_ms)
            .max(read_into(kinds.1, &mut self.outcomes, from_ms))
            .max(read_into(kinds.2, &mut self.paired, from_ms))
            .max(revision);
        let ends_after = |start: i64, width: i64| start + width > from_ms;
        self.traffic.retain(|_, bucket| ends_after(bucket.start_ms, bucket.width_ms));
        self.outcomes.retain(|_, bucket| ends_after(bucket.start_ms, bucket.width_ms));
        self.paired.retain(|_, bucket| ends_after(bucket.start_ms, bucket.width_ms));
        self.loaded = Some((latest, from_ms));
        Ok(())
    }

    /// Traffic per version over the buckets starting at or after `from_ms` (`holding`: also the
    /// bucket that holds `from_ms`), with the start of each version's first bucket.
    pub fn traffic(&self, from_ms: i64, holding: bool) -> BTreeMap<u32, (TrafficSummary, i64)> {
        let mut summed: BTreeMap<u32, (TrafficSummary, i64)> = BTreeMap::new();
        for bucket in self.traffic.values().filter(|bucket| included(bucket, from_ms, holding)) {
            let entry = summed.entry(bucket.version).or_insert_with(|| (TrafficSummary::default(), bucket.start_ms));
            entry.0.merge(&bucket.summary);
            entry.1 = entry.1.min(bucket.start_ms);
        }
        summed
    }

    /// Labelled outcomes per version over the buckets starting at or after `from_ms`.
    pub fn outcomes(&self, from_ms: i64, holding: bool) -> BTreeMap<u32, OutcomeSummary> {
        let mut summed: BTreeMap<u32, OutcomeSummary> = BTreeMap::new();
        for bucket in self.outcomes.values().filter(|bucket| included(bucket, from_ms, holding)) {
            summed.entry(bucket.version).or_default().merge(&bucket.summary);
        }
        summed
    }

    /// The paired sums of `champion` against `challenger` since `from_ms` (holding it).
    pub fn paired(&self, champion: u32, challenger: u32, from_ms: i64) -> PairedSums {
        let mut summed = PairedSums::default();
        for bucket in self.paired.range((champion, challenger, i64::MIN)..=(champion, challenger, i64::MAX)) {
            if included(bucket.1, from_ms, true) {
                summed.merge(&bucket.1.summary);
            }
        }
        summed
    }
}

fn included<Summary>(bucket: &Bucket<Summary>, from_ms: i64, holding: bool) -> bool {
    if holding { bucket.start_ms + bucket.width_ms > from_ms } else { bucket.start_ms >= from_ms }
}
