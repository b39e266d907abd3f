//! A model's signature: its input features, their kinds and whether they may be missing; and the
//! one encoding from feature values to the numeric rows models read.

use causeway_types::FeatureValue;
use serde::{Deserialize, Serialize};

use crate::error::InputError;

/// What kind of values a feature takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FeatureKind {
    /// A number.
    Numeric,
    /// One of a known set of strings; encoded as its index, unknown values as missing.
    Categorical {
        /// The known values, in code order.
        vocabulary: Vec<String>,
    },
}

/// One input feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSpec {
    /// The feature's name.
    pub name: String,
    /// Its kind.
    #[serde(flatten)]
    pub kind: FeatureKind,
    /// Whether the value may be missing (null or NaN).
    pub nullable: bool,
}

/// The ordered inputs of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signature {
    /// The features, in model-input order.
    pub features: Vec<FeatureSpec>,
}

impl Signature {
    /// The number of input features.
    pub fn width(&self) -> usize {
        self.features.len()
    }

    /// The feature names in order.
    pub fn names(&self) -> Vec<&str> {
        self.features.iter().map(|feature| feature.name.as_str()).collect()
    }

    /// Encodes one row of feature values (in signature order) into numbers; missing is NaN.
    pub fn encode(&self, values: &[FeatureValue]) -> Result<Vec<f64>, InputError> {
        self.encode_noting(values, &mut Vec::new())
    }

    /// [`Signature::encode`], adding to `unknown` the index of every categorical feature whose
    /// value is a category the model never saw (encoded as missing).
    pub fn encode_noting(&self, values: &[FeatureValue], unknown: &mut Vec<usize>) -> Result<Vec<f64>, InputError> {
        if values.len() != self.features.len() {
            return Err(InputError::new(
                "input",
                format!(
                    "expected {} features ({}), got {}",
                    self.features.len(),
                    self.names().join(", "),
                    values.len()
                ),
            ));
        }
        let mut row = Vec::with_capacity(values.len());
        for (index, (feature, value)) in self.features.iter().zip(values).enumerate() {
            let encoded = self.encode_value(feature, value)?;
            if encoded.is_nan()
                && matches!((&feature.kind, value), (FeatureKind::Categorical { .. }, FeatureValue::Text(_)))
            {
                unknown.push(index);
            }
            row.push(encoded);
        }
        Ok(row)
    }

    /// Encodes one value of `feature`.
    pub fn encode_value(&self, feature: &FeatureSpec, value: &FeatureValue) -> Result<f64, InputError> {
        let missing = || {
            if feature.nullable {
                Ok(f64::NAN)
            } else {
                Err(InputError::new(&feature.name, "is missing or NaN, and this feature does not allow missing values"))
            }
        };
        match (&feature.kind, value) {
            (_, FeatureValue::Missing) => missing(),
            (FeatureKind::Numeric, FeatureValue::Number(number)) if number.is_nan() => missing(),
            (FeatureKind::Numeric, FeatureValue::Number(number)) if number.is_infinite() => {
                Err(InputError::new(&feature.name, "must be finite"))
            }
            (FeatureKind::Numeric, FeatureValue::Number(number)) => Ok(*number),
            (FeatureKind::Numeric, FeatureValue::Text(text)) => {
                Err(InputError::new(&feature.name, format!("must be a number, got the string {text:?}")))
            }
            (FeatureKind::Categorical { vocabulary }, FeatureValue::Text(text)) => {
                Ok(vocabulary.iter().position(|known| known == text).map_or(f64::NAN, |index| index as f64))
            }
            (FeatureKind::Categorical { vocabulary }, FeatureValue::Number(number))
                if vocabulary.iter().any(|known| *known == format!("{number}")) =>
            {
                // A number that is one of the categories (pandas integer categories) is that
                // category, not a code.
                Ok(vocabulary
                    .iter()
                    .position(|known| *known == format!("{number}"))
                    .map_or(f64::NAN, |index| index as f64))
            }
            (FeatureKind::Categorical { vocabulary }, FeatureValue::Number(number)) => {
                let index = *number;
                if index.fract() == 0.0 && index >= 0.0 && (index as usize) < vocabulary.len() {
                    Ok(index)
                } else {
                    Err(InputError::new(
                        &feature.name,
                        format!("is categorical: send one of {:?} or its code 0..{}", vocabulary, vocabulary.len()),
                    ))
                }
            }
        }
    }

    /// The feature values an encoded row stands for (the inverse of [`Signature::encode`]): NaN
    /// is missing, a categorical code its category. What a model was served can so be trained on.
    pub fn decode(&self, row: &[f64]) -> Vec<FeatureValue> {
        self.features
            .iter()
            .zip(row)
            .map(|(feature, value)| match &feature.kind {
                _ if value.is_nan() => FeatureValue::Missing,
                FeatureKind::Numeric => FeatureValue::Number(*value),
                FeatureKind::Categorical { vocabulary } => vocabulary
                    .get(*value as usize)
                    .filter(|_| value.fract() == 0.0 && *value >= 0.0)
                    .map_or(FeatureValue::Missing, |category| FeatureValue::Text(category.clone())),
            })
            .collect()
    }

    /// Checks an already encoded row: width, finiteness and missing values where not allowed.
    pub fn check_encoded(&self, row: &[f64]) -> Result<(), InputError> {
        if row.len() != self.features.len() {
            return Err(InputError::new(
                "input",
                format!("expected {} values per row, got {}", self.features.len(), row.len()),
            ));
        }
        for (feature, value) in self.features.iter().zip(row) {
            if value.is_nan() && !feature.nullable {
                return Err(InputError::new(&feature.name, "is NaN, and this feature does not allow missing values"));
            }
            if value.is_infinite() {
                return Err(InputError::new(&feature.name, "must be finite"));
            }
            if let FeatureKind::Categorical { vocabulary } = &feature.kind
                && !value.is_nan()
                && (value.fract() != 0.0 || *value < 0.0 || *value as usize >= vocabulary.len())
            {
                return Err(InputError::new(
                    &feature.name,
                    format!("category code {value} is outside 0..{}", vocabulary.len()),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn signature() -> Signature {
        Signature {
            features: vec![
                FeatureSpec { name: "amount".into(), kind: FeatureKind::Numeric, nullable: false },
                FeatureSpec {
                    name: "channel".into(),
                    kind: FeatureKind::Categorical { vocabulary: vec!["in_store".into(), "online".into()] },
                    nullable: true,
                },
                FeatureSpec { name: "mean_30d".into(), kind: FeatureKind::Numeric, nullable: true },
            ],
        }
    }

    #[test]
    fn decoding_an_encoded_row_gives_its_values_back() {
        let signature = Signature {
            features: vec![
                FeatureSpec { name: "amount".into(), kind: FeatureKind::Numeric, nullable: true },
                FeatureSpec {
                    name: "channel".into(),
                    kind: FeatureKind::Categorical { vocabulary: vec!["online".into(), "store".into()] },
                    nullable: true,
                },
            ],
        };
        for values in [
            vec![FeatureValue::Number(12.5), FeatureValue::Text("store".into())],
            vec![FeatureValue::Missing, FeatureValue::Missing],
        ] {
            let encoded = signature.encode(&values).expect("encodes");
            assert_eq!(signature.decode(&encoded), values);
        }
    }

    #[test]
    fn encodes_categories_and_missing() {
        let row = signature()
            .encode(&[FeatureValue::Number(5.0), FeatureValue::Text("online".into()), FeatureValue::Missing])
            .expect("valid");
        assert_eq!(row[..2], [5.0, 1.0]);
        assert!(row[2].is_nan());
        let unknown = signature()
            .encode(&[FeatureValue::Number(5.0), FeatureValue::Text("fax".into()), FeatureValue::Number(1.0)])
            .expect("unknown category is missing");
        assert!(unknown[1].is_nan());
    }

    #[test]
    fn errors_name_the_field() {
        let signature = signature();
        let missing =
            signature.encode(&[FeatureValue::Missing, FeatureValue::Missing, FeatureValue::Missing]).unwrap_err();
        assert_eq!(missing.field, "amount");
        let wrong_type = signature
            .encode(&[FeatureValue::Text("x".into()), FeatureValue::Missing, FeatureValue::Missing])
            .unwrap_err();
        assert!(wrong_type.to_string().contains("input `amount`: must be a number"));
        let short = signature.encode(&[FeatureValue::Number(1.0)]).unwrap_err();
        assert_eq!(short.field, "input");
        assert_eq!(signature.check_encoded(&[f64::NAN, 0.0, 0.0]).unwrap_err().field, "amount");
        assert_eq!(signature.check_encoded(&[1.0, 7.0, 0.0]).unwrap_err().field, "channel");
        assert!(signature.check_encoded(&[1.0, f64::NAN, f64::NAN]).is_ok());
    }
}
