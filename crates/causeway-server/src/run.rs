//! Running a server: the serving engine over a project's stores (with its prediction log and
//! online features), the deployments reloaded on a period, the HTTP app bound to an address,
//! and a graceful stop on SIGINT or SIGTERM that flushes the prediction log and the online
//! store. Owns this wiring so the binary only parses and prints; decides nothing about what is
//! served (the store's serving policy does).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use causeway_features::{FeatureSetSpec, OnlineStore};
use causeway_monitor::PredictionLog;
use causeway_serving::{Engine, OnlineFeatures};
use causeway_store::{BlobStore, MetaStore};
use causeway_types::Clock;

use crate::Error;
use crate::access::AccessPolicy;
use crate::app::{ServerParts, build};
use crate::connections::ConnectionLimits;
use crate::mlflow::TrackingOptions;

/// Records the prediction log holds in memory before it drops (and counts) more.
const LOG_QUEUE: usize = 100_000;
/// Records per prediction-log segment at most.
const LOG_SEGMENT: usize = 10_000;

/// What a server serves from.
pub struct Deployment {
    /// The metadata store.
    pub meta: Arc<MetaStore>,
    /// The artifact store (models, prediction-log segments).
    pub blobs: BlobStore,
    /// The online feature store (`None` when no models are served: the web UI alone must not
    /// take the store's lock from the server that serves them).
    pub online: Option<Arc<OnlineStore>>,
    /// The features record-style requests are completed with, if the project defines them.
    pub features: Option<FeatureSetSpec>,
    /// The clock stamping predictions and labels.
    pub clock: Arc<dyn Clock>,
}

/// How a server runs.
#[derive(Clone)]
pub struct RunOptions {
    /// The address to bind (port 0: any free port).
    pub listen: SocketAddr,
    /// Whether the MLflow tracking API is served too.
    pub tracking: bool,
    /// Whether every request must carry a token.
    pub require_tokens: bool,
    /// How often deployments are reloaded from the store.
    pub reload: Duration,
    /// A prediction-log segment is written at least this often while predictions arrive.
    pub log_flush: Duration,
    /// Host names accepted beyond the defaults.
    pub allowed_hosts: Vec<String>,
    /// Browser origins allowed beyond the defaults.
    pub cors_allowed_origins: Vec<String>,
    /// The URL clients reach the server at, if not the bound address.
    pub public_url: Option<String>,
    /// How the tracking API differs from MLflow's defaults.
    pub tracking_options: TrackingOptions,
    /// A model that must deploy, or the server refuses to start.
    pub required_model: Option<String>,
    /// Whether models are served (OIP, labels, predictions); `causeway ui` serves none.
    pub serve_models: bool,
    /// The web UI's routes, when it is served.
    pub ui: Option<axum::Router>,
    /// The LLM gateway, when the project configures one.
    pub gateway: Option<Arc<causeway_gateway::Gateway>>,
    /// How many connections are held and how long a request head may take.
    pub connections: ConnectionLimits,
}

/// A server that is listening.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    /// The bound address.
    pub address: SocketAddr,
    /// The models deployed.
    pub models: Vec<String>,
    /// Models that could not be deployed, with why.
    pub unservable: Vec<(String, String)>,
}

/// Serves `deployment` until SIGINT or SIGTERM: tells `on_started` once listening, then runs
/// the app; on the signal, stops taking requests, and flushes the prediction log and the online
/// store. Blocks the calling thread (it builds its own runtime).
pub fn run(deployment: Deployment, options: RunOptions, on_started: impl FnOnce(&Started)) -> Result<(), Error> {
    let Deployment { meta, blobs, online, features, clock } = deployment;
    let features = features.zip(online.clone()).map(|(spec, store)| OnlineFeatures { spec, store });
    // Without models to serve (`causeway ui`) no engine is built: nothing is loaded, refreshed
    // or logged.
    let engine = options.serve_models.then(|| {
        let log = PredictionLog::start_with_age(
            blobs.clone(),
            LOG_QUEUE,
            LOG_SEGMENT,
            Some(options.log_flush.max(Duration::from_millis(10))),
        );
        Arc::new(Engine::new(meta.clone(), blobs.clone(), features, clock.clone(), log))
    });
    let report = engine.as_ref().map(|engine| engine.refresh()).transpose()?.unwrap_or_default();
    let deployed = engine.as_ref().map(|engine| engine.deployed_models()).unwrap_or_default();
    if let Some(required) = &options.required_model
        && !deployed.iter().any(|model| model == required)
    {
        let reason = report.unservable.iter().find(|(model, _)| model == required).map(|(_, reason)| reason.clone());
        return Err(Error::NotDeployed {
            model: required.clone(),
            reason: reason.unwrap_or_else(|| "it did not deploy".into()),
        });
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .map_err(|cause| Error::Bind { address: options.listen, cause })?;
        let address = listener.local_addr()?;
        let app = build(ServerParts {
            meta,
            blobs,
            clock,
            engine: engine.clone(),
            tracking: options.tracking,
            require_tokens: options.require_tokens,
            access: AccessPolicy::new(address, options.allowed_hosts.clone(), options.cors_allowed_origins.clone()),
            public_url: options.public_url.clone().unwrap_or_else(|| ServerParts::default_public_url(address)),
            tracking_options: options.tracking_options.clone(),
            ui: options.ui.clone(),
            gateway: options.gateway.clone(),
        });
        on_started(&Started { address, models: deployed, unservable: report.unservable });
        let refresher = engine
            .as_ref()
            .map(|engine| crate::spawn_refresher(engine.clone(), options.reload.max(Duration::from_secs(1))));
        let served = crate::connections::serve(listener, app, options.connections, shutdown_signal()).await;
        if let Some(refresher) = refresher {
            refresher.abort();
        }
        let flushed = engine.as_ref().map_or(Ok(()), |engine| engine.log().flush().map_err(Error::from));
        let online_flushed = online.as_ref().map_or(Ok(()), |online| online.flush().map(|_| ()).map_err(Error::from));
        if let Some(gateway) = options.gateway.clone() {
            // The ledger's last calls reach the store before the process ends.
            let _ = tokio::task::spawn_blocking(move || gateway.close()).await;
        }
        served.map_err(Error::from)?;
        flushed?;
        online_flushed
    })
}

/// A tracking and artifact API on 127.0.0.1 (any free port) for a command's lifetime — the
/// server `causeway train --external` points the researcher's script at. Stops when dropped.
pub struct TrackingServer {
    /// `http://127.0.0.1:PORT`.
    pub uri: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TrackingServer {
    /// Starts serving `meta` and `blobs`' tracking API on a thread of its own.
    pub fn start(meta: Arc<MetaStore>, blobs: BlobStore) -> Result<Self, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
        let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(loopback))
            .map_err(|cause| Error::Bind { address: loopback, cause })?;
        let address = listener.local_addr()?;
        let uri = format!("http://{address}");
        let app = build(ServerParts {
            meta,
            blobs,
            clock: Arc::new(causeway_types::SystemClock),
            engine: None,
            tracking: true,
            require_tokens: false,
            access: AccessPolicy::new(address, Vec::new(), Vec::new()),
            public_url: uri.clone(),
            tracking_options: TrackingOptions::default(),
            ui: None,
            gateway: None,
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let served = runtime.block_on(async move {
                let stop = async move {
                    let _ = stopped.await;
                };
                crate::connections::serve(listener, app, ConnectionLimits::default(), stop).await
            });
            if let Err(error) = served {
                tracing::warn!(%error, "the tracking server for the training command failed");
            }
        });
        Ok(Self { uri, stop: Some(stop), thread: Some(thread) })
    }
}

impl Drop for TrackingServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM (what supervisors send).
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => {
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {},
            _ = terminate.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
