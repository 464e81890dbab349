//! Where the store's files live: a local directory (the default) or an S3-compatible bucket,
//! both through `object_store`, so flushing, start-up discovery, compaction, retention and
//! queries follow one code path whatever the backend.
//!
//! Every write is a single `put` (atomic on S3 and, through a staged rename, on a local disk);
//! compaction's outputs are written under temp names and renamed when committed. On a local
//! disk, files and checkpoints are also fsynced, which `object_store` does not do.

use std::collections::BTreeMap;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use datafusion::execution::runtime_env::RuntimeEnv;
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload};
use url::Url;

use crate::error::StoreError;

/// The object store holding a store's files, and where in it they are.
#[derive(Debug)]
pub struct Objects {
    store: Arc<dyn ObjectStore>,
    /// Prefix of every key of this store.
    root: Path,
    /// Scheme and authority the store is registered under for DataFusion (`file:///`,
    /// `s3://bucket/`).
    base: Url,
    /// The local directory, when the backend is the local file system.
    local: Option<PathBuf>,
}

impl Objects {
    /// Opens the location `url` (`s3://bucket/prefix`, `file:///dir`) with object_store
    /// `options` (for S3: `endpoint`, `region`, `allow_http`, `access_key_id`, … — and the
    /// `AWS_*` environment variables); without a URL, the local directory `data_dir`.
    ///
    /// ```
    /// # use meridian_analyzer::store::Objects;
    /// let dir = std::env::temp_dir().join("meridian-doc-objects");
    /// let objects = Objects::open(None, &Default::default(), &dir).unwrap();
    /// assert!(objects.to_string().ends_with("meridian-doc-objects"));
    /// ```
    pub fn open(
        url: Option<&str>,
        options: &BTreeMap<String, String>,
        data_dir: &FsPath,
    ) -> Result<Self, StoreError> {
        let bad = |reason: String| StoreError::Location {
            url: url.unwrap_or_default().to_owned(),
            reason,
        };
        let Some(url) = url.filter(|u| !u.is_empty()) else {
            return Self::local(data_dir);
        };
        let parsed = Url::parse(url).map_err(|e| bad(e.to_string()))?;
        match parsed.scheme() {
            "file" => {
                let dir = parsed
                    .to_file_path()
                    .map_err(|()| bad("not an absolute local path".into()))?;
                Self::local(&dir)
            }
            "s3" | "s3a" => {
                let bucket = parsed
                    .host_str()
                    .filter(|b| !b.is_empty())
                    .ok_or_else(|| bad("names no bucket".into()))?
                    .to_owned();
                let mut builder = AmazonS3Builder::from_env().with_url(url);
                for (key, value) in options {
                    let key = key
                        .to_ascii_lowercase()
                        .parse()
                        .map_err(|e: object_store::Error| bad(format!("option `{key}`: {e}")))?;
                    builder = builder.with_config(key, value);
                }
                let store = builder.build().map_err(|e| bad(e.to_string()))?;
                let root = Path::from_url_path(parsed.path()).map_err(|e| bad(e.to_string()))?;
                let base =
                    Url::parse(&format!("s3://{bucket}/")).map_err(|e| bad(e.to_string()))?;
                Ok(Self {
                    store: Arc::new(store),
                    root,
                    base,
                    local: None,
                })
            }
            other => Err(bad(format!(
                "scheme `{other}` is not supported (use s3:// or file://)"
            ))),
        }
    }

    fn local(dir: &FsPath) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        let dir = dir.canonicalize().map_err(|e| StoreError::io(dir, e))?;
        let root = Path::from_filesystem_path(&dir).map_err(object_store::Error::from)?;
        let base = Url::parse("file:///").map_err(|e| StoreError::Location {
            url: "file:///".into(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            store: Arc::new(LocalFileSystem::new()),
            root,
            base,
            local: Some(dir),
        })
    }

    /// The prefix of a table's keys.
    pub fn table_root(&self, table: &str) -> Path {
        self.root.clone().join(table)
    }

    /// The URL DataFusion reads the object `key` at.
    pub fn url(&self, key: &Path) -> String {
        format!("{}{}", self.base, key)
    }

    /// Makes the store readable by DataFusion sessions on `runtime`.
    pub fn register(&self, runtime: &RuntimeEnv) {
        runtime.register_object_store(&self.base, Arc::clone(&self.store));
    }

    /// The local directory, when the files are on the local file system.
    pub fn local_dir(&self) -> Option<&FsPath> {
        self.local.as_deref()
    }

    /// The object's bytes, or `None` if there is no such object.
    pub async fn get(&self, key: &Path) -> Result<Option<Bytes>, StoreError> {
        match self.store.get(key).await {
            Ok(found) => Ok(Some(found.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes an object in one step; on a local disk also durably.
    pub async fn put(&self, key: &Path, bytes: impl Into<Bytes>) -> Result<(), StoreError> {
        self.store
            .put(key, PutPayload::from_bytes(bytes.into()))
            .await?;
        self.sync(key).await
    }

    /// Renames an object (compaction's temp outputs to their final names).
    pub async fn rename(&self, from: &Path, to: &Path) -> Result<(), StoreError> {
        self.store.rename(from, to).await?;
        self.sync(to).await
    }

    /// Deletes an object; `false` if it was not there.
    pub async fn delete(&self, key: &Path) -> Result<bool, StoreError> {
        match self.store.delete(key).await {
            Ok(()) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Every object under `prefix`, at any depth.
    pub async fn list(&self, prefix: &Path) -> Result<Vec<ObjectMeta>, StoreError> {
        Ok(self.store.list(Some(prefix)).try_collect().await?)
    }

    /// fsyncs a local file and its directory (object_store renames without syncing).
    async fn sync(&self, key: &Path) -> Result<(), StoreError> {
        if self.local.is_none() {
            return Ok(());
        }
        let file = PathBuf::from(format!("/{key}"));
        tokio::task::spawn_blocking(move || {
            std::fs::File::open(&file)
                .and_then(|f| f.sync_all())
                .map_err(|e| StoreError::io(&file, e))?;
            if let Some(dir) = file.parent() {
                std::fs::File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| StoreError::io(dir, e))?;
            }
            Ok(())
        })
        .await
        .map_err(StoreError::task("object sync"))?
    }
}

impl std::fmt::Display for Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.local {
            Some(dir) => write!(f, "{}", dir.display()),
            None => write!(f, "{}{}", self.base, self.root),
        }
    }
}
