//! The Anthropic Messages dissector (`anthropic`): `POST /v1/messages` requests (model,
//! Claude Code's session in `metadata.user_id`, system prompt, tools, the whole message history)
//! and their responses, an SSE stream (`message_start` … `message_stop`) or one JSON message.
//!
//! Usage follows OTel semantics: Anthropic's `input_tokens` *excludes* cache reads and writes,
//! so the normalised input is `input_tokens + cache_read_input_tokens +
//! cache_creation_input_tokens`. Streamed usage is cumulative: `message_delta` repeats and
//! updates what `message_start` said (gateways may send zeros first), so the final usage is
//! the start's object with every later delta's fields laid over it.

use std::collections::HashMap;

use greyproxy_protocol::Transaction;
use greyproxy_protocol::llm::Usage;
use serde_json::{Map, Value};

use super::json::{self, MAX_ACCUMULATED, RESULT_CHARS};
use super::model::{
    Block, Decoder, Dissected, Message, RequestFacts, ResponseFacts, Role, ToolResult, ToolUse,
};
use super::{sse, summary};

/// Dissects one Messages API transaction.
pub(crate) fn dissect(t: &Transaction) -> Dissected {
    Dissected {
        decoder: Decoder::Anthropic,
        provider: "anthropic".to_owned(),
        operation: "chat",
        request: request(t),
        response: response(t),
    }
}

fn request(t: &Transaction) -> RequestFacts {
    let (body, mut facts, parsed) = json::request_json(t);
    let Some(v) = parsed else {
        // A body cut at the capture cap is still worth the session and model it starts with.
        if let Some(raw) = body.as_deref() {
            let text = String::from_utf8_lossy(raw);
            facts.session_id = scan_session(&text);
            facts.model = scan_string_field(&text, "model");
        }
        return facts;
    };
    facts.model = json::string(&v, "model");
    facts.stream = v.get("stream").and_then(Value::as_bool).unwrap_or(false);
    facts.session_id = v
        .get("metadata")
        .and_then(|m| m.get("user_id"))
        .and_then(session_of_user_id);
    if let Some(system) = v.get("system") {
        json::set_system(&mut facts, &json::text_of(system));
    }
    facts.tools = json::array(&v, "tools")
        .iter()
        .filter_map(|t| json::string(t, "name"))
        .collect();
    facts.messages = json::array(&v, "messages").iter().map(message).collect();
    facts
}

/// The session in Claude Code's `metadata.user_id`: the legacy
/// `user_<hash>_account_<uuid>_session_<uuid>` string, a string holding a JSON object with
/// `session_id`, or such an object itself.
fn session_of_user_id(user_id: &Value) -> Option<String> {
    match user_id {
        Value::Object(_) => json::string(user_id, "session_id"),
        Value::String(s) => {
            if s.trim_start().starts_with('{')
                && let Ok(inner) = serde_json::from_str::<Value>(s)
            {
                return json::string(&inner, "session_id");
            }
            scan_session(s)
        }
        _ => None,
    }
}

/// Finds a session id in raw text: `session_<uuid>` (legacy user id) or
/// `"session_id":"<value>"` (possibly JSON-escaped inside a string).
pub(crate) fn scan_session(text: &str) -> Option<String> {
    for (i, _) in text.match_indices("session_") {
        let rest = &text[i + "session_".len()..];
        let id: String = rest
            .chars()
            .take_while(|c| c.is_ascii_hexdigit() || *c == '-')
            .take(36)
            .collect();
        if id.len() == 36 {
            return Some(id);
        }
    }
    scan_string_field(text, "session_id")
}

/// The value of the first `"<key>": "<value>"` in raw (possibly cut or escaped) JSON text; no
/// unescaping beyond the quote itself, values longer than 200 bytes are not ids.
pub(crate) fn scan_string_field(text: &str, key: &str) -> Option<String> {
    for quote in ["\"", "\\\""] {
        let needle = format!("{quote}{key}{quote}");
        for (i, _) in text.match_indices(&needle) {
            let rest = text[i + needle.len()..].trim_start();
            let Some(rest) = rest.strip_prefix(':') else {
                continue;
            };
            let Some(rest) = rest.trim_start().strip_prefix(quote) else {
                continue;
            };
            if let Some(end) = rest.find(quote) {
                let value = &rest[..end];
                if !value.is_empty() && value.len() <= 200 {
                    return Some(value.to_owned());
                }
            }
        }
    }
    None
}

fn message(m: &Value) -> Message {
    let role = match json::str_of(m, "role") {
        Some("assistant") => Role::Assistant,
        Some("system") => Role::System,
        _ => Role::User,
    };
    let blocks = match m.get("content") {
        Some(Value::String(s)) => vec![Block::Text(s.clone())],
        Some(Value::Array(blocks)) => blocks.iter().filter_map(block).collect(),
        _ => Vec::new(),
    };
    Message { role, blocks }
}

fn block(b: &Value) -> Option<Block> {
    match json::str_of(b, "type")? {
        "text" => Some(Block::Text(json::str_of(b, "text")?.to_owned())),
        "thinking" => Some(Block::Thinking(summary::preview(
            json::str_of(b, "thinking")?,
            json::THINKING_CHARS,
        ))),
        "tool_use" | "server_tool_use" => Some(Block::ToolUse(summary::tool_use(
            json::str_of(b, "id").unwrap_or(""),
            json::str_of(b, "name").unwrap_or("unknown"),
            b.get("input").unwrap_or(&Value::Null),
        ))),
        "tool_result" => Some(Block::ToolResult(ToolResult {
            tool_use_id: json::str_of(b, "tool_use_id").unwrap_or("").to_owned(),
            preview: summary::preview(
                &b.get("content").map(json::text_of).unwrap_or_default(),
                RESULT_CHARS,
            ),
            is_error: b.get("is_error").and_then(Value::as_bool).unwrap_or(false),
            child_session: None,
        })),
        // Redacted thinking, images, documents: nothing a reader of the conversation needs.
        _ => None,
    }
}

fn response(t: &Transaction) -> ResponseFacts {
    json::read_response(t, false, stream, whole, |_| {})
}

/// A non-streamed response: one message object, or an error object.
fn whole(body: &[u8], r: &mut ResponseFacts) {
    let v = match json::parse(body) {
        Ok(v) => v,
        Err(e) => return json::fail(r, e),
    };
    if let Some(e) = json::provider_error(&v) {
        return json::fail(r, e);
    }
    r.id = json::string(&v, "id");
    r.model = json::string(&v, "model");
    r.stop_reason = json::string(&v, "stop_reason");
    for b in json::array(&v, "content") {
        match block(b) {
            Some(Block::Text(s)) => r.text.push_str(&s),
            Some(Block::Thinking(s)) => json::push_thinking(&mut r.thinking, &s),
            Some(Block::ToolUse(u)) => r.tool_calls.push(u),
            _ => {}
        }
    }
    r.thinking = summary::preview(&r.thinking, json::THINKING_CHARS);
    if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
        r.usage = usage(u);
        r.usage_raw = Some(u.clone());
    }
    r.complete = true;
}

/// A content block being streamed.
enum Open {
    /// A text or thinking block (their deltas go straight to the response).
    Other,
    /// A tool call: its id, name, the input the start carried, the `partial_json` so far, and
    /// the position its call takes in `tool_calls` (reserved at the start, filled at the stop).
    Tool {
        id: String,
        name: String,
        input: Value,
        partial: String,
        slot: usize,
    },
}

/// A streamed response: the events in order, the final usage laid over the first.
fn stream(body: &[u8], r: &mut ResponseFacts) {
    r.streamed = true;
    let (events, cut) = sse::parse_all(body);
    // Open blocks by index (a map: a hostile stream may open many and never stop them).
    let mut open: HashMap<u64, Open> = HashMap::new();
    let mut slots: Vec<Option<ToolUse>> = Vec::new();
    let mut usage_raw: Option<Map<String, Value>> = None;
    let mut stopped = false;
    for ev in &events {
        let Ok(v) = serde_json::from_str::<Value>(&ev.data) else {
            continue;
        };
        let kind = json::str_of(&v, "type").unwrap_or(ev.event.as_str());
        let index = json::count(&v, "index").unwrap_or(0);
        let mut content = false;
        match kind {
            "message_start" => {
                let m = v.get("message").unwrap_or(&Value::Null);
                r.id = json::string(m, "id");
                r.model = json::string(m, "model");
                merge_usage(&mut usage_raw, m.get("usage"));
            }
            "content_block_start" => {
                let b = v.get("content_block").unwrap_or(&Value::Null);
                let state = match json::str_of(b, "type") {
                    Some("tool_use" | "server_tool_use") => {
                        content = true;
                        slots.push(None);
                        Open::Tool {
                            id: json::str_of(b, "id").unwrap_or("").to_owned(),
                            name: json::str_of(b, "name").unwrap_or("unknown").to_owned(),
                            input: b.get("input").cloned().unwrap_or(Value::Null),
                            partial: String::new(),
                            slot: slots.len() - 1,
                        }
                    }
                    Some("text") => {
                        let s = json::str_of(b, "text").unwrap_or("");
                        content = !s.is_empty();
                        r.text.push_str(s);
                        Open::Other
                    }
                    _ => Open::Other,
                };
                // A block restarted at an index that never stopped: the old one is over.
                if let Some(old) = open.insert(index, state) {
                    close(old, &mut slots);
                }
            }
            "content_block_delta" => {
                let d = v.get("delta").unwrap_or(&Value::Null);
                match json::str_of(d, "type") {
                    Some("text_delta") => {
                        let s = json::str_of(d, "text").unwrap_or("");
                        content = !s.is_empty();
                        r.text.push_str(s);
                    }
                    Some("thinking_delta") => {
                        let s = json::str_of(d, "thinking").unwrap_or("");
                        content = !s.is_empty();
                        json::push_thinking(&mut r.thinking, s);
                    }
                    Some("input_json_delta") => {
                        let s = json::str_of(d, "partial_json").unwrap_or("");
                        if let Some(Open::Tool { partial, .. }) = open.get_mut(&index) {
                            json::push_capped(partial, s, MAX_ACCUMULATED);
                        }
                    }
                    _ => {}
                }
            }
            "content_block_stop" => {
                if let Some(state) = open.remove(&index) {
                    close(state, &mut slots);
                }
            }
            "message_delta" => {
                let d = v.get("delta").unwrap_or(&Value::Null);
                if let Some(s) = json::string(d, "stop_reason") {
                    r.stop_reason = Some(s);
                }
                merge_usage(&mut usage_raw, v.get("usage"));
            }
            "message_stop" => stopped = true,
            "error" => {
                let e = json::provider_error(&v).unwrap_or_else(|| "provider error".to_owned());
                json::fail(r, e);
            }
            _ => {}
        }
        if content && r.first_content_end.is_none() {
            r.first_content_end = Some(ev.end);
        }
    }
    // Blocks the stream never closed (a cut body): their calls with the arguments read so far.
    for state in open.into_values() {
        close(state, &mut slots);
    }
    r.tool_calls = slots.into_iter().flatten().collect();
    r.thinking = summary::preview(&r.thinking, json::THINKING_CHARS);
    if let Some(raw) = usage_raw {
        let raw = Value::Object(raw);
        r.usage = usage(&raw);
        r.usage_raw = Some(raw);
    }
    if r.error.is_none() {
        r.complete = stopped;
        if cut {
            json::fail(r, "stream cut inside an event");
        } else if !stopped {
            json::fail(r, "stream ended before message_stop");
        }
    }
}

/// A finished content block: a tool call gets its arguments, parsed when they are whole JSON,
/// summarised from the raw text otherwise.
fn close(state: Open, slots: &mut [Option<ToolUse>]) {
    let Open::Tool {
        id,
        name,
        input,
        partial,
        slot,
    } = state
    else {
        return;
    };
    let call = if partial.is_empty() {
        summary::tool_use(&id, &name, &input)
    } else {
        summary::tool_use_raw(&id, &name, &partial)
    };
    if let Some(s) = slots.get_mut(slot) {
        *s = Some(call);
    }
}

/// Lays a usage object's fields over the ones seen so far (nulls do not erase).
fn merge_usage(into: &mut Option<Map<String, Value>>, usage: Option<&Value>) {
    let Some(Value::Object(fields)) = usage else {
        return;
    };
    let dst = into.get_or_insert_with(Map::new);
    for (k, v) in fields {
        if !v.is_null() {
            dst.insert(k.clone(), v.clone());
        }
    }
}

/// Normalises an Anthropic usage object; `None` when it has no count at all.
pub(crate) fn usage(u: &Value) -> Option<Usage> {
    let input = json::count(u, "input_tokens");
    let read = json::count(u, "cache_read_input_tokens");
    let write = json::count(u, "cache_creation_input_tokens");
    let output = json::count(u, "output_tokens");
    if input.is_none() && read.is_none() && write.is_none() && output.is_none() {
        return None;
    }
    let (read, write) = (read.unwrap_or(0), write.unwrap_or(0));
    let split = u.get("cache_creation");
    Some(Usage {
        input_tokens: input
            .unwrap_or(0)
            .saturating_add(read)
            .saturating_add(write),
        cache_read_tokens: read,
        cache_write_tokens: write,
        cache_write_5m_tokens: split.and_then(|s| json::count(s, "ephemeral_5m_input_tokens")),
        cache_write_1h_tokens: split.and_then(|s| json::count(s, "ephemeral_1h_input_tokens")),
        output_tokens: output.unwrap_or(0),
        reasoning_tokens: 0,
    })
}
