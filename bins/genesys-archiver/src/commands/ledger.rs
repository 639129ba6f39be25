//! `ledger` inspection and `ledger rebuild` from object metadata.

use std::process::ExitCode;

use archiver::RecordStatus;
use clap::Subcommand;
use futures::StreamExt;

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
            let (mut adopted, mut unchanged, mut foreign) = (0u64, 0u64, 0u64);
            let mut listing = sink.list(&prefix);
            while let Some(item) = listing.next().await {
                let obj = item.map_err(|e| config_err(format!("listing the store: {e}")))?;
                let meta = match sink.head(&obj.key).await {
                    Ok(Some(m)) => m,
                    Ok(None) => continue,
                    Err(e) => {
                        eprintln!("warning: {}: {e}", obj.key);
                        continue;
                    }
                };
                let (Some(rid), Some(cid)) = (
                    meta.metadata.get("recording-id"),
                    meta.metadata.get("conversation-id"),
                ) else {
                    foreign += 1;
                    continue;
                };
                let changed = ledger
                    .adopt(archiver::AdoptedObject {
                        recording_id: rid.clone(),
                        conversation_id: cid.clone(),
                        key: obj.key.clone(),
                        size: Some(meta.size),
                        md5: meta.metadata.get("md5").cloned(),
                        media_type: meta.metadata.get("media-type").cloned(),
                        start_time: meta.metadata.get("start-time").cloned(),
                        end_time: meta.metadata.get("end-time").cloned(),
                    })
                    .await
                    .map_err(|e| config_err(e.to_string()))?;
                if changed {
                    adopted += 1;
                } else {
                    unchanged += 1;
                }
            }
            println!(
                "ledger {}: {adopted} recording(s) recorded as archived, {unchanged} already known, \
                 {foreign} object(s) without recording metadata ignored",
                ledger.location()
            );
            let index_prefix =
                index_prefix.unwrap_or_else(|| archiver::DEFAULT_INDEX_PREFIX.to_string());
            match archiver::restore_from_index(&ledger, sink.as_ref(), &index_prefix).await {
                Ok((parts, restored)) => println!(
                    "index {index_prefix}: {parts} part(s) taken up, {restored} recording(s) given their MD5 and SHA-256 back from it"
                ),
                Err(e) => {
                    println!(
                        "index {index_prefix}: not read ({e}); rows without digests are checked by size only until it is"
                    );
                    return Ok(ExitCode::from(1));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
