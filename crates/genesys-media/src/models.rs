//! Serde models of the Platform API responses this crate reads (field names as in the official
//! SDKs). Unknown fields are ignored; every field the API may omit is optional.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `AnalyticsConversationQueryResponse`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationQueryResponse {
    /// Conversations of the page; absent past the last page.
    #[serde(default)]
    pub conversations: Vec<AnalyticsConversation>,
    /// Approximate number of matches.
    #[serde(default)]
    pub total_hits: Option<u64>,
}

/// One conversation of an analytics details query.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsConversation {
    /// Conversation id.
    pub conversation_id: String,
    /// ISO-8601 start.
    #[serde(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversation_start: Option<String>,
    /// ISO-8601 end.
    #[serde(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversation_end: Option<String>,
    /// `inbound` / `outbound`.
    #[serde(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub originating_direction: Option<String>,
    /// Divisions.
    #[serde(default)]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub division_ids: Vec<String>,
    /// Participants with their sessions.
    #[serde(default)]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub participants: Vec<AnalyticsParticipant>,
}

impl AnalyticsConversation {
    /// Whether any session says an *audio* recording was started. Screen recordings and
    /// chat, email and message transcripts need not set it: discovery does not filter on it.
    pub fn has_recording(&self) -> bool {
        self.participants
            .iter()
            .flat_map(|p| &p.sessions)
            .any(|s| s.recording == Some(true))
    }

    /// This conversation without the phone numbers of its sessions (`ani`, `dnis`: personal
    /// data), for keeping it where they must not go.
    pub fn without_phone_numbers(mut self) -> Self {
        for s in self.participants.iter_mut().flat_map(|p| &mut p.sessions) {
            s.ani = None;
            s.dnis = None;
        }
        self
    }

    /// The first session media type (`voice`, `chat`, `email`, ...).
    pub fn media_type(&self) -> Option<&str> {
        self.participants
            .iter()
            .flat_map(|p| &p.sessions)
            .find_map(|s| s.media_type.as_deref())
    }
}

/// A participant of an analytics conversation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsParticipant {
    /// `customer`, `agent`, ...
    #[serde(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// The user (agent) of an `agent` participant.
    #[serde(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Sessions.
    #[serde(default)]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sessions: Vec<AnalyticsSession>,
}

/// An analytics session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsSession {
    /// Session media type.
    #[serde(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// "audio recording was started".
    #[serde(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recording: Option<bool>,
    /// Automatic Number Identification (the caller's number): personal data.
    #[serde(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ani: Option<String>,
    /// Dialled Number Identification Service (the number called): personal data.
    #[serde(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dnis: Option<String>,
    /// Segments of the session.
    #[serde(default)]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<AnalyticsSegment>,
}

/// A segment of an analytics session (`AnalyticsConversationSegment`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsSegment {
    /// `interact`, `hold`, `wrapup`, ...
    #[serde(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment_type: Option<String>,
    /// Queue of the segment.
    #[serde(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_id: Option<String>,
    /// Wrap-up code of a `wrapup` segment.
    #[serde(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wrap_up_code: Option<String>,
}

/// Answer to submitting an asynchronous analytics details job.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AsyncJobSubmission {
    /// Job id.
    pub job_id: String,
}

/// `AsyncQueryStatus` of an analytics details job.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AsyncQueryStatus {
    /// `QUEUED`, `PENDING`, `FAILED`, `CANCELLED`, `FULFILLED`, `EXPIRED`.
    #[serde(default)]
    pub state: Option<String>,
    /// Why it failed.
    #[serde(default)]
    pub error_message: Option<String>,
}

/// One cursor page of an analytics details job's results.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AsyncJobResults {
    /// Conversations of the page.
    #[serde(default)]
    pub conversations: Vec<AnalyticsConversation>,
    /// Cursor of the next page; absent on the last.
    #[serde(default)]
    pub cursor: Option<String>,
    /// "Data available up to at least this datetime": what lies after it is not in the
    /// results.
    #[serde(default)]
    pub data_availability_date: Option<String>,
}

/// `DataAvailabilityResponse` of `GET /api/v2/analytics/conversations/details/jobs/availability`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataAvailability {
    /// "The date and time before which data is guaranteed to be available in the datalake."
    #[serde(default)]
    pub data_availability_date: Option<String>,
}

/// `RecordingMetadata` (and the non-media fields of `Recording`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordingMetadata {
    /// Recording id.
    pub id: String,
    /// Conversation id.
    #[serde(default)]
    pub conversation_id: Option<String>,
    /// Start time (a string in the API).
    #[serde(default)]
    pub start_time: Option<String>,
    /// End time.
    #[serde(default)]
    pub end_time: Option<String>,
    /// `audio`, `chat`, `messaging`, `email` or `screen`.
    #[serde(default)]
    pub media: Option<String>,
    /// `AVAILABLE`, `ARCHIVED`, `DELETED`, `RESTORED`, `RESTORING`, `UPLOADING`, `ERROR`.
    #[serde(default)]
    pub file_state: Option<String>,
}

/// `Recording` as returned by the per-recording GET.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recording {
    /// Metadata fields.
    #[serde(flatten)]
    pub meta: RecordingMetadata,
    /// Media URLs by channel key (`"0"`, `"1"`).
    #[serde(default)]
    pub media_uris: BTreeMap<String, MediaResult>,
    /// Size of the transcoded media, 0 if none.
    #[serde(default)]
    pub output_size_in_bytes: Option<u64>,
    /// On a 202 (still transcoding): how long the service expects the transcode to take
    /// (`estimatedTranscodeTimeMs` of the SDK models; not described further).
    #[serde(default)]
    pub estimated_transcode_time_ms: Option<u64>,
}

/// `MediaResult`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaResult {
    /// The presigned media URL.
    #[serde(default)]
    pub media_uri: Option<String>,
}

/// One item of `BatchDownloadJobSubmission.batchDownloadRequestList`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchDownloadRequest {
    /// Conversation id.
    pub conversation_id: String,
    /// Recording id; `None` asks for every recording of the conversation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recording_id: Option<String>,
}

/// `BatchDownloadJobSubmissionResult`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchDownloadJobSubmissionResult {
    /// Job id.
    pub id: String,
}

/// `BatchDownloadJobStatusResult`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchDownloadJobStatusResult {
    /// `InProgress` or `Completed`.
    #[serde(default)]
    pub status: Option<String>,
    /// May grow as recordings are discovered.
    #[serde(default)]
    pub expected_result_count: Option<u64>,
    /// Results so far.
    #[serde(default)]
    pub result_count: Option<u64>,
    /// Results with `errorMsg`.
    #[serde(default)]
    pub error_count: Option<u64>,
    /// Results.
    #[serde(default)]
    pub results: Vec<BatchDownloadJobResult>,
}

/// `BatchDownloadJobResult`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchDownloadJobResult {
    /// Conversation id.
    #[serde(default)]
    pub conversation_id: Option<String>,
    /// Recording id.
    #[serde(default)]
    pub recording_id: Option<String>,
    /// Presigned download URL.
    #[serde(default)]
    pub result_url: Option<String>,
    /// Media content type.
    #[serde(default)]
    pub content_type: Option<String>,
    /// Why there is no URL (archived, deleted, ...).
    #[serde(default)]
    pub error_msg: Option<String>,
}

/// One entity of the compat listing `GET /api/v2/recordings/recordings` (not part of the public
/// Genesys Cloud API; exposed by some gateways).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompatRecording {
    /// Recording id.
    pub id: String,
    /// `completed`, ...
    #[serde(default)]
    pub status: Option<String>,
    /// Media URL.
    #[serde(default)]
    pub uri: Option<String>,
    /// Hex MD5 of the media.
    #[serde(default)]
    pub md5: Option<String>,
    /// Conversation id.
    #[serde(default)]
    pub interaction_id: Option<String>,
    /// Start time.
    #[serde(default)]
    pub start_time: Option<String>,
    /// End time.
    #[serde(default)]
    pub end_time: Option<String>,
    /// Media type.
    #[serde(default)]
    pub media_type: Option<String>,
    /// Content type, where given.
    #[serde(default)]
    pub content_type: Option<String>,
    /// Size in bytes, where given.
    #[serde(default)]
    pub size: Option<u64>,
}

/// A page of the compat listing.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompatListing {
    /// Entities of the page.
    #[serde(default)]
    pub entities: Vec<CompatRecording>,
    /// Page count, where given.
    #[serde(default)]
    pub page_count: Option<u64>,
}

/// The error body the API returns (normalized since 2021).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiErrorBody {
    /// Human-readable message.
    #[serde(default)]
    pub message: Option<String>,
    /// Machine code, e.g. `too.many.requests.retry.after`.
    #[serde(default)]
    pub code: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_api_shapes_and_ignores_unknown_fields() {
        let q: ConversationQueryResponse = serde_json::from_str(
            r#"{"totalHits":2,"conversations":[{"conversationId":"c1","conversationStart":"2026-11-01T00:00:00.000Z",
            "participants":[{"purpose":"customer","sessions":[{"mediaType":"voice","recording":true,"x":1}]}],"new":[]}]}"#,
        )
        .unwrap();
        assert_eq!(q.total_hits, Some(2));
        assert!(q.conversations[0].has_recording());
        assert_eq!(q.conversations[0].media_type(), Some("voice"));
        let empty: ConversationQueryResponse = serde_json::from_str(r#"{"totalHits":0}"#).unwrap();
        assert!(empty.conversations.is_empty());
        let r: Recording = serde_json::from_str(
            r#"{"id":"r1","conversationId":"c1","fileState":"AVAILABLE","mediaUris":{"0":{"mediaUri":"https://x/y"}},"outputSizeInBytes":5}"#,
        )
        .unwrap();
        assert_eq!(r.meta.id, "r1");
        assert_eq!(r.media_uris["0"].media_uri.as_deref(), Some("https://x/y"));
        let b: BatchDownloadJobStatusResult = serde_json::from_str(
            r#"{"status":"Completed","expectedResultCount":2,"resultCount":2,"errorCount":1,"results":[
              {"conversationId":"c","recordingId":"r","resultUrl":"https://u","contentType":"audio/ogg"},
              {"conversationId":"c","recordingId":"r2","errorMsg":"archived"}]}"#,
        )
        .unwrap();
        assert_eq!(b.results[1].error_msg.as_deref(), Some("archived"));
        let s = serde_json::to_string(&BatchDownloadRequest {
            conversation_id: "c".into(),
            recording_id: None,
        })
        .unwrap();
        assert_eq!(s, r#"{"conversationId":"c"}"#);
    }
}
