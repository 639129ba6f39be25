//! `genesys-archiver` and `genesys-archiverd`: archive Genesys Cloud call recordings into
//! S3-compatible object storage, verified end to end. Argument parsing and wiring only; the
//! work is in the library crates.

mod metrics;
mod output;
mod settings;
mod times;

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use archiver::{ArchiverConfig, CancellationToken, Event, RecordStatus, Summary};
use chrono::{DateTime, Utc};
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use futures::StreamExt;
use genesys_media::{ClientConfig, DiscoveryQuery, Environment, GenesysClient, MediaPolicy};
use genesys_sim::{Fault, FaultSpec, SimConfig, Simulator};
use sink::{LocalDirSink, ObjectSink};

use settings::{FileConfig, SourceArgs, StateArgs, StoreArgs, parse_duration};
use times::{Zone, parse_time, parse_zone};

/// Exit code for configuration and usage errors (clap uses it too).
const EXIT_CONFIG: u8 = 2;
/// Exit code when a signal cut an `archive` run short (after draining).
const EXIT_INTERRUPTED: u8 = 130;

#[derive(Parser, Debug)]
#[command(
    name = "genesys-archiver",
    version,
    about = "Archive Genesys Cloud call recordings into S3-compatible object storage, verified end to end.",
    after_help = concat!("Examples:\n  genesys-archiver demo\n  GENESYS_CLIENT_ID=... GENESYS_CLIENT_SECRET_FILE=/run/secrets/genesys GENESYS_REGION=mypurecloud.de \\\n    S3_BUCKET=recordings AWS_REGION=eu-central-1 \\\n    genesys-archiver archive --from 2026-11-01T00:00:00Z --to 2026-11-02T00:00:00Z\n  genesys-archiver daemon --config /etc/genesys-archiver.toml --metrics-listen 127.0.0.1:9464\n  genesys-archiver verify --from 2026-11-01T00:00:00Z --to 2026-11-02T00:00:00Z --rehash\n  genesys-archiver quarantine list\n  genesys-archiver sim --listen 127.0.0.1:8080 --recordings 1000 --seed 7\n\n",
    "Exit codes: 0 all archived (or nothing to do), 1 some recording failed or waits in quarantine, 2 configuration or usage error, 130 interrupted by a signal (in-flight work drained, state saved).")
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "GENESYS_ARCHIVER_LOG_FORMAT")]
    log_format: LogFormat,
    /// TOML configuration file; flags and environment variables override it.
    #[arg(long, global = true, env = "GENESYS_ARCHIVER_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Archive the recordings of conversations started in an interval (a backfill).
    Archive(Box<ArchiveArgs>),
    /// Run continuously: poll for new recordings, archive them, retry failures.
    Daemon(Box<DaemonArgs>),
    /// Audit the archive: every archived recording is in the store with its size and MD5.
    Verify(Box<VerifyArgs>),
    /// List or release recordings held in quarantine.
    #[command(subcommand)]
    Quarantine(QuarantineCommand),
    /// Inspect or rebuild the ledger.
    #[command(subcommand)]
    Ledger(LedgerCommand),
    /// Check the configuration: credentials, bucket access, ledger. Archives nothing.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a shell completion script.
    Completions {
        /// Shell.
        shell: clap_complete::Shell,
    },
    /// Run the built-in demo: a simulated org archived into a local directory. No setup.
    Demo(DemoArgs),
    /// Run the Genesys Cloud simulator and print its base URL.
    Sim(SimArgs),
}

/// Settings every archiving command shares.
#[derive(Args, Debug, Clone)]
struct RunArgs {
    #[command(flatten)]
    source: SourceArgs,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    state: StateArgs,
    /// Recordings processed at the same time [default: 4].
    #[arg(long, env = "GENESYS_ARCHIVER_WORKERS")]
    workers: Option<usize>,
    /// Time in-flight uploads get to finish after SIGINT/SIGTERM [default: 30s].
    #[arg(long)]
    drain_timeout: Option<String>,
    #[command(flatten)]
    output: output::OutputArgs,
}

/// `--tz`, shared by the commands that take times.
#[derive(Args, Debug, Clone)]
struct TzArg {
    /// Time zone of dates and times given without an offset: UTC, +02:00, or a name such as
    /// Europe/Berlin [default: UTC].
    #[arg(long, env = "GENESYS_ARCHIVER_TZ")]
    tz: Option<String>,
}

impl TzArg {
    fn zone(&self) -> Result<Zone, ConfigError> {
        self.tz.as_deref().map_or(Ok(Zone::default()), parse_zone)
    }
}

#[derive(Args, Debug)]
struct ArchiveArgs {
    /// Interval start: 2026-11-01 (midnight in --tz), 2026-11-01T08:30 (in --tz),
    /// 2026-11-01T08:30:00Z (RFC 3339), 7d or 24h (that long ago), now.
    #[arg(long)]
    from: String,
    /// Interval end (exclusive), in the same forms.
    #[arg(long)]
    to: String,
    #[command(flatten)]
    tz: TzArg,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Args, Debug)]
struct DaemonArgs {
    #[command(flatten)]
    run: RunArgs,
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
    /// How far each poll stays behind now [default: 1m].
    #[arg(long)]
    settle: Option<String>,
    /// Serve Prometheus metrics, /healthz and /readyz on this address (e.g. 127.0.0.1:9464).
    #[arg(long, env = "GENESYS_ARCHIVER_METRICS_LISTEN")]
    metrics_listen: Option<String>,
    /// Poll once and exit (for cron-style scheduling and tests).
    #[arg(long)]
    once: bool,
}

#[derive(Args, Debug)]
struct VerifyArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    state: StateArgs,
    /// Only recordings that started at or after this time (forms as for archive --from).
    #[arg(long)]
    from: Option<String>,
    /// Only recordings that started before this time.
    #[arg(long)]
    to: Option<String>,
    #[command(flatten)]
    tz: TzArg,
    /// Read every object back and compare its MD5 with the ledger's (slow; reads all bytes).
    #[arg(long)]
    rehash: bool,
    /// Also list the store and report objects under the key prefix the ledger does not know.
    #[arg(long)]
    extra: bool,
    /// Also ask Genesys Cloud which recordings the interval (--from/--to) holds and report
    /// each one that is not archived (needs the Genesys settings).
    #[arg(long, requires_all = ["from", "to"])]
    against_source: bool,
    #[command(flatten)]
    source: SourceArgs,
}

#[derive(Subcommand, Debug)]
enum QuarantineCommand {
    /// List quarantined recordings with their reasons.
    List {
        #[command(flatten)]
        state: StateArgs,
    },
    /// Release quarantined recordings (all, or the given ids) and archive them again now.
    Retry {
        /// Recording ids; none means every quarantined recording.
        ids: Vec<String>,
        #[command(flatten)]
        run: Box<RunArgs>,
    },
}

#[derive(Subcommand, Debug)]
enum LedgerCommand {
    /// List ledger rows (tab-separated: status, recording, conversation, size, md5, key).
    List {
        #[command(flatten)]
        state: StateArgs,
        /// Only rows with this status.
        #[arg(long, value_parser = ["pending", "archived", "failed", "quarantined"])]
        status: Option<String>,
    },
    /// Rebuild the ledger from the objects in the store (after losing the ledger file).
    Rebuild {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        state: StateArgs,
    },
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Validate every setting, get a token, reach the bucket and open the ledger.
    Check {
        #[command(flatten)]
        run: Box<RunArgs>,
    },
}

#[derive(Args, Debug)]
struct DemoArgs {
    /// Directory to archive into.
    #[arg(long, default_value = "demo-archive")]
    out: PathBuf,
    /// Recordings in the simulated org.
    #[arg(long, default_value_t = 300)]
    recordings: usize,
    /// Recordings processed at the same time.
    #[arg(long, default_value_t = 4)]
    workers: usize,
}

#[derive(Args, Debug)]
struct SimArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
    /// Recordings in the simulated org.
    #[arg(long, default_value_t = 50)]
    recordings: usize,
    /// Seed of the generated org and media.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Injected faults, INDEX=KIND[xTIMES]; repeatable.
    #[arg(long = "fault")]
    faults: Vec<String>,
    /// Per-token request budget per minute.
    #[arg(long, default_value_t = 300)]
    rate_limit: u32,
    /// Smallest and largest media size in bytes, e.g. 16384..262144.
    #[arg(long, default_value = "16384..262144")]
    sizes: String,
    /// Write every recording's signed media URL here (recording id, extension, URL; tab
    /// separated), for benchmarking other tools on the same downloads. Also computes every
    /// body's MD5 (the media ETag) before the base URL is printed, so that no timed download
    /// waits for the simulator to hash a body.
    #[arg(long)]
    urls_out: Option<PathBuf>,
    /// Start of the generated conversations (RFC 3339) [default: 3 days ago].
    #[arg(long)]
    start: Option<String>,
    /// Width of the generated range, e.g. 2d or 45d [default: 2d].
    #[arg(long)]
    span: Option<String>,
    /// How far the analytics data lake lags behind now (jobs hold data up to now minus this).
    #[arg(long, default_value = "24h")]
    data_lake_lag: String,
    /// How long recordings stay UPLOADING after their conversation ends.
    #[arg(long, default_value = "0s")]
    upload_lag: String,
    /// The N most recent conversations start out still in progress (no conversationEnd,
    /// recordings UPLOADING).
    #[arg(long, default_value_t = 0)]
    hold_open: usize,
    /// How long --hold-open conversations stay open (0s: until the simulator stops).
    #[arg(long, default_value = "0s")]
    hold_open_for: String,
    /// Statuses the login host answers to the first token requests, in order (e.g.
    /// --login-fault 503 --login-fault 429); repeatable.
    #[arg(long = "login-fault")]
    login_faults: Vec<u16>,
    /// The first N API requests answer 429 with --retry-after.
    #[arg(long, default_value_t = 0)]
    throttle_first: u32,
    /// Retry-After (seconds) of injected 429s; over 180 rehearses a long wait.
    #[arg(long, default_value_t = 1)]
    retry_after: u64,
}

/// A configuration error: printed with `error:` and exit code 2.
#[derive(Debug)]
pub(crate) struct ConfigError(String);

pub(crate) fn config_err(msg: impl Into<String>) -> ConfigError {
    ConfigError(msg.into())
}

/// Runs the CLI with `args` (argv including the program name) and returns the exit code.
pub fn main_with(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = Cli::parse_from(args);
    init_logging(cli.log_format);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = rt.block_on(async {
        let file = match &cli.config {
            Some(p) => FileConfig::load(p)?,
            None => FileConfig::default(),
        };
        match cli.command {
            Command::Archive(a) => run_archive(*a, &file).await,
            Command::Daemon(d) => run_daemon(*d, &file).await,
            Command::Verify(v) => run_verify(*v, &file).await,
            Command::Quarantine(q) => run_quarantine(q, &file).await,
            Command::Ledger(l) => run_ledger(l, &file).await,
            Command::Config(ConfigCommand::Check { run }) => run_config_check(*run, &file).await,
            Command::Completions { shell } => {
                clap_complete::generate(
                    shell,
                    &mut Cli::command(),
                    "genesys-archiver",
                    &mut std::io::stdout(),
                );
                Ok(ExitCode::SUCCESS)
            }
            Command::Demo(d) => run_demo(d).await,
            Command::Sim(s) => run_sim(s).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(ConfigError(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,genesys_archiver=info"));
    // Colours only on a terminal: a journal or a log file gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

pub(crate) fn parse_bool(name: &str, v: &str) -> Result<bool, ConfigError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        _ => Err(config_err(format!(
            "{name} must be true or false, not {v:?}"
        ))),
    }
}

/// Cancels `token` on the first SIGINT or SIGTERM (drain), exits at once on the second.
fn cancel_on_signals(token: CancellationToken) {
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch SIGTERM");
                    let _ = tokio::signal::ctrl_c().await;
                    token.cancel();
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::warn!(
            "shutting down: no new recordings; in-flight uploads get the drain timeout (signal again to stop at once)"
        );
        token.cancel();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        eprintln!("second signal: stopping now; unfinished recordings stay pending in the ledger");
        std::process::exit(EXIT_INTERRUPTED as i32);
    });
}

/// Everything an archiving command needs, built and checked from the settings.
struct Wired {
    client: GenesysClient,
    sink: Arc<dyn ObjectSink>,
    cfg: ArchiverConfig,
    media_types: Vec<String>,
}

async fn wire(run: &RunArgs, file: &FileConfig) -> Result<Wired, ConfigError> {
    let workers = run.workers.or(file.workers).unwrap_or(4);
    if workers == 0 || workers > 256 {
        return Err(config_err(format!(
            "--workers must be between 1 and 256, not {workers}"
        )));
    }
    let drain = match &run.drain_timeout {
        Some(v) => parse_duration("--drain-timeout", v)?,
        None => match &file.daemon.drain_timeout {
            Some(v) => parse_duration("daemon.drain_timeout", v)?,
            None => Duration::from_secs(30),
        },
    };
    let source = run.source.resolve(file)?;
    let store = run.store.resolve(file)?;
    let client = settings::connect_source(&source).await?;
    let sink = settings::connect_store(&store).await?;
    let ledger = run.state.open(file).await?;
    let prefix = StoreArgs::prefix(&store);
    // Aborts only the multipart uploads the ledger recorded for writers that are gone.
    match archiver::sweep_uploads(sink.as_ref(), &ledger, &prefix).await {
        Ok(s) => {
            if !s.aborted.is_empty() || s.temp_files_removed > 0 {
                tracing::info!(
                    aborted = s.aborted.len(),
                    temp_files = s.temp_files_removed,
                    "aborted uploads left by an earlier run"
                );
            }
            if !s.failed.is_empty() {
                tracing::warn!(
                    n = s.failed.len(),
                    "could not abort uploads left by an earlier run; the next start tries again"
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "startup sweep of unfinished uploads failed"),
    }
    let cfg = ArchiverConfig {
        ledger: Some(ledger),
        workers,
        key_template: store.key_template.clone(),
        verify_source_etag: source.verify_source_etag,
        drain_timeout: drain,
        ..ArchiverConfig::default()
    };
    cancel_on_signals(cfg.shutdown.clone());
    Ok(Wired {
        client,
        sink,
        cfg,
        media_types: source.media_types,
    })
}

/// Logs events: failures and unavailable recordings as warnings, the rest at debug.
fn log_events() -> Arc<dyn archiver::EventHandler> {
    Arc::new(|e: &Event| match e {
        Event::Failed {
            recording_id,
            reason,
            ..
        } => tracing::warn!(recording_id, reason, "recording failed"),
        Event::Quarantined {
            recording_id,
            reason,
        } => tracing::warn!(recording_id, reason, "recording quarantined"),
        Event::Unavailable {
            recording_id,
            reason,
        } => {
            tracing::warn!(recording_id, reason, "recording unavailable at the source")
        }
        Event::Retrying {
            recording_id,
            attempt,
            reason,
            wait,
        } => {
            // Retries are the retry table doing its job: counted in the progress output, logged
            // only at debug (RUST_LOG=genesys_archiver=debug). Failures are warnings.
            tracing::debug!(recording_id, attempt, ?wait, reason, "retrying")
        }
        Event::Archived {
            recording_id,
            key,
            size,
            md5,
            ..
        } => tracing::debug!(recording_id, key, size, md5, "archived"),
        Event::Polled {
            from,
            to,
            found,
            archived,
            failed,
            pending,
            not_discoverable,
            discovery_error,
            checkpoint_advanced,
            known_conversations,
            api_calls,
        } => {
            let calls: u64 = api_calls.values().sum();
            tracing::info!(%from, %to, found, archived, failed, pending, not_discoverable, known_conversations, calls, ?api_calls, ?discovery_error, checkpoint_advanced, "poll finished")
        }
        Event::NotArchivable {
            conversation_id,
            recording_id,
            reason,
            pending: true,
        } => tracing::debug!(
            conversation_id,
            recording_id,
            reason,
            "not ready at the source yet"
        ),
        Event::NotArchivable {
            conversation_id,
            recording_id,
            reason,
            pending: false,
        } => tracing::warn!(conversation_id, recording_id, reason, "not archivable"),
        // continuous mode logs it as a warning itself
        Event::ClockJump { .. } => {}
        other => tracing::trace!(?other),
    })
}

fn print_summary(summary: &Summary, client: &GenesysClient) {
    let calls = client.metrics().snapshot();
    for f in &summary.failures {
        match f.kind {
            archiver::ReportKind::NotDiscoverable => println!("not discoverable: {}", f.reason),
            archiver::ReportKind::Pending if f.recording_id.is_empty() => {
                println!("pending: conversation {}: {}", f.conversation_id, f.reason)
            }
            kind => {
                let what = match kind {
                    archiver::ReportKind::Unavailable => "unavailable",
                    archiver::ReportKind::Pending => "pending",
                    _ => "failed",
                };
                let recording = if f.recording_id.is_empty() {
                    String::new()
                } else {
                    format!(" recording {}", f.recording_id)
                };
                println!(
                    "{what}: conversation {}{recording}: {}",
                    f.conversation_id, f.reason
                );
            }
        }
    }
    if let Some(e) = &summary.discovery_error {
        println!("discovery stopped: {e}");
    }
    println!(
        "{}; {} API calls, {} throttled, {:.1} s held for the rate budget",
        summary.line(),
        calls.total_calls(),
        calls.throttled(),
        calls.waited_seconds()
    );
}

fn exit_for(summary: &Summary, cancelled: bool) -> u8 {
    if summary.discovery_error_is_config {
        EXIT_CONFIG
    } else if cancelled {
        EXIT_INTERRUPTED
    } else if summary.success() {
        0
    } else {
        1
    }
}

/// Prints the summary, writes the report and manifest, and returns the exit code.
async fn conclude(
    out: &output::Output,
    summary: &Summary,
    client: &GenesysClient,
    store: &str,
    ledger: Option<&archiver::Ledger>,
    code: u8,
) -> ExitCode {
    out.finish(summary, client, store, ledger, code).await;
    print_summary(summary, client);
    ExitCode::from(code)
}

async fn run_archive(a: ArchiveArgs, file: &FileConfig) -> Result<ExitCode, ConfigError> {
    let zone = a.tz.zone()?;
    let from = parse_time("from", &a.from, zone)?;
    let to = parse_time("to", &a.to, zone)?;
    if from >= to {
        return Err(config_err(format!(
            "--from {} must be before --to {}",
            a.from, a.to
        )));
    }
    let out = output::Output::new(&a.run.output, "archive")?;
    let w = wire(&a.run, file).await?;
    let mut query = DiscoveryQuery::interval(from, to);
    query.media_types = w.media_types.clone();
    let shutdown = w.cfg.shutdown.clone();
    let ledger = w.cfg.ledger.clone();
    let store = w.sink.to_string();
    // Conversations the ledger holds as settled are listed but not resolved again.
    let known = ledger.as_ref().map(|l| l.known_conversations());
    let summary = archiver::archive(
        w.client.clone(),
        w.sink,
        w.client.discover_known(query, known),
        w.cfg,
        out.handler(log_events(), None),
    )
    .await;
    let code = exit_for(&summary, shutdown.is_cancelled());
    Ok(conclude(&out, &summary, &w.client, &store, ledger.as_ref(), code).await)
}

async fn run_daemon(d: DaemonArgs, file: &FileConfig) -> Result<ExitCode, ConfigError> {
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
    let out = output::Output::new(&d.run.output, "daemon")?;
    let w = wire(&d.run, file).await?;
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
    let events = out.handler(log_events(), extra);
    let ledger = w.cfg.ledger.clone();
    let store = w.sink.to_string();
    let poll = archiver::PollSettings {
        start: since,
        interval,
        overlap,
        settle,
        max_polls: d.once.then_some(1),
        ..archiver::PollSettings::default()
    };
    let media_types = w.media_types.clone();
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
            let code = conclude(&out, &summary, &w.client, &store, ledger.as_ref(), 0).await;
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

async fn run_quarantine(q: QuarantineCommand, file: &FileConfig) -> Result<ExitCode, ConfigError> {
    match q {
        QuarantineCommand::List { state } => {
            let ledger = state.open_shared(file).await?;
            let rows = ledger
                .entries(Some(RecordStatus::Quarantined))
                .await
                .map_err(|e| config_err(e.to_string()))?;
            for r in &rows {
                println!(
                    "{}\t{}\t{}\t{}",
                    r.recording_id,
                    r.conversation_id,
                    r.updated_at,
                    r.last_error.as_deref().unwrap_or_default()
                );
            }
            eprintln!("{} recording(s) in quarantine", rows.len());
            Ok(ExitCode::SUCCESS)
        }
        QuarantineCommand::Retry { ids, run } => {
            let out = output::Output::new(&run.output, "quarantine retry")?;
            let w = wire(&run, file).await?;
            let ledger = w.cfg.ledger.clone().expect("wire opens the ledger");
            let released = ledger
                .release_quarantined(&ids)
                .await
                .map_err(|e| config_err(e.to_string()))?;
            let known: HashSet<&str> = released.iter().map(|r| r.recording_id.as_str()).collect();
            if let Some(missing) = ids.iter().find(|i| !known.contains(i.as_str())) {
                eprintln!("warning: {missing} is not in quarantine");
            }
            println!("released {} recording(s) from quarantine", released.len());
            let shutdown = w.cfg.shutdown.clone();
            let store = w.sink.to_string();
            let events = out.handler(log_events(), None);
            let summary =
                archiver::archive_entries(w.client.clone(), w.sink, released, w.cfg, events).await;
            let code = exit_for(&summary, shutdown.is_cancelled());
            Ok(conclude(&out, &summary, &w.client, &store, Some(&ledger), code).await)
        }
    }
}

async fn run_ledger(l: LedgerCommand, file: &FileConfig) -> Result<ExitCode, ConfigError> {
    match l {
        LedgerCommand::List { state, status } => {
            let ledger = state.open_shared(file).await?;
            let status = status.as_deref().and_then(RecordStatus::parse);
            let rows = ledger
                .entries(status)
                .await
                .map_err(|e| config_err(e.to_string()))?;
            for r in &rows {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    r.status,
                    r.recording_id,
                    r.conversation_id,
                    r.size.map(|s| s.to_string()).unwrap_or_default(),
                    r.md5.as_deref().unwrap_or_default(),
                    r.key
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        LedgerCommand::Rebuild { store, state } => {
            let settings = store.resolve(file)?;
            let sink = settings::connect_store(&settings).await?;
            let ledger = state.open(file).await?;
            let prefix = StoreArgs::prefix(&settings);
            let (mut adopted, mut unchanged, mut foreign) = (0u64, 0u64, 0u64);
            let mut listing = sink.list(&prefix);
            while let Some(item) = listing.next().await {
                let obj = item.map_err(|e| config_err(format!("listing the store: {e}")))?;
                let meta = match sink.head(&obj.key).await {
                    Ok(Some(m)) => m,
                    Ok(None) => continue,
                    Err(e) => {
                        eprintln!("warning: {}: {e}", obj.key);
                        continue;
                    }
                };
                let (Some(rid), Some(cid)) = (
                    meta.metadata.get("recording-id"),
                    meta.metadata.get("conversation-id"),
                ) else {
                    foreign += 1;
                    continue;
                };
                let changed = ledger
                    .adopt(archiver::AdoptedObject {
                        recording_id: rid.clone(),
                        conversation_id: cid.clone(),
                        key: obj.key.clone(),
                        size: Some(meta.size),
                        md5: meta.metadata.get("md5").cloned(),
                        media_type: meta.metadata.get("media-type").cloned(),
                        start_time: meta.metadata.get("start-time").cloned(),
                        end_time: meta.metadata.get("end-time").cloned(),
                    })
                    .await
                    .map_err(|e| config_err(e.to_string()))?;
                if changed {
                    adopted += 1;
                } else {
                    unchanged += 1;
                }
            }
            println!(
                "ledger {}: {adopted} recording(s) recorded as archived, {unchanged} already known, \
                 {foreign} object(s) without recording metadata ignored",
                ledger.location()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn run_verify(v: VerifyArgs, file: &FileConfig) -> Result<ExitCode, ConfigError> {
    let from = v
        .from
        .as_deref()
        .map(|t| parse_time("from", t, v.tz.zone()?))
        .transpose()?;
    let to =
        v.to.as_deref()
            .map(|t| parse_time("to", t, v.tz.zone()?))
            .transpose()?;
    let settings = v.store.resolve(file)?;
    let sink = settings::connect_store(&settings).await?;
    let ledger = v.state.open_shared(file).await?;
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
    let (mut ok, mut missing, mut corrupt) = (0u64, 0u64, 0u64);
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
            Ok(Some(_)) if v.rehash => match rehash(sink.as_ref(), &r.key).await {
                Ok(md5)
                    if r.md5
                        .as_deref()
                        .is_some_and(|m| !m.eq_ignore_ascii_case(&md5)) =>
                {
                    Some((
                        "corrupt",
                        format!(
                            "MD5 {md5} in the store, {} in the ledger",
                            r.md5.as_deref().unwrap_or_default()
                        ),
                    ))
                }
                Ok(_) => None,
                Err(e) => Some(("corrupt", format!("cannot read it back: {e}"))),
            },
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
    let (mut unavailable, mut pending, mut not_discoverable) = (0u64, 0u64, 0u64);
    if v.against_source {
        let (Some(from), Some(to)) = (from, to) else {
            return Err(config_err("--against-source needs --from and --to"));
        };
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
                    pending += 1;
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
                    not_discoverable += 1;
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
                    missing += 1;
                    println!("missing: conversation {conversation_id}: {reason}");
                    continue;
                }
                // Not produced here: this listing has no memory of conversations.
                genesys_media::Discovered::Known { .. } => continue,
            };
            if let genesys_media::MediaAvailability::Unavailable(reason) = &rec.media {
                unavailable += 1;
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
                    missing += 1;
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
    }
    let mut extra = 0u64;
    if v.extra {
        let prefix = StoreArgs::prefix(&settings);
        let mut listing = sink.list(&prefix);
        while let Some(item) = listing.next().await {
            let obj = item.map_err(|e| config_err(format!("listing the store: {e}")))?;
            if !known_keys.contains(&obj.key) {
                extra += 1;
                println!(
                    "extra: key {} ({} bytes) is not in the ledger",
                    obj.key, obj.size
                );
            }
        }
    }
    println!(
        "verified {ok}, missing {missing}, corrupt {corrupt}{}{}{}",
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
    Ok(if missing + corrupt + pending + not_discoverable > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Reads an object back through the hashing body and returns its MD5 hex.
async fn rehash(sink: &dyn ObjectSink, key: &str) -> Result<String, String> {
    use http_body_util::BodyExt;
    let body = sink.get(key).await.map_err(|e| e.to_string())?;
    let (mut body, digests) = integrity::HashingBody::new(body, integrity::Expectations::default());
    while let Some(frame) = body.frame().await {
        frame.map_err(|e| e.to_string())?;
    }
    digests
        .get()
        .map(|d| d.md5_hex())
        .ok_or_else(|| "the body ended without a digest".to_string())
}

async fn run_config_check(run: RunArgs, file: &FileConfig) -> Result<ExitCode, ConfigError> {
    let source = run.source.resolve(file)?;
    let store = run.store.resolve(file)?;
    println!("settings: ok (key template {})", store.key_template_text);
    let client = settings::connect_source(&source).await?;
    client
        .tokens()
        .token()
        .await
        .map_err(|e| config_err(format!("genesys: no token: {e}")))?;
    println!(
        "genesys: ok (token obtained from {})",
        source.client.environment.api_base()
    );
    let sink = settings::connect_store(&store).await?;
    println!("store: ok ({sink})");
    let ledger = run.state.open(file).await?;
    let version = ledger
        .schema_version()
        .await
        .map_err(|e| config_err(e.to_string()))?;
    println!("ledger: ok ({}, schema {version})", ledger.location());
    Ok(ExitCode::SUCCESS)
}

async fn run_demo(d: DemoArgs) -> Result<ExitCode, ConfigError> {
    if d.recordings == 0 {
        return Err(config_err("--recordings must be at least 1"));
    }
    // A few recordings are broken on purpose: some recover on retry, two never do, one is
    // archived at the source.
    let n = d.recordings;
    let pick = |f: f64| ((n as f64 * f) as usize).min(n - 1);
    let transient = [
        (pick(0.10), Fault::ExpiredUrl, Some(1)),
        (pick(0.20), Fault::RateLimited, Some(1)),
        (pick(0.30), Fault::ServerError, Some(2)),
        (pick(0.40), Fault::Reset, Some(1)),
        (pick(0.50), Fault::Truncated, Some(1)),
        (pick(0.60), Fault::Corrupt, Some(1)),
    ];
    let permanent = [
        (pick(0.70), Fault::Corrupt, None),
        (pick(0.80), Fault::Archived, None),
        (pick(0.90), Fault::ExpiredUrl, None),
    ];
    let faults: Vec<FaultSpec> = transient
        .iter()
        .chain(permanent.iter())
        .map(|&(recording, fault, times)| FaultSpec {
            recording,
            fault,
            times,
        })
        .collect();
    let sim = Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().expect("valid address"),
        recordings: n,
        faults,
        ..SimConfig::default()
    })
    .await
    .map_err(|e| config_err(format!("cannot start the simulator: {e}")))?;
    println!(
        "simulated Genesys Cloud org at {} with {n} recordings ({} broken on purpose)",
        sim.base_url(),
        transient.len() + permanent.len()
    );
    let env = Environment::from_base_url(sim.base_url()).map_err(|e| config_err(e.to_string()))?;
    let mut ccfg = ClientConfig::new(
        env,
        sim.config().client_id.clone(),
        sim.config().client_secret.clone(),
    );
    ccfg.media_policy = MediaPolicy {
        allow_loopback: true,
        ..MediaPolicy::default()
    };
    ccfg.poll_initial = Duration::from_millis(250);
    let client = GenesysClient::new(ccfg).map_err(|e| config_err(e.to_string()))?;
    let sink = Arc::new(LocalDirSink::new(&d.out));
    // The ledger sits beside the archive directory, so the directory holds only recordings;
    // creating the directory first also creates the parent the ledger goes in.
    std::fs::create_dir_all(&d.out)
        .map_err(|e| config_err(format!("--out {}: {e}", d.out.display())))?;
    let mut state = d.out.clone().into_os_string();
    state.push(".ledger.db");
    let ledger = archiver::Ledger::open(&state.to_string_lossy())
        .await
        .map_err(|e| config_err(e.to_string()))?;
    let mut cfg = ArchiverConfig {
        ledger: Some(ledger),
        workers: d.workers.max(1),
        verify_source_etag: true,
        ..ArchiverConfig::default()
    };
    cfg.retry.base_delay = Duration::from_millis(100);
    cfg.retry.max_elapsed = Duration::from_secs(60);
    let query = DiscoveryQuery::interval(sim.config().start, sim.config().end());
    let summary = archiver::archive(
        client.clone(),
        sink,
        client.discover(query),
        cfg,
        log_events(),
    )
    .await;
    print_summary(&summary, &client);
    let expected_broken: HashSet<String> = permanent
        .iter()
        .map(|(i, _, _)| sim.dataset().recordings[*i].id.clone())
        .collect();
    let broken: HashSet<String> = summary
        .failures
        .iter()
        .map(|f| f.recording_id.clone())
        .collect();
    println!("archive written to {}", d.out.display());
    let rest_done = summary.archived + summary.skipped + expected_broken.len() as u64 == n as u64;
    if broken == expected_broken && rest_done && summary.discovery_error.is_none() {
        if summary.archived == 0 {
            println!(
                "demo OK: everything was already archived in {} (delete it and {} to start over)",
                d.out.display(),
                state.to_string_lossy()
            );
        } else {
            println!(
                "demo OK: every recording archived and verified except the {} broken on purpose, which left nothing behind",
                expected_broken.len()
            );
        }
        Ok(ExitCode::SUCCESS)
    } else {
        println!("demo FAILED: unexpected outcome");
        Ok(ExitCode::from(1))
    }
}

async fn run_sim(s: SimArgs) -> Result<ExitCode, ConfigError> {
    let faults = s
        .faults
        .iter()
        .map(|f| {
            f.parse::<FaultSpec>()
                .map_err(|e| config_err(format!("--fault: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(f) = faults.iter().find(|f| f.recording >= s.recordings) {
        return Err(config_err(format!(
            "--fault index {} is out of range (there are {} recordings)",
            f.recording, s.recordings
        )));
    }
    let (lo, hi) = s
        .sizes
        .split_once("..")
        .and_then(|(a, b)| Some((a.trim().parse::<u64>().ok()?, b.trim().parse::<u64>().ok()?)))
        .filter(|(a, b)| a <= b)
        .ok_or_else(|| config_err(format!("--sizes {:?} must be MIN..MAX in bytes", s.sizes)))?;
    if let Some(f) = s.login_faults.iter().find(|f| !(400..=599).contains(*f)) {
        return Err(config_err(format!(
            "--login-fault {f} is not an HTTP error status (400-599)"
        )));
    }
    let defaults = SimConfig::default();
    let start = match &s.start {
        Some(v) => parse_time("start", v, Zone::default())?,
        None => defaults.start,
    };
    let span = match &s.span {
        Some(v) => parse_duration("--span", v)?,
        None => defaults.span,
    };
    let sim = Simulator::start(SimConfig {
        listen: s.listen,
        recordings: s.recordings,
        seed: s.seed,
        faults,
        rate_limit_per_minute: s.rate_limit,
        size_range: (lo, hi),
        start,
        span,
        data_lake_lag: parse_duration("--data-lake-lag", &s.data_lake_lag)?,
        upload_lag: parse_duration("--upload-lag", &s.upload_lag)?,
        hold_open: s.hold_open,
        hold_open_for: parse_duration("--hold-open-for", &s.hold_open_for)?,
        login_faults: s.login_faults.clone(),
        throttle_first_api_calls: s.throttle_first,
        retry_after_secs: s.retry_after,
        ..defaults
    })
    .await
    .map_err(|e| config_err(format!("cannot listen on {}: {e}", s.listen)))?;
    if let Some(path) = &s.urls_out {
        sim.precompute_etags().await;
        let lines: String = sim
            .media_urls()
            .into_iter()
            .map(|(id, ct, url)| format!("{id}\t{}\t{url}\n", archiver::extension(Some(ct))))
            .collect();
        std::fs::write(path, lines)
            .map_err(|e| config_err(format!("--urls-out {}: {e}", path.display())))?;
    }
    println!("{}", sim.base_url());
    eprintln!(
        "simulator: {} recordings from {} to {}; client id {:?}, secret {:?}; Ctrl-C to stop",
        s.recordings,
        sim.config().start.to_rfc3339(),
        sim.config().end().to_rfc3339(),
        sim.config().client_id,
        sim.config().client_secret
    );
    let _ = tokio::signal::ctrl_c().await;
    Ok(ExitCode::SUCCESS)
}
