//! The Responses API over WebSocket (codex): pairing a connection's `response.create`
//! messages with the event messages that answer them. One [`WsConn`] per connection (upgrade
//! id), owned by the caller, so two sessions' messages never mix. A connection carries one
//! response at a time: a request is answered by the events up to its final event.
//!
//! State is bounded: one pending call, its accumulator (bounded by [`events`]), and at most
//! [`MAX_RESPONSE_ROWS`] message ids.
//!
//! [`events`]: super::events

use serde_json::Value;

use super::super::model::{Decoder, Dissected, RequestFacts};
use super::events::Accumulator;
use super::request::{parse_request, read_request, scan_string_field};
use super::{OPERATION, PROVIDER};

/// Response message ids kept per call; further ones are only counted.
pub(crate) const MAX_RESPONSE_ROWS: usize = 10_000;

/// One finished call of a connection.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WsCall {
    /// Request and response (decoder `openai-ws`, streamed).
    pub(crate) dissected: Dissected,
    /// The `WS_REQ` row of the `response.create`; for a response seen without its request,
    /// the first `WS_RESP` row of the response.
    pub(crate) request_row: u64,
    /// The `WS_RESP` rows of the response, in order (at most [`MAX_RESPONSE_ROWS`]).
    pub(crate) response_rows: Vec<u64>,
    /// Response rows past [`MAX_RESPONSE_ROWS`], not listed.
    pub(crate) response_rows_omitted: u64,
    /// When the request was sent (or the first response message came, without a request).
    pub(crate) started_ms: u64,
    /// When the first message carrying content (text, thinking, a tool call) came.
    pub(crate) first_content_ms: Option<u64>,
    /// When the final message came (or the connection closed, or the next request superseded
    /// it).
    pub(crate) ended_ms: u64,
}

/// One connection's pairing state.
#[derive(Debug, Default)]
pub(crate) struct WsConn {
    pending: Option<Pending>,
}

/// The call waiting for the end of its response.
#[derive(Debug)]
struct Pending {
    /// The request row and what it asked; `None` when responses came without a request.
    request: Option<(u64, RequestFacts)>,
    started_ms: u64,
    first_content_ms: Option<u64>,
    rows: Vec<u64>,
    rows_omitted: u64,
    acc: Accumulator,
    /// Response messages that were not valid JSON (cut at the capture cap, or not JSON).
    unreadable: u64,
}

impl WsConn {
    /// A connection with nothing pending.
    pub(crate) fn new() -> WsConn {
        WsConn::default()
    }

    /// A client → server message. A `response.create` opens a call; a call still pending is
    /// finished first (returned) with the error "superseded". Anything else is ignored.
    pub(crate) fn on_request(&mut self, row_id: u64, at_ms: u64, payload: &[u8]) -> Option<WsCall> {
        let request = match serde_json::from_slice::<Value>(payload) {
            Ok(Value::Object(map)) => {
                if map.get("type").and_then(Value::as_str) != Some("response.create") {
                    return None;
                }
                read_request(&map)
            }
            Ok(_) => return None,
            // A create cut at the capture cap still names its type first.
            Err(_) => {
                if scan_string_field(payload, "type").as_deref() != Some("response.create") {
                    return None;
                }
                parse_request(payload, true)
            }
        };
        let previous = self.pending.take().map(|p| {
            finish(
                p,
                at_ms,
                Some("superseded by a new response.create before the response completed"),
            )
        });
        self.pending = Some(Pending {
            request: Some((row_id, request)),
            started_ms: at_ms,
            first_content_ms: None,
            rows: Vec::new(),
            rows_omitted: 0,
            acc: Accumulator::new(),
            unreadable: 0,
        });
        previous
    }

    /// A server → client message: an event of the pending response. Returns the call when
    /// the event ends it (`response.completed`, `.incomplete`, `.failed`, `error`). Events
    /// with no request pending still accumulate (the request may have gone unrecorded);
    /// messages that are not response events are ignored then.
    pub(crate) fn on_response(
        &mut self,
        row_id: u64,
        at_ms: u64,
        payload: &[u8],
    ) -> Option<WsCall> {
        let event = serde_json::from_slice::<Value>(payload).ok();
        if self.pending.is_none() {
            let kind = event.as_ref()?.get("type").and_then(Value::as_str)?;
            if !(kind.starts_with("response.") || kind == "error") {
                return None;
            }
            self.pending = Some(Pending {
                request: None,
                started_ms: at_ms,
                first_content_ms: None,
                rows: Vec::new(),
                rows_omitted: 0,
                acc: Accumulator::new(),
                unreadable: 0,
            });
        }
        let p = self.pending.as_mut()?;
        if p.rows.len() < MAX_RESPONSE_ROWS {
            p.rows.push(row_id);
        } else {
            p.rows_omitted += 1;
        }
        let Some(event) = event else {
            p.unreadable += 1;
            return None;
        };
        let step = p.acc.on_event(&event, "");
        if step.content && p.first_content_ms.is_none() {
            p.first_content_ms = Some(at_ms);
        }
        if !step.terminal {
            return None;
        }
        let p = self.pending.take()?;
        Some(finish(p, at_ms, None))
    }

    /// The connection closed: a call still pending is returned with an error.
    pub(crate) fn on_close(&mut self, at_ms: u64) -> Option<WsCall> {
        let p = self.pending.take()?;
        Some(finish(
            p,
            at_ms,
            Some("connection closed before the response completed"),
        ))
    }
}

/// Packages a pending call. `cut` says why it ended without a final event.
fn finish(p: Pending, ended_ms: u64, cut: Option<&str>) -> WsCall {
    let mut response = p.acc.finish();
    response.streamed = true;
    if let Some(cut) = cut
        && response.error.is_none()
    {
        response.error = Some(match p.unreadable {
            0 => cut.to_owned(),
            n => format!("{cut} ({n} messages not valid JSON)"),
        });
    }
    let (request_row, request) = match p.request {
        Some(r) => r,
        None => (
            p.rows.first().copied().unwrap_or(0),
            RequestFacts {
                generate: true,
                error: Some("response without a request seen".to_owned()),
                ..RequestFacts::default()
            },
        ),
    };
    WsCall {
        dissected: Dissected {
            decoder: Decoder::OpenAiWs,
            provider: PROVIDER.to_owned(),
            operation: OPERATION,
            request,
            response,
        },
        request_row,
        response_rows: p.rows,
        response_rows_omitted: p.rows_omitted,
        started_ms: p.started_ms,
        first_content_ms: p.first_content_ms,
        ended_ms: ended_ms.max(p.started_ms),
    }
}
