//! Ingest: read a CSV or Parquet file (or take a frame), validate it, version it by content hash,
//! profile it and store it as Parquet. A rejected batch changes nothing in the store.

use std::collections::BTreeMap;
use std::path::Path;

use causeway_store::{BlobStore, MetaStore};
use causeway_types::{DatasetVersion, Dtype, Event, EventKind};

use crate::error::{Error, Result};
use crate::frame::Frame;
use crate::profile::Profile;
use crate::read::{ReadOptions, apply_types};
pub use crate::read::{read_file, read_file_with, read_parquet_bytes, write_csv, write_parquet};
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
    /// Columns take the types the suite declares, else the types earlier versions have, wherever
    /// every value converts (a value that does not is reported by validation, and nothing is
    /// stored).
    pub fn ingest_file(&self, name: &str, path: &Path, suite: &ExpectationSuite, at_ms: i64) -> Result<IngestOutcome> {
        self.ingest_columns(name, path, &[], suite, at_ms)
    }

    /// [`Ingestor::ingest_file`] reading only `columns` (all when empty).
    pub fn ingest_columns(
        &self,
        name: &str,
        path: &Path,
        columns: &[String],
        suite: &ExpectationSuite,
        at_ms: i64,
    ) -> Result<IngestOutcome> {
        let options = ReadOptions {
            columns: columns.to_vec(),
            skip_missing_columns: false,
            types: self.column_types(name, suite)?,
        };
        let frame = read_file_with(path, &options)?;
        if frame.rows() == 0 {
            return Err(Error::NoRows(path.display().to_string()));
        }
        self.ingest_frame(name, &frame, &path.display().to_string(), suite, at_ms)
    }

    /// The type each column of `name` must have: what the suite declares, else what the first
    /// stored version has — unless that version held no value in the column, whose type then
    /// says nothing.
    pub fn column_types(&self, name: &str, suite: &ExpectationSuite) -> Result<BTreeMap<String, Dtype>> {
        let mut types: BTreeMap<String, Dtype> = BTreeMap::new();
        if let Some(first) = self.meta.dataset_versions(name)?.first() {
            let empty = self.empty_columns(first)?;
            types.extend(
                first
                    .schema
                    .fields
                    .iter()
                    .filter(|field| !empty.contains(&field.name))
                    .map(|field| (field.name.clone(), field.dtype)),
            );
        }
        types.extend(suite.declared_types());
        Ok(types)
    }

    /// The columns of a stored version that hold no value at all (from its profile).
    fn empty_columns(&self, version: &DatasetVersion) -> Result<Vec<String>> {
        Ok(self
            .profile(version)?
            .columns
            .into_iter()
            .filter(|column| column.count == 0)
            .map(|column| column.name)
            .collect())
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
        // Frames handed in directly (not read from a file) get the same typing as files.
        let mut typed = frame.clone();
        apply_types(&mut typed, &self.column_types(name, suite)?)?;
        let frame = &typed;
        let mut report = suite.validate(&subject, frame);
        let schema = frame.schema();
        if let Some(first) = self.meta.dataset_versions(name)?.first() {
            // A column the first version held no value in has no type to keep.
            let empty = self.empty_columns(first)?;
            let mut earlier = first.schema.clone();
            earlier.fields.retain(|field| !empty.contains(&field.name) || schema.field(&field.name).is_none());
            for problem in earlier.incompatibilities(&schema) {
                let column = problem.split('`').nth(1).unwrap_or_default().to_string();
                // A column an expectation already found broken is not reported twice.
                if report.failures.iter().any(|failure| failure.column == column) {
                    continue;
                }
                report.failures.push(crate::validate::Failure {
                    column,
                    rule: format!("schema drift: {problem}"),
                    rows: frame.rows() as u64,
                    examples: Vec::new(),
                });
                report.schema_changes += 1;
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
        // An integer column read where text was stored becomes text (lossless); text where numbers
        // were stored cannot become numbers, and missing columns are missing.
        let drifted = Frame::new()
            .with_column("id", Column::Int64(vec![Some(1)]))?
            .with_column("count", Column::Utf8(vec![Some("many".into())]))?;
        let error =
            ingestor.ingest_frame("t", &drifted, "drifted", &ExpectationSuite::default(), 2).expect_err("must reject");
        let text = error.to_string();
        assert!(!text.contains("`id`"), "{text}");
        assert!(text.contains("schema drift: column `count` has type utf8 but earlier versions have int64"), "{text}");
        assert!(text.contains("column `amount` is missing"), "{text}");
        assert!(text.contains("was rejected: 2 schema changes against earlier versions on 1 row;"), "{text}");
        Ok(())
    }

    #[test]
    fn the_schema_comes_from_the_declaration_not_the_first_batch() -> Result<()> {
        let directory = tempfile::tempdir().expect("tempdir");
        let (meta, blobs) = stores(directory.path());
        let ingestor = Ingestor::new(&meta, &blobs);
        // A first batch whose only income is missing (`n/a`) and whose counts are whole.
        let first = directory.path().join("first.csv");
        std::fs::write(&first, "id,income,count\na,n/a,1\nb,,2\n").expect("write");
        let suite: ExpectationSuite = toml::from_str(
            "[[expectations]]\ncolumn = \"income\"\ntype = \"float64\"\n[[expectations]]\ncolumn = \"count\"\ntype = \"float64\"\n",
        )
        .expect("a suite");
        let stored = ingestor.ingest_file("t", &first, &suite, 1)?;
        let types: Vec<Dtype> = stored.dataset.schema.fields.iter().map(|field| field.dtype).collect();
        assert_eq!(types, [Dtype::Utf8, Dtype::Float64, Dtype::Float64], "declared, not inferred from one batch");
        // A later batch with numbers fits; undeclared columns keep the first version's types.
        let second = directory.path().join("second.csv");
        std::fs::write(&second, "id,income,count\nc,1250.5,3.5\n").expect("write");
        assert!(ingestor.ingest_file("t", &second, &suite, 2)?.created);
        // Without a declaration, a first batch with no income at all sets no type for it: the next
        // batch's numbers are numbers, and the versions load together.
        ingestor.ingest_file("u", &first, &ExpectationSuite::default(), 3)?;
        let later = ingestor.ingest_file("u", &second, &ExpectationSuite::default(), 4)?;
        assert_eq!(later.dataset.schema.field("income").map(|field| field.dtype), Some(Dtype::Float64));
        let versions = meta.dataset_versions("u")?;
        let frames: Vec<Frame> = versions.iter().map(|version| ingestor.load(version)).collect::<Result<_>>()?;
        let all = Frame::concat(&frames)?;
        assert_eq!(all.require("income")?.dtype(), Dtype::Float64);
        assert_eq!(all.require("income")?.number(2), Some(1250.5));
        Ok(())
    }

    #[test]
    fn unsupported_extension_is_a_clear_error() {
        let error = read_file(Path::new("data.xlsx")).expect_err("must fail");
        assert!(error.to_string().contains("use a .csv or .parquet file"));
    }
}
