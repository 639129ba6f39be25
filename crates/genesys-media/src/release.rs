//! Retention at the source: setting a recording's delete date once its copy is proven
//! (`PUT /api/v2/conversations/{conversationId}/recordings/{recordingId}`), and which
//! conversations are under deletion protection (`POST /api/v2/recordings/deletionprotection`).
//! See `shared/genesys-api.md` section 9 and `docs/source-retention.md`.

use std::collections::HashSet;
use std::time::Instant;

use chrono::{DateTime, SecondsFormat, Utc};
use http::Method;
use serde::Deserialize;

use crate::client::GenesysClient;
use crate::error::{Error, Result};
use crate::retry::Wait;

/// The most conversation ids one deletion-protection query takes ("cannot exceed 100").
pub const PROTECTION_QUERY_MAX: usize = 100;

/// What the source answered to a delete date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionSet {
    /// The recording's `deleteDate` in the answer (`None` when the answer had none).
    pub delete_date: Option<DateTime<Utc>>,
    /// The recording's `fileState` in the answer.
    pub file_state: Option<String>,
    /// 409 answers retried before it was accepted.
    pub conflicts: u32,
}

impl RetentionSet {
    /// Whether the answer confirms the delete date `asked` (within the second the API's
    /// dates may be rounded to).
    pub fn confirms(&self, asked: DateTime<Utc>) -> bool {
        self.delete_date
            .is_some_and(|d| (d - asked).num_milliseconds().abs() < 1000)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RetentionAnswer {
    #[serde(default)]
    delete_date: Option<String>,
    #[serde(default)]
    file_state: Option<String>,
}

#[derive(Deserialize)]
struct EntityRef {
    id: String,
}

/// The date as the API writes dates: `yyyy-MM-ddTHH:mm:ss.mmmZ`.
pub fn api_date(d: DateTime<Utc>) -> String {
    d.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl GenesysClient {
    /// Sets recording `recording_id`'s delete date at the source to `delete_date`, sending
    /// only `deleteDate` (an `archiveDate` sent for an archived recording would restore it).
    /// A 409 (an update in progress) is retried with backoff like a 5xx; 429 and 5xx are
    /// retried by [`GenesysClient::call`]. Any other refusal comes back as
    /// [`Error::Status`] with the source's message.
    pub async fn set_delete_date(
        &self,
        conversation_id: &str,
        recording_id: &str,
        delete_date: DateTime<Utc>,
    ) -> Result<RetentionSet> {
        let path = format!(
            "/api/v2/conversations/{}/recordings/{}",
            urlencoding(conversation_id),
            urlencoding(recording_id)
        );
        let body = serde_json::json!({ "deleteDate": api_date(delete_date) });
        let policy = self.config().retry;
        let started = Instant::now();
        let mut conflicts = 0u32;
        loop {
            match self
                .call::<RetentionAnswer>(Method::PUT, &path, Some(&body))
                .await
            {
                Ok((_, a)) => {
                    return Ok(RetentionSet {
                        delete_date: a
                            .delete_date
                            .as_deref()
                            .and_then(|d| DateTime::parse_from_rfc3339(d).ok())
                            .map(|d| d.with_timezone(&Utc)),
                        file_state: a.file_state,
                        conflicts,
                    });
                }
                Err(Error::Status { status: 409, .. })
                    if policy
                        .next_wait(conflicts + 1, started.elapsed(), Wait::Backoff)
                        .is_some() =>
                {
                    conflicts += 1;
                    let wait = policy
                        .next_wait(conflicts, started.elapsed(), Wait::Backoff)
                        .unwrap_or_default();
                    tracing::debug!(recording_id, ?wait, "409: retrying the delete date");
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Which of `conversation_ids` are under deletion protection (legal hold), asked
    /// [`PROTECTION_QUERY_MAX`] at a time: one call per hundred ids.
    pub async fn protected_conversations(
        &self,
        conversation_ids: &[String],
    ) -> Result<HashSet<String>> {
        let mut out = HashSet::new();
        for chunk in conversation_ids.chunks(PROTECTION_QUERY_MAX) {
            let body = serde_json::json!({ "conversationIds": chunk });
            let (_, refs) = self
                .call::<Vec<EntityRef>>(
                    Method::POST,
                    "/api/v2/recordings/deletionprotection",
                    Some(&body),
                )
                .await?;
            out.extend(refs.into_iter().map(|r| r.id));
        }
        Ok(out)
    }
}

/// Percent-encodes a path segment (ids are UUIDs; anything else is escaped, never trusted).
fn urlencoding(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
