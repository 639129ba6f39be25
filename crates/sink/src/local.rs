//! A sink writing into a local directory.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::BodyExt;
use integrity::{Expectations, HashingBody, IntegrityError};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{
    ListStream, ListedObject, ObjectMeta, ObjectSink, PutBody, PutOptions, PutResult, SinkError,
    SinkErrorKind, validate_key,
};

const SIDECAR: &str = ".meta.json";
const PARTIAL: &str = ".partial-";

/// Writes objects as files under a root directory: each is streamed into a hidden temporary
/// file in the target directory, fsynced, then renamed (or hard-linked, for create-only) into
/// place, so a partial file never appears under the final name. Tags, metadata, size and MD5
/// go into a `<file>.meta.json` sidecar.
#[derive(Debug, Clone)]
pub struct LocalDirSink {
    root: PathBuf,
}

#[derive(Debug, Serialize, Deserialize)]
struct Sidecar {
    key: String,
    size: u64,
    md5: String,
    /// Written since the sidecar carries both digests; absent in older sidecars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
    content_type: Option<String>,
    metadata: BTreeMap<String, String>,
    tags: BTreeMap<String, String>,
}

impl fmt::Display for LocalDirSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dir:{}", self.root.display())
    }
}

impl LocalDirSink {
    /// A sink rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, op: &'static str, key: &str) -> Result<PathBuf, SinkError> {
        validate_key(key).map_err(|m| SinkError::new(SinkErrorKind::Invalid, op, key, self, m))?;
        let name = key.rsplit('/').next().unwrap_or_default();
        if name.ends_with(SIDECAR) || name.starts_with('.') {
            return Err(SinkError::new(
                SinkErrorKind::Invalid,
                op,
                key,
                self,
                "names ending in .meta.json or starting with '.' are reserved by the directory sink",
            ));
        }
        Ok(self.root.join(key))
    }

    fn io(&self, op: &'static str, key: &str, e: std::io::Error) -> SinkError {
        let kind = match e.kind() {
            std::io::ErrorKind::AlreadyExists => SinkErrorKind::AlreadyExists,
            // A full disk or a size limit does not clear up within a retry budget: fail fast
            // (nothing is left behind) and let the next run retry.
            std::io::ErrorKind::PermissionDenied
            | std::io::ErrorKind::StorageFull
            | std::io::ErrorKind::FileTooLarge
            | std::io::ErrorKind::QuotaExceeded => SinkErrorKind::StorePermanent,
            _ => SinkErrorKind::StoreTemporary,
        };
        SinkError::new(kind, op, key, self, e.to_string())
    }

    async fn write_tmp(
        &self,
        key: &str,
        tmp: &Path,
        body: PutBody,
        opts: &PutOptions,
    ) -> Result<integrity::Digests, SinkError> {
        let expect = Expectations {
            length: opts.content_length,
            md5: opts.expected_md5,
            sha256: opts.sha256,
            sha256_expected: opts.expected_sha256,
            ..Default::default()
        };
        let (mut body, handle) = HashingBody::new(body, expect);
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(tmp)
            .await
            .map_err(|e| self.io("put", key, e))?;
        let mut w = tokio::io::BufWriter::with_capacity(256 * 1024, file);
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| integrity_err(self, key, e))?;
            if let Ok(data) = frame.into_data() {
                w.write_all(&data)
                    .await
                    .map_err(|e| self.io("put", key, e))?;
            }
        }
        w.flush().await.map_err(|e| self.io("put", key, e))?;
        w.get_ref()
            .sync_all()
            .await
            .map_err(|e| self.io("put", key, e))?;
        handle.get().ok_or_else(|| {
            SinkError::new(
                SinkErrorKind::Source,
                "put",
                key,
                self,
                "body ended without digests",
            )
        })
    }
}

pub(crate) fn integrity_err(store: &dyn fmt::Display, key: &str, e: IntegrityError) -> SinkError {
    let kind = if e.is_verification_failure() {
        SinkErrorKind::Verification
    } else {
        SinkErrorKind::Source
    };
    let mut err = SinkError::new(kind, "put", key, store, e.to_string());
    err.integrity = Some(Box::new(e));
    err
}

/// Flushes a directory's entries (names created, renamed or removed in it) to disk.
async fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    tokio::fs::File::open(dir).await?.sync_all().await?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Creates `dir` and its missing ancestors under `root` so that they survive a crash: each
/// new directory's entry is flushed in its parent (a rename into a directory whose own entry
/// was never flushed can vanish with it). Returns the directories flushed, parents first.
pub(crate) async fn create_dirs_durably(root: &Path, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut d = dir;
    while !tokio::fs::try_exists(d).await.unwrap_or(false) {
        missing.push(d.to_path_buf());
        match d.parent() {
            Some(p) if d != root => d = p,
            _ => break,
        }
    }
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    tokio::fs::create_dir_all(dir).await?;
    let mut synced = Vec::new();
    for created in missing.iter().rev() {
        if let Some(parent) = created.parent() {
            sync_dir(parent).await?;
            synced.push(parent.to_path_buf());
        }
    }
    Ok(synced)
}

#[async_trait::async_trait]
impl ObjectSink for LocalDirSink {
    async fn put(
        &self,
        key: &str,
        body: PutBody,
        opts: PutOptions,
    ) -> Result<PutResult, SinkError> {
        let path = self.path("put", key)?;
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        create_dirs_durably(&self.root, &dir)
            .await
            .map_err(|e| self.io("put", key, e))?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("object");
        let tmp = dir.join(format!(".{name}{PARTIAL}{:016x}", fastrand::u64(..)));
        let digests = match self.write_tmp(key, &tmp, body, &opts).await {
            Ok(d) => d,
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(e);
            }
        };
        let placed = if opts.create_only {
            let r = tokio::fs::hard_link(&tmp, &path).await;
            let _ = tokio::fs::remove_file(&tmp).await;
            r
        } else {
            tokio::fs::rename(&tmp, &path).await
        };
        if let Err(e) = placed {
            let _ = tokio::fs::remove_file(&tmp).await;
            let mut err = self.io("put", key, e);
            if err.kind == SinkErrorKind::AlreadyExists {
                err.message = "an object already exists under this key (create-only write)".into();
            }
            return Err(err);
        }
        let sidecar = Sidecar {
            key: key.to_string(),
            size: digests.length,
            md5: digests.md5_hex(),
            sha256: digests.sha256_hex(),
            content_type: opts.content_type.clone(),
            metadata: opts.metadata.clone(),
            tags: opts.tags.clone(),
        };
        let side_path = dir.join(format!("{name}{SIDECAR}"));
        let side_tmp = dir.join(format!(
            ".{name}{SIDECAR}{PARTIAL}{:016x}",
            fastrand::u64(..)
        ));
        let json = serde_json::to_vec_pretty(&sidecar).unwrap_or_default();
        let written = async {
            let mut f = tokio::fs::File::create(&side_tmp).await?;
            f.write_all(&json).await?;
            f.sync_all().await?;
            tokio::fs::rename(&side_tmp, &side_path).await
        }
        .await;
        if let Err(e) = written {
            let _ = tokio::fs::remove_file(&side_tmp).await;
            let _ = tokio::fs::remove_file(&path).await;
            return Err(self.io("put", key, e));
        }
        // The object's and the sidecar's names are durable only once the directory is flushed;
        // a failure here means a crash could lose a write reported as done.
        if let Err(e) = sync_dir(&dir).await {
            let _ = tokio::fs::remove_file(&side_path).await;
            let _ = tokio::fs::remove_file(&path).await;
            return Err(self.io("put", key, e));
        }
        Ok(PutResult {
            size: digests.length,
            md5: digests.md5,
            etag: Some(digests.md5_hex()),
            store_verified: false,
            sha256: digests.sha256,
        })
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, SinkError> {
        let path = self.path("head", key)?;
        let meta = match tokio::fs::metadata(&path).await {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io("head", key, e)),
        };
        let side = read_sidecar(&path).await;
        Ok(Some(ObjectMeta {
            size: meta.len(),
            etag: side.as_ref().map(|s| s.md5.clone()),
            content_type: side.as_ref().and_then(|s| s.content_type.clone()),
            digests: crate::StoredDigests {
                md5: side.as_ref().map(|s| s.md5.clone()),
                sha256: side.as_ref().and_then(|s| s.sha256.clone()),
            },
            metadata: side.map(|s| s.metadata).unwrap_or_default(),
            retention: None,
        }))
    }

    async fn get(&self, key: &str) -> Result<PutBody, SinkError> {
        let path = self.path("get", key)?;
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| self.io("get", key, e))?;
        let s = futures::stream::unfold(file, |mut f| async move {
            let mut buf = vec![0u8; 64 * 1024];
            match f.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok::<_, std::io::Error>(Bytes::from(buf)), f))
                }
                Err(e) => Some((Err(e), f)),
            }
        });
        Ok(crate::stream_body(s))
    }

    async fn delete(&self, key: &str) -> Result<(), SinkError> {
        let path = self.path("delete", key)?;
        for p in [path.clone(), sidecar_path(&path)] {
            match tokio::fs::remove_file(&p).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.io("delete", key, e)),
            }
        }
        Ok(())
    }

    async fn tags(&self, key: &str) -> Result<Option<BTreeMap<String, String>>, SinkError> {
        let path = self.path("tags", key)?;
        Ok(read_sidecar(&path).await.map(|s| s.tags))
    }

    fn list<'a>(&'a self, prefix: &'a str) -> ListStream<'a> {
        let root = self.root.clone();
        let p = prefix.to_string();
        Box::pin(
            futures::stream::once(async move {
                let listed = tokio::task::spawn_blocking(move || Self::walk(&root, &p)).await;
                let items: Vec<Result<ListedObject, SinkError>> = match listed {
                    Ok(Ok(objs)) => objs.into_iter().map(Ok).collect(),
                    Ok(Err(e)) => vec![Err(self.io("list", prefix, e))],
                    Err(e) => vec![Err(SinkError::new(
                        SinkErrorKind::StoreTemporary,
                        "list",
                        prefix,
                        self,
                        e.to_string(),
                    ))],
                };
                futures::stream::iter(items)
            })
            .flatten(),
        )
    }

    async fn sweep_uploads(
        &self,
        prefix: &str,
        started: &[crate::StartedUpload],
    ) -> Result<crate::UploadSweep, SinkError> {
        let start = self.root.join(prefix.trim_end_matches('/'));
        let mut stack = vec![start];
        let mut removed = 0;
        while let Some(dir) = stack.pop() {
            let Ok(mut rd) = tokio::fs::read_dir(&dir).await else {
                continue;
            };
            while let Ok(Some(e)) = rd.next_entry().await {
                let p = e.path();
                let is_dir = e.file_type().await.map(|t| t.is_dir()).unwrap_or(false);
                if is_dir {
                    stack.push(p);
                } else if p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.') && n.contains(PARTIAL))
                    && tokio::fs::remove_file(&p).await.is_ok()
                {
                    removed += 1;
                }
            }
        }
        Ok(crate::UploadSweep {
            gone: started.to_vec(),
            temp_files_removed: removed,
            ..crate::UploadSweep::default()
        })
    }
}

impl LocalDirSink {
    /// Walks the tree under `prefix` (blocking; run on the blocking pool), skipping sidecars,
    /// temporary files and hidden names.
    fn walk(root: &Path, prefix: &str) -> std::io::Result<Vec<ListedObject>> {
        let mut out = Vec::new();
        // Start at the deepest directory the prefix names, then filter by the full prefix.
        let dir_part = match prefix.rfind('/') {
            Some(i) => &prefix[..i],
            None => "",
        };
        let mut stack = vec![root.join(dir_part)];
        while let Some(dir) = stack.pop() {
            let rd = match std::fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for e in rd {
                let e = e?;
                let name = e.file_name();
                let Some(name) = name.to_str() else { continue };
                if name.starts_with('.') {
                    continue;
                }
                let ft = e.file_type()?;
                if ft.is_dir() {
                    stack.push(e.path());
                } else if ft.is_file() && !name.ends_with(SIDECAR) {
                    let Ok(rel) = e.path().strip_prefix(root).map(|p| p.to_path_buf()) else {
                        continue;
                    };
                    let Some(key) = rel
                        .to_str()
                        .map(|k| k.replace(std::path::MAIN_SEPARATOR, "/"))
                    else {
                        continue;
                    };
                    if key.starts_with(prefix) {
                        let size = e.metadata()?.len();
                        out.push(ListedObject {
                            key,
                            size,
                            etag: None,
                        });
                    }
                }
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
}

fn sidecar_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(SIDECAR);
    PathBuf::from(s)
}

async fn read_sidecar(path: &Path) -> Option<Sidecar> {
    let bytes = tokio::fs::read(sidecar_path(path)).await.ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every directory a write creates has its entry flushed in its parent, parents first;
    /// directories that existed are not touched again.
    #[tokio::test]
    async fn created_directories_are_flushed_in_their_parents() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("archive");
        std::fs::create_dir_all(root.join("2026")).unwrap();
        let leaf = root.join("2026/11/27/conv");
        let synced = create_dirs_durably(&root, &leaf).await.unwrap();
        assert!(leaf.is_dir());
        assert_eq!(
            synced,
            [
                root.join("2026"),
                root.join("2026/11"),
                root.join("2026/11/27")
            ]
        );
        assert_eq!(
            create_dirs_durably(&root, &leaf).await.unwrap(),
            Vec::<PathBuf>::new()
        );
        // A root that does not exist yet is created and flushed in its own parent too.
        let fresh = tmp.path().join("new-root");
        let synced = create_dirs_durably(&fresh, &fresh.join("a")).await.unwrap();
        assert_eq!(synced, [tmp.path().to_path_buf(), fresh.clone()]);
    }
}
