//! What a run shows and leaves behind: a progress bar on a terminal, log lines otherwise, a
//! JSON run report and a CSV manifest of archived objects (compliance evidence).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use archiver::{Event, EventHandler, Ledger, Summary};
use chrono::{DateTime, Utc};
use clap::Args;
use genesys_media::GenesysClient;
use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::{ConfigError, config_err};

/// Output settings shared by the archiving commands.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct OutputArgs {
    /// Write a JSON run report here (counts, failures, API calls, times, exit code).
    #[arg(long)]
    pub(crate) report: Option<PathBuf>,
    /// Write a CSV manifest of every object archived in this run here (key, size, MD5,
    /// conversation, recording, times).
    #[arg(long)]
    pub(crate) manifest: Option<PathBuf>,
    /// Progress bar: auto shows it when stderr is a terminal.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub(crate) progress: ProgressMode,
}

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ProgressMode {
    #[default]
    Auto,
    Always,
    Never,
}

/// How often a run without a progress bar prints a progress line.
const PROGRESS_LINE_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Event counts for the progress output.
#[derive(Debug, Default)]
struct Counts {
    found: std::sync::atomic::AtomicU64,
    done: std::sync::atomic::AtomicU64,
    retries: std::sync::atomic::AtomicU64,
    failed: std::sync::atomic::AtomicU64,
    pending: std::sync::atomic::AtomicU64,
}

impl Counts {
    fn count(&self, e: &Event) {
        let c = match e {
            Event::Discovered { .. } => &self.found,
            Event::Archived { .. } | Event::Skipped { .. } | Event::Unavailable { .. } => {
                &self.done
            }
            Event::Failed { .. } => {
                self.done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                &self.failed
            }
            Event::Retrying { .. } => &self.retries,
            Event::NotArchivable { .. } => &self.pending,
            _ => return,
        };
        c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn load(&self, c: &std::sync::atomic::AtomicU64) -> u64 {
        c.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn done(&self) -> u64 {
        self.load(&self.done)
    }

    /// `, 3 retries, 1 failed` (only what is not zero).
    fn problems(&self) -> String {
        let mut out = String::new();
        for (n, what) in [
            (self.load(&self.retries), "retries"),
            (self.load(&self.failed), "failed"),
            (self.load(&self.pending), "not archivable yet"),
        ] {
            if n > 0 {
                out.push_str(&format!(", {n} {what}"));
            }
        }
        out
    }
}

/// A recording archived in this run, and when.
type ArchivedAt = (String, DateTime<Utc>);

/// The event hook of one run plus what it writes at the end.
pub(crate) struct Output {
    args: OutputArgs,
    command: &'static str,
    started_at: DateTime<Utc>,
    bar: Option<ProgressBar>,
    archived: Arc<Mutex<Vec<ArchivedAt>>>,
    /// The interval the run covered, when it had one.
    interval: Mutex<Option<(DateTime<Utc>, DateTime<Utc>)>>,
    /// Index parts the run wrote.
    index_parts: Mutex<Vec<archiver::IndexPart>>,
}

/// An index part in the report.
#[derive(Serialize)]
struct ReportPart {
    seq: u64,
    key: String,
    sha256: Option<String>,
    entries: u64,
}

/// The interval in the report.
#[derive(Serialize)]
struct ReportInterval {
    from: String,
    to: String,
}

#[derive(Serialize)]
struct Report<'a> {
    command: &'a str,
    /// The version of the tool that ran.
    tool_version: &'static str,
    /// The interval the run covered (`archive --from/--to`).
    interval: Option<ReportInterval>,
    started_at: String,
    finished_at: String,
    duration_seconds: f64,
    /// The run was stopped before it finished (a signal, or the source not drained): its
    /// counts cover only what it reached, and it is never clean.
    interrupted: bool,
    /// Index parts written by this run, with their digests (anchors for an auditor).
    index_parts: Vec<ReportPart>,
    store: String,
    ledger: Option<String>,
    summary: &'a Summary,
    /// What the source listed against what was archived or reported with a reason; the exit
    /// code is 0 only when it is clean.
    reconciliation: archiver::Reconciliation,
    api_calls: u64,
    /// The same calls by endpoint (its path with ids as `{id}`) and status, e.g.
    /// `"POST /api/v2/analytics/conversations/details/query 200": 12`.
    api_calls_by_endpoint: std::collections::BTreeMap<String, u64>,
    api_throttled: u64,
    /// Token requests that got no token (a login host having a bad moment, or refused
    /// credentials).
    api_token_failures: u64,
    /// Seconds API calls waited for the client's pacing or a `Retry-After`, summed over
    /// concurrent calls.
    api_wait_seconds: f64,
    /// Ledger writes and the transactions (fsyncs) that made them durable: several workers'
    /// writes share one transaction (group commit). SQLite counts every write; PostgreSQL
    /// the claims and outcomes, which are the ones it groups.
    ledger_writes: Option<u64>,
    ledger_commits: Option<u64>,
    exit_code: u8,
}

#[derive(Serialize)]
struct ManifestRow<'a> {
    key: &'a str,
    size: Option<u64>,
    md5: Option<&'a str>,
    sha256: Option<&'a str>,
    conversation_id: &'a str,
    recording_id: &'a str,
    start_time: Option<&'a str>,
    end_time: Option<&'a str>,
    archived_at: String,
}

impl Output {
    /// Records the interval the run covers, for the report.
    pub(crate) fn set_interval(&self, from: DateTime<Utc>, to: DateTime<Utc>) {
        *self.interval.lock().unwrap_or_else(|p| p.into_inner()) = Some((from, to));
    }

    /// Records index parts the run wrote, for the report.
    pub(crate) fn note_index_parts(&self, parts: &[archiver::IndexPart]) {
        self.index_parts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(parts.iter().cloned());
    }

    /// Checks the paths can be written (before any work) and sets up the progress bar.
    pub(crate) fn new(args: &OutputArgs, command: &'static str) -> Result<Self, ConfigError> {
        for (flag, p) in [("--report", &args.report), ("--manifest", &args.manifest)] {
            if let Some(p) = p {
                let existed = p.exists();
                std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(p)
                    .map_err(|e| {
                        config_err(format!("{flag} {}: cannot write it: {e}", p.display()))
                    })?;
                // Only a check: no empty file is left should the run stop before its end.
                if !existed {
                    let _ = std::fs::remove_file(p);
                }
            }
        }
        let show = match args.progress {
            ProgressMode::Always => true,
            ProgressMode::Never => false,
            ProgressMode::Auto => std::io::stderr().is_terminal(),
        };
        let bar = show.then(|| {
            let pb = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            pb.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} recordings  {msg}  ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            pb.enable_steady_tick(std::time::Duration::from_millis(200));
            pb
        });
        Ok(Self {
            args: args.clone(),
            command,
            started_at: Utc::now(),
            bar,
            archived: Arc::new(Mutex::new(Vec::new())),
            interval: Mutex::new(None),
            index_parts: Mutex::new(Vec::new()),
        })
    }

    /// The event hook: logs, the progress bar, the manifest's list, and `extra` (metrics).
    pub(crate) fn handler(
        &self,
        log: Arc<dyn EventHandler>,
        extra: Option<Arc<dyn EventHandler>>,
    ) -> Arc<dyn EventHandler> {
        let bar = self.bar.clone();
        // Kept only for a manifest: a daemon without one must not grow with every recording.
        let archived = self.args.manifest.is_some().then(|| self.archived.clone());
        let bytes = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let started = std::time::Instant::now();
        let counts = Arc::new(Counts::default());
        // Without a bar (not a terminal), one progress line every 10 s unless --progress never.
        let lines = (self.bar.is_none() && self.args.progress != ProgressMode::Never)
            .then(|| Arc::new(Mutex::new(std::time::Instant::now())));
        Arc::new(move |e: &Event| {
            counts.count(e);
            if let Some(x) = &extra {
                x.handle(e);
            }
            match &bar {
                // Warnings still go to the log, drawn above the bar.
                Some(pb) => pb.suspend(|| log.handle(e)),
                None => log.handle(e),
            }
            if let Event::Archived {
                recording_id, size, ..
            } = e
            {
                if let Some(archived) = &archived {
                    archived
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((recording_id.clone(), Utc::now()));
                }
                bytes.fetch_add(*size, std::sync::atomic::Ordering::Relaxed);
            }
            if let Some(pb) = &bar {
                match e {
                    Event::Discovered { .. } => pb.inc_length(1),
                    Event::Archived { .. }
                    | Event::Skipped { .. }
                    | Event::Failed { .. }
                    | Event::Unavailable { .. } => {
                        pb.inc(1);
                        let b = bytes.load(std::sync::atomic::Ordering::Relaxed);
                        let secs = started.elapsed().as_secs_f64().max(0.001);
                        pb.set_message(format!(
                            "{} at {}/s{}",
                            HumanBytes(b),
                            HumanBytes((b as f64 / secs) as u64),
                            counts.problems()
                        ));
                    }
                    Event::Retrying { .. } => {
                        pb.set_message(format!(
                            "{}{}",
                            HumanBytes(bytes.load(std::sync::atomic::Ordering::Relaxed)),
                            counts.problems()
                        ));
                    }
                    _ => {}
                }
            }
            if let Some(last) = &lines {
                let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
                if last.elapsed() >= PROGRESS_LINE_EVERY {
                    *last = std::time::Instant::now();
                    let b = bytes.load(std::sync::atomic::Ordering::Relaxed);
                    eprintln!(
                        "progress: {} of {} recordings done, {}{}",
                        counts.done(),
                        counts.load(&counts.found),
                        HumanBytes(b),
                        counts.problems()
                    );
                }
            }
        })
    }

    /// The time since the run started, as people read it (`2m 05s`, `1h 02m`, `4.2 s`).
    pub(crate) fn elapsed_text(&self) -> String {
        let secs = (Utc::now() - self.started_at).num_milliseconds().max(0) as f64 / 1000.0;
        match secs as u64 {
            s if s < 60 => format!("{secs:.1} s"),
            s if s < 3600 => format!("{}m {:02}s", s / 60, s % 60),
            s => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
        }
    }

    /// Clears the bar, prints nothing else; writes the report and manifest when asked.
    pub(crate) async fn finish(
        &self,
        summary: &Summary,
        client: &GenesysClient,
        store: &str,
        ledger: Option<&Ledger>,
        exit_code: u8,
    ) {
        if let Some(pb) = &self.bar {
            pb.finish_and_clear();
        }
        if let Some(path) = &self.args.report {
            let calls = client.metrics().snapshot();
            let finished = Utc::now();
            let interval = *self.interval.lock().unwrap_or_else(|p| p.into_inner());
            let parts = self
                .index_parts
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(|p| ReportPart {
                    seq: p.seq,
                    key: p.key.clone(),
                    sha256: p.sha256.clone(),
                    entries: p.entries,
                })
                .collect();
            let report = Report {
                command: self.command,
                tool_version: env!("CARGO_PKG_VERSION"),
                interval: interval.map(|(from, to)| ReportInterval {
                    from: from.to_rfc3339(),
                    to: to.to_rfc3339(),
                }),
                started_at: self.started_at.to_rfc3339(),
                finished_at: finished.to_rfc3339(),
                duration_seconds: (finished - self.started_at).num_milliseconds() as f64 / 1000.0,
                interrupted: exit_code == 130
                    || summary.source_incomplete
                    || summary.interrupted > 0,
                index_parts: parts,
                store: store.to_string(),
                ledger: ledger.map(|l| l.location().to_string()),
                summary,
                reconciliation: summary.reconcile(),
                api_calls: calls.total_calls(),
                api_calls_by_endpoint: calls
                    .calls
                    .iter()
                    .map(|((endpoint, status), n)| (format!("{endpoint} {status}"), *n))
                    .collect(),
                api_throttled: calls.throttled(),
                api_token_failures: calls.token_failures,
                api_wait_seconds: calls.waited_seconds(),
                ledger_writes: ledger.and_then(|l| l.commit_counts()).map(|c| c.1),
                ledger_commits: ledger.and_then(|l| l.commit_counts()).map(|c| c.0),
                exit_code,
            };
            let written = serde_json::to_vec_pretty(&report)
                .map_err(|e| e.to_string())
                .and_then(|j| write_atomically(path, &j).map_err(|e| e.to_string()));
            if let Err(e) = written {
                eprintln!("error: --report {}: {e}", path.display());
            }
        }
        if let Some(path) = &self.args.manifest
            && let Err(e) = self.write_manifest(path, ledger).await
        {
            eprintln!("error: --manifest {}: {e}", path.display());
        }
    }

    async fn write_manifest(&self, path: &PathBuf, ledger: Option<&Ledger>) -> Result<(), String> {
        let archived = self
            .archived
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut w = csv::Writer::from_path(path).map_err(|e| e.to_string())?;
        for (rid, at) in archived {
            let entry = match ledger {
                Some(l) => l.entry(&rid).await.map_err(|e| e.to_string())?,
                None => None,
            };
            let Some(e) = entry else { continue };
            w.serialize(ManifestRow {
                key: &e.key,
                size: e.size,
                md5: e.md5.as_deref(),
                sha256: e.sha256.as_deref(),
                conversation_id: &e.conversation_id,
                recording_id: &e.recording_id,
                start_time: e.start_time.as_deref(),
                end_time: e.end_time.as_deref(),
                archived_at: at.to_rfc3339(),
            })
            .map_err(|e| e.to_string())?;
        }
        w.flush().map_err(|e| e.to_string())
    }
}

/// Writes `bytes` to `path` whole or not at all: a temporary file beside it, flushed, then
/// renamed over it, so a reader (or a crash) never meets half a report.
pub(crate) fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report".into());
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_counts_retries_failures_and_pending() {
        let c = Counts::default();
        let rid = || "r".to_string();
        for e in [
            Event::Discovered {
                recording_id: rid(),
            },
            Event::Discovered {
                recording_id: rid(),
            },
            Event::Retrying {
                recording_id: rid(),
                attempt: 1,
                reason: "503".into(),
                wait: std::time::Duration::ZERO,
            },
            Event::Failed {
                recording_id: rid(),
                reason: "x".into(),
                integrity: false,
            },
            Event::Skipped {
                recording_id: rid(),
                key: "k".into(),
            },
            Event::NotArchivable {
                conversation_id: "c".into(),
                recording_id: String::new(),
                reason: "in progress".into(),
                pending: true,
            },
        ] {
            c.count(&e);
        }
        assert_eq!((c.load(&c.found), c.done()), (2, 2));
        assert_eq!(c.problems(), ", 1 retries, 1 failed, 1 not archivable yet");
        assert_eq!(
            Counts::default().problems(),
            "",
            "nothing to report: nothing said"
        );
    }
}
