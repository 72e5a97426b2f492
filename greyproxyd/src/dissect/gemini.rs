//! The Google AI dissector (`google-ai`): `generateContent` and `streamGenerateContent` on
//! `generativelanguage.googleapis.com`. The model is in the URL (`/models/<model>:<method>`);
//! the request carries `systemInstruction`, `tools[].functionDeclarations` and the whole
//! history in `contents`; the response is one JSON object, a JSON array of chunks
//! (`streamGenerateContent` without `alt=sse`) or an SSE stream of the same chunks.
//!
//! Usage (`usageMetadata`) is repeated on every chunk, cumulative: the last one counts.
//! `promptTokenCount` includes `cachedContentTokenCount`; `candidatesTokenCount` excludes
//! `thoughtsTokenCount`, so OTel output is their sum.

use greyproxy_protocol::Transaction;
use greyproxy_protocol::llm::Usage;
use serde_json::Value;

use super::json::{self, RESULT_CHARS};
use super::model::{
    Block, Decoder, Dissected, Message, RequestFacts, ResponseFacts, Role, ToolResult,
};
use super::{sse, summary};

/// Dissects one generateContent transaction.
pub(crate) fn dissect(t: &Transaction) -> Dissected {
    let mut request = request(t);
    request.model = model_of_url(&t.url);
    request.stream = t.url.contains(":streamGenerateContent") || t.url.contains("alt=sse");
    Dissected {
        decoder: Decoder::GoogleAi,
        provider: "gcp.gemini".to_owned(),
        operation: "generate_content",
        request,
        response: response(t),
    }
}

/// The model named in the URL path: `…/models/<model>:generateContent?…`.
pub(crate) fn model_of_url(url: &str) -> Option<String> {
    let (_, rest) = url.split_once("/models/")?;
    let end = rest.find([':', '?', '/', '#']).unwrap_or(rest.len());
    let model = &rest[..end];
    (!model.is_empty()).then(|| model.to_owned())
}

fn request(t: &Transaction) -> RequestFacts {
    let (_, mut facts, parsed) = json::request_json(t);
    let Some(v) = parsed else {
        return facts;
    };
    if let Some(si) = v.get("systemInstruction") {
        let text = json::text_of(si.get("parts").unwrap_or(&Value::Null));
        json::set_system(&mut facts, &text);
    }
    facts.tools = json::array(&v, "tools")
        .iter()
        .flat_map(|t| json::array(t, "functionDeclarations"))
        .filter_map(|f| json::string(f, "name"))
        .collect();
    facts.messages = json::array(&v, "contents")
        .iter()
        .map(|c| Message {
            role: match json::str_of(c, "role") {
                Some("model") => Role::Assistant,
                _ => Role::User,
            },
            blocks: json::array(c, "parts").iter().filter_map(part).collect(),
        })
        .collect();
    facts
}

/// One part of a content. Thought signatures are opaque and left out.
fn part(p: &Value) -> Option<Block> {
    if let Some(call) = p.get("functionCall") {
        return Some(Block::ToolUse(summary::tool_use(
            json::str_of(call, "id").unwrap_or(""),
            json::str_of(call, "name").unwrap_or("unknown"),
            call.get("args").unwrap_or(&Value::Null),
        )));
    }
    if let Some(resp) = p.get("functionResponse") {
        let body = resp
            .get("response")
            .map(Value::to_string)
            .unwrap_or_default();
        // Gemini sends no call ids unless the caller gave some: a result names its function.
        let id = json::str_of(resp, "id")
            .or_else(|| json::str_of(resp, "name"))
            .unwrap_or("");
        return Some(Block::ToolResult(ToolResult {
            tool_use_id: id.to_owned(),
            preview: summary::preview(&body, RESULT_CHARS),
            is_error: false,
            child_session: None,
        }));
    }
    let text = json::str_of(p, "text").filter(|s| !s.is_empty())?;
    if p.get("thought").and_then(Value::as_bool) == Some(true) {
        Some(Block::Thinking(summary::preview(
            text,
            json::THINKING_CHARS,
        )))
    } else {
        Some(Block::Text(text.to_owned()))
    }
}

fn response(t: &Transaction) -> ResponseFacts {
    // The content type decides: a request for SSE may still be answered with a JSON error.
    // Without one, the URL's `alt=sse` does.
    let sse_url = t.response_content_type.is_none() && t.url.contains("alt=sse");
    json::read_response(t, sse_url, stream, whole, |r| {
        r.thinking = summary::preview(&r.thinking, json::THINKING_CHARS);
    })
}

/// A JSON response: one object, or an array of the chunks a stream would have sent.
fn whole(body: &[u8], r: &mut ResponseFacts) {
    let v = match json::parse(body) {
        Ok(v) => v,
        Err(e) => return json::fail(r, e),
    };
    match &v {
        Value::Array(chunks) => {
            r.streamed = true;
            for c in chunks {
                chunk(c, r);
            }
        }
        _ => {
            chunk(&v, r);
        }
    }
    r.complete = r.error.is_none();
}

/// An SSE response: one chunk per event.
fn stream(body: &[u8], r: &mut ResponseFacts) {
    r.streamed = true;
    let (events, cut) = sse::parse_all(body);
    let mut finished = false;
    for ev in &events {
        let Ok(v) = serde_json::from_str::<Value>(&ev.data) else {
            continue;
        };
        let had = (r.text.len(), r.thinking.len(), r.tool_calls.len());
        finished |= chunk(&v, r);
        if r.first_content_end.is_none()
            && had != (r.text.len(), r.thinking.len(), r.tool_calls.len())
        {
            r.first_content_end = Some(ev.end);
        }
    }
    if r.error.is_none() {
        r.complete = finished && !cut;
        if cut {
            json::fail(r, "stream cut inside an event");
        } else if !finished {
            json::fail(r, "stream ended before a finish reason");
        }
    }
}

/// Reads one response chunk into `r`; returns whether it carried a finish reason.
fn chunk(v: &Value, r: &mut ResponseFacts) -> bool {
    if let Some(e) = json::provider_error(v) {
        json::fail(r, e);
        return false;
    }
    if let Some(id) = json::string(v, "responseId") {
        r.id = Some(id);
    }
    if let Some(m) = json::string(v, "modelVersion") {
        r.model = Some(m);
    }
    if let Some(u) = v.get("usageMetadata").filter(|u| u.is_object()) {
        r.usage = usage(u);
        r.usage_raw = Some(u.clone());
    }
    let Some(c) = json::array(v, "candidates").first() else {
        // A prompt refused before generation says why here instead of in a candidate.
        let blocked = v
            .get("promptFeedback")
            .and_then(|f| json::string(f, "blockReason"));
        let finished = blocked.is_some();
        if blocked.is_some() {
            r.stop_reason = blocked;
        }
        return finished;
    };
    let parts = c
        .get("content")
        .map(|c| json::array(c, "parts"))
        .unwrap_or(&[]);
    for p in parts {
        match part(p) {
            Some(Block::Text(s)) => r.text.push_str(&s),
            Some(Block::Thinking(_)) => {
                json::push_thinking(&mut r.thinking, json::str_of(p, "text").unwrap_or(""));
            }
            Some(Block::ToolUse(u)) => r.tool_calls.push(u),
            _ => {}
        }
    }
    match json::string(c, "finishReason") {
        Some(reason) => {
            r.stop_reason = Some(reason);
            true
        }
        None => false,
    }
}

/// Normalises a `usageMetadata` object; `None` when it has no count at all.
pub(crate) fn usage(u: &Value) -> Option<Usage> {
    let prompt = json::count(u, "promptTokenCount");
    let candidates = json::count(u, "candidatesTokenCount");
    let thoughts = json::count(u, "thoughtsTokenCount");
    let tool_prompt = json::count(u, "toolUsePromptTokenCount");
    if prompt.is_none() && candidates.is_none() && thoughts.is_none() {
        return None;
    }
    let thoughts = thoughts.unwrap_or(0);
    Some(Usage {
        // Tool-use prompts (the results of Gemini's own tools) are input as well.
        input_tokens: prompt.unwrap_or(0).saturating_add(tool_prompt.unwrap_or(0)),
        cache_read_tokens: json::count(u, "cachedContentTokenCount").unwrap_or(0),
        cache_write_tokens: 0,
        cache_write_5m_tokens: None,
        cache_write_1h_tokens: None,
        output_tokens: candidates.unwrap_or(0).saturating_add(thoughts),
        reasoning_tokens: thoughts,
    })
}
