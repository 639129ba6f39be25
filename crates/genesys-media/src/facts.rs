//! What analytics says about a conversation that people look recordings up by.

use serde::{Deserialize, Serialize};

use crate::models::AnalyticsConversation;

/// The searchable facts of a conversation, as its analytics record gives them: carried by
/// every [`crate::DiscoveredRecording`] of the conversation, so an archive can label its
/// objects and answer "the recordings of this agent, queue or number on this day".
///
/// `ani` and `dnis` are phone numbers, personal data: [`ConversationFacts::without_personal_data`]
/// drops them for callers that have not been told to keep them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConversationFacts {
    /// `originatingDirection`: `inbound` or `outbound`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    /// `divisionIds`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub division_ids: Vec<String>,
    /// Queues of the segments (`queueId`), first seen first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub queue_ids: Vec<String>,
    /// Users (agents) taking part (`participants[].userId`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub user_ids: Vec<String>,
    /// Wrap-up codes of the segments (`wrapUpCode`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub wrap_up_codes: Vec<String>,
    /// Calling numbers of the sessions (`ani`): personal data.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ani: Vec<String>,
    /// Dialled numbers of the sessions (`dnis`): personal data.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dnis: Vec<String>,
}

fn push_unique(v: &mut Vec<String>, s: Option<&String>) {
    if let Some(s) = s.filter(|s| !s.is_empty())
        && !v.contains(s)
    {
        v.push(s.clone());
    }
}

impl ConversationFacts {
    /// The facts of `c`, each list without repeats, in the order analytics gives them.
    pub fn of(c: &AnalyticsConversation) -> Self {
        let mut f = Self {
            direction: c.originating_direction.clone(),
            ..Self::default()
        };
        for d in &c.division_ids {
            push_unique(&mut f.division_ids, Some(d));
        }
        for p in &c.participants {
            push_unique(&mut f.user_ids, p.user_id.as_ref());
            for s in &p.sessions {
                push_unique(&mut f.ani, s.ani.as_ref());
                push_unique(&mut f.dnis, s.dnis.as_ref());
                for seg in &s.segments {
                    push_unique(&mut f.queue_ids, seg.queue_id.as_ref());
                    push_unique(&mut f.wrap_up_codes, seg.wrap_up_code.as_ref());
                }
            }
        }
        f
    }

    /// The same facts without the phone numbers (`ani`, `dnis`).
    pub fn without_personal_data(mut self) -> Self {
        self.ani.clear();
        self.dnis.clear();
        self
    }

    /// Whether nothing is known.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The facts as (name, value) search terms: `direction`, `division`, `queue`, `agent`,
    /// `wrapup`, `ani`, `dnis`, one pair per value.
    pub fn terms(&self) -> Vec<(&'static str, &str)> {
        let mut out = Vec::new();
        if let Some(d) = &self.direction {
            out.push(("direction", d.as_str()));
        }
        for (name, list) in [
            ("division", &self.division_ids),
            ("queue", &self.queue_ids),
            ("agent", &self.user_ids),
            ("wrapup", &self.wrap_up_codes),
            ("ani", &self.ani),
            ("dnis", &self.dnis),
        ] {
            out.extend(list.iter().map(|v| (name, v.as_str())));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_come_from_every_participant_session_and_segment_once() {
        let c: AnalyticsConversation = serde_json::from_value(serde_json::json!({
            "conversationId": "c",
            "originatingDirection": "inbound",
            "divisionIds": ["d1"],
            "participants": [
                {"purpose": "customer", "sessions": [
                    {"mediaType": "voice", "ani": "tel:+15550100", "dnis": "tel:+15550199"}]},
                {"purpose": "agent", "userId": "u1", "sessions": [
                    {"mediaType": "voice", "segments": [
                        {"segmentType": "interact", "queueId": "q1"},
                        {"segmentType": "wrapup", "queueId": "q1", "wrapUpCode": "w1"}]}]},
                {"purpose": "agent", "userId": "u2", "sessions": [
                    {"mediaType": "voice", "ani": "tel:+15550100", "segments": [
                        {"segmentType": "interact", "queueId": "q2"}]}]}
            ]
        }))
        .unwrap();
        let f = ConversationFacts::of(&c);
        assert_eq!(f.direction.as_deref(), Some("inbound"));
        assert_eq!(f.division_ids, ["d1"]);
        assert_eq!(f.queue_ids, ["q1", "q2"]);
        assert_eq!(f.user_ids, ["u1", "u2"]);
        assert_eq!(f.wrap_up_codes, ["w1"]);
        assert_eq!(f.ani, ["tel:+15550100"]);
        assert_eq!(f.dnis, ["tel:+15550199"]);
        assert!(f.terms().contains(&("agent", "u2")));
        let private = f.clone().without_personal_data();
        assert!(private.ani.is_empty() && private.dnis.is_empty());
        assert!(
            !private
                .terms()
                .iter()
                .any(|(n, _)| *n == "ani" || *n == "dnis")
        );
        let json = serde_json::to_string(&private).unwrap();
        assert!(!json.contains("ani") && !json.contains("tel:"), "{json}");
        assert_eq!(
            serde_json::from_str::<ConversationFacts>(&json).unwrap(),
            private
        );
        assert!(ConversationFacts::default().is_empty());
    }
}
