//! Signed index parts: with only the store and the public key, `verify_chain` catches a part
//! appended, altered or removed by a writer who has bucket access but not the secret key.

use std::sync::Arc;
use std::time::Duration;

use archiver::{ArchiverConfig, IndexSigner, Ledger, archive};
use chrono::Utc;
use genesys_media::DiscoveryQuery;
use genesys_sim::{SimConfig, Simulator};
use sink::{LocalDirSink, ObjectSink, PutOptions, full_body};
use test_support::sim_client;

const PREFIX: &str = archiver::DEFAULT_INDEX_PREFIX;

async fn read(sink: &dyn ObjectSink, key: &str) -> Vec<u8> {
    test_support::object_bytes(sink, key).await
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

/// An archive of 40 recordings in one run per entry of `signers` (equal windows), an index
/// part written after each run with that key (or none); returns the sink (on `dir`) and the
/// parts' keys.
async fn archive_in_runs(
    dir: &std::path::Path,
    signers: &[Option<&IndexSigner>],
) -> (Arc<dyn ObjectSink>, Vec<String>) {
    let s = Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings: 40,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let sink: Arc<dyn ObjectSink> = Arc::new(LocalDirSink::new(dir));
    let ledger = Ledger::in_memory().unwrap();
    let (start, end) = (s.config().start, s.config().end());
    let step = (end - start) / signers.len() as i32;
    let client = sim_client(&s, |c| c.poll_initial = Duration::from_millis(50));
    let mut keys = Vec::new();
    for (i, signer) in signers.iter().enumerate() {
        let from = start + step * i as i32;
        let to = if i + 1 == signers.len() {
            end
        } else {
            from + step
        };
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
        let parts = archiver::write_index(&ledger, sink.as_ref(), PREFIX, Utc::now(), *signer)
            .await
            .unwrap();
        keys.extend(parts.into_iter().map(|p| p.key));
    }
    assert_eq!(keys.len(), signers.len());
    (sink, keys)
}

/// Two runs, both parts signed by one key.
async fn signed_archive(dir: &std::path::Path) -> (Arc<dyn ObjectSink>, IndexSigner, Vec<String>) {
    let signer = IndexSigner::generate().unwrap();
    let (sink, keys) = archive_in_runs(dir, &[Some(&signer), Some(&signer)]).await;
    (sink, signer, keys)
}

async fn check(
    sink: &dyn ObjectSink,
    verifier: Option<&archiver::IndexVerifier>,
    expect: &[(u64, String)],
) -> archiver::ChainReport {
    // No ledger: the store and the public key alone.
    let keys: Vec<archiver::IndexVerifier> = verifier.into_iter().cloned().collect();
    archiver::verify_chain(sink, PREFIX, None, &keys, expect, 4)
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
    let dir = tempfile::tempdir().unwrap();
    let signer = IndexSigner::generate().unwrap();
    let (sink, _) = archive_in_runs(dir.path(), &[None, Some(&signer)]).await;
    let r = check(sink.as_ref(), Some(&signer.verifier()), &[]).await;
    assert_eq!(r.signed, 1, "{r:?}");
    assert!(
        r.problems.iter().any(|p| p.contains("not signed")),
        "{:?}",
        r.problems
    );
}

/// A rotated key: parts 1-2 signed with the old key, part 3 with the new one. Checked with
/// both keys, oldest first, the chain is clean and says which key signed which parts; with the
/// new key alone the old parts are not vouched for; in the wrong order, or with the retired
/// key signing a part after the new key did (a leaked old key), it fails.
#[tokio::test]
async fn a_rotated_key_is_checked_with_both_keys_and_a_retired_key_cannot_append() {
    let dir = tempfile::tempdir().unwrap();
    let old = IndexSigner::generate().unwrap();
    let new = IndexSigner::generate().unwrap();
    let (sink, keys) = archive_in_runs(dir.path(), &[Some(&old), Some(&old), Some(&new)]).await;
    let (old_pk, new_pk) = (old.verifier(), new.verifier());
    let chain = |ks: Vec<archiver::IndexVerifier>| {
        let sink = sink.clone();
        async move {
            archiver::verify_chain(sink.as_ref(), PREFIX, None, &ks, &[], 4)
                .await
                .unwrap()
        }
    };
    let both = chain(vec![old_pk.clone(), new_pk.clone()]).await;
    assert!(both.clean(), "{both:?}");
    assert_eq!(both.signed, 3);
    assert_eq!(
        both.signed_by,
        vec![(old_pk.hex(), 1, 2), (new_pk.hex(), 3, 3)]
    );
    let new_only = chain(vec![new_pk.clone()]).await;
    assert!(!new_only.clean());
    assert_eq!(new_only.signed, 1);
    let old_only = chain(vec![old_pk.clone()]).await;
    assert!(
        !old_only.clean(),
        "part 3 and the head are not the old key's"
    );
    let reversed = chain(vec![new_pk.clone(), old_pk.clone()]).await;
    assert!(
        reversed.problems.iter().any(|p| p.contains("retired")),
        "{reversed:?}"
    );

    // The retired key leaked: a forger appends part 4 (continuing the chain) signed with it,
    // and a head naming it.
    let part3 = read(sink.as_ref(), &keys[2]).await;
    let text = String::from_utf8(part3.clone()).unwrap();
    let (head, rest) = text.split_once('\n').unwrap();
    let mut header: serde_json::Value = serde_json::from_str(head).unwrap();
    header["seq"] = 4.into();
    header["previous"] = sha256_hex(&part3).into();
    header["previous_key"] = keys[2].clone().into();
    let forged_key = keys[2].replace("0000000003", "0000000004");
    let forged = format!("{header}\n{rest}").into_bytes();
    put(sink.as_ref(), &forged_key, forged.clone()).await;
    let claim = archiver::PartClaim {
        seq: 4,
        key: forged_key.clone(),
        sha256: sha256_hex(&forged),
        previous: Some(sha256_hex(&part3)),
    };
    put(
        sink.as_ref(),
        &format!("{forged_key}.sig"),
        serde_json::to_vec(&old.sign_part(&claim)).unwrap(),
    )
    .await;
    put(
        sink.as_ref(),
        &format!("{PREFIX}HEAD.json"),
        serde_json::to_vec(&old.sign_head(&claim)).unwrap(),
    )
    .await;
    let leaked = chain(vec![old_pk, new_pk]).await;
    assert!(
        leaked
            .problems
            .iter()
            .any(|p| p.contains(&forged_key) && p.contains("retired")),
        "{leaked:?}"
    );
}
