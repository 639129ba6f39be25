//! Object key validation.

/// Checks that a key is safe for every sink: not empty, at most 1024 bytes, relative, no empty,
/// `.` or `..` segments, no backslashes or control characters.
pub fn validate_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > 1024 {
        return Err("a key must be 1 to 1024 bytes".into());
    }
    if key.starts_with('/') {
        return Err("a key must not start with '/'".into());
    }
    if key.chars().any(|c| c.is_control() || c == '\\') {
        return Err("a key must not contain control characters or backslashes".into());
    }
    if key
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err("a key must not contain empty, '.' or '..' segments".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::validate_key;

    #[test]
    fn keys() {
        assert!(validate_key("recordings/2026-11-01/c/r.ogg").is_ok());
        for bad in [
            "", "/abs", "a//b", "a/../b", "./a", "a/", "a\\b", "a\nb", "a/\u{7}",
        ] {
            assert!(validate_key(bad).is_err(), "{bad:?}");
        }
    }
}
