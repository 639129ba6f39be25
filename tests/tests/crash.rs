//! Crash safety and graceful shutdown of the real binary against the simulator and s3s-fs:
//! SIGKILL at random points then a restart; SIGTERM draining within the deadline.

use std::process::Stdio;
use std::time::{Duration, Instant};

use archiver::{Ledger, RecordStatus};
use e2e::{Server, archiver_command, fresh_sink};
use futures::StreamExt;
use genesys_sim::{Fault, FaultSpec, SimConfig, SimHandle, Simulator};
use sink::ObjectSink;

const WORKERS: u64 = 4;

async fn sim(n: usize, faults: Vec<FaultSpec>) -> SimHandle {
    Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings: n,
        size_range: (256 * 1024, 2 * 1024 * 1024),
        faults,
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

fn archive_args(s: &SimHandle, state: &std::path::Path) -> Vec<String> {
    e2e::archive_whole(s)
        .into_iter()
        .chain([
            "--verify-source-etag",
            "--tag-mode",
            "disabled",
            "--workers",
            "4",
            "--create-ledger",
            "--state",
        ])
        .map(str::to_string)
        .chain([state.display().to_string()])
        .collect()
}

fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

/// Every recording of `sim` is in the store exactly once with its bytes, and nothing else is.
async fn assert_store_complete(s: &SimHandle, store: &dyn ObjectSink) {
    let all = s
        .dataset()
        .recordings
        .iter()
        .map(|r| r.id.clone())
        .collect();
    e2e::assert_store_holds(s, store, &all).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_at_random_points_then_restart_archives_every_recording_exactly_once() {
    let n = 40;
    // Slow bodies on a few recordings keep uploads in flight when the kill lands.
    let faults = (0..n)
        .step_by(5)
        .map(|i| FaultSpec {
            recording: i,
            fault: Fault::Slow(Duration::from_millis(30)),
            times: None,
        })
        .collect();
    let s = sim(n, faults).await;
    let sink = fresh_sink(Server::S3sFs, "crash").await;
    let bucket = sink.config().bucket.clone();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.db");
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = fastrand::Rng::with_seed(seed);
    eprintln!("kill schedule seed {seed}");
    let kills = 8;
    for round in 0..kills {
        let mut child = archiver_command(s.base_url(), &bucket)
            .args(archive_args(&s, &state))
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let delay = Duration::from_millis(rng.u64(300..1500));
        tokio::time::sleep(delay).await;
        if child.try_wait().unwrap().is_some() {
            eprintln!("round {round}: finished before the kill at {delay:?}");
            continue;
        }
        signal(child.id(), "-KILL");
        let status = child.wait().unwrap();
        assert!(!status.success(), "round {round}: killed");
    }
    let out = archiver_command(s.base_url(), &bucket)
        .args(archive_args(&s, &state))
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the restart finishes the work (seed {seed}): {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_store_complete(&s, &sink).await;
    let ledger = Ledger::open_shared(state.to_str().unwrap()).await.unwrap();
    let rows = ledger.entries(None).await.unwrap();
    assert_eq!(rows.len(), n);
    assert!(
        rows.iter().all(|r| r.status == RecordStatus::Archived),
        "every row archived (seed {seed})"
    );
    // Each kill can cut short at most one download per worker; nothing already archived is
    // downloaded again.
    let downloads = s.stats().media_requests;
    assert!(
        downloads <= n as u64 + kills * WORKERS,
        "{downloads} downloads for {n} recordings and {kills} kills (seed {seed})"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_in_flight_uploads_within_the_deadline() {
    let n = 12;
    // Every body takes ~3 s (2 MiB max = 32 blocks of 64 KiB at 100 ms), longer than the
    // 1 s drain deadline, so the drain has to abort them.
    let faults = (0..n)
        .map(|i| FaultSpec {
            recording: i,
            fault: Fault::Slow(Duration::from_millis(100)),
            times: None,
        })
        .collect();
    let s = sim(n, faults).await;
    let sink = fresh_sink(Server::S3sFs, "drain").await;
    let bucket = sink.config().bucket.clone();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.db");
    let mut args = archive_args(&s, &state);
    args.extend(["--drain-timeout".to_string(), "1s".to_string()]);
    args.extend(["--report".to_string(), "run.json".to_string()]);
    let child = archiver_command(s.base_url(), &bucket)
        .args(&args)
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until uploads are in flight.
    let started = Instant::now();
    while s.stats().media_requests < WORKERS {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no download started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sent = Instant::now();
    signal(child.id(), "-TERM");
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let took = sent.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        took < Duration::from_secs(4),
        "exited {took:?} after SIGTERM with a 1 s drain deadline"
    );
    assert_eq!(out.status.code(), Some(130), "interrupted: {stdout}");
    assert!(stdout.contains("interrupted"), "{stdout}");
    // The report never claims more than happened: interrupted, not clean.
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("run.json")).unwrap()).unwrap();
    assert_eq!(report["interrupted"], true, "{report}");
    assert_eq!(report["reconciliation"]["clean"], false, "{report}");
    assert_eq!(report["exit_code"], 130, "{report}");
    assert!(report["interval"]["from"].is_string(), "{report}");
    assert!(report["tool_version"].is_string(), "{report}");
    assert!(report["duration_seconds"].as_f64().is_some(), "{report}");
    let ledger = Ledger::open_shared(state.to_str().unwrap()).await.unwrap();
    let rows = ledger.entries(None).await.unwrap();
    assert!(
        rows.iter().all(|r| r.lease_owner.is_none()),
        "every claim released on the way out: {rows:?}"
    );
    let listed: Vec<_> = sink.list("recordings/").collect().await;
    let archived = rows
        .iter()
        .filter(|r| r.status == RecordStatus::Archived)
        .count();
    assert_eq!(listed.len(), archived, "no partial object left behind");

    // The next run (without slowness it would be quick; here it just waits) finishes the rest.
    let out = archiver_command(s.base_url(), &bucket)
        .args(archive_args(&s, &state))
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_store_complete(&s, &sink).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_polls_keeps_a_checkpoint_and_stops_cleanly_on_sigterm() {
    let n = 20;
    // The login host answers 503 to the first token request: the daemon starts anyway (a
    // retry, not exit 2) and counts it.
    let s = Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings: n,
        login_faults: vec![503],
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let sink = fresh_sink(Server::S3sFs, "daemon").await;
    let bucket = sink.config().bucket.clone();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.db");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics_addr = format!("127.0.0.1:{port}");
    let child = e2e::command_for(e2e::daemon_bin(), s.base_url(), &bucket)
        .args(["--metrics-listen", &metrics_addr])
        .args([
            "--since",
            e2e::sim_window(&s).0,
            "--interval",
            "300ms",
            "--settle",
            "0s",
            "--allow-loopback-media",
            "--verify-source-etag",
            "--tag-mode",
            "disabled",
            "--create-ledger",
            "--state",
        ])
        .arg(&state)
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        let listed: Vec<_> = sink.list("recordings/").collect().await;
        if listed.len() == n {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the daemon archived {} of {n}",
            listed.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Let it poll a few more times: nothing new, nothing downloaded again.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(s.stats().media_requests, n as u64, "no download twice");

    // The metrics endpoint, scraped as Prometheus would.
    let (status, body) = http_get(&metrics_addr, "/metrics");
    assert_eq!(status, 200, "{body}");
    for needle in [
        "genesys_archiver_recordings_total{outcome=\"archived\"} 20",
        "genesys_archiver_bytes_total ",
        "genesys_archiver_in_flight 0",
        "genesys_archiver_upload_seconds_count 20",
        "genesys_archiver_api_calls_total{endpoint=",
        "genesys_archiver_token_requests_total 2",
        "genesys_archiver_token_request_failures_total 1",
        "genesys_archiver_poll_failures_total 0",
        "genesys_archiver_pending_recordings 0",
        "genesys_archiver_polls_total ",
    ] {
        assert!(body.contains(needle), "{needle} missing from\n{body}");
    }
    let bytes: u64 = s.dataset().recordings.iter().map(|r| r.size).sum();
    assert!(
        body.contains(&format!("genesys_archiver_bytes_total {bytes}")),
        "{body}"
    );
    assert_eq!(http_get(&metrics_addr, "/healthz").0, 200);
    assert_eq!(
        http_get(&metrics_addr, "/readyz").0,
        200,
        "a poll completed"
    );
    assert_eq!(http_get(&metrics_addr, "/nope").0, 404);
    signal(child.id(), "-TERM");
    let sent = Instant::now();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(sent.elapsed() < Duration::from_secs(5), "stopped promptly");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("daemon stopped by signal"), "{stdout}");
    let ledger = Ledger::open_shared(state.to_str().unwrap()).await.unwrap();
    let cp = ledger.checkpoint("discovery").await.unwrap();
    assert!(
        cp.as_deref().is_some_and(|c| c > e2e::sim_window(&s).1),
        "the checkpoint advanced to about now: {cp:?}"
    );
    assert_store_complete(&s, &sink).await;
}

/// A minimal HTTP/1.1 GET: (status, body).
fn http_get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, body.to_string())
}
