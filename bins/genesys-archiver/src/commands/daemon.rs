//! `daemon`: poll continuously, keep a checkpoint, serve metrics.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use archiver::Event;
use chrono::Utc;
use clap::Args;
use genesys_media::DiscoveryQuery;

use crate::settings::{FileConfig, parse_duration};
use crate::times::parse_time;
use crate::{ConfigError, RunArgs, TzArg, conclude, config_err, log_events, metrics, output, wire};

#[derive(Args, Debug)]
pub(crate) struct DaemonArgs {
    /// Where the first poll starts when the ledger has no checkpoint: a date, a time, or
    /// 7d / 24h ago, as for archive --from [default: 24h].
    #[arg(long)]
    since: Option<String>,
    #[command(flatten)]
    tz: TzArg,
    /// Time between polls [default: 5m].
    #[arg(long)]
    interval: Option<String>,
    /// How far each poll reaches back before the checkpoint, for late recordings [default: 1h].
    #[arg(long)]
    overlap: Option<String>,
    /// Every this many polls one reads back the whole --overlap (a sweep); the polls between
    /// read back only --recent-overlap [default: 6].
    #[arg(long)]
    sweep_every: Option<u32>,
    /// How far the polls between sweeps read back before the checkpoint [default: 5m].
    #[arg(long)]
    recent_overlap: Option<String>,
    /// How far each poll stays behind now [default: 1m].
    #[arg(long)]
    settle: Option<String>,
    /// Let a poll's last batch of fewer than 100 conversations wait for later polls' until
    /// its oldest conversation ended this long ago (e.g. 30m): a quiet org's polls then share
    /// batch download jobs, for fewer API calls and later archival. The waiting
    /// conversations are kept in the ledger. Off by default.
    #[arg(long)]
    batch_wait: Option<String>,
    /// Run the inventory audit this often: every recording Genesys Cloud retains (created
    /// since --since) checked against the ledger, what is missing archived, orphans
    /// reported (about 2 API calls per 1,000 recordings held); 0s turns it off [default: 7d].
    #[arg(long, value_name = "DURATION")]
    inventory_every: Option<String>,
    /// With the inventory audit: archive the orphan recordings' own media too (kept even if
    /// never re-attached to a conversation; needs recording:orphan:view).
    #[arg(long)]
    archive_orphans: bool,
    /// Release at the source after each poll: set the delete date (now + --release-grace) of
    /// recordings whose conversation ended at least this long ago and whose copy is proven
    /// (as `release --execute` does; docs/guarantees.md). Each poll sends at most as many
    /// delete dates as --release-rate allows in half a poll interval. Off by default.
    #[arg(long, value_name = "DURATION")]
    release_after: Option<String>,
    /// With --release-after: the delete date set, from now (at least 25h) [default: 7d].
    #[arg(long, value_name = "DURATION", requires = "release_after")]
    release_grace: Option<String>,
    /// With --release-after: delete dates set per minute at most [default: 60].
    #[arg(long, value_name = "PER_MINUTE", requires = "release_after")]
    release_rate: Option<u32>,
    /// Serve Prometheus metrics, /healthz and /readyz on this address (e.g. 127.0.0.1:9464).
    #[arg(long, env = "GENESYS_ARCHIVER_METRICS_LISTEN")]
    metrics_listen: Option<String>,
    /// Poll once and exit (for cron-style scheduling and tests).
    #[arg(long)]
    once: bool,
    /// Share the work with the other instances on this PostgreSQL ledger: one lists each
    /// window, all resolve and archive its chunks, for about one instance's API calls
    /// (docs/operations.md, "Several instances").
    #[arg(long)]
    scale_out: bool,
    #[command(flatten)]
    pub(crate) run: RunArgs,
}

fn scale_out_requested(d: &DaemonArgs, fd: &crate::settings::FileDaemon) -> bool {
    d.scale_out || fd.scale_out.unwrap_or(false)
}

pub(crate) async fn run_daemon(d: DaemonArgs, file: &FileConfig) -> Result<ExitCode, ConfigError> {
    let fd = &file.daemon;
    let dur = |flag: &Option<String>, name: &str, filev: &Option<String>, def: Duration| match (
        flag, filev,
    ) {
        (Some(v), _) => parse_duration(&format!("--{name}"), v),
        (None, Some(v)) => parse_duration(&format!("daemon.{}", name.replace('-', "_")), v),
        (None, None) => Ok(def),
    };
    let interval = dur(
        &d.interval,
        "interval",
        &fd.interval,
        Duration::from_secs(300),
    )?;
    let overlap = dur(
        &d.overlap,
        "overlap",
        &fd.overlap,
        Duration::from_secs(3600),
    )?;
    let settle = dur(&d.settle, "settle", &fd.settle, Duration::from_secs(60))?;
    let recent_overlap = dur(
        &d.recent_overlap,
        "recent-overlap",
        &fd.recent_overlap,
        Duration::from_secs(300),
    )?;
    let batch_wait = match (&d.batch_wait, &fd.batch_wait) {
        (Some(v), _) => Some(parse_duration("--batch-wait", v)?),
        (None, Some(v)) => Some(parse_duration("daemon.batch_wait", v)?),
        (None, None) => None,
    };
    if scale_out_requested(&d, fd) && batch_wait.is_some() {
        return Err(config_err(
            "--batch-wait does not apply with --scale-out: the listing's chunks are resolved as they are",
        ));
    }
    let inventory_every = dur(
        &d.inventory_every,
        "inventory-every",
        &fd.inventory_every,
        Duration::from_secs(7 * 24 * 3600),
    )?;
    let sweep_every = d.sweep_every.or(fd.sweep_every).unwrap_or(6);
    if sweep_every == 0 {
        return Err(config_err(
            "--sweep-every must be at least 1 (1: every poll reads back the whole overlap)",
        ));
    }
    if recent_overlap > overlap {
        return Err(config_err(format!(
            "--recent-overlap ({}) must not exceed --overlap ({})",
            humantime::format_duration(recent_overlap),
            humantime::format_duration(overlap)
        )));
    }
    if interval.is_zero() {
        return Err(config_err("--interval must be longer than zero"));
    }
    let since = match d.since.as_ref().or(fd.since.as_ref()) {
        Some(v) => parse_time("since", v, d.tz.zone()?)?,
        None => Utc::now() - chrono::Duration::days(1),
    };
    let metrics_listen = d
        .metrics_listen
        .clone()
        .or_else(|| fd.metrics_listen.clone())
        .map(|a| {
            a.parse::<std::net::SocketAddr>().map_err(|e| {
                config_err(format!(
                    "--metrics-listen {a:?} is not an address such as 127.0.0.1:9464 ({e})"
                ))
            })
        })
        .transpose()?;
    let scale_out = scale_out_requested(&d, fd);
    let state = d.run.state.location(file);
    if scale_out && !archiver::Ledger::can_be_shared(&state) {
        return Err(config_err(
            "--scale-out shares the work through the ledger: use a PostgreSQL ledger (--state postgres://...); a SQLite file serves one process",
        ));
    }
    let out = output::Output::new(&d.run.output, "daemon")?;
    let w = wire(&d.run, file).await?;
    let release = match &d.release_after {
        None => None,
        Some(after) => Some(
            super::release::daemon_policy(
                after,
                d.release_grace.as_deref(),
                d.release_rate,
                interval,
                &w,
            )
            .await?,
        ),
    };
    let extra = match metrics_listen {
        Some(addr) => {
            let m = metrics::Metrics::new(w.client.clone());
            let bound =
                m.clone().serve(addr).await.map_err(|e| {
                    config_err(format!("--metrics-listen {addr}: cannot listen: {e}"))
                })?;
            tracing::info!(%bound, "serving /metrics, /healthz and /readyz");
            Some(Arc::new(move |e: &Event| m.observe(e)) as Arc<dyn archiver::EventHandler>)
        }
        None => None,
    };
    if scale_out && w.client.config().source == genesys_media::SourceMode::CompatListing {
        return Err(config_err(
            "--scale-out lists conversations through analytics: use --source batch or per-recording, not compat",
        ));
    }
    let events = out.handler(log_events(), extra);
    let ledger = w.cfg.ledger.clone();
    let store = w.sink.to_string();
    let poll = archiver::PollSettings {
        start: since,
        interval,
        overlap,
        sweep_every,
        recent_overlap,
        settle,
        max_polls: d.once.then_some(1),
        index_prefix: w.index_prefix.clone(),
        index_signer: w.index_signer.clone(),
        index_anchor: w.index_anchor.clone(),
        scale_out: scale_out.then(archiver::ScaleOut::default),
        batch_wait,
        inventory_every: (!inventory_every.is_zero()).then_some(inventory_every),
        archive_orphans: d.archive_orphans,
        release,
        ..archiver::PollSettings::default()
    };
    let media_types = w.media_types.clone();
    let checkpoint = poll.checkpoint.clone();
    let shutdown = w.cfg.shutdown.clone();
    tracing::info!(
        ledger = w.cfg.ledger.as_ref().map(|l| l.location().to_string()),
        sink = %w.sink,
        ?interval,
        ?overlap,
        "daemon started"
    );
    let result = archiver::run_continuous(
        w.client.clone(),
        w.sink,
        move |from, to| {
            let mut q = DiscoveryQuery::interval(from, to);
            q.media_types = media_types.clone();
            q
        },
        w.cfg,
        poll,
        events,
    )
    .await;
    match result {
        Ok(summary) => {
            if scale_out && let Some(l) = &ledger {
                report_backlog(l, &checkpoint).await;
            }
            // `--once` (cron): exit 0 only when its poll was done; a poll cut short, or with
            // work the ledger does not hold, is read again by the next one.
            let code = if d.once && summary.unreconciled_polls > 0 && !shutdown.is_cancelled() {
                eprintln!(
                    "the poll did not complete (see the summary): its checkpoint stayed, and the next poll reads its window again"
                );
                1
            } else {
                0
            };
            let code = conclude(&out, &summary, &w.client, &store, ledger.as_ref(), code).await;
            if shutdown.is_cancelled() {
                println!("daemon stopped by signal; state saved");
            }
            Ok(code)
        }
        Err(archiver::ContinuousError::Config(m)) => Err(config_err(m)),
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// Scale-out: what waits in the ledger when this instance stops (other instances, or this
/// one's next start, take it up).
async fn report_backlog(ledger: &archiver::Ledger, name: &str) {
    match ledger.chunk_backlog(name).await {
        Ok(b) if b.chunks == 0 => println!("shared work: no chunk waits in the ledger"),
        Ok(b) => {
            println!(
                "shared work: {} chunks ({} conversations, earliest start {}) wait in the ledger for any instance{}",
                b.chunks,
                b.conversations,
                b.earliest_start.as_deref().unwrap_or("unknown"),
                b.last_error
                    .map(|e| format!("; last error: {e}"))
                    .unwrap_or_default()
            )
        }
        Err(e) => eprintln!("shared work: cannot read the chunks in the ledger: {e}"),
    }
}
