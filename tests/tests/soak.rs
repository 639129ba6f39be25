//! Reliability suite: a soak run through random source faults and a store answering 503s;
//! the S3 server killed and restarted mid-run; the local disk filling up mid-run.

use std::collections::HashSet;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use archiver::{ArchiverConfig, Ledger, RecordStatus, archive};
use e2e::{Server, archiver_command, client_at, faulty_proxy, fresh_sink};
use genesys_media::{DiscoveryQuery, GenesysClient};
use genesys_sim::{Fault, FaultRates, FaultSpec, SimConfig, SimHandle, Simulator};
use sink::{ObjectSink, S3Sink};
use test_support::sim_client;

fn client(s: &SimHandle) -> GenesysClient {
    sim_client(s, |cfg| {
        cfg.poll_initial = Duration::from_millis(100);
        cfg.retry.base_delay = Duration::from_millis(20);
        cfg.retry.max_delay = Duration::from_millis(500);
    })
}

fn fast_retries() -> ArchiverConfig {
    let mut c = ArchiverConfig {
        verify_source_etag: true,
        workers: archiver::Workers::Fixed(8),
        ..ArchiverConfig::default()
    };
    c.retry.base_delay = Duration::from_millis(20);
    c.retry.max_delay = Duration::from_millis(500);
    c.retry.max_attempts = 12;
    c.retry.max_elapsed = Duration::from_secs(120);
    c
}

#[tokio::test(flavor = "multi_thread")]
async fn soak_random_faults_end_with_every_recording_once_and_the_corrupt_quarantined() {
    let n = 2000;
    let mut rng = fastrand::Rng::with_seed(7);
    let mut faults = Vec::new();
    let mut corrupt = HashSet::new();
    for i in 0..n {
        let x = rng.f64();
        let f = |fault, times| FaultSpec {
            recording: i,
            fault,
            times,
        };
        if x < 0.01 {
            faults.push(f(Fault::Corrupt, None));
            corrupt.insert(i);
        } else if x < 0.03 {
            faults.push(f(Fault::ExpiredUrl, Some(1)));
        } else if x < 0.04 {
            faults.push(f(Fault::Corrupt, Some(1)));
        } else if x < 0.06 {
            faults.push(f(Fault::RateLimited, Some(2)));
        }
    }
    let s = Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings: n,
        seed: 11,
        size_range: (4096, 65536),
        faults,
        rates: FaultRates {
            api_429: 0.02,
            api_5xx: 0.02,
            media_5xx: 0.05,
            media_reset: 0.02,
            media_corrupt: 0.0,
        },
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let direct = fresh_sink(Server::S3sFs, "soak").await;
    let proxy = faulty_proxy(&Server::S3sFs.endpoint(), 0.03, 5).await;
    let proxied: Arc<dyn ObjectSink> = Arc::new(S3Sink::new(
        client_at(&proxy.endpoint).await,
        direct.config().clone(),
    ));
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("soak.db");
    let c = client(&s);
    let q = DiscoveryQuery::interval(s.config().start, s.config().end());
    let mut cfg = fast_retries();
    cfg.ledger = Some(Ledger::open(db.to_str().unwrap()).await.unwrap());
    let summary = archive(
        c.clone(),
        proxied.clone(),
        c.discover(q.clone()),
        cfg,
        Arc::new(archiver::NoEvents),
    )
    .await;
    assert!(summary.discovery_error.is_none(), "{summary:?}");
    assert_eq!(summary.found, n as u64);
    let corrupt_ids: HashSet<String> = corrupt
        .iter()
        .map(|i| s.dataset().recordings[*i].id.clone())
        .collect();
    let failed: HashSet<String> = summary
        .failures
        .iter()
        .map(|f| f.recording_id.clone())
        .collect();
    assert_eq!(
        failed, corrupt_ids,
        "only the persistently corrupt recordings fail: {:?}",
        summary.failures
    );
    assert!(
        proxy
            .stats
            .injected_503
            .load(std::sync::atomic::Ordering::Relaxed)
            > 10,
        "the store answered 503s"
    );
    let expected: HashSet<String> = s
        .dataset()
        .recordings
        .iter()
        .map(|r| r.id.clone())
        .filter(|id| !corrupt_ids.contains(id))
        .collect();
    e2e::assert_store_holds(&s, &direct, &expected).await;
    let ledger = Ledger::open_shared(db.to_str().unwrap()).await.unwrap();
    let quarantined: HashSet<String> = ledger
        .entries(Some(RecordStatus::Quarantined))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.recording_id)
        .collect();
    assert_eq!(quarantined, corrupt_ids);
    assert_eq!(
        ledger
            .entries(Some(RecordStatus::Archived))
            .await
            .unwrap()
            .len(),
        expected.len()
    );
    drop(ledger);

    // A rerun downloads nothing: archived ones are skipped, quarantined ones left alone.
    let before = s.stats().media_requests;
    let mut cfg = fast_retries();
    cfg.ledger = Some(Ledger::open(db.to_str().unwrap()).await.unwrap());
    let again = archive(
        c.clone(),
        proxied,
        c.discover(q),
        cfg,
        Arc::new(archiver::NoEvents),
    )
    .await;
    assert_eq!(again.archived, 0);
    assert_eq!(again.skipped, expected.len() as u64);
    assert_eq!(again.quarantined, corrupt_ids.len() as u64);
    assert_eq!(s.stats().media_requests, before);
}

/// The S3 server is killed (SIGKILL) mid-run and started again two seconds later on the same
/// port and data: the run waits it out and ends with every recording stored intact.
#[tokio::test(flavor = "multi_thread")]
async fn the_store_killed_and_restarted_mid_run() {
    let n = 120;
    let s = Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings: n,
        size_range: (64 * 1024, 512 * 1024),
        faults: (0..n)
            .map(|i| FaultSpec {
                recording: i,
                fault: Fault::Slow(Duration::from_millis(15)),
                times: None,
            })
            .collect(),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("restart-bucket")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let start_server = || {
        std::process::Command::new("s3s-fs")
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", &std::env::var("E2E_S3_ACCESS_KEY").unwrap()])
            .args(["--secret-key", &std::env::var("E2E_S3_SECRET_KEY").unwrap()])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("s3s-fs is installed by scripts/install-deps.sh")
    };
    let mut server = start_server();
    let endpoint = format!("http://127.0.0.1:{port}");
    for _ in 0..50 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let store: Arc<dyn ObjectSink> = Arc::new(S3Sink::new(
        client_at(&endpoint).await,
        sink::S3SinkConfig {
            tag_mode: sink::TagMode::Disabled,
            ..sink::S3SinkConfig::new("restart-bucket")
        },
    ));
    let c = client(&s);
    let dbdir = tempfile::tempdir().unwrap();
    let mut cfg = fast_retries();
    cfg.workers = archiver::Workers::Fixed(4);
    cfg.ledger = Some(
        Ledger::open(dbdir.path().join("l.db").to_str().unwrap())
            .await
            .unwrap(),
    );
    let run = tokio::spawn(archive(
        c.clone(),
        store.clone(),
        c.discover(DiscoveryQuery::interval(s.config().start, s.config().end())),
        cfg,
        Arc::new(archiver::NoEvents),
    ));
    // Kill the store once uploads are under way, bring it back after two seconds.
    while s.stats().media_requests < 10 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill().unwrap();
    server.wait().unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut server = start_server();
    let summary = run.await.unwrap();
    assert!(summary.success(), "{summary:?}");
    assert_eq!(summary.archived, n as u64, "{summary:?}");
    let expected: HashSet<String> = s
        .dataset()
        .recordings
        .iter()
        .map(|r| r.id.clone())
        .collect();
    e2e::assert_store_holds(&s, store.as_ref(), &expected).await;
    server.kill().unwrap();
    let _ = server.wait();
}

/// The local store's disk fills up mid-run: the recordings that do not fit fail with the
/// system's error and leave no partial file; after space is added, a rerun stores the rest.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_fails_cleanly_and_a_rerun_completes() {
    let n = 30;
    let s = Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings: n,
        size_range: (64 * 1024, 256 * 1024),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("store");
    std::fs::create_dir_all(&out).unwrap();
    // A 1 MiB tmpfs is a real full disk (ENOSPC). Without the right to mount, a file-size
    // limit gives the same mid-file write failure (EFBIG).
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&out)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    let args = |bin: &str| {
        format!(
            "{bin} archive --from {} --to {} \
             --allow-loopback-media --verify-source-etag --out {} --state {} --create-ledger",
            e2e::sim_window(&s).0,
            e2e::sim_window(&s).1,
            out.display(),
            dir.path().join("l.db").display()
        )
    };
    let bin = e2e::archiver_bin().display().to_string();
    let first_cmd = if mounted {
        args(&bin)
    } else {
        format!("trap '' XFSZ; ulimit -f 128; exec {}", args(&bin))
    };
    let mut c = archiver_command(s.base_url(), "unused");
    let envs: Vec<_> = c
        .get_envs()
        .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned())))
        .collect();
    c = std::process::Command::new("bash");
    c.envs(envs.iter().map(|(k, v)| (k, v)));
    let first = c.args(["-c", &first_cmd]).output().unwrap();
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert_eq!(first.status.code(), Some(1), "some do not fit: {stdout}");
    let wanted = if mounted {
        "No space left on device"
    } else {
        "File too large"
    };
    assert!(stdout.contains(wanted), "{stdout}");
    let leftovers: Vec<_> = walk(&out)
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "no partial files: {leftovers:?}");

    if mounted {
        let grown = std::process::Command::new("mount")
            .args(["-o", "remount,size=64m"])
            .arg(&out)
            .status()
            .unwrap();
        assert!(grown.success());
    }
    let mut c = std::process::Command::new("bash");
    c.envs(envs.iter().map(|(k, v)| (k, v)));
    let second = c.args(["-c", &args(&bin)]).output().unwrap();
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert_eq!(second.status.code(), Some(0), "{stdout}");
    let sink = sink::LocalDirSink::new(&out);
    let expected: HashSet<String> = s
        .dataset()
        .recordings
        .iter()
        .map(|r| r.id.clone())
        .collect();
    e2e::assert_store_holds(&s, &sink, &expected).await;
    if mounted {
        let _ = std::process::Command::new("umount").arg(&out).status();
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}
