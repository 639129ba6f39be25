//! From the settings to a ready run: the store, the source, the ledger (refused when new
//! beside an existing index, unless asked) and the archiver's configuration, checked before
//! any download.

use std::sync::Arc;
use std::time::Duration;

use archiver::ArchiverConfig;
use genesys_media::GenesysClient;
use sink::ObjectSink;

use crate::settings::{self, FileConfig, StoreArgs, parse_duration};
use crate::{ConfigError, RunArgs, cancel_on_signals, commands, config_err};

/// Everything an archiving command needs, built and checked from the settings.
pub(crate) struct Wired {
    pub(crate) client: GenesysClient,
    pub(crate) sink: Arc<dyn ObjectSink>,
    pub(crate) cfg: ArchiverConfig,
    pub(crate) media_types: Vec<String>,
    /// Prefix of the chain-of-custody index, unless --no-index.
    pub(crate) index_prefix: Option<String>,
    /// Signs the index parts.
    pub(crate) index_signer: Option<Arc<archiver::IndexSigner>>,
    /// Where the digests of written parts are kept, outside the bucket.
    pub(crate) index_anchor: Option<archiver::IndexAnchor>,
    /// Whether the store writes with Object Lock.
    pub(crate) object_lock: bool,
}

/// Builds and checks everything an archiving command needs, in the order that refuses bad
/// settings before any network and a wrong ledger before any download.
//
// Long on purpose: the steps must run in this order (offline checks, the source, the store,
// the ledger and its check against the store's index, the startup sweep), and each is a few
// lines of wiring.
pub(crate) async fn wire(run: &RunArgs, file: &FileConfig) -> Result<Wired, ConfigError> {
    let workers = match (run.workers.or(file.workers), run.max_workers) {
        (Some(n), _) if n == 0 || n > 256 => {
            return Err(config_err(format!(
                "--workers must be between 1 and 256, not {n}"
            )));
        }
        (Some(_), Some(_)) => {
            return Err(config_err(
                "--max-workers bounds the adapting worker count; the file's workers fixes it: give one of them"
                    .to_string(),
            ));
        }
        (Some(n), None) => archiver::Workers::Fixed(n),
        (None, Some(m)) if m == 0 || m > 256 => {
            return Err(config_err(format!(
                "--max-workers must be between 1 and 256, not {m}"
            )));
        }
        (None, max) => max.map_or(
            archiver::Workers::DEFAULT,
            archiver::Workers::adaptive_up_to,
        ),
    };
    let drain = match &run.drain_timeout {
        Some(v) => parse_duration("--drain-timeout", v)?,
        None => match &file.daemon.drain_timeout {
            Some(v) => parse_duration("daemon.drain_timeout", v)?,
            None => Duration::from_secs(30),
        },
    };
    let late_window = match (&run.late_window, &file.daemon.late_window) {
        (Some(v), _) => parse_duration("--late-window", v)?,
        (None, Some(v)) => parse_duration("daemon.late_window", v)?,
        (None, None) => archiver::DEFAULT_LATE_WINDOW,
    };
    let source = run.source.resolve(file)?;
    let store = run.store_args().resolve(file)?;
    // What can be checked here first, before any network.
    settings::check_writable(&store)?;
    run.state.refuse_new(file, run.create_ledger)?;
    let prefix = StoreArgs::prefix(&store);
    let index_prefix = run.index.resolve(&prefix)?;
    let index_signer = match (&run.index.index_signing_key, &file.index.signing_key) {
        (Some(p), _) => Some(commands::index::load_signer(p, "--index-signing-key")?),
        (None, Some(p)) => Some(commands::index::load_signer(
            std::path::Path::new(p),
            "index.signing_key",
        )?),
        (None, None) => None,
    }
    .filter(|_| index_prefix.is_some())
    .map(Arc::new);
    let client = settings::connect_source(&source).await?;
    let sink = settings::connect_store(&store).await?;
    // Whether the store refuses create-only PUTs itself (then one round trip per new object).
    if let Err(e) = sink.prepare_writes().await {
        tracing::warn!(error = %e, "could not probe the store for conditional writes; looking (HEAD) before each write");
    }
    let index_anchor = match (&run.index.index_anchor, &file.index.anchor) {
        _ if index_prefix.is_none() => None,
        (Some(v), _) => Some(commands::index::anchor_from(v, "--index-anchor", &store).await?),
        (None, Some(v)) => Some(commands::index::anchor_from(v, "index.anchor", &store).await?),
        (None, None) => None,
    };
    let ledger = run
        .state
        .open_knowing_index(
            file,
            run.create_ledger,
            sink.as_ref(),
            index_prefix.as_deref(),
        )
        .await?;
    // Aborts only the multipart uploads the ledger recorded for writers that are gone.
    match archiver::sweep_uploads(sink.as_ref(), &ledger, &prefix).await {
        Ok(s) => {
            if !s.aborted.is_empty() || s.temp_files_removed > 0 {
                tracing::info!(
                    aborted = s.aborted.len(),
                    temp_files = s.temp_files_removed,
                    "aborted uploads left by an earlier run"
                );
            }
            if !s.failed.is_empty() {
                tracing::warn!(
                    n = s.failed.len(),
                    "could not abort uploads left by an earlier run; the next start tries again"
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "startup sweep of unfinished uploads failed"),
    }
    let cfg = ArchiverConfig {
        ledger: Some(ledger),
        workers,
        key_template: store.key_template.clone(),
        verify_source_etag: source.verify_source_etag,
        drain_timeout: drain,
        keep_phone_numbers: run.keep_phone_numbers,
        digests_up_front: run.digests_up_front,
        late_window,
        // SHA-256 serves the chain-of-custody index; without it, MD5 alone.
        sha256: index_prefix.is_some(),
        ..ArchiverConfig::default()
    };
    cancel_on_signals(cfg.shutdown.clone());
    let object_lock = store.writes_with_object_lock();
    Ok(Wired {
        client,
        sink,
        cfg,
        media_types: source.media_types,
        index_anchor,
        index_prefix,
        index_signer,
        object_lock,
    })
}
