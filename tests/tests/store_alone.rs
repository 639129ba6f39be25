//! An auditor with only the store: `verify --rehash` and `find` with no ledger read the
//! archive from the objects' metadata and the index (`--from-store`, or no ledger at all),
//! and catch a flipped byte and a removed object.

use e2e::{archiver_command, output_of as run, output_text as text};
use genesys_sim::{SimConfig, SimHandle};

fn files_under(p: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
        let path = e.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else if !e.file_name().to_string_lossy().starts_with('.')
            && !e.file_name().to_string_lossy().ends_with(".meta.json")
        {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// A simulator of `n` recordings and commands run in a fresh directory, archiving into its
/// `store` directory.
struct DirArchive {
    sim: SimHandle,
    dir: tempfile::TempDir,
}

impl DirArchive {
    async fn start(n: usize) -> Self {
        Self {
            sim: test_support::start_sim(SimConfig {
                recordings: n,
                ..SimConfig::default()
            })
            .await,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// `archive` of the simulator's whole interval into the store, with `extra` flags.
    async fn archive(&self, extra: &[&str]) -> std::process::Output {
        let mut args = e2e::archive_whole(&self.sim);
        args.extend_from_slice(extra);
        run(self.cmd(&args)).await
    }

    fn cmd(&self, args: &[&str]) -> std::process::Command {
        let mut c = archiver_command(self.sim.base_url(), "unused");
        c.current_dir(self.dir.path())
            .env_remove("S3_BUCKET")
            .args(args)
            .args(["--out", "store"]);
        c
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_and_find_work_from_the_store_alone() {
    let a = DirArchive::start(10).await;
    let dir = &a.dir;
    let out = a.archive(&["--tag-mode", "disabled"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let agent = a.sim.dataset().conversations[0].user_id.clone();
    let found = |o: &std::process::Output| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| l.contains("recordings/"))
            .count()
    };
    let with_ledger = run(a.cmd(&["find", "--agent", &agent])).await;
    assert_eq!(with_ledger.status.code(), Some(0), "{}", text(&with_ledger));
    assert!(found(&with_ledger) > 0, "{}", text(&with_ledger));

    // The ledger gone: nothing rebuilt on disk, the store answers.
    std::fs::remove_file(dir.path().join("genesys-archiver.db")).unwrap();
    let alone = run(a.cmd(&["find", "--agent", &agent])).await;
    assert_eq!(alone.status.code(), Some(0), "{}", text(&alone));
    assert_eq!(found(&alone), found(&with_ledger), "{}", text(&alone));
    assert!(
        text(&alone).contains("reading from the store, not a ledger"),
        "{}",
        text(&alone)
    );
    let out = run(a.cmd(&["verify", "--rehash"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("verified 10,"), "{}", text(&out));
    assert!(
        !dir.path().join("genesys-archiver.db").exists(),
        "reading never creates a ledger"
    );
    // A ledger that is named but absent is a mistake, not "no ledger".
    let out = run(a.cmd(&["verify", "--rehash", "--state", "typo.db"])).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    // One byte flipped: corrupt, from the index's digests.
    let recordings = files_under(&dir.path().join("store/recordings"));
    let mut bytes = std::fs::read(&recordings[0]).unwrap();
    bytes[64] ^= 0x01;
    std::fs::write(&recordings[0], bytes).unwrap();
    let out = run(a.cmd(&["verify", "--rehash", "--from-store"])).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("corrupt 1"), "{}", text(&out));
    // One object removed (with its sidecar): the index still lists it, so it is missing.
    let removed = &recordings[1];
    std::fs::remove_file(removed).unwrap();
    let _ = std::fs::remove_file(format!("{}.meta.json", removed.display()));
    let out = run(a.cmd(&["verify", "--from-store"])).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("listed by index part 1, not in the store"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("missing 1"), "{}", text(&out));
}

/// Digests travel with the object: a directory archive written without an index (batch mode,
/// so no `md5` metadata), its ledger lost and rebuilt from the store alone, knows each
/// object's MD5 and SHA-256 from the sidecar the store kept, so `verify --rehash` proves every
/// object (none "unproven") and catches a flipped byte.
#[tokio::test(flavor = "multi_thread")]
async fn a_rebuilt_ledger_without_an_index_knows_the_digests_the_store_kept() {
    let a = DirArchive::start(6).await;
    let dir = &a.dir;
    // The index off, but SHA-256 still computed: --no-index turns both off, so the index
    // prefix goes elsewhere and is removed afterwards.
    let out = a.archive(&["--index-prefix", "gone/"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    std::fs::remove_dir_all(dir.path().join("store/gone")).unwrap();
    std::fs::remove_file(dir.path().join("genesys-archiver.db")).unwrap();
    let out = run(a.cmd(&["ledger", "rebuild", "--index-prefix", "gone/"])).await;
    assert!(
        text(&out).contains("6 recording(s) recorded as archived"),
        "{}",
        text(&out)
    );
    let out = run(a.cmd(&["verify", "--rehash"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("verified 6,"), "{}", text(&out));
    assert!(!text(&out).contains("unproven"), "{}", text(&out));
    let recordings = files_under(&dir.path().join("store/recordings"));
    let mut bytes = std::fs::read(&recordings[0]).unwrap();
    bytes[100] ^= 0x01;
    std::fs::write(&recordings[0], bytes).unwrap();
    let out = run(a.cmd(&["verify", "--rehash"])).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("corrupt 1"), "{}", text(&out));
}

/// A digest the store kept that contradicts the custody index (a sidecar rewritten behind the
/// archiver's back) is reported by `ledger rebuild` (exit 1), never silently left unindexed.
#[tokio::test(flavor = "multi_thread")]
async fn a_stored_digest_that_contradicts_the_index_is_reported_by_rebuild() {
    let a = DirArchive::start(3).await;
    let dir = &a.dir;
    let out = a.archive(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let recordings = files_under(&dir.path().join("store/recordings"));
    let sidecar = format!("{}.meta.json", recordings[0].display());
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&sidecar).unwrap()).unwrap();
    assert!(
        json["sha256"].is_string(),
        "the sidecar keeps the SHA-256: {json}"
    );
    json["sha256"] = serde_json::Value::String("00".repeat(32));
    std::fs::write(&sidecar, serde_json::to_vec(&json).unwrap()).unwrap();
    std::fs::remove_file(dir.path().join("genesys-archiver.db")).unwrap();
    let out = run(a.cmd(&["ledger", "rebuild"])).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("SHA-256 differs from the index"),
        "{}",
        text(&out)
    );
}
