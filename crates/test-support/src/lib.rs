//! Helpers shared by the workspace's test suites; not published.
//!
//! The simulator cannot build a [`GenesysClient`] itself (genesys-media's own tests depend on
//! the simulator), so the few lines every suite needs to point a client at it live here.

use genesys_media::{ClientConfig, Environment, GenesysClient, MediaPolicy};
use genesys_sim::SimHandle;

/// A client for the simulator `sim`: its base URL and client credentials, media URLs on
/// loopback allowed (the simulator serves them from 127.0.0.1), everything else at the
/// defaults until `tweak` changes it (poll intervals, retry delays, ...).
///
/// # Panics
/// If the client cannot be built; this is a test helper.
pub fn sim_client(sim: &SimHandle, tweak: impl FnOnce(&mut ClientConfig)) -> GenesysClient {
    let env = Environment::from_base_url(sim.base_url()).expect("simulator base URL");
    let mut cfg = ClientConfig::new(
        env,
        sim.config().client_id.clone(),
        sim.config().client_secret.clone(),
    );
    cfg.media_policy = MediaPolicy {
        allow_loopback: true,
        ..MediaPolicy::default()
    };
    tweak(&mut cfg);
    GenesysClient::new(cfg).expect("client for the simulator")
}
