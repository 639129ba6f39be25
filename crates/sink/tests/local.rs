//! The conformance suite on the local-directory sink, plus its own guarantees.

use std::sync::Arc;

use sink::testkit::{Capabilities, chunked, failing_after, pattern, run_conformance};
use sink::{LocalDirSink, ObjectSink, PutOptions};

#[tokio::test]
async fn local_dir_sink_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let s: Arc<dyn ObjectSink> = Arc::new(LocalDirSink::new(dir.path()));
    run_conformance(
        s,
        "conformance",
        Capabilities {
            tags: true,
            large: true,
        },
    )
    .await;
}

#[tokio::test]
async fn never_leaves_a_partial_file_and_sweeps_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    let s = LocalDirSink::new(dir.path());
    let opts = PutOptions {
        content_length: Some(100_000),
        ..PutOptions::default()
    };
    assert!(
        s.put("a/b/c.bin", failing_after(pattern(50_000, 1)), opts)
            .await
            .is_err()
    );
    let leftovers: Vec<_> = walk(dir.path());
    assert!(
        leftovers.is_empty(),
        "no files after a failed put: {leftovers:?}"
    );
    std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
    std::fs::write(dir.path().join("a/b/.c.bin.partial-0123"), b"junk").unwrap();
    assert_eq!(
        s.sweep_uploads("a", &[]).await.unwrap().temp_files_removed,
        1
    );
    assert!(walk(dir.path()).is_empty());
    s.put(
        "a/b/c.bin",
        chunked(pattern(10, 2), 3),
        PutOptions::default(),
    )
    .await
    .unwrap();
    let mut files = walk(dir.path());
    files.sort();
    assert_eq!(
        files,
        vec!["a/b/c.bin".to_string(), "a/b/c.bin.meta.json".to_string()]
    );
    assert!(
        s.put(
            "a/b/x.meta.json",
            chunked(pattern(1, 0), 1),
            PutOptions::default()
        )
        .await
        .is_err(),
        "sidecar names are reserved"
    );
}

fn walk(root: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out
}
