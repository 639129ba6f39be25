//! The store: where the archive is (a bucket or a directory), how objects are written, and
//! connecting to it (reachable, writable).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use sink::{ChecksumMode, LocalDirSink, ObjectSink, S3Sink, S3SinkConfig, TagMode};

use super::file::FileConfig;
use super::values::{Checksums, LockMode, Sse, Tags, parse_duration};
use crate::{ConfigError, config_err};

/// Where the archive is: every command that reads or writes it.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct StoreArgs {
    /// Bucket of the archive.
    #[arg(long, env = "S3_BUCKET")]
    pub(crate) bucket: Option<String>,
    /// The archive is in this local directory instead of a bucket.
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Path-style addressing (needed by most S3-compatible stores) [default: false].
    #[arg(long, env = "S3_FORCE_PATH_STYLE")]
    pub(crate) force_path_style: Option<String>,
    /// Flexible checksums on S3 requests: when_required works with every store
    /// [default: when-required].
    #[arg(long, value_enum)]
    pub(crate) checksum_mode: Option<Checksums>,
    /// Object key template [default: recordings/{date}/{conversation_id}/{recording_id}.{ext}].
    #[arg(long, env = "GENESYS_ARCHIVER_KEY_TEMPLATE")]
    pub(crate) key_template: Option<String>,
    /// How objects are written: only `archive` and `daemon` take these.
    #[arg(skip)]
    pub(crate) write: WriteArgs,
}

/// How objects are written (`archive`, `daemon`, `config check`).
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct WriteArgs {
    /// How object tags are written [default: header].
    #[arg(long, value_enum)]
    pub(crate) tag_mode: Option<Tags>,
    /// Server-side encryption: s3 (AES256) or kms (checked: a store that ignores it is refused).
    #[arg(long, value_enum)]
    pub(crate) sse: Option<Sse>,
    /// KMS key id or ARN for --sse kms (default: the AWS managed key).
    #[arg(long)]
    pub(crate) sse_kms_key_id: Option<String>,
    /// Storage class (STANDARD, STANDARD_IA, GLACIER_IR, ...).
    #[arg(long)]
    pub(crate) storage_class: Option<String>,
    /// Object Lock retention mode (the bucket must have Object Lock enabled).
    #[arg(long, value_enum, requires = "object_lock_retain")]
    pub(crate) object_lock_mode: Option<LockMode>,
    /// Object Lock retention from the time of writing, e.g. 2555d (7 years).
    #[arg(long)]
    pub(crate) object_lock_retain: Option<String>,
}

/// Store settings after merging.
#[derive(Debug, Clone)]
pub(crate) struct StoreSettings {
    /// Where the bucket's name came from (a flag, a variable or a file key), for errors.
    pub(crate) bucket_origin: &'static str,
    pub(crate) target: StoreTarget,
    pub(crate) key_template: archiver::KeyTemplate,
    pub(crate) key_template_text: String,
}

#[derive(Debug, Clone)]
pub(crate) enum StoreTarget {
    Dir(PathBuf),
    Bucket {
        bucket: String,
        path_style: bool,
        checksums: Checksums,
        tags: Tags,
        sse: sink::ServerSideEncryption,
        storage_class: Option<String>,
        object_lock: Option<sink::ObjectLock>,
    },
}

impl StoreSettings {
    /// Whether objects are written with Object Lock retention (`store.object_lock`).
    pub(crate) fn writes_with_object_lock(&self) -> bool {
        matches!(
            &self.target,
            StoreTarget::Bucket {
                object_lock: Some(_),
                ..
            }
        )
    }
}

fn finish(
    target: StoreTarget,
    key_template: archiver::KeyTemplate,
    key_template_text: String,
) -> Result<StoreSettings, ConfigError> {
    Ok(StoreSettings {
        bucket_origin: "store.bucket",
        target,
        key_template,
        key_template_text,
    })
}

impl StoreArgs {
    pub(crate) fn resolve(&self, file: &FileConfig) -> Result<StoreSettings, ConfigError> {
        let f = &file.store;
        let text = self
            .key_template
            .clone()
            .or_else(|| f.key_template.clone())
            .unwrap_or_else(|| archiver::DEFAULT_TEMPLATE.to_string());
        let key_template = archiver::KeyTemplate::parse(&text)
            .map_err(|e| config_err(format!("--key-template: {e}")))?;
        let bucket_flag = self.bucket.clone().filter(|b| !b.is_empty());
        let bucket = match (&self.out, bucket_flag, &f.out, &f.bucket) {
            // Flags and environment first (--out wins over S3_BUCKET), then the file.
            (Some(dir), _, _, _) => {
                return finish(StoreTarget::Dir(dir.clone()), key_template, text);
            }
            (None, Some(b), _, _) => b,
            (None, None, Some(dir), None) => {
                return finish(StoreTarget::Dir(dir.clone()), key_template, text);
            }
            (None, None, None, Some(b)) => b.clone(),
            (None, None, Some(_), Some(_)) => {
                return Err(config_err(
                    "the config file sets both store.bucket and store.out; choose one",
                ));
            }
            (None, None, None, None) => {
                return Err(config_err(
                    "S3_BUCKET (or --bucket, store.bucket) is not set, and no --out directory was given",
                ));
            }
        };
        let path_style = match &self.force_path_style {
            Some(v) => crate::parse_bool("S3_FORCE_PATH_STYLE", v)?,
            None => f.force_path_style.unwrap_or(false),
        };
        let sse = match self.write.sse.or(f.sse) {
            None => sink::ServerSideEncryption::None,
            Some(Sse::S3) => sink::ServerSideEncryption::S3,
            Some(Sse::Kms) => sink::ServerSideEncryption::Kms {
                key_id: self
                    .write
                    .sse_kms_key_id
                    .clone()
                    .or_else(|| f.sse_kms_key_id.clone()),
            },
        };
        let object_lock = match (
            self.write.object_lock_mode.or(f.object_lock_mode),
            self.write
                .object_lock_retain
                .as_ref()
                .or(f.object_lock_retain.as_ref()),
        ) {
            (None, None) => None,
            (Some(mode), Some(retain)) => {
                let retain_for = parse_duration("--object-lock-retain", retain)?;
                if retain_for.is_zero() {
                    return Err(config_err("--object-lock-retain must be longer than zero"));
                }
                Some(sink::ObjectLock {
                    mode: match mode {
                        LockMode::Governance => "GOVERNANCE",
                        LockMode::Compliance => "COMPLIANCE",
                    }
                    .to_string(),
                    retain_for,
                })
            }
            _ => {
                return Err(config_err(
                    "--object-lock-mode and --object-lock-retain go together",
                ));
            }
        };
        let target = StoreTarget::Bucket {
            bucket,
            path_style,
            checksums: self
                .checksum_mode
                .or(f.checksum_mode)
                .unwrap_or(Checksums::WhenRequired),
            tags: self.write.tag_mode.or(f.tag_mode).unwrap_or(Tags::Header),
            sse,
            storage_class: self
                .write
                .storage_class
                .clone()
                .or_else(|| f.storage_class.clone()),
            object_lock,
        };
        let mut settings = finish(target, key_template, text)?;
        settings.bucket_origin = match self.bucket.as_deref().filter(|b| !b.is_empty()) {
            Some(v) if std::env::var("S3_BUCKET").is_ok_and(|e| e == v) => "S3_BUCKET",
            Some(_) => "--bucket",
            None => "store.bucket",
        };
        Ok(settings)
    }

    /// The fixed part of the key template before its first placeholder.
    pub(crate) fn prefix(s: &StoreSettings) -> String {
        s.key_template_text
            .split('{')
            .next()
            .unwrap_or_default()
            .to_string()
    }
}

/// Whether files can be created in `dir` (created first when missing): a temporary file is
/// written and removed.
pub(crate) fn check_dir_writable(dir: &Path) -> Result<(), String> {
    if dir.exists() && !dir.is_dir() {
        return Err("it is a file, not a directory".into());
    }
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let probe = dir.join(format!(".write-check-{:016x}", fastrand::u64(..)));
    std::fs::write(&probe, b"").map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// For a directory store: can the archive be written there? Said at start, not after every
/// recording was downloaded and failed.
pub(crate) fn check_writable(s: &StoreSettings) -> Result<(), ConfigError> {
    match &s.target {
        StoreTarget::Dir(dir) => check_dir_writable(dir)
            .map_err(|e| config_err(format!("--out {}: cannot write there: {e}", dir.display()))),
        StoreTarget::Bucket { .. } => Ok(()),
    }
}

/// Builds the sink; for a bucket, proves it is reachable with HEAD bucket.
pub(crate) async fn connect_store(s: &StoreSettings) -> Result<Arc<dyn ObjectSink>, ConfigError> {
    Ok(match &s.target {
        StoreTarget::Dir(dir) if dir.exists() && !dir.is_dir() => {
            return Err(config_err(format!(
                "--out {}: is a file, not a directory",
                dir.display()
            )));
        }
        StoreTarget::Dir(dir) => Arc::new(LocalDirSink::new(dir)),
        StoreTarget::Bucket {
            bucket,
            path_style,
            checksums,
            tags,
            sse,
            storage_class,
            object_lock,
        } => {
            let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .load()
                .await;
            if sdk.region().is_none() {
                return Err(config_err(
                    "AWS_REGION is not set (the S3 client needs a region, e.g. us-east-1)",
                ));
            }
            let checksums = match checksums {
                Checksums::WhenRequired => ChecksumMode::WhenRequired,
                Checksums::WhenSupported => ChecksumMode::WhenSupported,
            };
            let s3 = S3Sink::client_from(&sdk, *path_style, checksums);
            if let Err(e) = s3.head_bucket().bucket(bucket).send().await {
                return Err(config_err(format!(
                    "{} {bucket:?} is not accessible: {} (check the name, AWS_ENDPOINT_URL, AWS_REGION and credentials)",
                    s.bucket_origin,
                    aws_sdk_s3::error::DisplayErrorContext(&e)
                )));
            }
            let mut scfg = S3SinkConfig::new(bucket.clone());
            scfg.tag_mode = match tags {
                Tags::Header => TagMode::Header,
                Tags::Separate => TagMode::Separate,
                Tags::Disabled => TagMode::Disabled,
            };
            scfg.sse = sse.clone();
            scfg.storage_class = storage_class.clone();
            scfg.object_lock = object_lock.clone();
            Arc::new(S3Sink::new(s3, scfg))
        }
    })
}
