//! Finding placeholders in a request: header values, URL query values (percent-decoded), and,
//! when a credential opts in, JSON and form bodies up to a cap.
//!
//! The scan is linear in what it reads, allocates only for what it finds, stops after
//! [`MAX_FOUND`] findings, and never panics. Anything that starts like a placeholder
//! (`greyproxy:credential:`) but is not a well-formed v1 one is reported as
//! [`Token::Malformed`] with a bounded preview, so that the caller can log it; a malformed
//! placeholder carries no secret and is never substituted.

use http::HeaderMap;

use super::session::{HEX_LEN, MAX_SESSION_ID, PREFIX, PREFIX_V1};
use crate::http::percent::{self, Plus};

/// Most findings kept per request; later ones are counted as [`Scan::truncated`].
pub(crate) const MAX_FOUND: usize = 32;

/// Longest preview of a malformed placeholder, in bytes (all ASCII).
pub(crate) const MALFORMED_PREVIEW: usize = 96;

/// Longest header or parameter name kept with a finding, in bytes.
const MAX_NAME: usize = 128;

/// Where in a request a substitution can happen (what a credential's
/// [`super::model::Places`] enables).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum PlaceKind {
    /// A header value.
    Header,
    /// A URL query parameter value.
    Query,
    /// A JSON body.
    JsonBody,
    /// A form (`application/x-www-form-urlencoded`) body.
    FormBody,
}

/// Where exactly a token was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Place {
    /// The kind of place.
    pub(crate) kind: PlaceKind,
    /// The header or parameter name (lower-case for headers; empty for a JSON body), cut to
    /// 128 bytes.
    pub(crate) name: String,
}

/// What was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token {
    /// A well-formed placeholder (the whole text) and its session id.
    Placeholder {
        /// `greyproxy:credential:v1:<session>:<hex>`.
        text: String,
        /// The `<session>` part.
        session: String,
    },
    /// Text starting with the prefix that is not a well-formed placeholder (a preview of at
    /// most [`MALFORMED_PREVIEW`] bytes).
    Malformed(String),
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    /// What.
    pub(crate) token: Token,
    /// Where.
    pub(crate) place: Place,
}

/// The findings of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Scan {
    /// In the order found (headers, then query, then body).
    pub(crate) found: Vec<Found>,
    /// More than [`MAX_FOUND`] tokens: the rest were not kept.
    pub(crate) truncated: bool,
    /// A body was longer than the cap: its tail was not scanned.
    pub(crate) body_cut: bool,
}

impl Scan {
    /// True when nothing was found.
    pub(crate) fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    fn push(&mut self, token: Token, kind: PlaceKind, name: &[u8]) {
        if self.found.len() >= MAX_FOUND {
            self.truncated = true;
            return;
        }
        let name = &name[..name.len().min(MAX_NAME)];
        self.found.push(Found {
            token,
            place: Place {
                kind,
                name: String::from_utf8_lossy(name).into_owned(),
            },
        });
    }

    fn scan_bytes(&mut self, hay: &[u8], kind: PlaceKind, name: &[u8]) {
        for token in tokens(hay) {
            self.push(token, kind, name);
            if self.truncated {
                return;
            }
        }
    }

    /// Scans every header value.
    pub(crate) fn headers(&mut self, headers: &HeaderMap) {
        for (name, value) in headers {
            self.scan_bytes(
                value.as_bytes(),
                PlaceKind::Header,
                name.as_str().as_bytes(),
            );
        }
    }

    /// Scans the values of a query string (without the `?`), percent-decoded.
    pub(crate) fn query(&mut self, query: &str) {
        self.pairs(query, PlaceKind::Query);
    }

    /// Scans at most `cap` bytes of a JSON body, as raw bytes (a placeholder has no
    /// character JSON escapes).
    pub(crate) fn json_body(&mut self, body: &[u8], cap: usize) {
        let seen = self.cut(body, cap);
        self.scan_bytes(seen, PlaceKind::JsonBody, b"");
    }

    /// Scans the values of at most `cap` bytes of a form body, percent-decoded. A body that is
    /// not UTF-8 is scanned as raw bytes.
    pub(crate) fn form_body(&mut self, body: &[u8], cap: usize) {
        let seen = self.cut(body, cap);
        match std::str::from_utf8(seen) {
            Ok(text) => self.pairs(text, PlaceKind::FormBody),
            Err(_) => self.scan_bytes(seen, PlaceKind::FormBody, b""),
        }
    }

    fn cut<'a>(&mut self, body: &'a [u8], cap: usize) -> &'a [u8] {
        if body.len() > cap {
            self.body_cut = true;
        }
        &body[..body.len().min(cap)]
    }

    fn pairs(&mut self, text: &str, kind: PlaceKind) {
        for pair in text.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decoded = percent::decode(value, Plus::Space);
            if find(&decoded, PREFIX.as_bytes()).is_none() {
                continue;
            }
            let key = percent::decode(key, Plus::Space);
            self.scan_bytes(&decoded, kind, &key);
            if self.truncated {
                return;
            }
        }
    }
}

/// The tokens in `hay`, in order.
pub(crate) fn tokens(hay: &[u8]) -> impl Iterator<Item = Token> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        let start = at + find(hay.get(at..)?, PREFIX.as_bytes())?;
        let (token, end) = read_token(hay, start);
        at = end.max(start + 1);
        Some(token)
    })
}

/// Reads the token at `start` (where [`PREFIX`] begins): what it is and where it ends.
fn read_token(hay: &[u8], start: usize) -> (Token, usize) {
    // The extent of a token: the run of characters a placeholder can contain.
    let run = hay[start..]
        .iter()
        .take_while(|&&c| c.is_ascii_alphanumeric() || matches!(c, b':' | b'-' | b'_'))
        .count();
    let end = start + run;
    let text = &hay[start..end];
    let well_formed = text.strip_prefix(PREFIX_V1.as_bytes()).and_then(|rest| {
        let colon = rest.iter().position(|&c| c == b':')?;
        let (session, hex) = (&rest[..colon], &rest[colon + 1..]);
        let ok = (1..=MAX_SESSION_ID).contains(&session.len())
            && session
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_'))
            && hex.len() == HEX_LEN
            && hex.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
        ok.then(|| ascii(session))
    });
    let token = match well_formed {
        Some(session) => Token::Placeholder {
            text: ascii(text),
            session,
        },
        None => Token::Malformed(
            String::from_utf8_lossy(&text[..text.len().min(MALFORMED_PREVIEW)]).into_owned(),
        ),
    };
    (token, end)
}

/// The text of a token's bytes, which are all ASCII (the run above admits nothing else).
fn ascii(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// First offset of `needle` in `hay`.
pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    let first = needle[0];
    let mut i = 0;
    while i + needle.len() <= hay.len() {
        let off = hay[i..=hay.len() - needle.len()]
            .iter()
            .position(|&c| c == first)?;
        i += off;
        if &hay[i..i + needle.len()] == needle {
            return Some(i);
        }
        i += 1;
    }
    None
}
