//! The LLM layer (docs/llm.md): recognising LLM API calls in recorded traffic, reading their
//! wire formats into one model ([`model`]), counting usage and cost, and assembling
//! conversations — all off the forwarding path. A finished transaction or WebSocket message
//! whose endpoint the registry ([`crate::endpoints`]) recognises is queued to one dissection
//! task; the forwarder never waits for it.

// Until the dissection task calls it.
pub(crate) mod assemble;
pub(crate) mod model;
pub(crate) mod price;
pub(crate) mod proposals;
pub(crate) mod queue;
pub(crate) mod recent;
// Public only for its `fuzz` entry points; everything else in it is crate-private.
pub mod responses;
pub(crate) mod rules;
pub(crate) mod sse;
pub(crate) mod summary;
pub(crate) mod task;
pub(crate) mod usage;

pub(crate) mod anthropic;
pub(crate) mod chat;
pub(crate) mod client;
pub(crate) mod gemini;
pub(crate) mod json;

// Public only for the fuzz targets.
pub mod fuzzing;
// Public only for the LLM benchmark (`greyproxyd/benches/llm.rs`).
pub mod bench;

#[cfg(test)]
mod bad_input_tests;
#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod golden_tests;
#[cfg(test)]
mod shape_tests;

use std::borrow::Cow;

use base64::Engine as _;
use greyproxy_protocol::Transaction;

/// The stored request body as bytes (base64-decoded when the store kept it so).
pub(crate) fn request_body(t: &Transaction) -> Option<Cow<'_, [u8]>> {
    body_bytes(
        t.request_body.as_deref(),
        t.request_body_encoding.as_deref(),
    )
}

/// The stored response body as bytes.
pub(crate) fn response_body(t: &Transaction) -> Option<Cow<'_, [u8]>> {
    body_bytes(
        t.response_body.as_deref(),
        t.response_body_encoding.as_deref(),
    )
}

fn body_bytes<'a>(body: Option<&'a str>, encoding: Option<&str>) -> Option<Cow<'a, [u8]>> {
    let body = body?;
    if encoding == Some("base64") {
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .ok()
            .map(Cow::Owned)
    } else {
        Some(Cow::Borrowed(body.as_bytes()))
    }
}
