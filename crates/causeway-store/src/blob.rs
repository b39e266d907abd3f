//! Artifacts as files under one root directory, written atomically.

use std::fs;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// A content store of named blobs (datasets, models, profiles, log segments) under a root directory.
///
/// Keys are relative `/`-separated paths; a key can never escape the root. Writes go to a
/// temporary file first and are renamed into place, so a reader never sees half a blob.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

impl BlobStore {
    /// A store rooted at `root`, created if missing.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(|source| io_error("create directory", &root, source))?;
        Ok(Self { root })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file path of `key`, after checking the key stays inside the root.
    pub fn path(&self, key: &str) -> Result<PathBuf> {
        let relative = Path::new(key);
        let plain = !key.is_empty()
            && !key.contains('\\')
            && relative.components().all(|component| matches!(component, Component::Normal(_)));
        if !plain {
            return Err(Error::InvalidKey(key.to_string()));
        }
        Ok(self.root.join(relative))
    }

    /// Writes `bytes` under `key`, replacing any earlier blob atomically.
    pub fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        let path = self.path(key)?;
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|source| io_error("create directory", parent, source))?;
        }
        let temporary = path.with_extension(format!("tmp-{}", std::process::id()));
        fs::write(&temporary, bytes).map_err(|source| io_error("write", &temporary, source))?;
        fs::rename(&temporary, &path).map_err(|source| io_error("rename", &path, source))
    }

    /// Reads the blob under `key`.
    pub fn get(&self, key: &str) -> Result<Vec<u8>> {
        let path = self.path(key)?;
        match fs::read(&path) {
            Ok(bytes) => Ok(bytes),
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory | std::io::ErrorKind::IsADirectory
                ) =>
            {
                Err(Error::NotFound(format!("blob `{key}`")))
            }
            Err(source) => Err(io_error("read", &path, source)),
        }
    }

    /// True when a blob exists under `key`.
    pub fn contains(&self, key: &str) -> Result<bool> {
        Ok(self.path(key)?.is_file())
    }

    /// Removes the blob (or the whole directory) under `key`; a missing key is an error.
    pub fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        let result = if path.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
        match result {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                Err(Error::NotFound(format!("artifact `{key}`")))
            }
            Err(source) => Err(io_error("delete", &path, source)),
        }
    }

    /// The entries directly under the directory `prefix`: (name, is a directory, size in bytes),
    /// sorted by name. A missing directory lists nothing.
    pub fn list_directory(&self, prefix: &str) -> Result<Vec<(String, bool, u64)>> {
        let directory = if prefix.is_empty() { self.root.clone() } else { self.path(prefix)? };
        if !directory.is_dir() {
            return Ok(Vec::new());
        }
        let mut entries = Vec::new();
        for entry in fs::read_dir(&directory).map_err(|source| io_error("list", &directory, source))? {
            let entry = entry.map_err(|source| io_error("list", &directory, source))?;
            let name = entry.file_name().to_string_lossy().to_string();
            if name.contains(".tmp-") {
                continue;
            }
            let metadata = entry.metadata().map_err(|source| io_error("inspect", &entry.path(), source))?;
            entries.push((name, metadata.is_dir(), if metadata.is_dir() { 0 } else { metadata.len() }));
        }
        entries.sort();
        Ok(entries)
    }

    /// The keys directly and indirectly below `prefix`, sorted.
    pub fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let directory = self.path(prefix)?;
        let mut keys = Vec::new();
        if directory.is_dir() {
            collect_files(&directory, &self.root, &mut keys)?;
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
    Error::Io { action, path: path.display().to_string(), source }
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
            assert!(matches!(store.path(bad), Err(Error::InvalidKey(_))), "{bad}");
        }
        assert!(matches!(store.get("missing"), Err(Error::NotFound(_))));
        Ok(())
    }
}
