//! A recording's life after its conversation, over HTTP: late files, orphans, detach/attach,
//! and batch requests whose `expectedResultCount` grows.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::{Api, downloadable, metadata, retention_ids, sleep_until, start};
use genesys_sim::{Dataset, SimConfig};
use http::StatusCode;
use md5::{Digest, Md5};
use serde_json::{Value, json};

fn base(recordings: usize) -> SimConfig {
    SimConfig {
        recordings,
        batch_ready_after: Duration::from_millis(20),
        ..SimConfig::default()
    }
}

/// The index of the second recording of a conversation that has two.
fn second_of_a_pair(data: &Dataset) -> usize {
    data.conversations
        .iter()
        .find(|c| c.recordings.len() == 2)
        .expect("a conversation with two recordings")
        .recordings[1]
}

/// `d` such that recording `i`'s conversation end + `d` is `from_now` from now; and that time.
fn due_in(data: &Dataset, i: usize, from_now: Duration) -> (Duration, DateTime<Utc>) {
    let r = &data.recordings[i];
    let end = data.conversation(&r.conversation_id).unwrap().end;
    let at = Utc::now() + chrono::Duration::from_std(from_now).unwrap();
    ((at - end).to_std().unwrap(), at)
}

fn ids(v: &[(String, String)]) -> Vec<&str> {
    v.iter().map(|(id, _)| id.as_str()).collect()
}

/// The per-recording GET until it stops answering 202: its last answer.
async fn recording_get(api: &Api, path: &str) -> common::Answer {
    for _ in 0..20 {
        let a = api.get(path).await;
        if a.status != StatusCode::ACCEPTED {
            return a;
        }
    }
    panic!("{path} still transcoding");
}

async fn compat_ids(api: &Api) -> HashSet<String> {
    let a = api.get("/api/v2/recordings/recordings?pageSize=100").await;
    assert_eq!(a.status, StatusCode::OK);
    a.json["entities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_late_file_is_absent_until_its_time_then_available_without_uploading() {
    // Every ordinary recording is still UPLOADING (the upload lag is longer than the data is
    // old): the late file must not be.
    let cfg = SimConfig {
        upload_lag: Duration::from_secs(30 * 24 * 3600),
        ..base(60)
    };
    let data = Dataset::generate(&cfg);
    let late = second_of_a_pair(&data);
    let r = data.recordings[late].clone();
    let (cid, rid) = (r.conversation_id.clone(), r.id.clone());
    let sibling = data.conversation(&cid).unwrap().recordings[0];
    let sibling_id = data.recordings[sibling].id.clone();
    let (d, arrives) = due_in(&data, late, Duration::from_secs(4));
    let sim = start(SimConfig {
        late_files: vec![(late, d)],
        ..cfg
    })
    .await;
    let api = Api::new(&sim).await;
    let get_path = format!("/api/v2/conversations/{cid}/recordings/{rid}");

    assert!(!sim.is_attached(late));
    let before = metadata(&api, &cid).await;
    assert_eq!(ids(&before), vec![sibling_id.as_str()], "only the sibling");
    assert_eq!(before[0].1, "UPLOADING");
    assert_eq!(api.get(&get_path).await.status, StatusCode::NOT_FOUND);
    let early_job = api.submit(json!([{ "conversationId": cid }])).await;
    let whole = api.batch(json!([{ "conversationId": cid }])).await;
    assert!(
        whole["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["recordingId"] != rid.as_str()),
        "a batch request for the conversation leaves it out: {whole}"
    );
    assert_eq!(whole["expectedResultCount"], 1);
    let named = api
        .batch(json!([{ "conversationId": cid, "recordingId": rid }]))
        .await;
    assert_eq!(named["results"], json!([]), "not even asked for by id");
    assert!(!compat_ids(&api).await.contains(&rid));
    assert!(!retention_ids(&api, 0, 500).await.0.contains(&rid));
    assert!(
        Utc::now() < arrives,
        "the first half took too long to test anything"
    );

    sleep_until(arrives).await;
    assert!(sim.is_attached(late));
    let after = metadata(&api, &cid).await;
    assert_eq!(
        after,
        vec![
            (sibling_id.clone(), "UPLOADING".to_string()),
            (rid.clone(), "AVAILABLE".to_string())
        ]
    );
    let old = api
        .get(&format!("/api/v2/recording/batchrequests/{early_job}"))
        .await;
    assert!(
        old.json["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["recordingId"] != rid.as_str()),
        "a job submitted while it was absent keeps its items: {}",
        old.json
    );
    let now = api.batch(json!([{ "conversationId": cid }])).await;
    assert_eq!(downloadable(&now), vec![rid.clone()], "{now}");
    assert!(retention_ids(&api, 0, 500).await.0.contains(&rid));
    assert!(compat_ids(&api).await.contains(&rid));
    let got = recording_get(&api, &get_path).await;
    assert_eq!(got.status, StatusCode::OK);
    assert!(got.json["mediaUris"]["0"]["mediaUri"].is_string());
}

fn md5_hex(b: &[u8]) -> String {
    hex::encode(Md5::digest(b))
}

#[tokio::test]
async fn orphans_are_listed_until_reattached_then_belong_to_their_conversation() {
    let cfg = base(30);
    let data = Dataset::generate(&cfg);
    let (soon, never) = (3, 7);
    let (d, arrives) = due_in(&data, soon, Duration::from_secs(4));
    let sim = start(SimConfig {
        orphans: vec![(soon, Some(d)), (never, None)],
        ..cfg
    })
    .await;
    let api = Api::new(&sim).await;
    let o_soon = sim.orphan_id(soon).unwrap().to_string();
    let o_never = sim.orphan_id(never).unwrap().to_string();
    let r = data.recordings[soon].clone();
    assert_ne!(o_soon, r.id, "an orphan id of its own");
    assert_ne!(o_soon, o_never);

    // Two pages of one.
    let p1 = api.get("/api/v2/orphanrecordings?pageSize=1").await;
    assert_eq!(p1.status, StatusCode::OK);
    assert_eq!(
        (&p1.json["total"], &p1.json["pageCount"]),
        (&json!(2), &json!(2))
    );
    assert_eq!(p1.json["entities"].as_array().unwrap().len(), 1);
    let next = p1.json["nextUri"]
        .as_str()
        .expect("a next page")
        .to_string();
    let p2 = api.get(&next).await;
    assert_eq!(p2.json["pageNumber"], 2);
    assert!(p2.json.get("nextUri").is_none(), "the last page");
    let listed: Vec<Value> = [&p1, &p2]
        .iter()
        .flat_map(|p| p.json["entities"].as_array().unwrap().clone())
        .collect();
    let listed_ids: HashSet<&str> = listed.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(
        listed_ids,
        HashSet::from([o_soon.as_str(), o_never.as_str()])
    );
    let e = listed.iter().find(|e| e["id"] == o_soon.as_str()).unwrap();
    assert_eq!(e["mediaSizeBytes"], r.size);
    assert_eq!(e["fileState"], "AVAILABLE");
    assert_eq!(e["orphanStatus"], "NO_CONVERSATION");
    let created = DateTime::parse_from_rfc3339(e["createdTime"].as_str().unwrap()).unwrap();
    assert_eq!(created.timestamp_millis(), r.end.timestamp_millis());
    assert!(e["recoveredTime"].is_string());
    assert!(e["providerType"].is_string() && e["mediaType"].is_string());
    assert_eq!(
        api.get("/api/v2/orphanrecordings?pageSize=0").await.status,
        StatusCode::BAD_REQUEST
    );

    // The orphan and its media; its conversation does not have it.
    let one = api.get(&format!("/api/v2/orphanrecordings/{o_soon}")).await;
    assert_eq!(
        (one.status, &one.json["id"]),
        (StatusCode::OK, &json!(o_soon))
    );
    let media_path = format!("/api/v2/orphanrecordings/{o_soon}/media?formatId=NONE");
    let m = recording_get(&api, &media_path).await;
    assert_eq!(m.status, StatusCode::OK, "{:?}", m.json);
    let url = m.json["mediaUris"]["0"]["mediaUri"].as_str().unwrap();
    let body = api.download(url).await;
    assert_eq!(body.status, StatusCode::OK);
    assert_eq!(
        md5_hex(&body.bytes),
        hex::encode(sim.expected_md5(soon)),
        "the orphan's media is the recording's"
    );
    let cid = r.conversation_id.clone();
    assert!(!ids(&metadata(&api, &cid).await).contains(&r.id.as_str()));
    let get_path = format!("/api/v2/conversations/{cid}/recordings/{}", r.id);
    assert_eq!(api.get(&get_path).await.status, StatusCode::NOT_FOUND);
    assert!(Utc::now() < arrives, "the first half took too long");

    // Re-attached by the clock: no longer an orphan, on its conversation.
    sleep_until(arrives).await;
    let left = api.get("/api/v2/orphanrecordings").await;
    assert_eq!(left.json["total"], 1);
    assert_eq!(left.json["entities"][0]["id"], o_never.as_str());
    for p in [
        format!("/api/v2/orphanrecordings/{o_soon}"),
        format!("/api/v2/orphanrecordings/{o_soon}/media"),
    ] {
        assert_eq!(api.get(&p).await.status, StatusCode::NOT_FOUND, "{p}");
    }
    assert!(
        metadata(&api, &cid)
            .await
            .contains(&(r.id.clone(), "AVAILABLE".into()))
    );
    let job = api.batch(json!([{ "conversationId": cid }])).await;
    assert!(downloadable(&job).contains(&r.id));
    assert_eq!(recording_get(&api, &get_path).await.status, StatusCode::OK);

    // Re-attached by hand: the other one.
    let never_r = &data.recordings[never];
    sim.attach_recordings([never_r.id.as_str()]);
    let none = api.get("/api/v2/orphanrecordings").await;
    assert_eq!(
        (&none.json["total"], &none.json["entities"]),
        (&json!(0), &json!([]))
    );
    assert_eq!(
        api.get(&format!("/api/v2/orphanrecordings/{o_never}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert!(ids(&metadata(&api, &never_r.conversation_id).await).contains(&never_r.id.as_str()));
    let stats = sim.stats().by_route;
    assert!(stats["GET /api/v2/orphanrecordings"] >= 3, "{stats:?}");
    assert!(
        stats["GET /api/v2/orphanrecordings/{id}/media"] >= 2,
        "{stats:?}"
    );
}

#[tokio::test]
async fn detached_recordings_are_absent_until_attached() {
    let cfg = base(40);
    let data = Dataset::generate(&cfg);
    let i = second_of_a_pair(&data);
    let r = data.recordings[i].clone();
    let sim = start(cfg).await;
    let api = Api::new(&sim).await;
    let cid = r.conversation_id.clone();
    let get_path = format!("/api/v2/conversations/{cid}/recordings/{}", r.id);

    assert!(sim.is_attached(i));
    sim.detach_recordings([r.id.as_str(), "no-such-recording"]);
    assert!(!sim.is_attached(i));
    assert!(!ids(&metadata(&api, &cid).await).contains(&r.id.as_str()));
    assert_eq!(api.get(&get_path).await.status, StatusCode::NOT_FOUND);
    let job = api.batch(json!([{ "conversationId": cid }])).await;
    assert_eq!(downloadable(&job).len(), 1, "only the sibling: {job}");
    assert!(!downloadable(&job).contains(&r.id));
    assert!(!compat_ids(&api).await.contains(&r.id));
    assert!(!retention_ids(&api, 0, 100).await.0.contains(&r.id));
    let orphans = api.get("/api/v2/orphanrecordings").await;
    assert_eq!(orphans.json["total"], 0, "detached is not orphaned");

    sim.attach_recordings(vec![r.id.clone()]);
    assert!(sim.is_attached(i));
    assert!(ids(&metadata(&api, &cid).await).contains(&r.id.as_str()));
    assert_eq!(recording_get(&api, &get_path).await.status, StatusCode::OK);
    let job = api.batch(json!([{ "conversationId": cid }])).await;
    assert_eq!(downloadable(&job).len(), 2, "{job}");
    assert!(compat_ids(&api).await.contains(&r.id));
    assert!(retention_ids(&api, 0, 100).await.0.contains(&r.id));
}

/// Status polls of one job until `Completed`: (status, expectedResultCount, resultCount,
/// results).
async fn polls(api: &Api, items: Value) -> Vec<(String, u64, u64, usize)> {
    let id = api.submit(items).await;
    let mut out = Vec::new();
    loop {
        let s = api
            .get(&format!("/api/v2/recording/batchrequests/{id}"))
            .await
            .json;
        let status = s["status"].as_str().unwrap().to_string();
        let done = status == "Completed";
        out.push((
            status,
            s["expectedResultCount"].as_u64().unwrap(),
            s["resultCount"].as_u64().unwrap(),
            s["results"].as_array().unwrap().len(),
        ));
        if done || out.len() > 20 {
            return out;
        }
    }
}

#[tokio::test]
async fn expected_result_count_grows_before_the_job_completes() {
    let cfg = SimConfig {
        batch_ready_after: Duration::ZERO,
        ..base(10)
    };
    let items: Value = Dataset::generate(&cfg).recordings[..5]
        .iter()
        .map(|r| json!({"conversationId": r.conversation_id, "recordingId": r.id}))
        .collect();
    let progress = |e: u64| ("InProgress".to_string(), e, e, e as usize);

    let plain = start(cfg.clone()).await;
    let seen = polls(&Api::new(&plain).await, items.clone()).await;
    assert_eq!(
        seen,
        vec![("Completed".to_string(), 5, 5, 5)],
        "off by default"
    );

    let growing = start(SimConfig {
        growing_expected_polls: 3,
        ..cfg
    })
    .await;
    let seen = polls(&Api::new(&growing).await, items).await;
    assert_eq!(
        seen,
        vec![
            progress(2),
            progress(3),
            progress(4),
            ("Completed".to_string(), 5, 5, 5)
        ]
    );
}
