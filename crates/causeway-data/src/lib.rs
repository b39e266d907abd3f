//! Data in Causeway: reading CSV and Parquet into Arrow and then into a [`Frame`], versioning
//! datasets by the BLAKE3 hash of their content, profiling them (the baseline monitoring compares
//! against), validating them against expectation suites, and generating seeded synthetic data.
//!
//! This crate does not train or serve.

mod error;
pub mod frame;
pub mod ingest;
pub mod profile;
pub mod read;
pub mod synthetic;
pub mod validate;
pub mod values;

pub use error::{Error, Result};
pub use frame::{Column, Frame};
pub use ingest::{IngestOutcome, Ingestor};
pub use profile::{ColumnProfile, NumericSummary, Profile};
pub use read::{ReadOptions, read_file, read_file_with, write_file};
pub use validate::{Expectation, ExpectationSuite, ValidationReport};
