//! The source's clock as its answers show it (their `Date` headers), shared by the client and
//! its token provider: what "now" is at Genesys Cloud, for judging the future and settling.

use std::sync::Arc;
use tokio::time::Instant;

use chrono::{DateTime, Utc};
use http::header;

/// The source's clock as its answers show it: the `Date` of the latest answer and when it
/// arrived (shared by the client and its token provider).
pub(crate) type SourceClock = Arc<std::sync::Mutex<Option<(DateTime<Utc>, Instant)>>>;

/// Keeps an answer's `Date` as the source's clock. A `Date` is truncated to the second, so
/// each reading is a lower bound of the source's time; a reading below what the clock already
/// says is ignored: the clock never goes back (a later `now` is never before an earlier one).
pub(crate) fn note_source_date(clock: &SourceClock, headers: &http::HeaderMap) {
    if let Some(date) = headers
        .get(header::DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| DateTime::parse_from_rfc2822(v).ok())
    {
        let date = date.with_timezone(&Utc);
        let mut g = clock.lock().unwrap_or_else(|p| p.into_inner());
        let ahead = g.is_none_or(|(d, at)| {
            date >= d + chrono::Duration::from_std(at.elapsed()).unwrap_or(chrono::Duration::zero())
        });
        if ahead {
            *g = Some((date, Instant::now()));
        }
    }
}
