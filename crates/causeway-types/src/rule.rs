//! [`RuleId`]: which monitoring rule an alert belongs to, typed, so the loop asks what kind of
//! rule fired instead of matching text prefixes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What kind of rule an alert belongs to; retraining triggers name these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// Input or score drift.
    Drift,
    /// Labelled performance.
    Performance,
    /// A rule of `[[monitor.alerts]]`.
    Custom,
}

/// One monitoring rule. Written as text in stored states and event details: `drift:<feature>`,
/// `drift:score`, `performance:<metric>`, `alert:<name>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RuleId {
    /// A served feature's distribution against the training baseline.
    FeatureDrift(String),
    /// The model score's distribution against the training baseline.
    ScoreDrift,
    /// A labelled metric (`recall`, `roc_auc`, `accuracy`, `rmse`) against the holdout's.
    Performance(String),
    /// A rule of `[[monitor.alerts]]`, by name.
    Custom(String),
}

impl RuleId {
    /// The kind of rule.
    pub fn kind(&self) -> RuleKind {
        match self {
            Self::FeatureDrift(_) | Self::ScoreDrift => RuleKind::Drift,
            Self::Performance(_) => RuleKind::Performance,
            Self::Custom(_) => RuleKind::Custom,
        }
    }
}

impl fmt::Display for RuleId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FeatureDrift(feature) => write!(formatter, "drift:{feature}"),
            Self::ScoreDrift => formatter.write_str("drift:score"),
            Self::Performance(metric) => write!(formatter, "performance:{metric}"),
            Self::Custom(name) => write!(formatter, "alert:{name}"),
        }
    }
}

/// A text that names no rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a rule id (drift:<feature>, drift:score, performance:<metric> or alert:<name>)")]
pub struct RuleIdError(String);

impl FromStr for RuleId {
    type Err = RuleIdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.split_once(':') {
            Some(("drift", "score")) => Ok(Self::ScoreDrift),
            Some(("drift", feature)) if !feature.is_empty() => Ok(Self::FeatureDrift(feature.to_string())),
            Some(("performance", metric)) if !metric.is_empty() => Ok(Self::Performance(metric.to_string())),
            Some(("alert", name)) if !name.is_empty() => Ok(Self::Custom(name.to_string())),
            _ => Err(RuleIdError(text.to_string())),
        }
    }
}

impl Serialize for RuleId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RuleId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_ids_round_trip_through_their_text() {
        for rule in [
            RuleId::FeatureDrift("amount".into()),
            RuleId::ScoreDrift,
            RuleId::Performance("recall".into()),
            RuleId::Custom("slow".into()),
        ] {
            assert_eq!(rule.to_string().parse::<RuleId>(), Ok(rule.clone()));
        }
        assert_eq!(RuleId::Performance("rmse".into()).kind(), RuleKind::Performance);
        assert_eq!("drift:amount".parse::<RuleId>().map(|rule| rule.kind()), Ok(RuleKind::Drift));
        assert!("drift:".parse::<RuleId>().is_err());
        assert!("latency".parse::<RuleId>().is_err());
    }
}
