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
        self.named(file)
            .unwrap_or_else(|| DEFAULT_STATE.to_string())
    }

    /// The location when something named one (flag, environment or file), not the default.
    pub(crate) fn named(&self, file: &FileConfig) -> Option<String> {
        self.state
            .clone()
            .filter(|s| !s.is_empty())
            .or_else(|| file.state.clone())
    }

    /// Where the location came from, as the operator gave it: `--state`,
    /// `GENESYS_ARCHIVER_STATE`, `state (in FILE)`, or the default file.
    pub(crate) fn origin(&self, file: &FileConfig) -> String {
        match self.state.as_deref().filter(|s| !s.is_empty()) {
            Some(v) if std::env::var(STATE_ENV).is_ok_and(|e| e == v) => STATE_ENV.to_string(),
            Some(_) => "--state".to_string(),
            None if file.state.is_some() => file.key_name("state"),
            None => "the default ledger".to_string(),
        }
    }

    /// The location as messages may show it: a PostgreSQL URL without its password.
    pub(crate) fn shown(&self, file: &FileConfig) -> String {
        let loc = self.location(file);
        if archiver::Ledger::can_be_shared(&loc) {
            archiver::redact_url(&loc)
        } else {
            loc
        }
    }

    /// Refuses a ledger that does not know the custody index the store already holds under
    /// `index_prefix` (a lost ledger, or a ledger started somewhere else): archiving with it
    /// would look at every recording again. `ledger` is `None` for a file not created yet.
    /// `create` (`--create-ledger`) allows it; listing errors are errors.
    pub(crate) async fn check_knows_index(
        &self,
        file: &FileConfig,
        create: bool,
        sink: &dyn sink::ObjectSink,
        index_prefix: Option<&str>,
        ledger: Option<&archiver::Ledger>,
    ) -> Result<(), ConfigError> {
        let Some(prefix) = index_prefix.filter(|_| !create) else {
            return Ok(());
        };
        let part = archiver::stored_part(sink, prefix).await.map_err(|e| {
            config_err(format!("cannot list the custody index under {prefix}: {e}"))
        })?;
        let Some(part) = part else { return Ok(()) };
        if let Some(l) = ledger {
            let parts = l
                .index_parts()
                .await
                .map_err(|e| config_err(format!("{}: {e}", self.origin(file))))?;
            if !parts.is_empty() {
                return Ok(());
            }
        }
        Err(config_err(format!(
            "{} {}: {}, but the store already holds a custody index ({part}) that it does not know; run `genesys-archiver ledger rebuild` to restore the ledger from the store, or pass --create-ledger to start an empty one anyway (every recording is then looked at again)",
            self.origin(file),
            self.shown(file),
            if ledger.is_some() {
                "an empty ledger"
            } else {
                "a new ledger"
            }
        )))
    }

    /// A SQLite ledger file that does not exist yet (a PostgreSQL ledger lives in a database
    /// that its administrator made; its tables are created on first use).
    pub(crate) fn is_new_file(&self, file: &FileConfig) -> bool {
        let loc = self.location(file);
        !archiver::Ledger::can_be_shared(&loc) && !std::path::Path::new(&loc).exists()
    }

    /// Why a run may not start a new ledger here, when it may not: a location that was named
    /// (flag, environment or file) must exist unless `create` (`--create-ledger`) is given,
    /// so a mistyped path never starts an empty ledger.
    pub(crate) fn refuse_new(&self, file: &FileConfig, create: bool) -> Result<(), ConfigError> {
        if create || !self.is_new_file(file) || self.named(file).is_none() {
            return Ok(());
        }
        Err(config_err(format!(
            "{} {}: does not exist; pass --create-ledger to start a new ledger there (the first run), or correct the path",
            self.origin(file),
            self.shown(file)
        )))
    }

    /// Opens the ledger for archiving (takes the SQLite process lock; creates a missing
    /// file: call [`Self::refuse_new`] first).
    pub(crate) async fn open(&self, file: &FileConfig) -> Result<archiver::Ledger, ConfigError> {
        let loc = self.location(file);
        archiver::Ledger::open(&loc)
            .await
            .map_err(|e| config_err(format!("{}: {e}", self.origin(file))))
    }

    /// Opens the ledger for archiving, refused as [`Self::check_knows_index`] says: a new file
    /// before it is created (a refusal leaves nothing behind), an existing ledger once open.
    pub(crate) async fn open_knowing_index(
        &self,
        file: &FileConfig,
        create: bool,
        sink: &dyn sink::ObjectSink,
        index_prefix: Option<&str>,
    ) -> Result<archiver::Ledger, ConfigError> {
        let new_file = self.is_new_file(file);
        if new_file {
            self.check_knows_index(file, create, sink, index_prefix, None)
                .await?;
        }
        let ledger = self.open(file).await?;
        if !new_file {
            self.check_knows_index(file, create, sink, index_prefix, Some(&ledger))
                .await?;
        }
        Ok(ledger)
    }

    /// Opens an existing ledger to change it (takes the SQLite process lock; never creates
    /// one).
    pub(crate) async fn open_existing(
        &self,
        file: &FileConfig,
    ) -> Result<archiver::Ledger, ConfigError> {
        if self.is_new_file(file) {
            return Err(config_err(format!(
                "{} {}: no such ledger file",
                self.origin(file),
                self.shown(file)
            )));
        }
        self.open(file).await
    }

    /// Opens the ledger for reading (no process lock; the file must exist).
    pub(crate) async fn open_shared(
        &self,
        file: &FileConfig,
    ) -> Result<archiver::Ledger, ConfigError> {
        let loc = self.location(file);
        archiver::Ledger::open_shared(&loc)
            .await
            .map_err(|e| config_err(format!("{}: {e}", self.origin(file))))
    }
}

/// The environment variable that names the ledger.
const STATE_ENV: &str = "GENESYS_ARCHIVER_STATE";
