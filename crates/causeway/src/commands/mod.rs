//! The commands: each parses nothing (clap did), calls library functions and prints. Errors go
//! to stderr with a non-zero exit code.

mod admin;
mod drift;
mod live;
mod llm;
mod project;
mod registry;
mod serve;
mod train;

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Result;
use causeway_loop::Project;
use clap::Parser;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};

use crate::args::{Cli, Command, DatasetAction, LabelsAction, LlmAction, LoopAction, ProjectArgs};
use admin::{events, token};
use drift::drift;
use project::{datasets, delete_dataset, ingest, init, init_from};
use registry::{card, import, models, predict, promote, rollback, runs};
use serve::{serve, serve_file};
use train::{TrainData, TrainHow, train};

/// Parses arguments, runs the command, and turns errors into a message and exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("CAUSEWAY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    match run(cli.command) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Init { from: None, dir, .. } => init(&dir),
        Command::Init { from: Some(file), label, positive, task, name, dir } => {
            let request = causeway_loop::draft::DraftRequest {
                label: label.unwrap_or_default(),
                positive,
                task,
                name: name.unwrap_or_default(),
                source: String::new(),
            };
            init_from(&dir, &file, request)
        }
        Command::Ingest { file, name, columns, dir } => ingest(&dir, &file, &name, &columns),
        Command::Datasets { action: None, dir } => datasets(&dir),
        Command::Datasets { action: Some(DatasetAction::Delete { version, name, force, dir }), .. } => {
            delete_dataset(&dir, &version, name.as_deref(), force)
        }
        Command::Train {
            days,
            promote,
            folds,
            dataset_version,
            holdout,
            search,
            external,
            tracking_uri,
            model,
            dir,
        } => {
            let how = match (external, folds) {
                (true, _) => TrainHow::External { tracking_uri },
                (false, Some(folds)) => TrainHow::CrossValidate { folds },
                (false, None) => TrainHow::BuiltIn { search },
            };
            let data = TrainData {
                days,
                dataset_version: dataset_version.as_deref(),
                holdout: holdout.as_deref(),
                model: model.as_deref(),
            };
            train(&dir, data, promote, how)
        }
        Command::Predict { file, output, model, version, dir } => predict(&dir, &file, &output, model, version),
        Command::Runs(dir) => runs(&dir),
        Command::Models(dir) => models(&dir),
        Command::Import { file, model, threshold, task, promote, dir } => {
            import(&dir, &file, model, threshold, task, promote)
        }
        Command::Card { model, version, html, dir } => card(&dir, model, version, html.as_deref()),
        Command::Promote { version, model, force, dir } => promote(&dir, model, version, force),
        Command::Rollback { model, dir } => rollback(&dir, model),
        Command::Events { kind, dir } => events(&dir, kind.as_deref()),
        Command::Drift { reference, current, threshold, columns, json } => {
            drift(&reference, &current, threshold, &columns, json)
        }
        Command::Serve { listen, model_file: Some(file), name, threshold, task, serving } => {
            serve_file(listen, &file, name, threshold, task, &serving)
        }
        Command::Serve { listen, model_file: None, serving, .. } => serve(listen, &serving, None),
        Command::Server { host, port, serving, tracking, live } => {
            serve(SocketAddr::new(host, port), &serving, Some((&tracking, &live)))
        }
        Command::Ui { host, port, serving } => serve::ui(SocketAddr::new(host, port), &serving),
        Command::Gateway { upstream, local_model, local_embedding, local_threads, dir, listen, insecure } => {
            let local = serve::LocalModels {
                chat: local_model.as_deref(),
                embedding: local_embedding.as_deref(),
                threads: local_threads,
            };
            serve::gateway(&upstream, &local, &dir, listen, insecure)
        }
        Command::Token { action } => token(action),
        Command::Llm { action: LlmAction::Usage { since, by, json, dir } } => llm::usage(&dir, since, &by, json),
        Command::Llm { action: LlmAction::Traces { since, limit, json, dir } } => llm::traces(&dir, since, limit, json),
        Command::Loop { action } => match action {
            LoopAction::Run { tick, once, dir } => live::run(&dir, tick, once),
            LoopAction::Status { json, target } => live::show_status(&target, json),
            LoopAction::Pause(target) => live::request(&target, live::Request::Pause),
            LoopAction::Resume(target) => live::request(&target, live::Request::Resume),
            LoopAction::Retrain(target) => live::request(&target, live::Request::Retrain),
        },
        Command::Labels { action: LabelsAction::Ingest { file, model, correct, dir } } => {
            live::ingest_labels(&dir, &file, model.as_deref(), correct)
        }
        Command::Demo { demo } => crate::demo::run(demo),
    }
}

pub(crate) fn open(project: &ProjectArgs) -> Result<Project> {
    Ok(Project::open_with(&project.dir, &project.storage())?)
}

pub(crate) fn table(headers: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED);
    table.set_header(headers.to_vec());
    table
}
