//! Pure text helpers shared by the dashboard and `--once` output: ages, expiries, destinations
//! and plain-text tables.

use std::time::{Duration, SystemTime};

use greyproxy_protocol::{AllowAllMode, AllowAllStatus, PendingRequest, Rule, Transaction};

/// Parses an RFC 3339 timestamp from the daemon; `None` when malformed (never panics on what a
/// peer sent).
pub fn parse_time(ts: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(ts).ok()
}

/// A short span: `42s`, `5m`, `3h`, `2d` (largest unit only, as a column of ages reads best).
pub(crate) fn short_span(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// Time elapsed since `ts`, as [`short_span`]; `?` when `ts` is unreadable, `0s` when in the
/// future (clock skew between daemon and client).
pub(crate) fn age(ts: &str, now: SystemTime) -> String {
    match parse_time(ts) {
        Some(t) => short_span(now.duration_since(t).unwrap_or_default()),
        None => "?".into(),
    }
}

/// A rule's expiry relative to `now`: `never`, `in 59m`, `expired`.
pub(crate) fn expiry(expires_at: Option<&str>, now: SystemTime) -> String {
    let Some(ts) = expires_at else {
        return "never".into();
    };
    match parse_time(ts) {
        Some(t) => match t.duration_since(now) {
            Ok(left) if left > Duration::ZERO => format!("in {}", short_span(left)),
            _ => "expired".into(),
        },
        None => ts.to_string(),
    }
}

/// The destination of a pending request: the resolved hostname first, the IP it was asked as in
/// parentheses when they differ.
pub(crate) fn pending_destination(p: &PendingRequest) -> String {
    match p.resolved_hostname.as_deref().filter(|h| !h.is_empty()) {
        Some(h) if h != p.destination_host => format!("{h} ({})", p.destination_host),
        _ => p.destination_host.clone(),
    }
}

/// `container → destination:port` of a rule.
pub(crate) fn rule_summary(r: &Rule) -> String {
    format!(
        "{} → {}:{}",
        r.container_pattern, r.destination_pattern, r.port_pattern
    )
}

/// `#12 opencode → host:443`: a pending request in messages.
pub(crate) fn describe_pending(p: &PendingRequest) -> String {
    format!(
        "#{} {} → {}:{}",
        p.id,
        p.container_name,
        p.display_host(),
        p.destination_port
    )
}

/// Silent-mode status as one phrase: `off`, `allow all (29m left)`, `deny all (until restart)`.
pub(crate) fn allow_all_label(s: &AllowAllStatus) -> String {
    if !s.active {
        return "off".into();
    }
    let mode = match s.mode {
        Some(AllowAllMode::Deny) => "deny all",
        _ => "allow all",
    };
    match s.remaining_seconds {
        Some(r) => format!("{mode} ({} left)", short_span(Duration::from_secs(r))),
        None => format!("{mode} (until restart)"),
    }
}

/// `→` for a client→server WebSocket message (`WS_REQ`), `←` for server→client.
pub(crate) fn ws_direction(t: &Transaction) -> &'static str {
    if t.method.eq_ignore_ascii_case("WS_REQ") {
        "→"
    } else {
        "←"
    }
}

/// The `HH:MM:SS` part of an RFC 3339 timestamp (UTC), or the text itself when it is not one.
pub(crate) fn clock(ts: &str) -> &str {
    ts.get(11..19).unwrap_or(ts)
}

/// Renders rows as a left-aligned plain-text table with two spaces between columns and no
/// trailing spaces: the human output of `--once`.
pub(crate) fn text_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::new();
        for (i, c) in cells.enumerate() {
            if i > 0 {
                l.push_str("  ");
            }
            l.push_str(c);
            let pad = widths.get(i).copied().unwrap_or(0);
            l.extend(std::iter::repeat_n(
                ' ',
                pad.saturating_sub(c.chars().count()),
            ));
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

/// Cuts `s` to at most `max` characters, marking the cut with `…`.
pub(crate) fn ellipsize(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Text from a model or a tool (or anything else a peer wrote) made safe for one terminal
/// line: control characters (C0, DEL, C1: escape sequences, carriage returns, bells) and the
/// bidirectional overrides are shown as visible escapes instead of acting on the terminal.
/// C0 controls become their Unicode control pictures (`\n` → `␊`, ESC → `␛`), the others
/// `\u{…}`. Borrows when there is nothing to escape.
pub(crate) fn clean(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\0'..='\u{1f}' => out.push(char::from_u32(0x2400 + c as u32).unwrap_or('?')),
            '\u{7f}' => out.push('␡'),
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Characters [`clean`] escapes: controls, and the bidirectional embeddings, overrides and
/// isolates (they reorder what follows them on screen).
fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Micro-USD as dollars: `$1.23`; below a cent (and above nothing) four decimals, `$0.0042`,
/// so that small costs do not read as free.
pub(crate) fn usd(micro: u64) -> String {
    if micro > 0 && micro < 10_000 {
        return format!("${}.{:04}", micro / 1_000_000, (micro % 1_000_000) / 100);
    }
    let cents = (micro + 5_000) / 10_000;
    format!("${}.{:02}", cents / 100, cents % 100)
}

/// A token count in at most five characters: `980`, `12.3k`, `123k`, `4.5M`.
pub(crate) fn tokens(n: u64) -> String {
    match n {
        0..1_000 => n.to_string(),
        1_000..99_950 => format!("{:.1}k", n as f64 / 1_000.0),
        99_950..999_500 => format!("{}k", (n + 500) / 1_000),
        999_500..99_950_000 => format!("{:.1}M", n as f64 / 1_000_000.0),
        _ => format!("{}M", (n + 500_000) / 1_000_000),
    }
}

/// Column titles of a rule list, shared by `--once rules` and the Rules view.
pub(crate) const RULE_COLUMNS: [&str; 8] = [
    "ID",
    "ACTION",
    "CONTAINER",
    "DESTINATION",
    "PORT",
    "EXPIRES",
    "SOURCE",
    "NOTES",
];

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn at(ts: &str) -> SystemTime {
        parse_time(ts).unwrap()
    }

    #[test]
    fn spans_and_ages() {
        assert_eq!(short_span(Duration::from_secs(0)), "0s");
        assert_eq!(short_span(Duration::from_secs(59)), "59s");
        assert_eq!(short_span(Duration::from_secs(60)), "1m");
        assert_eq!(short_span(Duration::from_secs(7200)), "2h");
        assert_eq!(short_span(Duration::from_secs(86_400 * 3)), "3d");
        let now = at("2026-11-22T10:05:00Z");
        assert_eq!(age("2026-11-22T10:00:00Z", now), "5m");
        assert_eq!(age("2026-11-22T10:06:00Z", now), "0s");
        assert_eq!(age("bogus", now), "?");
    }

    #[test]
    fn expiries() {
        let now = at("2026-11-22T10:00:00Z");
        assert_eq!(expiry(None, now), "never");
        assert_eq!(expiry(Some("2026-11-22T11:00:00Z"), now), "in 1h");
        assert_eq!(expiry(Some("2026-11-22T09:00:00Z"), now), "expired");
        assert_eq!(expiry(Some("2026-11-22T10:00:00Z"), now), "expired");
    }

    #[test]
    fn pending_destination_prefers_the_resolved_name() {
        let mut p = PendingRequest {
            id: 1,
            container_name: "c".into(),
            container_id: String::new(),
            destination_host: "104.16.3.35".into(),
            destination_port: 443,
            resolved_hostname: Some("registry.npmjs.org".into()),
            first_seen: String::new(),
            last_seen: String::new(),
            attempt_count: 1,
            waiting_count: 0,
            llm_context: None,
            kind: Default::default(),
            credential: None,
        };
        assert_eq!(pending_destination(&p), "registry.npmjs.org (104.16.3.35)");
        p.resolved_hostname = Some(String::new());
        assert_eq!(pending_destination(&p), "104.16.3.35");
    }

    #[test]
    fn tables_align_and_trim() {
        let t = text_table(
            &["ID", "NAME", "X"],
            &[
                vec!["1".into(), "alpha".into(), String::new()],
                vec!["100".into(), "b".into(), "y".into()],
            ],
        );
        assert_eq!(t, "ID   NAME   X\n1    alpha\n100  b      y\n");
    }

    #[test]
    fn ellipsis_and_clock() {
        assert_eq!(ellipsize("abcdef", 4), "abc…");
        assert_eq!(ellipsize("abc", 4), "abc");
        assert_eq!(clock("2026-11-22T10:05:07Z"), "10:05:07");
        assert_eq!(clock("short"), "short");
    }
    #[test]
    fn control_characters_are_escaped_visibly() {
        assert!(matches!(clean("plain é 漢"), std::borrow::Cow::Borrowed(_)));
        assert_eq!(clean("a\x1b[31mred\x07\r\n"), "a␛[31mred␇␍␊");
        assert_eq!(clean("tab\there\u{7f}"), "tab␉here␡");
        assert_eq!(clean("\u{9b}2J"), "\\u{9b}2J");
        assert_eq!(clean("abc\u{202e}fed"), "abc\\u{202e}fed");
    }

    #[test]
    fn dollars_and_token_counts() {
        assert_eq!(usd(0), "$0.00");
        assert_eq!(usd(1_234_567), "$1.23");
        assert_eq!(usd(1_235_000), "$1.24");
        assert_eq!(usd(4_200), "$0.0042");
        assert_eq!(usd(22_233), "$0.02");
        assert_eq!(usd(123_456_789), "$123.46");
        assert_eq!(tokens(980), "980");
        assert_eq!(tokens(12_345), "12.3k");
        assert_eq!(tokens(123_456), "123k");
        assert_eq!(tokens(4_500_000), "4.5M");
        assert_eq!(tokens(450_000_000), "450M");
        assert_eq!(tokens(99_999), "100k");
        assert_eq!(tokens(999_999), "1.0M");
    }
}
