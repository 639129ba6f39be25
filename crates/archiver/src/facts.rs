//! Conversation facts as object metadata.

use genesys_media::ConversationFacts;

/// The most bytes one metadata value takes: S3 allows 2 KB of user metadata per object, and
/// the other entries need room too.
const MAX_VALUE: usize = 256;

/// `values` joined with commas, cut at a comma before [`MAX_VALUE`] bytes with `+N` naming
/// how many were left out (every id is still in the ledger and the index).
fn joined(values: &[String]) -> String {
    let mut out = String::new();
    for (i, v) in values.iter().enumerate() {
        let after = values.len() - i - 1;
        let suffix = if after > 0 {
            format!(",+{after}").len()
        } else {
            0
        };
        let sep = usize::from(!out.is_empty());
        if out.len() + sep + v.len() + suffix > MAX_VALUE {
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(&format!("+{}", values.len() - i));
            return out;
        }
        if sep == 1 {
            out.push(',');
        }
        out.push_str(v);
    }
    out
}

/// Metadata entries for what analytics said about the conversation: `direction`,
/// `division-ids`, `queue-ids`, `user-ids`, `wrap-up-codes`, and `ani` / `dnis` when the facts
/// still hold them (only when the operator keeps phone numbers). Empty facts add nothing.
pub(crate) fn facts_metadata(f: &ConversationFacts) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(d) = &f.direction {
        out.push(("direction".to_string(), d.clone()));
    }
    for (name, list) in [
        ("division-ids", &f.division_ids),
        ("queue-ids", &f.queue_ids),
        ("user-ids", &f.user_ids),
        ("wrap-up-codes", &f.wrap_up_codes),
        ("ani", &f.ani),
        ("dnis", &f.dnis),
    ] {
        if !list.is_empty() {
            out.push((name.to_string(), joined(list)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_joined_and_capped() {
        let ids: Vec<String> = (0..20).map(|i| format!("{i:0>36}")).collect();
        let v = joined(&ids);
        assert!(v.len() <= MAX_VALUE, "{} bytes", v.len());
        assert!(v.ends_with(",+14"), "{v}");
        assert_eq!(joined(&ids[..2]), format!("{},{}", ids[0], ids[1]));
        assert_eq!(joined(&[]), "");
        let f = ConversationFacts {
            direction: Some("inbound".into()),
            queue_ids: vec!["q1".into(), "q2".into()],
            user_ids: vec!["u1".into()],
            ..ConversationFacts::default()
        };
        assert_eq!(
            facts_metadata(&f),
            [
                ("direction".to_string(), "inbound".to_string()),
                ("queue-ids".into(), "q1,q2".into()),
                ("user-ids".into(), "u1".into())
            ]
        );
        assert!(facts_metadata(&ConversationFacts::default()).is_empty());
    }
}
