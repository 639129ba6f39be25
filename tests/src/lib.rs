//! Shared helpers of the end-to-end tests: the real S3 servers the test script started.
//!
//! `scripts/test.sh` starts s3s-fs and Ceph RGW on 127.0.0.1 and exports
//! `E2E_S3S_ENDPOINT` and `E2E_CEPH_ENDPOINT` (plus `E2E_S3_ACCESS_KEY` / `E2E_S3_SECRET_KEY`).
//! A missing variable fails the test: these tests never skip silently.

use aws_credential_types::Credentials;
use sink::{ChecksumMode, S3Sink, S3SinkConfig, TagMode};

/// A real S3-compatible server started by the test script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// s3s-fs: no tagging, no Object Lock.
    S3sFs,
    /// Ceph RADOS Gateway.
    Ceph,
}

impl Server {
    /// Both servers.
    pub const ALL: [Server; 2] = [Server::S3sFs, Server::Ceph];

    fn var(self) -> &'static str {
        match self {
            Server::S3sFs => "E2E_S3S_ENDPOINT",
            Server::Ceph => "E2E_CEPH_ENDPOINT",
        }
    }

    /// The endpoint URL; panics with instructions when the test script did not provide it.
    pub fn endpoint(self) -> String {
        std::env::var(self.var()).unwrap_or_else(|_| {
            panic!("{} is not set: run the tests through ./scripts/test.sh, which starts s3s-fs and Ceph RGW on 127.0.0.1", self.var())
        })
    }

    /// Whether the server keeps object tags.
    pub fn supports_tags(self) -> bool {
        self == Server::Ceph
    }
}

fn key(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run the tests through ./scripts/test.sh"))
}

/// A fresh Ceph bucket created with Object Lock enabled, and a client for it.
pub async fn object_lock_bucket(label: &str) -> (aws_sdk_s3::Client, String) {
    let client = client(Server::Ceph).await;
    let bucket = format!("{label}-{}", std::process::id());
    client
        .create_bucket()
        .bucket(&bucket)
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "create locked bucket {bucket}: {}",
                aws_sdk_s3::error::DisplayErrorContext(&e)
            )
        });
    (client, bucket)
}

/// An S3 client for the server, configured the way the CLI configures one.
pub async fn client(server: Server) -> aws_sdk_s3::Client {
    client_at(&server.endpoint()).await
}

/// An S3 client for any endpoint (a proxy, a server a test started) with the test keys.
pub async fn client_at(endpoint: &str) -> aws_sdk_s3::Client {
    let creds = Credentials::new(
        key("E2E_S3_ACCESS_KEY"),
        key("E2E_S3_SECRET_KEY"),
        None,
        None,
        "e2e",
    );
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(creds)
        .load()
        .await;
    S3Sink::client_from(&sdk, true, ChecksumMode::WhenRequired)
}

/// Creates a fresh bucket with a unique name and returns a sink on it.
pub async fn fresh_sink(server: Server, label: &str) -> S3Sink {
    let client = client(server).await;
    let bucket = format!("{label}-{:08x}", fastrand_u32());
    client
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "create bucket {bucket} on {server:?}: {}",
                aws_sdk_s3::error::DisplayErrorContext(&e)
            )
        });
    let mut cfg = S3SinkConfig::new(bucket);
    cfg.tag_mode = if server.supports_tags() {
        TagMode::Header
    } else {
        TagMode::Disabled
    };
    S3Sink::new(client, cfg)
}

fn fastrand_u32() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (t.as_nanos() as u32) ^ std::process::id().rotate_left(16)
}

/// The `genesys-archiver` binary of this build (`cargo test --workspace` builds it next to the
/// test executables).
pub fn archiver_bin() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target profile directory");
    let bin = dir.join(format!("genesys-archiver{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: build it first (cargo build --workspace)",
        bin.display()
    );
    bin
}

/// The PostgreSQL server the test script started (`E2E_POSTGRES_URL`); panics when unset,
/// because a missing server must fail the run.
pub fn postgres_url() -> String {
    std::env::var("E2E_POSTGRES_URL").unwrap_or_else(|_| {
        panic!("E2E_POSTGRES_URL is not set: run the tests through scripts/test.sh, which starts PostgreSQL")
    })
}

/// Creates an empty database with a unique name and returns its URL.
pub async fn fresh_postgres_database(label: &str) -> String {
    let admin = postgres_url();
    let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to {admin}: {e}"));
    tokio::spawn(conn);
    let name = format!("{label}_{:08x}", fastrand_u32());
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap_or_else(|e| panic!("create database {name}: {e}"));
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    format!("{base}/{name}")
}

/// A `genesys-archiver` command configured by environment for the simulator at `api_base`
/// and the s3s-fs bucket `bucket`, as an operator would run it.
pub fn archiver_command(api_base: &str, bucket: &str) -> std::process::Command {
    command_for(archiver_bin(), api_base, bucket)
}

/// The `genesys-archiverd` binary of this build, beside `genesys-archiver`.
pub fn daemon_bin() -> std::path::PathBuf {
    archiver_bin().with_file_name(format!("genesys-archiverd{}", std::env::consts::EXE_SUFFIX))
}

/// Like [`archiver_command`], for any binary of this build.
pub fn command_for(bin: std::path::PathBuf, api_base: &str, bucket: &str) -> std::process::Command {
    let mut c = std::process::Command::new(bin);
    c.env("GENESYS_CLIENT_ID", "sim-client")
        .env("GENESYS_CLIENT_SECRET", "sim-secret")
        .env("GENESYS_API_BASE", api_base)
        .env("S3_BUCKET", bucket)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", Server::S3sFs.endpoint())
        .env(
            "AWS_ACCESS_KEY_ID",
            std::env::var("E2E_S3_ACCESS_KEY").expect("E2E_S3_ACCESS_KEY"),
        )
        .env(
            "AWS_SECRET_ACCESS_KEY",
            std::env::var("E2E_S3_SECRET_KEY").expect("E2E_S3_SECRET_KEY"),
        )
        .env("S3_FORCE_PATH_STYLE", "true")
        .env_remove("GENESYS_REGION")
        .env_remove("GENESYS_ARCHIVER_STATE")
        .env_remove("GENESYS_ARCHIVER_CONFIG");
    c
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Counts of a [`FaultyProxy`].
#[derive(Debug, Default)]
pub struct ProxyStats {
    /// Requests passed to the store.
    pub forwarded: std::sync::atomic::AtomicU64,
    /// PUTs answered `503 SlowDown` instead.
    pub injected_503: std::sync::atomic::AtomicU64,
    /// PUTs answered with a scripted error instead.
    pub injected_scripted: std::sync::atomic::AtomicU64,
    /// DELETE requests passed to the store.
    pub deletes: std::sync::atomic::AtomicU64,
    /// Every request passed to the store: method and path (with the query).
    pub requests: std::sync::Mutex<Vec<(String, String)>>,
}

impl ProxyStats {
    /// The requests passed to the store whose path contains `part`, as `METHOD path`.
    pub fn requests_to(&self, part: &str) -> Vec<String> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, p)| p.contains(part))
            .map(|(m, p)| format!("{m} {p}"))
            .collect()
    }
}

/// A fault-injecting HTTP proxy in front of an S3 server: a share of PUT requests (object
/// and part uploads) is answered `503 SlowDown` as a busy S3 would; everything else is passed
/// through unchanged (headers included, so SigV4 signatures stay valid).
#[derive(Debug)]
pub struct FaultyProxy {
    /// The proxy's endpoint URL, to configure the S3 client with.
    pub endpoint: String,
    /// What it did.
    pub stats: std::sync::Arc<ProxyStats>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a [`FaultyProxy`] to `upstream` answering 503 to `put_503_rate` of the PUTs.
pub async fn faulty_proxy(upstream: &str, put_503_rate: f64, seed: u64) -> FaultyProxy {
    proxy(upstream, put_503_rate, seed, Vec::new(), false, false).await
}

/// A proxy in front of a store as one without conditional writes answers: every request that
/// carries `If-None-Match` gets `501 NotImplemented`; the rest is passed through.
pub async fn unconditional_proxy(upstream: &str) -> FaultyProxy {
    proxy(upstream, 0.0, 0, Vec::new(), false, true).await
}

/// A proxy that answers as a bucket whose *default* encryption is SSE-KMS (which Ceph 16 and
/// s3s-fs cannot be made to do): every response says `x-amz-server-side-encryption: aws:kms`
/// and its ETag is not the MD5 of the object, as on AWS.
pub async fn kms_default_proxy(upstream: &str) -> FaultyProxy {
    proxy(upstream, 0.0, 0, Vec::new(), true, false).await
}

/// Starts a [`FaultyProxy`] to `upstream` that answers its first PUTs with the scripted
/// `(status, S3 error code)` pairs, in order, and passes everything else through.
pub async fn scripted_proxy(upstream: &str, script: Vec<(u16, &'static str)>) -> FaultyProxy {
    proxy(upstream, 0.0, 0, script, false, false).await
}

async fn proxy(
    upstream: &str,
    put_503_rate: f64,
    seed: u64,
    script: Vec<(u16, &'static str)>,
    kms_default: bool,
    refuse_conditions: bool,
) -> FaultyProxy {
    use http_body_util::BodyExt;
    use std::sync::atomic::Ordering;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let upstream: hyper::Uri = upstream.parse().unwrap();
    let stats = std::sync::Arc::new(ProxyStats::default());
    let client: hyper_util::client::legacy::Client<_, hyper::body::Incoming> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    // Everything a request handler needs, shared.
    struct Shared {
        client: hyper_util::client::legacy::Client<
            hyper_util::client::legacy::connect::HttpConnector,
            hyper::body::Incoming,
        >,
        upstream: hyper::Uri,
        st: std::sync::Arc<ProxyStats>,
        rng: std::sync::Mutex<fastrand::Rng>,
        script: std::sync::Mutex<std::collections::VecDeque<(u16, &'static str)>>,
    }
    let shared = std::sync::Arc::new(Shared {
        client,
        upstream,
        st: stats.clone(),
        rng: std::sync::Mutex::new(fastrand::Rng::with_seed(seed)),
        script: std::sync::Mutex::new(script.into_iter().collect()),
    });
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let shared = shared.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let shared = shared.clone();
                        async move {
                            let Shared {
                                client,
                                upstream,
                                st,
                                rng,
                                script,
                            } = &*shared;
                            if refuse_conditions
                                && req.headers().contains_key(hyper::header::IF_NONE_MATCH)
                            {
                                let _ = req.into_body().collect().await;
                                let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>NotImplemented</Code><Message>A header you provided implies functionality that is not implemented</Message></Error>";
                                return Ok::<_, std::convert::Infallible>(
                                    hyper::Response::builder()
                                        .status(501)
                                        .header("content-type", "application/xml")
                                        .body(
                                            http_body_util::Full::new(bytes::Bytes::from(body))
                                                .map_err(|never| match never {})
                                                .boxed(),
                                        )
                                        .unwrap(),
                                );
                            }
                            let is_put = req.method() == hyper::Method::PUT;
                            let scripted = if is_put {
                                script.lock().unwrap().pop_front()
                            } else {
                                None
                            };
                            let fail = scripted.is_some()
                                || (is_put && rng.lock().unwrap().f64() < put_503_rate);
                            if fail {
                                let (status, code) = match scripted {
                                    Some(s) => {
                                        st.injected_scripted.fetch_add(1, Ordering::Relaxed);
                                        s
                                    }
                                    None => {
                                        st.injected_503.fetch_add(1, Ordering::Relaxed);
                                        (503, "SlowDown")
                                    }
                                };
                                let _ = req.into_body().collect().await;
                                let body = format!(
                                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>injected by the test proxy</Message></Error>"
                                );
                                return Ok::<_, std::convert::Infallible>(
                                    hyper::Response::builder()
                                        .status(status)
                                        .header("content-type", "application/xml")
                                        .body(
                                            http_body_util::Full::new(bytes::Bytes::from(body))
                                                .map_err(|never| match never {})
                                                .boxed(),
                                        )
                                        .unwrap(),
                                );
                            }
                            st.forwarded.fetch_add(1, Ordering::Relaxed);
                            if req.method() == hyper::Method::DELETE {
                                st.deletes.fetch_add(1, Ordering::Relaxed);
                            }
                            let (mut parts, body) = req.into_parts();
                            let pq = parts
                                .uri
                                .path_and_query()
                                .map(|p| p.as_str().to_string())
                                .unwrap_or_else(|| "/".into());
                            st.requests
                                .lock()
                                .unwrap()
                                .push((parts.method.to_string(), pq.clone()));

                            parts.uri = format!(
                                "http://{}{pq}",
                                upstream.authority().expect("upstream has a host")
                            )
                            .parse()
                            .unwrap();
                            match client
                                .request(hyper::Request::from_parts(parts, body))
                                .await
                            {
                                Ok(mut resp) => {
                                    if kms_default {
                                        as_kms_default(resp.headers_mut());
                                    }
                                    Ok(resp.map(|b| {
                                        b.map_err(|e| -> BoxError { Box::new(e) }).boxed()
                                    }))
                                }
                                Err(e) => Ok(hyper::Response::builder()
                                    .status(502)
                                    .body(
                                        http_body_util::Full::new(bytes::Bytes::from(
                                            e.to_string(),
                                        ))
                                        .map_err(|never| match never {})
                                        .boxed(),
                                    )
                                    .unwrap()),
                            }
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    FaultyProxy {
        endpoint: format!("http://{addr}"),
        stats,
        task,
    }
}

/// Asserts that the objects under `recordings/` are exactly one per recording id in
/// `expected`, each named after a recording of `sim` and holding its size and bytes (MD5).
pub async fn assert_store_holds(
    sim: &genesys_sim::SimHandle,
    store: &dyn sink::ObjectSink,
    expected: &std::collections::HashSet<String>,
) {
    use futures::StreamExt;
    let listed: Vec<_> = store.list("recordings/").collect().await;
    let mut seen = std::collections::HashSet::new();
    for item in listed {
        let obj = item.unwrap();
        let rid = obj
            .key
            .rsplit('/')
            .next()
            .and_then(|f| f.split('.').next())
            .unwrap()
            .to_string();
        let sr = sim
            .dataset()
            .recording(&rid)
            .expect("key names a recording");
        assert!(seen.insert(rid.clone()), "{rid} stored twice");
        assert_eq!(obj.size, sr.size, "{}: size", obj.key);
        let data = sink::testkit::read_all(store, &obj.key).await;
        assert_eq!(
            sink::Md5Digest::of(&data).to_hex(),
            hex::encode(sim.expected_md5(sr.index)),
            "{}: bytes",
            obj.key
        );
    }
    assert_eq!(
        &seen, expected,
        "exactly the expected recordings are stored"
    );
}

/// `archive` over the simulator's whole interval, its media on loopback allowed: the start
/// of most archive commands the tests run (more flags follow).
pub fn archive_whole(sim: &genesys_sim::SimHandle) -> Vec<&'static str> {
    let (from, to) = sim_window(sim);
    vec![
        "archive",
        "--from",
        from,
        "--to",
        to,
        "--allow-loopback-media",
    ]
}

/// The simulator's generated interval as `--from`/`--to` values (RFC 3339). The strings are
/// leaked so that tests can keep their argument lists as `&'static str` arrays.
pub fn sim_window(sim: &genesys_sim::SimHandle) -> (&'static str, &'static str) {
    let t = |t: chrono::DateTime<chrono::Utc>| -> &'static str {
        Box::leak(
            t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                .into_boxed_str(),
        )
    };
    (t(sim.config().start), t(sim.config().end()))
}

/// Rewrites a store's response headers as a bucket with default SSE-KMS answers: the ETag is
/// no longer the object's MD5 (its hex digits reversed here) and the encryption is named.
fn as_kms_default(h: &mut hyper::HeaderMap) {
    if let Some(etag) = h.get("etag").and_then(|v| v.to_str().ok()) {
        let hex: String = etag.trim_matches('"').chars().rev().collect();
        if let Ok(v) = format!("\"{hex}\"").parse() {
            h.insert("etag", v);
        }
    }
    h.insert(
        "x-amz-server-side-encryption",
        hyper::header::HeaderValue::from_static("aws:kms"),
    );
}

/// Runs a command to its end off the async runtime and returns its output.
pub async fn output_of(mut c: std::process::Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap()
}

/// A command's stdout then stderr, as text (for assertions and their messages).
pub fn output_text(o: &std::process::Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
