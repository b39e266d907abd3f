//! A Causeway project: `causeway.toml` parsed and checked ([`ProjectConfig`], every length of
//! time a `Span`, the `[loop] schedule` as a [`schedule::Cron`]) and the stores it names opened
//! ([`Project`]: metadata, artifacts, the online store on first use). It loads and checks; it
//! decides nothing — training, serving and the loop read it.

pub mod config;
mod error;
pub mod project;
pub mod schedule;

pub use config::{ProjectConfig, StorageSection};
pub use error::{Error, Result};
pub use project::Project;
