//! Property tests over hostile input: API JSON, media URLs and ids from a source we do not
//! control must never panic, leak a signature, or pass an unsafe value through.

use genesys_media::models::{
    BatchDownloadJobStatusResult, CompatListing, ConversationQueryResponse, Recording,
};
use genesys_media::{MediaPolicy, MediaUrl, path_segment};
use proptest::prelude::*;

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        ".{0,40}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        let keys = prop_oneof![
            Just("conversations".to_string()),
            Just("conversationId".to_string()),
            Just("participants".to_string()),
            Just("sessions".to_string()),
            Just("results".to_string()),
            Just("resultUrl".to_string()),
            Just("mediaUris".to_string()),
            Just("entities".to_string()),
            Just("id".to_string()),
            Just("md5".to_string()),
            ".{0,10}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(keys, inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn models_never_panic_on_arbitrary_json(v in json_value(), raw in ".{0,200}") {
        let text = v.to_string();
        for t in [text.as_str(), raw.as_str()] {
            let _ = serde_json::from_str::<ConversationQueryResponse>(t);
            let _ = serde_json::from_str::<BatchDownloadJobStatusResult>(t);
            let _ = serde_json::from_str::<Recording>(t);
            let _ = serde_json::from_str::<CompatListing>(t);
        }
    }

    #[test]
    fn media_urls_never_show_their_query(host in "[a-z0-9.-]{1,20}", path in "(/[a-zA-Z0-9._-]{0,8}){0,4}", sig in "[A-Za-z0-9]{8,40}") {
        let raw = format!("https://{host}{path}?X-Signature={sig}&X-Expires=1");
        if let Ok(u) = MediaUrl::parse(&raw) {
            prop_assert!(!u.to_string().contains(&sig));
            let dbg = format!("{:?}", u);
            prop_assert!(!dbg.contains(&sig));
            let _ = MediaPolicy::default().check(&u);
        }
    }

    #[test]
    fn url_parsing_and_policy_never_panic(raw in ".{0,120}") {
        if let Ok(u) = MediaUrl::parse(&raw) {
            let _ = MediaPolicy::default().check(&u);
            let _ = MediaPolicy { allow_loopback: true, ..MediaPolicy::default() }.check(&u);
        }
    }

    #[test]
    fn accepted_ids_are_plain_segments(id in ".{0,40}") {
        if let Ok(s) = path_segment(&id) {
            prop_assert!(!s.contains('/') && !s.contains('\\') && s != "." && s != "..");
            prop_assert!(s.chars().all(|c| !c.is_control() && c != '?' && c != '#' && c != '%'));
        }
    }
}
