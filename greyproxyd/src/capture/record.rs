//! Turning a finished exchange into a stored [`Transaction`]: sizes, timing, redacted headers
//! and URL, and the body copies decoded for storage (text as text, binary as base64).

use std::time::Instant;

use base64::Engine;
use greyproxy_protocol::{HeaderMapJson, Transaction};
use http::HeaderMap;

use super::body::{Captured, is_textual};
use crate::http::decode::decode_body;

/// How many times the capture cap the decoded copy may grow (compression ratios of text are
/// high; beyond this it is a bomb or not worth keeping).
pub(crate) const DECODED_FACTOR: usize = 4;

/// A stored body: its string form and `text` / `base64`, plus the decoding status.
pub(crate) struct StoredBody {
    /// The body.
    pub(crate) body: String,
    /// `text` or `base64`.
    pub(crate) encoding: &'static str,
    /// `identity`, `decoded`, `partial`, `failed: …`.
    pub(crate) decoding: String,
}

/// Decodes a captured body per its `Content-Encoding` and picks text or base64. Textual
/// content types that are not valid UTF-8 after decoding are stored as base64 too.
pub(crate) fn store_body(
    captured: &Captured,
    headers: &HeaderMap,
    cap: usize,
) -> Option<StoredBody> {
    if captured.wire_size == 0 {
        return None;
    }
    let ce = headers
        .get(http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok());
    let truncated = captured.truncated || !captured.complete;
    let decoded = decode_body(
        &captured.bytes,
        ce,
        truncated,
        cap.saturating_mul(DECODED_FACTOR),
    );
    let ct = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let decoding = decoded.status.to_string();
    let text = if is_textual(ct) || ct.is_none() {
        String::from_utf8(decoded.bytes.clone()).ok()
    } else {
        None
    };
    Some(match text {
        Some(body) => StoredBody {
            body,
            encoding: "text",
            decoding,
        },
        None => StoredBody {
            body: base64::engine::general_purpose::STANDARD.encode(&decoded.bytes),
            encoding: "base64",
            decoding,
        },
    })
}

/// Milliseconds between two instants (0 if reversed).
pub(crate) fn ms(from: Instant, to: Instant) -> u64 {
    to.saturating_duration_since(from).as_millis() as u64
}

/// The content type header as a string.
pub(crate) fn content_type(h: &HeaderMap) -> Option<String> {
    h.get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Fills the request side of `t`.
pub(crate) fn fill_request(
    t: &mut Transaction,
    headers: &HeaderMap,
    redacted: HeaderMapJson,
    captured: Option<&Captured>,
    cap: usize,
) {
    t.request_headers = Some(redacted);
    t.request_content_type = content_type(headers);
    if let Some(c) = captured {
        t.request_body_size = Some(c.wire_size);
        t.request_body_truncated = c.truncated;
        if let Some(b) = store_body(c, headers, cap) {
            t.request_body = Some(b.body);
            t.request_body_encoding = Some(b.encoding.into());
            t.request_body_decoding = Some(b.decoding);
        }
    }
}

/// Fills the response side of `t`.
pub(crate) fn fill_response(
    t: &mut Transaction,
    status: u16,
    headers: &HeaderMap,
    redacted: HeaderMapJson,
    captured: Option<&Captured>,
    cap: usize,
) {
    t.status_code = Some(status);
    t.response_headers = Some(redacted);
    t.response_content_type = content_type(headers);
    if let Some(c) = captured {
        t.response_body_size = Some(c.wire_size);
        t.response_body_truncated = c.truncated;
        if let Some(b) = store_body(c, headers, cap) {
            t.response_body = Some(b.body);
            t.response_body_encoding = Some(b.encoding.into());
            t.response_body_decoding = Some(b.decoding);
        }
        if !c.complete && t.error.is_none() {
            t.error = Some("response body did not complete".into());
        }
    }
}
