//! The TOML configuration file (`--config`): what it may say, and reading it without echoing
//! a value.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::values::{Analytics, Checksums, LockMode, Source, Sse, Tags};
use crate::{ConfigError, config_err};

/// The TOML configuration file (`--config`). Every key is optional; flags and environment
/// variables override it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    #[serde(default)]
    pub(crate) genesys: FileGenesys,
    #[serde(default)]
    pub(crate) store: FileStore,
    pub(crate) state: Option<String>,
    pub(crate) workers: Option<usize>,
    #[serde(default)]
    pub(crate) daemon: FileDaemon,
    #[serde(default)]
    pub(crate) index: FileIndex,
    /// The file this was read from (for errors that name a key of it).
    #[serde(skip)]
    pub(crate) path: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileIndex {
    /// The Ed25519 secret key file that signs index parts.
    pub(crate) signing_key: Option<String>,
    /// The file the digests of written index parts are appended to.
    pub(crate) anchor: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileGenesys {
    pub(crate) client_id: Option<String>,
    pub(crate) client_secret_file: Option<PathBuf>,
    pub(crate) region: Option<String>,
    pub(crate) api_base: Option<String>,
    pub(crate) source: Option<Source>,
    pub(crate) format_id: Option<String>,
    pub(crate) analytics: Option<Analytics>,
    #[serde(default)]
    pub(crate) media_types: Vec<String>,
    pub(crate) api_budget: Option<u32>,
    pub(crate) batch_parallelism: Option<usize>,
    pub(crate) poll_initial: Option<String>,
    #[serde(default)]
    pub(crate) media_hosts: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileStore {
    pub(crate) bucket: Option<String>,
    pub(crate) out: Option<PathBuf>,
    pub(crate) force_path_style: Option<bool>,
    pub(crate) checksum_mode: Option<Checksums>,
    pub(crate) tag_mode: Option<Tags>,
    pub(crate) key_template: Option<String>,
    pub(crate) sse: Option<Sse>,
    pub(crate) sse_kms_key_id: Option<String>,
    pub(crate) storage_class: Option<String>,
    pub(crate) object_lock_mode: Option<LockMode>,
    pub(crate) object_lock_retain: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileDaemon {
    pub(crate) since: Option<String>,
    pub(crate) interval: Option<String>,
    pub(crate) overlap: Option<String>,
    pub(crate) settle: Option<String>,
    pub(crate) sweep_every: Option<u32>,
    pub(crate) recent_overlap: Option<String>,
    pub(crate) batch_wait: Option<String>,
    pub(crate) drain_timeout: Option<String>,
    pub(crate) late_window: Option<String>,
    pub(crate) inventory_every: Option<String>,
    pub(crate) metrics_listen: Option<String>,
    pub(crate) scale_out: Option<bool>,
}

impl FileConfig {
    /// Reads `path`; errors name the file and the problem.
    pub(crate) fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| config_err(format!("--config {}: cannot read it: {e}", path.display())))?;
        let mut file: Self = toml::from_str(&text).map_err(|e| {
            config_err(format!(
                "--config {}: {}",
                path.display(),
                crate::config_text::describe(&text, &e)
            ))
        })?;
        file.path = Some(path.to_path_buf());
        Ok(file)
    }

    /// How an error names one of this file's keys: `key (in FILE)`.
    pub(crate) fn key_name(&self, key: &str) -> String {
        match &self.path {
            Some(p) => format!("{key} (in {})", p.display()),
            None => key.to_string(),
        }
    }
}
