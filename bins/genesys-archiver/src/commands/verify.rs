//! `verify`: audit the archive against the ledger, the store and (optionally) the source.

use std::collections::HashSet;
use std::process::ExitCode;

use archiver::RecordStatus;
use chrono::{DateTime, Utc};
use clap::Args;
use futures::StreamExt;
use genesys_media::DiscoveryQuery;
use sink::ObjectSink;

use crate::settings::{FileConfig, SourceArgs, StateArgs, StoreArgs};
use crate::times::parse_time;
use crate::{ConfigError, TzArg, config_err, settings};

#[derive(Args, Debug)]
pub(crate) struct VerifyArgs {
    /// Only recordings that started at or after this time (forms as for archive --from).
    #[arg(long)]
    from: Option<String>,
    /// Only recordings that started before this time.
    #[arg(long)]
    to: Option<String>,
    #[command(flatten)]
    tz: TzArg,
    /// Read every object back and compare its MD5 and SHA-256 with the ledger's (slow; reads
    /// all bytes).
    #[arg(long)]
    rehash: bool,
    /// Also list the store and report objects under the key prefix the ledger does not know.
    #[arg(long)]
    extra: bool,
    /// Also ask Genesys Cloud which recordings the interval (--from/--to) holds and report
    /// each one that is not archived (needs the Genesys settings).
    #[arg(long, requires_all = ["from", "to"])]
    against_source: bool,
    /// Prove the chain of custody instead: walk the index parts (each carries the SHA-256 of
    /// the one before, none missing, the ledger's record of each matching), then read every
    /// object they list and compare its size, MD5 and SHA-256 (reads all bytes).
    #[arg(long, conflicts_with_all = ["rehash", "extra", "against_source", "from", "to"])]
    chain: bool,
    /// Audit against the org's own inventory instead: list every recording Genesys Cloud
    /// retains (the retention query, independent of analytics) and report each one the
    /// archive lacks, and every orphan recording (not attached to a conversation); exit 1
    /// if any is missing (needs the Genesys settings and the ledger).
    /// With --from, only recordings created at or after it are judged (what the archive
    /// covers).
    #[arg(long, conflicts_with_all = ["rehash", "extra", "against_source", "to", "chain"])]
    inventory: bool,
    /// With --inventory: resolve the conversations of the missing recordings and archive
    /// them (one batch item per conversation).
    #[arg(long, requires = "inventory")]
    archive_missing: bool,
    /// With --inventory: archive the orphan recordings' own media too (under
    /// recordings/.../orphan/<orphan id>), through GET /api/v2/orphanrecordings/{id}/media:
    /// kept even if never re-attached (needs recording:orphan:view).
    #[arg(long, requires = "inventory")]
    archive_orphans: bool,
    /// With --inventory: recordings created more recently than this are not judged (the
    /// archive may not have reached them yet) [default: 1h].
    #[arg(long, requires = "inventory", value_name = "DURATION")]
    inventory_min_age: Option<String>,
    /// With --chain: the Ed25519 public key (from `index keygen`) every part and the head
    /// must be signed with. Then the store and this key are all the check needs. After a
    /// key rotation, repeat it, oldest key first: each part must be signed by one of them,
    /// never by a key older than the previous part's.
    #[arg(long, value_name = "FILE", requires = "chain")]
    public_key: Vec<std::path::PathBuf>,
    /// With --chain: a part's digest an auditor kept, as PART:SHA256 (repeatable); the store's
    /// part must have it (catches a part removed or rewritten since).
    #[arg(long, value_name = "PART:SHA256", requires = "chain")]
    expect_head: Vec<String>,
    /// With --chain: the anchor written by `--index-anchor` (a FILE or s3://BUCKET/PREFIX,
    /// kept outside the bucket): every part it names must be in the store with that digest.
    #[arg(long, value_name = "FILE|s3://BUCKET/PREFIX", requires = "chain")]
    anchor: Option<String>,
    /// With --chain: print the report as JSON (every part's digest, the problems).
    #[arg(long, requires = "chain")]
    json: bool,
    /// Read the archive from the store alone (every object's metadata and the index), not a
    /// ledger: what an auditor with only the bucket runs. Also what happens when no ledger
    /// is named (--state, the file's `state`) and the default file is absent.
    #[arg(long, conflicts_with = "inventory")]
    from_store: bool,
    /// Key prefix of the index, for --chain [default: index/].
    #[arg(long, env = "GENESYS_ARCHIVER_INDEX_PREFIX")]
    index_prefix: Option<String>,
    #[command(flatten, next_help_heading = "Store")]
    store: StoreArgs,
    #[command(flatten, next_help_heading = "Ledger")]
    state: StateArgs,
    /// How --archive-missing and --archive-orphans write what they archive.
    #[command(
        flatten,
        next_help_heading = "Writing (only with --archive-missing or --archive-orphans)"
    )]
    write: crate::settings::WriteArgs,
    #[command(
        flatten,
        next_help_heading = "Genesys Cloud (--against-source, --inventory)"
    )]
    source: SourceArgs,
}

pub(crate) async fn run_verify(v: VerifyArgs, file: &FileConfig) -> Result<ExitCode, ConfigError> {
    let from = v
        .from
        .as_deref()
        .map(|t| parse_time("from", t, v.tz.zone()?))
        .transpose()?;
    let to =
        v.to.as_deref()
            .map(|t| parse_time("to", t, v.tz.zone()?))
            .transpose()?;
    let settings = StoreArgs {
        write: v.write.clone(),
        ..v.store.clone()
    }
    .resolve(file)?;
    let sink = settings::connect_store(&settings).await?;
    let index_prefix = v
        .index_prefix
        .clone()
        .unwrap_or_else(|| archiver::DEFAULT_INDEX_PREFIX.to_string());
    if v.chain {
        return run_chain(&v, file, sink.as_ref(), &settings, &index_prefix).await;
    }
    if v.inventory {
        let ledger = v.state.open_shared(file).await?;
        let min_age = match &v.inventory_min_age {
            Some(a) => settings::parse_duration("--inventory-min-age", a)?,
            None => std::time::Duration::from_secs(3600),
        };
        let source = v.source.resolve(file)?;
        let client = settings::connect_source(&source).await?;
        return super::inventory::run_inventory(
            client,
            sink,
            &settings,
            ledger,
            super::inventory::InventoryOptions {
                from,
                min_age,
                archive_missing: v.archive_missing,
                archive_orphans: v.archive_orphans,
            },
        )
        .await;
    }
    let read =
        super::ledger::read_from(&v.state, &v.store, file, v.from_store, &index_prefix).await?;
    let ledger = read.ledger();
    let rows = ledger
        .entries(Some(RecordStatus::Archived))
        .await
        .map_err(|e| config_err(e.to_string()))?;
    let in_range = |start: &Option<String>| {
        let t = start
            .as_deref()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc));
        match (t, from, to) {
            (None, None, None) => true,
            (None, _, _) => false,
            (Some(t), f, e) => f.is_none_or(|f| t >= f) && e.is_none_or(|e| t < e),
        }
    };
    let (mut ok, mut missing, mut corrupt, mut unproven) = (0u64, 0u64, 0u64, 0u64);
    if let super::ledger::ReadFrom::Store(_, report) = &read {
        // Printed by the rebuild: what the index lists and the store lacks, and what could
        // not be read.
        missing += report
            .absent
            .iter()
            .filter(|a| in_range(&a.start_time))
            .count() as u64;
        missing += report.unreadable.len() as u64;
        corrupt += report.contradicted.len() as u64;
    }
    let mut known_keys = HashSet::new();
    for r in rows.iter() {
        known_keys.insert(r.key.clone());
        if !in_range(&r.start_time) {
            continue;
        }
        let problem = match sink.head(&r.key).await {
            Ok(None) => Some(("missing", "no object under its key".to_string())),
            Err(e) => Some(("missing", format!("cannot read it: {e}"))),
            Ok(Some(meta)) if r.size.is_some_and(|s| s != meta.size) => Some((
                "corrupt",
                format!(
                    "size {} in the store, {} in the ledger",
                    meta.size,
                    r.size.unwrap_or(0)
                ),
            )),
            Ok(Some(_)) if v.rehash && r.md5.is_none() && r.sha256.is_none() => {
                // Nothing to compare the bytes with: size only, never "verified".
                unproven += 1;
                println!(
                    "unproven: recording {} key {}: no digest in the ledger (checked by size only)",
                    r.recording_id, r.key
                );
                continue;
            }
            Ok(Some(_)) if v.rehash => {
                match archiver::read_digests(sink.as_ref(), &r.key, r.sha256.is_some()).await {
                    Ok(d) => rehash_problem(
                        &d.md5_hex(),
                        d.sha256,
                        r.md5.as_deref(),
                        r.sha256.as_deref(),
                    ),
                    Err(e) => Some(("corrupt", format!("cannot read it back: {e}"))),
                }
            }
            Ok(Some(_)) => None,
        };
        match problem {
            None => ok += 1,
            Some((kind, why)) => {
                if kind == "missing" {
                    missing += 1;
                } else {
                    corrupt += 1;
                }
                println!("{kind}: recording {} key {}: {why}", r.recording_id, r.key);
            }
        }
    }
    // Recordings released at the source (a delete date asked, set, or pushed out by an
    // undo): each release's own object, whatever the ledger's row says now. A copy missing
    // or altered there is soon the only copy gone: critical.
    let mut critical = 0u64;
    for rel in ledger
        .releases()
        .await
        .map_err(|e| config_err(e.to_string()))?
        .into_iter()
        // Refused: no date was set at the source.
        .filter(|r| r.state != archiver::ReleaseState::Refused)
    {
        if let Some(why) = release_problem(sink.as_ref(), &rel, v.rehash).await {
            critical += 1;
            println!(
                "critical: recording {} key {}: {why}; it was released at the source (delete date {}, {}): the source copy is going, restore the archive copy now or take the release back (release --undo)",
                rel.recording_id,
                rel.key,
                rel.delete_date,
                rel.state.as_str()
            );
        }
    }
    let (mut unavailable, mut pending, mut not_discoverable) = (0u64, 0u64, 0u64);
    if v.against_source {
        let (Some(from), Some(to)) = (from, to) else {
            return Err(config_err("--against-source needs --from and --to"));
        };
        let c = check_against_source(&v, file, from, to, ledger).await?;
        missing += c.missing;
        (unavailable, pending, not_discoverable) = (c.unavailable, c.pending, c.not_discoverable);
    }
    let mut extra = 0u64;
    if v.extra {
        let prefix = StoreArgs::prefix(&settings);
        let mut listing = sink.list(&prefix);
        while let Some(item) = listing.next().await {
            let obj = item.map_err(|e| config_err(format!("listing the store: {e}")))?;
            if !known_keys.contains(&obj.key) && !obj.key.starts_with(&index_prefix) {
                extra += 1;
                println!(
                    "extra: key {} ({} bytes) is not in the ledger",
                    obj.key, obj.size
                );
            }
        }
    }
    if unproven > 0 {
        println!(
            "{unproven} recording(s) unproven: no digest to compare with (run `ledger rebuild` with the index, or archive them again)"
        );
    }
    println!(
        "verified {ok}, missing {missing}, corrupt {corrupt}{}{}{}{}{}",
        if critical > 0 {
            format!(", critical {critical} (released at the source)")
        } else {
            String::new()
        },
        if unproven > 0 {
            format!(", unproven {unproven} (size only)")
        } else {
            String::new()
        },
        if v.extra {
            format!(", extra {extra}")
        } else {
            String::new()
        },
        if v.against_source {
            format!(
                ", unavailable at the source {unavailable}, pending {pending}, not discoverable {not_discoverable}"
            )
        } else {
            String::new()
        },
        if v.rehash { " (re-hashed)" } else { "" }
    );
    // An object neither the ledger nor the index knows under the archive's prefix is a
    // finding (planted, or left by a lost ledger): not a clean audit.
    Ok(
        if missing + corrupt + pending + not_discoverable + extra + unproven + critical > 0 {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        },
    )
}

/// `verify --chain`: the ledger, when there is one, adds its record of each part; the chain
/// needs only the store (and, to be proven against a bucket writer, the public key).
async fn run_chain(
    v: &VerifyArgs,
    file: &FileConfig,
    sink: &dyn ObjectSink,
    settings: &settings::StoreSettings,
    index_prefix: &str,
) -> Result<ExitCode, ConfigError> {
    let location = v.state.location(file);
    let local_missing =
        !location.starts_with("postgres") && !std::path::Path::new(&location).exists();
    let ledger = if local_missing || v.from_store {
        None
    } else {
        Some(v.state.open_shared(file).await?)
    };
    let keys = v
        .public_key
        .iter()
        .map(|p| super::index::load_verifier(p))
        .collect::<Result<Vec<_>, _>>()?;
    let mut expect = v
        .expect_head
        .iter()
        .map(|e| parse_expect(e))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(value) = &v.anchor {
        let anchor = super::index::anchor_from(value, "--anchor", settings).await?;
        let records = anchor.read().await.map_err(|e| config_err(e.to_string()))?;
        if records.is_empty() {
            return Err(config_err(format!(
                "--anchor {value}: holds no anchor (nothing to check against)"
            )));
        }
        expect.extend(records.into_iter().map(|r| (r.seq, r.sha256)));
    }
    verify_chain(sink, index_prefix, ledger.as_ref(), &keys, &expect, v.json).await
}

/// What `--against-source` found: recordings the source lists that are not archived, and
/// what the source could not give.
#[derive(Default)]
struct SourceCheck {
    missing: u64,
    unavailable: u64,
    pending: u64,
    not_discoverable: u64,
}

/// `verify --against-source`: lists the interval at the source and checks each recording
/// against the ledger, printing each finding.
async fn check_against_source(
    v: &VerifyArgs,
    file: &FileConfig,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    ledger: &archiver::Ledger,
) -> Result<SourceCheck, ConfigError> {
    let mut found = SourceCheck::default();
    let source = v.source.resolve(file)?;
    let client = settings::connect_source(&source).await?;
    let mut query = DiscoveryQuery::interval(from, to);
    query.media_types = source.media_types.clone();
    let mut listed = std::pin::pin!(client.discover(query));
    while let Some(item) = listed.next().await {
        let item = item.map_err(|e| config_err(format!("asking the source: {e}")))?;
        let rec = match item {
            genesys_media::Discovered::Recording(r) => r,
            genesys_media::Discovered::Pending(p) => {
                found.pending += 1;
                println!(
                    "pending: conversation {}{} is not ready at the source: {}",
                    p.conversation_id,
                    p.recording_id
                        .map(|r| format!(" recording {r}"))
                        .unwrap_or_default(),
                    p.reason
                );
                continue;
            }
            genesys_media::Discovered::NotDiscoverable(span) => {
                found.not_discoverable += 1;
                println!(
                    "not discoverable: {} to {}: {}",
                    span.start.to_rfc3339(),
                    span.end.to_rfc3339(),
                    span.reason
                );
                continue;
            }
            genesys_media::Discovered::Unresolved {
                conversation_id,
                reason,
            } => {
                found.missing += 1;
                println!("missing: conversation {conversation_id}: {reason}");
                continue;
            }
            // Not produced here: this listing has no memory of conversations.
            genesys_media::Discovered::Known { .. } => continue,
        };
        if let genesys_media::MediaAvailability::Unavailable(reason) = &rec.media {
            found.unavailable += 1;
            println!(
                "unavailable: recording {} (conversation {}) at the source: {reason}",
                rec.ledger_id(),
                rec.conversation_id
            );
            continue;
        }
        let entry = ledger
            .entry(&rec.ledger_id())
            .await
            .map_err(|e| config_err(e.to_string()))?;
        match entry {
            Some(e) if e.status == RecordStatus::Archived => {}
            other => {
                found.missing += 1;
                let why = match other {
                    Some(e) => format!(
                        "the ledger has it as {}{}",
                        e.status,
                        e.last_error.map(|m| format!(": {m}")).unwrap_or_default()
                    ),
                    None => "the ledger does not know it".to_string(),
                };
                println!(
                    "missing: recording {} (conversation {}) listed by the source is not archived; {why}",
                    rec.ledger_id(),
                    rec.conversation_id
                );
            }
        }
    }
    Ok(found)
}

/// What is wrong with a released recording's object, if anything: missing, another size,
/// `md5` metadata naming another MD5, or (with `rehash`) bytes whose MD5 or SHA-256 differ.
async fn release_problem(
    sink: &dyn ObjectSink,
    rel: &archiver::ReleaseRecord,
    rehash: bool,
) -> Option<String> {
    let meta = match sink.head(&rel.key).await {
        Ok(None) => return Some("no object under its key".into()),
        Err(e) => return Some(format!("cannot read it: {e}")),
        Ok(Some(m)) => m,
    };
    if meta.size != rel.size {
        return Some(format!(
            "size {} in the store, {} when released",
            meta.size, rel.size
        ));
    }
    let ours = sink::Md5Digest::from_hex(&rel.md5);
    // The recorded `md5` metadata, not the ETag: under SSE-KMS an ETag is no MD5 (and a
    // release there was proven by reading the bytes, as --rehash does here).
    let recorded = meta
        .metadata
        .get("md5")
        .and_then(|m| sink::Md5Digest::from_hex(m));
    if !rehash && recorded.is_some_and(|d| Some(d) != ours) {
        return Some("its metadata names another MD5 than when released".into());
    }
    if rehash {
        match archiver::read_digests(sink, &rel.key, true).await {
            Err(e) => return Some(format!("cannot read it back: {e}")),
            Ok(d)
                if Some(d.md5) != ours || d.sha256.map(hex::encode) != Some(rel.sha256.clone()) =>
            {
                return Some("its bytes are not the ones released (MD5 or SHA-256)".into());
            }
            Ok(_) => {}
        }
    }
    None
}

/// `--expect-head PART:SHA256`.
fn parse_expect(e: &str) -> Result<(u64, String), ConfigError> {
    let bad = || {
        config_err(format!(
            "--expect-head {e:?} must be PART:SHA256, such as 12:<64 hex digits>"
        ))
    };
    let (part, sha) = e.split_once(':').ok_or_else(bad)?;
    let part: u64 = part.trim().parse().map_err(|_| bad())?;
    let sha = sha.trim().to_ascii_lowercase();
    if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    Ok((part, sha))
}

/// `verify --chain`: the index parts in the store, their signatures (with a public key), the
/// ledger's record of them (when there is a ledger), and every object they list.
async fn verify_chain(
    sink: &dyn ObjectSink,
    prefix: &str,
    ledger: Option<&archiver::Ledger>,
    keys: &[archiver::IndexVerifier],
    expect: &[(u64, String)],
    json: bool,
) -> Result<ExitCode, ConfigError> {
    let report = archiver::verify_chain(sink, prefix, ledger, keys, expect, 8)
        .await
        .map_err(|e| config_err(format!("reading the index: {e}")))?;
    let mut unproven = Vec::new();
    if keys.is_empty() {
        unproven.push(
            "signatures not checked (no --public-key): a writer with access to the bucket could have added or rewritten parts consistently",
        );
    }
    if ledger.is_none() && expect.is_empty() {
        unproven.push(if keys.is_empty() {
            "no ledger, --anchor, --expect-head or signed head: a removed newest part would not show"
        } else {
            "no ledger, --anchor or --expect-head: an older signed head put back with the newest parts removed would not show"
        });
    }
    let code = if report.parts == 0 && report.problems.is_empty() {
        1
    } else if report.clean() {
        0
    } else {
        1
    };
    if json {
        let out = serde_json::json!({
            "parts": report.part_digests.iter().map(|(seq, key, sha)| serde_json::json!({"seq": seq, "key": key, "sha256": sha})).collect::<Vec<_>>(),
            "objects": report.objects,
            "verified": report.verified,
            "md5_only": report.md5_only,
            "superseded": report.superseded,
            "releases": report.releases,
            "signatures_checked": report.signatures_checked,
            "signed_parts": report.signed,
            "signed_by": report.signed_by.iter().map(|(key, first, last)| serde_json::json!({"public_key": key, "first_part": first, "last_part": last})).collect::<Vec<_>>(),
            "head": report.head.as_ref().map(|(seq, sha)| serde_json::json!({"seq": seq, "sha256": sha})),
            "problems": report.problems,
            "not_proven": unproven,
            "clean": code == 0,
        });
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        return Ok(ExitCode::from(code));
    }
    for (seq, key, sha) in &report.part_digests {
        println!("part {seq}: {key} SHA-256 {sha}");
    }
    if report.signed_by.len() > 1 {
        for (key, first, last) in &report.signed_by {
            println!("signed: parts {first} to {last} with public key {key}");
        }
    }
    for p in &report.problems {
        println!("broken: {p}");
    }
    for u in &unproven {
        println!("not proven: {u}");
    }
    let head = match &report.head {
        Some((seq, sha)) => format!("; head: part {seq}, SHA-256 {sha}"),
        None => String::new(),
    };
    let signed = if report.signatures_checked {
        format!(", {} parts signed", report.signed)
    } else {
        String::new()
    };
    println!(
        "chain: {} parts{signed}, {} objects, {} verified ({} by size and MD5 only, {} entries superseded), {} releases at the source recorded, {} problems{head}",
        report.parts,
        report.objects,
        report.verified,
        report.md5_only,
        report.superseded,
        report.releases,
        report.problems.len()
    );
    if report.parts == 0 && report.problems.is_empty() {
        println!("no index under {prefix}: nothing proven");
    }
    Ok(ExitCode::from(code))
}

/// What the bytes read back (their MD5 and SHA-256) say against the digests the ledger
/// holds: every digest it holds must match (the SHA-256 too: MD5 alone can be forged by
/// collision).
fn rehash_problem(
    ours: &str,
    our_sha256: Option<[u8; 32]>,
    md5: Option<&str>,
    sha256: Option<&str>,
) -> Option<(&'static str, String)> {
    if let Some(m) = md5.filter(|m| !m.eq_ignore_ascii_case(ours)) {
        return Some((
            "corrupt",
            format!("MD5 {ours} in the store, {m} in the ledger"),
        ));
    }
    let got = our_sha256.map(hex::encode);
    match sha256 {
        Some(want) if got.as_deref().is_none_or(|g| !g.eq_ignore_ascii_case(want)) => Some((
            "corrupt",
            format!(
                "SHA-256 {} in the store, {want} in the ledger",
                got.unwrap_or_default()
            ),
        )),
        _ => None,
    }
}
