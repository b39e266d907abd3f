//! MLflow's proxied artifact API (`/api/2.0/mlflow-artifacts/artifacts/...`): upload, download,
//! list and delete, on the blob store under `mlflow-artifacts/`, plus multipart uploads. Paths can
//! never leave that root: `..`, `.`, empty and absolute segments are refused after
//! percent-decoding. Writes are atomic and the last writer of a key wins whole (see [`BlobStore`]).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post, put};
use causeway_store::BlobStore;
use causeway_types::Clock;
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::mlflow::{MlflowError, blocking};

/// The largest artifact accepted in one upload.
pub const MAX_ARTIFACT_BYTES: usize = 256 * 1024 * 1024;

/// Where proxied artifacts live in the blob store.
const ROOT: &str = "mlflow-artifacts";

/// Where multipart uploads keep their parts until completed or aborted.
const UPLOADS: &str = "mlflow-artifact-uploads";
/// The most parts one multipart upload may have.
pub const MAX_PARTS: u64 = 10_000;
/// The route a part is uploaded to; the unguessable upload id is the capability (like a
/// presigned URL), so part uploads need no bearer token.
pub const PART_ROUTE_PREFIX: &str = "/api/2.0/mlflow-artifacts/mpu/upload/";

/// How long a multipart upload may stay open before its id stops working (24 hours).
pub const UPLOAD_LIFETIME_MS: i64 = 24 * 60 * 60 * 1000;

/// What the artifact handlers reach.
#[derive(Clone)]
pub struct ArtifactState {
    /// Where artifacts live.
    pub blobs: BlobStore,
    /// The server's own URL as clients reach it (`http://host:port`): multipart part URLs are
    /// built from it, never from a request's `Host` header.
    pub public_url: String,
    /// Stamps and expires multipart uploads.
    pub clock: Arc<dyn Clock>,
}

/// The artifact routes.
pub fn router(state: ArtifactState) -> Router {
    Router::new()
        .route("/api/2.0/mlflow-artifacts/artifacts", get(list))
        .route("/api/2.0/mlflow-artifacts/artifacts/", get(list))
        .route("/api/2.0/mlflow-artifacts/artifacts/{*path}", get(download).put(upload).delete(remove))
        .route("/api/2.0/mlflow-artifacts/mpu/create/{*path}", post(create_upload))
        .route("/api/2.0/mlflow-artifacts/mpu/upload/{upload_id}/{part}", put(upload_part))
        .route("/api/2.0/mlflow-artifacts/mpu/complete/{*path}", post(complete_upload))
        .route("/api/2.0/mlflow-artifacts/mpu/abort/{*path}", post(abort_upload))
        .layer(DefaultBodyLimit::max(MAX_ARTIFACT_BYTES))
        .with_state(state)
}

/// Checks an artifact path and returns its blob key.
pub fn artifact_key(path: &str) -> Result<String, MlflowError> {
    Ok(format!("{ROOT}/{}", checked_path(path)?))
}

/// Checks an artifact path (no empty, `.` or `..` segments, no leading `/`, `\\` or NUL) and returns
/// it without a trailing `/`.
pub fn checked_path(path: &str) -> Result<String, MlflowError> {
    let trimmed = path.trim_end_matches('/');
    let safe = !trimmed.is_empty()
        && !trimmed.starts_with('/')
        && !trimmed.contains('\\')
        && !trimmed.contains('\0')
        && trimmed.split('/').all(|segment| !segment.is_empty() && segment != "." && segment != "..");
    if !safe {
        // MLflow's exact words, which its clients and tests compare.
        return Err(MlflowError::invalid("Invalid path"));
    }
    Ok(trimmed.to_string())
}

async fn upload(
    State(state): State<ArtifactState>,
    Path(path): Path<String>,
    body: Body,
) -> Result<Json<serde_json::Value>, MlflowError> {
    let key = artifact_key(&path)?;
    stream_into(state.blobs.clone(), key, body, MAX_ARTIFACT_BYTES).await?;
    Ok(Json(json!({})))
}

/// Streams a request body into the blob under `key` as it arrives, never holding more than a few
/// chunks of it (the blob store writes a temporary file, or S3 parts of 8 MiB); answers the size and
/// the BLAKE3 of what was stored. A body over `limit` bytes, or one the client breaks off, stores
/// nothing: the earlier blob under `key` (or none) stays.
async fn stream_into(blobs: BlobStore, key: String, body: Body, limit: usize) -> Result<(u64, String), MlflowError> {
    let (sender, receiver) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(CHANNEL_CHUNKS);
    let writer = tokio::task::spawn_blocking(move || {
        let mut reader = ChannelReader { receiver, current: Bytes::new(), hasher: blake3::Hasher::new() };
        let size = blobs.put_reader(&key, &mut reader)?;
        Ok::<_, causeway_store::Error>((size, reader.hasher.finalize().to_hex().to_string()))
    });
    let mut body = body;
    let mut received = 0_usize;
    let mut refused: Option<MlflowError> = None;
    while let Some(frame) = body.frame().await {
        let chunk = match frame {
            Ok(frame) => match frame.into_data() {
                Ok(chunk) => chunk,
                Err(_) => continue, // trailers
            },
            Err(error) => {
                refused = Some(MlflowError::invalid(format!("the upload broke off: {error}")));
                break;
            }
        };
        received += chunk.len();
        if received > limit {
            refused = Some(MlflowError::too_large(format!("an artifact upload takes at most {limit} bytes")));
            break;
        }
        if sender.send(Ok(chunk)).await.is_err() {
            break; // the writer stopped: its error is the answer
        }
    }
    if refused.is_some() {
        // Fails the write instead of ending it: nothing partial is stored.
        let _ = sender.send(Err(std::io::Error::other("the upload was refused"))).await;
    }
    drop(sender);
    let written = writer.await.map_err(|error| MlflowError::internal(format!("artifact task failed: {error}")))?;
    match refused {
        Some(error) => Err(error),
        None => Ok(written?),
    }
}

/// Chunks a body may be ahead of the blob store's writes.
const CHANNEL_CHUNKS: usize = 8;

/// The blocking side of [`stream_into`]: reads the chunks the request task sends, hashing them.
struct ChannelReader {
    receiver: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    current: Bytes,
    hasher: blake3::Hasher,
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.receiver.blocking_recv() {
                None => return Ok(0),
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(error)) => return Err(error),
            }
        }
        let count = buffer.len().min(self.current.len());
        let chunk = self.current.split_to(count);
        buffer[..count].copy_from_slice(&chunk);
        self.hasher.update(&chunk);
        Ok(count)
    }
}

async fn download(State(state): State<ArtifactState>, Path(path): Path<String>) -> Result<Response, MlflowError> {
    blocking(move || {
        let key = artifact_key(&path)?;
        let (reader, size) = state.blobs.open_read(&key)?;
        Ok(file_response(&key, reader, size))
    })
    .await
}

/// A downloaded file as MLflow's server answers it; its bytes stream from `reader` as the client
/// takes them (a few chunks ahead), so a file of any size costs the server little memory.
pub(crate) fn file_response(key: &str, reader: Box<dyn std::io::Read + Send>, size: u64) -> Response {
    let name = key.rsplit('/').next().unwrap_or("artifact");
    // As MLflow's server answers: a guessed type, always as an attachment, never sniffed.
    let disposition = format!("attachment; filename={}", name.replace(['"', '\r', '\n'], "_"));
    let headers = [
        (header::CONTENT_TYPE, mime_type(name).to_string()),
        (header::CONTENT_DISPOSITION, disposition),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
        (header::CONTENT_LENGTH, size.to_string()),
    ];
    let (sender, receiver) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(CHANNEL_CHUNKS);
    tokio::task::spawn_blocking(move || send_chunks(reader, &sender));
    (headers, Body::from_stream(ChunkStream(receiver))).into_response()
}

/// Bytes one chunk of a download holds.
const DOWNLOAD_CHUNK_BYTES: usize = 256 * 1024;

/// Reads `reader` to its end into `sender`, stopping early when the client has gone.
fn send_chunks(mut reader: Box<dyn std::io::Read + Send>, sender: &tokio::sync::mpsc::Sender<std::io::Result<Bytes>>) {
    loop {
        let mut chunk = vec![0; DOWNLOAD_CHUNK_BYTES];
        match reader.read(&mut chunk) {
            Ok(0) => return,
            Ok(count) => {
                chunk.truncate(count);
                if sender.blocking_send(Ok(Bytes::from(chunk))).is_err() {
                    return;
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => {
                let _ = sender.blocking_send(Err(error));
                return;
            }
        }
    }
}

/// A download's chunks as the response body takes them.
struct ChunkStream(tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>);

impl futures_core::Stream for ChunkStream {
    type Item = std::io::Result<Bytes>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(context)
    }
}

/// The media type MLflow's server gives a downloaded file: plain text for text-like files
/// (including `MLmodel`), the usual types for a few others, else `application/octet-stream`.
pub fn mime_type(file_name: &str) -> &'static str {
    const TEXT: [&str; 25] = [
        "txt",
        "log",
        "err",
        "cfg",
        "conf",
        "cnf",
        "cf",
        "ini",
        "properties",
        "prop",
        "hocon",
        "toml",
        "yaml",
        "yml",
        "xml",
        "json",
        "js",
        "py",
        "py3",
        "csv",
        "tsv",
        "md",
        "rst",
        "MLmodel",
        "MLproject",
    ];
    let extension = match file_name.rsplit_once('.') {
        Some((_, extension)) if !extension.is_empty() => extension,
        _ => file_name,
    };
    if TEXT.iter().any(|text| text.eq_ignore_ascii_case(extension)) {
        return "text/plain";
    }
    match extension.to_ascii_lowercase().as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "html" | "htm" => "text/html",
        "pdf" => "application/pdf",
        "parquet" => "application/vnd.apache.parquet",
        _ => "application/octet-stream",
    }
}

async fn remove(
    State(state): State<ArtifactState>,
    Path(path): Path<String>,
) -> Result<Json<serde_json::Value>, MlflowError> {
    blocking(move || {
        state.blobs.delete(&artifact_key(&path)?)?;
        Ok(Json(json!({})))
    })
    .await
}

async fn list(
    State(state): State<ArtifactState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, MlflowError> {
    let blobs = state.blobs;
    blocking(move || {
        let key = match query.get("path").map(String::as_str).filter(|path| !path.is_empty()) {
            Some(path) => artifact_key(path)?,
            None => ROOT.to_string(),
        };
        let files: Vec<serde_json::Value> = blobs
            .list_directory(&key)?
            .into_iter()
            .map(|(name, is_dir, size)| {
                if is_dir {
                    json!({"path": name, "is_dir": true})
                } else {
                    json!({"path": name, "is_dir": false, "file_size": size})
                }
            })
            .collect();
        Ok(Json(json!({"files": files})))
    })
    .await
}

#[derive(Deserialize)]
struct UploadRequest {
    /// The client's local file: its base name is appended to the artifact directory.
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    num_parts: Option<u64>,
    #[serde(default)]
    upload_id: Option<String>,
    #[serde(default)]
    parts: Vec<UploadedPart>,
}

#[derive(Deserialize)]
struct UploadedPart {
    part_number: u64,
    #[serde(default)]
    etag: String,
}

/// What the store keeps of an open multipart upload.
#[derive(Serialize, Deserialize)]
struct OpenUpload {
    /// The blob key the upload completes into.
    key: String,
    /// How many parts it was started with.
    num_parts: u64,
    /// When it was started (epoch ms).
    created_ms: i64,
}

fn record_key(upload_id: &str) -> String {
    format!("{UPLOADS}/{upload_id}/upload.json")
}

fn part_key(upload_id: &str, part: u64) -> String {
    format!("{UPLOADS}/{upload_id}/part-{part:05}")
}

fn upload_id_checked(upload_id: Option<&str>) -> Result<String, MlflowError> {
    match upload_id {
        Some(id) if id.len() == 32 && id.chars().all(|character| character.is_ascii_hexdigit()) => Ok(id.to_string()),
        _ => Err(MlflowError::invalid("missing or malformed upload_id")),
    }
}

fn parse_upload(body: &Bytes) -> Result<UploadRequest, MlflowError> {
    serde_json::from_slice(body).map_err(|error| MlflowError::invalid(format!("malformed multipart request: {error}")))
}

/// The blob key a multipart upload writes: the artifact directory in the URL plus the base name
/// of the client's file, as MLflow's server does.
fn upload_target(directory: &str, request: &UploadRequest) -> Result<String, MlflowError> {
    let file = request.path.as_deref().and_then(|path| path.rsplit(['/', '\\']).next()).filter(|name| !name.is_empty());
    match file {
        Some(name) => artifact_key(&format!("{}/{name}", directory.trim_end_matches('/'))),
        None => Err(MlflowError::missing("path")),
    }
}

/// The open upload `upload_id`, refused when unknown or expired (an expired one is dropped).
fn open_upload(state: &ArtifactState, upload_id: &str) -> Result<OpenUpload, MlflowError> {
    let missing = || MlflowError::from(causeway_store::Error::NotFound(format!("multipart upload `{upload_id}`")));
    let record = match state.blobs.get(&record_key(upload_id)) {
        Ok(bytes) => bytes,
        Err(causeway_store::Error::NotFound(_)) => return Err(missing()),
        Err(error) => return Err(error.into()),
    };
    let upload: OpenUpload = serde_json::from_slice(&record).map_err(|_| missing())?;
    if state.clock.now_ms() - upload.created_ms > UPLOAD_LIFETIME_MS {
        let _ = state.blobs.delete(&format!("{UPLOADS}/{upload_id}"));
        return Err(MlflowError::invalid(format!(
            "multipart upload `{upload_id}` expired (uploads stay open {} hours); start it again",
            UPLOAD_LIFETIME_MS / 3_600_000
        )));
    }
    Ok(upload)
}

/// Drops uploads older than [`UPLOAD_LIFETIME_MS`], so abandoned parts do not pile up.
fn sweep_expired(state: &ArtifactState) -> Result<(), MlflowError> {
    for (upload_id, is_dir, _) in state.blobs.list_directory(UPLOADS)? {
        if is_dir && upload_id_checked(Some(&upload_id)).is_ok() {
            // Expired uploads are removed as a side effect; others and errors are left alone.
            let _ = open_upload(state, &upload_id);
        }
    }
    Ok(())
}

/// Starts a multipart upload: answers one upload URL per part on this server.
async fn create_upload(
    State(state): State<ArtifactState>,
    Path(path): Path<String>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, MlflowError> {
    blocking(move || {
        let request = parse_upload(&body)?;
        let key = upload_target(&path, &request)?;
        let parts = request.num_parts.unwrap_or(1);
        if parts == 0 || parts > MAX_PARTS {
            return Err(MlflowError::invalid(format!("num_parts must be between 1 and {MAX_PARTS}")));
        }
        sweep_expired(&state)?;
        let upload_id = causeway_store::random_hex(16)?;
        let record = OpenUpload { key, num_parts: parts, created_ms: state.clock.now_ms() };
        let record = serde_json::to_vec(&record).map_err(|error| MlflowError::internal(error.to_string()))?;
        state.blobs.put(&record_key(&upload_id), &record)?;
        let base = state.public_url.trim_end_matches('/');
        let credentials: Vec<serde_json::Value> = (1..=parts)
            .map(|part| json!({"url": format!("{base}{PART_ROUTE_PREFIX}{upload_id}/{part}"), "part_number": part, "headers": {}}))
            .collect();
        Ok(Json(json!({"upload_id": upload_id, "credentials": credentials})))
    })
    .await
}

/// Stores one part; answers its ETag (the BLAKE3 of its bytes).
async fn upload_part(
    State(state): State<ArtifactState>,
    Path((upload_id, part)): Path<(String, u64)>,
    body: Body,
) -> Result<Response, MlflowError> {
    let checked = state.clone();
    let upload_id = blocking(move || {
        let upload_id = upload_id_checked(Some(&upload_id))?;
        let upload = open_upload(&checked, &upload_id)?;
        if part == 0 || part > upload.num_parts {
            return Err(MlflowError::invalid(format!(
                "part number {part} is out of range: this upload has parts 1 to {}",
                upload.num_parts
            )));
        }
        Ok(upload_id)
    })
    .await?;
    let key = part_key(&upload_id, part);
    let (_, etag) = stream_into(state.blobs.clone(), key.clone(), body, MAX_ARTIFACT_BYTES).await?;
    let answer = etag.clone();
    blocking(move || Ok(state.blobs.put(&format!("{key}.etag"), etag.as_bytes())?)).await?;
    Ok(([(header::ETAG, answer)], Json(json!({}))).into_response())
}

/// Checks the client's part list against the upload: every part from 1 to `num_parts` exactly
/// once, each with the ETag its upload answered.
fn checked_parts(
    state: &ArtifactState,
    upload_id: &str,
    upload: &OpenUpload,
    parts: &[UploadedPart],
) -> Result<Vec<String>, MlflowError> {
    if parts.is_empty() {
        return Err(MlflowError::invalid("a multipart upload completes with its parts: `parts` is empty"));
    }
    let mut sorted: Vec<&UploadedPart> = parts.iter().collect();
    sorted.sort_by_key(|part| part.part_number);
    if let Some(beyond) = sorted.iter().find(|part| part.part_number == 0 || part.part_number > upload.num_parts) {
        return Err(MlflowError::invalid(format!(
            "part {} is out of range: this upload has parts 1 to {}",
            beyond.part_number, upload.num_parts
        )));
    }
    let mut keys = Vec::with_capacity(sorted.len());
    for (index, part) in sorted.iter().enumerate() {
        let expected = index as u64 + 1;
        if part.part_number != expected {
            return Err(MlflowError::invalid(format!(
                "part {expected} is {}",
                if part.part_number < expected { "listed twice" } else { "missing" }
            )));
        }
        let etag = part.etag.trim_matches('"');
        if etag.is_empty() {
            return Err(MlflowError::invalid(format!("part {expected} has no ETag: send the one its upload answered")));
        }
        let key = part_key(upload_id, part.part_number);
        let stored = match state.blobs.get(&format!("{key}.etag")) {
            Ok(bytes) => bytes,
            Err(causeway_store::Error::NotFound(_)) => {
                return Err(MlflowError::invalid(format!("part {expected} was never uploaded")));
            }
            Err(error) => return Err(error.into()),
        };
        if etag.as_bytes() != stored.as_slice() {
            return Err(MlflowError::invalid(format!("part {expected} does not match its ETag")));
        }
        keys.push(key);
    }
    if (keys.len() as u64) < upload.num_parts {
        return Err(MlflowError::invalid(format!(
            "parts {} to {} are missing: this upload was started with {} parts",
            keys.len() + 1,
            upload.num_parts,
            upload.num_parts
        )));
    }
    Ok(keys)
}

/// Joins the parts, in order, into the artifact (streamed, never all in memory).
async fn complete_upload(
    State(state): State<ArtifactState>,
    Path(path): Path<String>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, MlflowError> {
    blocking(move || {
        let request = parse_upload(&body)?;
        let key = upload_target(&path, &request)?;
        let upload_id = upload_id_checked(request.upload_id.as_deref())?;
        let upload = open_upload(&state, &upload_id)?;
        if upload.key != key {
            return Err(MlflowError::invalid(format!("upload `{upload_id}` was started for another path")));
        }
        let parts = checked_parts(&state, &upload_id, &upload, &request.parts)?;
        state.blobs.put_joined(&key, &parts)?;
        state.blobs.delete(&format!("{UPLOADS}/{upload_id}"))?;
        Ok(Json(json!({})))
    })
    .await
}

/// Drops an upload's parts.
async fn abort_upload(
    State(state): State<ArtifactState>,
    Path(path): Path<String>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, MlflowError> {
    blocking(move || {
        let request = parse_upload(&body)?;
        upload_target(&path, &request)?;
        let upload_id = upload_id_checked(request.upload_id.as_deref())?;
        match state.blobs.delete(&format!("{UPLOADS}/{upload_id}")) {
            Ok(()) | Err(causeway_store::Error::NotFound(_)) => Ok(Json(json!({}))),
            Err(error) => Err(error.into()),
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[test]
    fn refuses_paths_that_could_escape() {
        for bad in ["", "/etc/passwd", "../x", "a/../../b", "a//b", "./a", "a\\..\\b", "a/."] {
            assert!(artifact_key(bad).is_err(), "{bad}");
        }
        assert_eq!(
            artifact_key("0/abc/artifacts/model/MLmodel").ok().as_deref(),
            Some("mlflow-artifacts/0/abc/artifacts/model/MLmodel")
        );
    }

    #[tokio::test]
    async fn a_streamed_body_is_stored_whole_or_not_at_all() {
        let directory = tempfile::tempdir().expect("tempdir");
        let blobs = BlobStore::open(directory.path()).expect("blobs");
        let (size, hash) =
            stream_into(blobs.clone(), "a/b.txt".into(), Body::from("hello world"), 100).await.expect("stored");
        assert_eq!((size, hash), (11, blake3::hash(b"hello world").to_hex().to_string()));
        let refused = stream_into(blobs.clone(), "a/b.txt".into(), Body::from("x".repeat(101)), 100).await;
        let status = refused.map(|_| ()).map_err(|error| error.into_response().status());
        assert_eq!(status, Err(StatusCode::PAYLOAD_TOO_LARGE));
        assert_eq!(blobs.get("a/b.txt").expect("earlier"), b"hello world", "the earlier file stays whole");
        let partial =
            std::fs::read_dir(directory.path().join(".causeway-partial")).expect("temporary files' directory");
        assert_eq!(partial.count(), 0, "no partial file left");
    }
}
