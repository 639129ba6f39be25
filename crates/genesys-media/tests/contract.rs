//! Discovery against a simulator as strict as the published contract
//! (`shared/genesys-api.md` section 8): the data lake lags, the details query reaches 35 days
//! back and returns conversations by start day, jobs by activity, conversations still going
//! on have no end, recordings upload after their conversation, a recording may have several
//! files, the login host has bad moments and `Retry-After` may be long.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use genesys_media::{
    AnalyticsMode, ClientConfig, Discovered, DiscoveredRecording, DiscoveryQuery, Error,
    GenesysClient, MediaAvailability, SourceMode,
};
use genesys_sim::{Fault, FaultSpec, SimConfig, SimHandle};
use http_body_util::BodyExt;
use test_support::{sim_client, start_sim as sim};

fn client(sim: &SimHandle, f: impl FnOnce(&mut ClientConfig)) -> GenesysClient {
    sim_client(sim, |cfg| {
        cfg.poll_initial = Duration::from_millis(100);
        cfg.retry.base_delay = Duration::from_millis(20);
        f(cfg);
    })
}

async fn items(c: &GenesysClient, q: DiscoveryQuery) -> Vec<Discovered> {
    c.discover(q)
        .map(|r| r.expect("discovery item"))
        .collect()
        .await
}

fn recordings(items: &[Discovered]) -> Vec<&DiscoveredRecording> {
    items.iter().filter_map(Discovered::recording).collect()
}

fn others(items: &[Discovered]) -> Vec<&Discovered> {
    items.iter().filter(|i| i.recording().is_none()).collect()
}

fn all_ids(s: &SimHandle) -> HashSet<String> {
    s.dataset()
        .recordings
        .iter()
        .map(|r| r.id.clone())
        .collect()
}

fn calls_to(c: &GenesysClient, needle: &str) -> u64 {
    c.metrics()
        .snapshot()
        .calls
        .iter()
        .filter(|((e, _), _)| e.contains(needle))
        .map(|(_, n)| n)
        .sum()
}

/// A 45-day backfill reaching the last hour, with the data lake a day behind: jobs serve the
/// history, the details query the newest day. One job over everything would miss that day.
#[tokio::test]
async fn a_backfill_reaching_now_is_split_at_the_data_lake_availability_date() {
    let now = Utc::now();
    let s = sim(SimConfig {
        recordings: 600,
        start: now - chrono::Duration::days(45),
        // The newest conversations start two hours ago and end by an hour ago.
        span: Duration::from_secs(45 * 24 * 3600 - 2 * 3600),
        data_lake_lag: Duration::from_secs(24 * 3600),
        ..SimConfig::default()
    })
    .await;
    let newest_day = s
        .dataset()
        .recordings
        .iter()
        .filter(|r| r.start > now - chrono::Duration::days(1))
        .count();
    assert!(
        newest_day > 0,
        "the test needs recordings in the newest day"
    );
    let c = client(&s, |_| {});
    // Up to a minute ago: the source's `Date` has one-second resolution, so the last second
    // before this machine's `now` may still be the source's future (and is reported so).
    let found = items(
        &c,
        DiscoveryQuery::interval(
            now - chrono::Duration::days(45),
            now - chrono::Duration::minutes(1),
        ),
    )
    .await;
    assert!(others(&found).is_empty(), "{:?}", others(&found));
    let ids: HashSet<String> = recordings(&found)
        .iter()
        .map(|r| r.recording_id.clone())
        .collect();
    assert_eq!(ids, all_ids(&s), "every recording, the newest day's too");
    assert_eq!(recordings(&found).len(), 600, "each once");
    assert_eq!(calls_to(&c, "jobs/availability"), 1);
    assert!(calls_to(&c, "details/jobs") >= 3, "a job for the history");
    assert!(calls_to(&c, "details/query") >= 1, "the query for the rest");
}

/// The simulator refuses details queries starting more than 35 days back, as the real one
/// does; in query-only mode that part is reported as not discoverable, never skipped.
#[tokio::test]
async fn history_beyond_the_query_reach_is_reported_not_discoverable() {
    let now = Utc::now();
    let s = sim(SimConfig {
        recordings: 40,
        start: now - chrono::Duration::days(40),
        span: Duration::from_secs(3 * 24 * 3600),
        ..SimConfig::default()
    })
    .await;
    let c = client(&s, |_| {});
    let q = DiscoveryQuery::interval(
        now - chrono::Duration::days(40),
        now - chrono::Duration::days(36),
    );
    let refused = c
        .details_query(&q, q.start, q.end, 100, 1)
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(400), "{refused}");
    let c = client(&s, |c| c.analytics = AnalyticsMode::Query);
    let found = items(&c, q.clone()).await;
    let gaps: Vec<_> = found
        .iter()
        .filter_map(|i| match i {
            Discovered::NotDiscoverable(g) => Some(g),
            _ => None,
        })
        .collect();
    assert_eq!(gaps.len(), 1, "{found:?}");
    assert_eq!(gaps[0].start, q.start);
    assert!(gaps[0].reason.contains("35-day"), "{}", gaps[0].reason);
    // With jobs allowed (the default), the same interval is listed completely.
    let c = client(&s, |_| {});
    let found = items(&c, q).await;
    assert!(others(&found).is_empty(), "{:?}", others(&found));
    let expected = s
        .dataset()
        .conversations
        .iter()
        .filter(|cv| cv.start < now - chrono::Duration::days(36))
        .map(|cv| cv.recordings.len())
        .sum::<usize>();
    assert_eq!(recordings(&found).len(), expected);
}

/// Screen recordings and chat and email transcripts are found although only voice sessions
/// carry the `recording` flag.
#[tokio::test]
async fn every_media_type_is_found_without_the_audio_recording_flag() {
    let s = sim(SimConfig {
        recordings: 300,
        ..SimConfig::default()
    })
    .await;
    let c = client(&s, |_| {});
    let found = items(
        &c,
        DiscoveryQuery::interval(s.config().start, s.config().end()),
    )
    .await;
    let by_type: HashMap<String, usize> =
        recordings(&found).iter().fold(HashMap::new(), |mut m, r| {
            *m.entry(r.media_type.clone()).or_default() += 1;
            m
        });
    for t in ["audio", "screen", "chat", "email"] {
        assert!(by_type.get(t).copied().unwrap_or(0) > 0, "{t}: {by_type:?}");
    }
    let ids: HashSet<String> = recordings(&found)
        .iter()
        .map(|r| r.recording_id.clone())
        .collect();
    assert_eq!(ids, all_ids(&s));
}

/// Conversations still going on are pending (not resolved, not "unavailable"); once they end
/// their recordings are found.
#[tokio::test]
async fn conversations_in_progress_are_pending_until_they_end() {
    let s = sim(SimConfig {
        recordings: 30,
        hold_open: 3,
        ..SimConfig::default()
    })
    .await;
    let open: HashSet<String> = s.open_conversations().into_iter().collect();
    assert_eq!(open.len(), 3);
    let c = client(&s, |_| {});
    let q = DiscoveryQuery::interval(s.config().start, s.config().end());
    let found = items(&c, q.clone()).await;
    let pending: HashSet<String> = found
        .iter()
        .filter_map(|i| match i {
            Discovered::Pending(p) => {
                assert!(p.recording_id.is_none() && p.since.is_some(), "{p:?}");
                Some(p.conversation_id.clone())
            }
            _ => None,
        })
        .collect();
    assert_eq!(pending, open);
    assert!(
        recordings(&found)
            .iter()
            .all(|r| !open.contains(&r.conversation_id)),
        "nothing of an open conversation is reported as a recording (unavailable or not)"
    );
    s.close_all_conversations();
    let found = items(&c, q).await;
    assert!(others(&found).is_empty(), "{:?}", others(&found));
    assert_eq!(recordings(&found).len(), 30);
}

/// A finished conversation whose recordings are still `UPLOADING`: pending in batch mode and
/// per-recording mode, never unavailable.
#[tokio::test]
async fn recordings_still_uploading_are_pending_in_both_source_modes() {
    let now = Utc::now();
    let s = sim(SimConfig {
        recordings: 8,
        start: now - chrono::Duration::hours(2),
        span: Duration::from_secs(1800),
        upload_lag: Duration::from_secs(6 * 3600),
        ..SimConfig::default()
    })
    .await;
    let q = DiscoveryQuery::interval(now - chrono::Duration::hours(3), now);
    for source in [
        SourceMode::Batch,
        SourceMode::PerRecording {
            format_id: "WAV".into(),
        },
    ] {
        let c = client(&s, |c| c.source = source.clone());
        let found = items(&c, q.clone()).await;
        assert!(recordings(&found).is_empty(), "{source:?}: {found:?}");
        let pending: HashSet<String> = found
            .iter()
            .filter_map(|i| match i {
                Discovered::Pending(p) => p.recording_id.clone(),
                _ => None,
            })
            .collect();
        assert_eq!(pending, all_ids(&s), "{source:?}");
    }
}

async fn md5_of(c: &GenesysClient, r: &DiscoveredRecording) -> String {
    let MediaAvailability::Url(u) = &r.media else {
        panic!("no URL for {r:?}")
    };
    let resp = c.open_media(u).await.unwrap();
    let bytes = resp.body.collect().await.unwrap().to_bytes();
    hex::encode(md5::Md5::digest(&bytes))
}

use md5::Digest as _;

/// A recording with two batch results and two `mediaUris` channels: each file is its own
/// item, with its own bytes and a label that stays the same on a refresh.
#[tokio::test]
async fn every_file_of_a_recording_is_an_item_of_its_own() {
    let s = sim(SimConfig {
        recordings: 5,
        faults: vec![FaultSpec {
            recording: 1,
            fault: Fault::TwoFiles,
            times: None,
        }],
        transcode_polls: 0,
        ..SimConfig::default()
    })
    .await;
    let rid = s.dataset().recordings[1].id.clone();
    for (source, labels) in [
        (SourceMode::Batch, ["part1", "part2"]),
        (
            SourceMode::PerRecording {
                format_id: "WAV".into(),
            },
            ["ch0", "ch1"],
        ),
    ] {
        let c = client(&s, |c| c.source = source.clone());
        let found = items(
            &c,
            DiscoveryQuery::interval(s.config().start, s.config().end()),
        )
        .await;
        assert!(others(&found).is_empty(), "{found:?}");
        let recs = recordings(&found);
        assert_eq!(
            recs.len(),
            6,
            "{source:?}: five recordings, one with two files"
        );
        let mut files: Vec<&DiscoveredRecording> =
            recs.into_iter().filter(|r| r.recording_id == rid).collect();
        files.sort_by_key(|r| r.file.clone());
        let got: Vec<_> = files.iter().map(|r| r.file.clone().unwrap()).collect();
        assert_eq!(got, labels, "{source:?}");
        assert_ne!(files[0].ledger_id(), files[1].ledger_id());
        let (a, b) = (md5_of(&c, files[0]).await, md5_of(&c, files[1]).await);
        assert_ne!(a, b, "two files, two contents");
        let expected: HashSet<String> = [0, 1]
            .iter()
            .map(|p| hex::encode(s.expected_part_md5(1, *p)))
            .collect();
        assert_eq!(HashSet::from([a.clone(), b]), expected);
        // A refresh finds the same file again.
        let fresh = c.refresh_media(files[0]).await.unwrap();
        let mut again = files[0].clone();
        again.media = fresh;
        assert_eq!(md5_of(&c, &again).await, a, "{source:?}");
    }
}

/// The login host answering 503 and then 429 costs retries, not the run; refused
/// credentials are still a configuration error at once.
#[tokio::test]
async fn a_login_host_that_hiccups_is_retried() {
    let s = sim(SimConfig {
        recordings: 3,
        login_faults: vec![503, 429, 502],
        ..SimConfig::default()
    })
    .await;
    let c = client(&s, |_| {});
    let found = items(
        &c,
        DiscoveryQuery::interval(s.config().start, s.config().end()),
    )
    .await;
    assert_eq!(recordings(&found).len(), 3);
    assert_eq!(s.stats().token_requests, 4, "three failures, then a token");
    assert_eq!(c.metrics().snapshot().token_requests, 4);

    let bad = sim_client(&s, |cfg| cfg.client_secret = "wrong".into());
    let e = bad.tokens().token().await.unwrap_err();
    assert!(matches!(e, Error::Auth { status: 401, .. }), "{e}");
    assert!(e.to_string().contains("invalid_client"), "{e}");
}

/// Secrets with characters the oauth2 crate would URL-encode are sent as the official SDKs
/// send them (raw `id:secret`, base64).
#[tokio::test]
async fn secrets_with_reserved_characters_are_sent_raw() {
    let s = sim(SimConfig {
        recordings: 1,
        client_secret: "a+b/c=d~e%20f".into(),
        ..SimConfig::default()
    })
    .await;
    let c = client(&s, |_| {});
    c.tokens()
        .token()
        .await
        .expect("the raw secret is accepted");
}

/// A `Retry-After` above the Go SDK's 180 s is waited as given, not cut short (retrying
/// earlier only earns another 429).
#[tokio::test(start_paused = true)]
async fn a_long_retry_after_is_waited_as_given() {
    let s = sim(SimConfig {
        recordings: 2,
        throttle_first_api_calls: 1,
        retry_after_secs: 300,
        batch_ready_after: Duration::ZERO,
        ..SimConfig::default()
    })
    .await;
    let c = client(&s, |_| {});
    let t0 = tokio::time::Instant::now();
    let found = items(
        &c,
        DiscoveryQuery::interval(s.config().start, s.config().end()),
    )
    .await;
    assert_eq!(recordings(&found).len(), 2);
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_secs(300),
        "waited {waited:?}, the server asked for 300 s"
    );
    assert_eq!(
        s.stats().injected_429s,
        1,
        "no early retry earned a second 429"
    );
}

/// The cost of resolving every conversation (no filter on the audio `recording` flag), counted
/// against the simulator: with as many unrecorded conversations as recorded ones, the batch
/// jobs double while the details-query pages grow with the conversations listed. The figures
/// are in docs/architecture.md.
#[tokio::test]
async fn resolving_every_conversation_costs_batch_jobs_per_100_conversations() {
    let mut counts = Vec::new();
    for unrecorded in [0usize, 1000] {
        let s = sim(SimConfig {
            recordings: 1000,
            unrecorded_conversations: unrecorded,
            ..SimConfig::default()
        })
        .await;
        // The first batch poll after 250 ms finds the simulator's jobs ready (200 ms), as in
        // the clean-backfill count of the sim suite.
        let c = client(&s, |c| c.poll_initial = Duration::from_millis(250));
        let found = items(
            &c,
            DiscoveryQuery::interval(s.config().start, s.config().end()),
        )
        .await;
        assert_eq!(recordings(&found).len(), 1000);
        assert!(others(&found).is_empty());
        let conversations = s.dataset().conversations.len();
        let calls = c.metrics().snapshot().total_calls();
        let jobs = calls_to(&c, "POST /api/v2/recording/batchrequests");
        println!(
            "{unrecorded} unrecorded: {conversations} conversations, {calls} API calls, {jobs} batch jobs"
        );
        assert_eq!(
            jobs as usize,
            conversations.div_ceil(100),
            "one job per 100 conversations"
        );
        counts.push(calls);
    }
    // Plus one small query across each of the 7 UTC midnights before the interval, for
    // conversations that started on an earlier day (DiscoveryQuery::earlier_starts).
    assert!(counts[0] <= 25 + 7, "{counts:?}");
    assert!(counts[1] <= 55 + 7, "{counts:?}");
}

/// An archived recording (batch `errorMsg`, metadata `fileState` ARCHIVED) is unavailable with
/// its reason, its media type from the metadata and no made-up content type.
#[tokio::test]
async fn an_archived_recording_is_unavailable_with_the_metadata_media_type() {
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
    let found = items(
        &c,
        DiscoveryQuery::interval(s.config().start, s.config().end()),
    )
    .await;
    let sr = &s.dataset().recordings[3];
    let r = recordings(&found)
        .into_iter()
        .find(|r| r.recording_id == sr.id)
        .expect("reported");
    let MediaAvailability::Unavailable(why) = &r.media else {
        panic!("{r:?}")
    };
    assert!(why.contains("ARCHIVED"), "{why}");
    assert_eq!(r.content_type, None);
    assert_eq!(r.media_type, sr.media);
}

/// How long a batch download job takes is not documented. When jobs take longer than the
/// first poll's wait, each job cost several status polls (at 100 ms, 300 ms and 700 ms here,
/// for jobs ready after 600 ms): the client now learns the time to ready from the jobs it
/// polled and polls the next job about when it should be ready.
#[tokio::test]
async fn batch_jobs_are_polled_about_when_they_are_ready() {
    let s = sim(SimConfig {
        recordings: 700,
        batch_ready_after: Duration::from_millis(600),
        ..SimConfig::default()
    })
    .await;
    let c = client(&s, |c| c.batch_parallelism = 1);
    let cfg = s.config();
    let q = DiscoveryQuery::interval(cfg.start, cfg.end());
    let found = items(&c, q).await;
    assert_eq!(recordings(&found).len(), 700);
    let (submits, polls) = (
        calls_to(&c, "POST /api/v2/recording/batchrequests"),
        calls_to(&c, "GET /api/v2/recording/batchrequests/"),
    );
    assert!(submits >= 6, "{submits}");
    // The first job is polled three times; later ones about once.
    assert!(
        polls * 2 <= submits * 3 + 4,
        "{polls} status polls for {submits} jobs"
    );
}

/// A conversation that started three days ago and ended an hour ago (a queued email, async
/// messaging) in a backfill from 40 days back: the data lake holds finished conversations up
/// to a day ago, so it is not in the job; the details query returns conversations by start
/// day, so it was in no query either (before: the query reached one day back from the lake's
/// date). One small query across each UTC midnight before the lake's date finds it.
#[tokio::test]
async fn a_conversation_open_across_the_lakes_date_that_started_days_before_is_found() {
    let now = Utc::now();
    let s = sim(SimConfig {
        recordings: 40,
        start: now - chrono::Duration::days(40),
        span: Duration::from_secs(30 * 24 * 3600),
        data_lake_lag: Duration::from_secs(24 * 3600),
        long_conversations: vec![(
            now - chrono::Duration::hours(73),
            now - chrono::Duration::hours(1),
        )],
        ..SimConfig::default()
    })
    .await;
    let c = client(&s, |_| {});
    let found = items(
        &c,
        DiscoveryQuery::interval(
            now - chrono::Duration::days(40),
            now - chrono::Duration::minutes(1),
        ),
    )
    .await;
    assert!(others(&found).is_empty(), "{:?}", others(&found));
    let ids: HashSet<String> = recordings(&found)
        .iter()
        .map(|r| r.recording_id.clone())
        .collect();
    assert_eq!(ids, all_ids(&s), "the long conversation's recording too");
    assert!(
        calls_to(&c, "details/query") <= 10,
        "about one query per midnight probed, and the newest day"
    );
}

/// This machine's clock three hours ahead of the source's: a one-shot run to "now" asks for
/// a part the source has not reached. Before, the source's clock was known only after the
/// first API answer, and the first thing discovery did was judge the future by the local
/// clock: the three hours counted as listed (and complete) though the source could not list
/// them yet. The token answer's `Date` now sets the source's clock first: that part is
/// reported as not discoverable.
#[tokio::test]
async fn a_one_shot_run_judges_the_future_by_the_sources_clock() {
    let now = Utc::now();
    let s = sim(SimConfig {
        recordings: 6,
        start: now - chrono::Duration::hours(6),
        span: Duration::from_secs(3600),
        clock_offset_secs: -3 * 3600,
        ..SimConfig::default()
    })
    .await;
    let c = client(&s, |_| {});
    let found = items(
        &c,
        DiscoveryQuery::interval(now - chrono::Duration::hours(6), now),
    )
    .await;
    assert_eq!(recordings(&found).len(), 6);
    let gaps: Vec<_> = others(&found)
        .into_iter()
        .filter_map(|i| match i {
            Discovered::NotDiscoverable(span) => Some(span.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(gaps.len(), 1, "{:?}", others(&found));
    let source_now = now - chrono::Duration::hours(3);
    assert!(
        (gaps[0].start - source_now).num_seconds().abs() < 60 && gaps[0].end == now,
        "{:?}",
        gaps[0]
    );
}

/// The batch jobs go on while the consumer does not pull (the archiver's workers all busy):
/// during a pause after the first item, the jobs behind the first chunks are submitted and
/// polled, so the workers do not wait for them afterwards. Before, the jobs behind a chunk
/// being handed out stayed unpolled until every item of it was taken.
#[tokio::test]
async fn batch_jobs_go_on_while_the_consumer_is_busy() {
    let s = sim(SimConfig {
        recordings: 900,
        batch_ready_after: Duration::from_millis(200),
        ..SimConfig::default()
    })
    .await;
    let c = client(&s, |c| c.batch_parallelism = 2);
    let cfg = s.config();
    let mut stream = std::pin::pin!(c.discover(DiscoveryQuery::interval(cfg.start, cfg.end())));
    let first = stream.next().await.expect("an item").expect("no error");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = calls_to(&c, "POST /api/v2/recording/batchrequests");
    let mut found = vec![first];
    while let Some(item) = stream.next().await {
        found.push(item.expect("discovery item"));
    }
    let total = calls_to(&c, "POST /api/v2/recording/batchrequests");
    assert_eq!(recordings(&found).len(), 900);
    assert!(total >= 7, "{total} jobs: enough chunks to tell");
    // Jobs beyond the two in flight were submitted while nothing was taken (4 measured;
    // before, 2: the second one's items waited for room and the jobs behind it stood still).
    assert!(
        during >= 4,
        "{during} of {total} jobs submitted during the pause"
    );
}
