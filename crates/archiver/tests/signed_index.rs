//! Signed index parts: with only the store and the public key, `verify_chain` catches a part
//! appended, altered or removed by a writer who has bucket access but not the secret key.

use std::sync::Arc;
use std::time::Duration;

use archiver::{ArchiverConfig, IndexSigner, Ledger, archive};
use chrono::Utc;
use genesys_media::DiscoveryQuery;
use genesys_sim::{SimConfig, Simulator};
use http_body_util::BodyExt;
use sink::{LocalDirSink, ObjectSink, PutOptions, full_body};
use test_support::sim_client;

const PREFIX: &str = archiver::DEFAULT_INDEX_PREFIX;

async fn read(sink: &dyn ObjectSink, key: &str) -> Vec<u8> {
    sink.get(key)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec()
}

async fn put(sink: &dyn ObjectSink, key: &str, bytes: Vec<u8>) {
    let opts = PutOptions {
        content_length: Some(bytes.len() as u64),
        ..PutOptions::default()
    };
    sink.put(key, full_body(bytes), opts).await.unwrap();
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(b))
}

/// An archive of 40 recordings in two runs, a signed part after each; returns the sink (on
/// `dir`), the signer and the two parts' keys.
async fn signed_archive(dir: &std::path::Path) -> (Arc<dyn ObjectSink>, IndexSigner, Vec<String>) {
    let s = Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings: 40,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let sink: Arc<dyn ObjectSink> = Arc::new(LocalDirSink::new(dir));
    let ledger = Ledger::in_memory().unwrap();
    let signer = IndexSigner::generate().unwrap();
    let (start, end) = (s.config().start, s.config().end());
    let mid = start + (end - start) / 2;
    let client = sim_client(&s, |c| c.poll_initial = Duration::from_millis(50));
    let mut keys = Vec::new();
    for (from, to) in [(start, mid), (mid, end)] {
        let summary = archive(
            client.clone(),
            sink.clone(),
            client.discover(DiscoveryQuery::interval(from, to)),
            ArchiverConfig {
                ledger: Some(ledger.clone()),
                ..ArchiverConfig::default()
            },
            Arc::new(archiver::NoEvents),
        )
        .await;
        assert!(summary.success(), "{summary:?}");
        let parts =
            archiver::write_index(&ledger, sink.as_ref(), PREFIX, Utc::now(), Some(&signer))
                .await
                .unwrap();
        keys.extend(parts.into_iter().map(|p| p.key));
    }
    assert_eq!(keys.len(), 2);
    (sink, signer, keys)
}

async fn check(
    sink: &dyn ObjectSink,
    verifier: Option<&archiver::IndexVerifier>,
    expect: &[(u64, String)],
) -> archiver::ChainReport {
    // No ledger: the store and the public key alone.
    archiver::verify_chain(sink, PREFIX, None, verifier, expect, 4)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_signed_index_proves_itself_with_the_store_and_the_public_key_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (sink, signer, keys) = signed_archive(dir.path()).await;
    let public = signer.verifier();
    let clean = check(sink.as_ref(), Some(&public), &[]).await;
    assert!(clean.clean(), "{clean:?}");
    assert_eq!(clean.signed, 2);
    assert!(clean.signatures_checked);
    assert_eq!(clean.part_digests.len(), 2);
    // The public key is beside the index, for reference.
    assert_eq!(
        read(sink.as_ref(), &format!("{PREFIX}public-key.txt")).await,
        public.to_text().into_bytes()
    );
    // An anchor kept by an auditor: right, then wrong.
    let part1 = clean.part_digests[0].2.clone();
    assert!(
        check(sink.as_ref(), Some(&public), &[(1, part1.clone())])
            .await
            .clean()
    );
    let wrong = check(sink.as_ref(), Some(&public), &[(1, "0".repeat(64))]).await;
    assert!(!wrong.clean(), "{wrong:?}");

    // A forged part 3 that continues the chain consistently (part 2's bytes with the next
    // sequence number and part 2's digest): no unsigned check can tell it apart...
    let part2 = read(sink.as_ref(), &keys[1]).await;
    let text = String::from_utf8(part2.clone()).unwrap();
    let (head, rest) = text.split_once('\n').unwrap();
    let mut header: serde_json::Value = serde_json::from_str(head).unwrap();
    header["seq"] = 3.into();
    header["previous"] = sha256_hex(&part2).into();
    header["previous_key"] = keys[1].clone().into();
    let forged_key = keys[1].replace("0000000002", "0000000003");
    put(
        sink.as_ref(),
        &forged_key,
        format!("{header}\n{rest}").into_bytes(),
    )
    .await;
    let unsigned = check(sink.as_ref(), None, &[]).await;
    assert!(unsigned.clean(), "without a key it passes: {unsigned:?}");
    // ...but it carries no signature by the key.
    let forged = check(sink.as_ref(), Some(&public), &[]).await;
    assert!(
        forged.problems.iter().any(|p| p.contains("not signed")),
        "{forged:?}"
    );
    // Signed with another key: refused too.
    let other = IndexSigner::generate().unwrap();
    let claim = archiver::PartClaim {
        seq: 3,
        key: forged_key.clone(),
        sha256: sha256_hex(&read(sink.as_ref(), &forged_key).await),
        previous: Some(sha256_hex(&part2)),
    };
    put(
        sink.as_ref(),
        &format!("{forged_key}.sig"),
        serde_json::to_vec(&other.sign_part(&claim)).unwrap(),
    )
    .await;
    let other_key = check(sink.as_ref(), Some(&public), &[]).await;
    assert!(
        other_key
            .problems
            .iter()
            .any(|p| p.contains("does not match this public key")),
        "{other_key:?}"
    );
    sink.delete(&forged_key).await.unwrap();
    sink.delete(&format!("{forged_key}.sig")).await.unwrap();
    assert!(check(sink.as_ref(), Some(&public), &[]).await.clean());

    // The newest part removed (with its signature): the signed head still names it.
    let sig2 = read(sink.as_ref(), &format!("{}.sig", keys[1])).await;
    sink.delete(&keys[1]).await.unwrap();
    sink.delete(&format!("{}.sig", keys[1])).await.unwrap();
    let removed = check(sink.as_ref(), Some(&public), &[]).await;
    assert!(
        removed.problems.iter().any(|p| p.contains("removed")),
        "{removed:?}"
    );
    assert!(
        check(sink.as_ref(), None, &[]).await.clean(),
        "without the key (and no ledger) a removed newest part does not show"
    );
    put(sink.as_ref(), &keys[1], part2.clone()).await;
    put(sink.as_ref(), &format!("{}.sig", keys[1]), sig2).await;
    assert!(check(sink.as_ref(), Some(&public), &[]).await.clean());

    // Part 1 altered in place (one byte of an entry's digest): its signature no longer
    // vouches for it, and part 2 no longer follows it.
    let mut part1_bytes = read(sink.as_ref(), &keys[0]).await;
    let at = part1_bytes.len() - 10;
    part1_bytes[at] = if part1_bytes[at] == b'0' { b'1' } else { b'0' };
    put(sink.as_ref(), &keys[0], part1_bytes).await;
    let altered = check(sink.as_ref(), Some(&public), &[]).await;
    assert!(
        altered
            .problems
            .iter()
            .any(|p| p.contains("its signature vouches for other bytes")),
        "{altered:?}"
    );
}

/// Parts the archiver did not write with the key (written before it was configured, or found
/// in the store after a rebuild) are never signed by it: the check reports them unsigned.
#[tokio::test]
async fn parts_written_without_the_key_are_never_signed_later() {
    let s = Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings: 20,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sink: Arc<dyn ObjectSink> = Arc::new(LocalDirSink::new(dir.path()));
    let ledger = Ledger::in_memory().unwrap();
    let signer = IndexSigner::generate().unwrap();
    let (start, end) = (s.config().start, s.config().end());
    let mid = start + (end - start) / 2;
    let client = sim_client(&s, |c| c.poll_initial = Duration::from_millis(50));
    for (i, (from, to)) in [(start, mid), (mid, end)].into_iter().enumerate() {
        let summary = archive(
            client.clone(),
            sink.clone(),
            client.discover(DiscoveryQuery::interval(from, to)),
            ArchiverConfig {
                ledger: Some(ledger.clone()),
                ..ArchiverConfig::default()
            },
            Arc::new(archiver::NoEvents),
        )
        .await;
        assert!(summary.success(), "{summary:?}");
        let key = (i == 1).then_some(&signer);
        archiver::write_index(&ledger, sink.as_ref(), PREFIX, Utc::now(), key)
            .await
            .unwrap();
    }
    let r = check(sink.as_ref(), Some(&signer.verifier()), &[]).await;
    assert_eq!(r.signed, 1, "{r:?}");
    assert!(
        r.problems.iter().any(|p| p.contains("not signed")),
        "{:?}",
        r.problems
    );
}
