//! Offline, point-in-time-correct feature computation for training sets.

use std::collections::HashMap;

use causeway_data::Frame;
use causeway_types::FeatureValue;

use crate::error::{Error, Result};
use crate::spec::{FeatureSetSpec, FeatureViewSpec, RecordFields};

/// One entity's events, sorted by time: `(timestamp, values of the view's source columns)`.
pub type EntityEvents = Vec<(i64, Vec<f64>)>;

/// A row of a frame seen as a record.
pub struct FrameRecord<'a> {
    frame: &'a Frame,
    row: usize,
}

impl<'a> FrameRecord<'a> {
    /// Row `row` of `frame`.
    pub fn new(frame: &'a Frame, row: usize) -> Self {
        Self { frame, row }
    }
}

impl RecordFields for FrameRecord<'_> {
    fn number(&self, name: &str) -> Option<f64> {
        self.frame.column(name)?.number(self.row)
    }

    fn text(&self, name: &str) -> Option<String> {
        self.frame.column(name)?.text(self.row)
    }
}

/// Groups a frame's events by the view's entity, each list sorted by time.
pub fn entity_events(view: &FeatureViewSpec, events: &Frame) -> Result<HashMap<String, EntityEvents>> {
    let entity =
        events.column(&view.entity).ok_or_else(|| Error::Input(format!("column `{}` is missing", view.entity)))?;
    let timestamp = events
        .column(&view.timestamp)
        .ok_or_else(|| Error::Input(format!("column `{}` is missing", view.timestamp)))?;
    let sources: Vec<Option<&causeway_data::Column>> = view
        .source_columns()
        .iter()
        .map(|name| {
            if name.is_empty() {
                Ok(None)
            } else {
                events.column(name).map(Some).ok_or_else(|| Error::Input(format!("column `{name}` is missing")))
            }
        })
        .collect::<Result<_>>()?;
    let mut grouped: HashMap<String, EntityEvents> = HashMap::new();
    for row in 0..events.rows() {
        let (Some(key), Some(at)) = (entity.text(row), timestamp.number(row)) else { continue };
        let values =
            sources.iter().map(|column| column.and_then(|column| column.number(row)).unwrap_or(f64::NAN)).collect();
        grouped.entry(key).or_default().push((at as i64, values));
    }
    for list in grouped.values_mut() {
        list.sort_by_key(|(at, _)| *at);
    }
    Ok(grouped)
}

/// Computes every row's features as of the row's own timestamp, from `history` (which may include
/// the rows themselves: an event never sees itself or anything at or after its time).
pub fn compute_features(spec: &FeatureSetSpec, rows: &Frame, history: &Frame) -> Result<Vec<Vec<FeatureValue>>> {
    let grouped: Vec<HashMap<String, EntityEvents>> =
        spec.views.iter().map(|view| entity_events(view, history)).collect::<Result<_>>()?;
    let empty = EntityEvents::new();
    let mut features = Vec::with_capacity(rows.rows());
    for row in 0..rows.rows() {
        let record = FrameRecord::new(rows, row);
        let aggregates: Vec<Vec<f64>> = spec
            .views
            .iter()
            .zip(&grouped)
            .map(|(view, events)| {
                let key = record.text(&view.entity).unwrap_or_default();
                let at = record.number(&view.timestamp).unwrap_or(f64::NAN) as i64;
                crate::aggregate_window(view, events.get(&key).unwrap_or(&empty), at)
            })
            .collect();
        features.push(spec.assemble(&record, &aggregates));
    }
    Ok(features)
}

#[cfg(test)]
mod tests {
    use causeway_data::Column;

    use super::*;
    use crate::spec::tests::spec;

    const DAY: i64 = causeway_types::DAY_MS;

    fn events(rows: &[(&str, i64, f64)]) -> Frame {
        Frame::new()
            .with_column("customer_id", Column::Utf8(rows.iter().map(|row| Some(row.0.to_string())).collect()))
            .and_then(|frame| {
                frame.with_column("timestamp", Column::Int64(rows.iter().map(|row| Some(row.1)).collect()))
            })
            .and_then(|frame| {
                frame.with_column("amount", Column::Float64(rows.iter().map(|row| Some(row.2)).collect()))
            })
            .and_then(|frame| {
                frame.with_column("channel", Column::Utf8(rows.iter().map(|_| Some("online".to_string())).collect()))
            })
            .expect("frame")
    }

    fn brute_force(history: &[(&str, i64, f64)], customer: &str, at: i64) -> (f64, Option<f64>) {
        let window: Vec<f64> = history
            .iter()
            .filter(|(who, when, _)| *who == customer && *when < at && *when >= at - 30 * DAY)
            .map(|(_, _, amount)| *amount)
            .collect();
        let mean = (!window.is_empty()).then(|| window.iter().sum::<f64>() / window.len() as f64);
        (window.len() as f64, mean)
    }

    #[test]
    fn matches_brute_force_and_never_sees_the_future() -> Result<()> {
        let mut rng = causeway_types::SeededRng::new(9);
        let raw: Vec<(&str, i64, f64)> = (0..400)
            .map(|_| {
                let who = ["a", "b", "c"][rng.below(3)];
                (who, rng.below(90) as i64 * DAY + rng.below(1000) as i64, rng.range(1.0, 100.0))
            })
            .collect();
        let frame = events(&raw);
        let features = compute_features(&spec(), &frame, &frame)?;
        for (row, (who, at, _)) in raw.iter().enumerate() {
            let (count, mean) = brute_force(&raw, who, *at);
            assert_eq!(features[row][2], FeatureValue::Number(count), "row {row}");
            match mean {
                Some(mean) => match features[row][3] {
                    FeatureValue::Number(value) => assert!((value - mean).abs() < 1e-9),
                    ref other => panic!("row {row}: {other:?}"),
                },
                None => assert_eq!(features[row][3], FeatureValue::Missing),
            }
        }
        // Adding events at or after a row's own time must change none of that row's features.
        for (row, (who, at, amount)) in raw.iter().enumerate().take(40) {
            let mut with_future = raw.clone();
            with_future.push((who, *at, 1_000_000.0));
            with_future.push((who, *at + 5 * DAY, 1_000_000.0));
            let again = compute_features(&spec(), &events(&[(who, *at, *amount)]), &events(&with_future))?;
            assert_eq!(again[0], features[row], "row {row}");
        }
        Ok(())
    }
}
