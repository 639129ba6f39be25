//! `index keygen`: the Ed25519 key pair that signs the chain-of-custody index, and loading
//! the keys the other commands take.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;

use crate::{ConfigError, config_err};

#[derive(Subcommand, Debug)]
pub(crate) enum IndexCommand {
    /// Make a key pair for signing index parts. The secret key file is created with mode
    /// 0600 and never overwritten; give the public key to auditors (`verify --chain
    /// --public-key FILE` needs nothing else but the store).
    ///
    /// Example: genesys-archiver index keygen --secret-key /etc/genesys-archiver/index.key
    /// --public-key index.pub
    Keygen {
        /// Where to write the secret key (must not exist).
        #[arg(long, value_name = "FILE")]
        secret_key: PathBuf,
        /// Where to write the public key (must not exist).
        #[arg(long, value_name = "FILE")]
        public_key: PathBuf,
    },
}

/// Creates `path` with `text`, failing if it exists; `private`: mode 0600.
fn create_new(path: &Path, text: &str, private: bool, flag: &str) -> Result<(), ConfigError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut f = opts.open(path).map_err(|e| {
        config_err(format!(
            "{flag} {}: {}",
            path.display(),
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                "exists already; a key file is never overwritten".to_string()
            } else {
                e.to_string()
            }
        ))
    })?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| config_err(format!("{flag} {}: {e}", path.display())))
}

pub(crate) fn run_index(c: IndexCommand) -> Result<ExitCode, ConfigError> {
    match c {
        IndexCommand::Keygen {
            secret_key,
            public_key,
        } => {
            if public_key.exists() {
                return Err(config_err(format!(
                    "--public-key {}: exists already; a key file is never overwritten",
                    public_key.display()
                )));
            }
            let signer =
                archiver::IndexSigner::generate().map_err(|e| config_err(e.to_string()))?;
            create_new(&secret_key, &signer.to_text(), true, "--secret-key")?;
            create_new(
                &public_key,
                &signer.verifier().to_text(),
                false,
                "--public-key",
            )?;
            println!(
                "index keys: secret key {} (mode 0600: keep it on the archiving host only), public key {} ({})",
                secret_key.display(),
                public_key.display(),
                signer.verifier().hex()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Reads the secret key that signs index parts (`--index-signing-key` / `index.signing_key`).
pub(crate) fn load_signer(path: &Path, flag: &str) -> Result<archiver::IndexSigner, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| config_err(format!("{flag} {}: cannot read it: {e}", path.display())))?;
    archiver::IndexSigner::from_text(&text)
        .map_err(|e| config_err(format!("{flag} {}: {e}", path.display())))
}

/// Reads the public key that checks index parts (`verify --chain --public-key`).
pub(crate) fn load_verifier(path: &Path) -> Result<archiver::IndexVerifier, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        config_err(format!(
            "--public-key {}: cannot read it: {e}",
            path.display()
        ))
    })?;
    archiver::IndexVerifier::from_text(&text)
        .map_err(|e| config_err(format!("--public-key {}: {e}", path.display())))
}

/// One line of an anchor file: a written part's digest, kept outside the bucket.
#[derive(serde::Serialize, serde::Deserialize)]
struct AnchorLine {
    seq: u64,
    key: String,
    sha256: String,
    written_at: String,
}

/// Appends the digests of written parts to the anchor file (`--index-anchor`), one JSON line
/// each, flushed to disk.
pub(crate) fn append_anchor(
    path: &Path,
    parts: &[(u64, String, Option<String>)],
) -> Result<(), String> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    for (seq, key, sha) in parts {
        let Some(sha) = sha else { continue };
        let line = serde_json::to_string(&AnchorLine {
            seq: *seq,
            key: key.clone(),
            sha256: sha.clone(),
            written_at: chrono::Utc::now().to_rfc3339(),
        })
        .map_err(|e| e.to_string())?;
        writeln!(f, "{line}").map_err(|e| format!("{}: {e}", path.display()))?;
    }
    f.sync_all().map_err(|e| format!("{}: {e}", path.display()))
}

/// Reads an anchor file into (part, SHA-256) expectations for `verify --chain --anchor`.
pub(crate) fn read_anchor(path: &Path) -> Result<Vec<(u64, String)>, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| config_err(format!("--anchor {}: cannot read it: {e}", path.display())))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str::<AnchorLine>(l)
                .map(|a| (a.seq, a.sha256))
                .map_err(|e| {
                    config_err(format!(
                        "--anchor {} line {}: not an anchor line: {e}",
                        path.display(),
                        i + 1
                    ))
                })
        })
        .collect()
}
