//! The ledger's location (`--state`) and opening it.

use clap::Args;

use super::file::FileConfig;
use super::values::DEFAULT_STATE;
use crate::{ConfigError, config_err};

/// Ledger settings.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct StateArgs {
    /// Ledger: a SQLite file, or postgres://user@host/db to share one between instances
    /// [default: genesys-archiver.db in the working directory].
    #[arg(long, env = "GENESYS_ARCHIVER_STATE")]
    pub(crate) state: Option<String>,
}

impl StateArgs {
    /// The ledger location: flag/env, file, or the default file.
    pub(crate) fn location(&self, file: &FileConfig) -> String {
        self.state
            .clone()
            .filter(|s| !s.is_empty())
            .or_else(|| file.state.clone())
            .unwrap_or_else(|| DEFAULT_STATE.to_string())
    }

    /// Opens the ledger for archiving (takes the SQLite process lock).
    pub(crate) async fn open(&self, file: &FileConfig) -> Result<archiver::Ledger, ConfigError> {
        let loc = self.location(file);
        archiver::Ledger::open(&loc)
            .await
            .map_err(|e| config_err(format!("--state: {e}")))
    }

    /// Opens the ledger for reading (no process lock; the file must exist).
    pub(crate) async fn open_shared(
        &self,
        file: &FileConfig,
    ) -> Result<archiver::Ledger, ConfigError> {
        let loc = self.location(file);
        archiver::Ledger::open_shared(&loc)
            .await
            .map_err(|e| config_err(format!("--state: {e}")))
    }
}
