//! Helpers shared by the workspace's test suites; not published: a client wired to the
//! simulator, recordings as discovery would describe them, and a store with hooks
//! ([`HookedSink`]).
//!
//! The simulator cannot build a [`GenesysClient`] itself (genesys-media's own tests depend on
//! the simulator), so the few lines every suite needs to point a client at it live here.

mod hooked;

pub use hooked::{Hook, HookedSink};

use genesys_media::{
    ClientConfig, DiscoveredRecording, Environment, GenesysClient, MediaAvailability, MediaPolicy,
};
use genesys_sim::SimHandle;

/// The whole object under `key`, read back from `sink` into memory.
///
/// # Panics
/// If it cannot be read; this is a test helper.
pub async fn object_bytes(sink: &dyn sink::ObjectSink, key: &str) -> Vec<u8> {
    use http_body_util::BodyExt;
    let body = sink.get(key).await.expect("object to read back");
    body.collect()
        .await
        .expect("object body")
        .to_bytes()
        .to_vec()
}

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

/// Recording `index` of the simulator's dataset as discovery describes it (ids, the
/// conversation's start time, the native content type; no media URL), for working out the key
/// the archiver stores it under.
pub fn sim_recording(sim: &SimHandle, index: usize) -> DiscoveredRecording {
    let ds = sim.dataset();
    let r = &ds.recordings[index];
    DiscoveredRecording {
        file: None,
        conversation_id: r.conversation_id.clone(),
        recording_id: r.id.clone(),
        start_time: Some(
            ds.conversation(&r.conversation_id)
                .expect("the recording's conversation")
                .start,
        ),
        end_time: None,
        media_type: String::new(),
        content_type: Some(r.native_content_type().into()),
        expected_md5: None,
        expected_size: None,
        media: MediaAvailability::Unavailable(String::new()),
        facts: Default::default(),
    }
}

/// A recording with the given ids and nothing else known (no times, no media: unavailable
/// with reason "test"), for ledger tests that only need ids.
pub fn bare_recording(conversation_id: &str, recording_id: &str) -> DiscoveredRecording {
    DiscoveredRecording {
        file: None,
        conversation_id: conversation_id.into(),
        recording_id: recording_id.into(),
        start_time: None,
        end_time: None,
        media_type: "audio".into(),
        content_type: None,
        expected_md5: None,
        expected_size: None,
        media: MediaAvailability::Unavailable("test".into()),
        facts: Default::default(),
    }
}

/// Starts the simulator with `cfg` on a free port of 127.0.0.1 (whatever `cfg.listen` says).
///
/// # Panics
/// If it cannot listen; this is a test helper.
pub async fn start_sim(cfg: genesys_sim::SimConfig) -> SimHandle {
    genesys_sim::Simulator::start(genesys_sim::SimConfig {
        listen: ([127, 0, 0, 1], 0).into(),
        ..cfg
    })
    .await
    .expect("the simulator starts")
}
