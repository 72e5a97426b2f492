//! Percent-decoding (`%XX`), the one decoder for control-token query parameters, query
//! parameter names matched by redaction and request paths matched by middleware filters; and
//! [`encode`], the one encoder (a substituted query value, the percent-encoded form of a secret
//! the echo scrub looks for).
//!
//! An escape is a `%` followed by exactly two hex digits (either case). Anything else stays as
//! it is, byte for byte: `%zz`, a `%` or `%2` at the end, and — security-relevant, as a
//! number parser would accept a sign — `%+f` and `%-1`. Decoding happens once, into bytes
//! ([`decode`]); callers that need text take [`decode_lossy`], which replaces invalid UTF-8
//! (e.g. `%FF`) with U+FFFD. Every caller today needs text:
//!
//! * the control token (`?token=`): a replacement character never equals a hex token, so a
//!   lossy decode cannot let a wrong token through;
//! * redaction matches parameter names against ASCII patterns only;
//! * the middleware `path` filter: greyproxy matches Go's decoded `URL.Path`, which may hold
//!   invalid UTF-8; ours is a `String`, so such bytes become U+FFFD.

use std::borrow::Cow;

/// What a `+` means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plus {
    /// A literal `+` (URL paths).
    Literal,
    /// A space (`application/x-www-form-urlencoded` query strings).
    Space,
}

/// Decodes the escapes of `s` (and `+` as a space with [`Plus::Space`]); borrows `s` when there
/// is nothing to decode.
pub(crate) fn decode(s: &str, plus: Plus) -> Cow<'_, [u8]> {
    let b = s.as_bytes();
    if !b.contains(&b'%') && (plus == Plus::Literal || !b.contains(&b'+')) {
        return Cow::Borrowed(b);
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push((hi << 4) | lo);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus == Plus::Space => out.push(b' '),
            other => out.push(other),
        }
        i += 1;
    }
    Cow::Owned(out)
}

/// Percent-encodes every byte but the RFC 3986 unreserved characters (`A-Z a-z 0-9 - . _ ~`),
/// with upper-case hex digits.
pub(crate) fn encode(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
    out
}

/// [`decode`], as text: invalid UTF-8 becomes U+FFFD.
pub(crate) fn decode_lossy(s: &str, plus: Plus) -> Cow<'_, str> {
    match decode(s, plus) {
        Cow::Borrowed(_) => Cow::Borrowed(s),
        Cow::Owned(bytes) => match String::from_utf8(bytes) {
            Ok(text) => Cow::Owned(text),
            Err(e) => Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
        },
    }
}

/// One hex digit; unlike a number parser, never a sign.
fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_keeps_unreserved_and_round_trips() {
        assert_eq!(encode(b"aZ09-._~"), "aZ09-._~");
        assert_eq!(encode(b"a b/c:+%\xff"), "a%20b%2Fc%3A%2B%25%FF");
        assert_eq!(encode(b""), "");
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(decode(&encode(&all), Plus::Literal).as_ref(), &all[..]);
    }

    #[test]
    fn escapes_decode() {
        #[rustfmt::skip]
        let cases = [
            ("x%41y", "xAy"), ("a%5Fb", "a_b"), ("a%5fb", "a_b"), ("/a%20b/%2Fc", "/a b//c"),
            ("%C3%A9", "é"), ("caf%c3%a9", "café"), ("%41", "A"), ("%25", "%"), ("%2525", "%25"),
            ("", ""), ("plain", "plain"),
        ];
        for (input, want) in cases {
            assert_eq!(decode_lossy(input, Plus::Literal), want, "{input:?}");
            assert_eq!(decode_lossy(input, Plus::Space), want, "{input:?}");
        }
    }

    #[test]
    fn malformed_escapes_stay_literal() {
        #[rustfmt::skip]
        let cases = [
            // A sign is not a hex digit: `%+f` must not become 0x0F, nor `%-1` anything.
            "%+f", "%-1", "%+0", "%-0", "%+F",
            "%", "%2", "/bad%zz%2", "%zz", "%g0", "%0g", "a%", "% 1", "%é", "%\u{ff}1",
        ];
        for input in cases {
            assert_eq!(decode_lossy(input, Plus::Literal), input, "{input:?}");
            assert_eq!(
                decode(input, Plus::Literal).as_ref(),
                input.as_bytes(),
                "{input:?}"
            );
        }
        // `%%41`: the first `%` is literal, the second starts an escape.
        assert_eq!(decode_lossy("%%41", Plus::Space), "%A");
        assert_eq!(decode_lossy("%+f", Plus::Space), "% f");
        assert_eq!(decode_lossy("%+1x", Plus::Space), "% 1x");
    }

    #[test]
    fn plus_is_a_space_only_in_queries() {
        assert_eq!(decode_lossy("a+b", Plus::Space), "a b");
        assert_eq!(decode_lossy("a+b", Plus::Literal), "a+b");
        assert_eq!(decode_lossy("%2B", Plus::Space), "+");
        assert!(matches!(
            decode_lossy("a+b", Plus::Literal),
            Cow::Borrowed(_)
        ));
        assert!(matches!(decode_lossy("a+b", Plus::Space), Cow::Owned(_)));
    }

    #[test]
    fn invalid_utf8_is_lossy_as_text_and_exact_as_bytes() {
        assert_eq!(decode_lossy("%FF", Plus::Literal), "\u{fffd}");
        assert_eq!(decode_lossy("a%C3", Plus::Literal), "a\u{fffd}");
        assert_eq!(decode("%FFa%C3", Plus::Literal).as_ref(), b"\xffa\xc3");
        assert_eq!(decode("%00", Plus::Literal).as_ref(), b"\0");
    }
}
