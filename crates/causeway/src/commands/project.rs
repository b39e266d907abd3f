//! `init`, `ingest` and `datasets`: a project and its data.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use causeway_loop::Project;
use causeway_types::{Clock, SystemClock, format_timestamp};

use super::{open, table};
use crate::args::ProjectArgs;

pub(crate) fn init(arguments: &ProjectArgs) -> Result<ExitCode> {
    let dir = arguments.dir.as_path();
    let (project, written) = Project::init_with(dir, causeway_loop::project::INIT_TEMPLATE, &arguments.storage())?;
    if written {
        println!("created {}/causeway.toml and {}/.causeway/", dir.display(), dir.display());
    } else {
        println!("{}/causeway.toml exists; kept it and made sure .causeway/ is ready", dir.display());
    }
    println!("metadata schema version {}", project.meta.schema_version()?);
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn ingest(dir: &ProjectArgs, file: &Path, name: &str, columns: &[String]) -> Result<ExitCode> {
    let project = open(dir)?;
    let suite = project.config.suite(name);
    let outcome = project.ingestor().ingest_columns(name, file, columns, &suite, SystemClock.now_ms())?;
    let state = if outcome.created { "stored" } else { "already stored (identical content)" };
    println!(
        "{name}@{} {state}: {} rows, {} columns; {}",
        outcome.dataset.version,
        outcome.dataset.rows,
        outcome.dataset.schema.fields.len(),
        outcome.report
    );
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn datasets(dir: &ProjectArgs) -> Result<ExitCode> {
    let project = open(dir)?;
    let mut output = table(&["dataset", "version", "rows", "columns", "source", "ingested"]);
    for dataset in project.meta.all_datasets()? {
        output.add_row(vec![
            dataset.name.clone(),
            dataset.short_version().to_string(),
            dataset.rows.to_string(),
            dataset.schema.fields.len().to_string(),
            dataset.source.clone(),
            format_timestamp(dataset.created_ms),
        ]);
    }
    println!("{output}");
    Ok(ExitCode::SUCCESS)
}
