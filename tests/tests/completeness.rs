//! Completeness through the real binary against a simulator as strict as the published
//! contract: a 45-day backfill with a lagging data lake, per-recording archives that verify
//! finds, a login host that hiccups at start, pending work that keeps the exit code at 1, and
//! the simulator's switches for rehearsing all of it.

use std::collections::HashSet;
use std::io::BufRead;
use std::time::Duration;

use chrono::Utc;
use e2e::{Server, archiver_command, assert_store_holds, fresh_sink};
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

/// The done-when of the issue: a 45-day interval reaching the last hour, with the data lake a
/// day behind, archives every recording with its MD5.
#[tokio::test(flavor = "multi_thread")]
async fn a_45_day_backfill_reaching_the_last_hour_archives_everything() {
    let now = Utc::now();
    let s = sim(SimConfig {
        recordings: 120,
        start: now - chrono::Duration::days(45),
        span: Duration::from_secs(45 * 24 * 3600 - 2 * 3600),
        data_lake_lag: Duration::from_secs(24 * 3600),
        ..SimConfig::default()
    })
    .await;
    let sink = fresh_sink(Server::S3sFs, "backfill45").await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = archiver_command(s.base_url(), &sink.config().bucket);
    c.current_dir(dir.path())
        .args(["archive", "--from", &rfc(now - chrono::Duration::days(45))])
        .args(["--to", &rfc(now - chrono::Duration::minutes(1))])
        .args(FLAGS)
        .args(["--report", "run.json"]);
    let out = run(c).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let all: HashSet<String> = s
        .dataset()
        .recordings
        .iter()
        .map(|r| r.id.clone())
        .collect();
    assert_store_holds(&s, &sink, &all).await;
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("run.json")).unwrap()).unwrap();
    let r = &report["reconciliation"];
    assert_eq!(r["listed"], 120, "{report}");
    assert_eq!(r["archived"], 120);
    assert_eq!(r["clean"], true);
    assert_eq!(r["not_discoverable"], 0);
}

/// `--source per-recording`: the ledger holds the key each object was written under, so
/// `verify` (and `verify --against-source`) find every object.
#[tokio::test(flavor = "multi_thread")]
async fn per_recording_archive_then_verify_finds_every_object() {
    let s = sim(SimConfig {
        recordings: 10,
        transcode_polls: 0,
        ..SimConfig::default()
    })
    .await;
    let sink = fresh_sink(Server::S3sFs, "perrec").await;
    let bucket = sink.config().bucket.clone();
    let dir = tempfile::tempdir().unwrap();
    let (from, to) = e2e::sim_window(&s);
    let cmd = |args: &[&str]| {
        let mut c = archiver_command(s.base_url(), &bucket);
        c.current_dir(dir.path()).args(args);
        c
    };
    let mut a = cmd(&[
        "archive",
        "--from",
        from,
        "--to",
        to,
        "--source",
        "per-recording",
    ]);
    a.args(FLAGS);
    let out = run(a).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = run(cmd(&["verify", "--from", from, "--to", to, "--rehash"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("verified 10, missing 0, corrupt 0"),
        "{}",
        text(&out)
    );
    let out = run(cmd(&[
        "verify",
        "--from",
        from,
        "--to",
        to,
        "--against-source",
        "--source",
        "per-recording",
        "--allow-loopback-media",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// A 503 and a 429 from the login host at start cost retries, not the run (before: exit 2,
/// "unexpected response from POST /oauth/token").
#[tokio::test(flavor = "multi_thread")]
async fn a_login_503_at_start_costs_a_retry_not_the_run() {
    let s = sim(SimConfig {
        recordings: 4,
        login_faults: vec![503, 429],
        ..SimConfig::default()
    })
    .await;
    let sink = fresh_sink(Server::S3sFs, "login503").await;
    let dir = tempfile::tempdir().unwrap();
    let (from, to) = e2e::sim_window(&s);
    let mut c = archiver_command(s.base_url(), &sink.config().bucket);
    c.current_dir(dir.path())
        .args(["archive", "--from", from, "--to", to])
        .args(FLAGS)
        .args(["--report", "run.json"]);
    let out = run(c).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("archived 4"), "{}", text(&out));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("run.json")).unwrap()).unwrap();
    assert_eq!(report["api_token_failures"], 2, "{report}");
}

/// The simulator's switches, as an operator rehearses them: `sim --hold-open 1
/// --login-fault 503` makes `archive` retry the login and end with exit 1, the open
/// conversation reported as pending in the output and the report.
#[tokio::test(flavor = "multi_thread")]
async fn sim_switches_rehearse_pending_work_and_a_login_hiccup() {
    let mut sim = std::process::Command::new(e2e::archiver_bin())
        .args([
            "sim",
            "--recordings",
            "6",
            "--hold-open",
            "1",
            "--login-fault",
            "503",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(sim.stdout.take().unwrap()).lines();
    let base = lines.next().unwrap().unwrap();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    let sink = fresh_sink(Server::S3sFs, "simswitches").await;
    let dir = tempfile::tempdir().unwrap();
    let now = Utc::now();
    let mut c = archiver_command(&base, &sink.config().bucket);
    c.current_dir(dir.path())
        .args(["archive", "--from", &rfc(now - chrono::Duration::days(4))])
        .args(["--to", &rfc(now - chrono::Duration::minutes(1))])
        .args(FLAGS)
        .args(["--report", "run.json"]);
    let out = run(c).await;
    let _ = sim.kill();
    let _ = sim.wait();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("pending: conversation "), "{stdout}");
    assert!(stdout.contains("1 pending"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("run.json")).unwrap()).unwrap();
    assert_eq!(report["reconciliation"]["pending"], 1, "{report}");
    assert_eq!(report["reconciliation"]["clean"], false);
    assert_eq!(report["api_token_failures"], 1);
    assert_eq!(report["exit_code"], 1);
}

/// Times as people type them: a date (midnight in --tz) and a duration ago.
#[tokio::test(flavor = "multi_thread")]
async fn archive_takes_a_date_and_a_duration_ago() {
    let s = sim(SimConfig {
        recordings: 5,
        ..SimConfig::default()
    })
    .await;
    let sink = fresh_sink(Server::S3sFs, "times").await;
    let dir = tempfile::tempdir().unwrap();
    let day = (Utc::now() - chrono::Duration::days(4))
        .format("%Y-%m-%d")
        .to_string();
    let mut c = archiver_command(s.base_url(), &sink.config().bucket);
    c.current_dir(dir.path())
        .args([
            "archive",
            "--from",
            &day,
            "--to",
            "1h",
            "--tz",
            "Europe/Berlin",
        ])
        .args(FLAGS);
    let out = run(c).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("found 5, archived 5"), "{}", text(&out));
    let mut bad = archiver_command(s.base_url(), &sink.config().bucket);
    bad.current_dir(dir.path())
        .args(["archive", "--from", "last tuesday", "--to", "now"]);
    let out = run(bad).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("accepted forms"), "{}", text(&out));
}

/// `--analytics`: `jobs` lists an interval the data lake already holds through one details
/// job (pages of 1,000) without a details-query page; `query` reports what lies past the
/// query's 35-day reach as not discoverable, naming the flag, and does not exit 0; an unknown
/// value is refused before any call.
#[tokio::test(flavor = "multi_thread")]
async fn analytics_flag_chooses_jobs_or_the_query() {
    let now = Utc::now();
    let s = sim(SimConfig {
        recordings: 30,
        start: now - chrono::Duration::days(4),
        span: Duration::from_secs(2 * 24 * 3600),
        data_lake_lag: Duration::from_secs(24 * 3600),
        ..SimConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let archive = |from: chrono::DateTime<Utc>, extra: &[&str]| {
        let mut c = archiver_command(s.base_url(), "unused");
        c.current_dir(dir.path())
            .env_remove("S3_BUCKET")
            .args(["archive", "--from", &rfc(from), "--to"])
            .arg(rfc(now - chrono::Duration::days(2)))
            .args(["--out", "store", "--report", "run.json"])
            .args(FLAGS)
            .args(extra);
        c
    };
    let calls = |prefix: &str| -> u64 {
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("run.json")).unwrap()).unwrap();
        report["api_calls_by_endpoint"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, n)| n.as_u64().unwrap())
            .sum()
    };
    let jobs = "POST /api/v2/analytics/conversations/details/jobs";
    let query = "POST /api/v2/analytics/conversations/details/query";

    let out = run(archive(
        now - chrono::Duration::days(5),
        &[
            "--analytics",
            "jobs",
            "--state",
            "jobs.db",
            "--create-ledger",
        ],
    ))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("archived 30"), "{}", text(&out));
    assert_eq!(calls(jobs), 1, "one details job");
    assert_eq!(calls(query), 0, "the lake holds the whole interval");

    // The same interval by default: the details query, no job.
    let out = run(archive(
        now - chrono::Duration::days(5),
        &["--state", "auto.db", "--create-ledger"],
    ))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(calls(jobs), 0);
    assert!(calls(query) >= 1);

    // Reaching back 40 days with the query only: the old part is reported, not skipped.
    let out = run(archive(
        now - chrono::Duration::days(40),
        &[
            "--analytics",
            "query",
            "--state",
            "query.db",
            "--create-ledger",
        ],
    ))
    .await;
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("--analytics query"), "{}", text(&out));
    assert_eq!(calls(jobs), 0);

    let out = run(archive(
        now - chrono::Duration::days(5),
        &["--analytics", "lake"],
    ))
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--analytics"), "{}", text(&out));
}

/// `daemon --once` is what cron runs: before, it exited 0 whatever its poll did. A poll that
/// is not done (here: the details query cannot reach the part of `--since` older than 35
/// days, so it is not discoverable and the checkpoint stays) now exits 1 and says so; a poll
/// that is done exits 0.
#[tokio::test]
async fn daemon_once_exits_1_when_its_poll_was_not_done() {
    let now = Utc::now();
    let s = sim(SimConfig {
        recordings: 10,
        start: now - chrono::Duration::days(4),
        span: Duration::from_secs(2 * 24 * 3600),
        ..SimConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let once = |since: chrono::DateTime<Utc>, state: &str| {
        let mut c = archiver_command(s.base_url(), "unused");
        c.current_dir(dir.path())
            .env_remove("S3_BUCKET")
            .args([
                "daemon",
                "--once",
                "--since",
                &rfc(since),
                "--analytics",
                "query",
            ])
            .args(["--out", "store", "--state", state, "--create-ledger"])
            .args(FLAGS);
        c
    };
    let out = run(once(now - chrono::Duration::days(40), "far.db")).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("the poll did not complete"),
        "{}",
        text(&out)
    );
    let out = run(once(now - chrono::Duration::days(5), "near.db")).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}
