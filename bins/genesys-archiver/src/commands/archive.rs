//! `archive`: a backfill over an interval.

use std::process::ExitCode;

use clap::Args;
use genesys_media::DiscoveryQuery;

use crate::settings::FileConfig;
use crate::times::parse_time;
use crate::{
    ConfigError, RunArgs, TzArg, conclude, config_err, exit_for, log_events, output, wire,
};

#[derive(Args, Debug)]
pub(crate) struct ArchiveArgs {
    /// Interval start: 2026-11-01 (midnight in --tz), 2026-11-01T08:30 (in --tz),
    /// 2026-11-01T08:30:00Z (RFC 3339), 7d or 24h (that long ago), now.
    #[arg(long)]
    from: String,
    /// Interval end (exclusive), in the same forms.
    #[arg(long)]
    to: String,
    #[command(flatten)]
    tz: TzArg,
    /// Resolve every finished conversation of the interval again, settled or not (an
    /// operator's "look again" for files that reached conversations late): one batch item
    /// per conversation; files already archived are not downloaded again.
    #[arg(long)]
    recheck: bool,
    /// Share this backfill with every instance started on the same interval and PostgreSQL
    /// ledger: one lists the interval once, all resolve and archive its chunks (about one
    /// instance's API calls); an instance started later joins. Each ends when no chunk is
    /// left that it could work or that a live instance holds.
    #[arg(long, conflicts_with = "recheck")]
    scale_out: bool,
    #[command(flatten)]
    pub(crate) run: RunArgs,
}

/// Writes the chain-of-custody index parts the run calls for and says so; false when it
/// could not (the recordings are archived; the next run writes the index).
pub(crate) async fn write_index(
    ledger: &archiver::Ledger,
    sink: &dyn sink::ObjectSink,
    prefix: &str,
    signer: Option<&archiver::IndexSigner>,
    out: Option<&output::Output>,
    anchor: Option<&archiver::IndexAnchor>,
) -> bool {
    match archiver::write_index(ledger, sink, prefix, chrono::Utc::now(), signer).await {
        Ok(parts) => {
            if let Some(out) = out {
                out.note_index_parts(&parts);
            }
            if let Some(anchor) = anchor
                && let Err(e) = anchor.record(&parts).await
            {
                println!("index: the anchor was not written: {e}");
                return false;
            }
            for p in parts {
                println!(
                    "index: part {} written to {} ({} objects)",
                    p.seq, p.key, p.entries
                );
            }
            true
        }
        Err(e) => {
            println!("index: not written: {e} (the next run writes it)");
            false
        }
    }
}

pub(crate) async fn run_archive(
    a: ArchiveArgs,
    file: &FileConfig,
) -> Result<ExitCode, ConfigError> {
    let zone = a.tz.zone()?;
    let from = parse_time("from", &a.from, zone)?;
    let to = parse_time("to", &a.to, zone)?;
    if from >= to {
        return Err(config_err(format!(
            "--from {} must be before --to {}",
            a.from, a.to
        )));
    }
    if a.scale_out {
        // Instances share a backfill by its interval: "now" or "7d" would name another one
        // on every machine, and each would list it alone.
        for (flag, v) in [("--from", &a.from), ("--to", &a.to)] {
            if v.trim() == "now" || crate::settings::parse_duration(flag, v).is_ok() {
                return Err(config_err(format!(
                    "{flag} {v:?} is relative; with --scale-out give a fixed time (e.g. 2026-11-01 or 2026-11-01T08:00:00Z) so every instance names the same backfill"
                )));
            }
        }
    }
    if a.scale_out && !archiver::Ledger::can_be_shared(&a.run.state.location(file)) {
        return Err(config_err(
            "--scale-out shares the backfill through the ledger: use a PostgreSQL ledger (--state postgres://...); a SQLite file serves one process",
        ));
    }
    let out = output::Output::new(&a.run.output, "archive")?;
    out.set_interval(from, to);
    let w = wire(&a.run, file).await?;
    if a.scale_out && w.client.config().source == genesys_media::SourceMode::CompatListing {
        return Err(config_err(
            "--scale-out lists conversations through analytics: use --source batch or per-recording, not compat",
        ));
    }
    let mut query = DiscoveryQuery::interval(from, to);
    query.media_types = w.media_types.clone();
    let shutdown = w.cfg.shutdown.clone();
    let ledger = w.cfg.ledger.clone();
    let store = w.sink.to_string();
    let sink = w.sink.clone();
    let index_signer = w.index_signer.clone();
    let index_anchor = w.index_anchor.clone();
    // Conversations the ledger holds as settled are listed but not resolved again; those
    // whose late window has passed since their last resolution are resolved once more.
    let present = w.client.now();
    let mut late = w.cfg.late_at(present);
    late.recheck_all = a.recheck;
    let stats = late.stats.clone();
    // Rechecks that came due since the last run (the interval may no longer reach their
    // conversations): resolved in this run's batch jobs, up to a thousand.
    // (A shared backfill's lister takes them into its chunks.)
    if let Some(l) = ledger.as_ref().filter(|_| !a.scale_out) {
        match l.due_rechecks(present, 1000).await {
            Ok(due) => query.waiting = due,
            Err(e) => return Err(config_err(format!("the ledger's due rechecks: {e}"))),
        }
    }
    let known = ledger
        .as_ref()
        .map(|l| l.known_conversations_with(late.clone()));
    let mut summary = if a.scale_out {
        let shared = archiver::SharedBackfill::for_interval(from, to, &query.media_types);
        let (mut s, outcome) = archiver::archive_shared(
            w.client.clone(),
            w.sink,
            query,
            w.cfg,
            out.handler(log_events(), None),
            &shared,
        )
        .await;
        match outcome {
            Ok(()) => {}
            Err(archiver::ContinuousError::Config(e)) => {
                return Err(config_err(format!(
                    "the source refused the configuration: {e}"
                )));
            }
            // The counts of what this instance did stay; the run is not complete.
            Err(e) => s.discovery_error = Some(format!("the shared backfill stopped: {e}")),
        }
        s
    } else {
        let mut s = archiver::archive(
            w.client.clone(),
            w.sink,
            w.client.discover_known(query, known),
            w.cfg,
            out.handler(log_events(), None),
        )
        .await;
        s.rechecked = stats.rechecked();
        s.late_files = stats.late_files();
        s
    };
    if let Some(l) = &ledger
        && let Ok((n, until)) = l.late_window_open(present).await
    {
        summary.late_window_open = n;
        summary.late_window_until = until;
    }
    let mut code = exit_for(&summary, shutdown.is_cancelled());
    if let (Some(prefix), Some(l)) = (&w.index_prefix, &ledger)
        && !shutdown.is_cancelled()
        && !write_index(
            l,
            sink.as_ref(),
            prefix,
            index_signer.as_deref(),
            Some(&out),
            index_anchor.as_ref(),
        )
        .await
        && code == 0
    {
        code = 1;
    }
    Ok(conclude(&out, &summary, &w.client, &store, ledger.as_ref(), code).await)
}
