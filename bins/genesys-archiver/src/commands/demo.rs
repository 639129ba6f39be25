//! `demo`: a simulated org archived into a local directory, no setup.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use archiver::ArchiverConfig;
use clap::Args;
use genesys_media::{ClientConfig, DiscoveryQuery, Environment, GenesysClient, MediaPolicy};
use genesys_sim::{Fault, FaultSpec, SimConfig, Simulator};
use sink::LocalDirSink;

use crate::{ConfigError, config_err, log_events, print_summary};

#[derive(Args, Debug)]
pub(crate) struct DemoArgs {
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

pub(crate) async fn run_demo(d: DemoArgs) -> Result<ExitCode, ConfigError> {
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
    let sink: Arc<dyn sink::ObjectSink> = Arc::new(LocalDirSink::new(&d.out));
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
        ledger: Some(ledger.clone()),
        workers: archiver::Workers::Fixed(d.workers.max(1)),
        verify_source_etag: true,
        ..ArchiverConfig::default()
    };
    cfg.retry.base_delay = Duration::from_millis(100);
    cfg.retry.max_elapsed = Duration::from_secs(60);
    let query = DiscoveryQuery::interval(sim.config().start, sim.config().end());
    let started = std::time::Instant::now();
    let summary = archiver::archive(
        client.clone(),
        sink.clone(),
        client.discover(query),
        cfg,
        log_events(),
    )
    .await;
    print_summary(&summary, &client);
    let index = archiver::write_index(
        &ledger,
        sink.as_ref(),
        archiver::DEFAULT_INDEX_PREFIX,
        chrono::Utc::now(),
        None,
    )
    .await;
    if let Err(e) = &index {
        println!("index: not written: {e}");
    }
    print_table(
        &summary,
        started.elapsed(),
        &d.out,
        &state.to_string_lossy(),
    );
    let expected_broken: HashSet<String> = permanent
        .iter()
        .map(|(i, _, _)| sim.dataset().recordings[*i].id.clone())
        .collect();
    let broken: HashSet<String> = summary
        .failures
        .iter()
        .map(|f| f.recording_id.clone())
        .collect();
    let rest_done = summary.archived + summary.skipped + expected_broken.len() as u64 == n as u64;
    if broken == expected_broken && rest_done && summary.discovery_error.is_none() && index.is_ok()
    {
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

/// The demo's closing table: what happened, and where to look.
fn print_table(summary: &archiver::Summary, took: Duration, out: &Path, ledger: &str) {
    // Every recording found is in exactly one of these rows, so they add up to "found";
    // the rarer ones show only when they happened.
    let counts = [
        ("archived", summary.archived, true),
        ("already archived", summary.skipped, true),
        ("failed", summary.failed, true),
        ("unavailable", summary.unavailable, true),
        ("in quarantine", summary.quarantined, false),
        ("pending", summary.pending, false),
        ("other instance", summary.leased_elsewhere, false),
        ("interrupted", summary.interrupted, false),
    ];
    println!();
    println!("  {:<17}{:>12}", "found", summary.found);
    for (name, n, always) in counts {
        if always || n > 0 {
            println!("  {name:<17}{n:>12}");
        }
    }
    println!(
        "  {:<17}{:>12}",
        "bytes",
        archiver::human_bytes(summary.bytes)
    );
    println!(
        "  {:<17}{:>12}",
        "time",
        format!("{:.1} s", took.as_secs_f64())
    );
    println!();
    println!("where to look:");
    println!("  archive          {}", out.display());
    for (ext, label, note) in [
        ("wav", "a call", "  (plays in any audio player)"),
        ("webm", "a screen video", ""),
    ] {
        if let Some(p) = first_file(out, ext) {
            println!("  {label:<17}{}{note}", p.display());
        }
    }
    println!("  metadata         <file>.meta.json beside each recording");
    println!(
        "  index            {}/{} (JSON Lines: every object with its MD5 and SHA-256)",
        out.display(),
        archiver::DEFAULT_INDEX_PREFIX
    );
    println!("  ledger           {ledger}");
    println!("  find one         genesys-archiver find --state {ledger} --agent <user id>");
    println!(
        "  prove it         genesys-archiver verify --out {} --state {ledger} --chain",
        out.display()
    );
    if summary.failed + summary.unavailable > 0 {
        println!("  not archived     the `failed:` and `unavailable:` lines above say why");
    }
}

/// `n` bytes for a person: B, KiB, MiB or GiB with one decimal.
/// The first file (in name order, depth first) under `dir` whose name ends in `.ext`.
fn first_file(dir: &Path, ext: &str) -> Option<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            if let Some(found) = first_file(&p, ext) {
                return Some(found);
            }
        } else if p.extension().is_some_and(|e| e == ext) {
            return Some(p);
        }
    }
    None
}
