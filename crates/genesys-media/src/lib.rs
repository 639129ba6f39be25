//! A Genesys Cloud Platform API client for the recording part of the API, reusable by any
//! Rust service.
//!
//! - [`Environment`]: the 17 regions by name or host, or a base URL; the login URL is derived
//!   as the official SDKs do.
//! - [`GenesysClient`]: OAuth client credentials with a single-flight token cache and one
//!   re-authentication on 401; pacing below the per-token budget (300 requests per minute)
//!   using the `inin-ratelimit-*` headers; `Retry-After` on 429; jittered exponential backoff
//!   with a bounded total time on 5xx and transport errors; counters of every call.
//! - [`GenesysClient::discover`]: a `Stream` of the recordings of an interval, from the
//!   analytics details query (split at 7 days and near the 10,000 result cap, de-duplicated)
//!   and batch download requests (100 conversations per job), or per recording with a
//!   `formatId`, or from the compat listing.
//! - [`MediaUrl`] never shows its signature; [`MediaPolicy`] refuses internal hosts.
//!
//! ```no_run
//! use futures::StreamExt;
//! use genesys_media::{ClientConfig, DiscoveryQuery, Environment, GenesysClient, MediaAvailability};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let env = Environment::from_region("eu_central_1")?;
//! let client = GenesysClient::new(ClientConfig::new(env, "client-id", "client-secret"))?;
//! let start = "2026-11-01T00:00:00Z".parse()?;
//! let end = "2026-11-02T00:00:00Z".parse()?;
//! let mut recordings = Box::pin(client.discover(DiscoveryQuery::interval(start, end)));
//! while let Some(rec) = recordings.next().await {
//!     let rec = rec?;
//!     if let MediaAvailability::Url(url) = &rec.media {
//!         let media = client.open_media(url).await?;
//!         println!("{} {} bytes", rec.recording_id, media.content_length.unwrap_or(0));
//!     }
//! }
//! println!("API calls: {}", client.metrics().snapshot().total_calls());
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod auth;
mod client;
mod discovery;
mod error;
mod media;
pub mod models;
mod pacer;
mod region;
mod retry;
mod transport;

pub use auth::{AccessToken, TokenProvider};
pub use client::{AnalyticsMode, ClientConfig, GenesysClient, MediaResponse, SourceMode};
pub use discovery::{
    DiscoveredRecording, DiscoveryQuery, MediaAvailability, media_type_of, path_segment,
    split_interval,
};
pub use error::{Error, ErrorClass, Result};
pub use media::{MediaPolicy, MediaUrl};
pub use region::{Environment, REGIONS, RegionError};
pub use retry::{RetryPolicy, parse_retry_after};
pub use transport::{ApiMetrics, ApiMetricsSnapshot};
