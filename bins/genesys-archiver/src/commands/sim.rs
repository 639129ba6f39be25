//! `sim`: the Genesys Cloud simulator as a process.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use genesys_sim::{FaultSpec, SimConfig, Simulator};

use crate::settings::parse_duration;
use crate::times::{Zone, parse_time};
use crate::{ConfigError, config_err};

#[derive(Args, Debug)]
pub(crate) struct SimArgs {
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
    /// How long a batch download job (and an analytics details job) takes to be ready.
    #[arg(long, default_value = "200ms")]
    job_ready_after: String,
    /// A late file, INDEX=DURATION (e.g. 3=40s): recording INDEX reaches its conversation
    /// only DURATION after the conversation ended. Before, it is absent from
    /// recordingmetadata, batch requests and the retention query; after, it is AVAILABLE
    /// (never UPLOADING first); repeatable.
    #[arg(long = "late-file", value_name = "INDEX=DURATION")]
    late_files: Vec<String>,
    /// An orphan, INDEX[=DURATION]: recording INDEX is absent from its conversation and
    /// listed by GET /api/v2/orphanrecordings until DURATION after the conversation ended;
    /// without a duration it is never re-attached; repeatable.
    #[arg(long = "orphan", value_name = "INDEX[=DURATION]")]
    orphan: Vec<String>,
    /// N orphans never re-attached, spread over the recordings after index 0: indexes
    /// 1 + k*(R-1)/N for k = 0..N, R being --recordings (with 50 recordings and N=3: 1, 17,
    /// 33). An index also given to --orphan keeps that setting.
    #[arg(long, default_value_t = 0, value_name = "N")]
    orphans: usize,
    /// The first N status polls of a ready batch request answer InProgress with an
    /// expectedResultCount below the final count, growing by one per poll, and as many
    /// results; then Completed with all of them.
    #[arg(long, default_value_t = 0, value_name = "N")]
    growing_expected_polls: u32,
    /// Append every API request routed (method, path, query, JSON body) to FILE, one JSON
    /// line each, for checking what a client sends (scripts/sdk-contract.sh).
    #[arg(long, value_name = "FILE")]
    capture_requests: Option<PathBuf>,
    /// The base URL clients reach the simulator at when it is behind a proxy (e.g.
    /// http://127.0.0.1:9000): printed, and the origin of every media URL it hands out.
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
}

/// A recording index given to `flag`, checked against the number of recordings.
fn recording_index(flag: &str, v: &str, recordings: usize) -> Result<usize, ConfigError> {
    let i: usize = v
        .trim()
        .parse()
        .map_err(|_| config_err(format!("{flag}: {v:?} is not a recording index")))?;
    if i >= recordings {
        return Err(config_err(format!(
            "{flag} index {i} is out of range (there are {recordings} recordings)"
        )));
    }
    Ok(i)
}

/// `--late-file INDEX=DURATION`.
fn late_file(v: &str, recordings: usize) -> Result<(usize, Duration), ConfigError> {
    let (i, d) = v.split_once('=').ok_or_else(|| {
        config_err(format!(
            "--late-file {v:?} must be INDEX=DURATION, e.g. 3=40s"
        ))
    })?;
    Ok((
        recording_index("--late-file", i, recordings)?,
        parse_duration("--late-file", d)?,
    ))
}

/// `--orphan INDEX[=DURATION]`.
fn orphan(v: &str, recordings: usize) -> Result<(usize, Option<Duration>), ConfigError> {
    match v.split_once('=') {
        Some((i, d)) => Ok((
            recording_index("--orphan", i, recordings)?,
            Some(parse_duration("--orphan", d)?),
        )),
        None => Ok((recording_index("--orphan", v, recordings)?, None)),
    }
}

/// `--orphans N`: N distinct indexes spread over 1..recordings.
fn spread_orphans(n: usize, recordings: usize) -> Result<Vec<usize>, ConfigError> {
    if n == 0 {
        return Ok(Vec::new());
    }
    if n >= recordings {
        return Err(config_err(format!(
            "--orphans {n}: at most {} of {recordings} recordings (index 0 is never one)",
            recordings.saturating_sub(1)
        )));
    }
    Ok((0..n).map(|k| 1 + k * (recordings - 1) / n).collect())
}

pub(crate) async fn run_sim(s: SimArgs) -> Result<ExitCode, ConfigError> {
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
    let late_files = s
        .late_files
        .iter()
        .map(|v| late_file(v, s.recordings))
        .collect::<Result<Vec<_>, _>>()?;
    let mut orphans = s
        .orphan
        .iter()
        .map(|v| orphan(v, s.recordings))
        .collect::<Result<Vec<_>, _>>()?;
    for i in spread_orphans(s.orphans, s.recordings)? {
        if !orphans.iter().any(|&(j, _)| j == i) {
            orphans.push((i, None));
        }
    }
    if let Some(u) = &s.public_url
        && !(u.starts_with("http://") || u.starts_with("https://"))
    {
        return Err(config_err(format!(
            "--public-url {u:?} is not an http:// or https:// URL"
        )));
    }
    if let Some(path) = &s.capture_requests {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| config_err(format!("--capture-requests {}: {e}", path.display())))?;
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
        batch_ready_after: parse_duration("--job-ready-after", &s.job_ready_after)?,
        late_files,
        orphans,
        growing_expected_polls: s.growing_expected_polls,
        capture_requests: s.capture_requests.clone(),
        public_url: s.public_url.clone(),
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
