//! `ledger` inspection and `ledger rebuild` from object metadata.

use std::process::ExitCode;

use archiver::RecordStatus;
use clap::Subcommand;

use crate::settings::{FileConfig, StateArgs, StoreArgs};
use crate::{ConfigError, config_err, settings};

#[derive(Subcommand, Debug)]
pub(crate) enum LedgerCommand {
    /// List ledger rows (tab-separated: status, recording, conversation, size, md5, key).
    List {
        #[command(flatten)]
        state: StateArgs,
        /// Only rows with this status.
        #[arg(long, value_parser = ["pending", "archived", "failed", "quarantined"])]
        status: Option<String>,
    },
    /// Rebuild the ledger from the objects in the store (after losing the ledger file).
    Rebuild {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        state: StateArgs,
        /// Key prefix of the chain-of-custody index, whose entries give the rebuilt rows
        /// their MD5 and SHA-256 back [default: index/].
        #[arg(long, env = "GENESYS_ARCHIVER_INDEX_PREFIX")]
        index_prefix: Option<String>,
    },
}

pub(crate) async fn run_ledger(
    l: LedgerCommand,
    file: &FileConfig,
) -> Result<ExitCode, ConfigError> {
    match l {
        LedgerCommand::List { state, status } => {
            let ledger = state.open_shared(file).await?;
            let status = status.as_deref().and_then(RecordStatus::parse);
            let rows = ledger
                .entries(status)
                .await
                .map_err(|e| config_err(e.to_string()))?;
            for r in &rows {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    r.status,
                    r.recording_id,
                    r.conversation_id,
                    r.size.map(|s| s.to_string()).unwrap_or_default(),
                    r.md5.as_deref().unwrap_or_default(),
                    r.key
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        LedgerCommand::Rebuild {
            store,
            state,
            index_prefix,
        } => {
            let settings = store.resolve(file)?;
            let sink = settings::connect_store(&settings).await?;
            let ledger = state.open(file).await?;
            let prefix = StoreArgs::prefix(&settings);
            let index_prefix =
                index_prefix.unwrap_or_else(|| archiver::DEFAULT_INDEX_PREFIX.to_string());
            let report = rebuild(&ledger, sink.as_ref(), &prefix, &index_prefix).await?;
            println!(
                "ledger {}: {} recording(s) recorded as archived, {} already known, \
                 {} object(s) without recording metadata ignored",
                ledger.location(),
                report.adopted,
                report.unchanged,
                report.foreign
            );
            match &report.index {
                Ok((parts, restored)) => println!(
                    "index {index_prefix}: {parts} part(s) taken up, {restored} recording(s) matched to it, with their MD5 and SHA-256"
                ),
                Err(e) => {
                    println!(
                        "index {index_prefix}: not read ({e}); rows without digests are checked by size only until it is"
                    );
                    return Ok(ExitCode::from(1));
                }
            }
            if !report.unreadable.is_empty()
                || !report.absent.is_empty()
                || !report.contradicted.is_empty()
            {
                return Ok(ExitCode::from(1));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Rebuilds `ledger` from the store, warning (stderr) about each object it could not read.
pub(crate) async fn rebuild(
    ledger: &archiver::Ledger,
    sink: &dyn sink::ObjectSink,
    prefix: &str,
    index_prefix: &str,
) -> Result<archiver::RebuildReport, ConfigError> {
    let report = archiver::rebuild_ledger(ledger, sink, prefix, index_prefix)
        .await
        .map_err(|e| config_err(e.to_string()))?;
    for (key, e) in &report.unreadable {
        eprintln!("warning: {key}: cannot be read, left out: {e}");
    }
    for (key, why) in &report.contradicted {
        eprintln!("corrupt: key {key}: {why}");
    }
    for a in &report.absent {
        eprintln!(
            "missing: recording {} key {}: listed by index part {}, not in the store",
            a.recording_id, a.key, a.part
        );
    }
    Ok(report)
}

/// Where `verify` and `find` read from.
pub(crate) enum ReadFrom {
    /// The ledger that was given (or the default file, which exists).
    Ledger(archiver::Ledger),
    /// No ledger: one rebuilt in memory from the store's objects and index.
    Store(archiver::Ledger, archiver::RebuildReport),
}

impl ReadFrom {
    /// The ledger to query, whichever it is.
    pub(crate) fn ledger(&self) -> &archiver::Ledger {
        match self {
            ReadFrom::Ledger(l) | ReadFrom::Store(l, _) => l,
        }
    }
}

/// The ledger `verify` and `find` read: the one `--state` (or the file key) names; or, with
/// `from_store`, or when none is named and the default file does not exist, a ledger rebuilt
/// in memory from the store alone (objects' metadata and the index), said on stderr. A named
/// ledger that does not exist is still an error: a mistyped path must not be read as "no
/// ledger".
pub(crate) async fn read_from(
    state: &StateArgs,
    store: &StoreArgs,
    file: &FileConfig,
    from_store: bool,
    index_prefix: &str,
) -> Result<ReadFrom, ConfigError> {
    let default_missing =
        state.named(file).is_none() && !std::path::Path::new(settings::DEFAULT_STATE).exists();
    if !from_store && !default_missing {
        return Ok(ReadFrom::Ledger(state.open_shared(file).await?));
    }
    let settings = store.resolve(file).map_err(|e| {
        if from_store {
            e
        } else {
            config_err(format!(
                "no ledger (--state, or {} here) and no store to read one from: {}",
                settings::DEFAULT_STATE,
                e.0
            ))
        }
    })?;
    let sink = settings::connect_store(&settings).await?;
    let ledger = archiver::Ledger::in_memory().map_err(|e| config_err(e.to_string()))?;
    let prefix = StoreArgs::prefix(&settings);
    let report = rebuild(&ledger, sink.as_ref(), &prefix, index_prefix).await?;
    let index = match &report.index {
        Ok((parts, restored)) => {
            format!("{parts} index part(s) giving {restored} recording(s) their digests and facts")
        }
        Err(e) => format!("the index not read ({e}): digests only where objects carry them"),
    };
    eprintln!(
        "reading from the store, not a ledger: {} archived object(s) under {prefix}, {index}",
        report.adopted
    );
    Ok(ReadFrom::Store(ledger, report))
}
