//! store: data files → the table's object store.
//!
//! Contract: when [`Store::put`] returns `Ok`, the file is complete at its path under the table root (for a
//! local table, fsync'd together with its directory, so it survives a machine crash, not only a process
//! crash). A file is never referenced by the log before `put` succeeded; a failed upload leaves at most an
//! orphan that no reader sees.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload};
use url::Url;

/// Why a data file could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("uploading {path}: {source}")]
    Upload {
        path: String,
        #[source]
        source: object_store::Error,
    },
    #[error("syncing {path} to disk: {source}")]
    Sync {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The table root's object store.
#[derive(Clone)]
pub struct Store {
    object_store: Arc<dyn ObjectStore>,
    /// The table root on local disk, when the table is local: files are fsync'd there.
    local_root: Option<PathBuf>,
}

impl Store {
    /// `object_store` must be rooted at the table (paths are relative to the table root).
    pub fn new(object_store: Arc<dyn ObjectStore>, table_url: &Url) -> Self {
        let local_root = (table_url.scheme() == "file").then(|| table_url.to_file_path().ok()).flatten();
        Store { object_store, local_root }
    }

    /// Write a whole file at `relative_path` under the table root.
    pub async fn put(&self, relative_path: &str, bytes: Bytes) -> Result<(), StoreError> {
        let path = Path::from(relative_path);
        self.object_store
            .put(&path, PutPayload::from_bytes(bytes))
            .await
            .map_err(|source| StoreError::Upload { path: relative_path.to_owned(), source })?;
        if let Some(root) = &self.local_root {
            sync_local(root.join(relative_path)).await?;
        }
        Ok(())
    }

    /// Flush a file the Delta log wrote (a commit) to disk, for local tables.
    pub async fn sync_log_entry(&self, relative_path: &str) -> Result<(), StoreError> {
        match &self.local_root {
            Some(root) => sync_local(root.join(relative_path)).await,
            None => Ok(()),
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
