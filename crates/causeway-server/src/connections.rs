//! The HTTP/1 connection loop every Causeway server runs, in place of `axum::serve`: it holds at
//! most [`ConnectionLimits::max_connections`] connections (further ones wait in the kernel's
//! backlog, so the process never runs out of descriptors), closes a connection that does not send
//! a whole request head within [`ConnectionLimits::header_timeout`] — a half-sent header, nothing
//! at all, or an idle keep-alive connection — sends each write at once (`TCP_NODELAY`: a small
//! answer or a streamed token never waits for the peer's delayed acknowledgement), and on
//! shutdown stops accepting and lets in-flight requests finish.
//!
//! It owns connections only: what a request means is the router's business.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// How many connections a server holds and how long it waits for a request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections held at once; beyond it, new ones wait to be accepted.
    pub max_connections: usize,
    /// How long a connection may take to send a whole request head, counted from when it is
    /// accepted or its previous answer was sent; then it is closed.
    pub header_timeout: Duration,
    /// How long in-flight requests may take to finish once shutdown begins.
    pub drain_timeout: Duration,
}

/// Descriptors kept for everything but connections: the store, segments, logs, upstreams.
const RESERVED_DESCRIPTORS: usize = 64;

impl Default for ConnectionLimits {
    /// 1,024 connections (fewer when the process may open fewer files), 10 s for a request
    /// head, 30 s to drain.
    fn default() -> Self {
        let max_connections =
            open_file_limit().map_or(1_024, |limit| limit.saturating_sub(RESERVED_DESCRIPTORS).clamp(16, 1_024));
        Self { max_connections, header_timeout: Duration::from_secs(10), drain_timeout: Duration::from_secs(30) }
    }
}

/// The soft limit on open files (Linux's `/proc/self/limits`), when it can be read.
fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|line| line.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

/// Serves `app` on `listener` until `shutdown` completes, then drains (see the module doc).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of descriptors or memory, or the peer gave up: wait a moment, not spin.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "TCP_NODELAY could not be set on an accepted connection");
        }
        let connection = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "a connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain_timeout, graceful.shutdown()).await.is_err() {
        tracing::warn!(seconds = limits.drain_timeout.as_secs(), "requests still running after the drain timeout");
    }
    Ok(())
}
