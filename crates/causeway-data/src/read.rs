//! Reading files as real tools write them: CSV (the delimiter sniffed, pandas' missing-value
//! tokens, types inferred from every row unless declared) and Parquet (every integer width,
//! floats, decimals, strings of any size, booleans, timestamps of any unit and zone, dates,
//! dictionary-encoded columns, lists of numbers), optionally only some columns, and with declared
//! column types applied wherever every value converts.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::Path;

use causeway_types::Dtype;
use parquet::arrow::ArrowWriter;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::error::{Error, Result};
use crate::frame::{Column, Frame};
use crate::values::{infer_dtype, is_missing};

/// What to read and how to type it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadOptions {
    /// Only these columns, in this order (all when empty).
    pub columns: Vec<String>,
    /// Leave out wanted columns the file lacks instead of failing.
    pub skip_missing_columns: bool,
    /// Column types to apply (declared expectations, or the types earlier versions have). A column
    /// whose values do not all convert keeps the type it was read with, so validation can name
    /// the values that do not fit.
    pub types: BTreeMap<String, Dtype>,
}

/// The delimiters a CSV file may use, in the order ties are broken.
const DELIMITERS: [u8; 4] = [b',', b';', b'\t', b'|'];

/// Reads a CSV (header row first) or Parquet file, every column, types inferred.
pub fn read_file(path: &Path) -> Result<Frame> {
    read_file_with(path, &ReadOptions::default())
}

/// Reads a CSV or Parquet file as `options` say.
pub fn read_file_with(path: &Path, options: &ReadOptions) -> Result<Frame> {
    let display = path.display().to_string();
    let extension = path.extension().and_then(|extension| extension.to_str()).unwrap_or_default().to_ascii_lowercase();
    if !matches!(extension.as_str(), "csv" | "tsv" | "txt" | "parquet" | "pq") {
        return Err(Error::UnsupportedFile(display));
    }
    let bytes = std::fs::read(path).map_err(|cause| Error::Read { path: display.clone(), cause })?;
    match extension.as_str() {
        "parquet" | "pq" => read_parquet_with(bytes, &display, options),
        _ => read_csv_bytes(&bytes, &display, options),
    }
}

/// Parses CSV bytes: the delimiter (`,`, `;`, tab or `|`) is the one the header row uses most,
/// outside quotes; a UTF-8 byte-order mark is skipped; an unnamed column is `column_N`.
pub fn read_csv_bytes(bytes: &[u8], context: &str, options: &ReadOptions) -> Result<Frame> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::Empty(context.to_string()));
    }
    let delimiter = sniff_delimiter(bytes);
    let mut reader = csv::ReaderBuilder::new().delimiter(delimiter).has_headers(true).from_reader(bytes);
    let csv_error =
        |error: csv::Error| Error::Csv { context: context.to_string(), message: describe_csv_error(&error) };
    let headers: Vec<String> = reader
        .headers()
        .map_err(csv_error)?
        .iter()
        .enumerate()
        .map(|(index, name)| {
            let name = name.trim();
            if name.is_empty() { format!("column_{index}") } else { name.to_string() }
        })
        .collect();
    for (index, name) in headers.iter().enumerate() {
        if headers[..index].contains(name) {
            return Err(Error::Csv {
                context: context.to_string(),
                message: format!("the header names column `{name}` twice; column names must be unique"),
            });
        }
    }
    let wanted: Vec<usize> = if options.columns.is_empty() {
        (0..headers.len()).collect()
    } else {
        let missing: Vec<&String> = options.columns.iter().filter(|name| !headers.contains(name)).collect();
        if !missing.is_empty() && !options.skip_missing_columns {
            return Err(Error::Malformed(format!(
                "{context} has no column {} (columns present: {})",
                missing.iter().map(|name| format!("`{name}`")).collect::<Vec<_>>().join(", "),
                headers.join(", ")
            )));
        }
        options.columns.iter().filter_map(|name| headers.iter().position(|header| header == name)).collect()
    };
    let mut values: Vec<Vec<Option<String>>> = vec![Vec::new(); wanted.len()];
    let mut record = csv::StringRecord::new();
    while reader.read_record(&mut record).map_err(csv_error)? {
        for (slot, index) in values.iter_mut().zip(&wanted) {
            let text = record.get(*index).unwrap_or_default();
            slot.push((!is_missing(text)).then(|| text.to_string()));
        }
    }
    let mut frame = Frame::new();
    for (index, column_values) in wanted.iter().zip(values) {
        let name = &headers[*index];
        let text = Column::Utf8(column_values);
        let inferred = infer_dtype(text.as_strings().unwrap_or_default());
        // A wanted type that some value does not fit leaves the type the values have (text, when
        // some value is not a number), so validation can name what does not fit.
        let column = match options.types.get(name) {
            Some(dtype) => text.coerce(*dtype).or_else(|| text.coerce(inferred)),
            None => text.coerce(inferred),
        }
        .unwrap_or(text);
        frame = frame.with_column(name.clone(), column)?;
    }
    Ok(frame)
}

/// The delimiter the header line uses most often outside quotes (a comma when it uses none).
fn sniff_delimiter(bytes: &[u8]) -> u8 {
    let mut counts = [0usize; DELIMITERS.len()];
    let mut quoted = false;
    for byte in bytes {
        if !quoted && matches!(byte, b'\n' | b'\r') {
            break;
        }
        if *byte == b'"' {
            quoted = !quoted;
        } else if !quoted && let Some(index) = DELIMITERS.iter().position(|delimiter| delimiter == byte) {
            counts[index] += 1;
        }
    }
    let (best, count) = counts
        .iter()
        .enumerate()
        .fold((0, 0), |best, (index, count)| if *count > best.1 { (index, *count) } else { best });
    if count == 0 { b',' } else { DELIMITERS[best] }
}

fn describe_csv_error(error: &csv::Error) -> String {
    match error.kind() {
        csv::ErrorKind::UnequalLengths { pos, expected_len, len } => {
            let line = pos.as_ref().map_or_else(String::new, |pos| format!("line {} ", pos.line()));
            format!("{line}has {len} fields but the header has {expected_len}; quote values that contain the delimiter")
        }
        csv::ErrorKind::Utf8 { pos, .. } => {
            let line = pos.as_ref().map_or_else(String::new, |pos| format!(" on line {}", pos.line()));
            format!("the file is not UTF-8{line}; save it as UTF-8")
        }
        _ => error.to_string(),
    }
}

/// Parses Parquet bytes into a frame, every column.
pub fn read_parquet_bytes(bytes: Vec<u8>, context: &str) -> Result<Frame> {
    read_parquet_with(bytes, context, &ReadOptions::default())
}

/// Parses Parquet bytes into a frame as `options` say; only the wanted columns are decoded.
pub fn read_parquet_with(bytes: Vec<u8>, context: &str, options: &ReadOptions) -> Result<Frame> {
    let parquet_error = |cause| Error::Parquet { context: format!("read {context}"), cause };
    let mut builder = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
        .map_err(parquet_error)?
        .with_batch_size(65_536);
    if !options.columns.is_empty() {
        let present: Vec<String> = builder.schema().fields().iter().map(|field| field.name().clone()).collect();
        let missing: Vec<&String> = options.columns.iter().filter(|name| !present.contains(name)).collect();
        if !missing.is_empty() && !options.skip_missing_columns {
            return Err(Error::Malformed(format!(
                "{context} has no column {} (columns present: {})",
                missing.iter().map(|name| format!("`{name}`")).collect::<Vec<_>>().join(", "),
                present.join(", ")
            )));
        }
        let roots: Vec<usize> = present
            .iter()
            .enumerate()
            .filter(|(_, name)| options.columns.contains(name))
            .map(|(index, _)| index)
            .collect();
        let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
        builder = builder.with_projection(mask);
    }
    let reader = builder.build().map_err(parquet_error)?;
    let mut frames = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|cause| Error::Arrow { context: context.to_string(), cause })?;
        frames.push(Frame::from_batch(&batch)?);
    }
    let mut frame = Frame::concat(&frames)?;
    if !options.columns.is_empty() {
        let present: Vec<String> =
            options.columns.iter().filter(|name| frame.column(name).is_some()).cloned().collect();
        frame = frame.select(&present)?;
    }
    apply_types(&mut frame, &options.types)?;
    Ok(frame)
}

/// Converts every column named in `types` whose values all convert (see [`Column::coerce`]).
pub fn apply_types(frame: &mut Frame, types: &BTreeMap<String, Dtype>) -> Result<()> {
    for (name, dtype) in types {
        let converted =
            frame.column(name).filter(|column| column.dtype() != *dtype).and_then(|column| column.coerce(*dtype));
        if let Some(column) = converted {
            frame.replace(name, column)?;
        }
    }
    Ok(())
}

/// Serializes a frame as a Snappy-compressed Parquet file.
pub fn write_parquet(frame: &Frame) -> Result<Vec<u8>> {
    let batch = frame.to_batch()?;
    let parquet_error = |cause| Error::Parquet { context: "write".into(), cause };
    let properties = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
    let mut buffer = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut buffer, batch.schema(), Some(properties)).map_err(parquet_error)?;
    writer.write(&batch).map_err(parquet_error)?;
    writer.close().map_err(parquet_error)?;
    Ok(buffer)
}

/// Writes a frame as CSV with a header row (timestamps in ISO 8601, missing values empty).
pub fn write_csv(frame: &Frame, path: &Path) -> Result<()> {
    let display = path.display().to_string();
    let file = File::create(path).map_err(|cause| Error::Write { path: display.clone(), cause })?;
    let mut writer = csv::WriterBuilder::new().from_writer(std::io::BufWriter::new(file));
    let csv_error = |error: csv::Error| Error::Csv { context: display.clone(), message: error.to_string() };
    writer.write_record(frame.names()).map_err(csv_error)?;
    let columns: Vec<&Column> = frame.columns().map(|(_, column)| column).collect();
    for row in 0..frame.rows() {
        writer
            .write_record(columns.iter().map(|column| match column {
                Column::Float64(values) => values[row].map(|value| format!("{value:?}")).unwrap_or_default(),
                other => other.text(row).unwrap_or_default(),
            }))
            .map_err(csv_error)?;
    }
    let mut inner =
        writer.into_inner().map_err(|error| Error::Csv { context: display.clone(), message: error.to_string() })?;
    inner.flush().map_err(|cause| Error::Write { path: display, cause })
}

/// Writes a frame to `path` as CSV or Parquet, by the file's extension.
pub fn write_file(frame: &Frame, path: &Path) -> Result<()> {
    let display = path.display().to_string();
    let extension = path.extension().and_then(|extension| extension.to_str()).unwrap_or_default().to_ascii_lowercase();
    match extension.as_str() {
        "parquet" | "pq" => {
            std::fs::write(path, write_parquet(frame)?).map_err(|cause| Error::Write { path: display, cause })
        }
        "csv" => write_csv(frame, path),
        _ => Err(Error::UnsupportedFile(display)),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::builder::StringDictionaryBuilder;
    use arrow_array::types::Int8Type;
    use arrow_array::{
        ArrayRef, BooleanArray, Date32Array, Float32Array, Int8Array, Int32Array, LargeStringArray, RecordBatch,
        TimestampNanosecondArray, UInt16Array, UInt64Array,
    };

    use super::*;

    fn csv(text: &str) -> Result<Frame> {
        read_csv_bytes(text.as_bytes(), "test.csv", &ReadOptions::default())
    }

    #[test]
    fn csv_types_are_inferred_from_every_row_with_missing_tokens() -> Result<()> {
        let frame = csv(
            "id,amount,flag,when,city\n1,2.5,true,2024-01-01,Oslo\n2,NA,false,2024-01-02T06:00:00Z,\n3,n/a,,,Rome\n",
        )?;
        let types: Vec<Dtype> = frame.columns().map(|(_, column)| column.dtype()).collect();
        assert_eq!(types, [Dtype::Int64, Dtype::Float64, Dtype::Bool, Dtype::Timestamp, Dtype::Utf8]);
        assert!(frame.require("amount")?.is_null(1) && frame.require("amount")?.is_null(2));
        assert_eq!(frame.require("when")?.number(1), Some(1_704_175_200_000.0));
        assert!(frame.require("city")?.is_null(1));
        Ok(())
    }

    #[test]
    fn semicolons_tabs_and_a_byte_order_mark_are_read() -> Result<()> {
        let frame = csv("\u{feff}a;b\n1,5;x\n2,5;y\n")?;
        assert_eq!(frame.names(), ["a", "b"]);
        assert_eq!(frame.require("a")?.dtype(), Dtype::Utf8, "1,5 is text with a semicolon delimiter");
        let tabs = csv("a\tb\n1\t2\n")?;
        assert_eq!(tabs.require("b")?.number(0), Some(2.0));
        let quoted = csv("\"x,y\";z\n1;2\n")?;
        assert_eq!(quoted.names(), ["x,y", "z"]);
        Ok(())
    }

    #[test]
    fn empty_and_ragged_files_are_clear_errors() {
        assert_eq!(
            csv("").unwrap_err().to_string(),
            "test.csv is empty: a CSV file needs a header row naming its columns, then one row per record"
        );
        let ragged = csv("a,b\n1,2\n3,4,5\n").unwrap_err().to_string();
        assert!(ragged.contains("line 3 has 3 fields but the header has 2"), "{ragged}");
        let twice = csv("a,a\n1,2\n").unwrap_err().to_string();
        assert!(twice.contains("column `a` twice"), "{twice}");
        let unnamed = csv(",a\n0,1\n");
        assert_eq!(
            unnamed.map(|frame| frame.names().to_vec()).ok(),
            Some(vec!["column_0".to_string(), "a".to_string()])
        );
    }

    #[test]
    fn declared_types_apply_when_every_value_fits() -> Result<()> {
        let options = ReadOptions {
            columns: vec!["b".into(), "a".into()],
            types: BTreeMap::from([("a".to_string(), Dtype::Float64), ("b".to_string(), Dtype::Float64)]),
            ..ReadOptions::default()
        };
        let frame = read_csv_bytes(b"a,b,c\n1,x,9\n2,3,9\n", "t", &options)?;
        assert_eq!(frame.names(), ["b", "a"], "only the named columns, in that order");
        assert_eq!(frame.require("a")?.dtype(), Dtype::Float64, "integers read as declared numbers");
        assert_eq!(frame.require("b")?.dtype(), Dtype::Utf8, "x does not fit: left for validation to name");
        let missing =
            read_csv_bytes(b"a\n1\n", "t", &ReadOptions { columns: vec!["z".into()], ..ReadOptions::default() });
        assert!(missing.unwrap_err().to_string().contains("no column `z` (columns present: a)"));
        Ok(())
    }

    #[test]
    fn parquet_of_every_common_type_reads_and_projects() -> Result<()> {
        let mut dictionary = StringDictionaryBuilder::<Int8Type>::new();
        dictionary.append_value("red");
        dictionary.append_null();
        dictionary.append_value("blue");
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("small", Arc::new(Int8Array::from(vec![Some(1), None, Some(-3)]))),
            ("medium", Arc::new(Int32Array::from(vec![1, 2, 3]))),
            ("unsigned", Arc::new(UInt16Array::from(vec![1, 2, 65_535]))),
            ("huge", Arc::new(UInt64Array::from(vec![1, 2, u64::MAX]))),
            ("single", Arc::new(Float32Array::from(vec![Some(0.5), Some(f32::NAN), None]))),
            ("flag", Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)]))),
            ("large", Arc::new(LargeStringArray::from(vec![Some("a"), None, Some("c")]))),
            ("colour", Arc::new(dictionary.finish())),
            (
                "event_time",
                Arc::new(TimestampNanosecondArray::from(vec![Some(1_500_000_000), None, Some(0)]).with_timezone("UTC")),
            ),
            ("naive_time", Arc::new(TimestampNanosecondArray::from(vec![0, 1_000_000, 2_000_000]))),
            ("day", Arc::new(Date32Array::from(vec![0, 1, 19_000]))),
        ];
        let batch = RecordBatch::try_from_iter(columns).map_err(|cause| Error::Arrow { context: "t".into(), cause })?;
        let mut buffer = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut buffer, batch.schema(), None)
            .map_err(|cause| Error::Parquet { context: "t".into(), cause })?;
        writer.write(&batch).map_err(|cause| Error::Parquet { context: "t".into(), cause })?;
        writer.close().map_err(|cause| Error::Parquet { context: "t".into(), cause })?;
        let frame = read_parquet_bytes(buffer.clone(), "t")?;
        let types: Vec<Dtype> = frame.columns().map(|(_, column)| column.dtype()).collect();
        use Dtype::*;
        assert_eq!(types, [Int64, Int64, Int64, Float64, Float64, Bool, Utf8, Utf8, Timestamp, Timestamp, Timestamp]);
        assert_eq!(frame.require("unsigned")?.number(2), Some(65_535.0));
        assert!(frame.require("single")?.is_null(1), "NaN is missing");
        assert_eq!(frame.require("colour")?.text(2).as_deref(), Some("blue"));
        assert_eq!(frame.require("event_time")?.number(0), Some(1_500.0));
        assert_eq!(frame.require("naive_time")?.number(2), Some(2.0));
        assert_eq!(frame.require("day")?.number(1), Some(86_400_000.0));
        let options = ReadOptions { columns: vec!["day".into(), "colour".into()], ..ReadOptions::default() };
        let projected = read_parquet_with(buffer, "t", &options)?;
        assert_eq!(projected.names(), ["day", "colour"]);
        Ok(())
    }
}
