//! `verify --inventory`: every recording the org retains (the retention query, independent
//! of analytics) checked against the ledger, every orphan reported; `--archive-missing`
//! archives what is missing.

use std::process::ExitCode;
use std::sync::Arc;

use archiver::{ArchiverConfig, InventoryReport, Ledger};
use sink::ObjectSink;

use crate::settings::StoreSettings;
use crate::{ConfigError, config_err};

/// Prints the audit, one line per gap and a closing count line.
pub(crate) fn print_report(r: &InventoryReport, min_age: std::time::Duration) {
    for m in &r.missing {
        let why = match &m.ledger {
            None => "the ledger does not know it".to_string(),
            Some((status, err)) => format!(
                "the ledger has it as {status}{}",
                err.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
            ),
        };
        println!(
            "missing: recording {} (conversation {}, created {}) is retained at the source and not archived; {why}",
            m.recording.recording_id,
            m.recording.conversation_id,
            m.recording
                .creation_time
                .as_deref()
                .unwrap_or("at an unknown time"),
        );
    }
    for o in &r.orphans {
        println!(
            "orphan: {} ({}, {}, {} bytes, created {}, {}): not attached to a conversation, cannot be archived until re-attached",
            o.id,
            o.provider_type.as_deref().unwrap_or("unknown provider"),
            o.media_type.as_deref().unwrap_or("unknown media"),
            o.media_size_bytes.unwrap_or(0),
            o.created_time.as_deref().unwrap_or("at an unknown time"),
            o.orphan_status.as_deref().unwrap_or("status unknown"),
        );
    }
    if let Some(e) = &r.orphans_error {
        println!(
            "orphans: not listed ({e}); the OAuth client needs recording:orphan:view for this part of the audit"
        );
    }
    let before = if r.before_range > 0 {
        format!(", {} created before --from (not judged)", r.before_range)
    } else {
        String::new()
    };
    println!(
        "inventory: {} retained at the source, {} archived, {} missing, {} too recent to judge (created in the last {}){before}, {} orphan(s); {} API calls",
        r.retained,
        r.held,
        r.missing.len(),
        r.too_recent,
        humantime::format_duration(min_age),
        r.orphans.len(),
        r.api_calls
    );
}

/// What `verify --inventory` was asked to do.
pub(crate) struct InventoryOptions {
    /// Only recordings created at or after this are judged.
    pub(crate) from: Option<chrono::DateTime<chrono::Utc>>,
    /// Recordings younger than this are not judged.
    pub(crate) min_age: std::time::Duration,
    /// Archive what is missing.
    pub(crate) archive_missing: bool,
    /// Archive the orphans' own media.
    pub(crate) archive_orphans: bool,
}

/// Runs the audit (and with `archive_missing`, archives what it found missing); exit 0 only
/// when nothing is missing afterwards and the orphans could be listed.
pub(crate) async fn run_inventory(
    client: genesys_media::GenesysClient,
    sink: Arc<dyn ObjectSink>,
    store: &StoreSettings,
    ledger: Ledger,
    opts: InventoryOptions,
) -> Result<ExitCode, ConfigError> {
    let InventoryOptions {
        from,
        min_age,
        archive_missing,
        archive_orphans,
    } = opts;
    let age = chrono::Duration::from_std(min_age).unwrap_or(chrono::Duration::zero());
    let report = archiver::audit_inventory(&client, &ledger, from, client.now() - age)
        .await
        .map_err(|e| config_err(format!("inventory: {e}")))?;
    print_report(&report, min_age);
    let mut missing = report.missing.len();
    if archive_missing && missing > 0 {
        let cfg = ArchiverConfig {
            ledger: Some(ledger.clone()),
            key_template: store.key_template.clone(),
            ..ArchiverConfig::default()
        };
        crate::cancel_on_signals(cfg.shutdown.clone());
        let summary = archiver::archive_missing(
            client.clone(),
            sink.clone(),
            &report.missing,
            cfg,
            crate::log_events(),
        )
        .await;
        println!("archive-missing: {}", summary.line());
        missing = archiver::still_missing(&ledger, &report.missing)
            .await
            .map_err(|e| config_err(e.to_string()))? as usize;
        println!("archive-missing: {missing} still missing");
    }
    let mut orphans_failed = false;
    if archive_orphans && !report.orphans.is_empty() {
        let cfg = ArchiverConfig {
            ledger: Some(ledger.clone()),
            key_template: store.key_template.clone(),
            ..ArchiverConfig::default()
        };
        let summary = archiver::archive_orphans(
            client.clone(),
            sink.clone(),
            &report.orphans,
            cfg,
            crate::log_events(),
        )
        .await;
        println!("archive-orphans: {}", summary.line());
        orphans_failed = !summary.success();
    }
    Ok(
        if missing > 0 || report.orphans_error.is_some() || orphans_failed {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        },
    )
}
