//! The declarative feature set: which raw fields, which windowed aggregates, which ratios.

use causeway_types::{FeatureValue, Span};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// An aggregate function over a window of events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    /// Number of events.
    Count,
    /// Sum of a column.
    Sum,
    /// Mean of a column (missing when the window is empty).
    Mean,
    /// Largest value of a column (missing when the window is empty).
    Max,
    /// Smallest value of a column (missing when the window is empty).
    Min,
}

/// One windowed aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateSpec {
    /// The feature's name.
    pub name: String,
    /// The function.
    pub function: Aggregate,
    /// The column aggregated (not needed for `count`).
    #[serde(default)]
    pub column: Option<String>,
}

/// Windowed aggregates of one entity's events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureViewSpec {
    /// The view's name.
    pub name: String,
    /// The entity key column, e.g. `customer_id`.
    pub entity: String,
    /// The event-time column (epoch ms).
    pub timestamp: String,
    /// The window length (`"30d"`, `"6h"`; a bare number counts days, as `window_days` did).
    #[serde(alias = "window_days")]
    pub window: Span,
    /// The aggregates.
    pub aggregates: Vec<AggregateSpec>,
}

impl FeatureViewSpec {
    /// The window length in milliseconds.
    pub fn window_ms(&self) -> i64 {
        self.window.millis()
    }

    /// The source column of each aggregate (empty name for counts), in aggregate order.
    pub fn source_columns(&self) -> Vec<&str> {
        self.aggregates.iter().map(|aggregate| aggregate.column.as_deref().unwrap_or_default()).collect()
    }
}

/// A derived feature: a raw numeric field divided by another feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatioSpec {
    /// The feature's name.
    pub name: String,
    /// A raw numeric field.
    pub numerator: String,
    /// A feature computed before (raw or aggregate).
    pub denominator: String,
}

/// Everything a model reads, declared once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureSetSpec {
    /// Raw numeric fields of the record.
    pub numeric: Vec<String>,
    /// Raw categorical fields of the record.
    #[serde(default)]
    pub categorical: Vec<String>,
    /// Windowed aggregates per entity.
    #[serde(default)]
    pub views: Vec<FeatureViewSpec>,
    /// Derived ratios.
    #[serde(default)]
    pub ratios: Vec<RatioSpec>,
    /// Features that may never be missing: training data and requests without them are refused.
    /// Every other feature may be missing (the trees learn where missing values go; linear models
    /// read them as the training mean).
    #[serde(default)]
    pub not_null: Vec<String>,
}

/// Read access to one raw record (a row of a frame, or a request's fields).
pub trait RecordFields {
    /// The numeric value of `name`, if present and numeric.
    fn number(&self, name: &str) -> Option<f64>;
    /// The text value of `name`, if present.
    fn text(&self, name: &str) -> Option<String>;
}

impl FeatureSetSpec {
    /// Feature names in model-input order: numeric, categorical, aggregates, ratios.
    pub fn feature_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.numeric.iter().chain(&self.categorical).cloned().collect();
        names.extend(self.views.iter().flat_map(|view| view.aggregates.iter().map(|aggregate| aggregate.name.clone())));
        names.extend(self.ratios.iter().map(|ratio| ratio.name.clone()));
        names
    }

    /// Names of the features that may be missing: all but those listed in `not_null`.
    pub fn nullable_features(&self) -> Vec<String> {
        self.feature_names().into_iter().filter(|name| !self.not_null.contains(name)).collect()
    }

    /// The raw fields a record must carry: numeric, categorical, entity keys and timestamps.
    pub fn required_fields(&self) -> Vec<String> {
        let mut fields: Vec<String> = self.numeric.iter().chain(&self.categorical).cloned().collect();
        for view in &self.views {
            for field in [&view.entity, &view.timestamp] {
                if !fields.contains(field) {
                    fields.push(field.clone());
                }
            }
        }
        fields
    }

    /// Checks names are unique and references resolve.
    pub fn check(&self) -> Result<()> {
        let names = self.feature_names();
        for (index, name) in names.iter().enumerate() {
            if names[..index].contains(name) {
                return Err(Error::Spec(format!("feature `{name}` is declared twice")));
            }
        }
        for view in &self.views {
            if view.window.is_zero() {
                return Err(Error::Spec(format!(
                    "view `{}` needs a window longer than zero, e.g. window = \"30d\"",
                    view.name
                )));
            }
            for aggregate in &view.aggregates {
                if aggregate.function != Aggregate::Count && aggregate.column.is_none() {
                    return Err(Error::Spec(format!("aggregate `{}` needs a column", aggregate.name)));
                }
            }
        }
        for name in &self.not_null {
            if !names.contains(name) {
                return Err(Error::Spec(format!("not_null names `{name}`, which is not a feature")));
            }
        }
        for ratio in &self.ratios {
            if !self.numeric.contains(&ratio.numerator) {
                return Err(Error::Spec(format!(
                    "ratio `{}`: numerator `{}` is not a numeric field",
                    ratio.name, ratio.numerator
                )));
            }
            if !names.contains(&ratio.denominator) {
                return Err(Error::Spec(format!(
                    "ratio `{}`: denominator `{}` is not a feature",
                    ratio.name, ratio.denominator
                )));
            }
        }
        Ok(())
    }

    /// Assembles one row's features from its raw fields and its view aggregates (one vector per
    /// view, in view order). The single assembly used offline and online.
    pub fn assemble(&self, record: &dyn RecordFields, aggregates: &[Vec<f64>]) -> Vec<FeatureValue> {
        let mut values: Vec<FeatureValue> = Vec::with_capacity(self.numeric.len() + self.categorical.len() + 8);
        for name in &self.numeric {
            // Text where a number belongs stays text, so encoding names it ("not a number")
            // instead of taking it for a missing value.
            values.push(match record.number(name) {
                Some(number) => FeatureValue::Number(number),
                None => record.text(name).map_or(FeatureValue::Missing, FeatureValue::Text),
            });
        }
        for name in &self.categorical {
            values.push(record.text(name).map_or(FeatureValue::Missing, FeatureValue::Text));
        }
        for (view, computed) in self.views.iter().zip(aggregates) {
            for (index, _) in view.aggregates.iter().enumerate() {
                let value = computed.get(index).copied().unwrap_or(f64::NAN);
                values.push(if value.is_nan() { FeatureValue::Missing } else { FeatureValue::Number(value) });
            }
        }
        let names = self.feature_names();
        for ratio in &self.ratios {
            let denominator = names
                .iter()
                .position(|name| *name == ratio.denominator)
                .and_then(|index| values.get(index)?.as_number());
            let value = match (record.number(&ratio.numerator), denominator) {
                (Some(numerator), Some(denominator)) if denominator.abs() > f64::EPSILON => {
                    FeatureValue::Number(numerator / denominator)
                }
                _ => FeatureValue::Missing,
            };
            values.push(value);
        }
        values
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::HashMap;

    use super::*;

    struct Fields(HashMap<&'static str, FeatureValue>);

    impl RecordFields for Fields {
        fn number(&self, name: &str) -> Option<f64> {
            self.0.get(name).and_then(FeatureValue::as_number)
        }
        fn text(&self, name: &str) -> Option<String> {
            match self.0.get(name) {
                Some(FeatureValue::Text(text)) => Some(text.clone()),
                _ => None,
            }
        }
    }

    pub(crate) fn spec() -> FeatureSetSpec {
        toml::from_str(
            r#"
            numeric = ["amount"]
            categorical = ["channel"]
            [[views]]
            name = "customer"
            entity = "customer_id"
            timestamp = "timestamp"
            window_days = 30
            aggregates = [
              { name = "count_30d", function = "count" },
              { name = "mean_amount_30d", function = "mean", column = "amount" },
            ]
            [[ratios]]
            name = "amount_to_mean"
            numerator = "amount"
            denominator = "mean_amount_30d"
            "#,
        )
        .expect("valid spec")
    }

    #[test]
    fn assembles_in_declared_order_with_ratio_and_missing() {
        let spec = spec();
        spec.check().expect("consistent");
        assert_eq!(spec.feature_names(), ["amount", "channel", "count_30d", "mean_amount_30d", "amount_to_mean"]);
        let record = Fields(HashMap::from([
            ("amount", FeatureValue::Number(30.0)),
            ("channel", FeatureValue::Text("online".into())),
        ]));
        let values = spec.assemble(&record, &[vec![2.0, 10.0]]);
        assert_eq!(values[4], FeatureValue::Number(3.0));
        let empty = spec.assemble(&record, &[vec![0.0, f64::NAN]]);
        assert_eq!(empty[3], FeatureValue::Missing);
        assert_eq!(empty[4], FeatureValue::Missing);
        assert_eq!(spec.nullable_features(), spec.feature_names(), "every feature may be missing by default");
        let strict = FeatureSetSpec { not_null: vec!["amount".into()], ..spec.clone() };
        assert!(strict.check().is_ok());
        assert!(!strict.nullable_features().contains(&"amount".to_string()));
        let dangling = FeatureSetSpec { not_null: vec!["nope".into()], ..spec.clone() };
        assert!(dangling.check().is_err());
    }

    #[test]
    fn rejects_duplicate_names_and_dangling_ratios() {
        let mut duplicate = spec();
        duplicate.categorical.push("amount".into());
        assert!(duplicate.check().is_err());
        let mut dangling = spec();
        dangling.ratios[0].denominator = "nope".into();
        assert!(dangling.check().unwrap_err().to_string().contains("`nope` is not a feature"));
    }
}
