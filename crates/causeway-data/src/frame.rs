//! [`Frame`]: a small in-memory table of typed, nullable columns, converted to and from Arrow.
//!
//! Arrow and Parquet are the storage and exchange formats; a `Frame` is what the algorithms that
//! Causeway owns (profiles, validation, point-in-time joins) walk over.

use std::sync::Arc;

use arrow_array::builder::{BooleanBuilder, Float64Builder, Int64Builder, StringBuilder};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float32Array, Float64Array, Int8Array, Int16Array, Int32Array, Int64Array,
    LargeStringArray, RecordBatch, StringArray, UInt8Array, UInt16Array, UInt32Array,
};
use arrow_schema::{DataType, Field as ArrowField, Schema as ArrowSchema};
use causeway_types::{Dtype, Field, Schema};

use crate::error::{Error, Result};

/// One column's values; `None` is null.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    /// 64-bit integers.
    Int64(Vec<Option<i64>>),
    /// 64-bit floats (NaN is stored as null).
    Float64(Vec<Option<f64>>),
    /// Strings.
    Utf8(Vec<Option<String>>),
    /// Booleans.
    Bool(Vec<Option<bool>>),
}

impl Column {
    /// The column's type.
    pub fn dtype(&self) -> Dtype {
        match self {
            Self::Int64(_) => Dtype::Int64,
            Self::Float64(_) => Dtype::Float64,
            Self::Utf8(_) => Dtype::Utf8,
            Self::Bool(_) => Dtype::Bool,
        }
    }

    /// The number of values.
    pub fn len(&self) -> usize {
        match self {
            Self::Int64(values) => values.len(),
            Self::Float64(values) => values.len(),
            Self::Utf8(values) => values.len(),
            Self::Bool(values) => values.len(),
        }
    }

    /// True when the column has no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when value `row` is null.
    pub fn is_null(&self, row: usize) -> bool {
        match self {
            Self::Int64(values) => values.get(row).is_none_or(Option::is_none),
            Self::Float64(values) => values.get(row).is_none_or(Option::is_none),
            Self::Utf8(values) => values.get(row).is_none_or(Option::is_none),
            Self::Bool(values) => values.get(row).is_none_or(Option::is_none),
        }
    }

    /// Value `row` as a number (booleans as 0/1), or `None` when null or not numeric.
    pub fn number(&self, row: usize) -> Option<f64> {
        match self {
            Self::Int64(values) => values.get(row).copied().flatten().map(|value| value as f64),
            Self::Float64(values) => values.get(row).copied().flatten(),
            Self::Bool(values) => values.get(row).copied().flatten().map(|value| f64::from(u8::from(value))),
            Self::Utf8(_) => None,
        }
    }

    /// Value `row` as text, or `None` when null.
    pub fn text(&self, row: usize) -> Option<String> {
        match self {
            Self::Int64(values) => values.get(row).copied().flatten().map(|value| value.to_string()),
            Self::Float64(values) => values.get(row).copied().flatten().map(|value| value.to_string()),
            Self::Utf8(values) => values.get(row).cloned().flatten(),
            Self::Bool(values) => values.get(row).copied().flatten().map(|value| value.to_string()),
        }
    }

    /// The string values, when this is a text column.
    pub fn as_strings(&self) -> Option<&[Option<String>]> {
        match self {
            Self::Utf8(values) => Some(values),
            _ => None,
        }
    }

    /// The values at `rows`, in that order.
    pub fn take(&self, rows: &[usize]) -> Column {
        match self {
            Self::Int64(values) => Self::Int64(rows.iter().map(|row| values.get(*row).copied().flatten()).collect()),
            Self::Float64(values) => {
                Self::Float64(rows.iter().map(|row| values.get(*row).copied().flatten()).collect())
            }
            Self::Utf8(values) => Self::Utf8(rows.iter().map(|row| values.get(*row).cloned().flatten()).collect()),
            Self::Bool(values) => Self::Bool(rows.iter().map(|row| values.get(*row).copied().flatten()).collect()),
        }
    }

    fn append(&mut self, other: &Column) -> Result<()> {
        match (self, other) {
            (Self::Int64(left), Self::Int64(right)) => left.extend_from_slice(right),
            (Self::Float64(left), Self::Float64(right)) => left.extend_from_slice(right),
            (Self::Utf8(left), Self::Utf8(right)) => left.extend_from_slice(right),
            (Self::Bool(left), Self::Bool(right)) => left.extend_from_slice(right),
            (left, right) => {
                return Err(Error::Malformed(format!(
                    "cannot append a {} column to a {} column",
                    right.dtype().as_str(),
                    left.dtype().as_str()
                )));
            }
        }
        Ok(())
    }

    fn empty_like(dtype: Dtype) -> Column {
        match dtype {
            Dtype::Int64 => Self::Int64(Vec::new()),
            Dtype::Float64 => Self::Float64(Vec::new()),
            Dtype::Utf8 => Self::Utf8(Vec::new()),
            Dtype::Bool => Self::Bool(Vec::new()),
        }
    }

    fn nulls(dtype: Dtype, count: usize) -> Column {
        match dtype {
            Dtype::Int64 => Self::Int64(vec![None; count]),
            Dtype::Float64 => Self::Float64(vec![None; count]),
            Dtype::Utf8 => Self::Utf8(vec![None; count]),
            Dtype::Bool => Self::Bool(vec![None; count]),
        }
    }
}

/// A table of equally long, named columns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Frame {
    names: Vec<String>,
    columns: Vec<Column>,
}

impl Frame {
    /// An empty frame with no columns.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a column; every column must have the same length and a unique name.
    pub fn with_column(mut self, name: impl Into<String>, column: Column) -> Result<Self> {
        let name = name.into();
        if self.names.contains(&name) {
            return Err(Error::Malformed(format!("column `{name}` appears twice")));
        }
        if let Some(first) = self.columns.first()
            && first.len() != column.len()
        {
            return Err(Error::Malformed(format!(
                "column `{name}` has {} rows but the frame has {}",
                column.len(),
                first.len()
            )));
        }
        self.names.push(name);
        self.columns.push(column);
        Ok(self)
    }

    /// The number of rows.
    pub fn rows(&self) -> usize {
        self.columns.first().map_or(0, Column::len)
    }

    /// The column names in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The columns in order, with their names.
    pub fn columns(&self) -> impl Iterator<Item = (&str, &Column)> {
        self.names.iter().map(String::as_str).zip(self.columns.iter())
    }

    /// The column named `name`.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.names.iter().position(|candidate| candidate == name).and_then(|index| self.columns.get(index))
    }

    /// The column named `name`, or an error naming it.
    pub fn require(&self, name: &str) -> Result<&Column> {
        self.column(name).ok_or_else(|| Error::Malformed(format!("column `{name}` is missing")))
    }

    /// The schema, with a column nullable when it holds a null.
    pub fn schema(&self) -> Schema {
        Schema {
            fields: self
                .columns()
                .map(|(name, column)| Field {
                    name: name.to_string(),
                    dtype: column.dtype(),
                    nullable: (0..column.len()).any(|row| column.is_null(row)),
                })
                .collect(),
        }
    }

    /// The rows at `rows`, in that order.
    pub fn take(&self, rows: &[usize]) -> Frame {
        Frame { names: self.names.clone(), columns: self.columns.iter().map(|column| column.take(rows)).collect() }
    }

    /// Stacks frames vertically. Columns are matched by name; a column missing from a frame is
    /// filled with nulls there.
    pub fn concat(frames: &[Frame]) -> Result<Frame> {
        let mut names: Vec<String> = Vec::new();
        let mut dtypes: Vec<Dtype> = Vec::new();
        for frame in frames {
            for (name, column) in frame.columns() {
                if !names.iter().any(|known| known == name) {
                    names.push(name.to_string());
                    dtypes.push(column.dtype());
                }
            }
        }
        let mut columns: Vec<Column> = dtypes.iter().map(|dtype| Column::empty_like(*dtype)).collect();
        for frame in frames {
            for (index, name) in names.iter().enumerate() {
                let Some(target) = columns.get_mut(index) else { continue };
                match frame.column(name) {
                    Some(column) => target.append(column)?,
                    None => target.append(&Column::nulls(target.dtype(), frame.rows()))?,
                }
            }
        }
        Ok(Frame { names, columns })
    }

    /// Converts an Arrow record batch.
    pub fn from_batch(batch: &RecordBatch) -> Result<Frame> {
        let mut frame = Frame::new();
        for (field, array) in batch.schema().fields().iter().zip(batch.columns()) {
            frame = frame.with_column(field.name().clone(), column_from_array(field.name(), array.as_ref())?)?;
        }
        Ok(frame)
    }

    /// Converts to an Arrow record batch.
    pub fn to_batch(&self) -> Result<RecordBatch> {
        let mut fields = Vec::with_capacity(self.columns.len());
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.columns.len());
        for (name, column) in self.columns() {
            let (dtype, array): (DataType, ArrayRef) = match column {
                Column::Int64(values) => {
                    let mut builder = Int64Builder::with_capacity(values.len());
                    builder.extend(values.iter().copied());
                    (DataType::Int64, Arc::new(builder.finish()))
                }
                Column::Float64(values) => {
                    let mut builder = Float64Builder::with_capacity(values.len());
                    builder.extend(values.iter().copied());
                    (DataType::Float64, Arc::new(builder.finish()))
                }
                Column::Utf8(values) => {
                    let mut builder = StringBuilder::new();
                    for value in values {
                        builder.append_option(value.as_deref());
                    }
                    (DataType::Utf8, Arc::new(builder.finish()))
                }
                Column::Bool(values) => {
                    let mut builder = BooleanBuilder::with_capacity(values.len());
                    builder.extend(values.iter().copied());
                    (DataType::Boolean, Arc::new(builder.finish()))
                }
            };
            fields.push(ArrowField::new(name, dtype, true));
            arrays.push(array);
        }
        RecordBatch::try_new(Arc::new(ArrowSchema::new(fields)), arrays)
            .map_err(|source| Error::Arrow { context: "frame".into(), source })
    }

    /// The BLAKE3 hash of the content: column names, types, nulls and values, in order.
    /// Independent of the file format the data came from.
    pub fn content_hash(&self) -> String {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"causeway-frame-v1");
        hasher.update(&(self.rows() as u64).to_le_bytes());
        for (name, column) in self.columns() {
            hasher.update(&(name.len() as u64).to_le_bytes());
            hasher.update(name.as_bytes());
            hasher.update(column.dtype().as_str().as_bytes());
            match column {
                Column::Int64(values) => values.iter().for_each(|value| match value {
                    Some(value) => {
                        hasher.update(&[1]);
                        hasher.update(&value.to_le_bytes());
                    }
                    None => {
                        hasher.update(&[0]);
                    }
                }),
                Column::Float64(values) => values.iter().for_each(|value| match value {
                    Some(value) => {
                        hasher.update(&[1]);
                        hasher.update(&value.to_bits().to_le_bytes());
                    }
                    None => {
                        hasher.update(&[0]);
                    }
                }),
                Column::Utf8(values) => values.iter().for_each(|value| match value {
                    Some(value) => {
                        hasher.update(&[1]);
                        hasher.update(&(value.len() as u64).to_le_bytes());
                        hasher.update(value.as_bytes());
                    }
                    None => {
                        hasher.update(&[0]);
                    }
                }),
                Column::Bool(values) => values.iter().for_each(|value| {
                    hasher.update(&[match value {
                        Some(true) => 2,
                        Some(false) => 1,
                        None => 0,
                    }]);
                }),
            }
        }
        hasher.finalize().to_hex().to_string()
    }
}

fn column_from_array(name: &str, array: &dyn Array) -> Result<Column> {
    let any = array.as_any();
    let int_values = |get: &dyn Fn(usize) -> i64| -> Column {
        Column::Int64((0..array.len()).map(|row| (!array.is_null(row)).then(|| get(row))).collect())
    };
    let column = match array.data_type() {
        DataType::Int64 => match any.downcast_ref::<Int64Array>() {
            Some(typed) => int_values(&|row| typed.value(row)),
            None => return unsupported(name, array),
        },
        DataType::Int32 => match any.downcast_ref::<Int32Array>() {
            Some(typed) => int_values(&|row| i64::from(typed.value(row))),
            None => return unsupported(name, array),
        },
        DataType::Int16 => match any.downcast_ref::<Int16Array>() {
            Some(typed) => int_values(&|row| i64::from(typed.value(row))),
            None => return unsupported(name, array),
        },
        DataType::Int8 => match any.downcast_ref::<Int8Array>() {
            Some(typed) => int_values(&|row| i64::from(typed.value(row))),
            None => return unsupported(name, array),
        },
        DataType::UInt32 => match any.downcast_ref::<UInt32Array>() {
            Some(typed) => int_values(&|row| i64::from(typed.value(row))),
            None => return unsupported(name, array),
        },
        DataType::UInt16 => match any.downcast_ref::<UInt16Array>() {
            Some(typed) => int_values(&|row| i64::from(typed.value(row))),
            None => return unsupported(name, array),
        },
        DataType::UInt8 => match any.downcast_ref::<UInt8Array>() {
            Some(typed) => int_values(&|row| i64::from(typed.value(row))),
            None => return unsupported(name, array),
        },
        DataType::Float64 => match any.downcast_ref::<Float64Array>() {
            Some(typed) => Column::Float64(
                (0..array.len())
                    .map(|row| (!array.is_null(row)).then(|| typed.value(row)).filter(|value| !value.is_nan()))
                    .collect(),
            ),
            None => return unsupported(name, array),
        },
        DataType::Float32 => match any.downcast_ref::<Float32Array>() {
            Some(typed) => Column::Float64(
                (0..array.len())
                    .map(|row| {
                        (!array.is_null(row)).then(|| f64::from(typed.value(row))).filter(|value| !value.is_nan())
                    })
                    .collect(),
            ),
            None => return unsupported(name, array),
        },
        DataType::Utf8 => match any.downcast_ref::<StringArray>() {
            Some(typed) => Column::Utf8(
                (0..array.len()).map(|row| (!array.is_null(row)).then(|| typed.value(row).to_string())).collect(),
            ),
            None => return unsupported(name, array),
        },
        DataType::LargeUtf8 => match any.downcast_ref::<LargeStringArray>() {
            Some(typed) => Column::Utf8(
                (0..array.len()).map(|row| (!array.is_null(row)).then(|| typed.value(row).to_string())).collect(),
            ),
            None => return unsupported(name, array),
        },
        DataType::Boolean => match any.downcast_ref::<BooleanArray>() {
            Some(typed) => {
                Column::Bool((0..array.len()).map(|row| (!array.is_null(row)).then(|| typed.value(row))).collect())
            }
            None => return unsupported(name, array),
        },
        DataType::Null => Column::Utf8(vec![None; array.len()]),
        _ => return unsupported(name, array),
    };
    Ok(column)
}

fn unsupported(name: &str, array: &dyn Array) -> Result<Column> {
    Err(Error::UnsupportedType { column: name.to_string(), dtype: array.data_type().to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Result<Frame> {
        Frame::new()
            .with_column("id", Column::Utf8(vec![Some("a".into()), None, Some("c".into())]))?
            .with_column("amount", Column::Float64(vec![Some(1.5), Some(2.0), None]))?
            .with_column("count", Column::Int64(vec![Some(1), Some(2), Some(3)]))?
            .with_column("flag", Column::Bool(vec![Some(true), None, Some(false)]))
    }

    #[test]
    fn arrow_round_trip_keeps_content_and_hash() -> Result<()> {
        let frame = sample()?;
        let back = Frame::from_batch(&frame.to_batch()?)?;
        assert_eq!(back, frame);
        assert_eq!(back.content_hash(), frame.content_hash());
        let changed = Frame::new().with_column("id", Column::Utf8(vec![Some("b".into())]))?;
        assert_ne!(changed.content_hash(), frame.content_hash());
        Ok(())
    }

    #[test]
    fn concat_fills_missing_columns_with_nulls_and_rejects_bad_lengths() -> Result<()> {
        let first = sample()?;
        let second = Frame::new().with_column("count", Column::Int64(vec![Some(9)]))?;
        let stacked = Frame::concat(&[first, second])?;
        assert_eq!(stacked.rows(), 4);
        assert!(stacked.require("amount")?.is_null(3));
        assert_eq!(stacked.require("count")?.number(3), Some(9.0));
        let bad = Frame::new().with_column("a", Column::Int64(vec![Some(1)]))?.with_column("b", Column::Int64(vec![]));
        assert!(matches!(bad, Err(Error::Malformed(_))));
        Ok(())
    }
}
