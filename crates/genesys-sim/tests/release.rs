//! Retention at the source over HTTP: the recording PUT (delete date more than a day ahead,
//! null removes it, permissions, restoration counted, 409 faults), deletion protection (at
//! most 100 ids, the protected ones answered), and a recording deleted once its date passes
//! (`DELETED`, a batch result without a URL, gone from the retention query) unless protected.

mod common;

use chrono::{Duration as Span, SecondsFormat, Utc};
use common::{Api, start};
use genesys_sim::{Dataset, SimConfig};
use http::StatusCode;
use serde_json::json;

fn date(d: chrono::DateTime<Utc>) -> String {
    d.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[tokio::test]
async fn delete_dates_protection_and_deletion() {
    let cfg = SimConfig {
        recordings: 6,
        retention_conflicts: 1,
        ..SimConfig::default()
    };
    let data = Dataset::generate(&cfg);
    let sim = start(cfg).await;
    let api = Api::new(&sim).await;
    let r = &data.recordings[0];
    let path = format!(
        "/api/v2/conversations/{}/recordings/{}",
        r.conversation_id, r.id
    );
    let ahead = Utc::now() + Span::days(3);

    let a = api.put(&path, &json!({"deleteDate": date(ahead)})).await;
    assert_eq!(
        a.status,
        StatusCode::CONFLICT,
        "the first PUT is a 409 fault"
    );
    for (body, why) in [
        (
            json!({"deleteDate": date(Utc::now() + Span::hours(20))}),
            "less than a day ahead",
        ),
        (
            json!({"deleteDate": "2030-01-01"}),
            "not ISO-8601 with a time",
        ),
        (
            json!({"deleteDate": "2030-01-01T00:00:00+02:00"}),
            "not UTC",
        ),
        (json!(["deleteDate"]), "not a Recording"),
    ] {
        let a = api.put(&path, &body).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{why}: {:?}", a.json);
    }
    let other = format!("/api/v2/conversations/{}/recordings/{}", "c-unknown", r.id);
    assert_eq!(
        api.put(&other, &json!({})).await.status,
        StatusCode::NOT_FOUND
    );

    let a = api.put(&path, &json!({"deleteDate": date(ahead)})).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.json);
    assert_eq!(a.json["deleteDate"], date(ahead));
    assert_eq!(a.json["id"], r.id.as_str());
    assert_eq!(sim.delete_date(0).map(date), Some(date(ahead)));
    assert_eq!(sim.stats().restorations, 0);
    // null removes the date.
    let a = api.put(&path, &json!({"deleteDate": null})).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.json.get("deleteDate").is_none(), "{:?}", a.json);
    assert_eq!(sim.delete_date(0), None);

    // Deletion protection: at most 100 ids; the protected ones come back.
    let r1 = &data.recordings[1];
    sim.protect_conversations([r1.conversation_id.clone()]);
    let ids: Vec<String> = data
        .recordings
        .iter()
        .map(|r| r.conversation_id.clone())
        .collect();
    let a = api
        .post(
            "/api/v2/recordings/deletionprotection",
            &json!({"conversationIds": ids}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json.as_array().unwrap().len(), 1, "{:?}", a.json);
    assert_eq!(a.json[0]["id"], r1.conversation_id.as_str());
    let many: Vec<String> = (0..101).map(|i| format!("c{i}")).collect();
    let a = api
        .post(
            "/api/v2/recordings/deletionprotection",
            &json!({"conversationIds": many}),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);

    // A date passes: the unprotected recording is gone, the protected one stays.
    for r in [&data.recordings[0], r1] {
        let p = format!(
            "/api/v2/conversations/{}/recordings/{}",
            r.conversation_id, r.id
        );
        let a = api.put(&p, &json!({"deleteDate": date(ahead)})).await;
        assert_eq!(a.status, StatusCode::OK);
    }
    sim.pass_retention_time(std::time::Duration::from_secs(4 * 24 * 3600));
    assert!(sim.is_deleted(0) && !sim.is_deleted(1));
    let status = api
        .batch(json!([{"conversationId": r.conversation_id, "recordingId": r.id}]))
        .await;
    let result = &status["results"][0];
    assert!(result.get("resultUrl").is_none(), "{status}");
    assert!(
        result["errorMsg"]
            .as_str()
            .unwrap_or_default()
            .contains("deleted"),
        "{status}"
    );
    let all = api
        .get("/api/v2/recordings/retention/query?retentionThresholdDays=0&pageSize=500")
        .await;
    let listed: Vec<&str> = all.json["entities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["recordingId"].as_str().unwrap())
        .collect();
    assert!(!listed.contains(&r.id.as_str()) && listed.contains(&r1.id.as_str()));
    assert_eq!(
        api.put(&path, &json!({"deleteDate": null})).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn permissions_follow_the_contract() {
    for (missing, body, expect) in [
        ("recording:recording:view", json!({}), StatusCode::FORBIDDEN),
        (
            "recording:recording:editRetention",
            json!({"deleteDate": null}),
            StatusCode::FORBIDDEN,
        ),
        (
            "recording:recording:restore",
            json!({"deleteDate": null}),
            StatusCode::OK,
        ),
    ] {
        let cfg = SimConfig {
            recordings: 2,
            missing_permissions: vec![missing.into()],
            ..SimConfig::default()
        };
        let data = Dataset::generate(&cfg);
        let sim = start(cfg).await;
        let api = Api::new(&sim).await;
        let r = &data.recordings[0];
        let path = format!(
            "/api/v2/conversations/{}/recordings/{}",
            r.conversation_id, r.id
        );
        let a = api.put(&path, &body).await;
        assert_eq!(a.status, expect, "without {missing}: {:?}", a.json);
        if expect == StatusCode::FORBIDDEN {
            assert!(
                a.json["message"].as_str().unwrap().contains(missing),
                "{:?}",
                a.json
            );
        }
    }
}
