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
