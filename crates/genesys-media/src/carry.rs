//! Reading a details-query interval past the query's 10,000-result cap without reading the
//! same conversations twice.
//!
//! The synchronous query returns every conversation with activity in its interval, in start
//! order. When an interval holds more than the cap, the reader goes on with a new query from
//! the start of the last conversation it read. That query begins with the conversations that
//! started earlier and are still going on (at ten thousand calls an hour and a quarter of an
//! hour per call, thousands): read again, they would double the pages. The reader knows them
//! (it read them), so it can begin at the page where they end.
//!
//! Skipping pages is safe only if the skipped positions hold nothing unread. Each skip is
//! checked on the first page read: the conversations before the expected boundary must all be
//! ones already read that started earlier, and the one at the boundary must be new. Then the
//! service holds exactly as many earlier conversations as the reader counted, and they are the
//! ones it read. Anything else (late data, different interval semantics, another order) and the
//! piece is read again from its first page.

use std::collections::HashMap;

use chrono::{DateTime, Duration as ChronoDuration, DurationRound, Utc};

use crate::discovery::parse_time;
use crate::models::AnalyticsConversation;

/// The conversations already read that a later query may return again: by id, their start
/// and end (none while still in progress).
#[derive(Debug, Default)]
pub(crate) struct Carried {
    read: HashMap<String, (DateTime<Utc>, Option<DateTime<Utc>>)>,
}

pub(crate) fn floor_day(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(ChronoDuration::days(1)).unwrap_or(t)
}

impl Carried {
    /// Notes a conversation read.
    pub(crate) fn note(&mut self, c: &AnalyticsConversation, start: DateTime<Utc>) {
        let end = parse_time(c.conversation_end.as_deref());
        self.read.insert(c.conversation_id.clone(), (start, end));
    }

    /// Forgets what a query starting at `from` cannot return (ended by then, or started on
    /// an earlier day than `from`'s: the query returns only conversations that started on a
    /// day its interval touches) and counts what it returns ahead of its first conversation
    /// that started at or after `from`.
    pub(crate) fn ahead_of(&mut self, from: DateTime<Utc>) -> u64 {
        let day = floor_day(from);
        self.read
            .retain(|_, (start, end)| *start >= day && end.is_none_or(|e| e > from));
        self.read.values().filter(|(s, _)| *s < from).count() as u64
    }

    /// Whether `id` was read and started before `from`.
    fn is_ahead(&self, id: &str, from: DateTime<Utc>) -> bool {
        self.read.get(id).is_some_and(|(s, _)| *s < from)
    }
}

/// Where to begin reading a query from `from` of which `ahead` conversations were read
/// already: the page holding the last of them, so that at least one of them is seen and the
/// boundary can be checked. `None` when nothing can be skipped or the page lies past `cap`.
pub(crate) fn first_page(ahead: u64, page_size: u32, cap: u64) -> Option<u32> {
    if ahead <= page_size as u64 {
        return None;
    }
    let page = (ahead - 1) / page_size as u64 + 1;
    (page * page_size as u64 <= cap).then_some(page as u32)
}

/// The check of one skip: the position (from 0) where the first new conversation must be.
#[derive(Debug)]
pub(crate) struct SkipCheck {
    boundary: u64,
    from: DateTime<Utc>,
    confirmed: bool,
}

/// What a page says of a skip.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Every position before the boundary held a conversation already read, and the one at
    /// it a new one (or the results end there).
    Confirmed,
    /// Not decided yet: the boundary lies on a later page.
    Pending,
    /// The skipped pages may hold something unread: read the piece from its first page.
    Mismatch,
}

impl SkipCheck {
    /// A skip past `ahead` conversations read before `from`.
    pub(crate) fn new(ahead: u64, from: DateTime<Utc>) -> Self {
        Self {
            boundary: ahead,
            from,
            confirmed: false,
        }
    }

    /// Checks a page whose first conversation is at position `first`; `last_page` when the
    /// page is short (the results end on it). Call before noting the page's conversations.
    pub(crate) fn page(
        &mut self,
        first: u64,
        page: &[AnalyticsConversation],
        last_page: bool,
        carried: &Carried,
    ) -> Verdict {
        if self.confirmed {
            return Verdict::Confirmed;
        }
        for (i, c) in page.iter().enumerate() {
            let pos = first + i as u64;
            let start = parse_time(c.conversation_start.as_deref());
            if pos < self.boundary {
                let earlier = start.is_some_and(|s| s < self.from);
                if !earlier || !carried.is_ahead(&c.conversation_id, self.from) {
                    return Verdict::Mismatch;
                }
            } else {
                // The first position past the skipped ones: a conversation that started at
                // or after `from`, else the service holds more earlier ones than were read.
                if start.is_none_or(|s| s < self.from) {
                    return Verdict::Mismatch;
                }
                self.confirmed = true;
                return Verdict::Confirmed;
            }
        }
        if last_page {
            if first + page.len() as u64 == self.boundary {
                self.confirmed = true;
                return Verdict::Confirmed;
            }
            return Verdict::Mismatch;
        }
        Verdict::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn conv(id: &str, start: &str, end: Option<&str>) -> AnalyticsConversation {
        serde_json::from_value(serde_json::json!({
            "conversationId": id,
            "conversationStart": start,
            "conversationEnd": end,
        }))
        .unwrap()
    }

    fn carried(convs: &[AnalyticsConversation]) -> Carried {
        let mut c = Carried::default();
        for x in convs {
            c.note(x, parse_time(x.conversation_start.as_deref()).unwrap());
        }
        c
    }

    #[test]
    fn counts_what_is_still_going_on_at_from_and_started_that_day() {
        let from = t("2026-11-02T10:00:00Z");
        let mut c = carried(&[
            conv(
                "ended-before",
                "2026-11-02T09:00:00Z",
                Some("2026-11-02T09:59:59Z"),
            ),
            conv(
                "ends-exactly",
                "2026-11-02T09:50:00Z",
                Some("2026-11-02T10:00:00Z"),
            ),
            conv(
                "going-on",
                "2026-11-02T09:55:00Z",
                Some("2026-11-02T10:05:00Z"),
            ),
            conv("open", "2026-11-02T09:58:00Z", None),
            conv("yesterday", "2026-11-01T23:00:00Z", None),
            conv(
                "at-from",
                "2026-11-02T10:00:00Z",
                Some("2026-11-02T10:01:00Z"),
            ),
        ]);
        assert_eq!(c.ahead_of(from), 2, "going-on and open");
        assert!(c.is_ahead("open", from));
        assert!(!c.is_ahead("at-from", from), "not before from");
        assert!(!c.is_ahead("ended-before", from), "forgotten");
        assert!(
            !c.is_ahead("yesterday", from),
            "an earlier day's start is not returned"
        );
    }

    #[test]
    fn skips_to_the_page_of_the_last_conversation_read() {
        assert_eq!(first_page(0, 100, 10_000), None);
        assert_eq!(first_page(100, 100, 10_000), None, "page 1 holds them all");
        assert_eq!(first_page(101, 100, 10_000), Some(2));
        assert_eq!(
            first_page(200, 100, 10_000),
            Some(2),
            "its last position is checked"
        );
        assert_eq!(first_page(201, 100, 10_000), Some(3));
        assert_eq!(first_page(10_000, 100, 10_000), Some(100));
        assert_eq!(first_page(10_001, 100, 10_000), None, "past the cap");
    }

    fn setup() -> (DateTime<Utc>, Carried, Vec<AnalyticsConversation>) {
        let from = t("2026-11-02T10:00:00Z");
        let old: Vec<_> = (0..3)
            .map(|i| conv(&format!("old{i}"), &format!("2026-11-02T09:5{i}:00Z"), None))
            .collect();
        (from, carried(&old), old)
    }

    #[test]
    fn confirms_a_boundary_where_the_count_says() {
        let (from, c, old) = setup();
        let new = conv("new", "2026-11-02T10:00:01Z", None);
        // Three read before from; pages of two: page 2 holds position 2 (old2) and 3 (new).
        let mut check = SkipCheck::new(3, from);
        let page = vec![old[2].clone(), new.clone()];
        assert_eq!(check.page(2, &page, false, &c), Verdict::Confirmed);
        // The boundary on the next page.
        let mut check = SkipCheck::new(3, from);
        assert_eq!(check.page(1, &old[1..3], false, &c), Verdict::Pending);
        assert_eq!(check.page(3, &[new], false, &c), Verdict::Confirmed);
        // The results end exactly at the boundary.
        let mut check = SkipCheck::new(3, from);
        assert_eq!(check.page(2, &old[2..3], true, &c), Verdict::Confirmed);
    }

    #[test]
    fn any_other_answer_is_a_mismatch() {
        let (from, c, old) = setup();
        let new = conv("new", "2026-11-02T10:00:01Z", None);
        let late = conv("late", "2026-11-02T09:59:00Z", None);
        // The service holds one earlier conversation more than was read (late data).
        let mut check = SkipCheck::new(3, from);
        assert_eq!(
            check.page(2, &[old[2].clone(), late.clone()], false, &c),
            Verdict::Mismatch
        );
        // One less: a new conversation where an earlier one was expected.
        let mut check = SkipCheck::new(3, from);
        assert_eq!(
            check.page(2, &[new.clone(), new.clone()], false, &c),
            Verdict::Mismatch
        );
        // An earlier conversation that was never read, before the boundary.
        let mut check = SkipCheck::new(3, from);
        assert_eq!(check.page(2, &[late, new], false, &c), Verdict::Mismatch);
        // The results end before the boundary.
        let mut check = SkipCheck::new(3, from);
        assert_eq!(check.page(2, &[], true, &c), Verdict::Mismatch);
        // An unreadable start.
        let mut check = SkipCheck::new(3, from);
        let odd = conv("old2", "yesterday", None);
        assert_eq!(check.page(2, &[odd], false, &c), Verdict::Mismatch);
    }
}
