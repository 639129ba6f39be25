//! What a run tells its operator: events logged as they happen, the summary printed at the
//! end, and the exit code it earns.

use std::process::ExitCode;
use std::sync::Arc;

use archiver::{Event, Summary};
use genesys_media::GenesysClient;

use crate::{EXIT_CONFIG, EXIT_INTERRUPTED, output};

/// Logs events: failures and unavailable recordings as warnings, the rest at debug.
pub(crate) fn log_events() -> Arc<dyn archiver::EventHandler> {
    Arc::new(|e: &Event| match e {
        Event::IndexWritten {
            seq,
            key,
            sha256,
            entries,
        } => tracing::info!(
            seq,
            key,
            sha256 = sha256.as_deref().unwrap_or("none"),
            entries,
            "index part written"
        ),
        Event::Failed {
            recording_id,
            reason,
            ..
        } => tracing::warn!(recording_id, reason, "recording failed"),
        Event::Quarantined {
            recording_id,
            reason,
        } => tracing::warn!(recording_id, reason, "recording quarantined"),
        Event::Unavailable {
            recording_id,
            reason,
        } => {
            tracing::warn!(recording_id, reason, "recording unavailable at the source")
        }
        Event::Retrying {
            recording_id,
            attempt,
            reason,
            wait,
        } => {
            // Retries are the retry table doing its job: counted in the progress output, logged
            // only at debug (RUST_LOG=genesys_archiver=debug). Failures are warnings.
            tracing::debug!(recording_id, attempt, ?wait, reason, "retrying")
        }
        Event::Archived {
            recording_id,
            key,
            size,
            md5,
            ..
        } => tracing::debug!(recording_id, key, size, md5, "archived"),
        Event::Polled {
            from,
            to,
            found,
            archived,
            failed,
            pending,
            not_discoverable,
            discovery_error,
            checkpoint_advanced,
            known_conversations,
            rechecked,
            late_files,
            sweep,
            api_calls,
        } => {
            let calls: u64 = api_calls.values().sum();
            tracing::info!(%from, %to, found, archived, failed, pending, not_discoverable, known_conversations, rechecked, late_files, sweep, calls, ?api_calls, ?discovery_error, checkpoint_advanced, "poll finished")
        }
        Event::Inventory {
            retained,
            held,
            missing,
            orphans,
            orphans_error,
            api_calls,
        } => tracing::info!(
            retained,
            held,
            missing,
            orphans,
            ?orphans_error,
            api_calls,
            "inventory audit"
        ),
        Event::Release {
            eligible,
            released,
            held,
            at_risk,
            refused,
            unconfirmed,
            api_calls,
            error,
        } => tracing::info!(
            eligible,
            released,
            ?held,
            at_risk,
            refused,
            unconfirmed,
            api_calls,
            ?error,
            "release at the source"
        ),
        Event::NotArchivable {
            conversation_id,
            recording_id,
            reason,
            pending: true,
        } => tracing::debug!(
            conversation_id,
            recording_id,
            reason,
            "not ready at the source yet"
        ),
        Event::NotArchivable {
            conversation_id,
            recording_id,
            reason,
            pending: false,
        } => tracing::warn!(conversation_id, recording_id, reason, "not archivable"),
        // continuous mode logs it as a warning itself
        Event::ClockJump { .. } => {}
        Event::SharedWork {
            listed,
            chunks,
            conversations,
            last_error: Some(error),
            ..
        } if *chunks > 0 => tracing::warn!(
            listed,
            chunks,
            conversations,
            %error,
            "chunks of conversations wait in the ledger after an error; they are tried again with backoff"
        ),
        Event::SharedWork {
            listed,
            chunks,
            conversations,
            archived,
            rechecked,
            late_files,
            ..
        } => tracing::info!(
            listed,
            chunks,
            conversations,
            archived,
            rechecked,
            late_files,
            "shared work: chunks resolved, the rest waits in the ledger"
        ),
        other => tracing::trace!(?other),
    })
}

pub(crate) fn print_summary(summary: &Summary, client: &GenesysClient) {
    let calls = client.metrics().snapshot();
    for f in &summary.failures {
        match f.kind {
            archiver::ReportKind::NotDiscoverable => println!("not discoverable: {}", f.reason),
            archiver::ReportKind::Pending if f.recording_id.is_empty() => {
                println!("pending: conversation {}: {}", f.conversation_id, f.reason)
            }
            kind => {
                let what = match kind {
                    archiver::ReportKind::Unavailable => "unavailable",
                    archiver::ReportKind::Pending => "pending",
                    _ => "failed",
                };
                let recording = if f.recording_id.is_empty() {
                    String::new()
                } else {
                    format!(" recording {}", f.recording_id)
                };
                println!(
                    "{what}: conversation {}{recording}: {}",
                    f.conversation_id, f.reason
                );
            }
        }
    }
    if let Some(e) = &summary.discovery_error {
        println!("discovery stopped: {e}");
    }
    println!(
        "{}; {} API calls, {} throttled, {:.1} s held for the rate budget",
        summary.line(),
        calls.total_calls(),
        calls.throttled(),
        calls.waited_seconds()
    );
}

pub(crate) fn exit_for(summary: &Summary, cancelled: bool) -> u8 {
    if summary.discovery_error_is_config {
        EXIT_CONFIG
    } else if cancelled {
        EXIT_INTERRUPTED
    } else if summary.success() {
        0
    } else {
        1
    }
}

/// Prints the summary, writes the report and manifest, and returns the exit code.
pub(crate) async fn conclude(
    out: &output::Output,
    summary: &Summary,
    client: &GenesysClient,
    store: &str,
    ledger: Option<&archiver::Ledger>,
    code: u8,
) -> ExitCode {
    out.finish(summary, client, store, ledger, code).await;
    print_summary(summary, client);
    if summary.workers_peak > 0 {
        println!(
            "elapsed {} (up to {} recordings at once)",
            out.elapsed_text(),
            summary.workers_peak
        );
    } else {
        println!("elapsed {}", out.elapsed_text());
    }
    ExitCode::from(code)
}
