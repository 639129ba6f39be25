//! The CLI's `demo` and `sim` subcommands, run as a newcomer would.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn demo_archives_everything_but_the_broken_ones_and_reruns_skip() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("archive");
    let run = || {
        Command::new(e2e::archiver_bin())
            .args(["demo", "--recordings", "80", "--out"])
            .arg(&out)
            .output()
            .unwrap()
    };
    let first = run();
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert_eq!(
        first.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(
        stdout.contains("found 80, archived 77, skipped 0, failed 2, unavailable 1"),
        "{stdout}"
    );
    assert!(stdout.contains("demo OK"), "{stdout}");
    // Quiet by default: retries are counted, not logged; warnings only for what needs a
    // person (the two recordings that failed, the one archived at the source).
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(!stderr.contains("retrying"), "{stderr}");
    let warnings = stderr.lines().filter(|l| !l.trim().is_empty()).count();
    assert!(warnings <= 6, "{warnings} log lines:\n{stderr}");
    for rid in ["failed", "unavailable"] {
        assert!(stderr.contains(rid), "{stderr}");
    }
    let mut files = Vec::new();
    let mut stack = vec![out.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p)
            } else {
                files.push(p)
            }
        }
    }
    let data: Vec<_> = files
        .iter()
        .filter(|p| !p.to_string_lossy().ends_with(".meta.json"))
        .collect();
    assert_eq!(data.len(), 77, "one file per archived recording");
    assert!(
        files
            .iter()
            .all(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.')),
        "no partial files"
    );
    let second = run();
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert!(stdout.contains("archived 0, skipped 77"), "{stdout}");
}

#[test]
fn sim_prints_its_base_url_and_serves_the_api() {
    let mut child = Command::new(e2e::archiver_bin())
        .args([
            "sim",
            "--listen",
            "127.0.0.1:0",
            "--recordings",
            "5",
            "--seed",
            "3",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line.trim().to_string();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    use std::io::{Read, Write};
    write!(s, "POST /oauth/token HTTP/1.1\r\nHost: x\r\nAuthorization: Basic c2ltLWNsaWVudDp3cm9uZw==\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 29\r\nConnection: close\r\n\r\ngrant_type=client_credentials").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(
        resp.starts_with("HTTP/1.1 401"),
        "bad credentials are refused: {resp}"
    );
    assert!(resp.contains("invalid_client"));
    child.kill().unwrap();
    let _ = child.wait();

    let bad = Command::new(e2e::archiver_bin())
        .args(["sim", "--recordings", "3", "--fault", "7=corrupt"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--fault index 7 is out of range"));
}
