//! Artifacts as files under one root directory (written atomically), or as objects in an
//! S3-compatible bucket: the same keys and answers on both.

use std::fs;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::s3::S3Bucket;

/// A content store of named blobs (datasets, models, profiles, log segments, MLflow artifacts).
///
/// Keys are relative `/`-separated paths; a key can never escape the store. On a local directory,
/// writes go to a temporary file first and are renamed into place, so a reader never sees half a
/// blob; on S3, a PUT is atomic by itself.
#[derive(Debug, Clone)]
pub struct BlobStore {
    backend: Backend,
}

#[derive(Debug, Clone)]
enum Backend {
    Local(PathBuf),
    S3(Arc<S3Bucket>),
}

/// Checks that `key` is a relative path of plain segments.
fn checked_key(key: &str) -> Result<&Path> {
    let relative = Path::new(key);
    let plain = !key.is_empty()
        && !key.contains('\\')
        && !key.ends_with('/')
        && relative.components().all(|component| matches!(component, Component::Normal(_)));
    if plain { Ok(relative) } else { Err(Error::InvalidKey(key.to_string())) }
}

impl BlobStore {
    /// A store rooted at the local directory `root`, created if missing.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(|source| io_error("create directory", &root, source))?;
        Ok(Self { backend: Backend::Local(root) })
    }

    /// Opens the store a URL names: `s3://bucket/prefix[?endpoint=…&region=…]` (credentials from
    /// the usual `AWS_*` variables; the bucket is created when the server allows it), or
    /// `file:///path` or a plain path for a local directory.
    pub fn open_url(url: &str) -> Result<Self> {
        Self::open_url_with(url, |name| std::env::var(name).ok())
    }

    /// [`BlobStore::open_url`] with the `AWS_*` settings read from `environment` instead of the
    /// process environment.
    pub fn open_url_with(url: &str, environment: impl Fn(&str) -> Option<String>) -> Result<Self> {
        if url.starts_with("s3://") {
            let bucket = S3Bucket::from_url(url, &environment)?;
            bucket.create_bucket()?;
            Ok(Self { backend: Backend::S3(Arc::new(bucket)) })
        } else {
            Self::open(url.strip_prefix("file://").unwrap_or(url))
        }
    }

    /// Where the blobs live, for messages.
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Local(root) => root.display().to_string(),
            Backend::S3(bucket) => bucket.describe(),
        }
    }

    fn local_path(root: &Path, key: &str) -> Result<PathBuf> {
        Ok(root.join(checked_key(key)?))
    }

    /// Writes `bytes` under `key`, replacing any earlier blob atomically.
    pub fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        match &self.backend {
            Backend::Local(root) => {
                let path = Self::local_path(root, key)?;
                if let Some(parent) = path.parent() {
                    fs::create_dir_all(parent).map_err(|source| io_error("create directory", parent, source))?;
                }
                let temporary = path.with_extension(format!("tmp-{}", std::process::id()));
                fs::write(&temporary, bytes).map_err(|source| io_error("write", &temporary, source))?;
                fs::rename(&temporary, &path).map_err(|source| io_error("rename", &path, source))
            }
            Backend::S3(bucket) => bucket.put(checked_key(key).map(|_| key)?, bytes),
        }
    }

    /// Reads the blob under `key`.
    pub fn get(&self, key: &str) -> Result<Vec<u8>> {
        let missing = || Error::NotFound(format!("blob `{key}`"));
        match &self.backend {
            Backend::Local(root) => {
                let path = Self::local_path(root, key)?;
                match fs::read(&path) {
                    Ok(bytes) => Ok(bytes),
                    Err(error)
                        if matches!(
                            error.kind(),
                            std::io::ErrorKind::NotFound
                                | std::io::ErrorKind::NotADirectory
                                | std::io::ErrorKind::IsADirectory
                        ) =>
                    {
                        Err(missing())
                    }
                    Err(source) => Err(io_error("read", &path, source)),
                }
            }
            Backend::S3(bucket) => bucket.get(checked_key(key).map(|_| key)?)?.ok_or_else(missing),
        }
    }

    /// True when a blob exists under `key`.
    pub fn contains(&self, key: &str) -> Result<bool> {
        match &self.backend {
            Backend::Local(root) => Ok(Self::local_path(root, key)?.is_file()),
            Backend::S3(bucket) => bucket.exists(checked_key(key).map(|_| key)?),
        }
    }

    /// Removes the blob (or the whole directory) under `key`; a missing key is an error.
    pub fn delete(&self, key: &str) -> Result<()> {
        match &self.backend {
            Backend::Local(root) => {
                let path = Self::local_path(root, key)?;
                let result = if path.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
                match result {
                    Ok(()) => Ok(()),
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                        Err(Error::NotFound(format!("artifact `{key}`")))
                    }
                    Err(source) => Err(io_error("delete", &path, source)),
                }
            }
            Backend::S3(bucket) => {
                checked_key(key)?;
                let mut doomed: Vec<String> =
                    bucket.list(&format!("{key}/"), false)?.objects.into_iter().map(|(name, _)| name).collect();
                if bucket.exists(key)? {
                    doomed.push(key.to_string());
                }
                if doomed.is_empty() {
                    return Err(Error::NotFound(format!("artifact `{key}`")));
                }
                doomed.iter().try_for_each(|name| bucket.delete(name))
            }
        }
    }

    /// The entries directly under the directory `prefix`: (name, is a directory, size in bytes),
    /// sorted by name. A missing directory lists nothing.
    pub fn list_directory(&self, prefix: &str) -> Result<Vec<(String, bool, u64)>> {
        let mut entries = Vec::new();
        match &self.backend {
            Backend::Local(root) => {
                let directory = if prefix.is_empty() { root.clone() } else { Self::local_path(root, prefix)? };
                if !directory.is_dir() {
                    return Ok(Vec::new());
                }
                for entry in fs::read_dir(&directory).map_err(|source| io_error("list", &directory, source))? {
                    let entry = entry.map_err(|source| io_error("list", &directory, source))?;
                    let name = entry.file_name().to_string_lossy().to_string();
                    if name.contains(".tmp-") {
                        continue;
                    }
                    let metadata = entry.metadata().map_err(|source| io_error("inspect", &entry.path(), source))?;
                    entries.push((name, metadata.is_dir(), if metadata.is_dir() { 0 } else { metadata.len() }));
                }
            }
            Backend::S3(bucket) => {
                let directory = if prefix.is_empty() {
                    String::new()
                } else {
                    format!("{}/", checked_key(prefix).map(|_| prefix)?)
                };
                let listing = bucket.list(&directory, true)?;
                let name_of = |key: &str| key.strip_prefix(directory.as_str()).unwrap_or(key).to_string();
                entries.extend(listing.objects.iter().map(|(key, size)| (name_of(key), false, *size)));
                entries.extend(listing.prefixes.iter().map(|key| (name_of(key), true, 0)));
            }
        }
        entries.sort();
        Ok(entries)
    }

    /// The keys directly and indirectly below `prefix`, sorted.
    pub fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let mut keys = Vec::new();
        match &self.backend {
            Backend::Local(root) => {
                let directory = Self::local_path(root, prefix)?;
                if directory.is_dir() {
                    collect_files(&directory, root, &mut keys)?;
                }
            }
            Backend::S3(bucket) => {
                checked_key(prefix)?;
                keys = bucket.list(&format!("{prefix}/"), false)?.objects.into_iter().map(|(key, _)| key).collect();
            }
        }
        keys.sort();
        Ok(keys)
    }
}

fn collect_files(directory: &Path, root: &Path, keys: &mut Vec<String>) -> Result<()> {
    let entries = fs::read_dir(directory).map_err(|source| io_error("list", directory, source))?;
    for entry in entries {
        let entry = entry.map_err(|source| io_error("list", directory, source))?;
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, root, keys)?;
        } else if let Ok(relative) = path.strip_prefix(root) {
            let key =
                relative.components().map(|part| part.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
            if !key.contains(".tmp-") {
                keys.push(key);
            }
        }
    }
    Ok(())
}

pub(crate) fn io_error(action: &'static str, path: &Path, source: std::io::Error) -> Error {
    Error::Io { action, path: path.display().to_string(), cause: source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_lists_and_refuses_escaping_keys() -> Result<()> {
        let directory = tempfile::tempdir().map_err(|source| io_error("tempdir", Path::new("."), source))?;
        let store = BlobStore::open(directory.path().join("blobs"))?;
        store.put("models/fraud/1.json", b"{}")?;
        store.put("models/fraud/2.json", b"[]")?;
        assert_eq!(store.get("models/fraud/2.json")?, b"[]");
        assert_eq!(store.list("models")?, vec!["models/fraud/1.json", "models/fraud/2.json"]);
        for bad in ["../x", "/etc/passwd", "a/../../b", "", "a\\..\\b", "./a"] {
            assert!(matches!(store.get(bad), Err(Error::InvalidKey(_))), "{bad}");
            assert!(matches!(store.put(bad, b"x"), Err(Error::InvalidKey(_))), "{bad}");
        }
        assert!(matches!(store.get("missing"), Err(Error::NotFound(_))));
        Ok(())
    }
}
