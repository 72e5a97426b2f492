//! Text of the LLM layer's numbers and of what models wrote, shared by the dashboard and
//! `--once`: token counts (compact `12.4k` on screen, exact `12,431` in `--once` tables),
//! dollars from integer micro-USD, times to first token, and control characters escaped so
//! that model output can never move the cursor, clear the screen or reorder a line. Also the
//! reply the protocol crate does not type as a whole: [`UsageSummary`].

/// `usage_summary`'s result (the protocol crate types its rows, not the envelope).
#[derive(Debug, Clone, serde::Deserialize)]
pub(crate) struct UsageSummary {
    /// Window start as the daemon resolved it (RFC 3339).
    #[serde(default)]
    pub(crate) since: String,
    /// One row per group, costliest first.
    pub(crate) rows: Vec<greyproxy_protocol::llm::UsageRow>,
    /// Every call of the window (key `total`).
    pub(crate) total: greyproxy_protocol::llm::UsageRow,
}

/// Tokens in at most five characters (below a trillion): `999`, `1.2k`, `123k`, `4.5M`, `12G`.
pub(crate) fn tokens_short(n: u64) -> String {
    const UNITS: [(u128, &str); 3] = [(1_000, "k"), (1_000_000, "M"), (1_000_000_000, "G")];
    if n < 1_000 {
        return n.to_string();
    }
    let n = n as u128;
    let mut out = String::new();
    for (div, unit) in UNITS {
        // One decimal below ten units, none above; a value that rounds up to 1000 units is
        // written in the next unit.
        let tenths = (n * 10 + div / 2) / div;
        if tenths < 100 {
            return format!("{}.{}{unit}", tenths / 10, tenths % 10);
        }
        let whole = (n + div / 2) / div;
        out = format!("{whole}{unit}");
        if whole < 1_000 {
            break;
        }
    }
    out
}

/// An exact count with thousands separators: `1,234,567`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Micro-USD as dollars with four decimals, for `--once` tables: `$0.0222`, `$1,234.5678`
/// (rounded half up to the hundredth of a cent).
pub(crate) fn dollars(micro: u64) -> String {
    let units = (micro as u128 + 50) / 100; // in 1/10 000 of a dollar
    let whole = (units / 10_000) as u64;
    format!("${}.{:04}", thousands(whole), units % 10_000)
}

/// Micro-USD as dollars for the dashboard's narrow columns: `$0`, `<$0.01`, `$3.21`,
/// `$123.45`, `$1234`.
pub(crate) fn dollars_short(micro: u64) -> String {
    let cents = (micro + 5_000) / 10_000;
    match (micro, cents) {
        (0, _) => "$0".into(),
        (_, 0) => "<$0.01".into(),
        (_, c) if c < 100_000 => format!("${}.{:02}", c / 100, c % 100),
        _ => format!("${}", (micro + 500_000) / 1_000_000),
    }
}

/// Milliseconds as a short duration: `612ms`, `1.2s`, `14s`; `—` when absent.
pub(crate) fn millis(ms: Option<u64>) -> String {
    match ms {
        None => "—".into(),
        Some(ms) if ms < 1_000 => format!("{ms}ms"),
        Some(ms) if ms < 10_000 => format!("{}.{}s", ms / 1_000, ms % 1_000 / 100),
        Some(ms) => format!("{}s", (ms + 500) / 1_000),
    }
}

/// A ratio as a whole percentage (`81%`); `—` when there is nothing to divide.
pub(crate) fn percent(ratio: f64, has_base: bool) -> String {
    if !has_base || !ratio.is_finite() {
        return "—".into();
    }
    format!("{:.0}%", (ratio * 100.0).clamp(0.0, 100.0))
}

/// Characters that must never reach the terminal as they are: C0 and C1 controls, DEL, and
/// the Unicode marks that reorder or hide text (bidi overrides and isolates, zero-width
/// joiners' cousins used to smuggle text, the BOM).
fn dangerous(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\t' => out.push_str("\\t"),
        '\r' => out.push_str("\\r"),
        '\n' => out.push_str("\\n"),
        c if (c as u32) < 0x100 => out.push_str(&format!("\\x{:02x}", c as u32)),
        c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
    }
}

/// One line for a table cell: every dangerous character, newlines and tabs included, is
/// written as its escape (`\n`, `\x1b`, `\u{202e}`).
pub(crate) fn escape_line(s: &str) -> String {
    if !s.chars().any(dangerous) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if dangerous(c) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    out
}

/// Text that keeps its lines: newlines stay (a CR LF pair becomes one newline), tabs become
/// spaces, every other dangerous character is escaped.
pub(crate) fn escape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' => out.push('\n'),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\t' => out.push_str("    "),
            c if dangerous(c) => push_escaped(&mut out, c),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_counts_short_and_exact() {
        let short: Vec<String> = [0, 999, 1_000, 1_049, 1_250, 9_960, 12_431, 999_499, 999_500]
            .into_iter()
            .map(tokens_short)
            .collect();
        assert_eq!(
            short,
            [
                "0", "999", "1.0k", "1.0k", "1.3k", "10k", "12k", "999k", "1.0M"
            ]
        );
        assert_eq!(tokens_short(4_560_000), "4.6M");
        assert_eq!(tokens_short(12_000_000_000), "12G");
        assert!((0..15).all(|p| tokens_short(7u64.pow(p)).chars().count() <= 5));
        assert_eq!(tokens_short(99_960), "100k");
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn dollars_from_micro_usd() {
        assert_eq!(dollars(0), "$0.0000");
        assert_eq!(dollars(22_233), "$0.0222");
        assert_eq!(dollars(22_250), "$0.0223", "half up");
        assert_eq!(dollars(1_234_567_800_000), "$1,234,567.8000");
        assert_eq!(dollars_short(0), "$0");
        assert_eq!(dollars_short(4_999), "<$0.01");
        assert_eq!(dollars_short(22_233), "$0.02");
        assert_eq!(dollars_short(3_214_999), "$3.21");
        assert_eq!(dollars_short(999_994_999), "$999.99");
        assert_eq!(dollars_short(1_234_500_000), "$1235");
    }

    #[test]
    fn durations_and_ratios() {
        assert_eq!(millis(None), "—");
        assert_eq!(millis(Some(612)), "612ms");
        assert_eq!(millis(Some(1_250)), "1.2s");
        assert_eq!(millis(Some(14_400)), "14s");
        assert_eq!(percent(0.814, true), "81%");
        assert_eq!(percent(0.0, false), "—");
        assert_eq!(percent(f64::NAN, true), "—");
    }

    #[test]
    fn control_characters_are_escaped() {
        let evil = "ok\x1b[2J\u{7}\u{9b}31m\u{202e}txt.exe\r\n\tnext";
        assert_eq!(
            escape_line(evil),
            "ok\\x1b[2J\\x07\\x9b31m\\u{202e}txt.exe\\r\\n\\tnext"
        );
        assert_eq!(
            escape_text(evil),
            "ok\\x1b[2J\\x07\\x9b31m\\u{202e}txt.exe\n    next"
        );
        // Plain text, accents and CJK pass untouched.
        assert_eq!(escape_line("héllo 世界 🙂"), "héllo 世界 🙂");
    }
}
