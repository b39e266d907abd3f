//! What the loop keeps so a tick never re-reads old prediction-log segments: per-bucket window
//! summaries (opaque JSON bodies the monitor defines), a compact index of every logged prediction
//! (what a label that arrives later joins with), which segments are already summarised, and which
//! labels are already joined.
//!
//! One writer (the control plane holding the loop's lease) reads, merges and writes back; each
//! pass lands in one transaction ([`MetaStore::apply_summary_pass`]), so a crash leaves a
//! segment and its labels either counted once or not at all.

use std::collections::{HashMap, HashSet};

use causeway_types::LabelRecord;

use crate::db::{ToValue, Value, params};
use crate::error::Result;
use crate::meta::MetaStore;

/// How long summaries and the prediction index are kept: 90 days (a label arriving later than
/// that no longer counts).
pub const SUMMARIES_KEPT_MS: i64 = 90 * 86_400_000;

/// What a bucket summarises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SummaryKind {
    /// One version's predictions.
    Traffic,
    /// One version's labelled predictions.
    Outcomes,
    /// A (champion, challenger) pair's labelled requests both scored.
    Paired,
}

impl SummaryKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Traffic => "traffic",
            Self::Outcomes => "outcomes",
            Self::Paired => "paired",
        }
    }
}

/// Which bucket summary: of what, for which model version (and, paired, which other version),
/// starting when.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SummaryKey {
    /// The registered model.
    pub model: String,
    /// What it summarises.
    pub kind: SummaryKind,
    /// The version (paired: the champion).
    pub version: u32,
    /// Paired: the challenger; 0 otherwise.
    pub other: u32,
    /// The bucket's start (epoch ms, a multiple of its width).
    pub start_ms: i64,
}

/// A stored bucket summary.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSummary {
    /// Which one.
    pub key: SummaryKey,
    /// The bucket's width (ms).
    pub width_ms: i64,
    /// The summary, as the monitor serialises it.
    pub body: String,
    /// The number of the pass that wrote it last (set by the store; higher is later).
    pub revision: i64,
}

/// One logged prediction as the index keeps it: enough to judge it once its label arrives.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexedPrediction {
    /// The request id.
    pub request_id: String,
    /// The registered model.
    pub model: String,
    /// The version that scored it.
    pub version: u32,
    /// Whether the caller received it.
    pub served: bool,
    /// When (epoch ms).
    pub timestamp_ms: i64,
    /// Its score.
    pub score: f64,
    /// Its prediction (NaN when not logged).
    pub prediction: f64,
}

/// Everything one summarising pass writes, together.
#[derive(Debug, Clone, Default)]
pub struct SummaryPass {
    /// Segments it read (never read again).
    pub segments: Vec<String>,
    /// Their predictions, for labels still to come.
    pub predictions: Vec<IndexedPrediction>,
    /// Bucket summaries to store (each replaces the stored one: the caller merged).
    pub summaries: Vec<StoredSummary>,
    /// Labels now counted.
    pub joined: Vec<String>,
    /// Labels given up on: no prediction of theirs was logged.
    pub orphaned: Vec<String>,
    /// The pass's time: summaries older than [`SUMMARIES_KEPT_MS`] before it are forgotten.
    pub at_ms: i64,
    /// Indexed predictions older than this before `at_ms` are forgotten (the label horizon;
    /// unset: [`SUMMARIES_KEPT_MS`]).
    pub index_kept_ms: Option<i64>,
}

/// A label and whether it is already counted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JoinedLabel {
    /// The label.
    pub label: LabelRecord,
    /// Whether a pass counted it.
    pub joined: bool,
}

/// The most values one `IN (…)` list binds.
const IN_LIST: usize = 500;

impl MetaStore {
    /// The keys of the segments already summarised.
    pub fn summarized_segments(&self) -> Result<HashSet<String>> {
        let keys: Vec<String> =
            self.lock().query_map("SELECT key FROM summarized_segments", params![], |row| row.get(0))?;
        Ok(keys.into_iter().collect())
    }

    /// The bucket summaries of `model` of `kind` starting at or after `from_ms`.
    pub fn window_summaries(&self, model: &str, kind: SummaryKind, from_ms: i64) -> Result<Vec<StoredSummary>> {
        self.summaries_where(model, kind, "start_ms >= ?3", from_ms)
    }

    /// The bucket summaries of `model` of `kind` written after revision `after`.
    pub fn window_summaries_changed(&self, model: &str, kind: SummaryKind, after: i64) -> Result<Vec<StoredSummary>> {
        self.summaries_where(model, kind, "revision > ?3", after)
    }

    fn summaries_where(
        &self,
        model: &str,
        kind: SummaryKind,
        condition: &str,
        bound: i64,
    ) -> Result<Vec<StoredSummary>> {
        self.lock().query_map(
            &format!(
                "SELECT version, other, start_ms, width_ms, body, revision FROM window_summaries
                 WHERE model = ?1 AND kind = ?2 AND {condition} ORDER BY start_ms"
            ),
            params![model, kind.as_str(), bound],
            |row| {
                Ok(StoredSummary {
                    key: SummaryKey {
                        model: model.to_string(),
                        kind,
                        version: row.get(0)?,
                        other: row.get(1)?,
                        start_ms: row.get(2)?,
                    },
                    width_ms: row.get(3)?,
                    body: row.get(4)?,
                    revision: row.get(5)?,
                })
            },
        )
    }

    /// The stored bodies of the given bucket summaries (those that exist).
    pub fn summary_bodies<'a>(
        &self,
        keys: impl IntoIterator<Item = &'a SummaryKey>,
    ) -> Result<HashMap<SummaryKey, String>> {
        let mut connection = self.lock();
        let mut bodies = HashMap::new();
        for key in keys {
            let found: Vec<String> = connection.query_map(
                "SELECT body FROM window_summaries WHERE model = ?1 AND kind = ?2 AND version = ?3 AND other = ?4
                 AND start_ms = ?5",
                params![key.model, key.kind.as_str(), key.version, key.other, key.start_ms],
                |row| row.get(0),
            )?;
            if let Some(body) = found.into_iter().next() {
                bodies.insert(key.clone(), body);
            }
        }
        Ok(bodies)
    }

    /// Up to `limit` labels not yet counted that arrived by `now_ms`, after the cursor `after`
    /// (the arrival and request id of the last one a previous page returned), in that order.
    /// Reads the index of uncounted labels only, however many labels are stored.
    pub fn pending_labels(
        &self,
        now_ms: i64,
        after: Option<(i64, &str)>,
        limit: usize,
    ) -> Result<Vec<(String, LabelRecord)>> {
        let (after_ms, after_id) = after.unwrap_or((i64::MIN, ""));
        self.lock().query_map(
            "SELECT request_id, label, arrived_ms FROM labels
             WHERE joined = 0 AND arrived_ms <= ?1 AND (arrived_ms > ?2 OR (arrived_ms = ?2 AND request_id > ?3))
             ORDER BY arrived_ms, request_id LIMIT ?4",
            params![now_ms, after_ms, after_id, limit],
            |row| Ok((row.get(0)?, LabelRecord { label: row.get(1)?, arrived_ms: row.get(2)? })),
        )
    }

    /// The labels of the given request ids, and whether each is already counted.
    pub fn labels_with_state(&self, request_ids: &[&str]) -> Result<HashMap<String, JoinedLabel>> {
        let mut connection = self.lock();
        let mut found = HashMap::new();
        for chunk in request_ids.chunks(IN_LIST) {
            let list = (1..=chunk.len()).map(|index| format!("?{index}")).collect::<Vec<_>>().join(", ");
            let bound: Vec<&dyn ToValue> = chunk.iter().map(|id| id as &dyn ToValue).collect();
            let rows = connection.query_map(
                &format!("SELECT request_id, label, arrived_ms, joined FROM labels WHERE request_id IN ({list})"),
                &bound,
                |row| {
                    let joined: i64 = row.get(3)?;
                    let label = LabelRecord { label: row.get(1)?, arrived_ms: row.get(2)? };
                    Ok((row.get::<String>(0)?, JoinedLabel { label, joined: joined != 0 }))
                },
            )?;
            found.extend(rows);
        }
        Ok(found)
    }

    /// The indexed predictions of the given request ids.
    pub fn indexed_predictions(&self, request_ids: &[&str]) -> Result<Vec<IndexedPrediction>> {
        let mut connection = self.lock();
        let mut found = Vec::new();
        for chunk in request_ids.chunks(IN_LIST) {
            let list = (1..=chunk.len()).map(|index| format!("?{index}")).collect::<Vec<_>>().join(", ");
            let bound: Vec<&dyn ToValue> = chunk.iter().map(|id| id as &dyn ToValue).collect();
            found.extend(connection.query_map(
                &format!(
                    "SELECT request_id, model, version, served, timestamp_ms, score, prediction FROM prediction_index
                     WHERE request_id IN ({list})"
                ),
                &bound,
                |row| {
                    let served: i64 = row.get(3)?;
                    Ok(IndexedPrediction {
                        request_id: row.get(0)?,
                        model: row.get(1)?,
                        version: row.get(2)?,
                        served: served != 0,
                        timestamp_ms: row.get(4)?,
                        score: row.get::<Option<f64>>(5)?.unwrap_or(f64::NAN),
                        prediction: row.get::<Option<f64>>(6)?.unwrap_or(f64::NAN),
                    })
                },
            )?);
        }
        Ok(found)
    }

    /// Writes one summarising pass in one transaction, and forgets summaries and indexed
    /// predictions older than [`SUMMARIES_KEPT_MS`].
    pub fn apply_summary_pass(&self, pass: &SummaryPass) -> Result<()> {
        let mut connection = self.lock();
        let mut transaction = connection.transaction()?;
        let horizon = pass.at_ms.saturating_sub(SUMMARIES_KEPT_MS);
        let index_horizon = pass.at_ms.saturating_sub(pass.index_kept_ms.unwrap_or(SUMMARIES_KEPT_MS));
        transaction.execute("DELETE FROM prediction_index WHERE timestamp_ms < ?1", params![index_horizon])?;
        transaction.execute("DELETE FROM window_summaries WHERE start_ms < ?1", params![horizon])?;
        // NaN is stored as NULL (SQLite cannot keep it).
        let finite = |value: f64| if value.is_nan() { Value::Null } else { Value::Real(value) };
        let rows: Vec<Vec<Value>> = pass
            .predictions
            .iter()
            .map(|row| {
                vec![
                    row.request_id.to_value(),
                    row.model.to_value(),
                    row.version.to_value(),
                    row.served.to_value(),
                    row.timestamp_ms.to_value(),
                    finite(row.score),
                    finite(row.prediction),
                ]
            })
            .collect();
        transaction.insert_rows(
            "INSERT INTO prediction_index (request_id, model, version, served, timestamp_ms, score, prediction)",
            "ON CONFLICT (request_id, model, version) DO NOTHING",
            &rows,
        )?;
        // A counter of its own (not the newest row's), so forgetting old rows never reuses a
        // number a reader has seen.
        let revision: String = transaction.query_row(
            "INSERT INTO state (key, value) VALUES ('windows/revision', '1')
             ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(state.value AS BIGINT) + 1 AS TEXT) RETURNING value",
            params![],
            |row| row.get(0),
        )?;
        let revision: i64 = revision.parse().map_err(|_| {
            crate::Error::Database(format!("the window summaries' revision `{revision}` is not a number"))
        })?;
        let rows: Vec<Vec<Value>> = pass
            .summaries
            .iter()
            .map(|summary| {
                let key = &summary.key;
                vec![
                    key.model.to_value(),
                    key.kind.as_str().to_value(),
                    key.version.to_value(),
                    key.other.to_value(),
                    key.start_ms.to_value(),
                    summary.width_ms.to_value(),
                    summary.body.to_value(),
                    revision.to_value(),
                ]
            })
            .collect();
        transaction.insert_rows(
            "INSERT INTO window_summaries (model, kind, version, other, start_ms, width_ms, body, revision)",
            "ON CONFLICT (model, kind, version, other, start_ms) DO UPDATE SET
                width_ms = excluded.width_ms, body = excluded.body, revision = excluded.revision",
            &rows,
        )?;
        let rows: Vec<Vec<Value>> =
            pass.segments.iter().map(|key| vec![key.to_value(), pass.at_ms.to_value()]).collect();
        transaction.insert_rows(
            "INSERT INTO summarized_segments (key, at_ms)",
            "ON CONFLICT (key) DO NOTHING",
            &rows,
        )?;
        for (ids, state) in [(&pass.joined, 1i64), (&pass.orphaned, 2)] {
            for id in ids {
                transaction.execute("UPDATE labels SET joined = ?2 WHERE request_id = ?1", params![id, state])?;
            }
        }
        transaction.commit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{TestStore, on_both_backends};

    fn a_pass_lands_whole_and_labels_wait_until_joined(location: &TestStore) -> Result<()> {
        let store = location.open()?;
        store.put_labels(&[
            ("r1".into(), LabelRecord { label: 1.0, arrived_ms: 10 }),
            ("r2".into(), LabelRecord { label: 0.0, arrived_ms: 500 }),
        ])?;
        assert_eq!(store.pending_labels(100, None, 10)?.len(), 1, "r2 arrives later");
        let key = SummaryKey { model: "fraud".into(), kind: SummaryKind::Traffic, version: 1, other: 0, start_ms: 0 };
        let pass = SummaryPass {
            segments: vec!["predictions/a.parquet".into()],
            predictions: vec![IndexedPrediction {
                request_id: "r1".into(),
                model: "fraud".into(),
                version: 1,
                served: true,
                timestamp_ms: 5,
                score: 0.9,
                prediction: f64::NAN,
            }],
            summaries: vec![StoredSummary { key: key.clone(), width_ms: 1_000, body: "{}".into(), revision: 0 }],
            joined: vec!["r1".into()],
            orphaned: Vec::new(),
            at_ms: 100,
            index_kept_ms: None,
        };
        store.apply_summary_pass(&pass)?;
        store.apply_summary_pass(&pass)?;
        assert!(store.summarized_segments()?.contains("predictions/a.parquet"));
        assert!(store.pending_labels(1_000, None, 10)?.iter().all(|(id, _)| id == "r2"));
        let indexed = store.indexed_predictions(&["r1", "r9"])?;
        assert_eq!(indexed.len(), 1, "one row however often it is written");
        assert!(indexed[0].prediction.is_nan() && indexed[0].served);
        let stored = store.window_summaries("fraud", SummaryKind::Traffic, 0)?;
        assert_eq!((stored.len(), stored[0].revision), (1, 2), "each pass writes a later revision");
        assert!(store.window_summaries_changed("fraud", SummaryKind::Traffic, 2)?.is_empty());
        assert_eq!(store.window_summaries_changed("fraud", SummaryKind::Traffic, 1)?.len(), 1);
        assert!(store.window_summaries("fraud", SummaryKind::Traffic, 1)?.is_empty());
        assert_eq!(store.summary_bodies([&key])?[&key], "{}");
        let labels = store.labels_with_state(&["r1", "r2"])?;
        assert!(labels["r1"].joined && !labels["r2"].joined);
        Ok(())
    }

    fn the_index_forgets_predictions_past_the_label_horizon(location: &TestStore) -> Result<()> {
        let store = location.open()?;
        let row = |id: &str, timestamp_ms: i64| IndexedPrediction {
            request_id: id.into(),
            model: "fraud".into(),
            version: 1,
            served: true,
            timestamp_ms,
            score: 0.5,
            prediction: 0.5,
        };
        let pass =
            SummaryPass { predictions: vec![row("old", 100), row("new", 950)], at_ms: 1_000, ..SummaryPass::default() };
        store.apply_summary_pass(&pass)?;
        assert_eq!(store.indexed_predictions(&["old", "new"])?.len(), 2, "kept 90 days without a horizon");
        store.apply_summary_pass(&SummaryPass { at_ms: 1_000, index_kept_ms: Some(100), ..SummaryPass::default() })?;
        let kept = store.indexed_predictions(&["old", "new"])?;
        assert_eq!(kept.iter().map(|row| row.request_id.as_str()).collect::<Vec<_>>(), ["new"]);
        Ok(())
    }

    on_both_backends!(
        a_pass_lands_whole_and_labels_wait_until_joined,
        the_index_forgets_predictions_past_the_label_horizon
    );
}
