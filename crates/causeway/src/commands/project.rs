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

pub(crate) fn init_from(
    arguments: &ProjectArgs,
    file: &Path,
    request: causeway_loop::draft::DraftRequest,
) -> Result<ExitCode> {
    let dir = arguments.dir.as_path();
    let done = causeway_loop::draft::init_from(dir, &arguments.storage(), file, request, SystemClock.now_ms())?;
    let dataset = &done.ingested.dataset;
    println!(
        "created {}/causeway.toml for {} ({} rows, {} columns):",
        dir.display(),
        file.display(),
        dataset.rows,
        dataset.schema.fields.len()
    );
    for decision in &done.draft.decisions {
        println!("  {decision}");
    }
    println!("ingested {}@{}", dataset.name, dataset.short_version());
    println!("next: causeway train --dir {}   (then `causeway predict FILE --output OUT.csv`)", dir.display());
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn ingest(dir: &ProjectArgs, file: &Path, name: &str, columns: &[String]) -> Result<ExitCode> {
    let project = open(dir)?;
    let outcome = causeway_loop::pipeline::ingest_file(&project, name, file, columns, SystemClock.now_ms())?;
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

pub(crate) fn delete_dataset(dir: &ProjectArgs, version: &str, name: Option<&str>, force: bool) -> Result<ExitCode> {
    let project = open(dir)?;
    let deleted = causeway_loop::datasets::delete_version(&project, name, version, force, "cli", SystemClock.now_ms())?;
    let dataset = &deleted.version;
    println!("deleted {}@{} ({} rows, from {})", dataset.name, dataset.short_version(), dataset.rows, dataset.source);
    if !deleted.forced_past.is_empty() {
        eprintln!(
            "warning: {} were trained on it; their lineage now names data that is gone",
            deleted.forced_past.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}
