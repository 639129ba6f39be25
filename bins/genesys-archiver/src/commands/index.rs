//! `index keygen`: the Ed25519 key pair that signs the chain-of-custody index, and loading
//! the keys the other commands take.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;

use crate::{ConfigError, config_err, settings};

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

/// The anchor a `--index-anchor` / `--anchor` value names: `s3://BUCKET/PREFIX` (objects in
/// another bucket, reached with the same endpoint and credentials as the store; under Object
/// Lock when that bucket has default retention) or a local file. `setting` names the value in
/// errors.
pub(crate) async fn anchor_from(
    value: &str,
    setting: &'static str,
    store: &settings::StoreSettings,
) -> Result<archiver::IndexAnchor, ConfigError> {
    let Some(rest) = value.strip_prefix("s3://") else {
        return Ok(archiver::IndexAnchor::File(value.into()));
    };
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(config_err(format!(
            "{setting} {value:?}: name a bucket, as s3://BUCKET/PREFIX"
        )));
    }
    let path_style = match &store.target {
        settings::StoreTarget::Bucket { path_style, .. } => *path_style,
        settings::StoreTarget::Dir(_) => std::env::var("S3_FORCE_PATH_STYLE")
            .is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1"),
    };
    if let settings::StoreTarget::Bucket { bucket: own, .. } = &store.target
        && own == bucket
    {
        return Err(config_err(format!(
            "{setting} {value:?}: the anchor must be outside the archive's bucket ({own}), or a writer with access to the bucket could rewrite both"
        )));
    }
    let anchor_store = settings::StoreSettings {
        bucket_origin: setting,
        target: settings::StoreTarget::Bucket {
            bucket: bucket.to_string(),
            path_style,
            checksums: settings::Checksums::WhenRequired,
            tags: settings::Tags::Disabled,
            sse: sink::ServerSideEncryption::default(),
            storage_class: None,
            object_lock: None,
        },
        key_template: store.key_template.clone(),
        key_template_text: store.key_template_text.clone(),
    };
    let sink = settings::connect_store(&anchor_store).await.map_err(|e| {
        config_err(format!(
            "{setting} {value:?}: {}",
            e.0.replacen("S3_BUCKET ", "bucket ", 1)
        ))
    })?;
    let mut prefix = prefix.to_string();
    if !prefix.is_empty() && !prefix.ends_with('/') {
        prefix.push('/');
    }
    Ok(archiver::IndexAnchor::Store { sink, prefix })
}
