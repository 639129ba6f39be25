//! Anchors: the digest of every index part written, kept outside the archive's bucket (a file,
//! or objects in another bucket, under Object Lock where that bucket has it), so that a writer
//! with access to the archive alone cannot remove the newest parts unnoticed.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use futures::TryStreamExt;
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use sink::{ObjectSink, PutOptions, SinkErrorKind};

use crate::IndexPart;

/// One anchored part: its sequence number, key and SHA-256, and when it was anchored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnchorRecord {
    /// Sequence number of the part.
    pub seq: u64,
    /// Key of the part in the archive.
    pub key: String,
    /// SHA-256 hex of the part's bytes.
    pub sha256: String,
    /// When it was anchored (RFC 3339).
    pub written_at: String,
}

/// Where anchors are kept.
#[derive(Clone)]
pub enum IndexAnchor {
    /// A local file, one JSON line per part, appended and flushed.
    File(PathBuf),
    /// Objects in another store (e.g. another bucket), one per part under `prefix`, written
    /// create-only: an anchor is never replaced.
    Store {
        /// The store.
        sink: Arc<dyn ObjectSink>,
        /// Key prefix of the anchors.
        prefix: String,
    },
}

impl std::fmt::Debug for IndexAnchor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IndexAnchor({self})")
    }
}

impl std::fmt::Display for IndexAnchor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IndexAnchor::File(p) => write!(f, "{}", p.display()),
            IndexAnchor::Store { sink, prefix } => write!(f, "{prefix} in {sink}"),
        }
    }
}

/// Why an anchor could not be written or read.
#[derive(Debug, thiserror::Error)]
#[error("anchor {anchor}: {message}")]
pub struct AnchorError {
    anchor: String,
    message: String,
}

impl IndexAnchor {
    fn err(&self, message: impl std::fmt::Display) -> AnchorError {
        AnchorError {
            anchor: self.to_string(),
            message: message.to_string(),
        }
    }

    /// Records the digests of `parts` (those without a digest are left out).
    pub async fn record(&self, parts: &[IndexPart]) -> Result<(), AnchorError> {
        let now = chrono::Utc::now().to_rfc3339();
        let records: Vec<AnchorRecord> = parts
            .iter()
            .filter_map(|p| {
                Some(AnchorRecord {
                    seq: p.seq,
                    key: p.key.clone(),
                    sha256: p.sha256.clone()?,
                    written_at: now.clone(),
                })
            })
            .collect();
        match self {
            IndexAnchor::File(path) => {
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| self.err(e))?;
                for r in &records {
                    let line = serde_json::to_string(r).map_err(|e| self.err(e))?;
                    writeln!(f, "{line}").map_err(|e| self.err(e))?;
                }
                f.sync_all().map_err(|e| self.err(e))
            }
            IndexAnchor::Store { sink, prefix } => {
                for r in &records {
                    // The digest is in the key: the same part anchored twice is the same
                    // object; another digest for the same number is a second object.
                    let key = format!("{prefix}{:010}-{}.json", r.seq, &r.sha256);
                    let bytes = serde_json::to_vec(r).map_err(|e| self.err(e))?;
                    let opts = PutOptions {
                        content_length: Some(bytes.len() as u64),
                        content_type: Some("application/json".into()),
                        create_only: true,
                        ..PutOptions::default()
                    };
                    match sink.put(&key, sink::full_body(bytes), opts).await {
                        Ok(_) => {}
                        Err(e) if e.kind == SinkErrorKind::AlreadyExists => {}
                        Err(e) => return Err(self.err(e)),
                    }
                }
                Ok(())
            }
        }
    }

    /// Every anchored part, in the order kept.
    pub async fn read(&self) -> Result<Vec<AnchorRecord>, AnchorError> {
        match self {
            IndexAnchor::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| self.err(e))?;
                text.lines()
                    .enumerate()
                    .filter(|(_, l)| !l.trim().is_empty())
                    .map(|(i, l)| {
                        serde_json::from_str(l)
                            .map_err(|e| self.err(format!("line {}: not an anchor: {e}", i + 1)))
                    })
                    .collect()
            }
            IndexAnchor::Store { sink, prefix } => {
                let keys: Vec<String> = sink
                    .list(prefix)
                    .map_ok(|o| o.key)
                    .try_collect()
                    .await
                    .map_err(|e| self.err(e))?;
                let mut out = Vec::with_capacity(keys.len());
                for key in keys.iter().filter(|k| k.ends_with(".json")) {
                    let body = sink.get(key).await.map_err(|e| self.err(e))?;
                    let bytes = body
                        .collect()
                        .await
                        .map_err(|e| self.err(format!("{key}: {e}")))?
                        .to_bytes();
                    out.push(
                        serde_json::from_slice(&bytes)
                            .map_err(|e| self.err(format!("{key}: not an anchor: {e}")))?,
                    );
                }
                Ok(out)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(seq: u64, sha: Option<&str>) -> IndexPart {
        IndexPart {
            seq,
            key: format!("index/2026-12-07/{seq:010}.jsonl"),
            previous: None,
            sha256: sha.map(str::to_string),
            entries: 1,
        }
    }

    #[tokio::test]
    async fn anchors_round_trip_in_a_file_and_in_a_store_and_are_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let anchors = [
            IndexAnchor::File(dir.path().join("anchors.jsonl")),
            IndexAnchor::Store {
                sink: Arc::new(sink::LocalDirSink::new(dir.path().join("other"))),
                prefix: "anchors/".into(),
            },
        ];
        for a in anchors {
            a.record(&[part(1, Some("aa")), part(2, None)])
                .await
                .unwrap();
            a.record(&[part(2, Some("bb"))]).await.unwrap();
            // The same part again: no second record in a store, no error.
            a.record(&[part(2, Some("bb"))]).await.unwrap();
            let got: Vec<(u64, String)> = a
                .read()
                .await
                .unwrap()
                .into_iter()
                .map(|r| (r.seq, r.sha256))
                .collect();
            let expected_store = vec![(1, "aa".to_string()), (2, "bb".to_string())];
            match a {
                IndexAnchor::File(_) => assert_eq!(got.len(), 3, "{got:?}"),
                IndexAnchor::Store { .. } => assert_eq!(got, expected_store),
            }
        }
    }
}
