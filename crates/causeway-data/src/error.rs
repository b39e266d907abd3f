//! The data crate's error type.

use causeway_types::ErrorCode;
use causeway_types::error::HasErrorCode;

use crate::validate::ValidationReport;

/// Everything that can go wrong reading, validating or storing data.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read. (The cause is part of the message, not a separate source, so a
    /// chain of contexts does not repeat it.)
    #[error("cannot read {path}: {cause}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        cause: std::io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {path}: {cause}")]
    Write {
        /// The file.
        path: String,
        /// The cause.
        cause: std::io::Error,
    },
    /// A file holds nothing.
    #[error("{0} is empty: a CSV file needs a header row naming its columns, then one row per record")]
    Empty(String),
    /// A file has a header but no rows.
    #[error("{0} has a header but no rows: nothing to ingest")]
    NoRows(String),
    /// A CSV file is malformed.
    #[error("cannot parse {context}: {message}")]
    Csv {
        /// The file.
        context: String,
        /// What is wrong, and where.
        message: String,
    },
    /// Arrow could not parse or build the data.
    #[error("cannot parse {context}: {cause}")]
    Arrow {
        /// What was being parsed.
        context: String,
        /// The cause.
        cause: arrow_schema::ArrowError,
    },
    /// Parquet could not be read or written.
    #[error("parquet {context}: {cause}")]
    Parquet {
        /// What was being done.
        context: String,
        /// The cause.
        cause: parquet::errors::ParquetError,
    },
    /// The file's extension is not one Causeway reads.
    #[error("unsupported file `{0}`: use a .csv or .parquet file")]
    UnsupportedFile(String),
    /// A column has a type Causeway does not store.
    #[error(
        "column `{column}` has unsupported type {dtype}; Causeway reads integers, floats, decimals, strings, \
         booleans, timestamps, dates, dictionary-encoded values of these and lists of numbers"
    )]
    UnsupportedType {
        /// The column.
        column: String,
        /// Its Arrow type.
        dtype: String,
    },
    /// The columns of a frame have different lengths or a column is missing.
    #[error("malformed data: {0}")]
    Malformed(String),
    /// The batch broke its expectation suite; nothing was stored.
    #[error("{0}")]
    Validation(Box<ValidationReport>),
    /// The expectation suite itself is invalid.
    #[error("invalid expectation suite: {0}")]
    Suite(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] causeway_store::Error),
    /// JSON (de)serialization failed.
    #[error("profile document: {0}")]
    Json(#[from] serde_json::Error),
}

impl HasErrorCode for Error {
    fn code(&self) -> ErrorCode {
        match self {
            Self::Validation(_) => ErrorCode::ValidationFailed,
            Self::UnsupportedFile(_)
            | Self::UnsupportedType { .. }
            | Self::Malformed(_)
            | Self::Arrow { .. }
            | Self::Suite(_)
            | Self::Empty(_)
            | Self::NoRows(_)
            | Self::Csv { .. }
            | Self::Read { .. } => ErrorCode::InvalidInput,
            Self::Parquet { .. } | Self::Json(_) | Self::Write { .. } => ErrorCode::Storage,
            Self::Store(error) => error.code(),
        }
    }
}

/// Result with the data crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
