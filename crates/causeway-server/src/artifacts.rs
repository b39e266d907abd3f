//! MLflow's proxied artifact API (`/api/2.0/mlflow-artifacts/artifacts/...`): upload, download,
//! list and delete, on the blob store under `mlflow-artifacts/`. Paths can never leave that root:
//! `..`, `.`, empty and absolute segments are refused after percent-decoding.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use causeway_store::BlobStore;
use serde_json::json;

use crate::mlflow::MlflowError;

/// The largest artifact accepted in one upload.
pub const MAX_ARTIFACT_BYTES: usize = 256 * 1024 * 1024;

/// Where proxied artifacts live in the blob store.
const ROOT: &str = "mlflow-artifacts";

/// The artifact routes.
pub fn router(blobs: BlobStore) -> Router {
    Router::new()
        .route("/api/2.0/mlflow-artifacts/artifacts", get(list))
        .route("/api/2.0/mlflow-artifacts/artifacts/", get(list))
        .route("/api/2.0/mlflow-artifacts/artifacts/{*path}", get(download).put(upload).delete(remove))
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
