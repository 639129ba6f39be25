//! S3 tag rules: at most 10 tags, keys up to 128 and values up to 256 characters from
//! letters, digits, spaces and `+ - = . _ : / @`.

/// Most tags S3 allows on an object.
pub const MAX_TAGS: usize = 10;

fn sanitize(s: &str, max: usize) -> String {
    s.chars()
        .map(|c| {
            if c.is_alphanumeric() || " +-=._:/@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(max)
        .collect()
}

/// Makes a tag key acceptable to S3 (disallowed characters become `_`, cut to 128).
pub fn sanitize_tag_key(s: &str) -> String {
    sanitize(s, 128)
}

/// Makes a tag value acceptable to S3 (disallowed characters become `_`, cut to 256).
pub fn sanitize_tag_value(s: &str) -> String {
    sanitize(s, 256)
}

/// Sanitizes a tag set, keeping the first [`MAX_TAGS`] in key order.
pub(crate) fn sanitize_all(
    tags: &std::collections::BTreeMap<String, String>,
) -> Vec<(String, String)> {
    tags.iter()
        .take(MAX_TAGS)
        .map(|(k, v)| (sanitize_tag_key(k), sanitize_tag_value(v)))
        .collect()
}

/// Encodes tags for the `x-amz-tagging` header (URL query form).
pub(crate) fn encode_tagging(tags: &[(String, String)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(tags)
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizes_and_limits() {
        assert_eq!(
            sanitize_tag_value("2026-11-01T00:00:00.000Z"),
            "2026-11-01T00:00:00.000Z"
        );
        assert_eq!(sanitize_tag_value("a&b<c>\"d'"), "a_b_c__d_");
        assert_eq!(sanitize_tag_value(&"x".repeat(300)).len(), 256);
        assert_eq!(sanitize_tag_key(&"k".repeat(200)).len(), 128);
        let many: std::collections::BTreeMap<_, _> = (0..15)
            .map(|i| (format!("k{i:02}"), "v".to_string()))
            .collect();
        assert_eq!(sanitize_all(&many).len(), MAX_TAGS);
        assert_eq!(encode_tagging(&[("a b".into(), "c/d".into())]), "a+b=c%2Fd");
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn sanitized_tags_are_always_acceptable(k in ".{0,300}", v in ".{0,400}") {
            let (k2, v2) = (sanitize_tag_key(&k), sanitize_tag_value(&v));
            prop_assert!(k2.chars().count() <= 128 && v2.chars().count() <= 256);
            let ok = |c: char| c.is_alphanumeric() || " +-=._:/@".contains(c);
            prop_assert!(k2.chars().all(ok) && v2.chars().all(ok));
            prop_assert_eq!(sanitize_tag_value(&v2), v2.clone(), "idempotent");
        }
    }
}
