//! Durations: how long a rule made by allow/deny/create lives (`once`, `1h`, …, `permanent`, or
//! any humantime span) and how long silent mode (allow-all) stays on. Unlike greyproxy, an
//! unknown string is an error rather than a silent permanent rule (docs/design.md#durations).

use std::time::Duration;

use greyproxy_protocol::RuleType;

/// Lifetime of a `once` rule: long enough for the held connection (and its immediate retries)
/// to be let through, as greyproxy does.
pub(crate) const ONCE_SECS: u64 = 30;

/// Longest silent-mode span. greyproxy capped it at 8 h; we allow up to 30 days.
pub(crate) const MAX_ALLOW_ALL: Duration = Duration::from_secs(30 * 86_400);

/// The accepted rule duration forms, for error messages.
const RULE_FORMS: &str =
    "use once, 1h, 12h, 24h, 7d, 30d, permanent, or a span such as 30m or 2h30m";

/// The named durations greyproxy knows, in seconds.
const NAMED: [(&str, u64); 5] = [
    ("1h", 3_600),
    ("12h", 43_200),
    ("24h", 86_400),
    ("7d", 604_800),
    ("30d", 2_592_000),
];

/// A duration string was refused; the message is shown to control-protocol users as is.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub(crate) enum DurationError {
    /// An empty duration string.
    #[error("duration is empty: {RULE_FORMS}")]
    Empty,
    /// Not a named duration nor a humantime span.
    #[error("unknown duration {0:?}: {RULE_FORMS}")]
    Unknown(String),
    /// A rule span under one second (rule expiries have second precision).
    #[error("duration {0:?} is too short: a rule must last at least 1 second")]
    TooShort(String),
    /// Not `restart` nor a humantime span.
    #[error("unknown allow-all duration {0:?}: use restart or a span such as 30m, 2h or 7d")]
    UnknownAllowAll(String),
    /// A zero silent-mode span.
    #[error("allow-all duration {0:?} must be greater than zero")]
    ZeroAllowAll(String),
    /// A silent-mode span over [`MAX_ALLOW_ALL`].
    #[error("allow-all duration {0:?} is longer than the 30-day maximum")]
    TooLongAllowAll(String),
}

/// How long a rule created by allow/deny (or `create_rule`) lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RuleDuration {
    /// A temporary rule of [`ONCE_SECS`] seconds: lets the waiting connection through.
    Once,
    /// Never expires.
    Permanent,
    /// Expires this long after creation (rounded up to whole seconds).
    For(Duration),
}

impl RuleDuration {
    /// Expiry in Unix seconds for a rule created at `now`; `None` = never.
    pub(crate) fn expires_at(&self, now: u64) -> Option<u64> {
        match self {
            RuleDuration::Once => Some(now.saturating_add(ONCE_SECS)),
            RuleDuration::Permanent => None,
            RuleDuration::For(d) => {
                let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
                Some(now.saturating_add(secs))
            }
        }
    }

    /// The informational rule kind: `permanent` only for [`RuleDuration::Permanent`].
    pub(crate) fn rule_type(&self) -> RuleType {
        match self {
            RuleDuration::Permanent => RuleType::Permanent,
            RuleDuration::Once | RuleDuration::For(_) => RuleType::Temporary,
        }
    }
}

/// Parses a rule duration: `once`, `permanent`, `1h`, `12h`, `24h`, `7d`, `30d` (names are
/// case-insensitive) or a humantime span such as `30m`, `2h30m`, `90s` (at least one second).
/// An absent duration means permanent, but that default is the caller's: `""` is an error here.
pub(crate) fn parse_duration(s: &str) -> Result<RuleDuration, DurationError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(DurationError::Empty);
    }
    let lower = t.to_ascii_lowercase();
    match lower.as_str() {
        "once" => return Ok(RuleDuration::Once),
        "permanent" => return Ok(RuleDuration::Permanent),
        _ => {}
    }
    if let Some((_, secs)) = NAMED.iter().find(|(name, _)| *name == lower) {
        return Ok(RuleDuration::For(Duration::from_secs(*secs)));
    }
    // humantime itself is case-sensitive (`M` is months, `m` minutes), so it gets `t` as typed.
    let d = humantime::parse_duration(t).map_err(|_| DurationError::Unknown(s.to_string()))?;
    if d < Duration::from_secs(1) {
        return Err(DurationError::TooShort(s.to_string()));
    }
    Ok(RuleDuration::For(d))
}

/// Parses a silent-mode (allow-all) duration: absent, `""` or `restart` = until the daemon
/// restarts (`Ok(None)`); otherwise a humantime span above zero and at most 30 days.
pub(crate) fn parse_allow_all_duration(s: Option<&str>) -> Result<Option<Duration>, DurationError> {
    let t = s.unwrap_or("").trim();
    if t.is_empty() || t.eq_ignore_ascii_case("restart") {
        return Ok(None);
    }
    let d = humantime::parse_duration(t).map_err(|_| DurationError::UnknownAllowAll(t.into()))?;
    if d.is_zero() {
        return Err(DurationError::ZeroAllowAll(t.into()));
    }
    if d > MAX_ALLOW_ALL {
        return Err(DurationError::TooLongAllowAll(t.into()));
    }
    Ok(Some(d))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn secs(n: u64) -> RuleDuration {
        RuleDuration::For(Duration::from_secs(n))
    }

    #[test]
    fn named_durations() {
        assert_eq!(parse_duration("once"), Ok(RuleDuration::Once));
        assert_eq!(parse_duration("permanent"), Ok(RuleDuration::Permanent));
        assert_eq!(parse_duration(" Permanent "), Ok(RuleDuration::Permanent));
        assert_eq!(parse_duration("ONCE"), Ok(RuleDuration::Once));
        assert_eq!(parse_duration("1h"), Ok(secs(3_600)));
        assert_eq!(parse_duration("12h"), Ok(secs(43_200)));
        assert_eq!(parse_duration("24h"), Ok(secs(86_400)));
        assert_eq!(parse_duration("7d"), Ok(secs(604_800)));
        assert_eq!(parse_duration("30d"), Ok(secs(2_592_000)));
        assert_eq!(parse_duration("1H"), Ok(secs(3_600)));
    }

    #[test]
    fn humantime_spans_the_reference_turned_into_permanent_rules() {
        // greyproxy silently made these permanent (docs/design.md#durations).
        assert_eq!(parse_duration("30m"), Ok(secs(1_800)));
        assert_eq!(parse_duration("2h"), Ok(secs(7_200)));
        assert_eq!(parse_duration("2h30m"), Ok(secs(9_000)));
        assert_eq!(parse_duration("90s"), Ok(secs(90)));
        assert_eq!(parse_duration("1day"), Ok(secs(86_400)));
        assert_eq!(parse_duration("1.5h"), Ok(secs(5_400)));
    }

    #[test]
    fn bad_rule_durations_are_errors() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert_eq!(parse_duration("  "), Err(DurationError::Empty));
        for bad in ["forever", "1x", "h", "-1h", "once please"] {
            assert_eq!(
                parse_duration(bad),
                Err(DurationError::Unknown(bad.into())),
                "{bad}"
            );
        }
        for short in ["0s", "0", "500ms"] {
            assert_eq!(
                parse_duration(short),
                Err(DurationError::TooShort(short.into()))
            );
        }
        let msg = parse_duration("forever").unwrap_err().to_string();
        assert_eq!(
            msg,
            "unknown duration \"forever\": use once, 1h, 12h, 24h, 7d, 30d, permanent, \
             or a span such as 30m or 2h30m"
        );
    }

    #[test]
    fn expiry_and_rule_type() {
        let now = 1_000;
        assert_eq!(RuleDuration::Once.expires_at(now), Some(1_030));
        assert_eq!(RuleDuration::Once.rule_type(), RuleType::Temporary);
        assert_eq!(RuleDuration::Permanent.expires_at(now), None);
        assert_eq!(RuleDuration::Permanent.rule_type(), RuleType::Permanent);
        assert_eq!(secs(3_600).expires_at(now), Some(4_600));
        assert_eq!(secs(3_600).rule_type(), RuleType::Temporary);
        // Sub-second remainders round up so the rule lives at least as long as asked.
        let d = parse_duration("1500ms").unwrap();
        assert_eq!(d.expires_at(now), Some(1_002));
        assert_eq!(secs(10).expires_at(u64::MAX - 1), Some(u64::MAX));
    }

    #[test]
    fn allow_all_durations() {
        assert_eq!(parse_allow_all_duration(None), Ok(None));
        assert_eq!(parse_allow_all_duration(Some("")), Ok(None));
        assert_eq!(parse_allow_all_duration(Some("restart")), Ok(None));
        assert_eq!(parse_allow_all_duration(Some("Restart")), Ok(None));
        let d = |s| parse_allow_all_duration(Some(s));
        assert_eq!(d("5m"), Ok(Some(Duration::from_secs(300))));
        assert_eq!(d("2h30m"), Ok(Some(Duration::from_secs(9_000))));
        // Above greyproxy's 8 h cap, up to 30 days.
        assert_eq!(d("9h"), Ok(Some(Duration::from_secs(32_400))));
        assert_eq!(d("30d"), Ok(Some(MAX_ALLOW_ALL)));
        assert_eq!(d("500ms"), Ok(Some(Duration::from_millis(500))));
        assert_eq!(d("0s"), Err(DurationError::ZeroAllowAll("0s".into())));
        assert_eq!(d("31d"), Err(DurationError::TooLongAllowAll("31d".into())));
        assert_eq!(
            d("permanent"),
            Err(DurationError::UnknownAllowAll("permanent".into()))
        );
        assert_eq!(
            d("31d").unwrap_err().to_string(),
            "allow-all duration \"31d\" is longer than the 30-day maximum"
        );
    }
}
