//! Serde for `f64` values that may be infinite or NaN (split thresholds, leaf values): JSON has no
//! such numbers, and `serde_json` would write `null`, which no longer reads back as a number. Finite
//! values stay JSON numbers; the others are the strings `"inf"`, `"-inf"` and `"nan"`.

use serde::{Deserialize, Deserializer, Serializer};

/// Writes a finite value as a number, the others as text.
pub fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    if value.is_finite() {
        serializer.serialize_f64(*value)
    } else if value.is_nan() {
        serializer.serialize_str("nan")
    } else if *value > 0.0 {
        serializer.serialize_str("inf")
    } else {
        serializer.serialize_str("-inf")
    }
}

/// Reads a number, or one of `"inf"`, `"-inf"`, `"nan"`.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Number(f64),
        Text(String),
    }
    match Written::deserialize(deserializer)? {
        Written::Number(value) => Ok(value),
        Written::Text(text) => match text.as_str() {
            "inf" | "+inf" | "infinity" => Ok(f64::INFINITY),
            "-inf" | "-infinity" => Ok(f64::NEG_INFINITY),
            "nan" => Ok(f64::NAN),
            other => Err(serde::de::Error::custom(format!("expected a number, `inf`, `-inf` or `nan`, got `{other}`"))),
        },
    }
}
