//! `quarantine list` and `quarantine retry`.

use std::collections::HashSet;
use std::process::ExitCode;

use archiver::RecordStatus;
use clap::Subcommand;

use crate::settings::{FileConfig, StateArgs};
use crate::{ConfigError, RunArgs, conclude, config_err, exit_for, log_events, output, wire};

#[derive(Subcommand, Debug)]
pub(crate) enum QuarantineCommand {
    /// List quarantined recordings with their reasons.
    List {
        #[command(flatten)]
        state: StateArgs,
    },
    /// Release quarantined recordings (all, or the given ids) and archive them again now.
    Retry {
        /// Recording ids; none means every quarantined recording.
        ids: Vec<String>,
        #[command(flatten)]
        run: Box<RunArgs>,
    },
}

pub(crate) async fn run_quarantine(
    q: QuarantineCommand,
    file: &FileConfig,
) -> Result<ExitCode, ConfigError> {
    match q {
        QuarantineCommand::List { state } => {
            let ledger = state.open_shared(file).await?;
            let rows = ledger
                .entries(Some(RecordStatus::Quarantined))
                .await
                .map_err(|e| config_err(e.to_string()))?;
            for r in &rows {
                println!(
                    "{}\t{}\t{}\t{}",
                    r.recording_id,
                    r.conversation_id,
                    r.updated_at,
                    r.last_error.as_deref().unwrap_or_default()
                );
            }
            eprintln!("{} recording(s) in quarantine", rows.len());
            Ok(ExitCode::SUCCESS)
        }
        QuarantineCommand::Retry { ids, run } => {
            let out = output::Output::new(&run.output, "quarantine retry")?;
            let w = wire(&run, file).await?;
            let ledger = w.cfg.ledger.clone().expect("wire opens the ledger");
            let released = ledger
                .release_quarantined(&ids)
                .await
                .map_err(|e| config_err(e.to_string()))?;
            let known: HashSet<&str> = released.iter().map(|r| r.recording_id.as_str()).collect();
            if let Some(missing) = ids.iter().find(|i| !known.contains(i.as_str())) {
                eprintln!("warning: {missing} is not in quarantine");
            }
            println!("released {} recording(s) from quarantine", released.len());
            let shutdown = w.cfg.shutdown.clone();
            let store = w.sink.to_string();
            let events = out.handler(log_events(), None);
            let summary =
                archiver::archive_entries(w.client.clone(), w.sink, released, w.cfg, events).await;
            let code = exit_for(&summary, shutdown.is_cancelled());
            Ok(conclude(&out, &summary, &w.client, &store, Some(&ledger), code).await)
        }
    }
}
