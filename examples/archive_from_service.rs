//! Using the crates from another Rust service: discover one day of recordings and archive them
//! into a directory, reacting to events. The simulator stands in for a real org; for a real one
//! use `Environment::from_region("eu_central_1")` and real credentials.
//!
//! `cargo run -p examples --example archive_from_service`

use std::sync::Arc;

use archiver::{ArchiverConfig, Event, archive};
use genesys_media::{ClientConfig, DiscoveryQuery, Environment, GenesysClient, MediaPolicy};
use genesys_sim::{SimConfig, Simulator};
use sink::LocalDirSink;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sim = Simulator::start(SimConfig {
        recordings: 40,
        ..SimConfig::default()
    })
    .await?;
    let env = Environment::from_base_url(sim.base_url())?;
    let mut cfg = ClientConfig::new(env, "sim-client", "sim-secret");
    cfg.media_policy = MediaPolicy {
        allow_loopback: true,
        ..MediaPolicy::default()
    };
    let client = GenesysClient::new(cfg)?;

    let dir = tempfile::tempdir()?;
    let sink = Arc::new(LocalDirSink::new(dir.path()));
    let on_event = Arc::new(|e: &Event| {
        if let Event::Archived { key, size, md5, .. } = e {
            println!("{key} {size} bytes md5 {md5}");
        }
    });
    let query = DiscoveryQuery::interval(sim.config().start, sim.config().end());
    let summary = archive(
        client.clone(),
        sink,
        client.discover(query),
        ArchiverConfig::default(),
        on_event,
    )
    .await;
    println!("{}", summary.line());
    println!("API calls: {}", client.metrics().snapshot().total_calls());
    // A service decides by the reconciliation: everything listed is archived or accounted for.
    if !summary.success() {
        return Err(format!("not everything was archived: {:?}", summary.reconcile()).into());
    }
    Ok(())
}
