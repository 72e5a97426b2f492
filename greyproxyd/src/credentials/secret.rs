//! A credential's secret in memory: wiped on drop, never printed. [`fmt::Debug`] and
//! [`fmt::Display`] show only a preview (`sk-p…(51 chars)`); there is no `Serialize`, so a
//! secret cannot end up in a record, an event or a log line by accident — what is stored is the
//! vault's ciphertext.
//!
//! The forms in which an echo can carry the secret (as is, JSON-escaped, percent-encoded) are
//! computed once, when the secret is read, and shared by every request it goes into: a clone is
//! a reference, not another copy of the secret in memory.

use std::fmt;
use std::sync::Arc;

use zeroize::Zeroizing;

use crate::http::percent;

/// Longest secret accepted, in bytes. API keys and tokens are far shorter; a JWT with many
/// claims stays below it.
pub(crate) const MAX_SECRET_BYTES: usize = 8192;

/// A secret shorter than this shows no leading characters in its preview.
const PREVIEW_MIN_LEN: usize = 16;

/// Leading characters shown by the preview (`sk-p` of an OpenAI key: enough to tell keys apart,
/// far too little to guess one).
const PREVIEW_CHARS: usize = 4;

/// Why a secret is refused. Never contains the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SecretError {
    /// Empty (or only blanks).
    #[error("the secret is empty")]
    Empty,
    /// Longer than [`MAX_SECRET_BYTES`].
    #[error("the secret is {len} bytes long; at most {MAX_SECRET_BYTES} are accepted")]
    TooLong {
        /// Its length.
        len: usize,
    },
    /// A byte that cannot go into an HTTP header value unchanged (a control character, a
    /// line break, non-ASCII), or blanks at either end.
    #[error(
        "the secret has a character at byte {at} that an HTTP header cannot carry (only \
         printable ASCII, no blanks at either end)"
    )]
    Unprintable {
        /// Offset of the first offending byte.
        at: usize,
    },
}

/// A secret value; see the module documentation.
#[derive(Clone)]
pub(crate) struct Secret(Arc<Inner>);

/// The secret and its forms, wiped when the last clone goes.
struct Inner {
    value: Zeroizing<String>,
    /// The value as the content of a JSON string (what a JSON body substitution puts in).
    json: Zeroizing<Vec<u8>>,
    /// The distinct forms, the value as is first.
    forms: Vec<Zeroizing<Vec<u8>>>,
}

impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        self.0.value == other.0.value
    }
}

impl Eq for Secret {}

impl Secret {
    /// Checks and wraps a secret: printable ASCII (spaces inside allowed), 1 to
    /// [`MAX_SECRET_BYTES`] bytes, so that it can replace a placeholder in a header value, a
    /// query or a JSON string without changing their syntax.
    pub(crate) fn new(value: &str) -> Result<Secret, SecretError> {
        if value.len() > MAX_SECRET_BYTES {
            return Err(SecretError::TooLong { len: value.len() });
        }
        if value.trim().is_empty() {
            return Err(SecretError::Empty);
        }
        let b = value.as_bytes();
        if let Some(at) = b.iter().position(|&c| !(0x20..=0x7e).contains(&c)) {
            return Err(SecretError::Unprintable { at });
        }
        if b[0] == b' ' {
            return Err(SecretError::Unprintable { at: 0 });
        }
        if b[b.len() - 1] == b' ' {
            return Err(SecretError::Unprintable { at: b.len() - 1 });
        }
        let raw = Zeroizing::new(b.to_vec());
        let json = Zeroizing::new(json_escaped(value));
        let pct = Zeroizing::new(percent::encode(b).into_bytes());
        let mut forms = vec![raw];
        for other in [json.clone(), pct] {
            if !forms.contains(&other) {
                forms.push(other);
            }
        }
        Ok(Secret(Arc::new(Inner {
            value: Zeroizing::new(value.to_string()),
            json,
            forms,
        })))
    }

    /// Every form in which an echo can carry the secret: as is, JSON-escaped,
    /// percent-encoded (each once).
    pub(crate) fn forms(&self) -> &[Zeroizing<Vec<u8>>] {
        &self.0.forms
    }

    /// The secret as the content of a JSON string (without the quotes), for substitution
    /// into a JSON body.
    pub(crate) fn json(&self) -> &[u8] {
        &self.0.json
    }

    /// The secret itself: only for sealing and substitution.
    pub(crate) fn expose(&self) -> &str {
        &self.0.value
    }

    /// What lists and logs show instead: `sk-p…(51 chars)`, or `…(8 chars)` for a short one.
    pub(crate) fn preview(&self) -> String {
        let len = self.expose().chars().count();
        if len < PREVIEW_MIN_LEN {
            return format!("…({len} chars)");
        }
        let head: String = self.expose().chars().take(PREVIEW_CHARS).collect();
        format!("{head}…({len} chars)")
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({})", self.preview())
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.preview())
    }
}

/// `s` as the content of a JSON string (without the quotes).
fn json_escaped(s: &str) -> Vec<u8> {
    let quoted = serde_json::to_string(s).unwrap_or_default();
    quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .unwrap_or("")
        .as_bytes()
        .to_vec()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_show_only_a_preview() {
        let key = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
        let s = Secret::new(key).unwrap();
        assert_eq!(s.to_string(), "sk-p…(51 chars)");
        assert_eq!(format!("{s:?}"), "Secret(sk-p…(51 chars))");
        assert_eq!(format!("{s:#?}"), "Secret(sk-p…(51 chars))");
        assert_eq!(Secret::new("hunter22").unwrap().to_string(), "…(8 chars)");
        assert_eq!(s.expose(), key);
    }

    #[test]
    fn empty_oversize_and_binary_secrets_are_refused() {
        assert_eq!(Secret::new("").unwrap_err(), SecretError::Empty);
        assert_eq!(Secret::new("   ").unwrap_err(), SecretError::Empty);
        let long = "a".repeat(MAX_SECRET_BYTES + 1);
        assert_eq!(
            Secret::new(&long).unwrap_err(),
            SecretError::TooLong { len: 8193 }
        );
        assert!(Secret::new(&long[1..]).is_ok());
        assert_eq!(
            Secret::new("abc\r\nX-Injected: 1").unwrap_err(),
            SecretError::Unprintable { at: 3 }
        );
        assert_eq!(
            Secret::new("clé").unwrap_err(),
            SecretError::Unprintable { at: 2 }
        );
        assert_eq!(
            Secret::new(" padded").unwrap_err(),
            SecretError::Unprintable { at: 0 }
        );
        assert!(Secret::new("Basic dXNlcjpwYXNz").is_ok());
        // The error never carries the secret.
        let e = Secret::new("topsecret\u{7}").unwrap_err().to_string();
        assert!(!e.contains("topsecret"), "{e}");
    }
}
