//! The recording archive pipeline.
//!
//! [`archive`] takes a stream of discovered recordings (from
//! [`genesys_media::GenesysClient::discover`]), runs a bounded pool of workers, and for each
//! recording: builds its key from a [`KeyTemplate`], skips it if the store already has it,
//! streams the media into an [`sink::ObjectSink`] with MD5 computed on the way, and applies
//! one retry table:
//!
//! | failure | action |
//! |---|---|
//! | 403 on the media URL | refresh that recording's URL and retry (bounded) |
//! | 429 | wait `Retry-After` as given (within the retry budget; a longer one fails, named), retry |
//! | 5xx, transport error, body broken mid-stream, store 5xx | jittered exponential backoff, bounded total time |
//! | any other 4xx, refused URL, bad id | fail, no retry |
//! | MD5 or length mismatch | the sink removed the object; retry once, then fail as an integrity failure |
//! | object already under the key | adopted (skipped) only when nothing contradicts it (size, MD5, owner); after a failed attempt, or when a create-only write finds one without proof, written over and verified |
//!
//! Outcomes are reported as typed [`Event`]s through an [`EventHandler`] and counted in a
//! [`Summary`].
#![warn(missing_docs)]

mod adopt;
mod continuous;
mod events;
mod ledger;
mod pipeline;
mod refresh;
mod template;

pub use continuous::{
    ContinuousError, MAX_RETRY_BACKOFF, PollSettings, archive_entries, entry_to_recording,
    retry_backoff, run_continuous,
};
pub use events::{Event, EventHandler, NoEvents};
pub use ledger::{
    AdoptedObject, Claim, Ledger, LedgerEntry, LedgerError, LedgerUploadLog, RecordStatus,
    redact_url, sweep_uploads,
};
pub use pipeline::{
    ArchiverConfig, FailureReport, MAX_REPORTED_FAILURES, Reconciliation, ReportKind, Summary,
    archive, default_instance_id, tags_for,
};
pub use template::{DEFAULT_TEMPLATE, KeyTemplate, PLACEHOLDERS, TemplateError, extension};
pub use tokio_util::sync::CancellationToken;
