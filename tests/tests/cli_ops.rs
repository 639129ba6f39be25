//! Operator subcommands of the real binary against the simulator and s3s-fs: quarantine,
//! ledger rebuild, verify, config check and configuration precedence, bad input.

use std::process::Output;

use e2e::{Server, archiver_command, fresh_sink};
use futures::StreamExt;
use genesys_sim::{Fault, FaultSpec, SimConfig, SimHandle, Simulator};
use sink::{ObjectSink, PutOptions};

async fn sim(n: usize, faults: Vec<FaultSpec>) -> SimHandle {
    Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings: n,
        faults,
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

/// `archive` over the simulator's whole interval.
fn archive_args(s: &SimHandle) -> Vec<&'static str> {
    let mut args = e2e::archive_whole(s);
    args.extend(["--verify-source-etag", "--tag-mode", "disabled"]);
    args
}

async fn run(mut c: std::process::Command) -> Output {
    tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn quarantine_list_and_retry() {
    // Corrupt twice: the first run's attempt and its one retry fail, so it is quarantined; the
    // third download (the operator's retry) is clean.
    let s = sim(
        6,
        vec![FaultSpec {
            recording: 2,
            fault: Fault::Corrupt,
            times: Some(2),
        }],
    )
    .await;
    let sink = fresh_sink(Server::S3sFs, "quarantine").await;
    let bucket = sink.config().bucket.clone();
    let dir = tempfile::tempdir().unwrap();
    let cmd = || {
        let mut c = archiver_command(s.base_url(), &bucket);
        c.current_dir(dir.path());
        c
    };
    let mut c = cmd();
    c.args(archive_args(&s));
    let out = run(c).await;
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));
    assert!(
        dir.path().join("genesys-archiver.db").exists(),
        "the default ledger is in the working directory"
    );
    let rid = s.dataset().recordings[2].id.clone();

    let mut c = cmd();
    c.args(["quarantine", "list"]);
    let out = run(c).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stdout.contains(&rid) && stdout.contains("md5 mismatch"),
        "{stdout}"
    );
    assert!(stderr.contains("1 recording(s) in quarantine"), "{stderr}");

    // A rerun leaves it alone.
    let before = s.stats().media_requests;
    let mut c = cmd();
    c.args(archive_args(&s));
    let out = run(c).await;
    assert!(text(&out).0.contains("1 in quarantine"), "{:?}", text(&out));
    assert_eq!(s.stats().media_requests, before, "nothing downloaded");

    let mut c = cmd();
    c.args([
        "quarantine",
        "retry",
        &rid,
        "--allow-loopback-media",
        "--verify-source-etag",
        "--tag-mode",
        "disabled",
    ]);
    let out = run(c).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("released 1 recording(s)"), "{stdout}");
    assert!(stdout.contains("archived 1"), "{stdout}");
    let mut c = cmd();
    c.args(["quarantine", "list"]);
    assert!(text(&run(c).await).0.is_empty(), "quarantine is empty");
    let listed: Vec<_> = sink.list("recordings/").collect().await;
    assert_eq!(listed.len(), 6);
}

#[tokio::test(flavor = "multi_thread")]
async fn ledger_rebuild_then_verify_finds_missing_corrupt_and_extra_objects() {
    let s = sim(8, vec![]).await;
    let sink = fresh_sink(Server::S3sFs, "verify").await;
    let bucket = sink.config().bucket.clone();
    let dir = tempfile::tempdir().unwrap();
    let cmd = |args: &[&str]| {
        let mut c = archiver_command(s.base_url(), &bucket);
        c.current_dir(dir.path()).args(args);
        c
    };
    let mut first = cmd(&archive_args(&s));
    first.args(["--report", "run.json", "--manifest", "manifest.csv"]);
    let out = run(first).await;
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    // The run report and the manifest: compliance evidence of what was stored.
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("run.json")).unwrap()).unwrap();
    assert_eq!(report["summary"]["archived"], 8, "{report}");
    assert_eq!(report["exit_code"], 0);
    assert_eq!(report["store"], format!("s3://{bucket}"));
    assert!(report["api_calls"].as_u64().unwrap() > 0);
    // The calls by endpoint add up to the total and name what they were spent on.
    let by_endpoint = report["api_calls_by_endpoint"]
        .as_object()
        .expect("by endpoint");
    let summed: u64 = by_endpoint.values().map(|n| n.as_u64().unwrap()).sum();
    assert_eq!(Some(summed), report["api_calls"].as_u64(), "{report}");
    assert!(
        by_endpoint
            .keys()
            .any(|k| k.starts_with("POST /api/v2/recording/batchrequests ")),
        "{report}"
    );
    // A handful of calls against a 300-per-minute budget: never held back.
    assert_eq!(report["api_wait_seconds"].as_f64(), Some(0.0), "{report}");
    // Every ledger write reached a committed transaction (group commit may share them).
    let (writes, commits) = (
        report["ledger_writes"].as_u64().unwrap(),
        report["ledger_commits"].as_u64().unwrap(),
    );
    assert!(
        writes >= 16,
        "a claim and an outcome per recording: {report}"
    );
    assert!((1..=writes).contains(&commits), "{report}");
    let manifest = std::fs::read_to_string(dir.path().join("manifest.csv")).unwrap();
    let mut lines = manifest.lines();
    assert_eq!(
        lines.next(),
        Some("key,size,md5,sha256,conversation_id,recording_id,start_time,end_time,archived_at")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 8);
    for r in &rows {
        let sr = s.dataset().recording(r[5]).unwrap();
        assert_eq!(r[1], sr.size.to_string());
        assert_eq!(r[2], hex::encode(s.expected_md5(sr.index)));
        assert_eq!(r[3].len(), 64, "the SHA-256: {r:?}");
        assert_eq!(r[4], sr.conversation_id);
        assert!(r[0].contains(r[5]), "key names the recording");
    }
    let out = run(cmd(&["verify", "--rehash", "--extra"])).await;
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("verified 8, missing 0, corrupt 0, extra 0 (re-hashed)"),
        "{stdout}"
    );

    // Lose the ledger; rebuild it from the bucket; a rerun downloads nothing.
    std::fs::remove_file(dir.path().join("genesys-archiver.db")).unwrap();
    let out = run(cmd(&["ledger", "rebuild"])).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("8 recording(s) recorded as archived"),
        "{stdout}"
    );
    let out = run(cmd(&["ledger", "list", "--status", "archived"])).await;
    assert_eq!(text(&out).0.lines().count(), 8);
    let before = s.stats().media_requests;
    let out = run(cmd(&archive_args(&s))).await;
    assert!(
        text(&out).0.contains("archived 0, skipped 8"),
        "{:?}",
        text(&out)
    );
    assert_eq!(s.stats().media_requests, before);

    // Behind the archiver's back: delete one object, overwrite another with other bytes of
    // the same size, and add a stray one.
    let keys: Vec<String> = sink
        .list("recordings/")
        .map(|o| o.unwrap().key)
        .collect()
        .await;
    sink.delete(&keys[0]).await.unwrap();
    let size = sink.head(&keys[1]).await.unwrap().unwrap().size as usize;
    sink.put(
        &keys[1],
        sink::full_body(vec![0u8; size]),
        PutOptions {
            content_length: Some(size as u64),
            ..PutOptions::default()
        },
    )
    .await
    .unwrap();
    sink.put(
        "recordings/stray.bin",
        sink::full_body(b"stray".to_vec()),
        PutOptions {
            content_length: Some(5),
            ..PutOptions::default()
        },
    )
    .await
    .unwrap();
    let out = run(cmd(&["verify"])).await;
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("verified 7, missing 1, corrupt 0"),
        "sizes alone: {stdout}"
    );
    let out = run(cmd(&["verify", "--rehash", "--extra"])).await;
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("missing: recording") && stdout.contains(&keys[0]),
        "{stdout}"
    );
    assert!(
        stdout.contains("corrupt: recording") && stdout.contains(&keys[1]),
        "{stdout}"
    );
    assert!(
        stdout.contains("extra: key recordings/stray.bin"),
        "{stdout}"
    );
    assert!(
        stdout.contains("verified 6, missing 1, corrupt 1, extra 1"),
        "{stdout}"
    );
}

/// `verify --against-source` asks Genesys which recordings the interval holds and reports the
/// ones that were never archived.
#[tokio::test(flavor = "multi_thread")]
async fn verify_against_the_source_reports_recordings_never_archived() {
    let s = sim(
        6,
        vec![
            FaultSpec {
                recording: 1,
                fault: Fault::ExpiredUrl,
                times: None,
            },
            FaultSpec {
                recording: 4,
                fault: Fault::Archived,
                times: None,
            },
        ],
    )
    .await;
    let sink = fresh_sink(Server::S3sFs, "versrc").await;
    let bucket = sink.config().bucket.clone();
    let dir = tempfile::tempdir().unwrap();
    let cmd = |args: &[&str]| {
        let mut c = archiver_command(s.base_url(), &bucket);
        c.current_dir(dir.path()).args(args);
        c
    };
    let out = run(cmd(&archive_args(&s))).await;
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));
    let out = run(cmd(&[
        "verify",
        "--against-source",
        "--from",
        e2e::sim_window(&s).0,
        "--to",
        e2e::sim_window(&s).1,
        "--allow-loopback-media",
    ]))
    .await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let failed = &s.dataset().recordings[1].id;
    assert!(
        stdout.contains(&format!("missing: recording {failed}"))
            && stdout.contains("the ledger has it as failed"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "unavailable: recording {}",
            s.dataset().recordings[4].id
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("verified 4, missing 1, corrupt 0, unavailable at the source 1"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn config_check_and_precedence_flags_over_environment_over_file() {
    let s = sim(1, vec![]).await;
    let sink = fresh_sink(Server::S3sFs, "config").await;
    let bucket = sink.config().bucket.clone();
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "sim-secret\n").unwrap();
    let toml = dir.path().join("archiver.toml");
    std::fs::write(
        &toml,
        format!(
            r#"
state = "from-file.db"
workers = 2
[genesys]
client_id = "sim-client"
client_secret_file = "{}"
region = "mars_north_1"
[store]
key_template = "file/{{recording_id}}.{{ext}}"
"#,
            secret.display()
        ),
    )
    .unwrap();
    let check = |extra_env: &[(&str, &str)], args: &[&str]| {
        let mut c = archiver_command(s.base_url(), &bucket);
        c.current_dir(dir.path())
            .env_remove("GENESYS_CLIENT_ID")
            .env_remove("GENESYS_CLIENT_SECRET")
            .env_remove("GENESYS_ARCHIVER_KEY_TEMPLATE")
            .args(["--config"])
            .arg(&toml)
            .args(["config", "check", "--create-ledger"])
            .args(args);
        for (k, v) in extra_env {
            c.env(k, v);
        }
        c
    };
    // The file's bad region is overridden by GENESYS_API_BASE from the environment; the file
    // gives the client id, the secret file and the key template.
    let out = run(check(&[], &[])).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("key template file/{recording_id}.{ext}"),
        "{stdout}"
    );
    assert!(stdout.contains("genesys: ok"), "{stdout}");
    assert!(
        stdout.contains(&format!("store: ok (s3://{bucket}")),
        "{stdout}"
    );
    // A check never creates the ledger: it says the first run will (with --create-ledger).
    assert!(
        stdout.contains("ledger: from-file.db does not exist yet"),
        "{stdout}"
    );
    assert!(!dir.path().join("from-file.db").exists());
    // Environment beats the file; a flag beats both.
    let env = [("GENESYS_ARCHIVER_KEY_TEMPLATE", "env/{recording_id}.{ext}")];
    let out = run(check(&env, &[])).await;
    assert!(
        text(&out)
            .0
            .contains("key template env/{recording_id}.{ext}")
    );
    let out = run(check(
        &env,
        &[
            "--key-template",
            "flag/{recording_id}.{ext}",
            "--state",
            "flag.db",
        ],
    ))
    .await;
    let (stdout, _) = text(&out);
    assert!(
        stdout.contains("key template flag/{recording_id}.{ext}"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ledger: flag.db does not exist yet"),
        "{stdout}"
    );
    // Genesys's own variable names beat the file too: an unknown client id is refused.
    let mut c = check(&[], &[]);
    c.env("GENESYSCLOUD_OAUTHCLIENT_ID", "someone-else");
    let out = run(c).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(!stdout.contains("genesys: ok"), "{stdout}");
    assert!(
        !stderr.contains("sim-secret"),
        "the secret never appears: {stderr}"
    );

    // A bucket that does not exist: exit 2 naming it.
    let mut c = check(&[], &[]);
    c.env("S3_BUCKET", "no-such-bucket-e2e");
    let out = run(c).await;
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no-such-bucket-e2e") && stderr.contains("not accessible"),
        "{stderr}"
    );
}

#[test]
fn bad_input_exits_2_with_a_message_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let good_secret = dir.path().join("secret");
    std::fs::write(&good_secret, "x\n").unwrap();
    let empty_secret = dir.path().join("empty");
    std::fs::write(&empty_secret, "\n").unwrap();
    let bad_toml = dir.path().join("bad.toml");
    std::fs::write(&bad_toml, "[store]\nbukket = \"x\"\n").unwrap();
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let missing = dir.path().join("missing-secret");
    let cases: Vec<Case> = vec![
        (
            vec![
                "archive",
                "--from",
                "2026-13-01",
                "--to",
                "2026-11-02T00:00:00Z",
            ],
            vec![],
            "--from",
        ),
        (
            vec![
                "archive",
                "--from",
                "2026-11-01T00:00:00Z",
                "--to",
                "tomorrow",
            ],
            vec![],
            "--to",
        ),
        (
            vec![
                "archive",
                "--from",
                "2026-11-01T00:00:00Z",
                "--to",
                "2026-11-02T00:00:00Z",
                "--client-secret-file",
                missing.to_str().unwrap(),
            ],
            vec![("GENESYS_CLIENT_SECRET", "")],
            "--client-secret-file",
        ),
        (
            vec![
                "archive",
                "--from",
                "2026-11-01T00:00:00Z",
                "--to",
                "2026-11-02T00:00:00Z",
                "--client-secret-file",
                empty_secret.to_str().unwrap(),
            ],
            vec![("GENESYS_CLIENT_SECRET", "")],
            "empty",
        ),
        (
            vec![
                "archive",
                "--from",
                "2026-11-01T00:00:00Z",
                "--to",
                "2026-11-02T00:00:00Z",
            ],
            vec![("GENESYS_REGION", "mars_north_1")],
            "GENESYS_REGION",
        ),
        (
            vec![
                "archive",
                "--from",
                "2026-11-01T00:00:00Z",
                "--to",
                "2026-11-02T00:00:00Z",
                "--key-template",
                "x/{nope}/{recording_id}",
            ],
            vec![],
            "nope",
        ),
        (
            vec![
                "archive",
                "--from",
                "2026-11-01T00:00:00Z",
                "--to",
                "2026-11-02T00:00:00Z",
                "--workers",
                "0",
            ],
            vec![],
            "--workers",
        ),
        (
            vec![
                "archive",
                "--from",
                "2026-11-01T00:00:00Z",
                "--to",
                "2026-11-02T00:00:00Z",
                "--media-type",
                "video",
            ],
            vec![],
            "--media-type",
        ),
        (
            vec!["daemon", "--batch-parallelism", "0"],
            vec![],
            "--batch-parallelism",
        ),
        (
            vec!["daemon", "--poll-initial", "1ms"],
            vec![],
            "--poll-initial",
        ),
        (
            vec!["--config", bad_toml.to_str().unwrap(), "config", "check"],
            vec![],
            "bukket",
        ),
        (vec!["daemon", "--interval", "soon"], vec![], "--interval"),
        (
            vec!["daemon", "--sweep-every", "0"],
            vec![],
            "--sweep-every",
        ),
        (
            vec!["daemon", "--recent-overlap", "2h"],
            vec![],
            "--recent-overlap (2h) must not exceed --overlap (1h)",
        ),
        (
            vec!["daemon", "--object-lock-mode", "compliance"],
            vec![],
            "--object-lock-retain",
        ),
        (
            vec![
                "daemon",
                "--object-lock-mode",
                "compliance",
                "--object-lock-retain",
                "forever",
            ],
            vec![],
            "--object-lock-retain",
        ),
        (
            vec!["daemon", "--metrics-listen", "everywhere"],
            vec![],
            "--metrics-listen",
        ),
        (
            vec!["daemon", "--scale-out"],
            vec![],
            "--scale-out shares the work through the ledger: use a PostgreSQL ledger",
        ),
        (
            vec!["daemon", "--batch-wait", "half an hour"],
            vec![],
            "--batch-wait",
        ),
        (
            vec!["daemon", "--scale-out", "--batch-wait", "30m"],
            vec![],
            "--batch-wait does not apply with --scale-out",
        ),
        (
            vec!["quarantine", "list", "--state", "/nonexistent/ledger.db"],
            vec![],
            "no such ledger file",
        ),
    ];
    let mut cases = cases;
    for (prefix, needle) in [
        ("recordings/x/", "overlaps the recordings"),
        ("index", "must be a key prefix ending in '/'"),
    ] {
        cases.push((
            vec![
                "archive",
                "--from",
                "2026-11-01T00:00:00Z",
                "--to",
                "2026-11-02T00:00:00Z",
                "--index-prefix",
                prefix,
            ],
            vec![],
            needle,
        ));
    }
    for (args, envs, needle) in cases {
        let mut c = std::process::Command::new(e2e::archiver_bin());
        c.current_dir(dir.path())
            .args(&args)
            .env("GENESYS_CLIENT_ID", "id")
            .env("GENESYS_CLIENT_SECRET", "secret")
            .env("GENESYS_REGION", "eu_central_1")
            .env_remove("GENESYS_API_BASE")
            .env("S3_BUCKET", "b");
        for (k, v) in &envs {
            if v.is_empty() {
                c.env_remove(k);
            } else {
                c.env(k, v);
            }
        }
        let out = c.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?}: wanted {needle:?} in {stderr}"
        );
    }
}

#[test]
fn completions_and_version() {
    for shell in ["bash", "zsh", "fish"] {
        let out = std::process::Command::new(e2e::archiver_bin())
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success());
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(
            script.contains("quarantine") && script.contains("genesys-archiver"),
            "{shell}"
        );
    }
    for bin in [e2e::archiver_bin(), e2e::daemon_bin()] {
        let out = std::process::Command::new(&bin)
            .arg("--version")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", bin.display());
        assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
    }
    let help = std::process::Command::new(e2e::daemon_bin())
        .arg("--help")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("Exit codes"));
}

/// Under a pseudo-terminal (script(1)), `archive` draws a progress bar with counts and bytes;
/// piped, it prints plain lines only.
#[tokio::test(flavor = "multi_thread")]
async fn a_terminal_session_shows_the_progress_bar() {
    let s = sim(12, vec![]).await;
    let sink = fresh_sink(Server::S3sFs, "progress").await;
    let bucket = sink.config().bucket.clone();
    let dir = tempfile::tempdir().unwrap();
    let c = archiver_command(s.base_url(), &bucket);
    let mut shell_cmd = String::new();
    for (k, v) in c.get_envs() {
        if let Some(v) = v {
            shell_cmd.push_str(&format!(
                "{}='{}' ",
                k.to_string_lossy(),
                v.to_string_lossy()
            ));
        }
    }
    shell_cmd.push_str(&e2e::archiver_bin().display().to_string());
    for a in archive_args(&s) {
        shell_cmd.push_str(&format!(" '{a}'"));
    }
    let mut script = std::process::Command::new("script");
    script
        .args(["-q", "-e", "-c", &shell_cmd, "/dev/null"])
        .current_dir(dir.path())
        .env("COLUMNS", "160");
    let out = run(script).await;
    let tty = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{tty}");
    assert!(tty.contains("recordings"), "progress bar drawn: {tty}");
    assert!(tty.contains("/12 recordings"), "counts shown: {tty}");
    assert!(tty.contains("/s"), "rate shown: {tty}");
    assert!(tty.contains("found 12, archived 12"), "{tty}");

    // Not a terminal: no bar.
    let mut piped = archiver_command(s.base_url(), &bucket);
    piped.current_dir(dir.path()).args(archive_args(&s));
    let out = run(piped).await;
    let (stdout, stderr) = text(&out);
    assert!(
        !stderr.contains("recordings  ") && !stdout.contains("ETA"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn archive_writes_the_index_and_no_index_turns_it_and_sha256_off() {
    let s = sim(5, vec![]).await;
    for index in [true, false] {
        let sink = fresh_sink(Server::S3sFs, "index").await;
        let bucket = sink.config().bucket.clone();
        let dir = tempfile::tempdir().unwrap();
        let cmd = |args: &[&str]| {
            let mut c = archiver_command(s.base_url(), &bucket);
            c.current_dir(dir.path()).args(args);
            c
        };
        let mut archive = cmd(&archive_args(&s));
        if !index {
            archive.arg("--no-index");
        }
        let out = run(archive).await;
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
        assert_eq!(
            stdout.contains("index: part 1 written to index/"),
            index,
            "{stdout}"
        );
        let parts: Vec<_> = sink
            .list("index/")
            .map(|o| o.unwrap().key)
            .collect::<Vec<_>>()
            .await;
        assert_eq!(parts.len(), usize::from(index), "{parts:?}");
        let out = run(cmd(&["find", "--json"])).await;
        let (stdout, _) = text(&out);
        let rows: Vec<serde_json::Value> = stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len(), 5, "{stdout}");
        assert!(
            rows.iter().all(|r| r["sha256"].is_string() == index),
            "{stdout}"
        );
        let out = run(cmd(&["verify", "--chain"])).await;
        let (stdout, _) = text(&out);
        if index {
            assert_eq!(out.status.code(), Some(0), "{stdout}");
            assert!(stdout.contains("5 verified"), "{stdout}");
        } else {
            assert_eq!(out.status.code(), Some(1), "{stdout}");
            assert!(stdout.contains("no index under index/"), "{stdout}");
        }
    }
}
