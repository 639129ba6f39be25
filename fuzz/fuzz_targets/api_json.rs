//! Arbitrary bytes as every Genesys Cloud API response model: never a panic.
#![no_main]
use genesys_media::models::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<ConversationQueryResponse>(data);
    let _ = serde_json::from_slice::<AsyncQueryStatus>(data);
    let _ = serde_json::from_slice::<AsyncJobResults>(data);
    let _ = serde_json::from_slice::<Vec<RecordingMetadata>>(data);
    let _ = serde_json::from_slice::<Recording>(data);
    let _ = serde_json::from_slice::<BatchDownloadJobSubmissionResult>(data);
    if let Ok(s) = serde_json::from_slice::<BatchDownloadJobStatusResult>(data) {
        let _ = format!("{s:?}");
    }
    let _ = serde_json::from_slice::<CompatListing>(data);
    let _ = serde_json::from_slice::<ApiErrorBody>(data);
    if let Ok(c) = serde_json::from_slice::<ConversationQueryResponse>(data) {
        for conv in c.conversations {
            let _ = conv.has_recording();
            let _ = conv.media_type();
        }
    }
});
