#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod analytics;
mod auth;
mod capture;
mod config;
mod content;
mod dataset;
mod faults;
mod handle;
mod lifecycle;
mod media;
mod orphans;
mod ratelimit;
mod recording;
mod release;
mod retention;
mod routes;
mod server;
mod signing;
mod state;

pub use config::SimConfig;
pub use content::{BodyKind, ContentGen, content_md5};
pub use dataset::{Dataset, SimConversation, SimRecording};
pub use faults::{Fault, FaultParseError, FaultRates, FaultSpec};
pub use handle::SimHandle;
pub use server::Simulator;
pub use state::SimStats;
