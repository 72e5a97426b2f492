//! Lenient readers for the JSON the LLM dissectors see, shared by the Anthropic, Chat
//! Completions and Gemini dissectors. Everything here reads peer-controlled data: a value of
//! the wrong type reads as absent (never a panic, never a guess), accumulators stop at a cap.

use std::borrow::Cow;

use greyproxy_protocol::Transaction;
use serde_json::Value;

use super::model::{RequestFacts, ResponseFacts};

/// Bound on what one tool call's streamed arguments (or any other accumulated JSON text) may
/// grow to: past it the arguments are summarised from the prefix.
pub(crate) const MAX_ACCUMULATED: usize = 1024 * 1024;

/// Thinking is kept to this many characters (the model's documented cut).
pub(crate) const THINKING_CHARS: usize = 500;

/// A tool result's text is kept to this many characters.
pub(crate) const RESULT_CHARS: usize = 500;

/// The system prompt preview's length in characters.
pub(crate) const SYSTEM_CHARS: usize = 2000;

/// Parses a body as JSON. Invalid UTF-8 is replaced rather than refused (the rest of the body
/// is still worth reading); leading whitespace is tolerated (OpenRouter pads its JSON bodies).
pub(crate) fn parse(body: &[u8]) -> Result<Value, String> {
    let text = String::from_utf8_lossy(body);
    serde_json::from_str(text.trim_start()).map_err(|e| format!("invalid JSON: {e}"))
}

/// A token count: a non-negative integer, else absent (strings, floats and negative numbers
/// are not counts).
pub(crate) fn count(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_u64)
}

/// A string field.
pub(crate) fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// A non-empty string field, owned.
pub(crate) fn string(v: &Value, key: &str) -> Option<String> {
    str_of(v, key).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// An array field, empty when absent or not an array.
pub(crate) fn array<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// Appends `s` to `dst` while `dst` stays within `cap` bytes (cut on a char boundary).
/// Returns `false` once something had to be left out.
pub(crate) fn push_capped(dst: &mut String, s: &str, cap: usize) -> bool {
    let room = cap.saturating_sub(dst.len());
    if s.len() <= room {
        dst.push_str(s);
        return true;
    }
    let mut end = room;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    dst.push_str(&s[..end]);
    false
}

/// Appends thinking text, keeping one character more than [`THINKING_CHARS`] so the final
/// preview knows it was cut.
pub(crate) fn push_thinking(dst: &mut String, s: &str) {
    let have = dst.chars().count();
    let keep = (THINKING_CHARS + 1).saturating_sub(have);
    dst.extend(s.chars().take(keep));
}

/// The text of a value that is either a string or a list of parts with `text` (Anthropic
/// system / tool results, Chat Completions content), parts joined with `\n`.
pub(crate) fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| match p {
                Value::String(s) => Some(s.as_str()),
                _ => str_of(p, "text"),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// A provider's error object as one line: `{"type":"error","error":{"type","message"}}`
/// (Anthropic), `{"error":{"message","code"/"status"}}` (OpenAI, OpenRouter, Gemini) or
/// `{"error":"text"}`.
pub(crate) fn provider_error(v: &Value) -> Option<String> {
    let e = v.get("error")?;
    if let Some(s) = e.as_str() {
        return Some(s.to_owned());
    }
    if !e.is_object() {
        return None;
    }
    let kind = str_of(e, "type")
        .or_else(|| str_of(e, "status"))
        .map(str::to_owned)
        .or_else(|| {
            e.get("code")
                .filter(|c| !c.is_null())
                .map(|c| c.to_string())
        });
    let message = str_of(e, "message").unwrap_or("");
    Some(match kind {
        Some(k) if !message.is_empty() => format!("{k}: {message}"),
        Some(k) => k,
        None if !message.is_empty() => message.to_owned(),
        None => "provider error".to_owned(),
    })
}

/// Whether a response is an event stream: by its content type, else (no content type
/// recorded) by how the body starts.
pub(crate) fn is_event_stream(content_type: Option<&str>, body: &[u8]) -> bool {
    match content_type {
        Some(ct) => ct.to_ascii_lowercase().contains("text/event-stream"),
        None => {
            let start = body.trim_ascii_start();
            [&b"event:"[..], b"data:", b":"]
                .iter()
                .any(|p| start.starts_with(p))
        }
    }
}

/// The request body parsed as JSON, or the request facts saying why not (no body, invalid
/// JSON, cut at the capture cap). `generate` is set: only a codex warm-up clears it.
pub(crate) fn request_json<'a>(
    t: &'a Transaction,
) -> (Option<Cow<'a, [u8]>>, RequestFacts, Option<Value>) {
    let mut facts = RequestFacts {
        generate: true,
        ..RequestFacts::default()
    };
    let body = super::request_body(t);
    let Some(bytes) = body.as_deref() else {
        facts.error = Some("no request body".to_owned());
        return (body, facts, None);
    };
    let parsed = parse(bytes);
    if t.request_body_truncated {
        facts.error = Some("request body truncated at the capture cap".to_owned());
    }
    match parsed {
        Ok(v) => (body, facts, Some(v)),
        Err(e) => {
            facts.error.get_or_insert(e);
            (body, facts, None)
        }
    }
}

/// Marks a response as failed with `msg` unless an earlier, more precise error was recorded.
pub(crate) fn fail(r: &mut ResponseFacts, msg: impl Into<String>) {
    if r.error.is_none() {
        r.error = Some(msg.into());
    }
    r.complete = false;
}

/// Reads a response body as an event stream (by its content type or sniffed, or when
/// `stream_anyway` says so) or as one JSON document, then [`finish_response`]. `edit` runs
/// between the two (Gemini cuts its thinking there).
pub(crate) fn read_response(
    t: &Transaction,
    stream_anyway: bool,
    stream: impl FnOnce(&[u8], &mut ResponseFacts),
    whole: impl FnOnce(&[u8], &mut ResponseFacts),
    edit: impl FnOnce(&mut ResponseFacts),
) -> ResponseFacts {
    let mut r = ResponseFacts::default();
    match super::response_body(t) {
        None => fail(&mut r, "no response body"),
        Some(body)
            if stream_anyway || is_event_stream(t.response_content_type.as_deref(), &body) =>
        {
            stream(&body, &mut r);
        }
        Some(body) => whole(&body, &mut r),
    }
    edit(&mut r);
    finish_response(t, &mut r);
    r
}

/// What every dissector adds once its response is read: a body cut at the capture cap and an
/// HTTP error status are errors even when the body itself parsed.
pub(crate) fn finish_response(t: &Transaction, r: &mut ResponseFacts) {
    if t.response_body_truncated {
        fail(r, "response body truncated at the capture cap");
    }
    if let Some(status) = t.status_code.filter(|s| *s >= 400) {
        fail(r, format!("HTTP {status}"));
    }
}

/// System prompt facts from its full text: the length in characters and the preview.
pub(crate) fn set_system(facts: &mut RequestFacts, text: &str) {
    facts.system_len = text.chars().count();
    facts.system_preview = text.chars().take(SYSTEM_CHARS).collect();
}
