//! MLflow's proxied artifact API (`/api/2.0/mlflow-artifacts/artifacts/...`): upload, download,
//! list and delete, on the blob store under `mlflow-artifacts/`. Paths can never leave that root:
//! `..`, `.`, empty and absolute segments are refused after percent-decoding.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post, put};
use causeway_store::BlobStore;
use serde_json::json;

use crate::mlflow::MlflowError;

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

/// The artifact routes.
pub fn router(blobs: BlobStore) -> Router {
    Router::new()
        .route("/api/2.0/mlflow-artifacts/artifacts", get(list))
        .route("/api/2.0/mlflow-artifacts/artifacts/", get(list))
        .route("/api/2.0/mlflow-artifacts/artifacts/{*path}", get(download).put(upload).delete(remove))
        .route("/api/2.0/mlflow-artifacts/mpu/create/{*path}", post(create_upload))
        .route("/api/2.0/mlflow-artifacts/mpu/upload/{upload_id}/{part}", put(upload_part))
        .route("/api/2.0/mlflow-artifacts/mpu/complete/{*path}", post(complete_upload))
        .route("/api/2.0/mlflow-artifacts/mpu/abort/{*path}", post(abort_upload))
        .layer(DefaultBodyLimit::max(MAX_ARTIFACT_BYTES))
        .with_state(blobs)
}

/// Checks an artifact path and returns its blob key.
pub fn artifact_key(path: &str) -> Result<String, MlflowError> {
    let trimmed = path.trim_end_matches('/');
    let safe = !trimmed.is_empty()
        && !trimmed.starts_with('/')
        && !trimmed.contains('\\')
        && !trimmed.contains('\0')
        && trimmed.split('/').all(|segment| !segment.is_empty() && segment != "." && segment != "..");
    if !safe {
        return Err(MlflowError::invalid(format!(
            "invalid artifact path `{path}`: use a relative path without `.`, `..` or empty segments"
        )));
    }
    Ok(format!("{ROOT}/{trimmed}"))
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, MlflowError> + Send + 'static,
) -> Result<T, MlflowError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|error| Err(MlflowError::internal(format!("artifact task failed: {error}"))))
}

async fn upload(
    State(blobs): State<BlobStore>,
    Path(path): Path<String>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, MlflowError> {
    blocking(move || {
        let key = artifact_key(&path)?;
        blobs.put(&key, &body)?;
        Ok(Json(json!({})))
    })
    .await
}

async fn download(State(blobs): State<BlobStore>, Path(path): Path<String>) -> Result<Response, MlflowError> {
    blocking(move || {
        let key = artifact_key(&path)?;
        let bytes = blobs.get(&key)?;
        Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
    })
    .await
}

async fn remove(
    State(blobs): State<BlobStore>,
    Path(path): Path<String>,
) -> Result<Json<serde_json::Value>, MlflowError> {
    blocking(move || {
        blobs.delete(&artifact_key(&path)?)?;
        Ok(Json(json!({})))
    })
    .await
}

async fn list(
    State(blobs): State<BlobStore>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, MlflowError> {
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

#[derive(serde::Deserialize)]
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

#[derive(serde::Deserialize)]
struct UploadedPart {
    part_number: u64,
    #[serde(default)]
    etag: String,
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
        None => Err(MlflowError::invalid("missing value for required parameter 'path'")),
    }
}

/// Parses a complete/abort request: the request, the artifact's blob key and the upload id.
fn existing_upload(path: &str, body: &Bytes) -> Result<(UploadRequest, String, String), MlflowError> {
    let request = parse_upload(body)?;
    let key = upload_target(path, &request)?;
    let upload_id = upload_id_checked(request.upload_id.as_deref())?;
    Ok((request, key, upload_id))
}

/// Starts a multipart upload: answers one upload URL per part on this server.
async fn create_upload(
    State(blobs): State<BlobStore>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<serde_json::Value>, MlflowError> {
    let host = headers.get(header::HOST).and_then(|value| value.to_str().ok()).unwrap_or("127.0.0.1").to_string();
    blocking(move || {
        let request = parse_upload(&body)?;
        let key = upload_target(&path, &request)?;
        let parts = request.num_parts.unwrap_or(1);
        if parts == 0 || parts > MAX_PARTS {
            return Err(MlflowError::invalid(format!("num_parts must be between 1 and {MAX_PARTS}")));
        }
        let upload_id = blake3::hash(format!("{key}{:?}{}", std::time::SystemTime::now(), std::process::id()).as_bytes()).to_hex()[..32].to_string();
        blobs.put(&format!("{UPLOADS}/{upload_id}/target"), key.as_bytes())?;
        let credentials: Vec<serde_json::Value> = (1..=parts)
            .map(|part| json!({"url": format!("http://{host}{PART_ROUTE_PREFIX}{upload_id}/{part}"), "part_number": part, "headers": {}}))
            .collect();
        Ok(Json(json!({"upload_id": upload_id, "credentials": credentials})))
    })
    .await
}

/// Stores one part; answers its ETag (the BLAKE3 of its bytes).
async fn upload_part(
    State(blobs): State<BlobStore>,
    Path((upload_id, part)): Path<(String, u64)>,
    body: Bytes,
) -> Result<Response, MlflowError> {
    blocking(move || {
        let upload_id = upload_id_checked(Some(&upload_id))?;
        if !blobs.contains(&format!("{UPLOADS}/{upload_id}/target"))? {
            return Err(MlflowError::from(causeway_store::Error::NotFound(format!("multipart upload `{upload_id}`"))));
        }
        if part == 0 || part > MAX_PARTS {
            return Err(MlflowError::invalid(format!("part number must be between 1 and {MAX_PARTS}")));
        }
        blobs.put(&format!("{UPLOADS}/{upload_id}/part-{part:05}"), &body)?;
        let etag = blake3::hash(&body).to_hex().to_string();
        Ok(([(header::ETAG, etag)], Json(json!({}))).into_response())
    })
    .await
}

/// Joins the parts, in order, into the artifact; checks every part's ETag.
async fn complete_upload(
    State(blobs): State<BlobStore>,
    Path(path): Path<String>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, MlflowError> {
    blocking(move || {
        let (request, key, upload_id) = existing_upload(&path, &body)?;
        let target = blobs.get(&format!("{UPLOADS}/{upload_id}/target"))?;
        if target != key.as_bytes() {
            return Err(MlflowError::invalid(format!("upload `{upload_id}` was started for another path")));
        }
        let mut parts = request.parts;
        parts.sort_by_key(|part| part.part_number);
        let mut joined = Vec::new();
        for (index, part) in parts.iter().enumerate() {
            if part.part_number != index as u64 + 1 {
                return Err(MlflowError::invalid(format!("part {} is missing", index + 1)));
            }
            let bytes = blobs.get(&format!("{UPLOADS}/{upload_id}/part-{:05}", part.part_number))?;
            if !part.etag.is_empty() && part.etag.trim_matches('"') != blake3::hash(&bytes).to_hex().as_str() {
                return Err(MlflowError::invalid(format!("part {} does not match its ETag", part.part_number)));
            }
            joined.extend_from_slice(&bytes);
        }
        blobs.put(&key, &joined)?;
        blobs.delete(&format!("{UPLOADS}/{upload_id}"))?;
        Ok(Json(json!({})))
    })
    .await
}

/// Drops an upload's parts.
async fn abort_upload(
    State(blobs): State<BlobStore>,
    Path(path): Path<String>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, MlflowError> {
    blocking(move || {
        let (_, _, upload_id) = existing_upload(&path, &body)?;
        match blobs.delete(&format!("{UPLOADS}/{upload_id}")) {
            Ok(()) | Err(causeway_store::Error::NotFound(_)) => Ok(Json(json!({}))),
            Err(error) => Err(error.into()),
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
