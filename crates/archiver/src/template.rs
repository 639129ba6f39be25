//! Object key templates: `recordings/{date}/{conversation_id}/{recording_id}.{ext}`.

use std::fmt;

use chrono::{DateTime, Datelike, Utc};
use genesys_media::DiscoveredRecording;

/// The placeholders a key template may use.
pub const PLACEHOLDERS: &[&str] = &[
    "date",
    "year",
    "month",
    "day",
    "conversation_id",
    "recording_id",
    "media_type",
    "ext",
];

/// The default layout.
pub const DEFAULT_TEMPLATE: &str = "recordings/{date}/{conversation_id}/{recording_id}.{ext}";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    Var(String),
}

/// A parsed, validated key template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTemplate {
    source: String,
    parts: Vec<Part>,
}

/// A template that cannot be used, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid key template {template:?}: {reason}")]
pub struct TemplateError {
    template: String,
    reason: String,
}

impl KeyTemplate {
    /// Parses and validates: known placeholders only, balanced braces, `{recording_id}`
    /// present (keys must be unique per recording), no leading `/`, no `..` segments, fixed
    /// text short enough for the 1024-byte key limit.
    pub fn parse(template: &str) -> Result<Self, TemplateError> {
        let err = |reason: String| TemplateError {
            template: template.to_string(),
            reason,
        };
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut chars = template.chars();
        while let Some(c) = chars.next() {
            match c {
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some('{') | None => return Err(err("unbalanced '{'".into())),
                            Some(c) => name.push(c),
                        }
                    }
                    if !PLACEHOLDERS.contains(&name.as_str()) {
                        return Err(err(format!(
                            "unknown placeholder {{{name}}}; known: {}",
                            PLACEHOLDERS.join(", ")
                        )));
                    }
                    if !lit.is_empty() {
                        parts.push(Part::Lit(std::mem::take(&mut lit)));
                    }
                    parts.push(Part::Var(name));
                }
                '}' => return Err(err("unbalanced '}'".into())),
                c if c.is_control() || c == '\\' => {
                    return Err(err(
                        "control characters and backslashes are not allowed".into()
                    ));
                }
                c => lit.push(c),
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        if !parts.contains(&Part::Var("recording_id".into())) {
            return Err(err(
                "it must contain {recording_id} so that every recording gets its own key".into(),
            ));
        }
        if template.starts_with('/')
            || template
                .split('/')
                .any(|s| s.is_empty() || s == "." || s == "..")
        {
            return Err(err("no leading '/', empty, '.' or '..' segments".into()));
        }
        let fixed: usize = parts
            .iter()
            .map(|p| match p {
                Part::Lit(l) => l.len(),
                Part::Var(_) => 0,
            })
            .sum();
        if fixed > 900 {
            return Err(err(format!(
                "its fixed text is {fixed} bytes; with the ids added, keys would pass the 1024-byte limit of object keys"
            )));
        }
        Ok(Self {
            source: template.to_string(),
            parts,
        })
    }

    /// The key of a recording. Ids must be plain identifiers (no `/`, `..`, control
    /// characters): a hostile source cannot steer keys.
    pub fn render(
        &self,
        rec: &DiscoveredRecording,
        content_type: Option<&str>,
    ) -> Result<String, String> {
        let start: DateTime<Utc> = rec.start_time.unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Var(v) => {
                    let value = match v.as_str() {
                        "date" => start.format("%Y-%m-%d").to_string(),
                        "year" => format!("{:04}", start.year()),
                        "month" => format!("{:02}", start.month()),
                        "day" => format!("{:02}", start.day()),
                        "conversation_id" => plain(&rec.conversation_id, "conversation id")?,
                        // One file of several gets its label appended, so that every
                        // file has a key of its own whatever the template.
                        "recording_id" => match &rec.file {
                            None => plain(&rec.recording_id, "recording id")?,
                            Some(f) => format!(
                                "{}-{}",
                                plain(&rec.recording_id, "recording id")?,
                                plain(f, "file label")?
                            ),
                        },
                        "media_type" => plain(&rec.media_type, "media type")?,
                        "ext" => {
                            extension(content_type.or(rec.content_type.as_deref())).to_string()
                        }
                        _ => unreachable!("validated in parse"),
                    };
                    out.push_str(&value);
                }
            }
        }
        // The same rule every sink applies (length included), so an unusable key is reported
        // as this recording's key error rather than as a store failure.
        sink::validate_key(&out).map_err(|e| {
            format!(
                "the key built from {:?} is not a valid object key: {e}",
                self.source
            )
        })?;
        Ok(out)
    }
}

impl fmt::Display for KeyTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Default for KeyTemplate {
    fn default() -> Self {
        Self::parse(DEFAULT_TEMPLATE).expect("default template is valid")
    }
}

fn plain(id: &str, what: &str) -> Result<String, String> {
    genesys_media::path_segment(id)
        .map(str::to_string)
        .map_err(|_| {
            format!(
                "{what} {:?} is not a plain identifier",
                id.escape_debug().to_string()
            )
        })
}

/// File extension for a media content type (`bin` when unknown).
pub fn extension(content_type: Option<&str>) -> &'static str {
    let ct = content_type
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match ct.as_str() {
        "audio/ogg" | "audio/vorbis" | "application/ogg" => "ogg",
        "audio/opus" => "opus",
        "audio/wav" | "audio/x-wav" | "audio/wave" | "audio/vnd.wave" => "wav",
        "audio/webm" | "video/webm" => "webm",
        "audio/mpeg" | "audio/mp3" => "mp3",
        "audio/mp4" | "video/mp4" => "mp4",
        "application/json" => "json",
        "application/zip" => "zip",
        "message/rfc822" => "eml",
        _ => "bin",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use genesys_media::MediaAvailability;

    fn rec(cid: &str, rid: &str) -> DiscoveredRecording {
        DiscoveredRecording {
            file: None,
            conversation_id: cid.into(),
            recording_id: rid.into(),
            start_time: Some("2026-11-03T23:59:59Z".parse().unwrap()),
            end_time: None,
            media_type: "audio".into(),
            content_type: Some("audio/ogg".into()),
            expected_md5: None,
            expected_size: None,
            media: MediaAvailability::Unavailable("n/a".into()),
            facts: Default::default(),
        }
    }

    #[test]
    fn default_layout() {
        let t = KeyTemplate::default();
        assert_eq!(
            t.render(&rec("c1", "r1"), None).unwrap(),
            "recordings/2026-11-03/c1/r1.ogg"
        );
        assert_eq!(
            t.render(&rec("c1", "r1"), Some("audio/wav")).unwrap(),
            "recordings/2026-11-03/c1/r1.wav"
        );
        let t =
            KeyTemplate::parse("{media_type}/{year}/{month}/{day}/{recording_id}.{ext}").unwrap();
        assert_eq!(
            t.render(&rec("c", "r"), Some("message/rfc822")).unwrap(),
            "audio/2026/11/03/r.eml"
        );
    }

    #[test]
    fn bad_templates_and_hostile_ids_are_refused() {
        for (bad, why) in [
            ("{conversation_id}.{ext}", "recording_id"),
            ("x/{recording}", "unknown placeholder"),
            ("x/{recording_id", "unbalanced"),
            ("x/recording_id}", "unbalanced"),
            ("/abs/{recording_id}", "leading"),
            ("a/../{recording_id}", "'..'"),
        ] {
            let e = KeyTemplate::parse(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
        let t = KeyTemplate::default();
        assert!(t.render(&rec("../../etc", "r"), None).is_err());
        assert!(t.render(&rec("c", "r\n1"), None).is_err());
    }

    /// Found by the key_template fuzz target: a long template rendered keys over 1024 bytes.
    #[test]
    fn keys_over_the_limit_are_refused_at_parse_and_render() {
        let long = format!("{}/{{recording_id}}", "x".repeat(950));
        assert!(
            KeyTemplate::parse(&long)
                .unwrap_err()
                .to_string()
                .contains("1024")
        );
        let t = KeyTemplate::parse(&format!(
            "{}/{{conversation_id}}/{{recording_id}}",
            "x".repeat(890)
        ))
        .unwrap();
        let rec = rec(&"c".repeat(80), &"r".repeat(80));
        let e = t.render(&rec, None).unwrap_err();
        assert!(e.contains("1024"), "{e}");
    }
}
