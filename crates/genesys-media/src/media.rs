//! Presigned media URLs (redacted when shown) and the policy deciding which hosts may be
//! fetched.

use std::fmt;
use std::net::IpAddr;

use crate::error::{Error, Result};

/// A presigned media URL. `Display` and `Debug` show scheme, host and path only: the query
/// string carries the signature and never reaches logs or errors.
#[derive(Clone, PartialEq, Eq)]
pub struct MediaUrl(url::Url);

impl MediaUrl {
    /// Parses a URL; only `http` and `https` are accepted.
    pub fn parse(s: &str) -> Result<Self> {
        let u = url::Url::parse(s)
            .map_err(|e| Error::Refused(format!("media URL is not a valid URL ({e})")))?;
        if !matches!(u.scheme(), "http" | "https") || u.host().is_none() {
            return Err(Error::Refused(format!(
                "media URL scheme {:?} is not http(s)",
                u.scheme()
            )));
        }
        Ok(Self(u))
    }

    /// The full URL including the signature. Use only to make the request.
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }

    /// The path (no query string: safe to show and stable across re-signing).
    pub fn path(&self) -> &str {
        self.0.path()
    }

    /// The host, for allow-list checks and metrics.
    pub fn host(&self) -> String {
        self.0.host_str().unwrap_or_default().to_string()
    }
}

impl fmt::Display for MediaUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}",
            self.0.scheme(),
            self.0.host_str().unwrap_or_default()
        )?;
        if let Some(p) = self.0.port() {
            write!(f, ":{p}")?;
        }
        f.write_str(self.0.path())?;
        if self.0.query().is_some() {
            f.write_str("?<redacted>")?;
        }
        Ok(())
    }
}

impl fmt::Debug for MediaUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MediaUrl({self})")
    }
}

/// Which media hosts may be fetched. Media URLs come from the API's responses; a hostile or
/// broken source must not make the archiver fetch internal addresses (cloud metadata at
/// 169.254.169.254, private networks, loopback).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MediaPolicy {
    /// Allow loopback hosts and plain `http` (the simulator needs this; off by default).
    pub allow_loopback: bool,
    /// If not empty, the host must equal or end with `.`+ one of these suffixes.
    pub allowed_host_suffixes: Vec<String>,
}

impl MediaPolicy {
    /// Checks a URL against the policy.
    pub fn check(&self, url: &MediaUrl) -> Result<()> {
        let host = url
            .0
            .host_str()
            .unwrap_or_default()
            .trim_matches(['[', ']'])
            .to_ascii_lowercase();
        let refuse = |why: &str| Err(Error::Refused(format!("media host {host:?} {why}")));
        let ip = host.parse::<IpAddr>().ok();
        let loopback = host == "localhost" || ip.is_some_and(|ip| ip.is_loopback());
        if loopback {
            if !self.allow_loopback {
                return refuse(
                    "is loopback; allow it explicitly (MediaPolicy::allow_loopback, the CLI's --allow-loopback-media; simulator only)",
                );
            }
        } else {
            if let Some(ip) = ip
                && !is_public(ip)
            {
                return refuse("is a private, link-local or reserved address");
            }
            if url.0.scheme() != "https" && !self.allow_loopback {
                return refuse("is not served over https");
            }
        }
        if !self.allowed_host_suffixes.is_empty()
            && !loopback
            && !self.allowed_host_suffixes.iter().any(|s| {
                let s = s.trim_start_matches('.').to_ascii_lowercase();
                host == s || host.ends_with(&format!(".{s}"))
            })
        {
            return refuse("is not in the allowed media hosts");
        }
        Ok(())
    }
}

/// Whether media may be fetched from `ip`: not private, loopback, link-local, shared
/// (100.64/10), benchmarking (198.18/15), IETF protocol (192.0.0/24), documentation,
/// multicast or reserved; for IPv6 also not unique-local, NAT64 (64:ff9b::/96), 6to4
/// (2002::/16), IPv4-compatible (::/96) or IPv4-mapped to any of those.
pub(crate) fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_private()
                || v4.is_link_local()
                || v4.is_loopback()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || (o[0] == 198 && (o[1] & 0xfe) == 18)
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || o[0] >= 224)
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || (s[0] & 0xff00) == 0xff00
                || (s[0] == 0x0064 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0])
                || s[0] == 0x2002
                || (s[0] == 0x2001 && s[1] == 0x0db8)
                || s[..6] == [0, 0, 0, 0, 0, 0]
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| !is_public(IpAddr::V4(v4))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_and_reserved_ranges_are_not_public() {
        for ip in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "198.18.0.1",
            "198.19.255.255",
            "192.0.0.8",
            "224.0.0.1",
            "0.0.0.0",
            "::1",
            "::",
            "fc00::1",
            "fe80::1",
            "ff02::1",
            "64:ff9b::a9fe:a9fe",
            "2002:a9fe:a9fe::1",
            "::a9fe:a9fe",
            "::ffff:10.0.0.1",
            "2001:db8::1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "52.95.110.1", "198.20.0.1", "2600:1f18::1"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn display_redacts_the_signature() {
        let u = MediaUrl::parse(
            "https://media.example.com:8443/a/b.ogg?X-Signature=SECRET&X-Expires=1",
        )
        .unwrap();
        assert_eq!(
            u.to_string(),
            "https://media.example.com:8443/a/b.ogg?<redacted>"
        );
        assert!(!format!("{u:?}").contains("SECRET"));
        assert!(u.expose().contains("SECRET"));
        assert!(MediaUrl::parse("file:///etc/passwd").is_err());
    }

    #[test]
    fn display_shows_the_parsed_path_and_never_userinfo_query_or_fragment() {
        // Found by the media_url fuzz target (whose oracle it tripped, not a leak): a NUL in
        // the path is percent-encoded, and "%00X-Signature=..." then holds the query's text.
        let u = MediaUrl::parse("https:000//mediot\0X-Signature=abgg?0X-Signature=a").unwrap();
        assert_eq!(
            u.to_string(),
            "https://0.0.0.0//mediot%00X-Signature=abgg?<redacted>"
        );
        assert!(
            MediaPolicy::default().check(&u).is_err(),
            "0.0.0.0 is refused"
        );
        let u = MediaUrl::parse("https://user:hunter2@media.example.com/r.wav?sig=s3cr3t#frag")
            .unwrap();
        assert_eq!(u.to_string(), "https://media.example.com/r.wav?<redacted>");
        let shown = format!("{u} {u:?}");
        for secret in ["hunter2", "user", "s3cr3t", "frag"] {
            assert!(!shown.contains(secret), "{secret} shown: {shown}");
        }
    }

    #[test]
    fn policy_refuses_internal_addresses() {
        let p = MediaPolicy::default();
        let ok = |s: &str| p.check(&MediaUrl::parse(s).unwrap()).is_ok();
        assert!(ok("https://prod-recordings.s3.amazonaws.com/x"));
        for bad in [
            "http://169.254.169.254/latest/meta-data",
            "https://10.0.0.1/x",
            "https://192.168.1.1/x",
            "https://127.0.0.1/x",
            "https://localhost/x",
            "https://[::1]/x",
            "https://[fd00::1]/x",
            "https://[::ffff:10.0.0.1]/x",
            "http://media.example.com/x",
        ] {
            assert!(!ok(bad), "{bad} must be refused");
        }
        let sim = MediaPolicy {
            allow_loopback: true,
            ..MediaPolicy::default()
        };
        assert!(
            sim.check(&MediaUrl::parse("http://127.0.0.1:9000/m").unwrap())
                .is_ok()
        );
        assert!(
            sim.check(&MediaUrl::parse("http://169.254.169.254/").unwrap())
                .is_err()
        );
        let listed = MediaPolicy {
            allowed_host_suffixes: vec!["amazonaws.com".into()],
            ..MediaPolicy::default()
        };
        assert!(
            listed
                .check(&MediaUrl::parse("https://b.s3.amazonaws.com/x").unwrap())
                .is_ok()
        );
        assert!(
            listed
                .check(&MediaUrl::parse("https://evilamazonaws.com/x").unwrap())
                .is_err()
        );
    }
}
