//! Media URLs and ids from the source: parsing and the host policy never panic, a parsed URL
//! never prints its query (the presigned signature), accepted ids are plain path segments.
#![no_main]
use genesys_media::{MediaPolicy, MediaUrl, path_segment};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(u) = MediaUrl::parse(s) {
        // What may be shown: scheme, host, port and path as parsed, then "?<redacted>" for a
        // query; never the query, the userinfo or the fragment. (An earlier oracle looked for
        // the input's query text in the output, which gave false positives whenever the path
        // held the same text, e.g. once parsing had percent-encoded a NUL before it.)
        let full = url::Url::parse(u.expose()).expect("an accepted URL re-parses");
        let mut base = format!(
            "{}://{}",
            full.scheme(),
            full.host_str().unwrap_or_default()
        );
        if let Some(p) = full.port() {
            base.push_str(&format!(":{p}"));
        }
        base.push_str(full.path());
        let expected = match full.query() {
            Some(_) => format!("{base}?<redacted>"),
            None => base.clone(),
        };
        assert_eq!(format!("{u}"), expected);
        assert_eq!(format!("{u:?}"), format!("MediaUrl({expected})"));
        let _ = MediaPolicy::default().check(&u);
        let _ = MediaPolicy {
            allow_loopback: true,
            ..MediaPolicy::default()
        }
        .check(&u);
    }
    if let Ok(seg) = path_segment(s) {
        assert!(!seg.contains('/') && seg != "." && seg != "..");
        assert!(seg.chars().all(|c| !c.is_control()));
    }
});
