//! A Genesys Cloud Platform API client for the recording part of the API, reusable by any
//! Rust service.
//!
//! - [`Environment`]: the 17 regions by name or host, or a base URL; the login URL is derived
//!   as the official SDKs do.
//! - [`GenesysClient`]: OAuth client credentials with a single-flight token cache and one
//!   re-authentication on 401; pacing below the per-token budget (300 requests per minute)
//!   using the `inin-ratelimit-*` headers; `Retry-After` on 429; jittered exponential backoff
//!   with a bounded total time on 5xx and transport errors; counters of every call.
//! - [`GenesysClient::discover`]: a `Stream` of the recordings of an interval: analytics jobs
//!   up to the data lake's availability date and the details query after it (split at 7 days
//!   and near the 10,000 result cap, de-duplicated), then batch download requests (100
//!   conversations per job), or per recording with a `formatId`. Every file of a recording is
//!   an item; so is every conversation or recording not ready yet ([`Discovered::Pending`])
//!   and every part of the interval no API can list ([`Discovered::NotDiscoverable`]).
//! - [`MediaUrl`] never shows its signature; [`MediaPolicy`] refuses internal hosts.
//!
//! ```no_run
//! use futures::StreamExt;
//! use genesys_media::{
//!     ClientConfig, Discovered, DiscoveryQuery, Environment, GenesysClient, MediaAvailability,
//! };
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let env = Environment::from_region("eu_central_1")?;
//! let client = GenesysClient::new(ClientConfig::new(env, "client-id", "client-secret"))?;
//! let start = "2026-11-01T00:00:00Z".parse()?;
//! let end = "2026-11-02T00:00:00Z".parse()?;
//! let mut recordings = Box::pin(client.discover(DiscoveryQuery::interval(start, end)));
//! while let Some(item) = recordings.next().await {
//!     match item? {
//!         Discovered::Recording(rec) => {
//!             if let MediaAvailability::Url(url) = &rec.media {
//!                 let media = client.open_media(url).await?;
//!                 println!("{} {} bytes", rec.recording_id, media.content_length.unwrap_or(0));
//!             }
//!         }
//!         other => println!("not archivable now: {other:?}"),
//!     }
//! }
//! println!("API calls: {}", client.metrics().snapshot().total_calls());
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod analytics;
mod auth;
mod client;
mod discovery;
mod error;
mod known;
mod media;
pub mod models;
mod pacer;
mod region;
mod resolve;
mod retry;
mod transport;

pub use auth::{AccessToken, TokenProvider};
pub use client::{AnalyticsMode, ClientConfig, GenesysClient, MediaResponse, SourceMode};
pub use discovery::{
    Discovered, DiscoveredRecording, DiscoveryQuery, MediaAvailability, PendingItem,
    UndiscoverableSpan, media_type_of, path_segment, split_interval,
};
pub use error::{Error, ErrorClass, Result};
pub use known::{KnownConversations, ResolvedConversation};
pub use media::{MediaPolicy, MediaUrl};
pub use region::{Environment, REGIONS, RegionError};
pub use resolve::format_content_type;
pub use retry::{RETRY_AFTER_CEILING, RetryPolicy, Wait, parse_retry_after};
pub use transport::{ApiMetrics, ApiMetricsSnapshot};
