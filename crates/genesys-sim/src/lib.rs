//! A Genesys Cloud simulator for tests, demos and benchmarks.
//!
//! It speaks the JSON shapes and status codes of the real Platform API for the calls a
//! recording archiver makes (see `shared/genesys-api.md` in the project):
//!
//! - `POST /oauth/token` (client credentials, Basic auth, `expires_in`, 401 error JSON)
//! - `POST /api/v2/analytics/conversations/details/query` (interval, body paging, `totalHits`)
//! - `GET /api/v2/conversations/{id}/recordingmetadata`
//! - `POST /api/v2/recording/batchrequests` and `GET .../batchrequests/{jobId}`
//! - `GET /api/v2/conversations/{cid}/recordings/{rid}?formatId=` (202 while transcoding)
//! - expiring, signed media URLs (403 once expired or tampered), bodies generated
//!   deterministically from a seed and streamed, never held in memory
//! - `inin-ratelimit-*` headers on every API response and a per-token budget answering 429
//!   with `Retry-After` and the normalized body
//! - the compat listing `GET /api/v2/recordings/recordings` (not part of the public API)
//! - fault injection per recording or by rate ([`Fault`], [`FaultRates`])
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! let sim = genesys_sim::Simulator::start(genesys_sim::SimConfig::default()).await?;
//! println!("simulator at {}", sim.base_url());
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod analytics;
mod config;
mod content;
mod dataset;
mod faults;
mod ratelimit;
mod server;
mod signing;

pub use config::SimConfig;
pub use content::{ContentGen, content_md5};
pub use dataset::{Dataset, SimConversation, SimRecording};
pub use faults::{Fault, FaultParseError, FaultRates, FaultSpec};
pub use server::{SimHandle, SimStats, Simulator};
