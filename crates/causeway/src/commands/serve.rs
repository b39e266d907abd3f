//! `serve` and `server`: the data plane, and the control plane beside it.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use causeway_loop::Project;
use causeway_models::TaskKind;
use causeway_server::run::{Deployment, RunOptions};
use causeway_types::{Clock, SystemClock};

use super::open;
use super::registry::{import_file, set_champion};
use crate::args::{ProjectArgs, ServerLoopArgs, ServingArgs, TrackingArgs};

/// Serves one model file with no project of the user's: imports it into a temporary project (removed
/// when the server stops) as the champion of `name`, then serves that project.
pub(crate) fn serve_file(
    listen: SocketAddr,
    file: &Path,
    name: Option<String>,
    threshold: f64,
    task: Option<TaskKind>,
    serving: &ServingArgs,
) -> Result<ExitCode> {
    if !listen.ip().is_loopback() && !serving.insecure {
        anyhow::bail!(
            "serving a model file on {listen} (not a loopback address) has no API tokens to check: pass --insecure, \
             or import the file into a project (`causeway import`) and create tokens there"
        );
    }
    let name = match name {
        Some(name) => name,
        None => file
            .file_stem()
            .and_then(|stem| stem.to_str())
            .filter(|stem| !stem.is_empty() && !stem.starts_with('.'))
            .map(str::to_string)
            .with_context(|| format!("cannot name a model after {}: pass --name", file.display()))?,
    };
    if serving.dir.store.is_some() || serving.dir.artifacts.is_some() {
        eprintln!("warning: --store and --artifacts (or CAUSEWAY_STORE, CAUSEWAY_ARTIFACTS) do not apply to --model");
    }
    let scratch = tempfile::Builder::new()
        .prefix("causeway-serve-")
        .tempdir()
        .context("cannot create a temporary project (is TMPDIR writable?)")?;
    let project_args = ProjectArgs { dir: scratch.path().to_path_buf(), store: None, artifacts: None };
    let (project, _) =
        Project::init_with(&project_args.dir, causeway_loop::project::INIT_TEMPLATE, &project_args.storage())?;
    let version = import_file(&project, file, &name, threshold, task)
        .with_context(|| format!("cannot serve {}", file.display()))?;
    // The artifact must load back as serving loads it, or there is nothing to serve.
    causeway_loop::pipeline::load_artifact(&project, &version)
        .with_context(|| format!("cannot serve {}: the imported model does not load", file.display()))?;
    set_champion(&project, &name, version.version, "cli", "served from a file")?;
    drop(project);
    // Standard output's first line stays the server's readiness line.
    eprintln!("serving {} as model `{name}` (a temporary project, removed on exit)", file.display());
    let serving = ServingArgs { dir: project_args, ..serving.clone() };
    serve_with(listen, &serving, None, Some(&name), true)
}

/// Serves the data plane (OIP v2, record scoring, labels, metrics) and, with `tracking`, the
/// MLflow tracking API too.
/// With `server`'s options, the live loop runs beside the API unless `--no-loop`.
pub(crate) fn serve(
    listen: SocketAddr,
    serving: &ServingArgs,
    server: Option<(&TrackingArgs, &ServerLoopArgs)>,
) -> Result<ExitCode> {
    serve_with(listen, serving, server, None, true)
}

/// `causeway ui`: the web UI and the MLflow API it reads, on the project's stores, with no
/// models served and no loop.
pub(crate) fn ui(listen: SocketAddr, serving: &ServingArgs) -> Result<ExitCode> {
    let tracking = TrackingArgs::default();
    let no_loop = ServerLoopArgs { no_loop: true, loop_tick: None };
    serve_with(listen, serving, Some((&tracking, &no_loop)), None, false)
}

/// The models `causeway gateway --local-model/--local-embedding` runs in process.
pub(crate) struct LocalModels<'a> {
    pub(crate) chat: Option<&'a str>,
    pub(crate) embedding: Option<&'a str>,
    pub(crate) threads: u16,
}

/// `causeway gateway`: the LLM gateway alone — with `--upstream URL…` one catch-all route to the
/// first upstream, the others its fallbacks in order, and with `--local-model FILE` /
/// `--local-embedding DIR` the routes `local` / `local-embedding` run in process; else the
/// project's `[gateway]` section.
pub(crate) fn gateway(
    upstreams: &[String],
    local: &LocalModels<'_>,
    dir: &Path,
    listen: SocketAddr,
    insecure: bool,
) -> Result<ExitCode> {
    if !listen.ip().is_loopback() && !insecure {
        anyhow::bail!(
            "the gateway checks no API keys yet: listen on a loopback address, or pass --insecure to listen on {listen}"
        );
    }
    let (config, serving, meta) = if upstreams.is_empty() && local.chat.is_none() && local.embedding.is_none() {
        let project = causeway_loop::config::ProjectConfig::load(dir).with_context(|| {
            format!("no --upstream or --local-* given, so the gateway reads {}/causeway.toml", dir.display())
        })?;
        let config = project.gateway.with_context(|| {
            format!(
                "{}/causeway.toml has no [gateway] section: add [[gateway.providers]] and [[gateway.routes]] \
                 (docs/llm-gateway.md), or pass --upstream URL or --local-model FILE.gguf",
                dir.display()
            )
        })?;
        let routes: Vec<String> = config.routes.iter().map(|route| route.name.clone()).collect();
        // The project's store keeps the ledger (`causeway llm usage` reads it).
        let meta = Project::open(dir)?.meta;
        (config, format!("routes {} of {}", routes.join(", "), dir.display()), Some(meta))
    } else {
        let mut serving = Vec::new();
        if let Some(file) = local.chat {
            serving.push(format!("the model `local` from {file}"));
        }
        if let Some(directory) = local.embedding {
            serving.push(format!("the embedding model `local-embedding` from {directory}"));
        }
        if local.chat.is_some() || local.embedding.is_some() {
            serving.push(format!("on {} thread(s) each", local.threads));
        }
        if !upstreams.is_empty() {
            serving.push(format!("forwarding to {}", upstreams.join(", then ")));
        }
        let config =
            causeway_gateway::gateway::command_line(upstreams, local.chat, local.embedding, usize::from(local.threads));
        (config, serving.join(", "), None)
    };
    let mut gateway = causeway_gateway::Gateway::new(&config)?;
    if let Some(meta) = meta {
        gateway.keep_ledger_in(meta)?;
    }
    causeway_server::openai::run_gateway(gateway, listen, |address| {
        // One line: the readiness signal.
        println!("LLM gateway on http://{address} (OpenAI API at /v1), {serving}");
    })?;
    Ok(ExitCode::SUCCESS)
}

/// [`serve`], refusing to start when `required` names a model that cannot be deployed; with
/// `serve_models` false, only the tracking API and the web UI.
fn serve_with(
    listen: SocketAddr,
    serving: &ServingArgs,
    server: Option<(&TrackingArgs, &ServerLoopArgs)>,
    required: Option<&str>,
    serve_models: bool,
) -> Result<ExitCode> {
    let tracking_args = server.map(|(tracking, _)| tracking);
    let loop_args = server.map(|(_, live)| live);
    let tracking = tracking_args.is_some();
    let direct_artifacts = tracking_args
        .and_then(|args| args.default_artifact_root.as_deref())
        .map(|uri| {
            causeway_server::mlflow::DirectArtifacts::open(uri)
                .map_err(|error| anyhow::anyhow!("--default-artifact-root {uri}: {error}"))
        })
        .transpose()?;
    let source_pattern = tracking_args
        .and_then(|args| args.model_version_source_pattern.as_deref())
        .map(|pattern| {
            causeway_server::registry::SourcePattern::new(pattern)
                .map_err(|error| anyhow::anyhow!("--model-version-source-pattern {pattern}: {error}"))
        })
        .transpose()?;
    let (dir, reload_seconds, insecure) = (serving.dir.dir.as_path(), serving.reload_seconds, serving.insecure);
    let project = if tracking {
        let (project, configured) = Project::open_for_server(dir, &serving.dir.storage())?;
        if !configured {
            eprintln!(
                "note: {} has no causeway.toml: serving the MLflow API and models on the stores alone (`causeway init` adds a project)",
                dir.display()
            );
        }
        project
    } else {
        open(&serving.dir)?
    };
    let require_tokens = serving.require_tokens || (!listen.ip().is_loopback() && !insecure);
    if require_tokens && project.meta.tokens()?.iter().all(|token| token.revoked) {
        anyhow::bail!(
            "serving {listen} (not a loopback address) requires API tokens: create one with `causeway token create --name NAME --scope admin --dir {}`, or pass --insecure",
            dir.display()
        );
    }
    let project = Arc::new(project);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let deployment = Deployment {
        meta: project.meta.clone(),
        blobs: project.blobs.clone(),
        online: if serve_models { Some(project.online()?) } else { None },
        features: project.config.features.clone(),
        clock: clock.clone(),
    };
    // The LLM gateway of the project's [gateway] section (its local models load now).
    let gateway = match (&project.config.gateway, serve_models) {
        (Some(config), true) => {
            let mut gateway = causeway_gateway::Gateway::new(config)?;
            gateway.keep_ledger_in(project.meta.clone())?;
            Some(Arc::new(gateway))
        }
        _ => None,
    };
    let gateway_note = gateway.as_ref().map_or(String::new(), |gateway| {
        format!("; LLM gateway (OpenAI API) at /v1, routes {}", gateway.route_names().join(", "))
    });
    let options = RunOptions {
        listen,
        tracking,
        require_tokens,
        reload: Duration::from_secs(reload_seconds),
        log_flush: serving.log_flush.to_std(),
        allowed_hosts: serving.allowed_hosts.clone(),
        cors_allowed_origins: serving.cors_allowed_origins.clone(),
        public_url: serving.public_url.clone(),
        tracking_options: causeway_server::mlflow::TrackingOptions { direct_artifacts, source_pattern },
        required_model: required.map(str::to_string),
        serve_models,
        ui: tracking
            .then(|| causeway_ui::router(causeway_ui::UiState { project: project.clone(), clock: clock.clone() })),
        gateway,
        connections: connection_limits(serving),
    };
    // The loop runs beside the API on its own thread; it does not need the listener.
    let live = match loop_args {
        Some(args) if !args.no_loop && project.config.model.is_some() => {
            let options = super::live::live_options(&project, args.loop_tick, false);
            eprintln!("the loop runs in this server every {} (--no-loop turns it off)", options.tick);
            Some(causeway_loop::live::LiveLoop::start(
                project.clone(),
                options,
                clock.clone(),
                super::live::printing_observer(true),
            )?)
        }
        _ => None,
    };
    let served = causeway_server::run::run(deployment, options, |started| {
        if !serve_models {
            // One line, the readiness signal as for the servers.
            println!(
                "web UI of {} on http://{} (open it in a browser; metadata on {}, artifacts in {})",
                project.dir.display(),
                started.address,
                project.meta.backend(),
                project.blobs.describe()
            );
            return;
        }
        for (model, reason) in &started.unservable {
            eprintln!("warning: not serving {model}: {reason}");
        }
        if started.models.is_empty() {
            eprintln!("warning: no model is deployed yet; /v2/health/ready answers 503 until a champion exists");
        }
        let tracking_note = if tracking { "; MLflow tracking API at /api/2.0/mlflow; web UI at /" } else { "" };
        // One line: tests and supervisors read it as the readiness signal, then may close the pipe.
        println!(
            "serving {} on http://{} (models: {}; metadata on {}, artifacts in {}){tracking_note}{gateway_note}",
            project.dir.display(),
            started.address,
            started.models.join(", "),
            project.meta.backend(),
            project.blobs.describe()
        );
    });
    if let Some(live) = live
        && let Err(error) = live.stop()
    {
        eprintln!("warning: stopping the loop failed: {error}");
    }
    served?;
    Ok(ExitCode::SUCCESS)
}

/// The connection limits `--max-connections` and `--header-timeout` ask for.
fn connection_limits(serving: &ServingArgs) -> causeway_server::connections::ConnectionLimits {
    let defaults = causeway_server::connections::ConnectionLimits::default();
    causeway_server::connections::ConnectionLimits {
        max_connections: serving.max_connections.map_or(defaults.max_connections, |limit| limit as usize),
        header_timeout: serving.header_timeout.to_std(),
        ..defaults
    }
}
