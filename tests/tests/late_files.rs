//! Files that reach Genesys after their conversation was archived, through the real binary:
//! `daemon --once` polls with a short `--late-window` archive a file the simulator attaches
//! late (`--late-file`), and `verify --inventory` finds a re-attached orphan that
//! `--archive-missing` archives.

use std::time::Duration;

use chrono::Utc;
use e2e::archiver_command;
use genesys_sim::SimConfig;
use test_support::start_sim as sim;

use e2e::{output_of as run, output_text as text};

fn rfc(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

const FLAGS: [&str; 4] = [
    "--allow-loopback-media",
    "--verify-source-etag",
    "--tag-mode",
    "disabled",
];

/// Objects under `dir` whose name holds `id`.
fn stored(dir: &std::path::Path, id: &str) -> usize {
    fn walk(p: &std::path::Path, id: &str, n: &mut usize) {
        for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
            let path = e.path();
            if path.is_dir() {
                walk(&path, id, n);
            } else if path.file_name().is_some_and(|f| {
                let f = f.to_string_lossy();
                f.contains(id) && !f.starts_with('.') && !f.ends_with(".json")
            }) {
                *n += 1;
            }
        }
    }
    let mut n = 0;
    walk(dir, id, &mut n);
    n
}

/// The report's scenario with the binary: a conversation archived soon after it ended, a
/// second file attached to it later (absent before, never uploading). The first `daemon
/// --once` archives the rest and keeps a recheck; once the late window has passed the next
/// `--once` resolves the conversation again and archives the file. The window here is the
/// time since the conversation ended plus 12 s, so the test waits about that long.
#[tokio::test(flavor = "multi_thread")]
async fn daemon_once_polls_archive_a_file_attached_after_the_first_resolution() {
    let now = Utc::now();
    let start = now - chrono::Duration::hours(3);
    // The simulator's data is fixed by its seed: find a two-file conversation first.
    let probe = sim(SimConfig {
        recordings: 30,
        start,
        span: Duration::from_secs(3600),
        ..SimConfig::default()
    })
    .await;
    let conv = probe
        .dataset()
        .conversations
        .iter()
        .find(|c| c.recordings.len() == 2)
        .expect("a conversation with two files")
        .clone();
    let late_index = conv.recordings[1];
    let late_id = probe.dataset().recordings[late_index].id.clone();
    drop(probe);
    let since_end = (Utc::now() - conv.end).to_std().unwrap();
    let s = sim(SimConfig {
        recordings: 30,
        start,
        span: Duration::from_secs(3600),
        // Attached 8 s from now; the late window closes 12 s from now.
        late_files: vec![(late_index, since_end + Duration::from_secs(8))],
        ..SimConfig::default()
    })
    .await;
    let window = format!("{}s", since_end.as_secs() + 12);
    let dir = tempfile::tempdir().unwrap();
    let once = || {
        let mut c = archiver_command(s.base_url(), "unused");
        c.current_dir(dir.path())
            .env_remove("S3_BUCKET")
            .args(["daemon", "--once", "--since", &rfc(start)])
            .args(["--settle", "0s", "--late-window", &window])
            .args(["--out", "store", "--state", "ledger.db", "--create-ledger"])
            .args(FLAGS);
        c
    };
    let first = run(once()).await;
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    assert_eq!(stored(&dir.path().join("store"), &late_id), 0);
    tokio::time::sleep(Duration::from_secs(14)).await;
    let second = run(once()).await;
    assert_eq!(second.status.code(), Some(0), "{}", text(&second));
    assert_eq!(
        stored(&dir.path().join("store"), &late_id),
        1,
        "the late file is archived: {}",
        text(&second)
    );
    assert!(
        text(&second).contains("rechecked for late files (1 found)"),
        "{}",
        text(&second)
    );
}

/// An orphan re-attached weeks after its conversation: `verify --inventory` reports it as an
/// orphan first (exit 0: nothing retained is missing), then, once re-attached, as missing
/// (exit 1); `--archive-missing` archives it (exit 0), and the audit is clean after.
#[tokio::test(flavor = "multi_thread")]
async fn verify_inventory_finds_a_reattached_orphan_and_archives_it() {
    let now = Utc::now();
    let s = sim(SimConfig {
        recordings: 20,
        start: now - chrono::Duration::days(20),
        span: Duration::from_secs(3600),
        orphans: vec![(5, None)],
        ..SimConfig::default()
    })
    .await;
    let orphan = s.dataset().recordings[5].id.clone();
    let dir = tempfile::tempdir().unwrap();
    let cmd = |args: &[&str]| {
        let mut c = archiver_command(s.base_url(), "unused");
        c.current_dir(dir.path())
            .env_remove("S3_BUCKET")
            .args(args)
            .args(["--out", "store", "--state", "ledger.db"]);
        c
    };
    let mut archive = cmd(&["archive", "--create-ledger"]);
    archive
        .args(["--from", &rfc(now - chrono::Duration::days(21))])
        .args(["--to", &rfc(now - chrono::Duration::days(19))])
        .args(FLAGS);
    let out = run(archive).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // Its own media is kept meanwhile (--archive-orphans), under the orphan's id.
    let mut verify = cmd(&["verify", "--inventory", "--archive-orphans"]);
    verify.arg("--allow-loopback-media");
    let out = run(verify).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("orphan: "), "{}", text(&out));
    assert!(
        text(&out).contains("archive-orphans: found 1, archived 1"),
        "{}",
        text(&out)
    );
    let orphan_key = s.orphan_id(5).expect("an orphan").to_string();
    assert_eq!(stored(&dir.path().join("store"), &orphan_key), 1);
    assert!(
        text(&out).contains("19 archived, 0 missing"),
        "{}",
        text(&out)
    );
    s.attach_recordings([orphan.clone()]);
    let mut verify = cmd(&["verify", "--inventory"]);
    verify.arg("--allow-loopback-media");
    let out = run(verify).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("missing: recording {orphan}")),
        "{}",
        text(&out)
    );
    let mut fix = cmd(&["verify", "--inventory", "--archive-missing"]);
    fix.args(FLAGS);
    let out = run(fix).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(stored(&dir.path().join("store"), &orphan), 1);
    let mut verify = cmd(&["verify", "--inventory"]);
    verify.arg("--allow-loopback-media");
    let out = run(verify).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("20 archived, 0 missing"),
        "{}",
        text(&out)
    );
}

/// Batch downloads leave out recordings with sensitive data when the client lacks
/// `recording:recording:viewSensitiveData` and the org redacts (documented since SDK 255):
/// `config check` warns that the client lacks it, the archive run cannot see the recording
/// (exit 0: nothing listed it), and `verify --inventory` reports it missing.
#[tokio::test(flavor = "multi_thread")]
async fn a_recording_batch_downloads_leave_out_is_caught_by_config_check_and_the_audit() {
    let now = Utc::now();
    let s = sim(SimConfig {
        recordings: 20,
        start: now - chrono::Duration::days(3),
        span: Duration::from_secs(3600),
        missing_permissions: vec!["recording:recording:viewSensitiveData".into()],
        sensitive_recordings: vec![4],
        ..SimConfig::default()
    })
    .await;
    let hidden = s.dataset().recordings[4].id.clone();
    let dir = tempfile::tempdir().unwrap();
    let cmd = |args: &[&str]| {
        let mut c = archiver_command(s.base_url(), "unused");
        c.current_dir(dir.path())
            .env_remove("S3_BUCKET")
            .args(args)
            .args(["--out", "store", "--state", "ledger.db"]);
        c
    };
    let out = run(cmd(&["config", "check", "--create-ledger"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("lacks recording:recording:viewSensitiveData"),
        "{}",
        text(&out)
    );
    let mut archive = cmd(&["archive", "--create-ledger"]);
    archive
        .args(["--from", &rfc(now - chrono::Duration::days(4))])
        .args(["--to", &rfc(now - chrono::Duration::days(2))])
        .args(FLAGS);
    let out = run(archive).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(stored(&dir.path().join("store"), &hidden), 0);
    let out = run(cmd(&["verify", "--inventory"])).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("missing: recording {hidden}")),
        "{}",
        text(&out)
    );
}

/// One-shot `archive` over conversations still inside their late window: exit 0, and the
/// summary says how many keep a recheck and until when. A rerun resolves nothing again
/// (settled for now); `--recheck` resolves every conversation again (batch jobs spent,
/// nothing downloaded twice).
#[tokio::test(flavor = "multi_thread")]
async fn archive_reports_the_late_window_and_recheck_looks_again() {
    let now = Utc::now();
    let s = sim(SimConfig {
        recordings: 20,
        start: now - chrono::Duration::hours(30),
        span: Duration::from_secs(3600),
        ..SimConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let archive = |extra: &[&str], report: &str| {
        let mut c = archiver_command(s.base_url(), "unused");
        c.current_dir(dir.path())
            .env_remove("S3_BUCKET")
            .args(["archive", "--from", &rfc(now - chrono::Duration::hours(31))])
            .args(["--to", &rfc(now - chrono::Duration::hours(20))])
            .args([
                "--out",
                "store",
                "--state",
                "ledger.db",
                "--create-ledger",
                "--report",
                report,
            ])
            .args(FLAGS)
            .args(extra);
        c
    };
    let submits = |report: &str| -> u64 {
        let r: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join(report)).unwrap()).unwrap();
        r["api_calls_by_endpoint"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.starts_with("POST /api/v2/recording/batchrequests"))
            .map(|(_, v)| v.as_u64().unwrap())
            .sum()
    };
    let first = run(archive(&[], "1.json")).await;
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    assert!(
        text(&first).contains("inside their late window"),
        "{}",
        text(&first)
    );
    assert!(submits("1.json") > 0);
    let again = run(archive(&[], "2.json")).await;
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert_eq!(submits("2.json"), 0, "settled for now: {}", text(&again));
    let recheck = run(archive(&["--recheck"], "3.json")).await;
    assert_eq!(recheck.status.code(), Some(0), "{}", text(&recheck));
    assert!(submits("3.json") > 0, "{}", text(&recheck));
    assert!(
        text(&recheck).contains("rechecked for late files (0 found)"),
        "{}",
        text(&recheck)
    );
    assert!(text(&recheck).contains("archived 0"), "{}", text(&recheck));
}
