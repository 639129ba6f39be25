//! `release` with the real binary against the simulator and s3s-fs: a dry run by default,
//! `--execute` sets the delete dates once, `verify` reports a released recording whose copy
//! is gone as critical, `--undo` takes the releases back, bad input exits 2.

use e2e::{archiver_command, fresh_sink, output_of, output_text};
use genesys_sim::{SimConfig, Simulator};
use sink::ObjectSink;

#[tokio::test(flavor = "multi_thread")]
async fn release_dry_run_execute_verify_and_undo() {
    let s = Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings: 8,
        // Ended four to six days ago: past the late window a release never enters.
        start: chrono::Utc::now() - chrono::Duration::days(6),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let sink = fresh_sink(e2e::Server::S3sFs, "release").await;
    let bucket = sink.config().bucket.clone();
    let dir = tempfile::tempdir().unwrap();
    let cmd = |args: &[&str]| {
        let mut c = archiver_command(s.base_url(), &bucket);
        c.current_dir(dir.path()).args(args);
        c
    };
    // Archives the whole interval; the late window off, so that every recording is settled.
    let archive = || cmd(&[e2e::archive_whole(&s), vec!["--late-window", "0s"]].concat());
    let out = output_of(archive()).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let n = s.dataset().recordings.len();
    let set = || (0..n).filter(|&i| s.delete_date(i).is_some()).count();

    // The defaults: a dry run, and nothing younger than 30 days.
    let out = output_of(cmd(&["release", "--allow-loopback-media"])).await;
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains(&format!("held: too-recent: {n}")), "{text}");
    assert!(text.contains("dry run: would release 0"), "{text}");

    let out = output_of(cmd(&[
        "release",
        "--older-than",
        "0s",
        "--allow-loopback-media",
    ]))
    .await;
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(&format!("dry run: would release {n}")),
        "{text}"
    );
    assert_eq!(set(), 0, "a dry run sets nothing");

    let out = output_of(cmd(&[
        "release",
        "--older-than",
        "0s",
        "--execute",
        "--json",
        "--allow-loopback-media",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("release progress"),
        "progress is logged: {}",
        output_text(&out)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["released"], n as u64, "{report}");
    assert_eq!(report["api_calls"]["put"], n as u64, "{report}");
    assert_eq!(set(), n);
    let first = s.delete_date(0).unwrap();
    assert!(first > chrono::Utc::now() + chrono::Duration::days(6));

    // The next run writes the releases into the custody index; the chain check reads them.
    let out = output_of(archive()).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let out = output_of(cmd(&["verify", "--chain"])).await;
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(&format!("{n} releases at the source recorded, 0 problems")),
        "{text}"
    );

    // A released recording whose copy is gone: critical.
    let rid = s.dataset().recordings[0].id.clone();
    let key = {
        let mut keys = sink.list("recordings/");
        let mut found = None;
        use futures::StreamExt;
        while let Some(o) = keys.next().await {
            let o = o.unwrap();
            if o.key.contains(&rid) {
                found = Some(o.key);
            }
        }
        found.expect("the recording's object")
    };
    sink.delete(&key).await.unwrap();
    let out = output_of(cmd(&["verify"])).await;
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("critical:")
            && l.contains(&rid)
            && l.contains("released at the source")),
        "{text}"
    );

    // Undo: the delete dates pushed out; a later release does not take them again.
    let out = output_of(cmd(&[
        "release",
        "--undo",
        "--since",
        "1h",
        "--allow-loopback-media",
    ]))
    .await;
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(&format!("undo: {n} recording(s) taken back")),
        "{text}"
    );
    assert!(s.delete_date(0).unwrap() > chrono::Utc::now() + chrono::Duration::days(300));
    let out = output_of(cmd(&[
        "release",
        "--older-than",
        "0s",
        "--execute",
        "--allow-loopback-media",
    ]))
    .await;
    let text = output_text(&out);
    assert!(text.contains("release: 0 considered"), "{text}");

    // Bad input names the setting.
    let out = output_of(cmd(&["release", "--grace", "2h"])).await;
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("--grace"), "{text}");
}

/// `daemon --once --release-after`: the poll archives, writes the index, then releases what is
/// proven, each poll bounded by what --release-rate allows in half an interval.
#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_releases_after_its_poll() {
    let s = Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings: 6,
        start: chrono::Utc::now() - chrono::Duration::days(6),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let sink = fresh_sink(e2e::Server::S3sFs, "release-daemon").await;
    let bucket = sink.config().bucket.clone();
    let dir = tempfile::tempdir().unwrap();
    let (from, _) = e2e::sim_window(&s);
    let mut c = archiver_command(s.base_url(), &bucket);
    c.current_dir(dir.path()).args([
        "daemon",
        "--once",
        "--since",
        from,
        "--late-window",
        "0s",
        "--allow-loopback-media",
        "--release-after",
        "1d",
        // 4 a minute over a 1-minute interval: at most 2 delete dates a poll.
        "--release-rate",
        "4",
        "--interval",
        "1m",
    ]);
    let out = output_of(c).await;
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("release at the source"), "{text}");
    let set = (0..6).filter(|&i| s.delete_date(i).is_some()).count();
    assert_eq!(set, 2, "bounded per poll: {text}");
}
