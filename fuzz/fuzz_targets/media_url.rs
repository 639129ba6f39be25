//! Media URLs and ids from the source: parsing and the host policy never panic, a parsed URL
//! never prints its query (the presigned signature), accepted ids are plain path segments.
#![no_main]
use genesys_media::{MediaPolicy, MediaUrl, path_segment};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(u) = MediaUrl::parse(s) {
        let shown = format!("{u} {u:?}");
        if let Some((before, query)) = s.split_once('?') {
            let query = query.split('#').next().unwrap_or_default();
            // The query may only appear where it is also part of the scheme, host or path
            // (compared case-insensitively: hosts are lowercased by parsing).
            let elsewhere = before.to_lowercase().contains(&query.to_lowercase());
            if query.len() >= 8 && !elsewhere {
                assert!(!shown.contains(query), "query shown: {shown}");
            }
        }
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
