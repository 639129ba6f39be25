//! `GET /api/v2/recordings/retention/query` over HTTP: cursor paging through `nextUri`, the
//! threshold, the limits, and its place in the rate limit and the statistics.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::{Api, retention_ids, start};
use genesys_sim::{Dataset, SimConfig};
use http::StatusCode;

const ROUTE: &str = "GET /api/v2/recordings/retention/query";

#[tokio::test]
async fn pages_through_every_attached_recording_exactly_once() {
    let cfg = SimConfig {
        recordings: 120,
        // Index 5 arrives in 100 days, 9 is an orphan for good, 20 is detached below.
        late_files: vec![(5, Duration::from_secs(100 * 24 * 3600))],
        orphans: vec![(9, None)],
        ..SimConfig::default()
    };
    let data = Dataset::generate(&cfg);
    let sim = start(cfg).await;
    let api = Api::new(&sim).await;
    sim.detach_recordings([data.recordings[20].id.as_str()]);
    let absent: HashSet<usize> = HashSet::from([5, 9, 20]);
    let expected: HashSet<String> = data
        .recordings
        .iter()
        .filter(|r| !absent.contains(&r.index))
        .map(|r| r.id.clone())
        .collect();

    let calls_before = sim.stats().by_route.get(ROUTE).copied().unwrap_or(0);
    let (ids, pages) = retention_ids(&api, 0, 7).await;
    assert_eq!(ids.len(), 117, "no duplicates, nothing absent");
    assert_eq!(ids.iter().cloned().collect::<HashSet<_>>(), expected);
    assert_eq!(pages, 117usize.div_ceil(7));
    assert_eq!(
        sim.stats().by_route[ROUTE] - calls_before,
        pages as u64,
        "counted per call like every endpoint"
    );

    // One page of 500 holds the same order, by creation time; the fields are there.
    let all = api
        .get("/api/v2/recordings/retention/query?retentionThresholdDays=0&pageSize=500")
        .await;
    assert_eq!(all.status, StatusCode::OK);
    assert!(all.json.get("nextUri").is_none(), "a single page");
    let entities = all.json["entities"].as_array().unwrap();
    let one_page: Vec<&str> = entities
        .iter()
        .map(|e| e["recordingId"].as_str().unwrap())
        .collect();
    assert_eq!(one_page, ids.iter().map(String::as_str).collect::<Vec<_>>());
    let created: Vec<DateTime<Utc>> = entities
        .iter()
        .map(|e| {
            DateTime::parse_from_rfc3339(e["creationTime"].as_str().unwrap())
                .unwrap()
                .with_timezone(&Utc)
        })
        .collect();
    assert!(created.windows(2).all(|w| w[0] <= w[1]), "creation order");
    let first = &entities[0];
    let r = data
        .recording(first["recordingId"].as_str().unwrap())
        .unwrap();
    assert_eq!(first["conversationId"], r.conversation_id.as_str());
    assert_eq!(created[0].timestamp_millis(), r.end.timestamp_millis());
    assert!(first["deleteDate"].is_string());

    // Default page size 25.
    let default = api
        .get("/api/v2/recordings/retention/query?retentionThresholdDays=0")
        .await;
    assert_eq!(default.json["entities"].as_array().unwrap().len(), 25);
    assert!(
        default.json["nextUri"]
            .as_str()
            .unwrap()
            .contains("cursor=")
    );

    // Attached again: listed again.
    sim.attach_recordings([data.recordings[20].id.as_str()]);
    let (ids, _) = retention_ids(&api, 0, 50).await;
    assert_eq!(ids.len(), 118);
    assert!(ids.contains(&data.recordings[20].id));
}

#[tokio::test]
async fn refuses_bad_parameters() {
    let sim = start(SimConfig {
        recordings: 10,
        ..SimConfig::default()
    })
    .await;
    let api = Api::new(&sim).await;
    let q = "/api/v2/recordings/retention/query";
    for bad in [
        format!("{q}?retentionThresholdDays=0&pageSize=501"),
        format!("{q}?retentionThresholdDays=0&pageSize=0"),
        format!("{q}?pageSize=10"),
        format!("{q}?retentionThresholdDays=-1"),
        format!("{q}?retentionThresholdDays=0&cursor=not-a-cursor"),
    ] {
        let a = api.get(&bad).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{bad}: {:?}", a.json);
    }
    let ok = api
        .get(&format!("{q}?retentionThresholdDays=0&pageSize=500"))
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.json["entities"].as_array().unwrap().len(), 10);
}

#[tokio::test]
async fn the_threshold_keeps_recordings_older_than_n_days() {
    // Conversations over the last 3 to 1 days: a 2-day threshold splits them.
    let cfg = SimConfig {
        recordings: 80,
        ..SimConfig::default()
    };
    let data = Dataset::generate(&cfg);
    let sim = start(cfg).await;
    let api = Api::new(&sim).await;
    let before = Utc::now() - chrono::Duration::days(2);
    let (ids, _) = retention_ids(&api, 2, 30).await;
    let after = Utc::now() - chrono::Duration::days(2);
    let ids: HashSet<String> = ids.into_iter().collect();
    for r in &data.recordings {
        if r.end < before {
            assert!(ids.contains(&r.id), "{} is older than 2 days", r.id);
        }
        if r.end >= after {
            assert!(!ids.contains(&r.id), "{} is younger than 2 days", r.id);
        }
    }
    assert!(!ids.is_empty() && ids.len() < 80, "{} of 80", ids.len());
}

#[tokio::test]
async fn counts_against_the_rate_limit() {
    let sim = start(SimConfig {
        recordings: 5,
        rate_limit_per_minute: 3,
        ..SimConfig::default()
    })
    .await;
    let api = Api::new(&sim).await;
    let q = "/api/v2/recordings/retention/query?retentionThresholdDays=0";
    for n in 1..=3 {
        let a = api.get(q).await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.headers["inin-ratelimit-count"], n.to_string().as_str());
    }
    let a = api.get(q).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(a.headers.contains_key(http::header::RETRY_AFTER));
    assert_eq!(sim.stats().budget_429s, 1);
    assert_eq!(sim.stats().by_route[ROUTE], 4);
}
