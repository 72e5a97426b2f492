//! Glob matching for middleware filters.
//!
//! [`go_match`] reproduces Go's `path/filepath.Match` on Unix; [`filter_glob`] adds greyproxy's
//! `*.suffix` extension on top (used for the `host`, `content_type` and `container` filter keys).
//!
//! The matcher is hand-written on purpose: no crate reproduces Go's exact semantics (`*` and `?`
//! never cross `/` while classes may match it, `]`/`-` are not allowed unescaped at the start of a
//! class, `\` escapes inside classes too, and any malformed pattern is an error — which greyproxy
//! treats as "no match" — rather than being read literally). The code below is a close port of the
//! Go algorithm (`scanChunk` / `matchChunk` / `getEsc`), working on `char`s instead of bytes.
//! (Go's `*` also tries positions inside a multi-byte character, where `?` or a class may match a
//! lone byte as U+FFFD; working on `char`s deliberately never splits a character.)

/// The pattern is syntactically invalid (Go's `filepath.ErrBadPattern`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BadPattern;

/// Go's `path/filepath.Match` (Unix flavour): whole-string, case-sensitive match of `value`
/// against `pattern`.
///
/// * `*` matches any run of characters except `/`;
/// * `?` matches one character except `/`;
/// * `[...]` / `[^...]` match one character from (or not from) a set of characters and ranges
///   (`[a-z]`);
/// * `\` escapes the next character, inside classes too.
///
/// A malformed pattern (e.g. `[`, `[a-`, a trailing `\`) never matches.
#[must_use]
pub fn go_match(pattern: &str, value: &str) -> bool {
    matches!(match_pattern(pattern, value), Ok(true))
}

/// The filter glob: first greyproxy's extension — a pattern starting with `*.` matches any value
/// ending with the pattern minus its leading `*` (any depth, but never the bare apex nor a value
/// with a trailing `:port`) — otherwise (or also) [`go_match`].
#[must_use]
pub fn filter_glob(pattern: &str, value: &str) -> bool {
    if pattern.starts_with("*.")
        && let Some(suffix) = pattern.strip_prefix('*')
        && value.ends_with(suffix)
    {
        return true;
    }
    go_match(pattern, value)
}

/// Port of Go's `filepath.Match`: `Ok(matched)` or `Err(BadPattern)`.
fn match_pattern(mut pattern: &str, mut name: &str) -> Result<bool, BadPattern> {
    'pattern: while !pattern.is_empty() {
        let (star, chunk, rest) = scan_chunk(pattern);
        pattern = rest;
        if star && chunk.is_empty() {
            // A trailing `*` matches the rest of the value unless it contains a `/`.
            return Ok(!name.contains('/'));
        }
        // Look for a match at the current position. If this is the last chunk the value must be
        // exhausted, otherwise the star could still find a better position.
        if let Some(t) = match_chunk(chunk, name)?
            && (t.is_empty() || !pattern.is_empty())
        {
            name = t;
            continue;
        }
        if star {
            // Look for a match skipping one more character each time; a star cannot skip `/`.
            for (i, c) in name.char_indices() {
                if c == '/' {
                    break;
                }
                if let Some(t) = match_chunk(chunk, &name[i + c.len_utf8()..])? {
                    // The last chunk must exhaust the value.
                    if pattern.is_empty() && !t.is_empty() {
                        continue;
                    }
                    name = t;
                    continue 'pattern;
                }
            }
        }
        // Go validates the remainder of the pattern before answering "no match"; both outcomes
        // are "no match" here, so there is nothing left to do.
        return Ok(false);
    }
    Ok(name.is_empty())
}

/// Splits off the leading stars and the following chunk (up to the next unbracketed `*`).
/// Returns `(had_star, chunk, rest)`.
fn scan_chunk(pattern: &str) -> (bool, &str, &str) {
    let trimmed = pattern.trim_start_matches('*');
    let star = trimmed.len() != pattern.len();
    // All special characters are ASCII, so scanning bytes is safe: `*` (the only place we cut)
    // is always on a char boundary.
    let bytes = trimmed.as_bytes();
    let mut in_range = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            // Error checking (a trailing `\`) happens in `match_chunk`.
            b'\\' if i + 1 < bytes.len() => i += 1,
            b'[' => in_range = true,
            b']' => in_range = false,
            b'*' if !in_range => break,
            _ => {}
        }
        i += 1;
    }
    (star, &trimmed[..i], &trimmed[i..])
}

/// Matches one star-free chunk at the start of `s`. Returns the unmatched remainder of `s` on
/// success, `None` on a mismatch. The whole chunk is always parsed, so a malformed chunk is an
/// error whatever `s` is.
fn match_chunk<'a>(mut chunk: &str, mut s: &'a str) -> Result<Option<&'a str>, BadPattern> {
    // After a mismatch the loop keeps parsing the chunk (to detect malformed patterns) but no
    // longer reads `s`.
    let mut failed = false;
    while let Some(c) = chunk.chars().next() {
        let next = if failed { None } else { s.chars().next() };
        if next.is_none() {
            failed = true;
        }
        match c {
            '[' => {
                // Character class. When already failed the character is irrelevant.
                let r = next.unwrap_or('\0');
                if let Some(n) = next {
                    s = &s[n.len_utf8()..];
                }
                chunk = &chunk[1..];
                let negated = chunk.starts_with('^');
                if negated {
                    chunk = &chunk[1..];
                }
                let mut matched = false;
                let mut nrange = 0usize;
                loop {
                    if nrange > 0 && chunk.starts_with(']') {
                        chunk = &chunk[1..];
                        break;
                    }
                    let (lo, rest) = get_esc(chunk)?;
                    chunk = rest;
                    let mut hi = lo;
                    if let Some(after_dash) = chunk.strip_prefix('-') {
                        let (h, rest) = get_esc(after_dash)?;
                        hi = h;
                        chunk = rest;
                    }
                    if lo <= r && r <= hi {
                        matched = true;
                    }
                    nrange += 1;
                }
                if matched == negated {
                    failed = true;
                }
            }
            '?' => {
                if let Some(n) = next {
                    if n == '/' {
                        failed = true;
                    }
                    s = &s[n.len_utf8()..];
                }
                chunk = &chunk[1..];
            }
            _ => {
                let literal = if c == '\\' {
                    chunk = &chunk[1..];
                    chunk.chars().next().ok_or(BadPattern)?
                } else {
                    c
                };
                if let Some(n) = next {
                    if n != literal {
                        failed = true;
                    }
                    s = &s[n.len_utf8()..];
                }
                chunk = &chunk[literal.len_utf8()..];
            }
        }
    }
    if failed { Ok(None) } else { Ok(Some(s)) }
}

/// Reads one (possibly escaped) class character; the class must continue after it.
fn get_esc(chunk: &str) -> Result<(char, &str), BadPattern> {
    let mut chars = chunk.chars();
    let c = match chars.next() {
        None | Some('-' | ']') => return Err(BadPattern),
        Some('\\') => chars.next().ok_or(BadPattern)?,
        Some(c) => c,
    };
    let rest = chars.as_str();
    if rest.is_empty() {
        return Err(BadPattern);
    }
    Ok((c, rest))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The table of Go's own `filepath.Match` tests (Unix), plus a few extras.
    #[test]
    fn go_match_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("abc", "abc", true),
            ("*", "abc", true),
            ("*c", "abc", true),
            ("a*", "a", true),
            ("a*", "abc", true),
            ("a*", "ab/c", false),
            ("a*/b", "abc/b", true),
            ("a*/b", "a/c/b", false),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", true),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", true),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", false),
            ("a*b?c*x", "abxbbxdbxebxczzx", true),
            ("a*b?c*x", "abxbbxdbxebxczzy", false),
            ("ab[c]", "abc", true),
            ("ab[b-d]", "abc", true),
            ("ab[e-g]", "abc", false),
            ("ab[^c]", "abc", false),
            ("ab[^b-d]", "abc", false),
            ("ab[^e-g]", "abc", true),
            ("a\\*b", "a*b", true),
            ("a\\*b", "ab", false),
            ("a?b", "a☺b", true),
            ("a[^a]b", "a☺b", true),
            ("a???b", "a☺b", false),
            ("a[^a][^a][^a]b", "a☺b", false),
            ("[a-ζ]*", "α", true),
            ("*[a-ζ]", "A", false),
            ("a?b", "a/b", false),
            ("a*b", "a/b", false),
            ("[\\]a]", "]", true),
            ("[\\-]", "-", true),
            ("[x\\-]", "x", true),
            ("[x\\-]", "-", true),
            ("[x\\-]", "z", false),
            ("[\\-x]", "x", true),
            ("[\\-x]", "-", true),
            ("[\\-x]", "a", false),
            ("*x", "xxx", true),
            // Classes may match `/` (only `*` and `?` refuse it).
            ("a[/]b", "a/b", true),
            ("", "", true),
            ("", "a", false),
            ("a", "", false),
            ("*", "", true),
            ("**", "ab", true),
            ("?", "", false),
            ("Abc", "abc", false),
            ("a\\", "a", false),
        ];
        for &(pattern, value, want) in cases {
            assert_eq!(
                go_match(pattern, value),
                want,
                "go_match({pattern:?}, {value:?})"
            );
        }
    }

    #[test]
    fn malformed_patterns_never_match() {
        let cases: &[(&str, &str)] = &[
            ("[]a]", "]"),
            ("[-]", "-"),
            ("[x-]", "x"),
            ("[x-]", "-"),
            ("[x-]", "z"),
            ("[-x]", "x"),
            ("[-x]", "-"),
            ("[-x]", "a"),
            ("\\", "a"),
            ("[a-b-c]", "a"),
            ("[", "a"),
            ("[^", "a"),
            ("[^bc", "a"),
            ("a[", "a"),
            ("a[", "ab"),
            ("a[", "x"),
            ("a/b[", "x"),
            ("*x[", "x"),
            ("[a-", "a"),
            ("a\\", "a\\"),
            ("[", ""),
            ("[", "["),
            ("*[", "abc"),
        ];
        for &(pattern, value) in cases {
            assert!(
                !go_match(pattern, value),
                "go_match({pattern:?}, {value:?})"
            );
            assert!(
                !filter_glob(pattern, value),
                "filter_glob({pattern:?}, {value:?})"
            );
        }
    }

    #[test]
    fn escapes_inside_and_outside_classes() {
        assert!(go_match("\\[a\\]", "[a]"));
        assert!(go_match("[\\^]", "^"));
        assert!(go_match("\\?", "?"));
        assert!(!go_match("\\?", "x"));
        assert!(go_match("[\\*]", "*"));
        assert!(go_match("a[*]b", "a*b"));
        assert!(go_match("\\é", "é"));
    }

    #[test]
    fn utf8_is_matched_per_character() {
        assert!(go_match("?", "é"));
        assert!(!go_match("??", "é"));
        assert!(go_match("*é", "aaé"));
        assert!(go_match("[é]x", "éx"));
        assert!(go_match("[^é]x", "ex"));
        assert!(!go_match("[^é]x", "éx"));
    }

    #[test]
    fn many_stars_do_not_backtrack() {
        // Checked while fuzzing: like Go, a `*` commits to the first position where the chunk
        // after it matches (only the last chunk retries), so matching is linear here rather
        // than exponential in the number of stars.
        let value = "a".repeat(100_000);
        let start = std::time::Instant::now();
        assert!(!go_match("*a*a*a*a*a*a*a*a*a*a*a*a*b", &value));
        assert!(go_match("*a*a*a*a*a*a*a*a*a*a*a*a*", &value));
        assert!(!filter_glob("*a*a*a*a*a*b", &value));
        assert!(!go_match("*?*?*?*?*?*?*?*?*/", &value));
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn filter_glob_suffix_extension() {
        let p = "*.openai.com";
        assert!(filter_glob(p, "api.openai.com"));
        assert!(filter_glob(p, "a.b.openai.com"));
        assert!(!filter_glob(p, "openai.com"));
        assert!(!filter_glob(p, "api.openai.com:443"));
        assert!(!filter_glob(p, "evilopenai.com"));
        // Plain go_match would refuse the `/` in the value; the suffix rule does not care.
        assert!(!go_match("*.com", "a/b.com"));
        assert!(filter_glob("*.com", "a/b.com"));
    }

    #[test]
    fn filter_glob_falls_back_to_go_match() {
        assert!(filter_glob("text/*", "text/html"));
        assert!(!filter_glob("*", "application/json"));
        assert!(filter_glob("*", ""));
        assert!(filter_glob("*/*", "application/json"));
        assert!(filter_glob("my-app-*", "my-app-1"));
        assert!(!filter_glob("Application/JSON", "application/json"));
        assert!(filter_glob("api.openai.com:*", "api.openai.com:443"));
    }
}
