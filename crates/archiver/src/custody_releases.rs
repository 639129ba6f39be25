//! Releases at the source in the chain-of-custody index: after its object lines, a part lists
//! the releases confirmed (or taken back) since the part before, one `"type":"release"` line
//! each, so an auditor with only the store (and the public key) sees what was released at the
//! source, when, with what delete date and on what proof: the object's key, size and digests
//! and the index part that listed it.
//!
//! A part with release lines counts them in its header (`"releases"`); a part without any has
//! no such field, so parts written before releases existed read as before.

use serde::{Deserialize, Serialize};

use crate::IndexEntry;
use crate::ledger::ReleaseRecord;

/// One release line of a part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseLine {
    /// Always `release`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Recording id (the ledger's, `~file` for one of several files).
    pub recording_id: String,
    /// Conversation id.
    pub conversation_id: String,
    /// Key of the archived object the release rests on.
    pub key: String,
    /// Its bytes.
    pub size: u64,
    /// Its MD5 hex.
    pub md5: String,
    /// Its SHA-256 hex.
    pub sha256: String,
    /// The index part that listed the object when the release was proven.
    pub object_part: u64,
    /// That part's SHA-256 then.
    pub object_part_sha256: String,
    /// `released`, or `undone` once taken back (the later delete date then).
    pub state: String,
    /// The delete date set at the source (RFC 3339).
    pub delete_date: String,
    /// When the proof was recorded.
    pub proven_at: String,
    /// When the source confirmed the date.
    pub released_at: Option<String>,
    /// When the release was taken back.
    pub undone_at: Option<String>,
}

impl ReleaseLine {
    /// The line of a release the ledger records.
    pub fn from_record(r: ReleaseRecord) -> Self {
        Self {
            kind: "release".into(),
            recording_id: r.recording_id,
            conversation_id: r.conversation_id,
            key: r.key,
            size: r.size,
            md5: r.md5,
            sha256: r.sha256,
            object_part: r.index_seq,
            object_part_sha256: r.index_sha256,
            state: r.state.as_str().into(),
            delete_date: r.delete_date,
            proven_at: r.proven_at,
            released_at: r.released_at,
            undone_at: r.undone_at,
        }
    }
}

impl ReleaseLine {
    /// The ledger's record of this line (a ledger rebuilt from the store). A state other
    /// than `undone` reads as released: a date may stand at the source, so `verify` watches.
    pub(crate) fn into_record(self) -> ReleaseRecord {
        ReleaseRecord {
            state: if self.state == "undone" {
                crate::ReleaseState::Undone
            } else {
                crate::ReleaseState::Released
            },
            recording_id: self.recording_id,
            conversation_id: self.conversation_id,
            key: self.key,
            size: self.size,
            md5: self.md5,
            sha256: self.sha256,
            index_seq: self.object_part,
            index_sha256: self.object_part_sha256,
            delete_date: self.delete_date,
            proven_at: self.proven_at,
            released_at: self.released_at,
            undone_at: self.undone_at,
            last_error: None,
        }
    }
}

/// The lines of a part after its header: objects and releases. A line is a release when it
/// begins as this archiver writes release lines; every other line must be an object.
pub(crate) fn split_lines<'a>(
    lines: impl Iterator<Item = (usize, &'a str)>,
) -> Result<(Vec<IndexEntry>, Vec<ReleaseLine>), String> {
    let (mut objects, mut releases) = (Vec::new(), Vec::new());
    for (i, l) in lines {
        if l.starts_with("{\"type\":\"release\"") {
            releases.push(serde_json::from_str(l).map_err(|e| format!("line {}: {e}", i + 2))?);
        } else {
            objects.push(serde_json::from_str(l).map_err(|e| format!("line {}: {e}", i + 2))?);
        }
    }
    Ok((objects, releases))
}

/// What is wrong with a part's release lines, given every key listed so far (this part's
/// objects included) with the part that listed it and its digests, and the SHA-256 of every
/// part: each release must rest on an object listed with the same digests, by the part it
/// names, whose bytes are the ones it names.
pub(crate) fn check_release_lines(
    part_key: &str,
    releases: &[ReleaseLine],
    listed: &std::collections::BTreeMap<String, (String, Option<String>, Option<String>)>,
    part_sha256: impl Fn(u64) -> Option<String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for r in releases {
        let said = || {
            format!(
                "{part_key}: the release of recording {} ({})",
                r.recording_id, r.key
            )
        };
        match listed.get(&r.key) {
            None => problems.push(format!("{}: no part before lists that object", said())),
            Some((_, md5, sha))
                if md5.as_deref() != Some(&r.md5) || sha.as_deref() != Some(&r.sha256) =>
            {
                problems.push(format!(
                    "{}: names MD5 {} and SHA-256 {}, the index lists {} and {}",
                    said(),
                    r.md5,
                    r.sha256,
                    md5.as_deref().unwrap_or("none"),
                    sha.as_deref().unwrap_or("none")
                ))
            }
            Some(_) => {}
        }
        if part_sha256(r.object_part).as_deref() != Some(r.object_part_sha256.as_str()) {
            problems.push(format!(
                "{}: rests on part {} with SHA-256 {}, which the store does not hold",
                said(),
                r.object_part,
                r.object_part_sha256
            ));
        }
        if r.state != "released" && r.state != "undone" {
            problems.push(format!("{}: unknown state {:?}", said(), r.state));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn line(key: &str, md5: &str, part: u64, part_sha: &str, state: &str) -> ReleaseLine {
        ReleaseLine {
            kind: "release".into(),
            recording_id: "r1".into(),
            conversation_id: "c1".into(),
            key: key.into(),
            size: 3,
            md5: md5.into(),
            sha256: "s".into(),
            object_part: part,
            object_part_sha256: part_sha.into(),
            state: state.into(),
            delete_date: "2027-01-01T00:00:00.000Z".into(),
            proven_at: "2026-12-07T00:00:00.000Z".into(),
            released_at: None,
            undone_at: None,
        }
    }

    /// A release line must rest on an object listed with its digests, by a part the store
    /// holds with the bytes it names, in a known state; each break is named.
    #[test]
    fn a_release_line_rests_on_a_listed_object_and_part() {
        let listed = BTreeMap::from([(
            "k1".to_string(),
            (
                "index/p1".to_string(),
                Some("m".to_string()),
                Some("s".to_string()),
            ),
        )]);
        let parts = |seq: u64| (seq == 1).then(|| "p1sha".to_string());
        let check = |l: ReleaseLine| check_release_lines("index/p2", &[l], &listed, parts);
        assert!(check(line("k1", "m", 1, "p1sha", "released")).is_empty());
        assert!(check(line("k1", "m", 1, "p1sha", "undone")).is_empty());
        let p = check(line("k2", "m", 1, "p1sha", "released"));
        assert!(p[0].contains("no part before lists that object"), "{p:?}");
        let p = check(line("k1", "other", 1, "p1sha", "released"));
        assert!(p[0].contains("names MD5 other"), "{p:?}");
        let p = check(line("k1", "m", 1, "forged", "released"));
        assert!(p[0].contains("which the store does not hold"), "{p:?}");
        let p = check(line("k1", "m", 7, "p1sha", "released"));
        assert!(p[0].contains("rests on part 7"), "{p:?}");
        let p = check(line("k1", "m", 1, "p1sha", "gone"));
        assert!(p[0].contains("unknown state"), "{p:?}");
        // Lines are told apart by their type; anything else must be an object.
        let text = format!(
            "{}\n{{\"type\":\"nonsense\"}}",
            serde_json::to_string(&line("k1", "m", 1, "p1sha", "released")).unwrap()
        );
        assert!(split_lines(text.lines().enumerate()).is_err());
        let one = serde_json::to_string(&line("k1", "m", 1, "p1sha", "released")).unwrap();
        let (objects, releases) = split_lines(one.lines().enumerate()).unwrap();
        assert_eq!((objects.len(), releases.len()), (0, 1));
    }
}
