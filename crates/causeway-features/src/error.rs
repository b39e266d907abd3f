//! The feature crate's error type.

use causeway_types::ErrorCode;
use causeway_types::error::HasErrorCode;

/// Everything that can go wrong computing or storing features.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The online store failed.
    #[error("online store: {0}")]
    Online(String),
    /// A column the feature set needs is missing or has the wrong type.
    #[error("feature input: {0}")]
    Input(String),
    /// The feature set declaration is invalid.
    #[error("invalid feature set: {0}")]
    Spec(String),
    /// Reading the data failed.
    #[error(transparent)]
    Data(#[from] causeway_data::Error),
}

impl HasErrorCode for Error {
    fn code(&self) -> ErrorCode {
        match self {
            Self::Online(_) => ErrorCode::Storage,
            Self::Input(_) | Self::Spec(_) => ErrorCode::InvalidInput,
            Self::Data(error) => error.code(),
        }
    }
}

macro_rules! online_error {
    ($($source:ty),*) => {$(
        impl From<$source> for Error {
            fn from(error: $source) -> Self {
                Self::Online(error.to_string())
            }
        }
    )*};
}
online_error!(redb::DatabaseError, redb::TransactionError, redb::TableError, redb::StorageError, redb::CommitError);

/// Result with the feature crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
