//! The OpenAI Responses API dissector (decoders `openai` and `openai-ws`): `POST
//! /v1/responses` over HTTP, answered with SSE or a JSON response object, and the same API
//! over a WebSocket (codex), where each `response.create` message is a request and the
//! server's event messages up to `response.completed` are its response.
//!
//! Both transports share the request reader ([`request`]) and the event accumulator
//! ([`events`]); [`ws`] pairs the messages of one connection. Usage follows OTel semantics:
//! `input_tokens` already includes `input_tokens_details.cached_tokens`, `output_tokens`
//! already includes `output_tokens_details.reasoning_tokens`.

mod events;
mod request;
mod ws;

use greyproxy_protocol::Transaction;
use serde_json::Value;

pub(crate) use ws::{WsCall, WsConn};

use super::model::{Decoder, Dissected, RequestFacts, ResponseFacts};
use super::{sse, summary};
use events::Accumulator;

/// `gen_ai.provider.name` of every call this dissector reads.
const PROVIDER: &str = "openai";
/// `gen_ai.operation.name`.
const OPERATION: &str = "chat";

/// Dissects one recorded `POST /v1/responses` exchange.
pub(crate) fn dissect(t: &Transaction) -> Dissected {
    let request = match super::request_body(t) {
        Some(body) => request::parse_request(&body, t.request_body_truncated),
        None => RequestFacts {
            generate: true,
            error: Some("no request body recorded".to_owned()),
            ..RequestFacts::default()
        },
    };
    let mut response = match super::response_body(t) {
        Some(body) => read_response(
            &body,
            t.response_content_type.as_deref(),
            t.response_body_truncated,
        ),
        None => ResponseFacts {
            error: Some("no response body recorded".to_owned()),
            ..ResponseFacts::default()
        },
    };
    if let Some(code) = t.status_code.filter(|c| *c >= 400)
        && response.error.is_none()
    {
        response.error = Some(format!("HTTP {code}"));
    }
    Dissected {
        decoder: Decoder::OpenAiResponses,
        provider: PROVIDER.to_owned(),
        operation: OPERATION,
        request,
        response,
    }
}

/// A response body: an event stream when the content type says so (or the body starts like
/// one), else a JSON response object.
fn read_response(body: &[u8], content_type: Option<&str>, truncated: bool) -> ResponseFacts {
    let start = body.trim_ascii_start();
    let sse = content_type.is_some_and(|ct| ct.contains("text/event-stream"))
        || start.starts_with(b"event:")
        || start.starts_with(b"data:");
    if sse {
        read_sse(body, truncated)
    } else {
        read_json(body, truncated)
    }
}

/// An SSE body. The Responses API sends no `[DONE]`: the stream ends with a final response
/// event.
fn read_sse(body: &[u8], truncated: bool) -> ResponseFacts {
    let (events, cut) = sse::parse_all(body);
    let mut acc = Accumulator::new();
    let mut first_content_end = None;
    let mut unreadable = 0u64;
    for ev in &events {
        let Ok(data) = serde_json::from_str::<Value>(&ev.data) else {
            unreadable += 1;
            continue;
        };
        let step = acc.on_event(&data, &ev.event);
        if step.content && first_content_end.is_none() {
            first_content_end = Some(ev.end);
        }
        if step.terminal {
            break;
        }
    }
    let finished = acc.finished();
    let mut facts = acc.finish();
    facts.streamed = true;
    facts.first_content_end = first_content_end;
    if !finished && facts.error.is_none() {
        facts.error = Some(if truncated {
            "response body cut at the capture cap".to_owned()
        } else if cut {
            "event stream cut inside an event".to_owned()
        } else if unreadable > 0 {
            format!(
                "event stream ended before the response completed ({unreadable} events not valid JSON)"
            )
        } else {
            "event stream ended before the response completed".to_owned()
        });
    }
    facts
}

/// A JSON body: a response object, or an API error (`{"error": {…}}`).
fn read_json(body: &[u8], truncated: bool) -> ResponseFacts {
    let value = match serde_json::from_slice::<Value>(body) {
        Ok(v) => v,
        Err(e) => {
            let error = if truncated {
                "response body cut at the capture cap".to_owned()
            } else {
                format!("response body is not valid JSON: {e}")
            };
            return ResponseFacts {
                error: Some(error),
                ..ResponseFacts::default()
            };
        }
    };
    let is_response = value.get("object").and_then(Value::as_str) == Some("response")
        || value.get("output").is_some_and(Value::is_array)
        || value.get("status").is_some_and(Value::is_string);
    if is_response {
        let mut acc = Accumulator::new();
        acc.final_response(&value, "");
        return acc.finish();
    }
    let error = match value.get("error").filter(|e| !e.is_null()) {
        Some(e) => events::error_text(e),
        None => summary::preview(&format!("not a Responses API object: {value}"), 200),
    };
    ResponseFacts {
        error: Some(error),
        ..ResponseFacts::default()
    }
}

/// Entry points for the fuzz targets (`fuzz/fuzz_targets/dissect_responses*.rs`): they run
/// the dissector on arbitrary input and check its bounds; nothing else of this module is
/// public.
#[doc(hidden)]
pub mod fuzz {
    use greyproxy_protocol::Transaction;

    use super::events::MAX_TEXT;
    use super::request::THINKING_CHARS;
    use super::{WsCall, WsConn};

    /// One HTTP exchange with these bodies; `flags` picks the content type and the truncation
    /// flags.
    pub fn http(request: &[u8], response: &[u8], flags: u8) {
        let t = Transaction {
            method: "POST".to_owned(),
            request_body: Some(String::from_utf8_lossy(request).into_owned()),
            response_body: Some(String::from_utf8_lossy(response).into_owned()),
            response_content_type: (flags & 1 != 0).then(|| "text/event-stream".to_owned()),
            request_body_truncated: flags & 2 != 0,
            response_body_truncated: flags & 4 != 0,
            ..Transaction::default()
        };
        let d = super::dissect(&t);
        let len = t.response_body.as_ref().map_or(0, String::len);
        assert!(d.response.text.len() <= len.min(MAX_TEXT));
        assert!(d.response.thinking.chars().count() <= THINKING_CHARS);
        assert!(d.response.first_content_end.is_none_or(|e| e <= len));
        for call in &d.response.tool_calls {
            assert!(call.info.input_preview.chars().count() <= 303);
        }
    }

    /// One WebSocket connection: each message is `(from_client, payload)`; the connection
    /// closes after the last one.
    pub fn ws(messages: &[(bool, &[u8])]) {
        let mut conn = WsConn::new();
        let mut calls = Vec::new();
        for (i, (client, payload)) in messages.iter().enumerate() {
            let id = i as u64;
            let at = id * 10;
            let call = if *client {
                conn.on_request(id, at, payload)
            } else {
                conn.on_response(id, at, payload)
            };
            calls.extend(call);
        }
        calls.extend(conn.on_close(messages.len() as u64 * 10));
        let total: usize = messages.iter().map(|(_, p)| p.len()).sum();
        for c in &calls {
            check_call(c, total, messages.len());
        }
    }

    fn check_call(c: &WsCall, total: usize, count: usize) {
        assert!(c.dissected.response.text.len() <= total.min(MAX_TEXT));
        assert!(c.response_rows.len() <= count);
        assert!(c.started_ms <= c.ended_ms);
        assert!(
            c.first_content_ms
                .is_none_or(|f| f >= c.started_ms && f <= c.ended_ms)
        );
        assert!(c.response_rows.iter().all(|r| *r as usize <= count));
        assert!(c.response_rows.windows(2).all(|w| w[0] < w[1]));
        assert!(c.dissected.response.thinking.chars().count() <= THINKING_CHARS);
        assert!(
            c.dissected.response.complete
                || c.dissected.response.error.is_some()
                || c.dissected.request.error.is_some()
        );
    }
}

#[cfg(test)]
mod cut_tests;
#[cfg(test)]
mod golden_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod ws_tests;
