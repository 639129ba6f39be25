#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod analytics;
mod auth;
mod carry;
mod client;
mod clock;
mod discovery;
mod error;
mod facts;
mod inventory;
mod known;
mod listing;
mod media;
pub mod models;
mod orphan;
mod pacer;
mod ready;
mod ready_estimate;
mod region;
mod release;
mod resolve;
mod retry;
mod transport;

pub use auth::{AccessToken, TokenProvider};
pub use client::{AnalyticsMode, ClientConfig, GenesysClient, MediaResponse, SourceMode};
pub use discovery::{
    BATCH_MAX, DEFAULT_EARLIER_STARTS, Discovered, DiscoveredRecording, DiscoveryQuery,
    MediaAvailability, PendingItem, UndiscoverableSpan, media_type_of, path_segment,
    split_interval,
};
pub use error::{Error, ErrorClass, Result};
pub use facts::ConversationFacts;
pub use inventory::{OrphanRecording, RETENTION_PAGE_SIZE, RetainedRecording, VIEW_SENSITIVE_DATA};
pub use known::{KnownConversations, ResolvedConversation};
pub use listing::Listed;
pub use media::{MediaPolicy, MediaUrl};
pub use orphan::ORPHAN_CONVERSATION;
pub use region::{Environment, REGIONS, RegionError};
pub use release::{PROTECTION_QUERY_MAX, RetentionSet, api_date};
pub use resolve::format_content_type;
pub use retry::{RETRY_AFTER_CEILING, RetryPolicy, Wait, parse_retry_after};
pub use transport::{ApiMetrics, ApiMetricsSnapshot};
