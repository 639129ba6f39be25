//! Times as people type them on the command line: full RFC 3339, a date (midnight), a date
//! and time without a zone (both in `--tz`, UTC by default), `now`, or a duration ago.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::{ConfigError, config_err};

/// The zone in which dates and times without an offset are read: `UTC`, a fixed offset
/// (`+02:00`, `-0530`) or an IANA name (`Europe/Berlin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Zone {
    Fixed(chrono::FixedOffset),
    Named(Tz),
}

impl Default for Zone {
    fn default() -> Self {
        Zone::Fixed(chrono::FixedOffset::east_opt(0).expect("UTC offset"))
    }
}

/// Parses `--tz`.
pub(crate) fn parse_zone(v: &str) -> Result<Zone, ConfigError> {
    let v = v.trim();
    if v.eq_ignore_ascii_case("utc") || v == "Z" {
        return Ok(Zone::default());
    }
    if v.starts_with('+') || v.starts_with('-') {
        let digits: String = v[1..].chars().filter(|c| *c != ':').collect();
        let parsed = (digits.len() == 4 && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| {
                let h: i32 = digits[..2].parse().ok()?;
                let m: i32 = digits[2..].parse().ok()?;
                let secs = (h * 3600 + m * 60) * if v.starts_with('-') { -1 } else { 1 };
                (h <= 14 && m < 60)
                    .then(|| chrono::FixedOffset::east_opt(secs))
                    .flatten()
            })
            .flatten();
        return parsed.map(Zone::Fixed).ok_or_else(|| {
            config_err(format!(
                "--tz {v:?} is not an offset such as +02:00 or -0530"
            ))
        });
    }
    v.parse::<Tz>().map(Zone::Named).map_err(|_| {
        config_err(format!(
            "--tz {v:?} is not a time zone: use UTC, an offset such as +02:00, or a name such as Europe/Berlin"
        ))
    })
}

impl Zone {
    /// `t` as a local time in this zone, RFC 3339 with its offset (seconds precision).
    pub(crate) fn show(&self, t: DateTime<Utc>) -> String {
        let fmt = "%Y-%m-%dT%H:%M:%S%:z";
        match self {
            Zone::Fixed(z) if z.local_minus_utc() == 0 => {
                t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
            }
            Zone::Fixed(z) => t.with_timezone(z).format(fmt).to_string(),
            Zone::Named(z) => t.with_timezone(z).format(fmt).to_string(),
        }
    }

    fn local(&self, flag: &str, v: &str, t: NaiveDateTime) -> Result<DateTime<Utc>, ConfigError> {
        let resolved = match self {
            Zone::Fixed(z) => z
                .from_local_datetime(&t)
                .earliest()
                .map(|d| d.with_timezone(&Utc)),
            Zone::Named(z) => z
                .from_local_datetime(&t)
                .earliest()
                .map(|d| d.with_timezone(&Utc)),
        };
        resolved.ok_or_else(|| {
            config_err(format!(
                "--{flag} {v:?} does not exist in that time zone (a daylight-saving gap)"
            ))
        })
    }
}

/// Parses a `--from`/`--to`/`--since` value, relative forms against `now`.
pub(crate) fn parse_time_at(
    flag: &str,
    v: &str,
    zone: Zone,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, ConfigError> {
    let s = v.trim();
    if s.eq_ignore_ascii_case("now") {
        return Ok(now);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    // RFC 3339 without seconds, as people type it: 2026-12-03T00:00Z, 2026-12-03T08:00+02:00.
    if let Some(naive) = s.strip_suffix(['Z', 'z'])
        && let Ok(t) = NaiveDateTime::parse_from_str(naive, "%Y-%m-%dT%H:%M")
    {
        return Ok(t.and_utc());
    }
    for f in ["%Y-%m-%dT%H:%M%:z", "%Y-%m-%dT%H:%M%z"] {
        if let Ok(t) = DateTime::parse_from_str(s, f) {
            return Ok(t.with_timezone(&Utc));
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return zone.local(flag, v, d.and_hms_opt(0, 0, 0).expect("midnight"));
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return zone.local(flag, v, t);
        }
    }
    // A duration ago: 24h, 7d, 90m, 2w, "1d 12h".
    if s.starts_with(|c: char| c.is_ascii_digit())
        && let Ok(d) = humantime::parse_duration(s)
        && let Ok(d) = chrono::Duration::from_std(d)
        && let Some(t) = now.checked_sub_signed(d)
    {
        return Ok(t);
    }
    Err(config_err(format!(
        "--{flag} {v:?} is not a time; accepted forms: 2026-11-01 (midnight in --tz, UTC by default), \
         2026-11-01T08:30 (in --tz), 2026-11-01T08:30Z or 2026-11-01T08:30:00+02:00 (RFC 3339, seconds optional), 24h or 7d (that long ago), now"
    )))
}

/// [`parse_time_at`] against the current time.
pub(crate) fn parse_time(flag: &str, v: &str, zone: Zone) -> Result<DateTime<Utc>, ConfigError> {
    parse_time_at(flag, v, zone, Utc::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_accepted_forms() {
        let now = t("2026-11-27T10:00:00Z");
        let utc = Zone::default();
        let berlin = parse_zone("Europe/Berlin").unwrap();
        let plus2 = parse_zone("+02:00").unwrap();
        let table: &[(&str, Zone, &str)] = &[
            ("2026-11-01T00:00:00Z", utc, "2026-11-01T00:00:00Z"),
            ("2026-11-01T08:00:00+02:00", utc, "2026-11-01T06:00:00Z"),
            ("2026-12-03T00:00Z", berlin, "2026-12-03T00:00:00Z"),
            ("2026-12-03T08:00+02:00", utc, "2026-12-03T06:00:00Z"),
            ("2026-12-03T08:00-0530", utc, "2026-12-03T13:30:00Z"),
            ("2026-11-01", utc, "2026-11-01T00:00:00Z"),
            ("2026-11-01", berlin, "2026-10-31T23:00:00Z"),
            ("2026-07-01", berlin, "2026-06-30T22:00:00Z"),
            ("2026-11-01", plus2, "2026-10-31T22:00:00Z"),
            ("2026-11-01T08:30", utc, "2026-11-01T08:30:00Z"),
            ("2026-11-01 08:30:15", berlin, "2026-11-01T07:30:15Z"),
            ("24h", berlin, "2026-11-26T10:00:00Z"),
            ("7d", utc, "2026-11-20T10:00:00Z"),
            ("90m", utc, "2026-11-27T08:30:00Z"),
            ("1d 12h", utc, "2026-11-25T22:00:00Z"),
            ("now", utc, "2026-11-27T10:00:00Z"),
            (" 2026-11-01 ", utc, "2026-11-01T00:00:00Z"),
        ];
        for (input, zone, want) in table {
            assert_eq!(
                parse_time_at("from", input, *zone, now).unwrap(),
                t(want),
                "{input} in {zone:?}"
            );
        }
    }

    #[test]
    fn bad_times_and_zones_name_the_flag_and_the_forms() {
        let now = t("2026-11-27T10:00:00Z");
        for bad in [
            "yesterday",
            "2026-13-01",
            "2026-11-01T25:00",
            "-3d",
            "",
            "7 parsecs",
        ] {
            let e = parse_time_at("from", bad, Zone::default(), now)
                .unwrap_err()
                .0;
            assert!(
                e.contains("--from") && e.contains("accepted forms"),
                "{bad}: {e}"
            );
        }
        // 02:30 on the last Sunday of March does not exist in Berlin.
        let gap = parse_time_at(
            "to",
            "2026-03-29T02:30",
            parse_zone("Europe/Berlin").unwrap(),
            now,
        )
        .unwrap_err()
        .0;
        assert!(gap.contains("daylight-saving"), "{gap}");
        for bad in ["Mars/Olympus", "+25:00", "+2", "UTC+2"] {
            assert!(parse_zone(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_zone("utc").unwrap(), Zone::default());
        assert!(parse_zone("-0530").is_ok());
    }
}
