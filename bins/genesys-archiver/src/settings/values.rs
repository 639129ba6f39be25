//! The values a setting can take (enums shared by flags and the file) and the helpers that
//! read one: durations, secret files, non-empty environment variables.

use std::path::Path;
use std::time::Duration;

use clap::ValueEnum;
use serde::Deserialize;

use crate::{ConfigError, config_err};

/// The default ledger file, in the working directory.
pub(crate) const DEFAULT_STATE: &str = "genesys-archiver.db";

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Sse {
    S3,
    Kms,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum LockMode {
    Governance,
    Compliance,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Checksums {
    WhenRequired,
    WhenSupported,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Tags {
    Header,
    Separate,
    Disabled,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Source {
    Batch,
    PerRecording,
    Compat,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Analytics {
    Auto,
    Query,
    Jobs,
}

pub(crate) fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Parses a duration such as `30s`, `5m`, `1h 30m`, naming the setting on error.
pub(crate) fn parse_duration(name: &str, v: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(v.trim()).map_err(|e| {
        config_err(format!(
            "{name} {v:?} is not a duration such as 30s, 5m or 1h ({e})"
        ))
    })
}

/// Reads a secret file: its first line, without the newline; must not be empty.
pub(crate) fn read_secret_file(setting: &str, path: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| config_err(format!("{setting} {}: cannot read it: {e}", path.display())))?;
    let secret = text.lines().next().unwrap_or_default().trim().to_string();
    if secret.is_empty() {
        return Err(config_err(format!(
            "{setting} {}: the file is empty",
            path.display()
        )));
    }
    Ok(secret)
}
