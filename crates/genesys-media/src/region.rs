//! Genesys Cloud regions and the API / login base URLs derived from them.

use std::fmt;
use std::str::FromStr;

/// The 17 public Genesys Cloud regions: (name, API host suffix after `api.`).
pub const REGIONS: &[(&str, &str)] = &[
    ("us_east_1", "mypurecloud.com"),
    ("eu_west_1", "mypurecloud.ie"),
    ("ap_southeast_2", "mypurecloud.com.au"),
    ("ap_northeast_1", "mypurecloud.jp"),
    ("eu_central_1", "mypurecloud.de"),
    ("us_west_2", "usw2.pure.cloud"),
    ("ca_central_1", "cac1.pure.cloud"),
    ("eu_central_2", "euc2.pure.cloud"),
    ("ap_southeast_1", "apse1.pure.cloud"),
    ("ap_northeast_2", "apne2.pure.cloud"),
    ("eu_west_2", "euw2.pure.cloud"),
    ("ap_south_1", "aps1.pure.cloud"),
    ("us_east_2", "use2.us-gov-pure.cloud"),
    ("sa_east_1", "sae1.pure.cloud"),
    ("me_central_1", "mec1.pure.cloud"),
    ("ap_northeast_3", "apne3.pure.cloud"),
    ("mx_central_1", "mxc1.pure.cloud"),
];

/// Where the Platform API and the login service of one org live.
///
/// Built from a region name (`eu_central_1`), a region host (`mypurecloud.de`,
/// `api.mypurecloud.de`) or a full base URL (`https://api.mypurecloud.de`,
/// `http://127.0.0.1:8080` for the simulator). The login URL is derived as the official SDKs
/// do: `//api.` becomes `//login.`; a base URL without `api.` (the simulator) serves both.
#[derive(Clone, PartialEq, Eq)]
pub struct Environment {
    api_base: String,
    login_base: String,
}

impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Environment")
            .field("api_base", &self.api_base)
            .field("login_base", &self.login_base)
            .finish()
    }
}

/// A region or base URL that could not be understood.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "unknown Genesys Cloud region {input:?}: use a region name such as eu_central_1, a host such as mypurecloud.de, or a base URL such as https://api.mypurecloud.de"
)]
pub struct RegionError {
    input: String,
}

impl Environment {
    /// Parses a region name or host (see [`REGIONS`]).
    pub fn from_region(region: &str) -> Result<Self, RegionError> {
        let r = region.trim().trim_end_matches('/');
        let err = || RegionError {
            input: region.to_string(),
        };
        if r.is_empty() {
            return Err(err());
        }
        if r.contains("://") {
            return Self::from_base_url(r);
        }
        let norm = r.to_ascii_lowercase().replace('-', "_");
        if let Some((_, host)) = REGIONS.iter().find(|(name, _)| *name == norm) {
            return Self::from_base_url(&format!("https://api.{host}"));
        }
        let host = r
            .strip_prefix("api.")
            .or_else(|| r.strip_prefix("login."))
            .unwrap_or(r);
        if REGIONS.iter().any(|(_, h)| h.eq_ignore_ascii_case(host)) {
            return Self::from_base_url(&format!("https://api.{}", host.to_ascii_lowercase()));
        }
        Err(err())
    }

    /// Uses a full API base URL (scheme, host, optional port; no path).
    pub fn from_base_url(base: &str) -> Result<Self, RegionError> {
        let err = || RegionError {
            input: base.to_string(),
        };
        let u = url::Url::parse(base.trim()).map_err(|_| err())?;
        if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() || u.path().len() > 1 {
            return Err(err());
        }
        let api_base = base.trim().trim_end_matches('/').to_string();
        let login_base = api_base.replacen("//api.", "//login.", 1);
        Ok(Self {
            api_base,
            login_base,
        })
    }

    /// The API base URL, e.g. `https://api.mypurecloud.de`.
    pub fn api_base(&self) -> &str {
        &self.api_base
    }

    /// The token endpoint, e.g. `https://login.mypurecloud.de/oauth/token`.
    pub fn token_url(&self) -> String {
        format!("{}/oauth/token", self.login_base)
    }
}

impl FromStr for Environment {
    type Err = RegionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_region(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_names_hosts_and_urls() {
        assert_eq!(REGIONS.len(), 17);
        let e = Environment::from_region("eu_central_1").unwrap();
        assert_eq!(e.api_base(), "https://api.mypurecloud.de");
        assert_eq!(e.token_url(), "https://login.mypurecloud.de/oauth/token");
        assert_eq!(Environment::from_region("mypurecloud.de").unwrap(), e);
        assert_eq!(Environment::from_region("api.mypurecloud.de").unwrap(), e);
        assert_eq!(Environment::from_region("eu-central-1").unwrap(), e);
        let gov = Environment::from_region("us_east_2").unwrap();
        assert_eq!(
            gov.token_url(),
            "https://login.use2.us-gov-pure.cloud/oauth/token"
        );
        let sim = Environment::from_region("http://127.0.0.1:9000/").unwrap();
        assert_eq!(sim.api_base(), "http://127.0.0.1:9000");
        assert_eq!(sim.token_url(), "http://127.0.0.1:9000/oauth/token");
    }

    #[test]
    fn unknown_regions_are_refused_with_the_input_named() {
        for bad in [
            "",
            "mars_north_1",
            "example.com",
            "ftp://api.mypurecloud.com",
            "https://api.x/some/path",
        ] {
            let e = Environment::from_region(bad).unwrap_err();
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
    }
}
