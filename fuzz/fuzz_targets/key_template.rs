//! Key templates and the ids rendered into them: parsing never panics, and every rendered key
//! is a valid object key (no `..` segments, no control characters, bounded length).
#![no_main]
use archiver::KeyTemplate;
use genesys_media::{DiscoveredRecording, MediaAvailability};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let mut parts = s.splitn(5, '\u{1}');
    let template = parts.next().unwrap_or_default();
    let cid = parts.next().unwrap_or("c");
    let rid = parts.next().unwrap_or("r");
    let media = parts.next().unwrap_or("audio");
    let ct = parts.next();
    let rec = DiscoveredRecording {
        file: None,
        conversation_id: cid.into(),
        recording_id: rid.into(),
        start_time: None,
        end_time: None,
        media_type: media.into(),
        content_type: None,
        expected_md5: None,
        expected_size: None,
        media: MediaAvailability::Unavailable(String::new()),
    };
    for t in [KeyTemplate::parse(template).ok(), Some(KeyTemplate::default())]
        .into_iter()
        .flatten()
    {
        if let Ok(key) = t.render(&rec, ct) {
            assert!(sink::validate_key(&key).is_ok(), "{template:?} rendered {key:?}");
        }
    }
});
