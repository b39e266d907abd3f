//! Column types and schemas as Causeway records them, independent of Arrow.

use serde::{Deserialize, Serialize};

/// The data types Causeway stores and validates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dtype {
    /// 64-bit signed integers (also 0/1 flags and epoch-millisecond times written as numbers).
    #[serde(alias = "int", alias = "integer")]
    Int64,
    /// 64-bit floats.
    #[serde(alias = "float", alias = "double", alias = "number")]
    Float64,
    /// UTF-8 strings (categories and identifiers).
    #[serde(alias = "string", alias = "str", alias = "text")]
    Utf8,
    /// Booleans.
    #[serde(alias = "boolean")]
    Bool,
    /// Instants in time, as milliseconds since 1970-01-01 UTC (timestamps of any unit and time
    /// zone, and dates, which are midnight UTC).
    #[serde(alias = "datetime", alias = "date")]
    Timestamp,
}

impl Dtype {
    /// The name used in `causeway.toml` and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Int64 => "int64",
            Self::Float64 => "float64",
            Self::Utf8 => "utf8",
            Self::Bool => "bool",
            Self::Timestamp => "timestamp",
        }
    }

    /// True for types that have an order and a mean.
    pub fn is_numeric(self) -> bool {
        matches!(self, Self::Int64 | Self::Float64)
    }

    /// Every type, in the order error messages list them.
    pub const ALL: [Dtype; 5] = [Self::Int64, Self::Float64, Self::Utf8, Self::Bool, Self::Timestamp];
}

/// One named, typed column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    /// Column name.
    pub name: String,
    /// Column type.
    pub dtype: Dtype,
    /// Whether the column may hold nulls.
    pub nullable: bool,
}

/// An ordered list of columns.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Schema {
    /// The columns in order.
    pub fields: Vec<Field>,
}

impl Schema {
    /// The column named `name`, if present.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|field| field.name == name)
    }

    /// Differences that make `other` incompatible with `self` as a later batch of the same
    /// dataset: columns missing or with another type. Extra columns are allowed, and so are
    /// integers and floats in place of each other (a later batch with fractions widens the column).
    pub fn incompatibilities(&self, other: &Schema) -> Vec<String> {
        let mut problems = Vec::new();
        for field in &self.fields {
            match other.field(&field.name) {
                None if field.nullable => {}
                None => problems.push(format!("column `{}` is missing", field.name)),
                Some(found)
                    if found.dtype != field.dtype && !(found.dtype.is_numeric() && field.dtype.is_numeric()) =>
                {
                    problems.push(format!(
                        "column `{}` has type {} but earlier versions have {}",
                        field.name,
                        found.dtype.as_str(),
                        field.dtype.as_str()
                    ))
                }
                Some(_) => {}
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, dtype: Dtype, nullable: bool) -> Field {
        Field { name: name.into(), dtype, nullable }
    }

    #[test]
    fn reports_missing_and_retyped_columns_only() {
        let before = Schema {
            fields: vec![
                field("a", Dtype::Int64, false),
                field("b", Dtype::Utf8, false),
                field("c", Dtype::Int64, true),
            ],
        };
        let after = Schema { fields: vec![field("a", Dtype::Utf8, false), field("d", Dtype::Utf8, false)] };
        let problems = before.incompatibilities(&after);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("`a` has type utf8"));
        assert!(problems[1].contains("`b` is missing"));
        let widened = Schema { fields: vec![field("a", Dtype::Float64, false), field("b", Dtype::Utf8, false)] };
        assert!(before.incompatibilities(&widened).is_empty(), "integers may become floats");
        assert!(before.incompatibilities(&before).is_empty());
    }
}
