//! `release`: set the delete date at Genesys Cloud of recordings whose copy is proven (a dry
//! run unless `--execute`), or take releases back (`--undo --since`).

use std::process::ExitCode;

use archiver::{ReleasePolicy, ReleaseReport};
use clap::Args;

use crate::settings::{self, FileConfig, SourceArgs, StateArgs, StoreArgs};
use crate::times::parse_time;
use crate::{ConfigError, TzArg, config_err};

#[derive(Args, Debug)]
pub(crate) struct ReleaseArgs {
    /// Set the delete dates. Without it, a dry run: report what would be released (counts
    /// per reason, bytes, per day), spending only the deletion-protection checks.
    #[arg(long)]
    execute: bool,
    /// Only recordings whose conversation ended at least this long ago.
    #[arg(long, value_name = "DURATION", default_value = "30d")]
    older_than: String,
    /// The delete date set at the source: now + this (at least 25h: the source takes a
    /// date only more than a day ahead). While it lasts, `--undo` takes a release back.
    #[arg(long, value_name = "DURATION", default_value = "7d")]
    grace: String,
    /// Re-read every object and compare its MD5 and SHA-256 with the ledger's (reads all
    /// bytes); otherwise HEAD: the size and the digests the store reports. Needed under
    /// SSE-KMS, where an ETag is not an MD5.
    #[arg(long)]
    rehash: bool,
    /// Require each object to be under Object Lock until at least now + --lock-for. Required
    /// by default when the bucket has Object Lock or the store writes with it.
    #[arg(long)]
    require_object_lock: bool,
    /// With Object Lock required: locked until at least now + this; more than the grace,
    /// since the archive's copy is the only one once the source deletes its own
    /// [default: the grace + 90d].
    #[arg(long, value_name = "DURATION")]
    lock_for: Option<String>,
    /// With Object Lock required: only this mode counts (COMPLIANCE: GOVERNANCE can be
    /// bypassed by a privileged user) [default: either].
    #[arg(long, value_name = "MODE", value_parser = ["COMPLIANCE", "GOVERNANCE"])]
    lock_mode: Option<String>,
    /// The index parts listing released recordings must be signed by one of these public
    /// keys (oldest first). By default, the key of the configured signing key
    /// (`index.signing_key`) when there is one.
    #[arg(long, value_name = "FILE")]
    public_key: Vec<std::path::PathBuf>,
    /// Delete dates set per minute at most: the release's own share of the API budget.
    #[arg(long, value_name = "PER_MINUTE", default_value_t = 60)]
    release_rate: u32,
    /// Send at most this many delete dates (recordings) in this run.
    #[arg(long, value_name = "N", requires = "execute")]
    limit: Option<u64>,
    /// Send again the releases the source refused before (by default they are reported once
    /// and left: a recording deleted at the source, a missing permission).
    #[arg(long)]
    retry_refused: bool,
    /// Take back the releases recorded since --since instead: push their delete date out to
    /// now + --keep-for (the recording must still be at the source: within its grace).
    #[arg(long, requires = "since", conflicts_with_all = ["execute", "limit"])]
    undo: bool,
    /// With --undo: releases recorded at or after this time (forms as for archive --from).
    #[arg(long, requires = "undo")]
    since: Option<String>,
    /// With --undo: the delete date set instead, from now.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "365d",
        requires = "undo"
    )]
    keep_for: String,
    #[command(flatten)]
    tz: TzArg,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten, next_help_heading = "Store")]
    store: StoreArgs,
    #[command(flatten, next_help_heading = "Ledger")]
    state: StateArgs,
    #[command(flatten, next_help_heading = "Genesys Cloud")]
    source: SourceArgs,
}

pub(crate) async fn run_release(
    a: ReleaseArgs,
    file: &FileConfig,
) -> Result<ExitCode, ConfigError> {
    let dur = settings::parse_duration;
    let grace = dur("--grace", &a.grace)?;
    if grace < archiver::MIN_GRACE {
        return Err(config_err(format!(
            "--grace {}: must be at least 25h (the source takes a delete date only more than a day ahead)",
            a.grace
        )));
    }
    if a.release_rate == 0 {
        return Err(config_err("--release-rate must be at least 1 per minute"));
    }
    let source = a.source.resolve(file)?;
    let client = settings::connect_source(&source).await?;
    let ledger = a.state.open_existing(file).await?;
    if a.undo {
        let since = parse_time(
            "since",
            a.since.as_deref().unwrap_or_default(),
            a.tz.zone()?,
        )?;
        let keep_for = dur("--keep-for", &a.keep_for)?;
        let r = archiver::undo_releases(
            &client,
            &ledger,
            since,
            keep_for,
            a.release_rate,
            &archiver::default_instance_id(),
        )
        .await
        .map_err(|e| config_err(format!("release --undo: {e}")))?;
        if a.json {
            println!(
                "{}",
                serde_json::json!({
                    "undone": r.undone,
                    "delete_date": r.delete_date,
                    "failed": r.failed,
                    "api_calls": r.put_calls,
                    "clean": r.failed.is_empty(),
                })
            );
        } else {
            for f in &r.failed {
                println!("not undone: {f}");
            }
            println!(
                "undo: {} recording(s) taken back (delete date now {}), {} not undone; {} API calls",
                r.undone,
                r.delete_date,
                r.failed.len(),
                r.put_calls
            );
        }
        return Ok(if r.failed.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    let store = a.store.resolve(file)?;
    let sink = settings::connect_store(&store).await?;
    let locked_store = store.writes_with_object_lock();
    // The bucket's own Object Lock counts as much as the writes' configuration.
    let locked_bucket = sink
        .object_lock_enabled()
        .await
        .map_err(|e| config_err(format!("asking the bucket whether it has Object Lock: {e}")))?;
    let required = a.require_object_lock
        || locked_store
        || locked_bucket
        || a.lock_for.is_some()
        || a.lock_mode.is_some();
    let require_lock_for = if required {
        let d = match &a.lock_for {
            Some(d) => dur("--lock-for", d)?,
            None => grace + std::time::Duration::from_secs(90 * 24 * 3600),
        };
        if d <= grace {
            return Err(config_err(format!(
                "--lock-for {}: must be longer than --grace {} (once the source deletes its copy, the archive's is the only one)",
                a.lock_for.as_deref().unwrap_or_default(),
                a.grace
            )));
        }
        Some(d)
    } else {
        None
    };
    let mut public_keys = a
        .public_key
        .iter()
        .map(|p| super::index::load_verifier(p))
        .collect::<Result<Vec<_>, _>>()?;
    if public_keys.is_empty()
        && let Some(k) = &file.index.signing_key
    {
        public_keys.push(
            super::index::load_signer(std::path::Path::new(k), "index.signing_key")?.verifier(),
        );
    }
    let policy = ReleasePolicy {
        older_than: dur("--older-than", &a.older_than)?,
        grace,
        rehash: a.rehash,
        require_lock_for,
        lock_mode: a.lock_mode.clone(),
        public_keys,
        execute: a.execute,
        per_minute: a.release_rate,
        limit: a.limit,
        retry_refused: a.retry_refused,
        // On stderr, a line per page of rows: a long run shows where it is.
        progress: Some(archiver::Progress::new(|r| {
            eprintln!(
                "release progress: {} considered, {} eligible, {} released, {} held, {} at risk",
                r.considered,
                r.eligible,
                r.released,
                r.held.values().sum::<u64>(),
                r.at_risk.len()
            )
        })),
        ..ReleasePolicy::default()
    };
    let report = archiver::release(&client, &ledger, sink.as_ref(), &policy)
        .await
        .map_err(|e| config_err(format!("release: {e}")))?;
    if a.json {
        println!("{}", report_json(&report));
    } else {
        print_report(&report);
    }
    Ok(if report.clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn report_json(r: &ReleaseReport) -> serde_json::Value {
    serde_json::json!({
        "executed": r.executed,
        "delete_date": r.delete_date,
        "considered": r.considered,
        "eligible": r.eligible,
        "eligible_bytes": r.eligible_bytes,
        "eligible_by_day": r.eligible_by_day.iter().map(|(d, (n, b))| (d.clone(), serde_json::json!({"recordings": n, "bytes": b}))).collect::<serde_json::Map<_, _>>(),
        "released": r.released,
        "released_bytes": r.released_bytes,
        "held": r.held,
        "lease_lost": r.lease_lost,
        "refused": r.refused,
        "at_risk": r.at_risk,
        "unconfirmed": r.unconfirmed,
        "limited": r.limited,
        "api_calls": {"protection": r.protection_calls, "put": r.put_calls},
        "clean": r.clean(),
    })
}

fn print_report(r: &ReleaseReport) {
    for f in &r.at_risk {
        println!("critical: {f}");
    }
    for f in &r.refused {
        println!("refused: {f}");
    }
    for f in &r.unconfirmed {
        println!("unconfirmed: {f}");
    }
    for (day, (n, bytes)) in &r.eligible_by_day {
        println!("eligible: {day}: {n} recording file(s), {bytes} bytes");
    }
    for (why, n) in &r.held {
        if *n > 0 {
            println!("held: {why}: {n}");
        }
    }
    let what = if r.executed {
        format!(
            "released {} ({} bytes, delete date {})",
            r.released, r.released_bytes, r.delete_date
        )
    } else {
        format!(
            "dry run: would release {} ({} bytes, delete date {}); run with --execute to release",
            r.eligible, r.eligible_bytes, r.delete_date
        )
    };
    println!(
        "release: {} considered, {} eligible, {what}, {} held{}; {} API calls ({} protection, {} delete dates)",
        r.considered,
        r.eligible,
        r.held.values().sum::<u64>(),
        if r.limited {
            ", stopped at --limit"
        } else {
            ""
        },
        r.protection_calls + r.put_calls,
        r.protection_calls,
        r.put_calls
    );
}

/// The daemon's release policy (`--release-after`): executed, bounded per poll by what
/// `--release-rate` allows in half a poll interval; Object Lock required when the bucket has
/// it or the store writes with it (for the grace + 90 days), the signing key's parts required
/// signed.
pub(crate) async fn daemon_policy(
    after: &str,
    grace: Option<&str>,
    rate: Option<u32>,
    interval: std::time::Duration,
    w: &crate::Wired,
) -> Result<ReleasePolicy, ConfigError> {
    let dur = settings::parse_duration;
    let older_than = dur("--release-after", after)?;
    let grace = match grace {
        Some(g) => dur("--release-grace", g)?,
        None => ReleasePolicy::default().grace,
    };
    if grace < archiver::MIN_GRACE {
        return Err(config_err(format!(
            "--release-grace {}: must be at least 25h (the source takes a delete date only more than a day ahead)",
            grace.as_secs()
        )));
    }
    let per_minute = rate.unwrap_or(60);
    if per_minute == 0 {
        return Err(config_err("--release-rate must be at least 1 per minute"));
    }
    if w.index_prefix.is_none() {
        return Err(config_err(
            "--release-after releases only what the custody index lists: it cannot be used with --no-index",
        ));
    }
    let per_poll = (u64::from(per_minute) * interval.as_secs() / 120).max(1);
    // The bucket's own Object Lock counts as much as the writes' configuration.
    let locked = w.object_lock
        || w.sink.object_lock_enabled().await.map_err(|e| {
            config_err(format!("asking the bucket whether it has Object Lock: {e}"))
        })?;
    Ok(ReleasePolicy {
        older_than,
        grace,
        rehash: false,
        require_lock_for: locked.then(|| grace + std::time::Duration::from_secs(90 * 24 * 3600)),
        lock_mode: None,
        public_keys: w
            .index_signer
            .as_ref()
            .map(|s| vec![s.verifier()])
            .unwrap_or_default(),
        execute: true,
        per_minute,
        limit: Some(per_poll),
        // Proofs included, a poll's release takes at most half a poll interval.
        deadline: Some(interval / 2),
        ..ReleasePolicy::default()
    })
}
