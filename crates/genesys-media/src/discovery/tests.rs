//! Discovery's collector, interval splitting and parsing, without a server.

use super::*;

fn finished(id: &str, start: &str, end: &str) -> AnalyticsConversation {
    serde_json::from_value(serde_json::json!({
        "conversationId": id, "conversationStart": start, "conversationEnd": end,
    }))
    .unwrap()
}

/// What the collector hands on for `page` with `wait`, the query ending at `end`.
async fn last_batch(wait: Option<i64>, page: Vec<AnalyticsConversation>) -> Vec<Work> {
    let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
    let mut q = DiscoveryQuery::interval(t("2026-11-02T00:00:00Z"), t("2026-11-02T12:00:00Z"));
    q.partial_batch_wait = wait.map(ChronoDuration::minutes);
    let (tx, rx) = mpsc::channel(16);
    let mut c = Collector::new(&q, None, tx);
    assert!(c.absorb(page).await);
    c.finish().await;
    rx.collect().await
}

#[tokio::test]
async fn a_young_partial_batch_waits_and_says_where_to_list_it_again() {
    let page = || {
        vec![
            finished("same-day", "2026-11-02T11:30:00Z", "2026-11-02T11:50:00Z"),
            finished(
                "over-midnight",
                "2026-11-01T23:50:00Z",
                "2026-11-02T00:10:00Z",
            ),
        ]
    };
    // Without a wait, or once its oldest conversation ended long enough ago: resolved now.
    for wait in [None, Some(30)] {
        let out = last_batch(wait, page()).await;
        assert!(
            matches!(&out[..], [Work::Conversations(c)] if c.len() == 2),
            "{wait:?}"
        );
    }
    // The oldest ended 11 h 50 min before the query's end: a 12 h wait defers both.
    let out = last_batch(Some(12 * 60), page()).await;
    let since: Vec<_> = out
        .iter()
        .map(|w| match w {
            Work::Item(item) => match item.as_ref() {
                Discovered::Pending(p) => {
                    assert!(p.reason.contains("2 of 100"), "{}", p.reason);
                    (p.conversation_id.clone(), p.since.unwrap().to_rfc3339())
                }
                other => panic!("{other:?}"),
            },
            Work::Conversations(c) => panic!("resolved: {c:?}"),
        })
        .collect();
    assert_eq!(
        since,
        [
            // Listed again by a window reaching back to its end.
            (
                "same-day".to_string(),
                "2026-11-02T11:50:00+00:00".to_string()
            ),
            // Started the day before: the window must touch that day, so its start.
            (
                "over-midnight".to_string(),
                "2026-11-01T23:50:00+00:00".to_string()
            ),
        ]
    );
}

/// Conversations an earlier query deferred are resolved with this query's although its
/// interval does not list them, and once when it does.
#[tokio::test]
async fn waiting_conversations_are_carried_into_the_next_batch() {
    let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
    let mut q = DiscoveryQuery::interval(t("2026-11-02T12:00:00Z"), t("2026-11-02T12:05:00Z"));
    q.waiting = vec![
        finished("early", "2026-11-02T11:00:00Z", "2026-11-02T11:10:00Z"),
        finished("again", "2026-11-02T11:58:00Z", "2026-11-02T12:01:00Z"),
    ];
    let (tx, rx) = mpsc::channel(16);
    let mut c = Collector::new(&q, None, tx);
    assert!(c.carry_in().await);
    assert!(
        c.absorb(vec![
            finished("again", "2026-11-02T11:58:00Z", "2026-11-02T12:01:00Z"),
            finished("new", "2026-11-02T12:00:00Z", "2026-11-02T12:03:00Z"),
        ])
        .await
    );
    c.finish().await;
    let out: Vec<Work> = rx.collect().await;
    let ids: Vec<&str> = match &out[..] {
        [Work::Conversations(c)] => c.iter().map(|c| c.conversation_id.as_str()).collect(),
        other => panic!("{}", other.len()),
    };
    assert_eq!(ids, ["early", "again", "new"]);
}

#[test]
fn seen_ids_keep_uuids_compactly_and_everything_else_as_text() {
    let mut seen = SeenIds::default();
    let a = "5fc3ffbf-2745-4509-940f-9dc015cb0c09";
    assert_eq!(uuid_bits(a), Some(0x5fc3ffbf_2745_4509_940f_9dc015cb0c09));
    assert!(seen.insert(a));
    assert!(!seen.insert(a));
    // Not canonical: kept as text, so never confused with the lower-case id.
    assert_eq!(uuid_bits(&a.to_uppercase()), None);
    assert!(seen.insert(&a.to_uppercase()));
    for other in [
        "c1",
        "5fc3ffbf+2745-4509-940f-9dc015cb0c09",
        "5fc3ffbf-2745-4509-940f-9dc015cb0c0g",
    ] {
        assert_eq!(uuid_bits(other), None, "{other}");
        assert!(seen.insert(other));
        assert!(!seen.insert(other));
    }
    assert_eq!((seen.uuids.len(), seen.other.len()), (1, 4));
}

#[test]
fn intervals_split_at_seven_days() {
    let s = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let parts = split_interval(s, s + ChronoDuration::days(17));
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[0].1 - parts[0].0, ChronoDuration::days(7));
    assert_eq!(parts[2].1, s + ChronoDuration::days(17));
    assert!(parts.windows(2).all(|w| w[0].1 == w[1].0));
    assert!(split_interval(s, s).is_empty());
}

#[test]
fn media_types_and_ids() {
    assert_eq!(media_type_of(Some("audio/ogg"), None), "audio");
    assert_eq!(media_type_of(Some("video/webm"), Some("voice")), "screen");
    assert_eq!(media_type_of(Some("message/rfc822"), None), "email");
    assert_eq!(media_type_of(None, Some("voice")), "audio");
    assert!(path_segment("3b0f-aa_1").is_ok());
    for bad in ["", "..", "a/b", "a\nb", "a?b", "%2e%2e"] {
        assert!(path_segment(bad).is_err(), "{bad:?}");
    }
}

fn conv(id: &str, start: &str, end: Option<&str>) -> AnalyticsConversation {
    AnalyticsConversation {
        conversation_id: id.into(),
        conversation_start: Some(start.into()),
        conversation_end: end.map(str::to_string),
        ..AnalyticsConversation::default()
    }
}

#[tokio::test]
async fn the_collector_keeps_activity_dedupes_and_reports_open_conversations() {
    let t = |s: &str| parse_time(Some(s)).unwrap();
    let q = DiscoveryQuery::interval(t("2026-11-02T00:00:00Z"), t("2026-11-03T00:00:00Z"));
    let (tx, mut rx) = mpsc::channel(16);
    let mut c = Collector::new(&q, None, tx);
    let page = vec![
        // Started the day before, ended inside: its recordings belong to the window.
        conv(
            "early",
            "2026-11-01T23:50:00Z",
            Some("2026-11-02T00:10:00Z"),
        ),
        // Ended before the window: not the window's.
        conv(
            "before",
            "2026-11-01T10:00:00Z",
            Some("2026-11-01T10:05:00Z"),
        ),
        conv(
            "inside",
            "2026-11-02T10:00:00Z",
            Some("2026-11-02T10:05:00Z"),
        ),
        conv(
            "inside",
            "2026-11-02T10:00:00Z",
            Some("2026-11-02T10:05:00Z"),
        ),
        conv("open", "2026-11-02T23:00:00Z", None),
        conv(
            "after",
            "2026-11-03T00:00:00Z",
            Some("2026-11-03T00:05:00Z"),
        ),
    ];
    assert!(c.absorb(page).await);
    c.finish().await;
    let mut finished = Vec::new();
    let mut pending = Vec::new();
    while let Ok(w) = rx.try_recv() {
        match w {
            Work::Conversations(cs) => finished.extend(cs.into_iter().map(|c| c.conversation_id)),
            Work::Item(item) => match *item {
                Discovered::Pending(p) => pending.push(p),
                other => panic!("unexpected {other:?}"),
            },
        }
    }
    assert_eq!(finished, ["early", "inside"]);
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].conversation_id, "open");
    assert_eq!(pending[0].since, Some(t("2026-11-02T23:00:00Z")));
}
