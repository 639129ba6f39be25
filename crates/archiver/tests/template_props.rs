//! Property tests: key templates and rendered keys are always safe, whatever the input.

use archiver::KeyTemplate;
use genesys_media::{DiscoveredRecording, MediaAvailability};
use proptest::prelude::*;

fn rec(cid: String, rid: String, media: String) -> DiscoveredRecording {
    DiscoveredRecording {
        file: None,
        conversation_id: cid,
        recording_id: rid,
        start_time: None,
        end_time: None,
        media_type: media,
        content_type: None,
        expected_md5: None,
        expected_size: None,
        media: MediaAvailability::Unavailable(String::new()),
        facts: Default::default(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn parsing_never_panics_and_rendered_keys_are_valid(
        template in "([a-z/._-]|\\{(date|year|month|day|conversation_id|recording_id|media_type|ext|x)\\}|[{}]){0,12}",
        cid in ".{0,20}", rid in ".{0,20}", media in ".{0,8}", ct in ".{0,20}",
    ) {
        if let Ok(t) = KeyTemplate::parse(&template)
            && let Ok(key) = t.render(&rec(cid, rid, media), Some(&ct))
        {
            prop_assert!(sink::validate_key(&key).is_ok(), "{template} rendered {key:?}");
        }
    }

    #[test]
    fn hostile_ids_never_escape_the_prefix(cid in ".{0,30}", rid in ".{0,30}") {
        let t = KeyTemplate::default();
        if let Ok(key) = t.render(&rec(cid, rid, "audio".into()), None) {
            prop_assert!(key.starts_with("recordings/"));
            prop_assert!(!key.split('/').any(|s| s == ".." || s == "."));
            prop_assert_eq!(key.split('/').count(), 4);
        }
    }
}
