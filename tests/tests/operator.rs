//! Operator manners of the real binary: configuration errors never echo a secret, and what
//! cannot work is refused at start, naming the setting.

use e2e::{archiver_bin, output_text};

/// Every secret-bearing key, typo'd and valid-but-malformed, and credential URLs under unknown
/// keys: `config check --config` exits 2, names the line and key, and never prints the value.
#[test]
fn configuration_errors_never_echo_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("[genesys]\nclient_secret = \"hunter2\"\n", "client_secret"),
        (
            "[genesys]\nclient_secret_fille = \"hunter2\"\n",
            "client_secret_fille",
        ),
        (
            "[genesys]\nclient_secret_file = [\"hunter2\"]\n",
            "client_secret_file",
        ),
        (
            "stat = \"postgres://archiver:hunter2@db.example/x\"\n",
            "stat",
        ),
        (
            "state = [\"postgres://archiver:hunter2@db.example/x\"]\n",
            "state",
        ),
        (
            "[store]\nsecret_access_key = \"hunter2\"\n",
            "secret_access_key",
        ),
        ("[index]\nsigning_key = [\"hunter2\"]\n", "signing_key"),
        ("[genesys]\nanalytics = \"hunter2\"\n", "analytics"),
        ("[genesys]\nclient_secret = \"hunter2\n", "client_secret"),
    ];
    for (i, (text, key)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("c{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let out = std::process::Command::new(archiver_bin())
            .args(["config", "check", "--config"])
            .arg(&path)
            .env_remove("GENESYS_CLIENT_SECRET")
            .output()
            .unwrap();
        let all = output_text(&out);
        assert_eq!(out.status.code(), Some(2), "{text}: {all}");
        assert!(!all.contains("hunter2"), "{text}: the secret leaked: {all}");
        assert!(all.contains("line "), "{text}: no line named: {all}");
        assert!(all.contains(key), "{text}: key {key} not named: {all}");
    }
}

fn bin(args: &[&str]) -> std::process::Command {
    let mut c = std::process::Command::new(archiver_bin());
    c.args(args)
        .env("GENESYS_CLIENT_ID", "sim-client")
        .env("GENESYS_CLIENT_SECRET", "sim-secret")
        .env_remove("GENESYS_API_BASE")
        .env_remove("GENESYS_REGION")
        .env_remove("S3_BUCKET");
    c
}

/// A simulator of `n` recordings (loopback, any port).
async fn sim(n: usize) -> genesys_sim::SimHandle {
    test_support::start_sim(genesys_sim::SimConfig {
        recordings: n,
        ..genesys_sim::SimConfig::default()
    })
    .await
}

/// `archive` of the simulator's window into `store` under `dir`, with `extra` arguments.
fn archive_into_dir(
    s: &genesys_sim::SimHandle,
    dir: &std::path::Path,
    extra: &[&str],
) -> std::process::Command {
    let (from, to) = e2e::sim_window(s);
    let mut args = vec![
        "archive",
        "--from",
        from,
        "--to",
        to,
        "--out",
        "store",
        "--allow-loopback-media",
    ];
    args.extend_from_slice(extra);
    let mut c = bin(&args);
    c.env("GENESYS_API_BASE", s.base_url())
        .env_remove("GENESYS_ARCHIVER_STATE")
        .current_dir(dir);
    c
}

/// What cannot work is refused at start with exit 2, naming the setting: an `--out` that is a
/// file, an API base nothing listens on (named with where it came from, without a minute of
/// retries), a region given by flag (named as the flag). `config check` never creates a
/// ledger at a mistyped path. A configuration error still leaves a JSON `--report`.
#[test]
fn what_cannot_work_is_refused_at_start_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let window = [
        "--from",
        "2026-11-01T00:00:00Z",
        "--to",
        "2026-11-02T00:00:00Z",
    ];
    let mut c = bin(&["archive"]);
    c.args(window)
        .args(["--api-base", "http://127.0.0.1:1", "--out"])
        .arg(&file)
        .current_dir(dir.path());
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("is a file"),
        "{}",
        output_text(&out)
    );

    // Nothing listens on the API base: named, with the setting it came from.
    for (args, origin) in [
        (
            vec!["config", "check", "--api-base", "http://127.0.0.1:1"],
            "--api-base",
        ),
        (vec!["archive"], "GENESYS_API_BASE"),
    ] {
        let mut c = bin(&args);
        if args[0] == "archive" {
            c.args(window).env("GENESYS_API_BASE", "http://127.0.0.1:1");
        }
        c.args(["--out", "store", "--report", "run.json"])
            .current_dir(dir.path());
        let out = c.output().unwrap();
        let all = output_text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {all}");
        assert!(all.contains("127.0.0.1:1"), "{args:?}: {all}");
        assert!(all.contains(origin), "{args:?}: {all}");
        assert!(!all.contains("going on"), "{args:?}: {all}");
    }
    // The archive run's report says why (config check takes no --report... it is archive's).
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("run.json")).unwrap())
            .expect("a JSON report, not an empty file");
    assert_eq!(report["exit_code"], 2, "{report}");
    assert!(
        report["configuration_error"]
            .as_str()
            .is_some_and(|e| e.contains("127.0.0.1:1")),
        "{report}"
    );

    // A region given by flag is named as the flag.
    let mut c = bin(&["archive", "--region", "mars_north_1", "--out", "store"]);
    c.args(window).current_dir(dir.path());
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("--region"),
        "{}",
        output_text(&out)
    );
    assert!(
        !output_text(&out).contains("GENESYS_REGION:"),
        "{}",
        output_text(&out)
    );

    // An index prefix that overlaps the key template: the cause named, a value that works
    // suggested.
    let mut c = bin(&[
        "archive",
        "--key-template",
        "index/{date}/{recording_id}.{ext}",
    ]);
    c.args(window)
        .args(["--api-base", "http://127.0.0.1:1", "--out", "store"])
        .current_dir(dir.path());
    let out = c.output().unwrap();
    let all = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(
        all.contains("(the default)") && all.contains("key template"),
        "{all}"
    );
    assert!(all.contains("such as custody-index/"), "{all}");
}

/// `config check` with a ledger path that does not exist says so and creates nothing.
#[tokio::test(flavor = "multi_thread")]
async fn config_check_never_creates_a_ledger() {
    let s = sim(1).await;
    let dir = tempfile::tempdir().unwrap();
    let check = |extra: &[&str]| {
        let mut args = vec![
            "config",
            "check",
            "--out",
            "store",
            "--state",
            "typo/ledgr.db",
        ];
        args.extend_from_slice(extra);
        let mut c = bin(&args);
        c.env("GENESYS_API_BASE", s.base_url())
            .current_dir(dir.path());
        c
    };
    let out = e2e::output_of(check(&[])).await;
    let all = output_text(&out);
    // A run would refuse it: the check says so, naming the flag.
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(
        all.contains("--state typo/ledgr.db: does not exist"),
        "{all}"
    );
    assert!(all.contains("--create-ledger"), "{all}");
    assert!(!dir.path().join("typo/ledgr.db").exists(), "{all}");
    let out = e2e::output_of(check(&["--create-ledger"])).await;
    let all = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(all.contains("does not exist yet"), "{all}");
    assert!(!dir.path().join("typo/ledgr.db").exists(), "{all}");
}

/// A ledger named by `--state`, `GENESYS_ARCHIVER_STATE` or the file's `state` that does not
/// exist is a mistake (a mistyped path would start an empty ledger and look at every recording
/// again): exit 2 naming where the path came from, nothing created, nothing downloaded.
/// `--create-ledger` starts it. A new ledger beside a store that already holds a custody index
/// is refused the same way, pointing at `ledger rebuild`.
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_ledger_is_started_only_when_asked() {
    let s = sim(3).await;
    let dir = tempfile::tempdir().unwrap();
    let archive = |extra: &[&str]| archive_into_dir(&s, dir.path(), extra);
    let refused = |out: &std::process::Output, origin: &str| {
        let all = output_text(out);
        assert_eq!(out.status.code(), Some(2), "{origin}: {all}");
        assert!(all.contains(origin), "{origin} not named: {all}");
        assert!(all.contains("--create-ledger"), "{all}");
        assert!(!dir.path().join("typo.db").exists(), "{all}");
    };
    refused(
        &e2e::output_of(archive(&["--state", "typo.db"])).await,
        "--state",
    );
    let mut c = archive(&[]);
    c.env("GENESYS_ARCHIVER_STATE", "typo.db");
    refused(&e2e::output_of(c).await, "GENESYS_ARCHIVER_STATE");
    std::fs::write(dir.path().join("c.toml"), "state = \"typo.db\"\n").unwrap();
    refused(
        &e2e::output_of(archive(&["--config", "c.toml"])).await,
        "state (in c.toml)",
    );
    assert_eq!(s.stats().media_requests, 0, "nothing was downloaded");

    let out = e2e::output_of(archive(&["--state", "new.db", "--create-ledger"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert!(dir.path().join("new.db").exists());

    // The ledger lost: a new one (the default file) does not know the store's index.
    std::fs::remove_file(dir.path().join("new.db")).unwrap();
    let before = s.stats().media_requests;
    let out = e2e::output_of(archive(&[])).await;
    let all = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(all.contains("ledger rebuild"), "{all}");
    assert!(all.contains("--create-ledger"), "{all}");
    assert!(!dir.path().join("genesys-archiver.db").exists(), "{all}");
    assert_eq!(s.stats().media_requests, before);
    let mut c = bin(&["ledger", "rebuild", "--out", "store"]);
    c.current_dir(dir.path());
    let out = e2e::output_of(c).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let out = e2e::output_of(archive(&[])).await;
    let all = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert_eq!(s.stats().media_requests, before, "{all}");
}

/// An empty PostgreSQL ledger beside a store that holds a custody index is refused like a new
/// SQLite one, and the refusal never shows the password of the ledger's URL.
#[tokio::test(flavor = "multi_thread")]
async fn an_empty_shared_ledger_beside_an_index_is_refused_without_its_password() {
    let s = sim(2).await;
    let dir = tempfile::tempdir().unwrap();
    let url = e2e::fresh_postgres_database("pwhidden").await;
    // Trust authentication: the password is accepted and ignored.
    let with_password = url.replacen("postgres@", "postgres:hunter2@", 1);
    assert_ne!(with_password, url, "the URL names the user: {url}");
    let archive = |state: &str| archive_into_dir(&s, dir.path(), &["--state", state]);
    let mut first = archive("first.db");
    first.arg("--create-ledger");
    let out = e2e::output_of(first).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let out = e2e::output_of(archive(&with_password)).await;
    let all = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(all.contains("ledger rebuild"), "{all}");
    assert!(!all.contains("hunter2"), "the password leaked: {all}");
}

/// Help: `genesys-archiverd --help` is the daemon's own (its name, its options);
/// read-only commands do not list write options; no default is said twice.
#[test]
fn help_is_each_programs_own_and_says_things_once() {
    let out = std::process::Command::new(e2e::daemon_bin())
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "{help}");
    assert!(help.contains("Usage: genesys-archiverd"), "{help}");
    assert!(help.contains("--late-window"), "{help}");
    assert!(help.contains("--config"), "{help}");
    let out = std::process::Command::new(e2e::daemon_bin())
        .arg("--version")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("genesys-archiverd "),
        "{}",
        output_text(&out)
    );
    // Write options in verify only under their own heading (they serve --archive-missing);
    // find lists none.
    let verify = bin(&["verify", "--help"]).output().unwrap();
    let verify = String::from_utf8_lossy(&verify.stdout).to_string();
    let (general, writing) = verify
        .split_once("Writing (only with --archive-missing or --archive-orphans)")
        .expect("a heading for the write options");
    let find = bin(&["find", "--help"]).output().unwrap();
    let find = String::from_utf8_lossy(&find.stdout).to_string();
    for write_only in [
        "--sse",
        "--storage-class",
        "--object-lock-mode",
        "--tag-mode",
    ] {
        assert!(
            !general.contains(write_only),
            "{write_only} in verify --help"
        );
        assert!(
            writing.contains(write_only),
            "{write_only} under the heading"
        );
        assert!(!find.contains(write_only), "{write_only} in find --help");
    }
    assert!(!verify.contains("to archive into"), "{verify}");
    let archive = bin(&["archive", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&archive.stdout).contains("--object-lock-mode"));
    assert_eq!(find.matches("[default: 1000]").count(), 1, "{find}");
}

/// Every subcommand's help has examples; an archiving command's options are grouped under
/// headings.
#[test]
fn every_subcommand_has_examples_and_options_are_grouped() {
    for sub in [
        "archive",
        "daemon",
        "verify",
        "find",
        "quarantine",
        "ledger",
        "index",
        "config",
        "completions",
        "demo",
        "sim",
    ] {
        let out = bin(&[sub, "--help"]).output().unwrap();
        let help = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(help.contains("Examples:\n  "), "{sub} --help: {help}");
    }
    let out = bin(&["archive", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout).to_string();
    for heading in [
        "Genesys Cloud:",
        "Store:",
        "Writing:",
        "Ledger:",
        "Run:",
        "Chain-of-custody index:",
        "Output:",
    ] {
        assert!(help.contains(heading), "{heading} missing: {help}");
    }
}

/// `find` prints a header, times in `--tz`, agent/queue/media columns, the right plural, CSV
/// on request, and a hint when a number search finds nothing; the demo's table adds up on a
/// rerun (the quarantined recording is a row of its own).
#[test]
fn find_prints_a_table_people_and_scripts_can_read() {
    let dir = tempfile::tempdir().unwrap();
    let demo = |dir: &std::path::Path| {
        bin(&["demo", "--out", "archive", "--recordings", "20"])
            .current_dir(dir)
            .output()
            .unwrap()
    };
    let first = demo(dir.path());
    assert_eq!(first.status.code(), Some(0), "{}", output_text(&first));
    let again = demo(dir.path());
    let table = String::from_utf8_lossy(&again.stdout).to_string();
    let count = |name: &str| -> u64 {
        table
            .lines()
            .find(|l| l.starts_with("  ") && l.trim_start().starts_with(name))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let parts: u64 = [
        "archived",
        "already archived",
        "failed",
        "unavailable",
        "in quarantine",
    ]
    .iter()
    .map(|n| count(n))
    .sum();
    assert_eq!(count("found"), 20, "{table}");
    assert_eq!(parts, 20, "the rows add up to found: {table}");

    let find = |args: &[&str]| {
        let mut c = bin(&["find", "--state", "archive.ledger.db"]);
        c.args(args).current_dir(dir.path());
        c.output().unwrap()
    };
    let out = find(&["--limit", "1", "--tz", "+02:00"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    for col in [
        "START", "STATUS", "SIZE", "MEDIA", "AGENTS", "QUEUES", "KEY",
    ] {
        assert!(header.contains(col), "{header}");
    }
    assert!(lines.next().unwrap().contains("+02:00"), "{text}");
    assert!(text.contains("\n1 recording "), "singular: {text}");
    let csv = find(&["--format", "csv", "--limit", "3"]);
    let csv = String::from_utf8_lossy(&csv.stdout).to_string();
    assert!(
        csv.starts_with("start,status,size,media,agents,queues"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 4, "a header and three rows: {csv}");
    let none = find(&["--number", "+4915112345678"]);
    assert!(
        String::from_utf8_lossy(&none.stderr).contains("--keep-phone-numbers"),
        "{}",
        output_text(&none)
    );
}

/// Errors name the setting as it was given: `--bucket` when the flag named a bucket that is
/// not there (not S3_BUCKET), and the loopback refusal names `--allow-loopback-media`.
#[tokio::test(flavor = "multi_thread")]
async fn errors_name_the_setting_as_it_was_given() {
    let s = genesys_sim::Simulator::start(genesys_sim::SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings: 2,
        ..genesys_sim::SimConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut c = e2e::archiver_command(s.base_url(), "some-env-bucket");
    c.env("AWS_ENDPOINT_URL", e2e::Server::S3sFs.endpoint())
        .args(["config", "check", "--bucket", "no-such-bucket-by-flag"])
        .current_dir(dir.path());
    let out = e2e::output_of(c).await;
    let all = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(
        all.contains("--bucket \"no-such-bucket-by-flag\" is not accessible"),
        "{all}"
    );
    let (from, to) = e2e::sim_window(&s);
    let mut c = e2e::archiver_command(s.base_url(), "unused");
    c.env_remove("S3_BUCKET")
        .args(["archive", "--from", from, "--to", to, "--out", "store"])
        .current_dir(dir.path());
    let out = e2e::output_of(c).await;
    let all = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("--allow-loopback-media"), "{all}");
}
