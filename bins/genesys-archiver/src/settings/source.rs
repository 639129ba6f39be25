//! Genesys Cloud settings: flags, environment and file merged into a client configuration,
//! and connecting (the login host reachable, a token).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use genesys_media::{
    AnalyticsMode, ClientConfig, Environment, GenesysClient, MediaPolicy, SourceMode,
};

use super::file::FileConfig;
use super::values::{Analytics, Source, env_nonempty, parse_duration, read_secret_file};
use crate::{ConfigError, config_err};

/// Genesys Cloud connection and source settings.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct SourceArgs {
    /// OAuth client id (client-credentials grant). Also GENESYSCLOUD_OAUTHCLIENT_ID.
    #[arg(long, env = "GENESYS_CLIENT_ID")]
    pub(crate) client_id: Option<String>,
    /// OAuth client secret. Also GENESYSCLOUD_OAUTHCLIENT_SECRET. Prefer --client-secret-file.
    #[arg(long, env = "GENESYS_CLIENT_SECRET", hide_env_values = true)]
    pub(crate) client_secret: Option<String>,
    /// Read the OAuth client secret from this file (trailing newline ignored).
    #[arg(long, env = "GENESYS_CLIENT_SECRET_FILE")]
    pub(crate) client_secret_file: Option<PathBuf>,
    /// Region name (eu_central_1) or host (mypurecloud.de). Also GENESYSCLOUD_REGION.
    #[arg(long, env = "GENESYS_REGION")]
    pub(crate) region: Option<String>,
    /// Full API base URL (overrides --region), e.g. the simulator's.
    #[arg(long, env = "GENESYS_API_BASE")]
    pub(crate) api_base: Option<String>,
    /// How media URLs are obtained [default: batch].
    #[arg(long, value_enum)]
    pub(crate) source: Option<Source>,
    /// formatId for --source per-recording (WAV, WEBM, OGG_OPUS, MP3, ...) [default: WAV].
    #[arg(long)]
    pub(crate) format_id: Option<String>,
    /// Which analytics API lists the conversations: auto (analytics jobs only for what lies
    /// past the details query's 35-day reach), query (the details query only; older parts
    /// are reported as not discoverable), jobs (analytics jobs up to the data lake's
    /// availability date, the details query after it) [default: auto].
    #[arg(long, value_enum)]
    pub(crate) analytics: Option<Analytics>,
    /// Only these media types (audio, screen, chat, email); repeatable.
    #[arg(long = "media-type")]
    pub(crate) media_types: Vec<String>,
    /// Allow media URLs on loopback over plain http (the simulator only).
    #[arg(long)]
    pub(crate) allow_loopback_media: bool,
    /// Fetch media only from these hosts or their subdomains (e.g. the Genesys media hosts
    /// of your region); repeatable, or comma-separated in GENESYS_MEDIA_HOSTS [default: any
    /// public host].
    #[arg(
        long = "media-host",
        env = "GENESYS_MEDIA_HOSTS",
        value_delimiter = ','
    )]
    pub(crate) media_hosts: Vec<String>,
    /// Treat a media response's ETag as its MD5 (the simulator sends one; Genesys does not
    /// document one).
    #[arg(long)]
    pub(crate) verify_source_etag: bool,
    /// API requests per minute to stay below, per token: Genesys Cloud allows 300; give less
    /// when other integrations share the OAuth client [default: 300].
    #[arg(long)]
    pub(crate) api_budget: Option<u32>,
    /// Batch download jobs (100 conversations each) in flight at once while discovery reads
    /// on, 1-32 [default: 4].
    #[arg(long)]
    pub(crate) batch_parallelism: Option<usize>,
    /// First wait before polling a batch download job or a transcode, doubling up to 5s;
    /// 100ms-5s [default: 1s]. Jobs are first polled when the previous one was ready, never
    /// earlier than this.
    #[arg(long)]
    pub(crate) poll_initial: Option<String>,
}

/// Source settings after merging flags, environment and file.
#[derive(Debug, Clone)]
pub(crate) struct SourceSettings {
    pub(crate) client: ClientConfig,
    pub(crate) media_types: Vec<String>,
    pub(crate) verify_source_etag: bool,
    /// Where the API base or region came from (a flag, a variable or a file key), to name it
    /// in errors.
    pub(crate) env_origin: &'static str,
}

/// Which of a flag and its environment variable gave `value` (clap merges them).
fn flag_or_env(flag: &'static str, env: &'static str, value: &str) -> &'static str {
    if std::env::var(env).is_ok_and(|v| v == value) {
        env
    } else {
        flag
    }
}

impl SourceArgs {
    /// Merges flags/env with the file and checks everything that can be checked offline.
    //
    // Long on purpose: one merge per setting (flag, environment, file, default) in the order
    // the settings appear in the file's `[genesys]` table, each with its own error.
    pub(crate) fn resolve(&self, file: &FileConfig) -> Result<SourceSettings, ConfigError> {
        let f = &file.genesys;
        let client_id = self
            .client_id
            .clone()
            .filter(|s| !s.is_empty())
            .or_else(|| env_nonempty("GENESYSCLOUD_OAUTHCLIENT_ID"))
            .or_else(|| f.client_id.clone())
            .ok_or_else(|| {
                config_err(
                    "GENESYS_CLIENT_ID (or --client-id, GENESYSCLOUD_OAUTHCLIENT_ID, genesys.client_id) \
                     is not set: give the OAuth client id of a client-credentials client",
                )
            })?;
        let secret = match (
            self.client_secret.clone().filter(|s| !s.is_empty()),
            &self.client_secret_file,
        ) {
            (Some(s), _) => s,
            (None, Some(p)) => read_secret_file("--client-secret-file", p)?,
            (None, None) => match env_nonempty("GENESYSCLOUD_OAUTHCLIENT_SECRET") {
                Some(s) => s,
                None => match &f.client_secret_file {
                    Some(p) => read_secret_file("genesys.client_secret_file", p)?,
                    None => {
                        return Err(config_err(
                            "GENESYS_CLIENT_SECRET (or --client-secret-file, GENESYSCLOUD_OAUTHCLIENT_SECRET, \
                             genesys.client_secret_file) is not set",
                        ));
                    }
                },
            },
        };
        let api_base = self
            .api_base
            .clone()
            .filter(|s| !s.is_empty())
            .or_else(|| f.api_base.clone());
        let region = self
            .region
            .clone()
            .filter(|s| !s.is_empty())
            .or_else(|| env_nonempty("GENESYSCLOUD_REGION"))
            .or_else(|| f.region.clone());
        let env_origin = match (&self.api_base, &api_base, &self.region, &region) {
            (Some(v), Some(_), ..) if !v.is_empty() => {
                flag_or_env("--api-base", "GENESYS_API_BASE", v)
            }
            (_, Some(_), ..) => "genesys.api_base",
            (_, None, Some(v), Some(_)) if !v.is_empty() => {
                flag_or_env("--region", "GENESYS_REGION", v)
            }
            (_, None, _, Some(_)) if env_nonempty("GENESYSCLOUD_REGION").is_some() => {
                "GENESYSCLOUD_REGION"
            }
            _ => "genesys.region",
        };
        let env = match (&api_base, &region) {
            (Some(base), _) => Environment::from_base_url(base)
                .map_err(|e| config_err(format!("{env_origin}: {e}")))?,
            (None, Some(region)) => Environment::from_region(region)
                .map_err(|e| config_err(format!("{env_origin}: {e}")))?,
            (None, None) => {
                return Err(config_err(
                    "set GENESYS_REGION (e.g. mypurecloud.de or eu_central_1), GENESYSCLOUD_REGION \
                     or GENESYS_API_BASE",
                ));
            }
        };
        let mut ccfg = ClientConfig::new(env, client_id, secret);
        let format_id = self
            .format_id
            .clone()
            .or_else(|| f.format_id.clone())
            .unwrap_or_else(|| "WAV".into());
        ccfg.source = match self.source.or(f.source).unwrap_or(Source::Batch) {
            Source::Batch => SourceMode::Batch,
            Source::PerRecording => SourceMode::PerRecording { format_id },
            Source::Compat => SourceMode::CompatListing,
        };
        ccfg.analytics = match self.analytics.or(f.analytics).unwrap_or(Analytics::Auto) {
            Analytics::Auto => AnalyticsMode::Auto,
            Analytics::Query => AnalyticsMode::Query,
            Analytics::Jobs => AnalyticsMode::Jobs,
        };
        let hosts = if self.media_hosts.is_empty() {
            &f.media_hosts
        } else {
            &self.media_hosts
        };
        let mut allowed_host_suffixes = Vec::new();
        for h in hosts {
            let h = h.trim().trim_start_matches('.').to_ascii_lowercase();
            let plain = !h.is_empty()
                && h.split('.').all(|l| {
                    !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            if !plain {
                return Err(config_err(format!(
                    "--media-host (GENESYS_MEDIA_HOSTS, genesys.media_hosts) {h:?} is not a host \
                     name such as mypurecloud.de (no scheme, port or path)"
                )));
            }
            allowed_host_suffixes.push(h);
        }
        ccfg.media_policy = MediaPolicy {
            allow_loopback: self.allow_loopback_media,
            allowed_host_suffixes,
        };
        if let Some(n) = self.api_budget.or(f.api_budget) {
            if n == 0 {
                return Err(config_err(
                    "--api-budget (genesys.api_budget) 0: give the API requests per minute to \
                     stay below (Genesys Cloud allows 300 per token)",
                ));
            }
            ccfg.requests_per_minute = n;
        }
        if let Some(n) = self.batch_parallelism.or(f.batch_parallelism) {
            if !(1..=32).contains(&n) {
                return Err(config_err(format!(
                    "--batch-parallelism (genesys.batch_parallelism) {n} is out of range: \
                     give 1 to 32 batch download jobs in flight"
                )));
            }
            ccfg.batch_parallelism = n;
        }
        if let Some(v) = self.poll_initial.as_deref().or(f.poll_initial.as_deref()) {
            let d = parse_duration("--poll-initial (genesys.poll_initial)", v)?;
            if d < Duration::from_millis(100) || d > ccfg.poll_max {
                return Err(config_err(format!(
                    "--poll-initial (genesys.poll_initial) {v:?} is out of range: give 100ms to {}",
                    humantime::format_duration(ccfg.poll_max)
                )));
            }
            ccfg.poll_initial = d;
        }
        let media_types = if self.media_types.is_empty() {
            f.media_types.clone()
        } else {
            self.media_types.clone()
        };
        for m in &media_types {
            if !["audio", "screen", "chat", "email"].contains(&m.as_str()) {
                return Err(config_err(format!(
                    "--media-type {m:?} is not one of audio, screen, chat, email"
                )));
            }
        }
        Ok(SourceSettings {
            client: ccfg,
            media_types,
            verify_source_etag: self.verify_source_etag,
            env_origin,
        })
    }
}

/// Builds the client and proves the credentials by getting a token.
/// Builds the Genesys client and gets a first token, so refused credentials are a
/// configuration error (exit 2) before any work. A login host that stays unreachable through
/// the retries is not a configuration error: it is logged, and the run (or the daemon's first
/// poll) tries again and reports it.
pub(crate) async fn connect_source(s: &SourceSettings) -> Result<GenesysClient, ConfigError> {
    let client = GenesysClient::new(s.client.clone()).map_err(|e| config_err(e.to_string()))?;
    // A host that cannot be reached at all is a setting to fix, not an outage to ride out:
    // said at once, naming the host and where it came from (the token call's retries would
    // take most of a minute, and the run another before failing).
    let token_url = s.client.environment.token_url();
    if let Err(why) = reachable(&token_url).await {
        return Err(config_err(format!(
            "cannot reach the Genesys Cloud login host of {token_url} ({}): {why}; check the region or API base and the network",
            s.env_origin
        )));
    }
    match client.tokens().token().await {
        Ok(_) => {}
        Err(e @ (genesys_media::Error::Auth { .. } | genesys_media::Error::InvalidArgument(_))) => {
            return Err(config_err(e.to_string()));
        }
        Err(e) => {
            tracing::warn!(error = %e, "the login host did not issue a token yet; going on, it is asked again")
        }
    }
    Ok(client)
}

/// Whether a TCP connection to `url`'s host and port opens within 10 seconds (the name
/// resolves, something listens). The client connects directly (no HTTP proxy), so this is
/// what its requests need.
async fn reachable(url: &str) -> Result<(), String> {
    let u = url::Url::parse(url).map_err(|e| e.to_string())?;
    let host = u.host_str().ok_or("no host")?.to_string();
    let port = u.port_or_known_default().ok_or("no port")?;
    let connect = tokio::net::TcpStream::connect((host.as_str(), port));
    match tokio::time::timeout(Duration::from_secs(10), connect).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer within 10 s".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::file::{FileConfig, FileGenesys};

    fn args() -> SourceArgs {
        SourceArgs {
            client_id: Some("id".into()),
            client_secret: Some("secret".into()),
            api_base: Some("https://api.mypurecloud.de".into()),
            ..SourceArgs::default()
        }
    }

    fn file(batch_parallelism: Option<usize>, poll_initial: Option<&str>) -> FileConfig {
        FileConfig {
            genesys: FileGenesys {
                api_budget: Some(120),
                batch_parallelism,
                poll_initial: poll_initial.map(str::to_string),
                ..FileGenesys::default()
            },
            ..FileConfig::default()
        }
    }

    #[test]
    fn batch_tuning_defaults_then_file_then_flags() {
        let default = ClientConfig::new(Environment::from_region("eu_central_1").unwrap(), "", "");
        let s = args().resolve(&FileConfig::default()).unwrap();
        assert_eq!(s.client.batch_parallelism, default.batch_parallelism);
        assert_eq!(s.client.poll_initial, default.poll_initial);
        assert_eq!(s.client.requests_per_minute, default.requests_per_minute);

        let from_file = file(Some(12), Some("250ms"));
        let s = args().resolve(&from_file).unwrap();
        assert_eq!(s.client.batch_parallelism, 12);
        assert_eq!(s.client.requests_per_minute, 120);
        assert_eq!(s.client.poll_initial, Duration::from_millis(250));

        let flags = SourceArgs {
            batch_parallelism: Some(16),
            poll_initial: Some("2s".into()),
            api_budget: Some(200),
            ..args()
        };
        let s = flags.resolve(&from_file).unwrap();
        assert_eq!(s.client.batch_parallelism, 16);
        assert_eq!(s.client.poll_initial, Duration::from_secs(2));
        assert_eq!(s.client.requests_per_minute, 200);
    }

    #[test]
    fn analytics_mode_defaults_to_auto_then_file_then_flag() {
        assert_eq!(
            args()
                .resolve(&FileConfig::default())
                .unwrap()
                .client
                .analytics,
            AnalyticsMode::Auto
        );
        let mut f = FileConfig::default();
        f.genesys.analytics = Some(Analytics::Jobs);
        assert_eq!(
            args().resolve(&f).unwrap().client.analytics,
            AnalyticsMode::Jobs
        );
        let flags = SourceArgs {
            analytics: Some(Analytics::Query),
            ..args()
        };
        assert_eq!(
            flags.resolve(&f).unwrap().client.analytics,
            AnalyticsMode::Query
        );
        let parsed: FileConfig = toml::from_str("[genesys]\nanalytics = \"query\"\n").unwrap();
        assert_eq!(parsed.genesys.analytics, Some(Analytics::Query));
        assert!(toml::from_str::<FileConfig>("[genesys]\nanalytics = \"lake\"\n").is_err());
    }

    #[test]
    fn media_hosts_from_file_or_flags_become_the_allow_list() {
        let url = |h: &str| genesys_media::MediaUrl::parse(&format!("https://{h}/m.ogg")).unwrap();
        let mut f = FileConfig::default();
        f.genesys.media_hosts = vec!["Example.COM".into()];
        let s = args().resolve(&f).unwrap();
        assert_eq!(s.client.media_policy.allowed_host_suffixes, ["example.com"]);
        assert!(s.client.media_policy.check(&url("cdn.example.com")).is_ok());
        assert!(s.client.media_policy.check(&url("example.org")).is_err());
        let flags = SourceArgs {
            media_hosts: vec!["mypurecloud.de".into(), ".pure.cloud".into()],
            ..args()
        };
        let s = flags.resolve(&f).unwrap();
        assert_eq!(
            s.client.media_policy.allowed_host_suffixes,
            ["mypurecloud.de", "pure.cloud"],
            "flags replace the file's list"
        );
        assert!(s.client.media_policy.check(&url("example.com")).is_err());
        let open = args().resolve(&FileConfig::default()).unwrap();
        assert!(open.client.media_policy.check(&url("example.org")).is_ok());
        for bad in ["https://x.com", "x.com:443", "x.com/p", "", "a..b"] {
            let err = SourceArgs {
                media_hosts: vec![bad.into()],
                ..args()
            }
            .resolve(&FileConfig::default())
            .unwrap_err()
            .0;
            assert!(err.contains("--media-host"), "{bad}: {err}");
        }
    }

    #[test]
    fn batch_tuning_out_of_range_is_refused_naming_the_setting() {
        for (n, poll, needle) in [
            (
                Some(0),
                None,
                "--batch-parallelism (genesys.batch_parallelism) 0",
            ),
            (
                Some(33),
                None,
                "--batch-parallelism (genesys.batch_parallelism) 33",
            ),
            (
                None,
                Some("10ms"),
                "--poll-initial (genesys.poll_initial) \"10ms\"",
            ),
            (
                None,
                Some("1m"),
                "--poll-initial (genesys.poll_initial) \"1m\"",
            ),
            (
                None,
                Some("soon"),
                "--poll-initial (genesys.poll_initial) \"soon\"",
            ),
        ] {
            let err = args().resolve(&file(n, poll)).unwrap_err().0;
            assert!(err.contains(needle), "wanted {needle:?} in {err}");
        }
        let zero = SourceArgs {
            api_budget: Some(0),
            ..args()
        };
        let err = zero.resolve(&FileConfig::default()).unwrap_err().0;
        assert!(err.contains("--api-budget (genesys.api_budget) 0"), "{err}");
    }
}
