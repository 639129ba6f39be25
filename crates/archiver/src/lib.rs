#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod adopt;
mod anchor;
mod attempt;
mod backfill;
mod concurrency;
mod config;
mod continuous;
mod custody;
mod custody_releases;
mod custody_signed;
mod custody_verify;
mod events;
mod facts;
mod inventory;
/// The ledger crate, under the name the modules here have always used.
pub(crate) use ::ledger;
mod pipeline;
mod poll;
mod rebuild;
mod refresh;
mod release;
mod release_proof;
mod release_undo;
mod scale_out;
mod signing;
mod summary;
mod template;
mod work;

pub use anchor::{AnchorError, AnchorRecord, IndexAnchor};
pub use attempt::tags_for;
pub use backfill::{SharedBackfill, archive_shared};
pub use concurrency::Workers;
pub use config::{ArchiverConfig, default_instance_id};
pub use continuous::{archive_entries, entry_to_recording, run_continuous};
pub use custody::{
    DEFAULT_INDEX_PREFIX, IndexEntry, IndexError, MAX_PART_ENTRIES, PartHeader, read_digests,
    restore_from_index, stored_part, write_index,
};
pub use custody_releases::ReleaseLine;
pub use custody_verify::{ChainReport, verify_chain};
pub use events::{Event, EventHandler, NoEvents};
pub use inventory::{
    InventoryError, InventoryReport, MissingRecording, archive_missing, archive_orphans,
    audit_inventory, still_missing,
};
pub use ledger::{
    AdoptedObject, Chunk, ChunkBacklog, Claim, DEFAULT_LATE_WINDOW, FindQuery, IndexPart,
    IndexedObject, LateStats, LateWindow, Ledger, LedgerEntry, LedgerError, LedgerUploadLog,
    RecordStatus, ReleaseCandidate, ReleaseRecord, ReleaseState, Settlement, StoredObject,
    redact_url, sweep_uploads,
};
pub use pipeline::archive;
pub use poll::{ContinuousError, MAX_RETRY_BACKOFF, PollSettings, ScaleOut, retry_backoff};
pub use rebuild::{AbsentObject, RebuildError, RebuildReport, rebuild_ledger};
pub use release::{MIN_GRACE, Progress, ReleaseError, ReleasePolicy, ReleaseReport, release};
pub use release_proof::Hold;
pub use release_undo::{UndoReport, undo_releases};
pub use signing::{IndexSigner, IndexVerifier, PartClaim, SignedClaim, SigningError};
pub use summary::{
    FailureReport, MAX_REPORTED_FAILURES, Reconciliation, ReportKind, Summary, human_bytes,
};
pub use template::{DEFAULT_TEMPLATE, KeyTemplate, PLACEHOLDERS, TemplateError, extension};
pub use tokio_util::sync::CancellationToken;
