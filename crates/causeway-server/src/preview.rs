//! The web UI's preview of a run's HTML artifact (a report, a model card) as its author styled it.
//!
//! The UI's pages carry a strict Content-Security-Policy, which a document made from a `blob:`
//! URL inherits: an HTML report shown that way loses its inline styles. So the page asks, with
//! its token, for a signed address of the artifact valid one minute (`GET
//! /ui/api/artifact-preview?run_id=…&path=…`), and the frame loads that address without a token
//! (`GET /ui/artifact-preview/TICKET`), answered with a policy of its own: sandboxed (no scripts,
//! an opaque origin), inline styles and `data:` images allowed, nothing fetched from anywhere.
//! This module owns the ticket (signed with a key made at start, which never leaves the process)
//! and those two routes; what a run's artifact is and where it lives stays in `mlflow.rs`.

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use causeway_store::hex;
use serde_json::json;

use crate::mlflow::{MlflowError, TrackingState, blocking, stored_file};

/// How long a preview address stays valid.
const TICKET_LIFETIME_MS: i64 = 60_000;

/// The policy a previewed document runs under.
const PREVIEW_POLICY: &str = "sandbox; default-src 'none'; style-src 'unsafe-inline' data:; img-src data:; \
     font-src data:; frame-ancestors 'self'";

/// The routes (the first under the UI's API, so it takes a token with read scope; the second
/// under the UI's pages, which take none: its ticket is its authority).
pub(crate) fn router(state: TrackingState) -> Router {
    Router::new()
        .route("/ui/api/artifact-preview", get(issue))
        .route("/ui/artifact-preview/{ticket}", get(preview))
        .with_state(state)
}

/// The key tickets are signed with: random, made once per process.
fn key() -> Result<&'static [u8; 32], MlflowError> {
    static KEY: OnceLock<Option<[u8; 32]>> = OnceLock::new();
    KEY.get_or_init(|| {
        let text = causeway_store::random_hex(32).ok()?;
        Some(*blake3::hash(text.as_bytes()).as_bytes())
    })
    .as_ref()
    .ok_or_else(|| MlflowError::internal("no randomness for signing previews: /dev/urandom could not be read"))
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|index| u8::from_str_radix(text.get(index..index + 2)?, 16).ok()).collect()
}

fn signature(key: &[u8; 32], run_id: &str, path: &str, expires_ms: i64) -> String {
    let message = format!("{run_id}\n{path}\n{expires_ms}");
    hex(&blake3::keyed_hash(key, message.as_bytes()).as_bytes()[..16])
}

/// A ticket for `path` of `run_id`, valid until `expires_ms`.
fn sign(key: &[u8; 32], run_id: &str, path: &str, expires_ms: i64) -> String {
    format!(
        "{}.{}.{expires_ms}.{}",
        hex(run_id.as_bytes()),
        hex(path.as_bytes()),
        signature(key, run_id, path, expires_ms)
    )
}

/// The run and path a ticket grants at `now_ms`, or why it grants nothing.
fn verify(key: &[u8; 32], ticket: &str, now_ms: i64) -> Result<(String, String), &'static str> {
    let parts: Vec<&str> = ticket.split('.').collect();
    let [run_id, path, expires, signed] = parts.as_slice() else {
        return Err("this preview address is malformed");
    };
    let text = |part: &str| unhex(part).and_then(|bytes| String::from_utf8(bytes).ok());
    let (Some(run_id), Some(path), Ok(expires_ms)) = (text(run_id), text(path), expires.parse::<i64>()) else {
        return Err("this preview address is malformed");
    };
    // Compared in constant time, so the signature cannot be guessed byte by byte.
    let expected = signature(key, &run_id, &path, expires_ms);
    let same = expected.len() == signed.len()
        && expected.bytes().zip(signed.bytes()).fold(0u8, |differ, (left, right)| differ | (left ^ right)) == 0;
    if !same {
        return Err("this preview address is not one this server made");
    }
    if now_ms > expires_ms {
        return Err("this preview address has expired: open the artifact again");
    }
    Ok((run_id, path))
}

fn is_html(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    lower.ends_with(".html") || lower.ends_with(".htm")
}

/// `GET /ui/api/artifact-preview?run_id=…&path=…` → `{"url": "/ui/artifact-preview/TICKET"}`.
async fn issue(
    State(state): State<TrackingState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, MlflowError> {
    let run_id = query.get("run_id").cloned().ok_or_else(|| MlflowError::missing("run_id"))?;
    let path = query.get("path").cloned().ok_or_else(|| MlflowError::missing("path"))?;
    if !is_html(&path) {
        return Err(MlflowError::invalid(format!("only HTML artifacts are previewed this way; `{path}` is not one")));
    }
    let ticket = blocking(move || {
        // The run must exist now; the artifact is looked up when the frame loads.
        state.meta.tracked_run(&run_id)?;
        Ok(sign(key()?, &run_id, &path, state.clock.now_ms() + TICKET_LIFETIME_MS))
    })
    .await?;
    Ok(axum::Json(json!({"url": format!("/ui/artifact-preview/{ticket}")})).into_response())
}

/// `GET /ui/artifact-preview/TICKET`: the artifact, inline, under [`PREVIEW_POLICY`].
async fn preview(State(state): State<TrackingState>, Path(ticket): Path<String>) -> Result<Response, MlflowError> {
    let (run_id, path) = verify(key()?, &ticket, state.clock.now_ms()).map_err(MlflowError::forbidden)?;
    let mut response = blocking(move || {
        let run = state.meta.tracked_run(&run_id)?;
        stored_file(&state, &run.artifact_uri, &path)
    })
    .await?;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("inline"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(PREVIEW_POLICY));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_grants_its_run_and_path_until_it_expires_and_nothing_else() {
        let key = [7u8; 32];
        let ticket = sign(&key, "run-1", "reports/a b.html", 1_000);
        assert_eq!(verify(&key, &ticket, 999), Ok(("run-1".to_string(), "reports/a b.html".to_string())));
        assert_eq!(verify(&key, &ticket, 1_000).map(|granted| granted.1), Ok("reports/a b.html".to_string()));
        assert!(verify(&key, &ticket, 1_001).unwrap_err().contains("expired"));
        assert!(verify(&[8u8; 32], &ticket, 0).unwrap_err().contains("not one this server made"));
        // Another path, a later expiry or a cut signature under the same signature: refused.
        let parts: Vec<&str> = ticket.split('.').collect();
        let other_path = format!("{}.{}.{}.{}", parts[0], hex(b"secret.html"), parts[2], parts[3]);
        assert!(verify(&key, &other_path, 0).is_err());
        let later = format!("{}.{}.{}.{}", parts[0], parts[1], 9_999, parts[3]);
        assert!(verify(&key, &later, 0).is_err());
        assert!(verify(&key, &ticket[..ticket.len() - 2], 0).is_err());
        assert!(verify(&key, "not-a-ticket", 0).unwrap_err().contains("malformed"));
        assert!(verify(&key, "zz.00.1.00", 0).unwrap_err().contains("malformed"));
    }
}
