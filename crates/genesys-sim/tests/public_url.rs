//! Behind a proxy (the real-network benchmark's delay proxy), the simulator reports the base
//! URL clients reach it at and hands out media URLs on that origin.

use genesys_sim::{SimConfig, Simulator};

#[tokio::test]
async fn media_urls_use_the_public_url() {
    let sim = Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings: 3,
        public_url: Some("http://127.0.0.1:9/".into()),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    assert_eq!(sim.base_url(), "http://127.0.0.1:9");
    let urls = sim.media_urls();
    assert_eq!(urls.len(), 3);
    for (_, _, url) in urls {
        assert!(url.starts_with("http://127.0.0.1:9/media/"), "{url}");
    }
}
