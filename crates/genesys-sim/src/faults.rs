//! Fault injection: per recording ([`FaultSpec`]) or drawn at random per request ([`FaultRates`]).

use std::str::FromStr;
use std::time::Duration;

/// A fault the simulator can inject.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// Media GET answers 403 as if the URL had expired.
    ExpiredUrl,
    /// API and media requests answer 429 with `Retry-After`.
    RateLimited,
    /// Media GET answers 503.
    ServerError,
    /// The media connection is reset after half the body.
    Reset,
    /// The media body ends early (fewer bytes than `Content-Length`).
    Truncated,
    /// Media bytes are corrupted in the middle (length unchanged, MD5 differs).
    Corrupt,
    /// The media body is sent slowly (`delay` per 64 KiB block).
    Slow(Duration),
    /// The media body is sent slowly (`delay` per 64 KiB block) and the connection is reset
    /// after half of it: a long transfer that fails.
    SlowReset(Duration),
    /// The recording is archived: batch results carry `errorMsg` and no URL.
    Archived,
    /// Not a fault but a shape the contract allows: the recording has two files. A batch
    /// request returns two results for it ("a recording could be associated with multiple
    /// results"), and the per-recording GET two `mediaUris` channels, `"0"` and `"1"`, each
    /// with its own bytes.
    TwoFiles,
    /// Two files, as with `TwoFiles`, but the batch request's result for the second carries
    /// `errorMsg` and no URL while the recording's `fileState` stays `AVAILABLE` (one file
    /// failed to process): a client must not settle the recording on the first file alone.
    SecondFileFailed,
}

/// A fault for one recording, applied to its first `times` media requests (or always).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultSpec {
    /// Recording index in the dataset.
    pub recording: usize,
    /// What happens.
    pub fault: Fault,
    /// How many requests it affects; `None` means every request (a persistent fault).
    pub times: Option<u32>,
}

/// Error parsing a [`FaultSpec`] or [`Fault`].
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid fault {input:?}: {reason} (expected INDEX=KIND[xTIMES], KIND one of expired, 429, 5xx, reset, truncated, corrupt, slow, slowreset, archived, twofiles, partfailed)"
)]
pub struct FaultParseError {
    input: String,
    reason: &'static str,
}

impl FromStr for Fault {
    type Err = FaultParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "expired" | "403" => Fault::ExpiredUrl,
            "429" | "ratelimit" => Fault::RateLimited,
            "5xx" | "503" => Fault::ServerError,
            "reset" => Fault::Reset,
            "truncated" => Fault::Truncated,
            "corrupt" => Fault::Corrupt,
            "slow" => Fault::Slow(Duration::from_millis(20)),
            "slowreset" => Fault::SlowReset(Duration::from_millis(20)),
            "archived" => Fault::Archived,
            "twofiles" | "tworesults" | "twochannels" => Fault::TwoFiles,
            "partfailed" | "secondfilefailed" => Fault::SecondFileFailed,
            _ => {
                return Err(FaultParseError {
                    input: s.into(),
                    reason: "unknown fault kind",
                });
            }
        })
    }
}

impl FromStr for FaultSpec {
    type Err = FaultParseError;
    /// Parses `INDEX=KIND` or `INDEX=KINDxTIMES`, e.g. `3=corrupt`, `7=5xx x2`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| FaultParseError {
            input: s.into(),
            reason,
        };
        let (idx, rest) = s.split_once('=').ok_or_else(|| err("missing '='"))?;
        let recording = idx
            .trim()
            .parse()
            .map_err(|_| err("index is not a number"))?;
        let rest = rest.replace(' ', "");
        let (kind, times) = match rest.rsplit_once('x') {
            Some((k, t))
                if !k.is_empty() && t.chars().all(|c| c.is_ascii_digit()) && !t.is_empty() =>
            {
                (
                    k.to_string(),
                    Some(t.parse().map_err(|_| err("bad repeat count"))?),
                )
            }
            _ => (rest, None),
        };
        let fault: Fault = kind.parse().map_err(|_| err("unknown fault kind"))?;
        Ok(FaultSpec {
            recording,
            fault,
            times,
        })
    }
}

/// Probabilities (0.0 to 1.0) of faults drawn independently for each request.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FaultRates {
    /// API requests answered 429.
    pub api_429: f64,
    /// API requests answered 503.
    pub api_5xx: f64,
    /// Media requests answered 503.
    pub media_5xx: f64,
    /// Media connections reset mid-body.
    pub media_reset: f64,
    /// Media bodies corrupted.
    pub media_corrupt: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_specs() {
        assert_eq!(
            "3=corrupt".parse::<FaultSpec>().unwrap(),
            FaultSpec {
                recording: 3,
                fault: Fault::Corrupt,
                times: None
            }
        );
        assert_eq!(
            "7=5xxx2".parse::<FaultSpec>().unwrap(),
            FaultSpec {
                recording: 7,
                fault: Fault::ServerError,
                times: Some(2)
            }
        );
        assert_eq!(
            "1=expired x1".parse::<FaultSpec>().unwrap(),
            FaultSpec {
                recording: 1,
                fault: Fault::ExpiredUrl,
                times: Some(1)
            }
        );
        let e = "x=corrupt".parse::<FaultSpec>().unwrap_err().to_string();
        assert!(e.contains("index is not a number"), "{e}");
        assert!("2=melt".parse::<FaultSpec>().is_err());
        assert!("2".parse::<FaultSpec>().is_err());
    }
}
