//! `genesys-archiver` and `genesys-archiverd`: archive Genesys Cloud call recordings into
//! S3-compatible object storage, verified end to end. Argument parsing and wiring only; the
//! work is in the library crates.

mod closing;
mod commands;
mod config_text;
mod metrics;
mod output;
mod settings;
mod times;
mod wiring;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use archiver::CancellationToken;
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use settings::{FileConfig, SourceArgs, StateArgs, StoreArgs};
use times::{Zone, parse_zone};

pub(crate) use closing::{conclude, exit_for, log_events, print_summary};
pub(crate) use wiring::{Wired, wire};

use commands::archive::{ArchiveArgs, run_archive};
use commands::config::{ConfigCommand, run_config_check};
use commands::daemon::{DaemonArgs, run_daemon};
use commands::demo::{DemoArgs, run_demo};
use commands::find::{FindArgs, run_find};
use commands::ledger::{LedgerCommand, run_ledger};
use commands::quarantine::{QuarantineCommand, run_quarantine};
use commands::sim::{SimArgs, run_sim};
use commands::verify::{VerifyArgs, run_verify};

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
    #[command(
        after_help = "Examples:\n  genesys-archiver archive --from 2026-11-01 --to 2026-11-02 --bucket recordings\n  genesys-archiver archive --from 7d --to now --out /srv/archive --report run.json\n  genesys-archiver archive --config /etc/genesys-archiver.toml --from 2026-11-01 --to 2026-12-01 --recheck"
    )]
    Archive(Box<ArchiveArgs>),
    /// Run continuously: poll for new recordings, archive them, retry failures.
    #[command(
        after_help = "Examples:\n  genesys-archiver daemon --config /etc/genesys-archiver.toml --metrics-listen 127.0.0.1:9464\n  genesys-archiver daemon --config /etc/genesys-archiver.toml --once --report poll.json\n  genesys-archiver daemon --state postgres://archiver@db.example/archive --scale-out"
    )]
    Daemon(Box<DaemonArgs>),
    /// Audit the archive: every archived recording is in the store with its size and MD5.
    #[command(
        after_help = "Examples:\n  genesys-archiver verify --from 2026-11-01 --to 2026-11-02 --rehash\n  genesys-archiver verify --chain --public-key index.pub --bucket recordings\n  genesys-archiver verify --inventory --archive-missing --config /etc/genesys-archiver.toml\n  genesys-archiver verify --rehash --from-store --out /srv/archive"
    )]
    Verify(Box<VerifyArgs>),
    /// Find archived recordings by agent, queue, wrap-up code, number, conversation or time,
    /// from the ledger (no call to Genesys Cloud).
    #[command(
        after_help = "Examples:\n  genesys-archiver find --agent 6f0c...e1 --from 2026-11-03 --to 2026-11-04\n  genesys-archiver find --conversation 5fc3...09 --json\n  genesys-archiver find --queue 79bf...3d --from 7d --from-store --out /srv/archive"
    )]
    Find(Box<FindArgs>),
    /// Release at the source: set the delete date at Genesys Cloud of recordings whose copy
    /// is proven (archived, settled, indexed, in the store with its digests, locked when
    /// required, not under deletion protection). A dry run unless --execute.
    #[command(
        after_help = "Examples:\n  genesys-archiver release --config /etc/genesys-archiver.toml\n  genesys-archiver release --config /etc/genesys-archiver.toml --older-than 90d --grace 7d --execute\n  genesys-archiver release --config /etc/genesys-archiver.toml --undo --since 2026-12-01"
    )]
    Release(Box<commands::release::ReleaseArgs>),
    /// List or release recordings held in quarantine.
    #[command(subcommand)]
    #[command(
        after_help = "Examples:\n  genesys-archiver quarantine list\n  genesys-archiver quarantine retry\n  genesys-archiver quarantine retry 0d5f...2a --config /etc/genesys-archiver.toml"
    )]
    Quarantine(QuarantineCommand),
    /// Inspect or rebuild the ledger.
    #[command(subcommand)]
    #[command(
        after_help = "Examples:\n  genesys-archiver ledger list --status failed\n  genesys-archiver ledger rebuild --bucket recordings --state genesys-archiver.db"
    )]
    Ledger(LedgerCommand),
    /// Keys that sign the chain-of-custody index.
    #[command(subcommand)]
    #[command(
        after_help = "Examples:\n  genesys-archiver index keygen --secret-key /etc/genesys-archiver/index.key --public-key index.pub\n  genesys-archiver archive --from 1d --to now --index-signing-key /etc/genesys-archiver/index.key"
    )]
    Index(commands::index::IndexCommand),
    /// Check the configuration: credentials, bucket access, ledger. Archives nothing.
    #[command(subcommand)]
    #[command(
        after_help = "Examples:\n  genesys-archiver config check --config /etc/genesys-archiver.toml\n  genesys-archiver config check --bucket recordings --state postgres://archiver@db.example/archive"
    )]
    Config(ConfigCommand),
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  genesys-archiver completions bash > /etc/bash_completion.d/genesys-archiver\n  genesys-archiver completions zsh > ~/.zfunc/_genesys-archiver"
    )]
    Completions {
        /// Shell.
        shell: clap_complete::Shell,
    },
    /// Write the man pages (genesys-archiver.1, one per subcommand, genesys-archiverd.1) into
    /// a directory: what the package installs.
    #[command(hide = true)]
    Manpages {
        /// Directory to write them into (created when missing).
        #[arg(long)]
        out: PathBuf,
    },
    /// Run the built-in demo: a simulated org archived into a local directory. No setup.
    #[command(
        after_help = "Examples:\n  genesys-archiver demo\n  genesys-archiver demo --out /tmp/demo --recordings 50"
    )]
    Demo(DemoArgs),
    /// Run the Genesys Cloud simulator and print its base URL.
    #[command(
        after_help = "Examples:\n  genesys-archiver sim --listen 127.0.0.1:8080 --recordings 1000 --seed 7\n  GENESYS_API_BASE=http://127.0.0.1:8080 GENESYS_CLIENT_ID=sim-client GENESYS_CLIENT_SECRET=sim-secret \\\n    genesys-archiver archive --from 1d --to now --out /tmp/a --allow-loopback-media"
    )]
    Sim(SimArgs),
}

/// Settings every archiving command shares.
#[derive(Args, Debug, Clone)]
struct RunArgs {
    #[command(flatten, next_help_heading = "Genesys Cloud")]
    source: SourceArgs,
    #[command(flatten, next_help_heading = "Store")]
    store: StoreArgs,
    #[command(flatten, next_help_heading = "Writing")]
    write: settings::WriteArgs,
    #[command(flatten, next_help_heading = "Ledger")]
    state: StateArgs,
    /// Start a new ledger: needed when the ledger named by --state (or
    /// GENESYS_ARCHIVER_STATE, or the file's state) does not exist yet, or when the store
    /// already holds a custody index that the ledger does not know (then `ledger rebuild`
    /// is usually what you want).
    #[arg(long, help_heading = "Ledger")]
    create_ledger: bool,
    /// Recordings processed at the same time, fixed [default: adapts: starts at 8 and grows
    /// while throughput grows with it, up to --max-workers; backs off when the store or the
    /// source pushes back].
    #[arg(long, env = "GENESYS_ARCHIVER_WORKERS", help_heading = "Run")]
    workers: Option<usize>,
    /// The most recordings the adapting worker count may reach, 1-256 [default: 64]. Each
    /// holds little memory (uploads stream; multipart buffers are bounded by the store).
    #[arg(long, conflicts_with = "workers", help_heading = "Run")]
    max_workers: Option<usize>,
    /// Time in-flight uploads get to finish after SIGINT/SIGTERM [default: 30s].
    #[arg(long, help_heading = "Run")]
    drain_timeout: Option<String>,
    /// How long after a conversation ended files may still reach it (late Edge uploads,
    /// re-attached orphans): a conversation resolved sooner is resolved once more after
    /// that, from the ledger, before it counts as settled; 0s turns it off [default: 48h].
    #[arg(long, value_name = "DURATION", help_heading = "Run")]
    late_window: Option<String>,
    /// Keep the calling and called numbers (ANI/DNIS: personal data) in object metadata, the
    /// ledger and the index [default: they are dropped on arrival].
    #[arg(long, help_heading = "Run")]
    keep_phone_numbers: bool,
    /// Read each recording once before writing it, so that the object carries its MD5 and
    /// SHA-256 in its own metadata from its first byte (S3 user metadata `md5`, `sha256`;
    /// `ledger rebuild` restores both from the store alone) and the store checks its MD5
    /// itself. Costs a second download and hashing pass per recording, no API call.
    #[arg(long, help_heading = "Run")]
    digests_up_front: bool,
    #[command(flatten, next_help_heading = "Chain-of-custody index")]
    index: IndexArgs,
    #[command(flatten, next_help_heading = "Output")]
    output: output::OutputArgs,
}

/// Where the chain-of-custody index goes.
#[derive(Args, Debug, Clone, Default)]
struct IndexArgs {
    /// Key prefix of the chain-of-custody index: parts listing every archived object with its
    /// size, MD5 and SHA-256, each carrying the digest of the one before [default: index/].
    #[arg(long, env = "GENESYS_ARCHIVER_INDEX_PREFIX")]
    index_prefix: Option<String>,
    /// Write no chain-of-custody index.
    #[arg(long, conflicts_with = "index_prefix")]
    no_index: bool,
    /// Sign every index part and the index's head with this Ed25519 secret key (made by
    /// `index keygen`; file key index.signing_key): `verify --chain --public-key` then
    /// proves the index with only the store and the public key.
    #[arg(long, value_name = "FILE", conflicts_with = "no_index")]
    index_signing_key: Option<std::path::PathBuf>,
    /// Keep the digest of every index part written outside the bucket: a FILE (one JSON
    /// line each, appended) or s3://BUCKET/PREFIX (one object each, create-only, under
    /// Object Lock when that bucket has default retention); file key index.anchor. `verify
    /// --chain --anchor` with the same value then catches a part removed or rewritten
    /// since, with or without a signing key.
    #[arg(
        long,
        value_name = "FILE|s3://BUCKET/PREFIX",
        conflicts_with = "no_index"
    )]
    index_anchor: Option<String>,
}

impl RunArgs {
    /// The store's location with the write options of this command.
    fn store_args(&self) -> StoreArgs {
        StoreArgs {
            write: self.write.clone(),
            ..self.store.clone()
        }
    }
}

impl IndexArgs {
    /// The index prefix, checked against the recordings' key prefix; `None` with --no-index.
    fn resolve(&self, recordings_prefix: &str) -> Result<Option<String>, ConfigError> {
        if self.no_index {
            return Ok(None);
        }
        let p = self
            .index_prefix
            .clone()
            .unwrap_or_else(|| archiver::DEFAULT_INDEX_PREFIX.to_string());
        if p.is_empty() || !p.ends_with('/') || p.starts_with('/') || p.contains("//") {
            return Err(config_err(format!(
                "--index-prefix {p:?} must be a key prefix ending in '/', such as index/"
            )));
        }
        let overlaps = |p: &str| {
            !recordings_prefix.is_empty()
                && (p.starts_with(recordings_prefix) || recordings_prefix.starts_with(p))
        };
        if overlaps(&p) {
            let apart = ["index/", "custody-index/", "_index/"]
                .into_iter()
                .find(|c| !overlaps(c));
            let which = if self.index_prefix.is_some() {
                format!("--index-prefix {p:?}")
            } else {
                format!("the index prefix {p:?} (the default)")
            };
            let template = format!("the key template's keys begin with {recordings_prefix:?}");
            return Err(config_err(match apart {
                Some(a) => format!(
                    "{which} overlaps the recordings' keys ({template}); give --index-prefix one apart, such as {a}"
                ),
                None => format!(
                    "{which} overlaps the recordings' keys ({template}); give the key template a fixed first segment, such as recordings/{{date}}/..."
                ),
            }));
        }
        Ok(Some(p))
    }
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

/// A configuration error: printed with `error:` and exit code 2.
#[derive(Debug)]
pub(crate) struct ConfigError(String);

pub(crate) fn config_err(msg: impl Into<String>) -> ConfigError {
    ConfigError(msg.into())
}

/// Runs the CLI with `args` (argv including the program name) and returns the exit code.
pub fn main_with(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    run_cli(Cli::parse_from(args))
}

/// `genesys-archiverd`: the `daemon` subcommand as a program of its own, with its own name,
/// usage, help and version (the global options included).
pub fn daemon_main_with(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    use clap::FromArgMatches as _;
    let daemon = daemon_command();
    let m = daemon.get_matches_from(args);
    let d = DaemonArgs::from_arg_matches(&m).unwrap_or_else(|e| e.exit());
    run_cli(Cli {
        command: Command::Daemon(Box::new(d)),
        log_format: m
            .get_one::<LogFormat>("log_format")
            .copied()
            .unwrap_or(LogFormat::Text),
        config: m.get_one::<PathBuf>("config").cloned(),
    })
}

/// The daemon program's command: the `daemon` subcommand under its own name, with the global
/// options, its own about and examples.
fn daemon_command() -> clap::Command {
    let top = Cli::command();
    let globals: Vec<clap::Arg> = top
        .get_arguments()
        .filter(|a| a.is_global_set())
        .cloned()
        .collect();
    top.find_subcommand("daemon")
        .expect("the daemon subcommand")
        .clone()
        .args(globals)
        .name("genesys-archiverd")
        .bin_name("genesys-archiverd")
        .display_name("genesys-archiverd")
        .version(env!("CARGO_PKG_VERSION"))
        .about("Archive Genesys Cloud call recordings continuously (genesys-archiver daemon): poll, archive, verify, retry; stop with SIGTERM.")
        .after_help("Example:\n  genesys-archiverd --config /etc/genesys-archiver.toml --metrics-listen 127.0.0.1:9464\n  genesys-archiverd --config /etc/genesys-archiver.toml --once --report poll.json\n\nExit codes: 0 stopped (by a signal: work drained, state saved), 1 a persistent error, or with --once a poll that did not complete, 2 configuration or usage error.")
}

/// Writes the man pages of both programs and of every visible subcommand into `dir`.
fn write_manpages(dir: &std::path::Path) -> Result<ExitCode, ConfigError> {
    let err = |e: std::io::Error| config_err(format!("--out {}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(err)?;
    let write = |name: &str, cmd: clap::Command| -> Result<(), ConfigError> {
        let mut buf = Vec::new();
        clap_mangen::Man::new(cmd).render(&mut buf).map_err(err)?;
        std::fs::write(dir.join(format!("{name}.1")), buf).map_err(err)
    };
    let mut top = Cli::command();
    top.build();
    for sub in top
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        // clap names are 'static; this one-shot command leaks a dozen short names.
        let name: &'static str =
            Box::leak(format!("genesys-archiver-{}", sub.get_name()).into_boxed_str());
        write(name, sub.clone().name(name))?;
    }
    write("genesys-archiver", top)?;
    write("genesys-archiverd", daemon_command())?;
    println!("man pages written to {}", dir.display());
    Ok(ExitCode::SUCCESS)
}

fn run_cli(cli: Cli) -> ExitCode {
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
    let (command, report_path) = match &cli.command {
        Command::Archive(a) => ("archive", a.run.output.report.clone()),
        Command::Daemon(d) => ("daemon", d.run.output.report.clone()),
        _ => ("", None),
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
            Command::Find(f) => run_find(*f, &file).await,
            Command::Quarantine(q) => run_quarantine(q, &file).await,
            Command::Release(r) => commands::release::run_release(*r, &file).await,
            Command::Ledger(l) => run_ledger(l, &file).await,
            Command::Index(c) => commands::index::run_index(c),
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
            Command::Manpages { out } => write_manpages(&out),
            Command::Demo(d) => run_demo(d).await,
            Command::Sim(s) => run_sim(s).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(ConfigError(msg)) => {
            eprintln!("error: {msg}");
            // A script reading the report finds why nothing was done, not an empty file.
            if let Some(path) = report_path {
                let report = serde_json::json!({
                    "command": command,
                    "tool_version": env!("CARGO_PKG_VERSION"),
                    "exit_code": EXIT_CONFIG,
                    "clean": false,
                    "configuration_error": msg,
                });
                let text = serde_json::to_vec_pretty(&report).unwrap_or_default();
                if let Err(e) = output::write_atomically(&path, &text) {
                    eprintln!("error: --report {}: {e}", path.display());
                }
            }
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
pub(crate) fn cancel_on_signals(token: CancellationToken) {
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
