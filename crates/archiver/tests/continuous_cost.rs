//! What continuous mode spends on the API in the steady state: polls with nothing new, a busy
//! and a quiet org, the late window's cost (benchmarks among them are ignored by default).

use std::time::Duration;

use archiver::{PollSettings, run_continuous};
use chrono::Utc;
use genesys_media::DiscoveryQuery;
use genesys_sim::{SimConfig, Simulator};
use test_support::sim_client;

mod common;
use common::{Rig, collect, rig};

/// Polls over a window with nothing new: the first poll resolves every conversation (also
/// the unrecorded ones); the next ones find them all settled in the ledger and spend only
/// the analytics pages: no batch job. Each poll says what it spent.
#[tokio::test]
async fn polls_with_nothing_new_spend_no_batch_job() {
    let s = Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings: 24,
        unrecorded_conversations: 10,
        start: Utc::now() - chrono::Duration::hours(2),
        span: Duration::from_secs(3600),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let conversations = s.dataset().conversations.len() as u64;
    let Rig {
        c, _dir, sink, cfg, ..
    } = rig(&s);
    let poll = PollSettings {
        start: s.config().start,
        interval: Duration::from_millis(10),
        // Every poll re-reads the whole window.
        overlap: Duration::from_secs(4 * 3600),
        sweep_every: 1,
        max_polls: Some(3),
        ..PollSettings::default()
    };
    let (polls, events) = collect(|e| match e {
        archiver::Event::Polled {
            api_calls,
            known_conversations,
            found,
            ..
        } => Some((api_calls.clone(), *known_conversations, *found)),
        _ => None,
    });
    let total = run_continuous(c, sink, DiscoveryQuery::interval, cfg, poll, events)
        .await
        .unwrap();
    assert_eq!(total.archived, 24, "{total:?}");
    let polls = polls.lock().unwrap().clone();
    assert_eq!(polls.len(), 3);
    let jobs = |calls: &std::collections::BTreeMap<String, u64>| -> u64 {
        calls
            .iter()
            .filter(|(k, _)| k.contains("batchrequests"))
            .map(|(_, n)| n)
            .sum()
    };
    assert!(
        jobs(&polls[0].0) > 0,
        "the first poll resolves: {:?}",
        polls[0]
    );
    for (calls, known, found) in &polls[1..] {
        assert_eq!(jobs(calls), 0, "nothing new, no batch job: {calls:?}");
        assert_eq!(*known, conversations, "every conversation is settled");
        assert_eq!(*found, 0);
        assert!(
            calls.keys().all(|k| k.contains("analytics")),
            "only analytics pages: {calls:?}"
        );
    }
}

/// The daemon's steady state in virtual time: an org whose conversations appear in analytics
/// as they end, polled every 5 minutes of its time (each poll's "now" set through `settle`),
/// with the default overlap (1 h), recent overlap and sweep cadence, against every poll
/// reading the whole overlap (`sweep_every: 1`, the behaviour before sweeps). Every recording
/// is archived either way; the sweeps spend fewer calls. Prints the calls per 1,000 new
/// recordings of both (docs/benchmarks.md quotes them).
#[tokio::test]
async fn steady_state_polls_resolve_only_new_conversations() {
    let every_poll = steady_state(1, 1000, None, None).await;
    let swept = steady_state(PollSettings::default().sweep_every, 1000, None, None).await;
    for (name, (calls, recordings, by_endpoint, _, _)) in [
        ("every poll reads the overlap", &every_poll),
        ("sweeps", &swept),
    ] {
        println!(
            "steady state, {name}: {calls} API calls for {recordings} new recordings = {:.1} per 1,000 ({by_endpoint:?})",
            *calls as f64 * 1000.0 / *recordings as f64
        );
    }
    assert_eq!(every_poll.1, swept.1, "the same recordings either way");
    assert!(
        swept.0 < every_poll.0,
        "sweeps spend fewer calls: {swept:?} against {every_poll:?}"
    );
}

/// The same steady state for a busier org (6,000 recordings over the two hours, about 250 new
/// per poll), with the default cadence: where the per-poll floor (a page, a batch submission
/// and a status call) no longer dominates. A benchmark (docs/benchmarks.md), not run by the
/// test script: `cargo test -p archiver --test continuous busy -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "a benchmark: about two minutes in a debug build"]
async fn steady_state_of_a_busy_org() {
    for wait in [None, Some(Duration::from_secs(1800))] {
        let (calls, recordings, by_endpoint, _, _) =
            steady_state(PollSettings::default().sweep_every, 6000, wait, None).await;
        println!(
            "steady state, busy org, batch wait {wait:?}: {calls} API calls for {recordings} new recordings = {:.1} per 1,000 ({by_endpoint:?})",
            calls as f64 * 1000.0 / recordings as f64
        );
        assert!(recordings > 4000, "{recordings}");
    }
}

/// What the late window costs in the steady state: the same org polled with a 30-minute late
/// window (each conversation resolved once more 30 minutes after it ended; the default 48 h
/// behaves alike once the daemon has run for two days) against none, for a quiet and a busy
/// org. A benchmark (docs/benchmarks.md), not run by the test script:
/// `cargo test -p archiver --test continuous late_window_cost -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "a benchmark: a few minutes in a debug build"]
async fn late_window_cost_in_the_steady_state() {
    let every = PollSettings::default().sweep_every;
    for n in [1000, 6000] {
        let off = steady_state(every, n, None, Some(Duration::ZERO)).await;
        let on = steady_state(every, n, None, Some(Duration::from_secs(1800))).await;
        for (name, (calls, recordings, by_endpoint, _, _)) in
            [("late window off", &off), ("late window 30m", &on)]
        {
            println!(
                "steady state, {n} recordings over 2 h, {name}: {calls} API calls for {recordings} new recordings = {:.1} per 1,000 ({by_endpoint:?})",
                *calls as f64 * 1000.0 / *recordings as f64
            );
        }
        assert_eq!(off.1, on.1, "the same recordings either way");
    }
}

/// A quiet org (36 new recordings per poll) whose polls may let a partial batch wait 30
/// minutes for later polls' conversations (`--batch-wait 30m`): the polls share batch
/// download jobs, every recording is still archived (within the wait), and the deferred
/// conversations are reported pending meanwhile.
#[tokio::test]
async fn a_quiet_org_shares_batch_jobs_when_polls_may_wait() {
    let sweep_every = PollSettings::default().sweep_every;
    let now = steady_state(sweep_every, 1000, None, None).await;
    let waiting = steady_state(sweep_every, 1000, Some(Duration::from_secs(1800)), None).await;
    let submits = |m: &std::collections::BTreeMap<String, u64>| {
        m.get("POST /api/v2/recording/batchrequests")
            .copied()
            .unwrap_or(0)
    };
    for (name, (calls, recordings, by_endpoint, _, _)) in [
        ("every poll resolves", &now),
        ("--batch-wait 30m", &waiting),
    ] {
        println!(
            "quiet org, {name}: {calls} API calls for {recordings} new recordings = {:.1} per 1,000 ({by_endpoint:?})",
            *calls as f64 * 1000.0 / *recordings as f64
        );
    }
    assert_eq!(now.3, 0, "nothing deferred without --batch-wait");
    assert!(waiting.3 > 0, "deferred conversations are reported pending");
    assert!(
        submits(&waiting.2) * 2 <= submits(&now.2),
        "polls share jobs: {:?} against {:?}",
        waiting.2,
        now.2
    );
    let per_1000 = |r: &(u64, u64, _, u64, u64)| r.0 as f64 / r.1 as f64;
    // Waiting conversations stay in the ledger, not behind a held checkpoint: polls do not
    // read further back for them (more polls run here, draining the last wait).
    let pages_per_poll = |r: &(u64, u64, std::collections::BTreeMap<String, u64>, u64, u64)| {
        r.2.get("POST /api/v2/analytics/conversations/details/query")
            .copied()
            .unwrap_or(0) as f64
            / r.4 as f64
    };
    assert!(
        pages_per_poll(&waiting) <= pages_per_poll(&now),
        "{waiting:?} against {now:?}"
    );
    assert!(
        per_1000(&waiting) < per_1000(&now),
        "{waiting:?} against {now:?}"
    );
}

/// Runs the virtual-time steady state of an org of `n` recordings over two hours; returns
/// (API calls, recordings archived, calls by endpoint, conversations reported pending, polls)
/// over the polls after the first. With `batch_wait`, polls go on after the last conversation
/// ended until the wait has passed, so that every deferred batch is resolved.
async fn steady_state(
    sweep_every: u32,
    n: usize,
    batch_wait: Option<Duration>,
    late_window: Option<Duration>,
) -> (u64, u64, std::collections::BTreeMap<String, u64>, u64, u64) {
    let origin = Utc::now() - chrono::Duration::hours(4);
    let s = Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings: n,
        start: origin,
        span: Duration::from_secs(2 * 3600),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let convs = s.dataset().conversations.clone();
    s.hide_conversations(convs.iter().map(|c| c.id.clone()));
    let Rig {
        _dir,
        sink,
        ledger,
        mut cfg,
        ..
    } = rig(&s);
    if let Some(w) = late_window {
        cfg.late_window = w;
    }
    // The first status poll of a batch job comes after the simulator has it ready (200 ms):
    // one status call per job, in both runs alike.
    let c = sim_client(&s, |c| c.poll_initial = Duration::from_millis(250));
    let step = chrono::Duration::minutes(5);
    let first = origin + chrono::Duration::minutes(30);
    let (mut calls, mut recordings, mut pending, mut polls) = (0u64, 0u64, 0u64, 0u64);
    let mut by_endpoint = std::collections::BTreeMap::new();
    let mut at = first;
    let last = origin
        + chrono::Duration::minutes(150)
        + batch_wait.map_or(chrono::Duration::zero(), |w| {
            chrono::Duration::from_std(w).unwrap() + step * 2
        });
    while at <= last {
        // Conversations appear as they end; the poll's present is `at`.
        s.reveal_conversations(convs.iter().filter(|c| c.end <= at).map(|c| c.id.clone()));
        let poll = PollSettings {
            start: origin,
            sweep_every,
            settle: (Utc::now() - at).to_std().unwrap(),
            max_polls: Some(1),
            batch_wait,
            ..PollSettings::default()
        };
        let (seen, events) = collect(|e| match e {
            archiver::Event::Polled {
                api_calls, pending, ..
            } => Some((api_calls.clone(), *pending)),
            _ => None,
        });
        let summary = run_continuous(
            c.clone(),
            sink.clone(),
            DiscoveryQuery::interval,
            cfg.clone(),
            poll,
            events,
        )
        .await
        .unwrap();
        assert_eq!(summary.failed, 0, "{summary:?}");
        let (polled, pending_now) = seen.lock().unwrap().pop().expect("polled");
        if at > first {
            polls += 1;
            pending += pending_now;
            calls += polled.values().sum::<u64>();
            recordings += summary.archived;
            for (k, n) in &polled {
                *by_endpoint.entry(k.clone()).or_insert(0) += n;
            }
        }
        at += step;
    }
    // Every recording that ended by the last poll's present was archived.
    let ended = s
        .dataset()
        .recordings
        .iter()
        .filter(|r| r.end <= at - step)
        .count();
    assert_eq!(
        ledger
            .entries(Some(archiver::RecordStatus::Archived))
            .await
            .unwrap()
            .len(),
        ended
    );
    (calls, recordings, by_endpoint, pending, polls)
}
