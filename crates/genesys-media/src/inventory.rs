//! An inventory of the org's recordings independent of analytics: the retention query lists
//! every recording the org retains, and the orphan listing every recording not attached to a
//! conversation. An archive audit compares them with what it holds.
//!
//! Contract (shared/genesys-api.md section 9; Python SDK 257.1.0, `RecordingApi`):
//! `GET /api/v2/recordings/retention/query?retentionThresholdDays=N&pageSize=..&cursor=..`
//! ("Fetch retention data for recordings retained for more days than the provided value",
//! `pageSize` at most 500, `recording:recording:view`) answers
//! `RecordingRetentionCursorEntityListing {entities, nextUri, selfUri, previousUri}`: the next
//! page is reached only through `nextUri`. `GET /api/v2/orphanrecordings` (`pageSize`,
//! `pageNumber`; `recording:orphan:view`) answers an `OrphanRecordingListing`.

use http::Method;
use serde::Deserialize;

use crate::client::GenesysClient;
use crate::error::{Error, Result};
use crate::orphan::ORPHAN_CONVERSATION;

/// The retention query's largest page.
pub const RETENTION_PAGE_SIZE: u32 = 500;
/// The orphan listing's page size (no maximum is documented; 100 is the API's usual one).
const ORPHAN_PAGE_SIZE: u32 = 100;

/// One recording the org retains (`RecordingRetention`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetainedRecording {
    /// Its conversation.
    #[serde(default)]
    pub conversation_id: String,
    /// The recording id.
    #[serde(default)]
    pub recording_id: String,
    /// When the recording was created (ISO-8601).
    #[serde(default)]
    pub creation_time: Option<String>,
    /// When the source archives it (moves it to its cold tier), if set.
    #[serde(default)]
    pub archive_date: Option<String>,
    /// When the source deletes it, if set.
    #[serde(default)]
    pub delete_date: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RetentionPage {
    #[serde(default)]
    entities: Vec<RetainedRecording>,
    #[serde(default)]
    next_uri: Option<String>,
}

/// A recording not attached to any conversation (`OrphanRecording`): it cannot be archived
/// under a conversation until an administrator (or `PUT /api/v2/orphanrecordings/{id}`)
/// re-attaches it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrphanRecording {
    /// The orphan's id (not a recording id).
    #[serde(default)]
    pub id: String,
    /// When the orphan was created (ISO-8601).
    #[serde(default)]
    pub created_time: Option<String>,
    /// `EDGE`, `CHAT`, `EMAIL`, `SCREEN_RECORDING`, ...
    #[serde(default)]
    pub provider_type: Option<String>,
    /// `CALL`, `CHAT`, `EMAIL`, `SCREEN`.
    #[serde(default)]
    pub media_type: Option<String>,
    /// Size of its media.
    #[serde(default)]
    pub media_size_bytes: Option<u64>,
    /// `fileState` of its media.
    #[serde(default)]
    pub file_state: Option<String>,
    /// Why it is an orphan: `NO_CONVERSATION`, `UNKNOWN_CONVERSATION`,
    /// `CONVERSATION_NOT_COMPLETE`, `CONVERSATION_NOT_EVALUATED`, `EVALUATED`.
    #[serde(default)]
    pub orphan_status: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OrphanPage {
    #[serde(default)]
    entities: Vec<OrphanRecording>,
    #[serde(default)]
    page_count: Option<u32>,
    #[serde(default)]
    next_uri: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DivisionsPermitted {
    #[serde(default)]
    entities: Vec<serde_json::Value>,
    #[serde(default)]
    all_divs_permitted: bool,
}

/// The permission without which batch downloads silently leave out recordings with
/// sensitive data in an org that redacts it (`POST /api/v2/recording/batchrequests`).
pub const VIEW_SENSITIVE_DATA: &str = "recording:recording:viewSensitiveData";

/// The `formatId` orphan media is asked in (audio; other media take their own defaults).
const ORPHAN_FORMAT: &str = "WAV";

/// The archiver's media type of an orphan's `mediaType` (`CALL`, `SCREEN`, `CHAT`, `EMAIL`).
fn orphan_media_type(o: &OrphanRecording) -> String {
    match o
        .media_type
        .as_deref()
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        Some("CALL") => "audio".into(),
        Some("SCREEN") => "screen".into(),
        Some("CHAT") => "chat".into(),
        Some("EMAIL") => "email".into(),
        Some(other) => other.to_ascii_lowercase(),
        None => "unknown".into(),
    }
}

/// Why an orphan's media cannot be had once its id answers 404: re-attached orphans "will no
/// longer exist" (RecordingApi.md, `put_orphanrecording`) and become ordinary recordings of
/// their conversation, which the late window and the inventory audit archive.
fn gone(orphan_id: &str) -> String {
    format!(
        "orphan recording {orphan_id} no longer exists at the source: re-attached to its \
         conversation (archived there by the late window or `verify --inventory \
         --archive-missing`) or deleted"
    )
}

impl GenesysClient {
    /// `GET /api/v2/orphanrecordings/{orphanId}/media` ("Gets the media of a single orphan
    /// recording"; 202 while it is transcoded; `recording:orphan:view`), polled like the
    /// per-recording GET.
    pub async fn orphan_media(
        &self,
        orphan_id: &str,
        format_id: &str,
    ) -> Result<crate::models::Recording> {
        let path = format!(
            "/api/v2/orphanrecordings/{}/media?formatId={}",
            crate::discovery::path_segment(orphan_id)?,
            crate::discovery::path_segment(format_id)?
        );
        self.media_when_transcoded(&path, &format!("orphan recording {orphan_id}"))
            .await
    }

    /// The media of orphan recordings as discovery items, archived under the conversation id
    /// [`ORPHAN_CONVERSATION`] with the orphan's id as the recording id (one call each, more
    /// while transcoding). An orphan whose media cannot be had is `Unavailable` with why.
    pub async fn orphan_recordings_media(
        &self,
        orphans: &[OrphanRecording],
    ) -> Result<Vec<crate::Discovered>> {
        let format = ORPHAN_FORMAT;
        let mut out = Vec::new();
        for o in orphans {
            let created = crate::discovery::parse_time(o.created_time.as_deref());
            let media_type = orphan_media_type(o);
            let base = |file, media, size| crate::DiscoveredRecording {
                conversation_id: ORPHAN_CONVERSATION.into(),
                recording_id: o.id.clone(),
                file,
                start_time: created,
                end_time: created,
                content_type: crate::format_content_type(format, &media_type).map(str::to_string),
                media_type: media_type.clone(),
                expected_md5: None,
                expected_size: size,
                media,
                facts: Default::default(),
            };
            let rec = match self.orphan_media(&o.id, format).await {
                Ok(rec) => rec,
                // Re-attached (or deleted) between the listing and this request: this one
                // is reported, the others are still archived.
                Err(e) if e.status() == Some(404) => {
                    out.push(crate::Discovered::Recording(base(
                        None,
                        crate::MediaAvailability::Unavailable(gone(&o.id)),
                        None,
                    )));
                    continue;
                }
                Err(e) => return Err(e),
            };
            let files = crate::resolve::recording_files(&rec);
            if files.is_empty() {
                out.push(crate::Discovered::Recording(base(
                    None,
                    crate::MediaAvailability::Unavailable(format!(
                        "no media URI for orphan {} (fileState {})",
                        o.id,
                        o.file_state.as_deref().unwrap_or("unknown")
                    )),
                    None,
                )));
            }
            let several = files.len() > 1;
            let size = rec.output_size_in_bytes.filter(|s| *s > 0 && !several);
            for (label, media) in files {
                out.push(crate::Discovered::Recording(base(label, media, size)));
            }
        }
        Ok(out)
    }

    /// A fresh media URL for one orphan file.
    pub(crate) async fn refresh_orphan(
        &self,
        rec: &crate::DiscoveredRecording,
    ) -> Result<crate::MediaAvailability> {
        match self.orphan_media(&rec.recording_id, ORPHAN_FORMAT).await {
            Ok(r) => Ok(crate::resolve::file_of(&r, &rec.file)),
            Err(e) if e.status() == Some(404) => Ok(crate::MediaAvailability::Unavailable(gone(
                &rec.recording_id,
            ))),
            Err(e) => Err(e),
        }
    }

    /// Whether this OAuth client holds `permission` in any division, through
    /// `GET /api/v2/authorization/divisionspermitted/paged/me` ("Returns which divisions the
    /// current user has the given permission in"; needs no permission).
    pub async fn holds_permission(&self, permission: &str) -> Result<bool> {
        let p: String = url::form_urlencoded::byte_serialize(permission.as_bytes()).collect();
        let path =
            format!("/api/v2/authorization/divisionspermitted/paged/me?permission={p}&pageSize=1");
        let answer: DivisionsPermitted = self.call(Method::GET, &path, None).await?.1;
        Ok(answer.all_divs_permitted || !answer.entities.is_empty())
    }

    /// One page of the retention query: the first with `next` None, then the `nextUri` of
    /// the page before. Returns the recordings and the next page's path, if any. A `nextUri`
    /// that is not a path of this endpoint is refused (never followed to another host).
    pub async fn retention_page(
        &self,
        threshold_days: u32,
        next: Option<&str>,
    ) -> Result<(Vec<RetainedRecording>, Option<String>)> {
        const PATH: &str = "/api/v2/recordings/retention/query";
        let path = match next {
            None => format!(
                "{PATH}?retentionThresholdDays={threshold_days}&pageSize={RETENTION_PAGE_SIZE}"
            ),
            Some(uri) => same_endpoint(uri, PATH)?,
        };
        let page: RetentionPage = self.call(Method::GET, &path, None).await?.1;
        let next = page.next_uri.filter(|u| !u.is_empty());
        Ok((page.entities, next))
    }

    /// Every recording the org retains for more than `threshold_days` days (0: all), page by
    /// page (about 2 calls per 1,000 recordings).
    pub async fn retained_recordings(&self, threshold_days: u32) -> Result<Vec<RetainedRecording>> {
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        let mut seen = std::collections::HashSet::new();
        loop {
            let (page, after) = self.retention_page(threshold_days, next.as_deref()).await?;
            out.extend(page);
            match after {
                // Followed until no page names a next one: stopping early would pass a partial
                // inventory off as whole. A page named twice would loop: an error, not an end.
                Some(n) => {
                    if !seen.insert(n.clone()) {
                        return Err(Error::Decode {
                            endpoint: "GET /api/v2/recordings/retention/query".into(),
                            message: "the retention query named a page it had named before; the inventory is incomplete".into(),
                        });
                    }
                    next = Some(n);
                }
                None => return Ok(out),
            }
        }
    }

    /// Every orphan recording of the org.
    pub async fn orphan_recordings(&self) -> Result<Vec<OrphanRecording>> {
        let mut out = Vec::new();
        let mut page_number = 1u32;
        loop {
            let path = format!(
                "/api/v2/orphanrecordings?pageSize={ORPHAN_PAGE_SIZE}&pageNumber={page_number}"
            );
            let page: OrphanPage = self.call(Method::GET, &path, None).await?.1;
            let empty = page.entities.is_empty();
            out.extend(page.entities);
            let more = match page.page_count {
                Some(count) => page_number < count,
                None => page.next_uri.is_some_and(|u| !u.is_empty()),
            };
            if empty || !more {
                return Ok(out);
            }
            page_number += 1;
        }
    }
}

/// `uri` (a `nextUri`) as a path and query of `endpoint`: a relative path, or an absolute
/// URL whose path is the endpoint's (its host is dropped: requests go to the configured API
/// base only).
fn same_endpoint(uri: &str, endpoint: &str) -> Result<String> {
    let path_and_query = if uri.starts_with('/') {
        uri.to_string()
    } else {
        let u = url::Url::parse(uri).map_err(|_| Error::Decode {
            endpoint: endpoint.into(),
            message: "a nextUri that is neither a path nor a URL".into(),
        })?;
        match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_string(),
        }
    };
    let path = path_and_query.split('?').next().unwrap_or_default();
    if path != endpoint {
        return Err(Error::Decode {
            endpoint: endpoint.into(),
            message: format!("a nextUri for another endpoint ({path})"),
        });
    }
    Ok(path_and_query)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_next_uri_is_followed_only_on_its_endpoint() {
        let e = "/api/v2/recordings/retention/query";
        assert_eq!(
            same_endpoint("/api/v2/recordings/retention/query?cursor=abc", e).unwrap(),
            "/api/v2/recordings/retention/query?cursor=abc"
        );
        assert_eq!(
            same_endpoint(
                "https://api.mypurecloud.com/api/v2/recordings/retention/query?cursor=x",
                e
            )
            .unwrap(),
            "/api/v2/recordings/retention/query?cursor=x"
        );
        assert!(same_endpoint("/api/v2/users/me", e).is_err());
        assert!(same_endpoint("cursor=abc", e).is_err());
    }
}
