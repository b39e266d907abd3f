//! [`Frame`]: a small in-memory table of typed, nullable columns, converted to and from Arrow.
//!
//! Arrow and Parquet are the storage and exchange formats; a `Frame` is what the algorithms that
//! Causeway owns (profiles, validation, point-in-time joins) walk over.

use std::sync::Arc;

use arrow_array::builder::{BooleanBuilder, Float64Builder, Int64Builder, StringBuilder, TimestampMillisecondBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMillisecondType, UInt64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_cast::cast;
use arrow_schema::{DataType, Field as ArrowField, Schema as ArrowSchema, TimeUnit};
use causeway_types::{Dtype, FeatureValue, Field, Schema};

use crate::error::{Error, Result};
use crate::values::format_instant;

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
    /// Instants as milliseconds since 1970-01-01 UTC.
    Timestamp(Vec<Option<i64>>),
}

impl Column {
    /// The column's type.
    pub fn dtype(&self) -> Dtype {
        match self {
            Self::Int64(_) => Dtype::Int64,
            Self::Float64(_) => Dtype::Float64,
            Self::Utf8(_) => Dtype::Utf8,
            Self::Bool(_) => Dtype::Bool,
            Self::Timestamp(_) => Dtype::Timestamp,
        }
    }

    /// The number of values.
    pub fn len(&self) -> usize {
        match self {
            Self::Int64(values) => values.len(),
            Self::Float64(values) => values.len(),
            Self::Utf8(values) => values.len(),
            Self::Bool(values) => values.len(),
            Self::Timestamp(values) => values.len(),
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
            Self::Timestamp(values) => values.get(row).is_none_or(Option::is_none),
        }
    }

    /// Value `row` as a number (booleans as 0/1, timestamps as epoch milliseconds), or `None` when
    /// null or text.
    pub fn number(&self, row: usize) -> Option<f64> {
        match self {
            Self::Int64(values) | Self::Timestamp(values) => {
                values.get(row).copied().flatten().map(|value| value as f64)
            }
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
            Self::Timestamp(values) => values.get(row).copied().flatten().map(format_instant),
        }
    }

    /// Value `row` as a feature value: text for text columns, a number otherwise (booleans as
    /// 0/1, timestamps as epoch milliseconds), missing when null.
    pub fn feature_value(&self, row: usize) -> FeatureValue {
        match self {
            Self::Utf8(_) => self.text(row).map_or(FeatureValue::Missing, FeatureValue::Text),
            _ => self.number(row).map_or(FeatureValue::Missing, FeatureValue::Number),
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
            Self::Timestamp(values) => {
                Self::Timestamp(rows.iter().map(|row| values.get(*row).copied().flatten()).collect())
            }
        }
    }

    fn append(&mut self, other: &Column) -> Result<()> {
        match (self, other) {
            (Self::Int64(left), Self::Int64(right)) => left.extend_from_slice(right),
            (Self::Float64(left), Self::Float64(right)) => left.extend_from_slice(right),
            (Self::Utf8(left), Self::Utf8(right)) => left.extend_from_slice(right),
            (Self::Bool(left), Self::Bool(right)) => left.extend_from_slice(right),
            (Self::Timestamp(left), Self::Timestamp(right)) => left.extend_from_slice(right),
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
            Dtype::Timestamp => Self::Timestamp(Vec::new()),
        }
    }

    fn nulls(dtype: Dtype, count: usize) -> Column {
        match dtype {
            Dtype::Int64 => Self::Int64(vec![None; count]),
            Dtype::Float64 => Self::Float64(vec![None; count]),
            Dtype::Utf8 => Self::Utf8(vec![None; count]),
            Dtype::Bool => Self::Bool(vec![None; count]),
            Dtype::Timestamp => Self::Timestamp(vec![None; count]),
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
    /// filled with nulls there. A column's type is the first type it has with a value (floats
    /// where integers and floats meet); where it has another, its values convert when they can
    /// without loss (an all-null column always can), else the frames do not stack.
    pub fn concat(frames: &[Frame]) -> Result<Frame> {
        let mut names: Vec<String> = Vec::new();
        let mut dtypes: Vec<Option<Dtype>> = Vec::new();
        for frame in frames {
            for (name, column) in frame.columns() {
                let has_values = (0..column.len()).any(|row| !column.is_null(row));
                match names.iter().position(|known| known == name) {
                    None => {
                        names.push(name.to_string());
                        dtypes.push(has_values.then(|| column.dtype()));
                    }
                    Some(index) if dtypes[index].is_none() && has_values => dtypes[index] = Some(column.dtype()),
                    // Integers and floats stack as floats.
                    Some(index)
                        if has_values && dtypes[index] == Some(Dtype::Int64) && column.dtype() == Dtype::Float64 =>
                    {
                        dtypes[index] = Some(Dtype::Float64);
                    }
                    Some(_) => {}
                }
            }
        }
        let first_types: Vec<Dtype> = names
            .iter()
            .zip(&dtypes)
            .map(|(name, dtype)| {
                dtype.unwrap_or_else(|| {
                    frames.iter().find_map(|frame| frame.column(name)).map_or(Dtype::Utf8, Column::dtype)
                })
            })
            .collect();
        let mut columns: Vec<Column> = first_types.iter().map(|dtype| Column::empty_like(*dtype)).collect();
        for frame in frames {
            for (index, name) in names.iter().enumerate() {
                let Some(target) = columns.get_mut(index) else { continue };
                let dtype = target.dtype();
                match frame.column(name) {
                    Some(column) if column.dtype() == dtype => target.append(column)?,
                    Some(column) if (0..column.len()).all(|row| column.is_null(row)) => {
                        target.append(&Column::nulls(dtype, column.len()))?
                    }
                    Some(column) => match column.coerce(dtype) {
                        Some(converted) => target.append(&converted)?,
                        None => target.append(column)?,
                    },
                    None => target.append(&Column::nulls(dtype, frame.rows()))?,
                }
            }
        }
        Ok(Frame { names, columns })
    }

    /// Converts an Arrow record batch (see [`column_from_array`] for the types it reads; a list of
    /// numbers becomes one column per position).
    pub fn from_batch(batch: &RecordBatch) -> Result<Frame> {
        let mut frame = Frame::new();
        for (field, array) in batch.schema().fields().iter().zip(batch.columns()) {
            for (name, column) in columns_from_array(field.name(), array.as_ref())? {
                frame = frame.with_column(name, column)?;
            }
        }
        Ok(frame)
    }

    /// The named columns only, in the order given; an error names every column that is missing.
    pub fn select(&self, names: &[String]) -> Result<Frame> {
        let missing: Vec<&str> = names.iter().filter(|name| self.column(name).is_none()).map(String::as_str).collect();
        if !missing.is_empty() {
            return Err(Error::Malformed(format!(
                "no column {} (columns present: {})",
                missing.iter().map(|name| format!("`{name}`")).collect::<Vec<_>>().join(", "),
                self.names.join(", ")
            )));
        }
        let mut frame = Frame::new();
        for name in names {
            if let Some(column) = self.column(name)
                && frame.column(name).is_none()
            {
                frame = frame.with_column(name.clone(), column.clone())?;
            }
        }
        Ok(frame)
    }

    /// Replaces the column named `name` (which must exist) with one of the same length.
    pub fn replace(&mut self, name: &str, column: Column) -> Result<()> {
        let rows = self.rows();
        let index = self
            .names
            .iter()
            .position(|candidate| candidate == name)
            .ok_or_else(|| Error::Malformed(format!("column `{name}` is missing")))?;
        if column.len() != rows {
            return Err(Error::Malformed(format!(
                "column `{name}` has {} rows but the frame has {rows}",
                column.len()
            )));
        }
        self.columns[index] = column;
        Ok(())
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
                Column::Timestamp(values) => {
                    let mut builder = TimestampMillisecondBuilder::with_capacity(values.len());
                    builder.extend(values.iter().copied());
                    let array = builder.finish().with_timezone("UTC");
                    (array.data_type().clone(), Arc::new(array))
                }
            };
            fields.push(ArrowField::new(name, dtype, true));
            arrays.push(array);
        }
        RecordBatch::try_new(Arc::new(ArrowSchema::new(fields)), arrays)
            .map_err(|cause| Error::Arrow { context: "frame".into(), cause })
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
                Column::Int64(values) | Column::Timestamp(values) => values.iter().for_each(|value| match value {
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

/// Converts one Arrow array into columns: one column, or one per element position for a list of
/// numbers (named `name[0]`, `name[1]`, …), as the prediction log stores encoded features.
fn columns_from_array(name: &str, array: &dyn Array) -> Result<Vec<(String, Column)>> {
    match array.data_type() {
        DataType::List(item) | DataType::LargeList(item) | DataType::FixedSizeList(item, _)
            if is_number_type(item.data_type()) =>
        {
            list_columns(name, array)
        }
        _ => Ok(vec![(name.to_string(), column_from_array(name, array)?)]),
    }
}

fn is_number_type(dtype: &DataType) -> bool {
    dtype.is_integer() || dtype.is_floating() || matches!(dtype, DataType::Decimal128(..) | DataType::Decimal256(..))
}

fn list_columns(name: &str, array: &dyn Array) -> Result<Vec<(String, Column)>> {
    let cast_error = |cause| Error::Arrow { context: format!("column `{name}`"), cause };
    let rows: Vec<Option<Vec<Option<f64>>>> = (0..array.len())
        .map(|row| -> Result<Option<Vec<Option<f64>>>> {
            if array.is_null(row) {
                return Ok(None);
            }
            let values = match array.data_type() {
                DataType::List(_) => array.as_list::<i32>().value(row),
                DataType::LargeList(_) => array.as_list::<i64>().value(row),
                _ => array.as_fixed_size_list().value(row),
            };
            let values = cast(&values, &DataType::Float64).map_err(cast_error)?;
            let values = values.as_primitive::<Float64Type>();
            Ok(Some((0..values.len()).map(|index| values.is_valid(index).then(|| values.value(index))).collect()))
        })
        .collect::<Result<_>>()?;
    let width = rows.iter().flatten().map(Vec::len).max().unwrap_or(0);
    Ok((0..width)
        .map(|position| {
            let values = rows
                .iter()
                .map(|row| row.as_ref().and_then(|values| values.get(position).copied().flatten()))
                .map(|value| value.filter(|value| !value.is_nan()))
                .collect();
            (format!("{name}[{position}]"), Column::Float64(values))
        })
        .collect())
}

/// Converts one Arrow array of any type Causeway reads into a column: every integer width
/// (unsigned ones that fit), floats and decimals, strings of any size, booleans, timestamps of
/// any unit and time zone, dates, and dictionary-encoded values of these (pandas categoricals).
fn column_from_array(name: &str, array: &dyn Array) -> Result<Column> {
    let cast_to = |dtype: &DataType| {
        cast(array, dtype).map_err(|cause| Error::Arrow { context: format!("column `{name}`"), cause })
    };
    let nulls = |row: usize| array.is_null(row);
    let column = match array.data_type() {
        DataType::Null => Column::Utf8(vec![None; array.len()]),
        DataType::Dictionary(_, values) => {
            let decoded = cast_to(values)?;
            return column_from_array(name, decoded.as_ref());
        }
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32 => {
            let values = cast_to(&DataType::Int64)?;
            let values = values.as_primitive::<Int64Type>();
            Column::Int64((0..array.len()).map(|row| (!nulls(row)).then(|| values.value(row))).collect())
        }
        DataType::UInt64 => {
            let values = array.as_primitive::<UInt64Type>();
            let fits = (0..array.len()).all(|row| nulls(row) || i64::try_from(values.value(row)).is_ok());
            if fits {
                Column::Int64(
                    (0..array.len())
                        .map(|row| if nulls(row) { None } else { i64::try_from(values.value(row)).ok() })
                        .collect(),
                )
            } else {
                Column::Float64((0..array.len()).map(|row| (!nulls(row)).then(|| values.value(row) as f64)).collect())
            }
        }
        DataType::Float16
        | DataType::Float32
        | DataType::Float64
        | DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => {
            let values = cast_to(&DataType::Float64)?;
            let values = values.as_primitive::<Float64Type>();
            Column::Float64(
                (0..array.len())
                    .map(|row| (!nulls(row)).then(|| values.value(row)).filter(|value| !value.is_nan()))
                    .collect(),
            )
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let values = cast_to(&DataType::Utf8)?;
            let values = values.as_string::<i32>();
            Column::Utf8((0..array.len()).map(|row| (!nulls(row)).then(|| values.value(row).to_string())).collect())
        }
        DataType::Boolean => {
            let values = array.as_boolean();
            Column::Bool((0..array.len()).map(|row| (!nulls(row)).then(|| values.value(row))).collect())
        }
        DataType::Timestamp(_, zone) => {
            // Arrow stores zoned timestamps as UTC instants; zone-less ones are read as UTC.
            let values = cast_to(&DataType::Timestamp(TimeUnit::Millisecond, zone.clone()))?;
            let values = values.as_primitive::<TimestampMillisecondType>();
            Column::Timestamp((0..array.len()).map(|row| (!nulls(row)).then(|| values.value(row))).collect())
        }
        DataType::Date32 | DataType::Date64 => {
            let values = cast_to(&DataType::Timestamp(TimeUnit::Millisecond, None))?;
            let values = values.as_primitive::<TimestampMillisecondType>();
            Column::Timestamp((0..array.len()).map(|row| (!nulls(row)).then(|| values.value(row))).collect())
        }
        _ => return Err(Error::UnsupportedType { column: name.to_string(), dtype: array.data_type().to_string() }),
    };
    Ok(column)
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
