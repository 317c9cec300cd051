//! store: data files → the table's object store (local disk, S3, ADLS, GCS).
//!
//! Contract:
//! - When an upload resolves `Ok(size)`, the file is complete at its path under the table root (for a local
//!   table, fsync'd together with its directory, so it survives a machine crash, not only a process crash).
//! - A file is never referenced by the log before its upload succeeded. A failed or abandoned multipart upload
//!   is aborted (its parts are deleted by the store); at worst an orphan object stays, which no reader sees and
//!   `vacuum` removes.
//! - Bytes are streamed: a file's bytes reach the store in parts of `part_size` while it is still being encoded,
//!   with at most `concurrency` parts in flight; the encoder waits (bounded memory) when the store is slower.
//!   Files smaller than one part are written with a single PUT.
//! - Every store operation is bounded by `timeout`: a stalled store fails the upload (its requests get 503 +
//!   Retry-After) instead of hanging it. Transient errors are retried with backoff by the object store client
//!   itself (`max_retries`, `retry_timeout` storage options) before that.

mod file;
mod retries;

use crate::settings::{parse_duration, parse_size, InvalidSetting};

pub(crate) use file::{FileDestination, StreamedFile};
pub(crate) use retries::store_retries;
pub use retries::StoreRetries;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload, WriteMultipart};
use tokio::sync::mpsc;
use url::Url;

/// Why a data file could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("object store, {path}: {source}")]
    Upload {
        path: String,
        #[source]
        source: object_store::Error,
    },
    #[error("uploading {path}: the store did not answer within {timeout:?}")]
    Timeout { path: String, timeout: Duration },
    #[error("uploading {path}: the encoder abandoned the file")]
    Abandoned { path: String },
    #[error("syncing {path} to disk: {source}")]
    Sync {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// How data files are uploaded.
#[derive(Debug, Clone, Copy)]
pub struct UploadConfig {
    /// Multipart part size (S3 needs at least 5 MiB for every part but the last).
    pub(crate) part_size: usize,
    /// Parts of one file in flight at once.
    pub(crate) concurrency: usize,
    /// Longest wait for any one store operation before the upload is failed.
    pub(crate) timeout: Duration,
}

impl Default for UploadConfig {
    fn default() -> Self {
        UploadConfig { part_size: 16 * 1024 * 1024, concurrency: 4, timeout: Duration::from_secs(60) }
    }
}

/// Smallest part S3 (and so every store we target) accepts for all parts but the last.
pub(crate) const MIN_PART_SIZE: usize = 5 * 1024 * 1024;

/// Largest part S3 accepts.
const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;

/// Flags of data file uploads.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Uploads")]
pub(crate) struct UploadArgs {
    /// Data files larger than this go to the store as multipart uploads in parts of this size (at least 5MiB).
    #[arg(long, env = "OTEL_DELTA_UPLOAD_PART_SIZE", default_value = "16MiB", value_parser = parse_size)]
    upload_part_size: u64,
    /// Parts of one file uploaded at once.
    #[arg(long, env = "OTEL_DELTA_UPLOAD_CONCURRENCY", default_value = "4")]
    upload_concurrency: usize,
    /// Longest wait for any one store operation; past it the upload fails and its requests get 503.
    #[arg(long, env = "OTEL_DELTA_UPLOAD_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    upload_timeout: Duration,
}

impl UploadArgs {
    pub(crate) fn resolve(&self) -> Result<UploadConfig, InvalidSetting> {
        if (self.upload_part_size as usize) < MIN_PART_SIZE || self.upload_part_size > MAX_PART_SIZE {
            return Err(InvalidSetting::new("--upload-part-size", "must be between 5MiB and 5GiB (S3's limits)"));
        }
        if self.upload_concurrency == 0 {
            return Err(InvalidSetting::new("--upload-concurrency", "must be above zero"));
        }
        if self.upload_timeout.is_zero() {
            return Err(InvalidSetting::new("--upload-timeout", "must be above zero"));
        }
        Ok(UploadConfig {
            part_size: self.upload_part_size as usize,
            concurrency: self.upload_concurrency,
            timeout: self.upload_timeout,
        })
    }
}

/// The table root's object store.
#[derive(Clone)]
pub(crate) struct Store {
    object_store: Arc<dyn ObjectStore>,
    /// The table root on local disk, when the table is local: files are fsync'd there.
    local_root: Option<PathBuf>,
}

impl Store {
    /// `object_store` must be rooted at the table (paths are relative to the table root).
    pub(crate) fn new(object_store: Arc<dyn ObjectStore>, table_url: &Url) -> Self {
        let local_root = (table_url.scheme() == "file").then(|| table_url.to_file_path().ok()).flatten();
        Store { object_store, local_root }
    }

    /// Read a whole file under the table root.
    pub(crate) async fn get(&self, relative_path: &str) -> Result<Bytes, StoreError> {
        let err = |source| StoreError::Upload { path: relative_path.to_owned(), source };
        let path = Path::from(relative_path);
        self.object_store.get(&path).await.map_err(err)?.bytes().await.map_err(err)
    }

    /// Delete a file under the table root (one never committed).
    pub(crate) async fn delete(&self, relative_path: &str) -> Result<(), StoreError> {
        let path = Path::from(relative_path);
        self.object_store
            .delete(&path)
            .await
            .map_err(|source| StoreError::Upload { path: relative_path.to_owned(), source })
    }

    /// Delete files under the table root (unreferenced ones, for vacuum); files already gone are not an error.
    pub(crate) async fn delete_all(&self, relative_paths: &[String]) -> Result<(), StoreError> {
        use futures::{StreamExt as _, TryStreamExt as _};
        let paths: Vec<object_store::Result<Path>> =
            relative_paths.iter().map(|p| Ok(Path::from(p.as_str()))).collect();
        let paths = futures::stream::iter(paths).boxed();
        self.object_store
            .delete_stream(paths)
            .or_else(|e| async move {
                match e {
                    object_store::Error::NotFound { .. } => Ok(Path::default()),
                    source => Err(StoreError::Upload { path: "(vacuum)".to_owned(), source }),
                }
            })
            .try_collect::<Vec<_>>()
            .await
            .map(drop)
    }

    /// Start streaming a file to `relative_path` on `runtime`; feed it from any thread with [`Upload::send`].
    pub(crate) fn begin(
        &self,
        runtime: &tokio::runtime::Handle,
        relative_path: String,
        config: UploadConfig,
    ) -> Upload {
        // Two parts may wait in the channel beside the `concurrency` in flight: the encoder never runs far ahead.
        let (chunks, rx) = mpsc::channel(2);
        let task = runtime.spawn(self.clone().upload(relative_path.clone(), rx, config));
        Upload { path: relative_path, chunks: Some(chunks), task }
    }

    async fn upload(
        self,
        relative_path: String,
        mut chunks: mpsc::Receiver<Chunk>,
        config: UploadConfig,
    ) -> UploadResult {
        let path = Path::from(relative_path.as_str());
        let part_size = config.part_size.max(MIN_PART_SIZE);
        let mut head: Vec<Bytes> = Vec::new();
        let mut head_len = 0usize;
        let mut multipart: Option<WriteMultipart> = None;
        let mut size = 0u64;
        let finished = loop {
            let Some(chunk) = chunks.recv().await else { break false };
            let (bytes, last) = match chunk {
                Chunk::Bytes(b) => (b, false),
                Chunk::Last(b) => (b, true),
            };
            size += bytes.len() as u64;
            if let Some(upload) = multipart.as_mut() {
                upload.put(bytes);
            } else {
                head_len += bytes.len();
                head.push(bytes);
                if head_len >= part_size {
                    // Past one part: this file goes up in parts.
                    let started = bounded(&relative_path, config.timeout, self.object_store.put_multipart(&path)).await;
                    let mut upload = WriteMultipart::new_with_chunk_size(started?, part_size);
                    head.drain(..).for_each(|b| upload.put(b));
                    multipart = Some(upload);
                }
            }
            if let Some(upload) = multipart.as_mut() {
                let waited =
                    bounded(&relative_path, config.timeout, upload.wait_for_capacity(config.concurrency)).await;
                if let Err(e) = waited {
                    abort(multipart, &relative_path).await;
                    return Err(e);
                }
            }
            if last {
                break true;
            }
        };
        if !finished {
            abort(multipart, &relative_path).await;
            return Err(StoreError::Abandoned { path: relative_path });
        }
        match multipart {
            Some(upload) => bounded(&relative_path, config.timeout, upload.finish()).await.map(drop)?,
            None => {
                let payload: PutPayload = head.into_iter().collect();
                bounded(&relative_path, config.timeout, self.object_store.put(&path, payload)).await.map(drop)?
            }
        }
        self.sync_local_file(&relative_path).await?;
        Ok(size)
    }

    /// Flush a file the Delta log wrote (a commit) to disk, for local tables.
    pub(crate) async fn sync_log_entry(&self, relative_path: &str) -> Result<(), StoreError> {
        self.sync_local_file(relative_path).await
    }

    /// A new table's first log entry, the log folder and the table folder, made durable (local disk only).
    pub(crate) async fn sync_created_table(&self) -> Result<(), StoreError> {
        self.sync_log_entry("_delta_log/00000000000000000000.json").await?;
        match &self.local_root {
            Some(root) => sync_local(root.join("_delta_log")).await,
            None => Ok(()),
        }
    }

    /// Delete the staging files of multipart uploads a crashed process left in a local table folder
    /// (`<data file>#<n>`, which object_store renames into place only when an upload completes), once older than
    /// `older_than` (no live upload is that old: uploads time out before). Returns how many were deleted. Object
    /// stores keep incomplete multipart uploads out of sight instead: their lifecycle rules expire them.
    pub(crate) async fn remove_stale_staging_files(&self, older_than: Duration) -> Result<usize, StoreError> {
        let Some(root) = self.local_root.clone() else { return Ok(0) };
        let sweep = move || -> std::io::Result<usize> {
            let mut removed = 0;
            for entry in std::fs::read_dir(&root)? {
                let entry = entry?;
                let name = entry.file_name();
                let staging = name.to_str().is_some_and(|n| n.starts_with("part-") && n.contains('#'));
                let age = entry.metadata()?.modified()?.elapsed().unwrap_or_default();
                if staging && age > older_than {
                    std::fs::remove_file(entry.path())?;
                    removed += 1;
                }
            }
            Ok(removed)
        };
        let local_root = self.local_root.clone().unwrap_or_default();
        let error = |source| StoreError::Sync { path: local_root.clone(), source };
        tokio::task::spawn_blocking(sweep).await.map_err(|e| error(std::io::Error::other(e)))?.map_err(error)
    }

    async fn sync_local_file(&self, relative_path: &str) -> Result<(), StoreError> {
        match &self.local_root {
            Some(root) => sync_local(root.join(relative_path)).await,
            None => Ok(()),
        }
    }
}

type UploadResult = Result<u64, StoreError>;

enum Chunk {
    Bytes(Bytes),
    Last(Bytes),
}

/// A file being streamed to the store. Dropping it without [`Upload::finish`] aborts the upload.
pub(crate) struct Upload {
    path: String,
    chunks: Option<mpsc::Sender<Chunk>>,
    task: tokio::task::JoinHandle<UploadResult>,
}

/// A file whose last bytes were handed over: await it for the outcome.
pub(crate) struct FinishedUpload {
    pub(crate) path: String,
    task: tokio::task::JoinHandle<UploadResult>,
}

impl Upload {
    #[cfg(test)]
    fn path(&self) -> &str {
        &self.path
    }

    /// Hand the next bytes of the file over; blocks while the store is behind. Call from a plain thread, not
    /// from the runtime. After a failure further bytes are dropped: the outcome is reported by `finish`.
    pub(crate) fn send(&mut self, bytes: Bytes) {
        if let Some(chunks) = &self.chunks {
            if chunks.blocking_send(Chunk::Bytes(bytes)).is_err() {
                self.chunks = None;
            }
        }
    }

    /// Hand the file's last bytes over.
    pub(crate) fn finish(mut self, tail: Bytes) -> FinishedUpload {
        if let Some(chunks) = self.chunks.take() {
            let _ = chunks.blocking_send(Chunk::Last(tail));
        }
        FinishedUpload { path: self.path, task: self.task }
    }
}

impl FinishedUpload {
    /// The file's size once it is complete in the store.
    pub(crate) async fn wait(self) -> Result<u64, StoreError> {
        match self.task.await {
            Ok(result) => result,
            Err(e) => Err(StoreError::Upload { path: self.path, source: object_store::Error::JoinError { source: e } }),
        }
    }
}

/// Await a store operation for at most `timeout`.
async fn bounded<T>(
    path: &str,
    timeout: Duration,
    operation: impl Future<Output = object_store::Result<T>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(timeout, operation).await {
        Ok(result) => result.map_err(|source| StoreError::Upload { path: path.to_owned(), source }),
        Err(_) => Err(StoreError::Timeout { path: path.to_owned(), timeout }),
    }
}

/// Abort a multipart upload, so the store deletes its parts. Best effort: a store that cannot abort expires
/// incomplete uploads by its own lifecycle rules.
async fn abort(multipart: Option<WriteMultipart>, path: &str) {
    if let Some(upload) = multipart {
        if let Err(e) = tokio::time::timeout(Duration::from_secs(30), upload.abort()).await.unwrap_or(Ok(())) {
            tracing::warn!(path, error = %e, "aborting a failed multipart upload failed");
        }
    }
}

/// fsync a file and its directory (the rename that published it lives in the directory).
async fn sync_local(file: PathBuf) -> Result<(), StoreError> {
    tokio::task::spawn_blocking(move || {
        let sync = |p: &std::path::Path| {
            std::fs::File::open(p)
                .and_then(|f| f.sync_all())
                .map_err(|source| StoreError::Sync { path: p.to_owned(), source })
        };
        sync(&file)?;
        if let Some(dir) = file.parent() {
            sync(dir)?;
        }
        Ok(())
    })
    .await
    .map_err(|e| StoreError::Sync { path: PathBuf::new(), source: std::io::Error::other(e) })?
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    fn store() -> (Store, Arc<InMemory>) {
        let memory = Arc::new(InMemory::new());
        (Store::new(memory.clone(), &Url::parse("memory:///t/").unwrap()), memory)
    }

    fn config() -> UploadConfig {
        UploadConfig { part_size: MIN_PART_SIZE, concurrency: 2, timeout: Duration::from_secs(10) }
    }

    fn bytes(len: usize, seed: u8) -> Bytes {
        Bytes::from((0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect::<Vec<_>>())
    }

    async fn stored(memory: &InMemory, path: &str) -> Option<Bytes> {
        memory.get(&Path::from(path)).await.ok()?.bytes().await.ok()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_large_file_goes_up_in_parts_and_arrives_whole() {
        let (store, memory) = store();
        let parts: Vec<Bytes> = (0..7).map(|i| bytes(2 * 1024 * 1024 + 17, i)).collect();
        let handle = tokio::runtime::Handle::current();
        let sent = parts.clone();
        let finished = tokio::task::spawn_blocking(move || {
            let mut upload = store.begin(&handle, "big.parquet".into(), config());
            for p in &sent[..6] {
                upload.send(p.clone());
            }
            upload.finish(sent[6].clone())
        })
        .await
        .unwrap();
        let size = finished.wait().await.unwrap();
        let expected: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
        assert_eq!(size, expected.len() as u64);
        assert_eq!(stored(&memory, "big.parquet").await.unwrap().as_ref(), expected.as_slice());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_small_file_is_one_put() {
        let (store, memory) = store();
        let handle = tokio::runtime::Handle::current();
        let finished = tokio::task::spawn_blocking(move || {
            let mut upload = store.begin(&handle, "small.parquet".into(), config());
            upload.send(Bytes::from_static(b"PAR1"));
            upload.finish(Bytes::from_static(b"tail"))
        })
        .await
        .unwrap();
        assert_eq!(finished.wait().await.unwrap(), 8);
        assert_eq!(stored(&memory, "small.parquet").await.unwrap().as_ref(), b"PAR1tail");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_abandoned_upload_fails_and_leaves_no_file() {
        let (store, memory) = store();
        let handle = tokio::runtime::Handle::current();
        let task = tokio::task::spawn_blocking(move || {
            let mut upload = store.begin(&handle, "gone.parquet".into(), config());
            upload.send(bytes(6 * 1024 * 1024, 1));
            let path = upload.path().to_owned();
            // Dropped without finish: the encoder gave up on this file.
            let Upload { task, .. } = upload;
            FinishedUpload { path, task }
        });
        let result = task.await.unwrap().wait().await;
        assert!(matches!(result, Err(StoreError::Abandoned { .. })), "{result:?}");
        assert!(stored(&memory, "gone.parquet").await.is_none());
    }

    #[tokio::test]
    async fn stale_staging_files_of_crashed_uploads_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let url = Url::from_directory_path(dir.path()).unwrap();
        let local = Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap());
        let store = Store::new(local, &url);
        let old = std::time::SystemTime::now() - Duration::from_secs(3600);
        for name in ["part-1.parquet#1", "part-2.parquet#7", "part-3.parquet", "notes#1"] {
            let file = std::fs::File::create(dir.path().join(name)).unwrap();
            file.set_modified(old).unwrap();
        }
        std::fs::File::create(dir.path().join("part-4.parquet#1")).unwrap(); // an upload in progress
        assert_eq!(store.remove_stale_staging_files(Duration::from_secs(60)).await.unwrap(), 2);
        let mut left: Vec<_> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(left, ["notes#1", "part-3.parquet", "part-4.parquet#1"]);
    }
}
