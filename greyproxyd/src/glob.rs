//! The one pattern engine: every glob in the daemon — rule container and destination patterns,
//! middleware `host` / `content_type` / `container` filters, the MITM bypass list and the LLM
//! endpoint registry — is matched here. A pattern is read in one of three [`Dialect`]s; where
//! two callers of a dialect differ on purpose, the difference is an explicit option.
//!
//! # [`Dialect::Path`]: Go's `path.Match`
//!
//! Rules and middleware filters written for greyproxy (Go) must match the same values here, so
//! this is a hand-written port of Go's `path.Match` (identical to `path/filepath.Match` on
//! Unix), corner cases included. The whole value must match; comparison is case-sensitive.
//!
//! * `*` matches any run of characters except `/` (so `a*` does not match `a/b`); `**` is just
//!   two stars, the same as one (no "any depth" meaning: that is the host dialect's `**.`);
//! * `?` matches one character except `/`;
//! * `[abc]`, `[a-z]`, `[^a-z]` match one character in (or, with `^`, not in) a set of
//!   characters and inclusive ranges; a class *may* match `/`. `]` and `-` must be escaped at
//!   the start of a class (`[\]a]`, `[\-x]`), and a range needs a character on both sides;
//! * `\` escapes the next character, inside classes too (`a\*b` matches only `a*b`);
//! * a `*` commits to the first position where the chunk after it matches — only the last
//!   chunk retries further positions — so matching is never exponential in the number of
//!   stars (worst case O(pattern × value), as in Go).
//!
//! A malformed pattern (`[`, `[a-`, `[]`, `[-x]`, `a[^`, a trailing `\`) is an error in Go,
//! which every caller treats as "no match": [`Dialect::matches`] answers `false` for it
//! whatever the value, and [`Dialect::check`] says why (rules refuse such a pattern at
//! creation). Options ([`PathOptions`]):
//!
//! * [`StarStep`]: Go's `*` advances byte by byte, so it may stop inside a multi-byte
//!   character, where `?` or a class then reads the lone byte as U+FFFD (`*??` matches `€`,
//!   `*[^é]` matches `é`). Rule container patterns keep Go's exact behaviour
//!   ([`StarStep::Byte`]); the middleware filters never split a character ([`StarStep::Char`]).
//!   The two differ only for values with non-ASCII characters after a `*`.
//! * `lone_star_matches_all`: the pattern `*` alone matches every value, `/` included (rule
//!   container patterns, where `*` means "any container"); otherwise it is an ordinary `*`.
//! * `dot_suffix` (greyproxy's filter extension): a pattern starting with `*.` also matches any
//!   value that ends with the pattern minus its leading `*`, compared literally and across `/`
//!   (`*.openai.com` matches `a.b.openai.com`, never the apex `openai.com` nor
//!   `api.openai.com:443`); values it does not match still go through the Go match.
//!
//! # [`Dialect::Star`]: only `*` is special
//!
//! Used by the LLM endpoint registry. `*` matches any run of characters, `/` and `.`
//! included; every other character (`?`, `[`, `\` too) is literal; the whole value must match;
//! comparison is case-sensitive (the registry lower-cases hosts and host patterns itself, with
//! Unicode case mapping, before matching). There are no malformed patterns. Matching
//! backtracks only to the last `*` (worst case O(pattern × value)).
//!
//! # [`Dialect::Host`]: host names
//!
//! Used by rule destinations and the MITM bypass list; ASCII case-insensitive. Only whole
//! patterns of these forms are special, and a `*` anywhere else is a literal character (which
//! never occurs in a real host):
//!
//! * `*` matches every host;
//! * `*.example.com` matches the subdomains of `example.com` at any depth, not the apex;
//! * `**.example.com` matches `example.com` and its subdomains at any depth;
//! * anything else matches that exact host.
//!
//! Normalisation (trimming, a trailing dot, IPv6 brackets) and IP or CIDR forms are the
//! caller's business. Option ([`HostOptions`]): [`EmptyBase`] — whether `*.` and `**.` with
//! nothing after the dot are malformed (rule destinations, which refuse them at creation) or
//! read like any other base (the MITM bypass list: `*.` then matches hosts that end with `.`).

/// Why a pattern is malformed; the messages are shown to users as is (e.g. when a rule is
/// refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GlobError {
    /// A `\` at the very end of the pattern.
    #[error("trailing backslash escapes nothing")]
    TrailingBackslash,
    /// A `[` without its closing `]` (or ending in the middle of a range).
    #[error("unclosed '['")]
    UnclosedClass,
    /// An unescaped `]` or `-` where a class character was expected (`[]`, `[-x]`, `[a-]`).
    #[error("malformed character class")]
    MalformedClass,
    /// A host pattern `*.` or `**.` with nothing after the dot (with [`EmptyBase::NoMatch`]).
    #[error("a wildcard needs a domain after it")]
    EmptyHostBase,
}

/// How a pattern is read; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Go's `path.Match` (`*`, `?`, `[...]`, `\`), with the given options.
    Path(PathOptions),
    /// Only `*` is special, and it crosses `/` and `.`.
    Star,
    /// Host forms `*`, `*.base`, `**.base` or an exact host, ASCII case-insensitive.
    Host(HostOptions),
}

/// Where the Go-syntax callers differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathOptions {
    /// Where a `*` may stop.
    pub star_step: StarStep,
    /// The pattern `*` alone matches every value, `/` included.
    pub lone_star_matches_all: bool,
    /// A pattern `*.rest` also matches every value ending with `.rest` (greyproxy's filter
    /// extension).
    pub dot_suffix: bool,
}

impl PathOptions {
    /// Go's `path.Match` exactly, without any greyproxy extension.
    pub const GO: PathOptions = PathOptions {
        star_step: StarStep::Byte,
        lone_star_matches_all: false,
        dot_suffix: false,
    };
}

/// Where a `*` of [`Dialect::Path`] may stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StarStep {
    /// At any byte, inside a multi-byte character too (Go's behaviour).
    Byte,
    /// Only between characters.
    Char,
}

/// Where the host-pattern callers differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostOptions {
    /// What `*.` and `**.` with nothing after the dot mean.
    pub empty_base: EmptyBase,
}

/// What a host pattern `*.` or `**.` (a wildcard with an empty base) means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmptyBase {
    /// It is malformed and matches nothing.
    NoMatch,
    /// The empty base is read like any other: `*.` matches hosts ending with `.`, `**.` those
    /// and the empty host.
    Literal,
}

impl Dialect {
    /// Rule container patterns: Go's `path.Match` exactly, plus `*` alone matching every name.
    pub const CONTAINER: Dialect = Dialect::Path(PathOptions {
        lone_star_matches_all: true,
        ..PathOptions::GO
    });

    /// Middleware filter globs (`host`, `content_type`, `container`): Go's syntax without
    /// splitting characters, plus the `*.suffix` extension.
    pub const FILTER: Dialect = Dialect::Path(PathOptions {
        star_step: StarStep::Char,
        lone_star_matches_all: false,
        dot_suffix: true,
    });

    /// Rule destination host forms: `*.` and `**.` without a base match nothing.
    pub const DESTINATION: Dialect = Dialect::Host(HostOptions {
        empty_base: EmptyBase::NoMatch,
    });

    /// MITM bypass host globs: an empty base is read literally.
    pub const BYPASS: Dialect = Dialect::Host(HostOptions {
        empty_base: EmptyBase::Literal,
    });

    /// True when `value` matches `pattern`; a malformed pattern matches nothing. Patterns are
    /// interpreted in place (no allocation), so callers keep them as strings.
    #[must_use]
    pub fn matches(self, pattern: &str, value: &str) -> bool {
        match self {
            Dialect::Path(o) => {
                if o.lone_star_matches_all && pattern == "*" {
                    return true;
                }
                if o.dot_suffix && pattern.starts_with("*.") && value.ends_with(&pattern[1..]) {
                    return true;
                }
                matches!(
                    path_match(pattern.as_bytes(), value.as_bytes(), o.star_step),
                    Ok(true)
                )
            }
            Dialect::Star => star_match(pattern.as_bytes(), value.as_bytes()),
            Dialect::Host(o) => host_match(pattern, value, o.empty_base),
        }
    }

    /// Checks that a pattern is well formed (the same for every value).
    ///
    /// # Errors
    ///
    /// The first malformed part, as Go would report it.
    pub fn check(self, pattern: &str) -> Result<(), GlobError> {
        match self {
            Dialect::Path(_) => {
                let mut rest = pattern.as_bytes();
                while !rest.is_empty() {
                    let (_, chunk, after) = scan_chunk(rest);
                    match_chunk(chunk, b"")?;
                    rest = after;
                }
                Ok(())
            }
            Dialect::Star => Ok(()),
            Dialect::Host(o) => match host_base(pattern) {
                Some(("", _)) if o.empty_base == EmptyBase::NoMatch => {
                    Err(GlobError::EmptyHostBase)
                }
                _ => Ok(()),
            },
        }
    }
}

/// Go's `path.Match` on bytes. `Err` for a malformed chunk reached while matching; a `true`
/// answer implies every chunk was parsed, so a malformed pattern never answers `true`.
fn path_match(mut pattern: &[u8], mut name: &[u8], step: StarStep) -> Result<bool, GlobError> {
    'pattern: while !pattern.is_empty() {
        let (star, chunk, rest) = scan_chunk(pattern);
        pattern = rest;
        if star && chunk.is_empty() {
            // A trailing `*` matches the rest of the name unless it holds a `/`.
            return Ok(!name.contains(&b'/'));
        }
        let (tail, ok) = match_chunk(chunk, name)?;
        // The last chunk must consume the whole name, otherwise the star may still do better.
        if ok && (tail.is_empty() || !pattern.is_empty()) {
            name = tail;
            continue;
        }
        if star {
            // Let the star swallow one more byte (or character) each time; never a `/`.
            let mut i = 0;
            while i < name.len() && name[i] != b'/' {
                i = match step {
                    StarStep::Byte => i + 1,
                    StarStep::Char => (i + utf8_width(name[i])).min(name.len()),
                };
                let (tail, ok) = match_chunk(chunk, &name[i..])?;
                if ok && (tail.is_empty() || !pattern.is_empty()) {
                    name = tail;
                    continue 'pattern;
                }
            }
        }
        return Ok(false);
    }
    Ok(name.is_empty())
}

/// Splits off leading stars and the chunk up to the next star outside a class.
fn scan_chunk(mut pattern: &[u8]) -> (bool, &[u8], &[u8]) {
    let mut star = false;
    while let [b'*', rest @ ..] = pattern {
        pattern = rest;
        star = true;
    }
    let (mut in_range, mut i) = (false, 0);
    while i < pattern.len() {
        match pattern[i] {
            // A trailing `\` is reported by `match_chunk`.
            b'\\' if i + 1 < pattern.len() => i += 1,
            b'[' => in_range = true,
            b']' => in_range = false,
            b'*' if !in_range => break,
            _ => {}
        }
        i += 1;
    }
    (star, &pattern[..i], &pattern[i..])
}

/// Matches one star-free chunk at the start of `s`; returns the rest of `s` and whether it
/// matched. After a mismatch the chunk is still walked to the end so malformed syntax is found.
/// Literal bytes compare byte-wise; `?` and classes read one character (U+FFFD for a lone
/// byte, which only [`StarStep::Byte`] can leave at the start of `s`).
fn match_chunk<'a>(mut chunk: &[u8], mut s: &'a [u8]) -> Result<(&'a [u8], bool), GlobError> {
    let mut failed = false;
    while let Some(&c) = chunk.first() {
        failed |= s.is_empty();
        match c {
            b'[' => {
                let mut r = '\0';
                if !failed {
                    let (ch, n) = decode_rune(s);
                    r = ch;
                    s = &s[n..];
                }
                chunk = &chunk[1..];
                let negated = chunk.first() == Some(&b'^');
                if negated {
                    chunk = &chunk[1..];
                }
                let (mut matched, mut ranges) = (false, 0);
                loop {
                    if chunk.first() == Some(&b']') && ranges > 0 {
                        chunk = &chunk[1..];
                        break;
                    }
                    let (lo, rest) = class_char(chunk)?;
                    let mut hi = lo;
                    chunk = rest;
                    if chunk.first() == Some(&b'-') {
                        (hi, chunk) = class_char(&chunk[1..])?;
                    }
                    matched |= lo <= r && r <= hi;
                    ranges += 1;
                }
                failed |= matched == negated;
            }
            b'?' => {
                if !failed {
                    failed = s[0] == b'/';
                    s = &s[decode_rune(s).1..];
                }
                chunk = &chunk[1..];
            }
            _ => {
                if c == b'\\' {
                    chunk = &chunk[1..];
                    if chunk.is_empty() {
                        return Err(GlobError::TrailingBackslash);
                    }
                }
                if !failed {
                    failed = chunk[0] != s[0];
                    s = &s[1..];
                }
                chunk = &chunk[1..];
            }
        }
    }
    Ok(if failed { (&[], false) } else { (s, true) })
}

/// One (possibly escaped) character of a class; the class must go on after it.
fn class_char(chunk: &[u8]) -> Result<(char, &[u8]), GlobError> {
    let chunk = match chunk {
        [] | [b'\\'] => return Err(GlobError::UnclosedClass),
        [b'-' | b']', ..] => return Err(GlobError::MalformedClass),
        [b'\\', rest @ ..] => rest,
        _ => chunk,
    };
    let (r, n) = decode_rune(chunk);
    let rest = &chunk[n..];
    if rest.is_empty() {
        return Err(GlobError::UnclosedClass);
    }
    Ok((r, rest))
}

/// Go's `utf8.DecodeRune`: invalid bytes decode as U+FFFD of width 1, empty input as width 0.
fn decode_rune(s: &[u8]) -> (char, usize) {
    let width = match s.first() {
        None => return (char::REPLACEMENT_CHARACTER, 0),
        Some(&b) if b < 0x80 => return (char::from(b), 1),
        Some(0xC2..=0xDF) => 2,
        Some(0xE0..=0xEF) => 3,
        Some(0xF0..=0xF4) => 4,
        Some(_) => return (char::REPLACEMENT_CHARACTER, 1),
    };
    s.get(..width)
        .and_then(|b| std::str::from_utf8(b).ok())
        .and_then(|t| t.chars().next())
        .map_or((char::REPLACEMENT_CHARACTER, 1), |c| (c, width))
}

/// Length of the UTF-8 sequence a lead byte starts (1 for anything else, so a caller that is
/// somehow misaligned still moves forward).
fn utf8_width(lead: u8) -> usize {
    match lead {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => 1,
    }
}

/// Anchored match where only `*` is special. Works on bytes: `*` is ASCII and a literal after
/// a `*` starts on a character boundary, so a match never splits a UTF-8 sequence.
fn star_match(p: &[u8], v: &[u8]) -> bool {
    let (mut pi, mut vi) = (0usize, 0usize);
    // Position of the last `*` seen and the value position it currently absorbs up to.
    let mut backtrack: Option<(usize, usize)> = None;
    while vi < v.len() {
        match p.get(pi) {
            Some(b'*') => {
                backtrack = Some((pi, vi));
                pi += 1;
            }
            Some(&c) if c == v[vi] => {
                pi += 1;
                vi += 1;
            }
            _ => match backtrack {
                Some((star, absorbed)) => {
                    backtrack = Some((star, absorbed + 1));
                    pi = star + 1;
                    vi = absorbed + 1;
                }
                None => return false,
            },
        }
    }
    p.get(pi..)
        .is_some_and(|rest| rest.iter().all(|&b| b == b'*'))
}

/// `Some((base, apex_too))` for `**.base` and `*.base`; `None` for any other pattern.
fn host_base(pattern: &str) -> Option<(&str, bool)> {
    pattern
        .strip_prefix("**.")
        .map(|base| (base, true))
        .or_else(|| pattern.strip_prefix("*.").map(|base| (base, false)))
}

fn host_match(pattern: &str, host: &str, empty_base: EmptyBase) -> bool {
    if pattern == "*" {
        return true;
    }
    match host_base(pattern) {
        Some(("", _)) if empty_base == EmptyBase::NoMatch => false,
        Some((base, apex)) => (apex && host.eq_ignore_ascii_case(base)) || is_subdomain(host, base),
        None => host.eq_ignore_ascii_case(pattern),
    }
}

/// `host` ends with `.base` (bytes compared, so no char-boundary issues with non-ASCII hosts).
fn is_subdomain(host: &str, base: &str) -> bool {
    let (h, b) = (host.as_bytes(), base.as_bytes());
    h.len() > b.len()
        && h[h.len() - b.len() - 1] == b'.'
        && h[h.len() - b.len()..].eq_ignore_ascii_case(b)
}

#[cfg(test)]
pub(crate) mod tests;
