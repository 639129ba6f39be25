//! The chain-of-custody index: parts in the store listing every archived object with its
//! size, MD5 and SHA-256, each part carrying the SHA-256 of the one before, and the check
//! that walks the chain and the objects it lists ([`crate::verify_chain`], in `custody_verify`).
//!
//! A part is a JSON Lines object under `<prefix><day>/<seq>.jsonl` (`seq` ten digits, from 1,
//! without gaps; `day` the UTC date it was written). Its first line is the header
//! (`{"type":"index","version":1,"seq":..,"previous":..,"previous_key":..,"entries":..}`),
//! every other line one object (`"type":"object"`, key, ids, times, size, md5, sha256 and the
//! conversation's facts), so Athena or DuckDB can query the parts as one table; after the
//! objects, a part may list releases at the source (`"type":"release"`, see
//! [`crate::ReleaseLine`]), counted by the header's `"releases"`.
//!
//! Which rows go into which part is decided in the ledger before the part is written
//! ([`Ledger::open_index_part`]), so a part cut short by a crash is written again with the
//! same bytes by the next run; parts are written create-only.

use std::collections::BTreeMap;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use genesys_media::ConversationFacts;
use http_body_util::BodyExt;
use integrity::Expectations;
use serde::{Deserialize, Serialize};
use sink::{ObjectSink, PutOptions, SinkErrorKind};

use crate::{IndexPart, Ledger, LedgerEntry, LedgerError};

/// Objects per index part at most.
pub const MAX_PART_ENTRIES: u32 = 10_000;

/// The default key prefix of the index.
pub const DEFAULT_INDEX_PREFIX: &str = "index/";

/// Why the index could not be written.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The ledger failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The part's key holds other bytes than the ledger's rows give (written by someone
    /// else): the part is written under the next free number instead.
    #[error("index part {key} exists with other bytes than the ledger's rows give; not replaced")]
    Foreign {
        /// Key of the part.
        key: String,
    },
    /// The store failed.
    #[error("index part {key}: {message}")]
    Store {
        /// Key of the part.
        key: String,
        /// What happened.
        message: String,
    },
}

/// The first line of a part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartHeader {
    /// Always `index`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Format version, 1.
    pub version: u32,
    /// Sequence number of the part.
    pub seq: u64,
    /// SHA-256 hex of the previous part's bytes (`null` for part 1).
    pub previous: Option<String>,
    /// Key of the previous part.
    pub previous_key: Option<String>,
    /// Object lines that follow.
    pub entries: u64,
    /// Release lines after the objects ([`crate::ReleaseLine`]); absent (0) in a part
    /// without any.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub releases: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One object line of a part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// Always `object`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Object key.
    pub key: String,
    /// Recording id (with `~file` for one of several files).
    pub recording_id: String,
    /// Conversation id.
    pub conversation_id: String,
    /// Media type.
    pub media_type: Option<String>,
    /// Recording start (RFC 3339).
    pub start_time: Option<String>,
    /// Recording end (RFC 3339).
    pub end_time: Option<String>,
    /// When the ledger recorded it archived (RFC 3339).
    pub archived_at: String,
    /// Bytes.
    pub size: Option<u64>,
    /// MD5 hex.
    pub md5: Option<String>,
    /// SHA-256 hex (`null` for objects adopted from the store without a download).
    pub sha256: Option<String>,
    /// What analytics said about the conversation.
    #[serde(flatten)]
    pub facts: ConversationFacts,
}

impl IndexEntry {
    /// The object line of an archived ledger row.
    pub fn from_ledger(e: LedgerEntry) -> Self {
        Self {
            kind: "object".into(),
            key: e.key,
            recording_id: e.recording_id,
            conversation_id: e.conversation_id,
            media_type: e.media_type,
            start_time: e.start_time,
            end_time: e.end_time,
            archived_at: e.updated_at,
            size: e.size,
            md5: e.md5,
            sha256: e.sha256,
            facts: e.facts,
        }
    }
}

fn part_key(prefix: &str, day: DateTime<Utc>, seq: u64) -> String {
    format!("{prefix}{}/{seq:010}.jsonl", day.format("%Y-%m-%d"))
}

/// Rows read from the ledger at a time while a part is rendered.
const RENDER_PAGE: u32 = 500;

/// The bytes of a part: the header, then the part's rows read a page at a time (only the
/// rendered lines are held, never all the rows).
async fn render(
    ledger: &Ledger,
    part: &IndexPart,
    previous_key: Option<&str>,
) -> Result<Rendered, LedgerError> {
    let mut lines = Vec::with_capacity(part.entries as usize * 800);
    let mut entries = 0u64;
    let mut after: Option<String> = None;
    loop {
        let page = ledger
            .index_part_page(part.seq, after.take(), RENDER_PAGE)
            .await?;
        let n = page.len();
        after = page.last().map(|r| r.recording_id.clone());
        for row in page {
            serde_json::to_writer(&mut lines, &IndexEntry::from_ledger(row)).expect("serializable");
            lines.push(b'\n');
        }
        entries += n as u64;
        if n < RENDER_PAGE as usize {
            break;
        }
    }
    let released = ledger.listed_releases(part.seq).await?;
    let releases = released.len() as u64;
    for r in released {
        serde_json::to_writer(&mut lines, &crate::ReleaseLine::from_record(r))
            .expect("serializable");
        lines.push(b'\n');
    }
    let header = PartHeader {
        kind: "index".into(),
        version: 1,
        seq: part.seq,
        previous: part.previous.clone(),
        previous_key: previous_key.map(str::to_string),
        entries,
        releases,
    };
    let mut head = serde_json::to_vec(&header).expect("serializable");
    head.push(b'\n');
    Ok(Rendered {
        head: Bytes::from(head),
        lines: Bytes::from(lines),
    })
}

/// A rendered part: its header line and its object lines, sent as two frames.
struct Rendered {
    head: Bytes,
    lines: Bytes,
}

impl Rendered {
    fn len(&self) -> u64 {
        (self.head.len() + self.lines.len()) as u64
    }

    fn sha256_hex(&self) -> String {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        h.update(&self.head);
        h.update(&self.lines);
        hex::encode(h.finalize())
    }

    fn body(self) -> sink::PutBody {
        let frames = [self.head, self.lines]
            .into_iter()
            .map(|b| Ok::<_, integrity::BoxError>(http_body::Frame::data(b)));
        BodyExt::boxed(http_body_util::StreamBody::new(futures::stream::iter(
            frames,
        )))
    }
}

/// Writes the index parts the ledger's archived rows call for: first a part opened earlier
/// but not recorded as written (a crash), then new parts of up to [`MAX_PART_ENTRIES`]
/// objects archived since the last part, until none is left. Returns the parts written.
/// Another instance opening the same part first ends this call without error.
///
/// With `signer`, every part written by this call gets its signature beside it
/// (`<part>.sig`) and the signed head names the newest part ([`crate::IndexSigner`]). Parts
/// written before the key was configured, or found in the store after a rebuild, stay
/// unsigned (`verify --chain --public-key` reports them).
pub async fn write_index(
    ledger: &Ledger,
    sink: &dyn ObjectSink,
    prefix: &str,
    now: DateTime<Utc>,
    signer: Option<&crate::IndexSigner>,
) -> Result<Vec<IndexPart>, IndexError> {
    let written = write_parts(ledger, sink, prefix, now).await?;
    if let Some(signer) = signer {
        // Only the parts this archiver wrote now: a part found in the store (taken up after a
        // rebuild, or written before the key existed) is never vouched for by the key.
        crate::custody_signed::sign_parts(sink, prefix, &written, signer).await?;
    }
    Ok(written)
}

async fn write_parts(
    ledger: &Ledger,
    sink: &dyn ObjectSink,
    prefix: &str,
    now: DateTime<Utc>,
) -> Result<Vec<IndexPart>, IndexError> {
    let mut parts = ledger.index_parts().await?;
    if parts.is_empty() {
        parts = take_up_chain(ledger, sink, prefix).await?.0;
    }
    let mut written = Vec::new();
    loop {
        let last = parts.last().cloned();
        match last {
            Some(part) if part.sha256.is_none() => {
                let before = parts.iter().rev().nth(1).map(|p| p.key.clone());
                let sha = match write_part(ledger, sink, &part, before.as_deref()).await {
                    Ok(sha) => sha,
                    // Someone else's bytes under this part's key (never replaced): the part
                    // goes under the next free number, so the index is never stuck; `verify
                    // --chain` reports the foreign part.
                    Err(IndexError::Foreign { key }) => {
                        let to = part.seq + 1;
                        let new_key = part_key(prefix, now, to);
                        tracing::warn!(%key, next = %new_key, "an index part key holds foreign bytes; writing the part under the next number");
                        if !ledger.move_index_part(part.seq, to, &new_key).await? {
                            return Err(IndexError::Foreign { key });
                        }
                        *parts.last_mut().expect("a part") = IndexPart {
                            seq: to,
                            key: new_key,
                            ..part
                        };
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                let done = IndexPart {
                    sha256: Some(sha),
                    ..part
                };
                *parts.last_mut().expect("a part") = done.clone();
                written.push(done);
            }
            last => {
                let seq = last.as_ref().map_or(1, |p| p.seq + 1);
                let part = IndexPart {
                    seq,
                    key: part_key(prefix, now, seq),
                    previous: last.as_ref().and_then(|p| p.sha256.clone()),
                    sha256: None,
                    entries: 0,
                };
                match ledger
                    .open_index_part(part.clone(), MAX_PART_ENTRIES)
                    .await?
                {
                    None | Some(0) => return Ok(written),
                    Some(n) => parts.push(IndexPart { entries: n, ..part }),
                }
            }
        }
    }
}

/// After `ledger rebuild`: when the ledger knows no index part, records the parts the store
/// holds under `prefix` and gives the rebuilt rows they list their digests back (see
/// [`Ledger::restore_indexed`]); returns (parts found, rows matched: the rebuilt rows the
/// parts list with the same size and digests, now counted as indexed with both digests). A
/// ledger that knows parts already is left alone.
pub async fn restore_from_index(
    ledger: &Ledger,
    sink: &dyn ObjectSink,
    prefix: &str,
) -> Result<(u64, u64), IndexError> {
    if !ledger.index_parts().await?.is_empty() {
        return Ok((0, 0));
    }
    let (parts, matched) = take_up_chain(ledger, sink, prefix).await?;
    Ok((parts.len() as u64, matched))
}

/// A ledger without index parts over a store that has some (the ledger was lost and
/// rebuilt): records the store's parts in the ledger, so the chain goes on from its last part
/// instead of starting a second part 1, and restores what the parts say of the rows they list
/// ([`Ledger::restore_indexed`]).
async fn take_up_chain(
    ledger: &Ledger,
    sink: &dyn ObjectSink,
    prefix: &str,
) -> Result<(Vec<IndexPart>, u64), IndexError> {
    let store_err = |key: &str, message: String| IndexError::Store {
        key: key.to_string(),
        message,
    };
    let stored = stored_parts(sink, prefix)
        .await
        .map_err(|e| store_err(prefix, format!("cannot list the index: {e}")))?;
    let mut found = Vec::new();
    for (key, part) in stored {
        let (sha, header) = part.map_err(|e| store_err(&key, e))?;
        found.push(IndexPart {
            seq: header.seq,
            key,
            previous: header.previous,
            sha256: Some(sha),
            entries: header.entries,
        });
    }
    found.sort_by_key(|p| p.seq);
    for part in &found {
        ledger.insert_index_part(part.clone()).await?;
    }
    // The releases the parts record, oldest part first (an undo listed later replaces its
    // release): the rebuilt ledger knows them again, so `verify` keeps watching their copies
    // and no run releases them twice or an undone one again.
    for part in &found {
        let releases = match read_part(sink, &part.key)
            .await
            .and_then(|b| parse_part_releases(&b))
        {
            Ok((_, _, releases)) => releases,
            Err(e) => return Err(store_err(&part.key, format!("cannot be read: {e}"))),
        };
        for r in releases {
            ledger.restore_release(r.into_record(), part.seq).await?;
        }
    }
    // The rows the parts list are indexed already, with the digests the parts give: newest
    // part first, so a key listed again counts with its latest entry. Without this, the next
    // part would list every rebuilt row again, without digests.
    let mut matched = 0;
    for part in found.iter().rev() {
        let entries = match read_part(sink, &part.key)
            .await
            .and_then(|b| parse_part(&b))
        {
            Ok((_, entries)) => entries,
            Err(e) => return Err(store_err(&part.key, format!("cannot be read: {e}"))),
        };
        let objects = entries
            .into_iter()
            .map(|e| crate::IndexedObject {
                recording_id: e.recording_id,
                key: e.key,
                size: e.size,
                md5: e.md5,
                sha256: e.sha256,
                facts: e.facts,
            })
            .collect();
        matched += ledger.restore_indexed(part.seq, objects).await?;
    }
    Ok((ledger.index_parts().await?, matched))
}

/// Writes one opened part (create-only; an existing object with the same bytes counts as
/// written) and records its SHA-256.
async fn write_part(
    ledger: &Ledger,
    sink: &dyn ObjectSink,
    part: &IndexPart,
    previous_key: Option<&str>,
) -> Result<String, IndexError> {
    let rendered = render(ledger, part, previous_key).await?;
    let sha = rendered.sha256_hex();
    let store_err = |message: String| IndexError::Store {
        key: part.key.clone(),
        message,
    };
    let opts = PutOptions {
        content_length: Some(rendered.len()),
        content_type: Some("application/x-ndjson".into()),
        metadata: BTreeMap::from([
            ("index-seq".to_string(), part.seq.to_string()),
            ("sha256".to_string(), sha.clone()),
        ]),
        create_only: true,
        sha256: true,
        ..PutOptions::default()
    };
    match sink.put(&part.key, rendered.body(), opts).await {
        Ok(_) => {}
        Err(e) if e.kind == SinkErrorKind::AlreadyExists => {
            let digests = read_digests(sink, &part.key, true)
                .await
                .map_err(|e| store_err(format!("exists, and cannot be read back: {e}")))?;
            if digests.sha256_hex().as_deref() != Some(sha.as_str()) {
                return Err(IndexError::Foreign {
                    key: part.key.clone(),
                });
            }
        }
        Err(e) => return Err(store_err(e.to_string())),
    }
    ledger.close_index_part(part.seq, &sha).await?;
    Ok(sha)
}

/// Reads an object back through MD5 (and SHA-256 with `sha256`), as `verify` and the chain
/// check do: what the store holds now, hashed as it streams.
pub async fn read_digests(
    sink: &dyn ObjectSink,
    key: &str,
    sha256: bool,
) -> Result<integrity::Digests, String> {
    let body = sink.get(key).await.map_err(|e| e.to_string())?;
    let expect = if sha256 {
        Expectations::default().with_sha256()
    } else {
        Expectations::default()
    };
    integrity::digest_body(body, expect)
        .await
        .map_err(|e| format!("reading {key}: {e}"))
}

/// The parts under `prefix` in the store, each with its bytes' SHA-256 and its header, or why
/// it could not be read or is not a part. Reads each part once and keeps only its header.
pub(crate) async fn stored_parts(
    sink: &dyn ObjectSink,
    prefix: &str,
) -> Result<Vec<(String, Result<(String, PartHeader), String>)>, sink::SinkError> {
    let keys: Vec<String> = part_keys(sink, prefix).try_collect().await?;
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        let found = match read_part(sink, &key).await {
            Err(e) => Err(format!("cannot be read: {e}")),
            Ok(bytes) => parse_header(&bytes)
                .map(|h| (hex::encode(integrity::sha256_of(&bytes)), h))
                .map_err(|e| format!("not an index part: {e}")),
        };
        out.push((key, found));
    }
    Ok(out)
}

/// The key of a custody index part the store holds under `prefix`, if any: whether an archive
/// already lives there (for a new ledger, which would look at every recording again). Stops
/// at the first part found, usually within one listing request.
pub async fn stored_part(
    sink: &dyn ObjectSink,
    prefix: &str,
) -> Result<Option<String>, sink::SinkError> {
    std::pin::pin!(part_keys(sink, prefix)).try_next().await
}

/// The keys of the index parts under `prefix`, as the store lists them.
fn part_keys<'a>(
    sink: &'a dyn ObjectSink,
    prefix: &'a str,
) -> impl futures::Stream<Item = Result<String, sink::SinkError>> + 'a {
    sink.list(prefix)
        .map_ok(|o| o.key)
        .try_filter(|k| futures::future::ready(k.ends_with(".jsonl")))
}

/// Reads a part whole (a part holds at most [`MAX_PART_ENTRIES`] lines).
pub(crate) async fn read_part(sink: &dyn ObjectSink, key: &str) -> Result<Bytes, String> {
    let body = sink.get(key).await.map_err(|e| e.to_string())?;
    body.collect()
        .await
        .map(|b| b.to_bytes())
        .map_err(|e| e.to_string())
}

fn parse_header(bytes: &[u8]) -> Result<PartHeader, String> {
    let first = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    let header: PartHeader = serde_json::from_slice(first).map_err(|e| format!("header: {e}"))?;
    if header.kind != "index" {
        return Err(format!("first line is of type {:?}", header.kind));
    }
    Ok(header)
}

pub(crate) fn parse_part(bytes: &[u8]) -> Result<(PartHeader, Vec<IndexEntry>), String> {
    let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
    let mut lines = text.lines();
    let header: PartHeader =
        serde_json::from_str(lines.next().ok_or("empty")?).map_err(|e| format!("header: {e}"))?;
    if header.kind != "index" {
        return Err(format!("first line is of type {:?}", header.kind));
    }
    let (entries, _) = crate::custody_releases::split_lines(lines.enumerate())?;
    Ok((header, entries))
}

/// A part's header, objects and releases.
pub(crate) fn parse_part_releases(
    bytes: &[u8],
) -> Result<(PartHeader, Vec<IndexEntry>, Vec<crate::ReleaseLine>), String> {
    let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
    let mut lines = text.lines();
    let header: PartHeader =
        serde_json::from_str(lines.next().ok_or("empty")?).map_err(|e| format!("header: {e}"))?;
    if header.kind != "index" {
        return Err(format!("first line is of type {:?}", header.kind));
    }
    let (entries, releases) = crate::custody_releases::split_lines(lines.enumerate())?;
    Ok((header, entries, releases))
}
