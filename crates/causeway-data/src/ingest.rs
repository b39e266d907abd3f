//! Ingest: read a CSV or Parquet file (or take a frame), validate it, version it by content hash,
//! profile it and store it as Parquet. A rejected batch changes nothing in the store.

use std::fs::File;
use std::io::{BufReader, Seek};
use std::path::Path;
use std::sync::Arc;

use arrow_csv::ReaderBuilder;
use arrow_csv::reader::Format;
use causeway_store::{BlobStore, MetaStore};
use causeway_types::{DatasetVersion, Event, EventKind};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::error::{Error, Result};
use crate::frame::Frame;
use crate::profile::Profile;
use crate::validate::{ExpectationSuite, ValidationReport};

/// What an ingest produced.
#[derive(Debug, Clone)]
pub struct IngestOutcome {
    /// The stored version.
    pub dataset: DatasetVersion,
    /// The validation report (passed).
    pub report: ValidationReport,
    /// False when identical content was already stored under this name.
    pub created: bool,
    /// The profile of the batch.
    pub profile: Profile,
}

/// Reads, validates, versions, profiles and stores datasets.
pub struct Ingestor<'a> {
    meta: &'a MetaStore,
    blobs: &'a BlobStore,
}

impl<'a> Ingestor<'a> {
    /// An ingestor writing to these stores.
    pub fn new(meta: &'a MetaStore, blobs: &'a BlobStore) -> Self {
        Self { meta, blobs }
    }

    /// Reads `path` (CSV with a header row, or Parquet) and ingests it as a version of `name`.
    pub fn ingest_file(&self, name: &str, path: &Path, suite: &ExpectationSuite, at_ms: i64) -> Result<IngestOutcome> {
        let frame = read_file(path)?;
        self.ingest_frame(name, &frame, &path.display().to_string(), suite, at_ms)
    }

    /// Ingests an in-memory frame as a version of `name`.
    pub fn ingest_frame(
        &self,
        name: &str,
        frame: &Frame,
        source: &str,
        suite: &ExpectationSuite,
        at_ms: i64,
    ) -> Result<IngestOutcome> {
        let subject = format!("batch of `{name}` from {source}");
        let mut report = suite.validate(&subject, frame);
        let schema = frame.schema();
        if let Some(first) = self.meta.dataset_versions(name)?.first() {
            for problem in first.schema.incompatibilities(&schema) {
                report.failures.push(crate::validate::Failure {
                    column: problem.split('`').nth(1).unwrap_or_default().to_string(),
                    rule: format!("schema drift: {problem}"),
                    rows: frame.rows() as u64,
                    examples: Vec::new(),
                });
            }
        }
        if !report.passed() {
            return Err(Error::Validation(Box::new(report)));
        }
        let version = frame.content_hash();
        let blob_key = format!("datasets/{name}/{version}.parquet");
        let profile_key = format!("datasets/{name}/{version}.profile.json");
        let profile = Profile::of_frame(frame);
        if !self.blobs.contains(&blob_key)? {
            self.blobs.put(&blob_key, &write_parquet(frame)?)?;
        }
        self.blobs.put(&profile_key, &serde_json::to_vec(&profile)?)?;
        let dataset = DatasetVersion {
            name: name.to_string(),
            version,
            rows: frame.rows() as u64,
            blob_key,
            profile_key,
            schema,
            source: source.to_string(),
            created_ms: at_ms,
        };
        let created = self.meta.insert_dataset(&dataset)?;
        if created {
            self.meta.record_event(&Event {
                id: 0,
                at_ms,
                kind: EventKind::Data,
                actor: "ingest".into(),
                subject: name.to_string(),
                message: format!("ingested {} rows as {name}@{}", dataset.rows, dataset.short_version()),
                details: serde_json::json!({"version": dataset.version, "rows": dataset.rows, "source": source}),
            })?;
        }
        Ok(IngestOutcome { dataset, report, created, profile })
    }

    /// Loads a stored dataset version.
    pub fn load(&self, dataset: &DatasetVersion) -> Result<Frame> {
        read_parquet_bytes(self.blobs.get(&dataset.blob_key)?, &dataset.blob_key)
    }

    /// Loads the stored profile of a dataset version.
    pub fn profile(&self, dataset: &DatasetVersion) -> Result<Profile> {
        Ok(serde_json::from_slice(&self.blobs.get(&dataset.profile_key)?)?)
    }
}

/// Reads a CSV (header row, types inferred from all rows) or Parquet file into a frame.
pub fn read_file(path: &Path) -> Result<Frame> {
    let display = path.display().to_string();
    let extension = path.extension().and_then(|extension| extension.to_str()).unwrap_or_default().to_ascii_lowercase();
    let open = || File::open(path).map_err(|source| Error::Read { path: display.clone(), source });
    match extension.as_str() {
        "csv" => {
            let mut file = open()?;
            let (schema, _) = Format::default()
                .with_header(true)
                .infer_schema(BufReader::new(&mut file), None)
                .map_err(|source| Error::Arrow { context: display.clone(), source })?;
            file.rewind().map_err(|source| Error::Read { path: display.clone(), source })?;
            let reader = ReaderBuilder::new(Arc::new(schema))
                .with_header(true)
                .with_batch_size(65_536)
                .build(BufReader::new(file))
                .map_err(|source| Error::Arrow { context: display.clone(), source })?;
            let mut frames = Vec::new();
            for batch in reader {
                let batch = batch.map_err(|source| Error::Arrow { context: display.clone(), source })?;
                frames.push(Frame::from_batch(&batch)?);
            }
            Frame::concat(&frames)
        }
        "parquet" | "pq" => {
            let bytes = std::fs::read(path).map_err(|source| Error::Read { path: display.clone(), source })?;
            read_parquet_bytes(bytes, &display)
        }
        _ => Err(Error::UnsupportedFile(display)),
    }
}

/// Parses Parquet bytes into a frame.
pub fn read_parquet_bytes(bytes: Vec<u8>, context: &str) -> Result<Frame> {
    let parquet_error = |source| Error::Parquet { context: format!("read {context}"), source };
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
        .map_err(parquet_error)?
        .with_batch_size(65_536)
        .build()
        .map_err(parquet_error)?;
    let mut frames = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|source| Error::Arrow { context: context.to_string(), source })?;
        frames.push(Frame::from_batch(&batch)?);
    }
    Frame::concat(&frames)
}

/// Serializes a frame as a Snappy-compressed Parquet file.
pub fn write_parquet(frame: &Frame) -> Result<Vec<u8>> {
    let batch = frame.to_batch()?;
    let parquet_error = |source| Error::Parquet { context: "write".into(), source };
    let properties = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
    let mut buffer = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut buffer, batch.schema(), Some(properties)).map_err(parquet_error)?;
    writer.write(&batch).map_err(parquet_error)?;
    writer.close().map_err(parquet_error)?;
    Ok(buffer)
}

/// Writes a frame as CSV with a header row.
pub fn write_csv(frame: &Frame, path: &Path) -> Result<()> {
    let batch = frame.to_batch()?;
    let file = File::create(path).map_err(|source| Error::Read { path: path.display().to_string(), source })?;
    let mut writer = arrow_csv::WriterBuilder::new().with_header(true).build(file);
    writer.write(&batch).map_err(|source| Error::Arrow { context: path.display().to_string(), source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Column;
    use crate::validate::Expectation;

    fn stores(directory: &Path) -> (MetaStore, BlobStore) {
        (MetaStore::open_in_memory().expect("meta"), BlobStore::open(directory.join("blobs")).expect("blobs"))
    }

    fn frame(amounts: &[f64]) -> Frame {
        Frame::new()
            .with_column(
                "id",
                Column::Utf8(amounts.iter().enumerate().map(|(index, _)| Some(format!("t{index}"))).collect()),
            )
            .and_then(|frame| {
                frame.with_column("amount", Column::Float64(amounts.iter().map(|value| Some(*value)).collect()))
            })
            .and_then(|frame| {
                frame.with_column("count", Column::Int64(amounts.iter().map(|value| Some(*value as i64)).collect()))
            })
            .expect("frame")
    }

    #[test]
    fn csv_and_parquet_of_the_same_content_get_the_same_version() -> Result<()> {
        let directory = tempfile::tempdir().expect("tempdir");
        let (meta, blobs) = stores(directory.path());
        let ingestor = Ingestor::new(&meta, &blobs);
        let data = frame(&[1.5, 2.5, 30.25]);
        let csv = directory.path().join("data.csv");
        write_csv(&data, &csv)?;
        let parquet = directory.path().join("data.parquet");
        std::fs::write(&parquet, write_parquet(&data)?).expect("write");
        let first = ingestor.ingest_file("t", &csv, &ExpectationSuite::default(), 1)?;
        let second = ingestor.ingest_file("t", &parquet, &ExpectationSuite::default(), 2)?;
        assert!(first.created);
        assert!(!second.created);
        assert_eq!(first.dataset.version, second.dataset.version);
        assert_eq!(ingestor.load(&first.dataset)?, data);
        assert_eq!(ingestor.profile(&first.dataset)?.rows, 3);
        Ok(())
    }

    #[test]
    fn rejected_batch_stores_nothing() -> Result<()> {
        let directory = tempfile::tempdir().expect("tempdir");
        let (meta, blobs) = stores(directory.path());
        let ingestor = Ingestor::new(&meta, &blobs);
        let suite = ExpectationSuite {
            expectations: vec![Expectation {
                column: "amount".into(),
                min: Some(0.0),
                required: true,
                ..Default::default()
            }],
        };
        ingestor.ingest_frame("t", &frame(&[1.0]), "good", &suite, 1)?;
        let before = blobs.list("datasets")?;
        let error = ingestor.ingest_frame("t", &frame(&[-5.0]), "bad", &suite, 2).expect_err("must reject");
        assert!(matches!(error, Error::Validation(_)));
        assert!(error.to_string().contains("must be >= 0"), "{error}");
        assert_eq!(blobs.list("datasets")?, before);
        assert_eq!(meta.dataset_versions("t")?.len(), 1);
        Ok(())
    }

    #[test]
    fn schema_drift_is_rejected() -> Result<()> {
        let directory = tempfile::tempdir().expect("tempdir");
        let (meta, blobs) = stores(directory.path());
        let ingestor = Ingestor::new(&meta, &blobs);
        ingestor.ingest_frame("t", &frame(&[1.0]), "good", &ExpectationSuite::default(), 1)?;
        let drifted = Frame::new().with_column("id", Column::Int64(vec![Some(1)]))?;
        let error =
            ingestor.ingest_frame("t", &drifted, "drifted", &ExpectationSuite::default(), 2).expect_err("must reject");
        let text = error.to_string();
        assert!(text.contains("schema drift: column `id` has type int64"), "{text}");
        assert!(text.contains("column `amount` is missing"), "{text}");
        Ok(())
    }

    #[test]
    fn unsupported_extension_is_a_clear_error() {
        let error = read_file(Path::new("data.xlsx")).expect_err("must fail");
        assert!(error.to_string().contains("use a .csv or .parquet file"));
    }
}
