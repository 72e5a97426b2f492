//! Substitution (placeholder → secret, on the way out) and the echo scrub (secret →
//! placeholder, in a response body on the way back), as pure functions over header maps, query
//! strings and bodies. Each takes the pairs the binding decision allowed for that place and
//! changes nothing else: header order and names stay, untouched query parameters keep their
//! exact bytes, a changed query value is re-encoded alone.

use std::borrow::Cow;

use http::{HeaderMap, HeaderValue};

use super::scan::find;
use super::secret::Secret;
use super::session::PREFIX;
use crate::http::percent::{self, Plus};

/// One allowed replacement: a placeholder and the secret it stands for.
pub(crate) type Pair<'a> = (&'a str, &'a Secret);

/// Replaces every occurrence of `needle` in `hay`; `None` when there is none.
fn replace_all(hay: &[u8], needle: &[u8], with: &[u8]) -> Option<Vec<u8>> {
    let mut at = find(hay, needle)?;
    let mut out = Vec::with_capacity(hay.len() + with.len());
    let mut rest = hay;
    loop {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(with);
        rest = &rest[at + needle.len()..];
        match find(rest, needle) {
            Some(next) => at = next,
            None => break,
        }
    }
    out.extend_from_slice(rest);
    Some(out)
}

/// Applies every pair to `bytes` (placeholder → what `to` makes of the secret); `None` when
/// nothing changed.
fn apply(
    bytes: &[u8],
    pairs: &[Pair<'_>],
    to: impl Fn(&Secret) -> Cow<'_, [u8]>,
) -> Option<Vec<u8>> {
    // The cheap test first: most requests carry no placeholder at all.
    find(bytes, PREFIX.as_bytes())?;
    let mut current: Option<Vec<u8>> = None;
    for (placeholder, secret) in pairs {
        let hay = current.as_deref().unwrap_or(bytes);
        if let Some(next) = replace_all(hay, placeholder.as_bytes(), &to(secret)) {
            current = Some(next);
        }
    }
    current
}

/// Replaces placeholders in header values; the changed values are marked sensitive (HTTP/2
/// never indexes them). Returns how many values changed.
pub(crate) fn headers(map: &mut HeaderMap, pairs: &[Pair<'_>]) -> usize {
    let mut changed = 0;
    for value in map.values_mut() {
        let Some(bytes) = apply(value.as_bytes(), pairs, |s| s.expose().as_bytes().into()) else {
            continue;
        };
        // A secret is printable ASCII, so the new value is always valid; keep the old one
        // otherwise.
        if let Ok(mut v) = HeaderValue::from_bytes(&bytes) {
            v.set_sensitive(true);
            *value = v;
            changed += 1;
        }
    }
    changed
}

/// Replaces placeholders in the values of a query string (or a form body), percent-decoded;
/// only the changed values are re-encoded. `None` when nothing changed.
pub(crate) fn query(query: &str, pairs: &[Pair<'_>]) -> Option<String> {
    if !query.contains('%') && !query.contains(PREFIX) {
        return None;
    }
    let mut changed = false;
    let parts: Vec<String> = query
        .split('&')
        .map(|part| {
            let Some((key, value)) = part.split_once('=') else {
                return part.to_string();
            };
            let decoded = percent::decode(value, Plus::Space);
            match apply(&decoded, pairs, |s| s.expose().as_bytes().into()) {
                Some(new) => {
                    changed = true;
                    format!("{key}={}", percent::encode(&new))
                }
                None => part.to_string(),
            }
        })
        .collect();
    changed.then(|| parts.join("&"))
}

/// Replaces placeholders in a form body; `None` when nothing changed or it is not UTF-8.
pub(crate) fn form_body(body: &[u8], pairs: &[Pair<'_>]) -> Option<Vec<u8>> {
    query(std::str::from_utf8(body).ok()?, pairs).map(String::into_bytes)
}

/// Replaces placeholders in a JSON body with the secret escaped as JSON string content.
pub(crate) fn json_body(body: &[u8], pairs: &[Pair<'_>]) -> Option<Vec<u8>> {
    apply(body, pairs, |s| s.json().into())
}

/// The echo scrub of one response: every form in which an echo can carry a substituted secret
/// (as is, JSON-escaped, percent-encoded; [`Secret::forms`], computed when the secret was
/// read), each replaced by its placeholder.
pub(crate) struct Scrubber {
    /// Each placeholder with its secret.
    entries: Vec<(Vec<u8>, Secret)>,
}

impl Scrubber {
    /// The scrub for `pairs`.
    pub(crate) fn new(pairs: &[Pair<'_>]) -> Scrubber {
        let entries = pairs
            .iter()
            .map(|(placeholder, secret)| (placeholder.as_bytes().to_vec(), (*secret).clone()))
            .collect();
        Scrubber { entries }
    }

    /// `body` with every form replaced; `None` when none occurs.
    pub(crate) fn scrub(&self, body: &[u8]) -> Option<Vec<u8>> {
        let mut current: Option<Vec<u8>> = None;
        for (placeholder, secret) in &self.entries {
            for form in secret.forms() {
                let hay = current.as_deref().unwrap_or(body);
                if let Some(next) = replace_all(hay, form, placeholder) {
                    current = Some(next);
                }
            }
        }
        current
    }

    /// How many trailing bytes of `out` could be the start of a form: what a streaming scrub
    /// holds back until the next chunk.
    pub(crate) fn partial_tail(&self, out: &[u8]) -> usize {
        self.entries
            .iter()
            .flat_map(|(_, secret)| secret.forms())
            .filter_map(|f| {
                (1..f.len().min(out.len() + 1))
                    .rev()
                    .find(|&k| out.ends_with(&f[..k]))
            })
            .max()
            .unwrap_or(0)
    }
}
