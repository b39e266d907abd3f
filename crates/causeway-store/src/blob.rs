//! Artifacts as files under one root directory (written atomically), or as objects in an
//! S3-compatible bucket: the same keys and answers on both.

use std::fs;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::s3::S3Bucket;

/// A content store of named blobs (datasets, models, profiles, log segments, MLflow artifacts).
///
/// Keys are relative `/`-separated paths of segments up to 255 bytes; a key can never escape the
/// store. On a local directory, writes go to a uniquely named temporary file in the store's
/// `.causeway-partial/` directory first, are flushed to disk and renamed into place, so a reader
/// never sees half a blob and of two concurrent writers of one key the last rename wins whole, as
/// on S3, where a PUT is atomic by itself.
#[derive(Debug, Clone)]
pub struct BlobStore {
    backend: Backend,
}

#[derive(Debug, Clone)]
enum Backend {
    Local(PathBuf),
    S3(Arc<S3Bucket>),
}

/// The directory under a local store's root that holds writes in progress; no key may enter it.
const PARTIAL: &str = ".causeway-partial";

/// The longest segment of a key, in bytes (what file systems allow for one name).
pub const MAX_SEGMENT_BYTES: usize = 255;

/// Distinguishes temporary files of one process.
static WRITES: AtomicU64 = AtomicU64::new(0);

/// Checks that `key` is a relative path of plain segments.
fn checked_key(key: &str) -> Result<&Path> {
    let relative = Path::new(key);
    let plain = !key.is_empty()
        && !key.contains('\\')
        && !key.contains('\0')
        && !key.ends_with('/')
        && key.split('/').next().is_none_or(|first| first != PARTIAL)
        && relative.components().all(|component| matches!(component, Component::Normal(_)));
    if !plain {
        return Err(Error::InvalidKey(key.to_string()));
    }
    if let Some(long) = key.split('/').find(|segment| segment.len() > MAX_SEGMENT_BYTES) {
        return Err(Error::InvalidValue(format!(
            "a path segment has {} bytes; at most {MAX_SEGMENT_BYTES} are allowed (`{}…`)",
            long.len(),
            long.chars().take(24).collect::<String>()
        )));
    }
    Ok(relative)
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
                let (temporary, mut file) = Self::temporary_file(root)?;
                let written = file.write_all(bytes).and_then(|()| file.sync_data());
                drop(file);
                Self::finish_write(key, &path, &temporary, written)
            }
            Backend::S3(bucket) => bucket.put(checked_key(key).map(|_| key)?, bytes),
        }
    }

    /// Writes what `reader` yields under `key`, replacing any earlier blob atomically, without
    /// holding it in memory (on S3, two 8 MiB chunks at a time); returns its size. When reading
    /// fails, nothing is written: the earlier blob (or none) stays.
    pub fn put_reader(&self, key: &str, reader: &mut dyn Read) -> Result<u64> {
        match &self.backend {
            Backend::Local(root) => {
                let path = Self::local_path(root, key)?;
                let (temporary, mut file) = Self::temporary_file(root)?;
                let copied = std::io::copy(reader, &mut file);
                let size = copied.as_ref().map_or(0, |size| *size);
                let written = copied.and_then(|_| file.sync_data());
                drop(file);
                Self::finish_write(key, &path, &temporary, written)?;
                Ok(size)
            }
            Backend::S3(bucket) => {
                checked_key(key)?;
                let chunks = std::iter::from_fn(|| {
                    let mut chunk = Vec::with_capacity(S3_PART_BYTES);
                    match (&mut *reader).take(S3_PART_BYTES as u64).read_to_end(&mut chunk) {
                        Ok(0) => None,
                        Ok(_) => Some(Ok(chunk)),
                        Err(source) => Some(Err(io_error("read", Path::new(key), source))),
                    }
                });
                join_on_s3(bucket, key, chunks)
            }
        }
    }

    /// Writes the blobs `parts`, in order, as one blob under `key` without holding more than one
    /// part (on S3, one part plus 8 MiB) in memory; returns its size. The parts stay.
    pub fn put_joined(&self, key: &str, parts: &[String]) -> Result<u64> {
        match &self.backend {
            Backend::Local(root) => {
                let path = Self::local_path(root, key)?;
                let (temporary, mut file) = Self::temporary_file(root)?;
                let mut size = 0;
                let mut written = Ok(());
                for part in parts {
                    let source = Self::local_path(root, part)?;
                    let copied = fs::File::open(&source).and_then(|mut input| std::io::copy(&mut input, &mut file));
                    match copied {
                        Ok(bytes) => size += bytes,
                        Err(error) => {
                            written = Err(error);
                            break;
                        }
                    }
                }
                let written = written.and_then(|()| file.sync_data());
                drop(file);
                Self::finish_write(key, &path, &temporary, written)?;
                Ok(size)
            }
            Backend::S3(bucket) => {
                checked_key(key)?;
                join_on_s3(
                    bucket,
                    key,
                    parts.iter().map(|part| bucket.get(part)?.ok_or_else(|| Error::NotFound(format!("blob `{part}`")))),
                )
            }
        }
    }

    /// A new, uniquely named file for a write in progress.
    fn temporary_file(root: &Path) -> Result<(PathBuf, fs::File)> {
        let directory = root.join(PARTIAL);
        fs::create_dir_all(&directory).map_err(|source| io_error("create directory", &directory, source))?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.subsec_nanos());
        let name = format!("{}-{}-{nanos}", std::process::id(), WRITES.fetch_add(1, Ordering::Relaxed));
        let path = directory.join(name);
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|source| io_error("create", &path, source))?;
        Ok((path, file))
    }

    /// Moves a written temporary file into place (or removes it when writing failed).
    fn finish_write(key: &str, path: &Path, temporary: &Path, written: std::io::Result<()>) -> Result<()> {
        let placed = written.map_err(|source| io_error("write", temporary, source)).and_then(|()| {
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).map_err(|source| match source.kind() {
                    std::io::ErrorKind::AlreadyExists | std::io::ErrorKind::NotADirectory => {
                        Error::InvalidValue(format!("cannot write `{key}`: a parent of it is a file"))
                    }
                    _ => io_error("create directory", parent, source),
                })?;
            }
            if path.is_dir() {
                return Err(Error::InvalidValue(format!("cannot write `{key}`: it is a directory")));
            }
            fs::rename(temporary, path).map_err(|source| match source.kind() {
                std::io::ErrorKind::IsADirectory | std::io::ErrorKind::DirectoryNotEmpty => {
                    Error::InvalidValue(format!("cannot write `{key}`: it is a directory"))
                }
                _ => io_error("rename", path, source),
            })
        });
        if placed.is_err() {
            let _ = fs::remove_file(temporary);
        }
        placed
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

    /// Opens the blob under `key` for reading, with its size: a local blob is read from its file as
    /// the reader is read (never whole in memory); an S3 object is fetched whole first.
    pub fn open_read(&self, key: &str) -> Result<(Box<dyn Read + Send>, u64)> {
        match &self.backend {
            Backend::Local(root) => {
                let path = Self::local_path(root, key)?;
                let opened = fs::File::open(&path).and_then(|file| Ok((file.metadata()?, file)));
                match opened {
                    Ok((metadata, file)) if metadata.is_file() => Ok((Box::new(file), metadata.len())),
                    Ok(_) => Err(Error::NotFound(format!("blob `{key}`"))),
                    Err(error)
                        if matches!(error.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) =>
                    {
                        Err(Error::NotFound(format!("blob `{key}`")))
                    }
                    Err(source) => Err(io_error("read", &path, source)),
                }
            }
            Backend::S3(_) => {
                let bytes = self.get(key)?;
                let size = bytes.len() as u64;
                Ok((Box::new(std::io::Cursor::new(bytes)), size))
            }
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
                    if prefix.is_empty() && name == PARTIAL {
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
        if path == root.join(PARTIAL) {
            continue;
        }
        if path.is_dir() {
            collect_files(&path, root, keys)?;
        } else if let Ok(relative) = path.strip_prefix(root) {
            let key =
                relative.components().map(|part| part.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
            keys.push(key);
        }
    }
    Ok(())
}

/// The part size a join on S3 sends (S3 refuses parts under 5 MiB but the last).
const S3_PART_BYTES: usize = 8 << 20;

/// Joins `parts` into one object under `key` with an S3 multipart upload, coalescing small parts.
fn join_on_s3(bucket: &S3Bucket, key: &str, parts: impl Iterator<Item = Result<Vec<u8>>>) -> Result<u64> {
    let mut parts = parts.peekable();
    let mut buffer: Vec<u8> = Vec::new();
    let mut size = 0_u64;
    let mut upload: Option<String> = None;
    let mut sent: Vec<(u32, String)> = Vec::new();
    let outcome = (|| {
        while let Some(part) = parts.next() {
            let part = part?;
            size += part.len() as u64;
            if buffer.is_empty() {
                buffer = part
            } else {
                buffer.extend_from_slice(&part)
            }
            let last = parts.peek().is_none();
            if last && upload.is_none() {
                return bucket.put(key, &buffer);
            }
            if buffer.len() >= S3_PART_BYTES || last {
                let id = match &upload {
                    Some(id) => id.clone(),
                    None => upload.insert(bucket.create_multipart(key)?).clone(),
                };
                let number = sent.len() as u32 + 1;
                sent.push((number, bucket.upload_part(key, &id, number, &buffer)?));
                buffer.clear();
            }
        }
        match &upload {
            Some(id) => bucket.complete_multipart(key, id, &sent),
            None => bucket.put(key, &buffer),
        }
    })();
    if outcome.is_err()
        && let Some(id) = &upload
    {
        let _ = bucket.abort_multipart(key, id);
    }
    outcome.map(|()| size)
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

    #[test]
    fn writes_in_progress_never_show_and_names_that_look_temporary_do() -> Result<()> {
        let directory = tempfile::tempdir().map_err(|source| io_error("tempdir", Path::new("."), source))?;
        let store = BlobStore::open(directory.path().join("blobs"))?;
        // Names like the old temporary files are ordinary artifacts now.
        store.put("runs/model.tmp-42", b"mine")?;
        store.put("runs/model.json", b"{}")?;
        assert_eq!(store.list("runs")?, vec!["runs/model.json", "runs/model.tmp-42"]);
        assert!(store.list_directory("")?.iter().all(|(name, _, _)| name != PARTIAL));
        assert!(matches!(store.put(&format!("{PARTIAL}/x"), b"x"), Err(Error::InvalidKey(_))));
        assert!(matches!(store.put(&format!("a/{}", "b".repeat(256)), b"x"), Err(Error::InvalidValue(_))));
        // Onto a directory, or under a file: refused without a server path.
        for (key, why) in [("runs", "is a directory"), ("runs/model.json/inner", "is a file")] {
            match store.put(key, b"x") {
                Err(Error::InvalidValue(message)) => {
                    assert!(message.contains(why) && !message.contains("blobs/"), "{message}")
                }
                other => panic!("{key}: {other:?}"),
            }
        }
        Ok(())
    }

    #[test]
    fn joins_parts_by_streaming_them_into_place() -> Result<()> {
        let directory = tempfile::tempdir().map_err(|source| io_error("tempdir", Path::new("."), source))?;
        let store = BlobStore::open(directory.path().join("blobs"))?;
        store.put("parts/1", b"hello ")?;
        store.put("parts/2", b"world")?;
        assert_eq!(store.put_joined("joined/file", &["parts/1".into(), "parts/2".into()])?, 11);
        assert_eq!(store.get("joined/file")?, b"hello world");
        assert!(matches!(store.put_joined("joined/other", &["parts/3".into()]), Err(Error::Io { .. })));
        assert!(!store.contains("joined/other")?, "a failed join leaves nothing behind");
        Ok(())
    }
}
