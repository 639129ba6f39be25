//! A custom key layout: by media type and date parts. Templates are validated up front.
//!
//! `cargo run -p examples --example custom_key_layout`

use archiver::KeyTemplate;
use genesys_media::{DiscoveredRecording, MediaAvailability};

fn main() {
    let t = KeyTemplate::parse(
        "archive/{media_type}/{year}/{month}/{day}/{conversation_id}-{recording_id}.{ext}",
    )
    .expect("valid template");
    let rec = DiscoveredRecording {
        file: None,
        conversation_id: "6f2c1a9e-0000-4000-8000-000000000001".into(),
        recording_id: "0b7d44e1-0000-4000-8000-000000000002".into(),
        start_time: Some("2026-11-01T09:30:00Z".parse().expect("time")),
        end_time: None,
        media_type: "audio".into(),
        content_type: Some("audio/ogg".into()),
        expected_md5: None,
        expected_size: None,
        media: MediaAvailability::Unavailable("example".into()),
        facts: Default::default(),
    };
    println!("{}", t.render(&rec, None).expect("renders"));
    println!(
        "{}",
        KeyTemplate::parse("{conversation_id}.{ext}").expect_err("must contain recording_id")
    );
}
