//! Tag sanitizing and Retry-After parsing: sanitized tags are always acceptable to S3 and
//! idempotent; Retry-After never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let (k, v) = s.split_once('\u{0}').unwrap_or((s, s));
    let (k2, v2) = (sink::sanitize_tag_key(k), sink::sanitize_tag_value(v));
    assert!(k2.chars().count() <= 128 && v2.chars().count() <= 256);
    assert_eq!(sink::sanitize_tag_key(&k2), k2);
    assert_eq!(sink::sanitize_tag_value(&v2), v2);
    if let Ok(h) = http::HeaderValue::from_str(s) {
        let _ = genesys_media::parse_retry_after(Some(&h));
    }
});
