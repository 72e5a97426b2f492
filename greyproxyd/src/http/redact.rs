//! Redaction of header values and URL query values before a transaction is stored.
//!
//! Header names are matched against greyproxy's pattern language (docs/configuration.md):
//! case-insensitive, `*` only at the ends (`name` exact, `*x*` contains, `*x` ends with, `x*`
//! starts with, `*` everything). The defaults ([`DEFAULT_HEADER_PATTERNS`]) always apply and
//! configured patterns add to them. A matching header keeps its name and all its values become
//! one [`REDACTED`]. Going beyond greyproxy, query parameters whose names match the header
//! patterns or [`DEFAULT_URL_PATTERNS`] (`?key=` of Google AI, `access_token`, signatures…)
//! have their values redacted too, as does a password in the URL's userinfo, so that a secret
//! carried in the URL does not land in the store either.

use std::collections::BTreeMap;

use super::header;
use super::percent::{self, Plus};

/// Header name patterns that are always redacted.
pub(crate) const DEFAULT_HEADER_PATTERNS: &[&str] = &[
    "Authorization",
    "Proxy-Authorization",
    "Cookie",
    "Set-Cookie",
    "*api-key*",
    "*token*",
    "*secret*",
];

/// Query parameter name patterns redacted in addition to the header patterns. `*signature`
/// covers `signature` itself and the `X-Amz-Signature`/`X-Goog-Signature` of presigned URLs.
pub(crate) const DEFAULT_URL_PATTERNS: &[&str] = &[
    "key",
    "api_key",
    "apikey",
    "access_token",
    "*password*",
    "sig",
    "*signature",
];

/// What replaces a redacted value.
pub(crate) const REDACTED: &str = "[REDACTED]";

/// A configured redaction pattern was refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub(crate) enum RedactError {
    /// The pattern is empty or uses `*` other than at its ends.
    #[error("invalid redaction pattern {pattern:?}: {reason}")]
    Pattern {
        /// The pattern as given.
        pattern: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// One compiled pattern; texts are ASCII-lowercased.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    All,
    Exact(String),
    Contains(String),
    Prefix(String),
    Suffix(String),
}

impl Pattern {
    fn parse(text: &str) -> Result<Self, RedactError> {
        let refuse = |reason| RedactError::Pattern {
            pattern: text.to_owned(),
            reason,
        };
        let lowered = text.trim().to_ascii_lowercase();
        if lowered.is_empty() {
            return Err(refuse("the pattern is empty"));
        }
        if lowered == "*" {
            return Ok(Self::All);
        }
        let (starts, ends) = (lowered.starts_with('*'), lowered.ends_with('*'));
        let core = &lowered[usize::from(starts)..lowered.len() - usize::from(ends)];
        if core.contains('*') {
            return Err(refuse("`*` may only appear at the start or the end"));
        }
        let core = core.to_owned();
        Ok(match (starts, ends) {
            // `**` is "contains nothing", which everything does.
            (true, true) if core.is_empty() => Self::All,
            (true, true) => Self::Contains(core),
            (true, false) => Self::Suffix(core),
            (false, true) => Self::Prefix(core),
            (false, false) => Self::Exact(core),
        })
    }

    /// `name` must already be ASCII-lowercased.
    fn matches(&self, name: &str) -> bool {
        match self {
            Self::All => true,
            Self::Exact(p) => name == p,
            Self::Contains(p) => name.contains(p.as_str()),
            Self::Prefix(p) => name.starts_with(p.as_str()),
            Self::Suffix(p) => name.ends_with(p.as_str()),
        }
    }
}

/// Compiles patterns, skipping duplicates (the defaults may be repeated in the configuration).
fn compile<'a>(
    into: &mut Vec<Pattern>,
    texts: impl IntoIterator<Item = &'a str>,
) -> Result<(), RedactError> {
    for text in texts {
        let pattern = Pattern::parse(text)?;
        if !into.contains(&pattern) {
            into.push(pattern);
        }
    }
    Ok(())
}

/// Decides which header values and query values are secrets, and blanks them.
#[derive(Debug, Clone)]
pub(crate) struct Redactor {
    header: Vec<Pattern>,
    url: Vec<Pattern>,
}

impl Default for Redactor {
    /// The defaults only.
    fn default() -> Self {
        let mut header = Vec::new();
        let mut url = Vec::new();
        // The built-in patterns are valid; a failure here would be a bug caught by the tests.
        let _ = compile(&mut header, DEFAULT_HEADER_PATTERNS.iter().copied());
        url.clone_from(&header);
        let _ = compile(&mut url, DEFAULT_URL_PATTERNS.iter().copied());
        Self { header, url }
    }
}

impl Redactor {
    /// The default patterns plus `extra` (from configuration), which apply to header names
    /// and query parameter names alike. Fails on an empty pattern or a `*` in the middle.
    pub(crate) fn new(extra: &[String]) -> Result<Self, RedactError> {
        let mut redactor = Self::default();
        compile(&mut redactor.header, extra.iter().map(String::as_str))?;
        compile(&mut redactor.url, extra.iter().map(String::as_str))?;
        Ok(redactor)
    }

    /// True when a header of this name (any case) has its values redacted.
    pub(crate) fn is_sensitive(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        self.header.iter().any(|p| p.matches(&name))
    }

    /// True when a query parameter of this (already percent-decoded) name is redacted.
    fn is_sensitive_param(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        self.url.iter().any(|p| p.matches(&name))
    }

    /// The headers as stored: canonical names (`x-api-key` → `X-Api-Key`) mapped to their
    /// values in order (non-UTF-8 bytes replaced lossily), a sensitive header's values
    /// replaced by a single [`REDACTED`].
    pub(crate) fn headers(&self, headers: &http::HeaderMap) -> BTreeMap<String, Vec<String>> {
        let mut out = BTreeMap::new();
        for name in headers.keys() {
            let values = if self.is_sensitive(name.as_str()) {
                vec![REDACTED.to_owned()]
            } else {
                headers
                    .get_all(name)
                    .iter()
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .collect()
            };
            out.insert(header::canonical(name.as_str()), values);
        }
        out
    }

    /// The URL with the values of sensitive query parameters, and any userinfo password,
    /// replaced by [`REDACTED`]. Everything else is left byte for byte: no re-encoding, no
    /// reordering; parameters without `=` or with an empty value are left alone.
    pub(crate) fn url(&self, url: &str) -> String {
        // The fragment is not part of the query, even when it contains `?` or `=`.
        let (before_fragment, fragment) = match url.find('#') {
            Some(i) => url.split_at(i),
            None => (url, ""),
        };
        let (head, query) = match before_fragment.find('?') {
            Some(i) => (&before_fragment[..i], Some(&before_fragment[i + 1..])),
            None => (before_fragment, None),
        };

        let mut out = String::with_capacity(url.len());
        redact_userinfo(head, &mut out);
        if let Some(query) = query {
            out.push('?');
            for (i, param) in query.split('&').enumerate() {
                if i > 0 {
                    out.push('&');
                }
                match param.split_once('=') {
                    Some((name, value))
                        if !value.is_empty()
                            && self
                                .is_sensitive_param(&percent::decode_lossy(name, Plus::Space)) =>
                    {
                        out.push_str(name);
                        out.push('=');
                        out.push_str(REDACTED);
                    }
                    _ => out.push_str(param),
                }
            }
        }
        out.push_str(fragment);
        out
    }
}

/// Appends the part of a URL before its query, with the password of `scheme://user:pass@host`
/// replaced. Origin-form targets (`/path`) have no authority and pass unchanged.
fn redact_userinfo(head: &str, out: &mut String) {
    let Some(scheme_end) = head.find("://") else {
        out.push_str(head);
        return;
    };
    let authority_start = scheme_end + 3;
    let authority_end = head[authority_start..]
        .find('/')
        .map_or(head.len(), |i| authority_start + i);
    let authority = &head[authority_start..authority_end];
    // The last `@` ends the userinfo (an unencoded `@` in a password is common enough).
    let password = authority.rfind('@').and_then(|at| {
        let colon = authority[..at].find(':')?;
        Some((authority_start + colon + 1, authority_start + at))
    });
    match password {
        Some((start, end)) if start < end => {
            out.push_str(&head[..start]);
            out.push_str(REDACTED);
            out.push_str(&head[end..]);
        }
        _ => out.push_str(head),
    }
}

#[cfg(test)]
mod tests;
