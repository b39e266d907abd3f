//! The metric-history routes MLflow's web UI draws its charts from: `metrics/get-history-bulk`
//! (one metric's whole history for up to 100 runs) and `metrics/get-history-bulk-interval` (the same,
//! sampled to a number of steps, keeping every run's first and last step).
//!
//! Both take repeated query parameters (`run_id=a&run_id=b`), so they read the raw pairs rather than
//! a map. The sampling is [`sample_steps`], a pure function; the handlers only fetch and format.

use std::collections::BTreeSet;

use axum::Router;
use axum::extract::{Query, State};
use axum::response::Json;
use axum::routing::get;
use causeway_store::{Error as StoreError, MetricPoint};
use serde_json::{Value, json};

use crate::mlflow::{MlflowError, TrackingState, blocking, float_json};

/// The most runs one bulk request may name.
pub const MAX_RUNS_PER_REQUEST: usize = 100;
/// The most points a `get-history-bulk` answer holds.
pub const MAX_HISTORY_RESULTS: usize = 25_000;
/// The most steps `get-history-bulk-interval` samples (and its default).
pub const MAX_SAMPLED_STEPS: usize = 2_500;

type Pairs = Query<Vec<(String, String)>>;

/// The bulk history routes.
pub fn router(state: TrackingState) -> Router {
    Router::new()
        .route("/api/2.0/mlflow/metrics/get-history-bulk", get(history_bulk))
        .route("/api/2.0/mlflow/metrics/get-history-bulk-interval", get(history_bulk_interval))
        .with_state(state)
}

fn values<'a>(pairs: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    pairs.iter().filter(|(key, _)| key == name).map(|(_, value)| value.as_str()).collect()
}

fn first<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    values(pairs, name).into_iter().next()
}

fn integer(pairs: &[(String, String)], name: &str) -> Result<Option<i64>, MlflowError> {
    first(pairs, name)
        .map(|text| {
            text.parse().map_err(|_| {
                MlflowError::invalid(format!(
                    "Invalid value {text} for parameter '{name}' supplied: it must be an integer"
                ))
            })
        })
        .transpose()
}

fn point_json(key: &str, run_id: &str, point: &MetricPoint) -> Value {
    json!({"key": key, "value": float_json(point.value), "timestamp": point.timestamp, "step": point.step, "run_id": run_id})
}

/// `GET metrics/get-history-bulk?run_id=…&run_id=…&metric_key=…[&max_results=N]`: every point, runs
/// in id order, each run's points by timestamp, step and value. Runs that do not exist add nothing.
async fn history_bulk(State(state): State<TrackingState>, Query(pairs): Pairs) -> Result<Json<Value>, MlflowError> {
    blocking(move || {
        let mut run_ids: Vec<&str> = values(&pairs, "run_id").into_iter().filter(|id| !id.is_empty()).collect();
        if run_ids.is_empty() {
            return Err(MlflowError::invalid("GetMetricHistoryBulk request must specify at least one run_id."));
        }
        if run_ids.len() > MAX_RUNS_PER_REQUEST {
            return Err(MlflowError::invalid(format!(
                "GetMetricHistoryBulk request cannot specify more than {MAX_RUNS_PER_REQUEST} run_ids. Received {} run_ids.",
                run_ids.len()
            )));
        }
        let key = first(&pairs, "metric_key")
            .ok_or_else(|| MlflowError::invalid("GetMetricHistoryBulk request must specify a metric_key."))?;
        let limit = integer(&pairs, "max_results")?
            .map_or(MAX_HISTORY_RESULTS, |wanted| usize::try_from(wanted).unwrap_or(0).min(MAX_HISTORY_RESULTS));
        run_ids.sort_unstable();
        run_ids.dedup();
        let mut metrics = Vec::new();
        for run_id in run_ids {
            let mut points = match state.meta.metric_history(run_id, key) {
                Ok(points) => points,
                Err(StoreError::NotFound(_)) => continue,
                Err(error) => return Err(error.into()),
            };
            points.sort_by(|a, b| (a.timestamp, a.step).cmp(&(b.timestamp, b.step)).then(a.value.total_cmp(&b.value)));
            metrics.extend(points.iter().map(|point| point_json(key, run_id, point)));
            if metrics.len() >= limit {
                break;
            }
        }
        metrics.truncate(limit);
        Ok(Json(json!({"metrics": metrics})))
    })
    .await
}

/// `GET metrics/get-history-bulk-interval?run_ids=…&metric_key=…[&max_results=N][&start_step=A&end_step=B]`:
/// the points at [`sample_steps`]' steps, runs in the order given, each by step then timestamp.
async fn history_bulk_interval(
    State(state): State<TrackingState>,
    Query(pairs): Pairs,
) -> Result<Json<Value>, MlflowError> {
    blocking(move || {
        let run_ids: Vec<&str> = values(&pairs, "run_ids").into_iter().filter(|id| !id.is_empty()).collect();
        if run_ids.is_empty() {
            return Err(MlflowError::missing("run_ids"));
        }
        if run_ids.len() > MAX_RUNS_PER_REQUEST {
            return Err(MlflowError::invalid(format!(
                "GetMetricHistoryBulkInterval request must specify at most {MAX_RUNS_PER_REQUEST} run_ids. Received {} run_ids.",
                run_ids.len()
            )));
        }
        let key = first(&pairs, "metric_key").filter(|key| !key.is_empty()).ok_or_else(|| MlflowError::missing("metric_key"))?;
        let start_step = integer(&pairs, "start_step")?;
        let end_step = integer(&pairs, "end_step")?;
        let max_results = match integer(&pairs, "max_results")? {
            None => MAX_SAMPLED_STEPS,
            Some(wanted) => usize::try_from(wanted)
                .ok()
                .filter(|wanted| (1..=MAX_SAMPLED_STEPS).contains(wanted))
                .ok_or_else(|| MlflowError::invalid(format!("max_results must be between 1 and {MAX_SAMPLED_STEPS}.")))?,
        };
        let range = match (start_step, end_step) {
            (Some(start), Some(end)) if start > end => {
                return Err(MlflowError::invalid(format!(
                    "end_step must be greater than start_step. Found start_step={start} and end_step={end}."
                )));
            }
            (Some(start), Some(end)) => Some((start, end)),
            (None, None) => None,
            _ => {
                return Err(MlflowError::invalid(
                    "If either start step or end step are specified, both must be specified.",
                ));
            }
        };
        let histories: Vec<(&str, Vec<MetricPoint>)> = run_ids
            .iter()
            .map(|run_id| Ok((*run_id, state.meta.metric_history(run_id, key)?)))
            .collect::<Result<_, MlflowError>>()?;
        let steps_per_run: Vec<Vec<i64>> =
            histories.iter().map(|(_, points)| points.iter().map(|point| point.step).collect()).collect();
        let steps = sample_steps(&steps_per_run, max_results, range);
        let mut metrics = Vec::new();
        for (run_id, mut points) in histories {
            points.retain(|point| steps.contains(&point.step));
            points.sort_by_key(|point| (point.step, point.timestamp));
            metrics.extend(points.iter().take(MAX_HISTORY_RESULTS).map(|point| point_json(key, run_id, point)));
        }
        Ok(Json(json!({"metrics": metrics})))
    })
    .await
}

/// The steps a chart of several runs shows: at most `max_results` steps spread evenly over the
/// distinct steps in `range` (default: 0 to the last step logged), plus the last of them, plus every
/// run's first and last step inside the range — so no run's curve loses its ends.
pub fn sample_steps(steps_per_run: &[Vec<i64>], max_results: usize, range: Option<(i64, i64)>) -> BTreeSet<i64> {
    let all: Vec<i64> = steps_per_run.iter().flatten().copied().collect::<BTreeSet<_>>().into_iter().collect();
    let Some(&last) = all.last() else { return BTreeSet::new() };
    let (start, end) = range.unwrap_or((0, last));
    let inside: Vec<i64> = all.into_iter().filter(|step| (start..=end).contains(step)).collect();
    let mut sampled: BTreeSet<i64> = if inside.len() <= max_results {
        inside.iter().copied().collect()
    } else {
        let interval = inside.len() as f64 / max_results as f64;
        let mut picked: BTreeSet<i64> =
            (0..max_results).filter_map(|index| inside.get((index as f64 * interval) as usize).copied()).collect();
        picked.extend(inside.last());
        picked
    };
    for run in steps_per_run {
        for bound in [run.iter().min(), run.iter().max()].into_iter().flatten() {
            if (start..=end).contains(bound) {
                sampled.insert(*bound);
            }
        }
    }
    sampled
}

#[cfg(test)]
mod tests {
    use super::sample_steps;

    fn steps(upto: i64) -> Vec<i64> {
        (0..upto).collect()
    }

    #[test]
    fn few_steps_are_all_kept() {
        assert_eq!(sample_steps(&[steps(4)], 5, None).into_iter().collect::<Vec<_>>(), vec![0, 1, 2, 3]);
    }

    #[test]
    fn many_steps_are_spread_evenly_keeping_the_last() {
        assert_eq!(sample_steps(&[steps(10)], 5, None).into_iter().collect::<Vec<_>>(), vec![0, 2, 4, 6, 8, 9]);
    }

    #[test]
    fn every_run_keeps_its_ends() {
        let sampled = sample_steps(&[steps(10), steps(20)], 5, None);
        assert_eq!(sampled.into_iter().collect::<Vec<_>>(), vec![0, 4, 8, 9, 12, 16, 19]);
    }

    #[test]
    fn a_range_bounds_the_sample_and_the_ends() {
        let sampled = sample_steps(&[steps(10), steps(20)], 5, Some((0, 4)));
        assert_eq!(sampled.into_iter().collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
        assert!(sample_steps(&[vec![]], 5, None).is_empty());
    }
}
