//! The store's error type.

use causeway_types::ErrorCode;
use causeway_types::error::HasErrorCode;

/// Everything that can go wrong reading or writing the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The SQLite metadata database failed.
    #[error("metadata store: {0}")]
    Sql(#[from] rusqlite::Error),
    /// The PostgreSQL metadata database failed (or could not be reached).
    #[error("metadata store (PostgreSQL): {0}")]
    Postgres(String),
    /// A stored value did not have the type its reader expected.
    #[error("metadata store: {0}")]
    Database(String),
    /// A query that must return a row returned none (the store turns this into `NotFound`).
    #[error("metadata store: the query returned no row")]
    NoRow,
    /// A file operation failed.
    #[error("{action} {path}: {cause}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file involved.
        path: String,
        /// The underlying error (in the message, not a separate source, so a chain of contexts
        /// does not repeat it).
        cause: std::io::Error,
    },
    /// A stored JSON document could not be read or written.
    #[error("stored document is not valid: {0}")]
    Json(#[from] serde_json::Error),
    /// The S3-compatible object store failed or refused a request.
    #[error("artifact store: {0}")]
    ObjectStore(String),
    /// The thing asked for does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The thing to create exists already.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The thing changed since the caller read it (a compare-and-set on a generation failed).
    #[error("{0}")]
    Conflict(String),
    /// A value is not acceptable (immutable parameter changed, name taken, limit exceeded, …).
    #[error("{0}")]
    InvalidValue(String),
    /// A blob key tried to leave the store's root or was otherwise malformed.
    #[error("invalid blob key `{0}`: keys are relative paths of plain segments")]
    InvalidKey(String),
    /// The database was written by a newer Causeway.
    #[error(
        "the metadata store has schema version {found}, newer than this Causeway understands ({supported}); upgrade Causeway"
    )]
    TooNew {
        /// The version found on disk.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
}

impl HasErrorCode for Error {
    fn code(&self) -> ErrorCode {
        match self {
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::AlreadyExists(_) => ErrorCode::AlreadyExists,
            Self::Conflict(_) => ErrorCode::Conflict,
            Self::InvalidValue(_) => ErrorCode::InvalidInput,
            Self::InvalidKey(_) => ErrorCode::InvalidInput,
            Self::Sql(_)
            | Self::Postgres(_)
            | Self::ObjectStore(_)
            | Self::Database(_)
            | Self::NoRow
            | Self::Io { .. }
            | Self::Json(_)
            | Self::TooNew { .. } => ErrorCode::Storage,
        }
    }
}

impl From<postgres::Error> for Error {
    fn from(error: postgres::Error) -> Self {
        match error.as_db_error() {
            Some(database) => Self::Postgres(format!("{} ({})", database.message(), database.code().code())),
            None => Self::Postgres(error.to_string()),
        }
    }
}

/// Result with the store's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
