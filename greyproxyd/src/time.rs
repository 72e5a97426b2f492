//! Wall-clock helpers: the daemon keeps times as Unix seconds and shows them as RFC 3339 UTC
//! with second precision (`2026-04-22T10:00:00Z`), the shape every timestamp on the wire has.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, now.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// RFC 3339 UTC, second precision, `Z` suffix.
pub fn rfc3339(secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// RFC 3339 UTC with milliseconds (`2026-04-22T10:00:00.123Z`), for LLM call timing.
pub fn rfc3339_ms(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// Parses what [`parse_timestamp`] parses, into Unix milliseconds.
pub fn parse_timestamp_ms(s: &str) -> Option<u64> {
    let t = s.trim();
    let parsed = humantime::parse_rfc3339_weak(t)
        .ok()
        .or_else(|| humantime::parse_rfc3339(t).ok())?;
    parsed
        .duration_since(UNIX_EPOCH)
        .ok()
        .map(|d| d.as_millis() as u64)
}

/// RFC 3339 for now.
pub fn now_rfc3339() -> String {
    rfc3339(now_secs())
}

/// Parses an RFC 3339 timestamp (`2026-04-22T10:00:00Z`, fractional seconds and offsets
/// allowed) or greyproxy's SQLite form `2026-04-22 10:00:00` (UTC) into Unix seconds.
pub fn parse_timestamp(s: &str) -> Option<u64> {
    let t = s.trim();
    let parsed = humantime::parse_rfc3339_weak(t)
        .ok()
        .or_else(|| humantime::parse_rfc3339(t).ok())?;
    parsed.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_round_trip() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_ms(1_234), "1970-01-01T00:00:01.234Z");
        assert_eq!(parse_timestamp_ms("1970-01-01T00:00:01.234Z"), Some(1_234));
        assert_eq!(parse_timestamp_ms("1970-01-01T00:00:02Z"), Some(2_000));
        assert_eq!(rfc3339(1_776_852_000), "2026-04-22T10:00:00Z");
        assert_eq!(parse_timestamp("2026-04-22T10:00:00Z"), Some(1_776_852_000));
        assert_eq!(parse_timestamp("2026-04-22 10:00:00"), Some(1_776_852_000));
        assert_eq!(
            parse_timestamp("2026-04-22T10:00:00.5Z"),
            Some(1_776_852_000)
        );
        assert_eq!(parse_timestamp("tomorrow"), None);
    }
}
