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
    // The closing table and where to look.
    for row in [
        "found                      80",
        "archived                   77",
        "failed                      2",
        "unavailable                 1",
    ] {
        assert!(stdout.contains(row), "{row:?} in\n{stdout}");
    }
    assert!(stdout.contains("  bytes  "), "{stdout}");
    assert!(stdout.contains("  time  "), "{stdout}");
    assert!(stdout.contains("where to look:"), "{stdout}");
    let listed_call = stdout
        .lines()
        .find_map(|l| l.strip_prefix("  a call"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no call named in\n{stdout}"));
    assert!(std::path::Path::new(listed_call).is_file(), "{listed_call}");
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
    let index_dir = out.join("index");
    let data: Vec<_> = files
        .iter()
        .filter(|p| !p.to_string_lossy().ends_with(".meta.json") && !p.starts_with(&index_dir))
        .collect();
    assert_eq!(data.len(), 77, "one file per archived recording");
    // Media a person can open: every audio file is a PCM WAV whose data chunk runs to the end
    // of the file, every screen recording a WebM (EBML) document, and the sidecar says so.
    let mut kinds = std::collections::BTreeMap::new();
    for p in &data {
        let bytes = std::fs::read(p).unwrap();
        let ext = p.extension().unwrap().to_string_lossy().into_owned();
        match ext.as_str() {
            "wav" => {
                assert_eq!(&bytes[..4], b"RIFF", "{}", p.display());
                assert_eq!(&bytes[8..16], b"WAVEfmt ", "{}", p.display());
                assert_eq!(u16::from_le_bytes([bytes[20], bytes[21]]), 1, "PCM");
                assert_eq!(&bytes[36..40], b"data");
                let data_len = u32::from_le_bytes(bytes[40..44].try_into().unwrap());
                assert_eq!(data_len as usize, bytes.len() - 44, "{}", p.display());
            }
            "webm" => {
                assert_eq!(&bytes[..4], [0x1A, 0x45, 0xDF, 0xA3], "{}", p.display());
                assert!(bytes[..64].windows(4).any(|w| w == b"webm"));
            }
            "json" => {
                serde_json::from_slice::<serde_json::Value>(&bytes).unwrap();
            }
            "eml" => assert!(bytes.starts_with(b"From: ")),
            other => panic!("unexpected file type {other}: {}", p.display()),
        }
        let mut sidecar = p.as_os_str().to_owned();
        sidecar.push(".meta.json");
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&sidecar).unwrap()).unwrap();
        let expected = match ext.as_str() {
            "wav" => "audio/wav",
            "webm" => "video/webm",
            "json" => "application/json",
            _ => "message/rfc822",
        };
        assert_eq!(
            meta["content_type"],
            expected,
            "{}",
            sidecar.to_string_lossy()
        );
        *kinds.entry(ext).or_insert(0) += 1;
    }
    assert!(kinds.get("wav").copied().unwrap_or(0) > 50, "{kinds:?}");

    // find: the recordings of one agent, from the ledger, as the sidecars say.
    let mut state = out.clone().into_os_string();
    state.push(".ledger.db");
    let agent_of = |p: &std::path::Path| {
        let mut side = p.as_os_str().to_owned();
        side.push(".meta.json");
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(side).unwrap()).unwrap();
        meta["metadata"]["user-ids"].as_str().unwrap().to_string()
    };
    let agent = agent_of(data[0]);
    let expected = data.iter().filter(|p| agent_of(p) == agent).count();
    let find = Command::new(e2e::archiver_bin())
        .args(["find", "--agent", &agent, "--json", "--state"])
        .arg(&state)
        .output()
        .unwrap();
    assert_eq!(find.status.code(), Some(0));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&find.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), expected, "{lines:?}");
    assert!(lines.iter().all(|l| l["user_ids"][0] == agent.as_str()));
    assert!(
        lines
            .iter()
            .all(|l| l["sha256"].as_str().is_some_and(|s| s.len() == 64))
    );
    // verify --chain proves the archive, and fails once an object is altered.
    let chain = || {
        Command::new(e2e::archiver_bin())
            .args(["verify", "--chain", "--out"])
            .arg(&out)
            .arg("--state")
            .arg(&state)
            .output()
            .unwrap()
    };
    let proof = chain();
    let text = String::from_utf8_lossy(&proof.stdout);
    assert_eq!(proof.status.code(), Some(0), "{text}");
    assert!(text.contains("77 verified"), "{text}");
    let original = std::fs::read(data[0]).unwrap();
    let mut altered = original.clone();
    altered[50] ^= 0x20;
    std::fs::write(data[0], &altered).unwrap();
    let broken = chain();
    let text = String::from_utf8_lossy(&broken.stdout);
    assert_eq!(broken.status.code(), Some(1), "{text}");
    assert!(text.contains("altered since it was archived"), "{text}");
    std::fs::write(data[0], &original).unwrap();
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
