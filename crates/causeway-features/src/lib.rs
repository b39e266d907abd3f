//! Features defined once and computed identically offline and online.
//!
//! A [`FeatureSetSpec`] (declared in `causeway.toml`) names the raw columns a model reads, the
//! feature views (windowed aggregates per entity) and derived ratios. Offline, [`offline`]
//! computes every row's features point-in-time-correctly: an aggregate for an event at time `t`
//! sees only events strictly before `t`. Online, the [`OnlineStore`] keeps each entity's events
//! inside the window and computes the same aggregates with the same function at request time,
//! so served feature values equal offline ones by construction.

mod error;
pub mod offline;
pub mod online;
pub mod spec;

pub use error::{Error, Result};
pub use online::OnlineStore;
pub use spec::{Aggregate, AggregateSpec, FeatureSetSpec, FeatureViewSpec, RatioSpec, RecordFields};

/// Computes the aggregates of one view over `events` (sorted by time) for a request at `at_ms`:
/// only events in `[at_ms - window, at_ms)` count. The single implementation shared by the
/// offline join and the online store.
pub fn aggregate_window(view: &FeatureViewSpec, events: &[(i64, Vec<f64>)], at_ms: i64) -> Vec<f64> {
    let start = at_ms - view.window_ms();
    let first = events.partition_point(|(timestamp, _)| *timestamp < start);
    let last = events.partition_point(|(timestamp, _)| *timestamp < at_ms);
    let window = events.get(first..last).unwrap_or_default();
    view.aggregates
        .iter()
        .enumerate()
        .map(|(index, aggregate)| {
            let values =
                window.iter().filter_map(|(_, values)| values.get(index).copied()).filter(|value| !value.is_nan());
            match aggregate.function {
                Aggregate::Count => window.len() as f64,
                Aggregate::Sum => values.sum(),
                Aggregate::Mean => {
                    let (sum, count) = values.fold((0.0, 0usize), |(sum, count), value| (sum + value, count + 1));
                    if count == 0 { f64::NAN } else { sum / count as f64 }
                }
                Aggregate::Max => values.fold(f64::NAN, f64::max),
                Aggregate::Min => values.fold(f64::NAN, f64::min),
            }
        })
        .collect()
}
