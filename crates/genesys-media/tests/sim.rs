//! The client against the in-process Genesys Cloud simulator.

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt;
use genesys_media::{
    ClientConfig, Discovered, DiscoveredRecording, DiscoveryQuery, Environment, Error,
    GenesysClient, MediaAvailability, MediaPolicy, SourceMode,
};
use genesys_sim::{Fault, FaultSpec, SimConfig, SimHandle};
use http_body_util::BodyExt;
use test_support::{sim_client, start_sim as sim};

fn client(sim: &SimHandle, f: impl FnOnce(&mut ClientConfig)) -> GenesysClient {
    sim_client(sim, |cfg| {
        cfg.poll_initial = Duration::from_millis(250);
        cfg.retry.base_delay = Duration::from_millis(20);
        f(cfg);
    })
}

fn whole(sim: &SimHandle) -> DiscoveryQuery {
    DiscoveryQuery::interval(sim.config().start, sim.config().end())
}

async fn collect_items(c: &GenesysClient, q: DiscoveryQuery) -> Vec<Discovered> {
    c.discover(q)
        .map(|r| r.expect("discovery item"))
        .collect()
        .await
}

/// The recordings discovered; anything else (pending, not discoverable) fails the test.
async fn collect(c: &GenesysClient, q: DiscoveryQuery) -> Vec<DiscoveredRecording> {
    collect_items(c, q)
        .await
        .into_iter()
        .map(|item| match item {
            Discovered::Recording(r) => r,
            other => panic!("expected only recordings, got {other:?}"),
        })
        .collect()
}

/// Details-query calls the client made so far.
fn details_queries(c: &GenesysClient) -> u64 {
    c.metrics()
        .snapshot()
        .calls
        .iter()
        .filter(|((e, _), _)| e.contains("details/query"))
        .map(|(_, n)| n)
        .sum()
}

fn ids(v: &[DiscoveredRecording]) -> HashSet<String> {
    v.iter().map(|r| r.recording_id.clone()).collect()
}

#[tokio::test]
async fn discovers_every_recording_once_with_few_api_calls() {
    let s = sim(SimConfig {
        recordings: 1000,
        ..SimConfig::default()
    })
    .await;
    let c = client(&s, |_| {});
    let found = collect(&c, whole(&s)).await;
    assert_eq!(found.len(), 1000, "every recording found");
    assert_eq!(ids(&found).len(), 1000, "no duplicates");
    let expected: HashSet<String> = s
        .dataset()
        .recordings
        .iter()
        .map(|r| r.id.clone())
        .collect();
    assert_eq!(ids(&found), expected);
    for r in &found {
        assert!(matches!(r.media, MediaAvailability::Url(_)));
        assert!(r.start_time.is_some() && r.content_type.is_some());
    }
    let m = c.metrics().snapshot();
    let calls = m.total_calls();
    println!("API calls for 1000 recordings: {calls} ({:?})", m.calls);
    // 25, plus one small query across each of the 7 UTC midnights before the interval
    // (conversations active in it that started on an earlier day).
    assert!(
        calls <= 25 + 7,
        "at most 32 API calls per 1000 recordings, made {calls}"
    );
    assert_eq!(m.token_requests, 1, "one token for the whole run");
    assert_eq!(s.stats().budget_429s, 0);
}

#[tokio::test]
async fn splits_intervals_near_the_result_cap_and_over_seven_days() {
    let s = sim(SimConfig {
        recordings: 300,
        start: chrono::Utc::now() - chrono::Duration::days(12),
        span: Duration::from_secs(10 * 24 * 3600),
        max_query_results: 40,
        ..SimConfig::default()
    })
    .await;
    let c = client(&s, |c| {
        c.max_query_results = 40;
        c.page_size = 25;
    });
    let found = collect(&c, whole(&s)).await;
    assert_eq!(found.len(), 300);
    assert_eq!(ids(&found).len(), 300, "split intervals do not duplicate");
    let queries = details_queries(&c);
    assert!(
        queries > 300 / 25,
        "the interval was split ({queries} queries)"
    );
}

#[tokio::test]
async fn filters_by_media_type_and_direction() {
    let s = sim(SimConfig {
        recordings: 200,
        ..SimConfig::default()
    })
    .await;
    let c = client(&s, |_| {});
    let mut q = whole(&s);
    q.media_types = vec!["screen".into()];
    let screens = collect(&c, q).await;
    let expected = s
        .dataset()
        .recordings
        .iter()
        .filter(|r| r.media == "screen")
        .count();
    assert_eq!(screens.len(), expected);
    assert!(screens.iter().all(|r| r.media_type == "screen"));
    let mut q = whole(&s);
    q.direction = Some("outbound".into());
    let outbound = collect(&c, q).await;
    let expected: usize = s
        .dataset()
        .conversations
        .iter()
        .filter(|c| c.direction == "outbound")
        .map(|c| c.recordings.len())
        .sum();
    assert_eq!(outbound.len(), expected);
}

#[tokio::test]
async fn archived_recordings_are_reported_not_fatal() {
    let s = sim(SimConfig {
        recordings: 20,
        faults: vec![FaultSpec {
            recording: 3,
            fault: Fault::Archived,
            times: None,
        }],
        ..SimConfig::default()
    })
    .await;
    let c = client(&s, |_| {});
    let found = collect(&c, whole(&s)).await;
    assert_eq!(found.len(), 20);
    let archived_id = &s.dataset().recordings[3].id;
    let r = found
        .iter()
        .find(|r| &r.recording_id == archived_id)
        .unwrap();
    match &r.media {
        MediaAvailability::Unavailable(msg) => assert!(msg.contains("archived"), "{msg}"),
        other => panic!("expected unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn reauthenticates_once_on_401_and_refreshes_expiring_tokens() {
    let s = sim(SimConfig {
        recordings: 30,
        revoke_tokens_after: Some(2),
        ..SimConfig::default()
    })
    .await;
    let c = client(&s, |c| c.page_size = 5);
    let found = collect(&c, whole(&s)).await;
    assert_eq!(found.len(), 30);
    let m = c.metrics().snapshot();
    assert!(
        m.token_requests >= 3,
        "re-authenticated after 401s: {} tokens",
        m.token_requests
    );
    assert!(m.calls.iter().any(|((_, st), _)| *st == 401));

    let s = sim(SimConfig {
        recordings: 5,
        token_ttl: Duration::from_secs(2),
        ..SimConfig::default()
    })
    .await;
    let c = client(&s, |_| {});
    let t1 = c.tokens().token().await.unwrap();
    assert_eq!(c.tokens().token().await.unwrap(), t1, "cached");
    tokio::time::sleep(Duration::from_millis(1700)).await;
    let t2 = c.tokens().token().await.unwrap();
    assert_ne!(t1, t2, "refreshed before expiry");
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.tokens().token().await.unwrap() })
        })
        .collect();
    for h in handles {
        assert_eq!(h.await.unwrap(), t2, "concurrent callers share one token");
    }
    assert_eq!(s.stats().token_requests, 2);
}

#[tokio::test]
async fn bad_credentials_are_a_clear_permanent_error() {
    let s = sim(SimConfig {
        recordings: 1,
        ..SimConfig::default()
    })
    .await;
    let env = Environment::from_base_url(s.base_url()).unwrap();
    let c = GenesysClient::new(ClientConfig::new(env, "sim-client", "wrong-secret-value")).unwrap();
    let err = c.tokens().token().await.unwrap_err();
    assert!(matches!(err, Error::Auth { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("GENESYS_CLIENT_SECRET"), "{msg}");
    assert!(!msg.contains("wrong-secret-value"), "secret leaked: {msg}");
    assert!(!format!("{c:?}").contains("wrong-secret-value"));
}

#[tokio::test]
async fn waits_retry_after_on_injected_429s_and_5xx() {
    let mut cfg = SimConfig {
        recordings: 60,
        ..SimConfig::default()
    };
    cfg.rates.api_429 = 0.15;
    cfg.rates.api_5xx = 0.15;
    let s = sim(cfg).await;
    let c = client(&s, |c| c.page_size = 10);
    let t = tokio::time::Instant::now();
    let found = collect(&c, whole(&s)).await;
    assert_eq!(found.len(), 60);
    let m = c.metrics().snapshot();
    assert!(m.throttled() > 0, "429s were injected: {:?}", m.calls);
    assert!(m.calls.iter().any(|((_, st), _)| *st == 503));
    assert!(
        t.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured"
    );
}

/// A per-recording (WAV) client polling transcodes from 50 ms.
fn per_recording_client(s: &SimHandle) -> GenesysClient {
    client(s, |c| {
        c.source = SourceMode::PerRecording {
            format_id: "WAV".into(),
        };
        c.poll_initial = Duration::from_millis(50);
    })
}

/// A transcode that takes 800 ms: the 202 says how long is left (`estimatedTranscodeTimeMs`)
/// and the client waits that long instead of polling at 50, 150, 350 and 750 ms.
#[tokio::test]
async fn per_recording_mode_waits_the_estimated_transcode_time() {
    let s = sim(SimConfig {
        recordings: 8,
        transcode_polls: 0,
        transcode_time: Duration::from_millis(800),
        ..SimConfig::default()
    })
    .await;
    let c = per_recording_client(&s);
    let found = collect(&c, whole(&s)).await;
    assert_eq!(found.len(), 8);
    let gets: u64 = c
        .metrics()
        .snapshot()
        .calls
        .iter()
        .filter(|((e, _), _)| {
            e.starts_with("GET /api/v2/conversations/") && e.contains("/recordings/")
        })
        .map(|(_, n)| n)
        .sum();
    // One GET answered 202 and one after the estimate, per recording (a third at most when
    // the wait ends a hair early).
    assert!(gets <= 8 * 2 + 4, "{gets} GETs for 8 recordings");
}

#[tokio::test]
async fn per_recording_mode_polls_202_and_gives_sizes() {
    let s = sim(SimConfig {
        recordings: 6,
        transcode_polls: 2,
        ..SimConfig::default()
    })
    .await;
    let c = per_recording_client(&s);
    let found = collect(&c, whole(&s)).await;
    assert_eq!(found.len(), 6);
    for r in &found {
        let sr = s.dataset().recording(&r.recording_id).unwrap();
        assert_eq!(r.expected_size, Some(sr.size));
        assert!(matches!(r.media, MediaAvailability::Url(_)));
    }
    let polled = c
        .metrics()
        .snapshot()
        .calls
        .iter()
        .filter(|((_, st), _)| *st == 202)
        .map(|(_, n)| n)
        .sum::<u64>();
    assert_eq!(polled, 12, "two 202s per recording");
}

#[tokio::test]
async fn compat_listing_carries_md5_and_refreshes_by_id() {
    let s = sim(SimConfig {
        recordings: 130,
        ..SimConfig::default()
    })
    .await;
    let c = client(&s, |c| c.source = SourceMode::CompatListing);
    let found = collect(&c, whole(&s)).await;
    assert_eq!(found.len(), 130);
    for r in &found {
        let idx = s.dataset().recording(&r.recording_id).unwrap().index;
        assert_eq!(
            r.expected_md5.as_deref(),
            Some(hex(&s.expected_md5(idx)).as_str())
        );
    }
    let fresh = c.refresh_media(&found[0]).await.unwrap();
    assert!(matches!(fresh, MediaAvailability::Url(_)));
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[tokio::test]
async fn expired_media_url_gives_403_and_a_refreshed_url_works() {
    let s = sim(SimConfig {
        recordings: 3,
        faults: vec![FaultSpec {
            recording: 1,
            fault: Fault::ExpiredUrl,
            times: Some(1),
        }],
        ..SimConfig::default()
    })
    .await;
    let c = client(&s, |_| {});
    let found = collect(&c, whole(&s)).await;
    let rec = found
        .iter()
        .find(|r| r.recording_id == s.dataset().recordings[1].id)
        .unwrap();
    let MediaAvailability::Url(url) = &rec.media else {
        panic!()
    };
    let err = c.open_media(url).await.unwrap_err();
    assert_eq!(err.status(), Some(403));
    assert!(!err.to_string().contains("X-Signature"), "{err}");
    let MediaAvailability::Url(fresh) = c.refresh_media(rec).await.unwrap() else {
        panic!()
    };
    let resp = c.open_media(&fresh).await.unwrap();
    let size = s.dataset().recordings[1].size;
    assert_eq!(resp.content_length, Some(size));
    let body = resp.body.collect().await.unwrap().to_bytes();
    assert_eq!(body.len() as u64, size);
    let mut tampered = fresh.expose().to_string();
    tampered.push('0');
    let tampered = genesys_media::MediaUrl::parse(&tampered).unwrap();
    assert_eq!(
        c.open_media(&tampered).await.unwrap_err().status(),
        Some(403)
    );
    let strict = client(&s, |c| c.media_policy = MediaPolicy::default());
    assert!(
        matches!(strict.open_media(&fresh).await, Err(Error::Refused(_))),
        "loopback refused by default"
    );
}

/// The simulator enforces a small budget; the client learns it from `inin-ratelimit-allowed`
/// and paces below it, so no 429 comes from the budget. Takes about a minute of real time.
#[tokio::test]
async fn pacing_never_exceeds_the_per_token_budget() {
    let s = sim(SimConfig {
        recordings: 10,
        rate_limit_per_minute: 12,
        ..SimConfig::default()
    })
    .await;
    let c = client(&s, |_| {});
    for _ in 0..16 {
        let _: (_, serde_json::Value) = c
            .call(
                http::Method::GET,
                &format!(
                    "/api/v2/conversations/{}/recordingmetadata",
                    s.dataset().conversations[0].id
                ),
                None,
            )
            .await
            .unwrap();
    }
    assert_eq!(s.stats().budget_429s, 0, "pacing kept below the budget");
    assert!(
        c.metrics().snapshot().waited_ms >= 30_000,
        "the client waited for the window"
    );
}

#[tokio::test]
async fn history_uses_async_analytics_jobs_with_cursor_paging() {
    let s = sim(SimConfig {
        recordings: 2500,
        start: chrono::Utc::now() - chrono::Duration::days(23),
        span: Duration::from_secs(20 * 24 * 3600),
        ..SimConfig::default()
    })
    .await;
    let c = client(&s, |c| c.analytics = genesys_media::AnalyticsMode::Jobs);
    let found = collect(&c, whole(&s)).await;
    assert_eq!(found.len(), 2500);
    assert_eq!(ids(&found).len(), 2500);
    let m = c.metrics().snapshot();
    let pages = m
        .calls
        .iter()
        .filter(|((e, _), _)| e.ends_with("/results"))
        .map(|(_, n)| n)
        .sum::<u64>();
    assert!(
        pages >= 3,
        "cursor paging over 1000-conversation pages: {pages}"
    );
    // The data lake lags a day: the job covers the history up to its availability date and
    // one synchronous query page the rest (from a day before that date, to catch
    // conversations still going on then).
    let queries: u64 = m
        .calls
        .iter()
        .filter(|((e, _), _)| e.contains("details/query"))
        .map(|(_, n)| n)
        .sum();
    assert!(queries <= 2, "the query reads only the tail: {queries}");
    assert!(
        m.calls
            .keys()
            .any(|(e, _)| e.ends_with("jobs/availability")),
        "{:?}",
        m.calls
    );
}

#[tokio::test]
async fn filters_by_queue_and_division_server_side() {
    let s = sim(SimConfig {
        recordings: 150,
        ..SimConfig::default()
    })
    .await;
    let c = client(&s, |_| {});
    let ds = s.dataset();
    let queue = ds.conversations[0].queue_id.clone();
    let division = ds.conversations[0].division_id.clone();
    let mut q = whole(&s);
    q.queue_ids = vec![queue.clone()];
    q.division_ids = vec![division.clone()];
    let found = collect(&c, q).await;
    let expected: HashSet<String> = ds
        .conversations
        .iter()
        .filter(|c| c.queue_id == queue && c.division_id == division)
        .flat_map(|c| c.recordings.iter().map(|&i| ds.recordings[i].id.clone()))
        .collect();
    assert!(!expected.is_empty() && expected.len() < 150);
    assert_eq!(ids(&found), expected);
}

#[tokio::test]
async fn per_recording_mode_reports_archived_recordings_without_failing() {
    let s = sim(SimConfig {
        recordings: 5,
        transcode_polls: 0,
        faults: vec![FaultSpec {
            recording: 2,
            fault: Fault::Archived,
            times: None,
        }],
        ..SimConfig::default()
    })
    .await;
    let c = client(&s, |c| {
        c.source = SourceMode::PerRecording {
            format_id: "MP3".into(),
        }
    });
    let found = collect(&c, whole(&s)).await;
    assert_eq!(found.len(), 5);
    let archived = found
        .iter()
        .find(|r| r.recording_id == s.dataset().recordings[2].id)
        .unwrap();
    match &archived.media {
        MediaAvailability::Unavailable(m) => assert!(m.contains("ARCHIVED"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        found
            .iter()
            .filter(|r| matches!(r.media, MediaAvailability::Url(_)))
            .count(),
        4
    );
}

/// A dense hour: 3,000 recordings (about 2,800 conversations of up to half an hour) starting
/// two hours into a UTC day, so that every query touches the same day.
fn dense_hour(unordered: bool) -> SimConfig {
    let day = chrono::Utc::now() - chrono::Duration::days(3);
    let day = day - chrono::Duration::seconds(day.timestamp() % 86_400);
    SimConfig {
        recordings: 3000,
        start: day + chrono::Duration::hours(2),
        span: Duration::from_secs(3600),
        max_query_results: 1500,
        unordered_query_results: unordered,
        ..SimConfig::default()
    }
}

fn dense_client(s: &SimHandle) -> GenesysClient {
    client(s, |c| {
        c.max_query_results = 1500;
        c.page_size = 100;
    })
}

/// The conversation ids `list_known` listed, and the details-query calls it took.
async fn list_ids(c: &GenesysClient, q: DiscoveryQuery) -> (Vec<String>, u64) {
    let mut ids = Vec::new();
    let mut listing = Box::pin(c.list_known(q, None));
    while let Some(item) = listing.next().await {
        match item.expect("listing") {
            genesys_media::Listed::Conversations(cs) => {
                ids.extend(cs.into_iter().map(|c| c.conversation_id))
            }
            genesys_media::Listed::Item(other) => panic!("only finished conversations: {other:?}"),
        }
    }
    let queries = details_queries(c);
    (ids, queries)
}

#[tokio::test]
async fn a_dense_interval_past_the_cap_is_read_about_once() {
    let s = sim(dense_hour(false)).await;
    let c = dense_client(&s);
    let (ids, queries) = list_ids(&c, whole(&s)).await;
    let all: HashSet<&String> = s.dataset().conversations.iter().map(|c| &c.id).collect();
    assert_eq!(ids.len(), all.len(), "every conversation once");
    assert_eq!(ids.iter().collect::<HashSet<_>>(), all);
    // Hundreds of conversations are going on at any moment: each query past the cap starts
    // with them. Read again, they would double the pages (the halving this replaced took 70
    // queries here); skipped, the pages are about the conversations over the page size.
    let floor = all.len().div_ceil(100) as u64;
    assert!(
        queries <= floor * 5 / 4,
        "{queries} details queries for {} conversations (floor {floor})",
        all.len()
    );
}

#[tokio::test]
async fn data_landing_between_pages_is_not_skipped() {
    let cfg = dense_hour(false);
    let s = sim(cfg.clone()).await;
    // The first query reads the first 1,500 conversations by start; the next goes on from the
    // last one's start. Hide the earliest conversation still going on then, and reveal it as
    // that next query arrives: the service then holds one more earlier conversation than the
    // client read, at the very first position it would skip.
    let mut by_start: Vec<_> = s.dataset().conversations.iter().collect();
    by_start.sort_by_key(|c| c.start);
    let late = by_start
        .iter()
        .find(|c| c.end > by_start[1500].start)
        .expect("a long conversation");
    assert!(late.start < by_start[1500].start);
    s.hide_conversations([late.id.clone()]);
    s.reveal_at_details_query(16, [late.id.clone()]);
    let c = dense_client(&s);
    let (ids, _) = list_ids(&c, whole(&s)).await;
    assert!(ids.contains(&late.id), "the late conversation is listed");
    assert_eq!(ids.len(), s.dataset().conversations.len());
}

#[tokio::test]
async fn answers_out_of_start_order_are_split_instead() {
    let s = sim(dense_hour(true)).await;
    let c = dense_client(&s);
    let (ids, queries) = list_ids(&c, whole(&s)).await;
    let all: HashSet<&String> = s.dataset().conversations.iter().map(|c| &c.id).collect();
    assert_eq!(
        ids.len(),
        all.len(),
        "every conversation once ({queries} queries)"
    );
    assert_eq!(ids.iter().collect::<HashSet<_>>(), all);
}
