//! Checks of wire formats that several test files share.

/// True for an RFC 3339 date-time: `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`.
pub fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let head = b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19);
    if !head {
        return false;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    rest == "Z"
        || (rest.len() == 6
            && (rest.starts_with('+') || rest.starts_with('-'))
            && digits(s.len() - 5..s.len() - 3)
            && rest.as_bytes()[3] == b':'
            && digits(s.len() - 2..s.len()))
}

#[cfg(test)]
mod tests {
    use super::is_rfc3339;

    #[test]
    fn rfc3339_shapes() {
        assert!(is_rfc3339("2026-04-22T10:00:00Z"));
        assert!(is_rfc3339("2026-04-22T10:00:00.123Z"));
        assert!(is_rfc3339("2026-04-22T10:00:00+02:00"));
        assert!(!is_rfc3339("2026-04-22 10:00:00Z"));
        assert!(!is_rfc3339("2026-04-22T10:00:00"));
        assert!(!is_rfc3339("1776852000"));
        assert!(!is_rfc3339("2026-04-22T10:00:00+0200"));
    }
}
