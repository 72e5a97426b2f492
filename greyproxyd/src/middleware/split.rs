//! Shell-like splitting of `--middleware-cmd` strings into an argv (greyproxy's rules, restated in
//! docs/middleware.md#command-line), without a shell: no variable expansion, globbing or pipes
//! (use `sh -c "…"` explicitly for those).
//!
//! * Separators are space and tab only (a newline is an ordinary character).
//! * `'…'` is literal; a backslash has no special meaning inside.
//! * `"…"` groups; a backslash inside escapes the next character, whatever it is.
//! * Outside quotes a backslash escapes the next character (`a\ b` → `a b`).
//! * Quotes concatenate with adjacent text (`a"b"c` → `abc`).
//! * An argument is emitted only if non-empty, so `""` / `''` produce no argument.

/// Why a command string could not be split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    /// A `'` or `"` quote was opened and never closed.
    #[error("unterminated quote {0}")]
    UnterminatedQuote(char),
    /// The string ends with an escaping backslash.
    #[error("trailing backslash")]
    TrailingBackslash,
    /// No (non-empty) argument at all.
    #[error("empty command")]
    EmptyCommand,
}

/// Splits a `--middleware-cmd` string into program and arguments (see the module doc).
///
/// # Errors
///
/// [`SplitError::UnterminatedQuote`] for an unclosed quote, [`SplitError::TrailingBackslash`]
/// when the string ends in an escaping backslash (checked first), [`SplitError::EmptyCommand`]
/// when no non-empty argument results.
pub fn split_command(s: &str) -> Result<Vec<String>, SplitError> {
    let mut args = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            cur.push(c);
            escaped = false;
            continue;
        }
        match quote {
            Some('\'') => {
                if c == '\'' {
                    quote = None;
                } else {
                    cur.push(c);
                }
            }
            Some(q) => {
                if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                } else {
                    cur.push(c);
                }
            }
            None => match c {
                '\\' => escaped = true,
                '\'' | '"' => quote = Some(c),
                ' ' | '\t' => {
                    if !cur.is_empty() {
                        args.push(std::mem::take(&mut cur));
                    }
                }
                _ => cur.push(c),
            },
        }
    }
    if escaped {
        return Err(SplitError::TrailingBackslash);
    }
    if let Some(q) = quote {
        return Err(SplitError::UnterminatedQuote(q));
    }
    if !cur.is_empty() {
        args.push(cur);
    }
    if args.is_empty() {
        return Err(SplitError::EmptyCommand);
    }
    Ok(args)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn split_table() {
        let cases: &[(&str, &[&str])] = &[
            ("python3 mw.py", &["python3", "mw.py"]),
            ("  python3   mw.py  ", &["python3", "mw.py"]),
            ("a\tb", &["a", "b"]),
            ("\t a \t\t b \t", &["a", "b"]),
            // Newline is an ordinary character.
            ("a\nb c", &["a\nb", "c"]),
            // Backslash outside quotes escapes the next character.
            ("a\\ b", &["a b"]),
            ("a\\\\b", &["a\\b"]),
            ("\\'x\\'", &["'x'"]),
            ("a\\\"b", &["a\"b"]),
            ("\\n", &["n"]),
            // Single quotes are literal.
            ("'a b' c", &["a b", "c"]),
            ("'a\\b'", &["a\\b"]),
            ("'a\\'", &["a\\"]),
            ("'say \"hi\"'", &["say \"hi\""]),
            // Double quotes group; backslash escapes any next character.
            ("\"a b\" c", &["a b", "c"]),
            ("\"a\\\"b\"", &["a\"b"]),
            ("\"a\\\\b\"", &["a\\b"]),
            ("\"a\\nb\"", &["anb"]),
            ("\"it's\"", &["it's"]),
            // Quotes concatenate with adjacent text.
            ("a\"b\"c", &["abc"]),
            ("a'b'c", &["abc"]),
            ("'a'\"b\"c d", &["abc", "d"]),
            // Empty quoted arguments are dropped.
            ("a \"\"", &["a"]),
            ("a ''", &["a"]),
            ("'' a \"\" b", &["a", "b"]),
            ("\"\"a", &["a"]),
            // Quoted separators are kept.
            ("sh -c \"echo hi | cat\"", &["sh", "-c", "echo hi | cat"]),
            (
                "uv run --with 'websockets>=12' mw.py",
                &["uv", "run", "--with", "websockets>=12", "mw.py"],
            ),
            // Escaped space at the edge still forms an argument.
            ("\\ ", &[" "]),
            // No expansion of any kind.
            ("echo $HOME *.py ~", &["echo", "$HOME", "*.py", "~"]),
            ("héllo wörld", &["héllo", "wörld"]),
        ];
        for &(input, want) in cases {
            let got = split_command(input).unwrap();
            assert_eq!(got, want, "split_command({input:?})");
        }
    }

    #[test]
    fn split_errors() {
        let cases: &[(&str, SplitError)] = &[
            ("'unterminated", SplitError::UnterminatedQuote('\'')),
            ("a 'b c", SplitError::UnterminatedQuote('\'')),
            ("\"unterminated", SplitError::UnterminatedQuote('"')),
            ("a \"b\\\" c", SplitError::UnterminatedQuote('"')),
            ("abc\\", SplitError::TrailingBackslash),
            ("\\", SplitError::TrailingBackslash),
            ("\"abc\\", SplitError::TrailingBackslash),
            ("", SplitError::EmptyCommand),
            ("   ", SplitError::EmptyCommand),
            (" \t ", SplitError::EmptyCommand),
            ("\"\"", SplitError::EmptyCommand),
            ("'' \"\"", SplitError::EmptyCommand),
        ];
        for &(input, ref want) in cases {
            assert_eq!(
                split_command(input).unwrap_err(),
                *want,
                "split_command({input:?})"
            );
        }
    }

    #[test]
    fn error_display() {
        assert_eq!(
            SplitError::UnterminatedQuote('\'').to_string(),
            "unterminated quote '"
        );
        assert_eq!(
            SplitError::UnterminatedQuote('"').to_string(),
            "unterminated quote \""
        );
        assert_eq!(
            SplitError::TrailingBackslash.to_string(),
            "trailing backslash"
        );
        assert_eq!(SplitError::EmptyCommand.to_string(), "empty command");
    }
}
