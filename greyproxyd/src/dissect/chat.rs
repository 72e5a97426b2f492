//! The Chat Completions dissector (`openai-chat`): OpenAI's `/v1/chat/completions` and every
//! host that speaks it (OpenRouter, LiteLLM, local servers). The request carries the whole
//! history in `messages`; the response is one JSON completion or a data-only SSE stream of
//! chunks ending with `data: [DONE]` (OpenRouter opens it with a comment line).
//!
//! Usage: `prompt_tokens` already *includes* the cached tokens
//! (`prompt_tokens_details.cached_tokens`, and OpenRouter's `cache_write_tokens`), and
//! `completion_tokens` includes `completion_tokens_details.reasoning_tokens`: OTel semantics as
//! sent. A stream carries usage only when asked for, on whichever chunk the server chooses
//! (sometimes one that still has choices), so every chunk is checked and the last one wins.

use std::collections::BTreeMap;

use greyproxy_protocol::Transaction;
use greyproxy_protocol::llm::Usage;
use serde_json::Value;

use super::json::{self, MAX_ACCUMULATED, RESULT_CHARS};
use super::model::{
    Block, Decoder, Dissected, Message, RequestFacts, ResponseFacts, Role, ToolResult, ToolUse,
};
use super::{sse, summary};

/// Streamed tool calls kept at most (by their `index`): more is not a real response.
const MAX_STREAMED_CALLS: usize = 128;

/// Dissects one Chat Completions transaction.
pub(crate) fn dissect(t: &Transaction) -> Dissected {
    Dissected {
        decoder: Decoder::OpenAiChat,
        provider: provider(&t.destination_host).to_owned(),
        operation: "chat",
        request: request(t),
        response: response(t),
    }
}

/// `openrouter` for OpenRouter's hosts, `openai` for OpenAI and every compatible server.
fn provider(host: &str) -> &'static str {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host == "openrouter.ai" || host.ends_with(".openrouter.ai") {
        "openrouter"
    } else {
        "openai"
    }
}

fn request(t: &Transaction) -> RequestFacts {
    let (_, mut facts, parsed) = json::request_json(t);
    let Some(v) = parsed else {
        return facts;
    };
    facts.model = json::string(&v, "model");
    facts.stream = v.get("stream").and_then(Value::as_bool).unwrap_or(false);
    facts.session_id = json::string(&v, "prompt_cache_key");
    facts.tools = json::array(&v, "tools")
        .iter()
        .filter_map(|t| {
            t.get("function")
                .and_then(|f| json::string(f, "name"))
                .or_else(|| json::string(t, "name"))
        })
        .collect();
    let mut system = Vec::new();
    for m in json::array(&v, "messages") {
        let msg = message(m);
        if msg.role == Role::System {
            system.extend(msg.blocks.iter().filter_map(|b| match b {
                Block::Text(s) => Some(s.clone()),
                _ => None,
            }));
        }
        facts.messages.push(msg);
    }
    if !system.is_empty() {
        json::set_system(&mut facts, &system.join("\n"));
    }
    facts
}

fn message(m: &Value) -> Message {
    let content = m.get("content").map(json::text_of).unwrap_or_default();
    let text = |blocks: &mut Vec<Block>| {
        if !content.is_empty() {
            blocks.push(Block::Text(content.clone()));
        }
    };
    let mut blocks = Vec::new();
    let role = match json::str_of(m, "role") {
        Some("system" | "developer") => {
            text(&mut blocks);
            Role::System
        }
        Some("assistant") => {
            if let Some(s) = reasoning(m) {
                blocks.push(Block::Thinking(summary::preview(s, json::THINKING_CHARS)));
            }
            text(&mut blocks);
            for c in json::array(m, "tool_calls") {
                blocks.push(Block::ToolUse(call(c)));
            }
            Role::Assistant
        }
        Some("tool" | "function") => {
            blocks.push(Block::ToolResult(ToolResult {
                tool_use_id: json::str_of(m, "tool_call_id")
                    .or_else(|| json::str_of(m, "name"))
                    .unwrap_or("")
                    .to_owned(),
                preview: summary::preview(&content, RESULT_CHARS),
                is_error: false,
                child_session: None,
            }));
            Role::User
        }
        _ => {
            text(&mut blocks);
            Role::User
        }
    };
    Message { role, blocks }
}

/// Visible reasoning in an assistant message or delta (`reasoning` on OpenRouter,
/// `reasoning_content` on LiteLLM / DeepSeek-style servers).
fn reasoning(v: &Value) -> Option<&str> {
    json::str_of(v, "reasoning")
        .or_else(|| json::str_of(v, "reasoning_content"))
        .filter(|s| !s.is_empty())
}

/// A whole tool call (`{id, function: {name, arguments}}`), arguments as a JSON string or,
/// from lenient servers, as an object.
fn call(c: &Value) -> ToolUse {
    let f = c.get("function").unwrap_or(&Value::Null);
    let id = json::str_of(c, "id").unwrap_or("");
    let name = json::str_of(f, "name").unwrap_or("unknown");
    match f.get("arguments") {
        Some(Value::String(args)) => summary::tool_use_raw(id, name, args),
        Some(args) => summary::tool_use(id, name, args),
        None => summary::tool_use_raw(id, name, ""),
    }
}

fn response(t: &Transaction) -> ResponseFacts {
    json::read_response(t, false, stream, whole, |_| {})
}

/// A non-streamed completion, or an error object.
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
    if let Some(choice) = first_choice(&v) {
        let m = choice.get("message").unwrap_or(&Value::Null);
        r.text = m.get("content").map(json::text_of).unwrap_or_default();
        if let Some(s) = reasoning(m) {
            r.thinking = summary::preview(s, json::THINKING_CHARS);
        }
        r.tool_calls = json::array(m, "tool_calls").iter().map(call).collect();
        r.stop_reason = json::string(choice, "finish_reason");
    }
    set_usage(r, v.get("usage"));
    r.complete = true;
}

/// The choice with `index` 0 (or the first one listed).
fn first_choice(v: &Value) -> Option<&Value> {
    let choices = json::array(v, "choices");
    choices
        .iter()
        .find(|c| json::count(c, "index") == Some(0))
        .or_else(|| choices.first())
}

/// A streamed tool call being assembled from deltas.
#[derive(Default)]
struct Pending {
    id: String,
    name: String,
    arguments: String,
}

/// A streamed completion: chunks until `[DONE]`.
fn stream(body: &[u8], r: &mut ResponseFacts) {
    r.streamed = true;
    let (events, cut) = sse::parse_all(body);
    let mut calls: BTreeMap<u64, Pending> = BTreeMap::new();
    let mut done = false;
    let mut finished = false;
    for ev in &events {
        if ev.data.trim() == "[DONE]" {
            done = true;
            break;
        }
        let Ok(v) = serde_json::from_str::<Value>(&ev.data) else {
            continue;
        };
        if let Some(e) = json::provider_error(&v) {
            json::fail(r, e);
            continue;
        }
        if r.id.is_none() {
            r.id = json::string(&v, "id");
        }
        if r.model.is_none() {
            r.model = json::string(&v, "model");
        }
        if v.get("usage").is_some_and(|u| !u.is_null()) {
            set_usage(r, v.get("usage"));
        }
        let Some(choice) = first_choice(&v) else {
            continue;
        };
        let d = choice.get("delta").unwrap_or(&Value::Null);
        let mut content = false;
        if let Some(s) = json::str_of(d, "content").filter(|s| !s.is_empty()) {
            r.text.push_str(s);
            content = true;
        }
        if let Some(s) = reasoning(d) {
            json::push_thinking(&mut r.thinking, s);
            content = true;
        }
        for (pos, c) in json::array(d, "tool_calls").iter().enumerate() {
            let index = json::count(c, "index").unwrap_or(pos as u64);
            if !calls.contains_key(&index) && calls.len() >= MAX_STREAMED_CALLS {
                continue;
            }
            let p = calls.entry(index).or_default();
            content = true;
            if let Some(id) = json::string(c, "id") {
                p.id = id;
            }
            let f = c.get("function").unwrap_or(&Value::Null);
            if let Some(name) = json::string(f, "name") {
                p.name = name;
            }
            if let Some(args) = json::str_of(f, "arguments") {
                json::push_capped(&mut p.arguments, args, MAX_ACCUMULATED);
            }
        }
        if let Some(s) = json::string(choice, "finish_reason") {
            r.stop_reason = Some(s);
            finished = true;
        }
        if content && r.first_content_end.is_none() {
            r.first_content_end = Some(ev.end);
        }
    }
    r.tool_calls = calls
        .into_values()
        .map(|p| {
            let name = if p.name.is_empty() {
                "unknown"
            } else {
                &p.name
            };
            summary::tool_use_raw(&p.id, name, &p.arguments)
        })
        .collect();
    r.thinking = summary::preview(&r.thinking, json::THINKING_CHARS);
    if r.error.is_none() {
        // Some compatible servers never send `[DONE]`; a finish reason on a stream that was
        // not cut is as good an end.
        r.complete = done || (finished && !cut);
        if !r.complete {
            json::fail(
                r,
                if cut {
                    "stream cut inside an event"
                } else {
                    "stream ended before [DONE]"
                },
            );
        }
    }
}

/// Records a usage object (the raw copy, the normalised one and OpenRouter's reported cost).
fn set_usage(r: &mut ResponseFacts, u: Option<&Value>) {
    let Some(u) = u.filter(|u| u.is_object()) else {
        return;
    };
    r.usage = usage(u);
    r.usage_raw = Some(u.clone());
    r.provider_cost_usd = u
        .get("cost")
        .and_then(Value::as_f64)
        .filter(|c| c.is_finite() && *c >= 0.0);
}

/// Normalises a Chat Completions usage object; `None` when it has no count at all.
pub(crate) fn usage(u: &Value) -> Option<Usage> {
    let prompt = json::count(u, "prompt_tokens");
    let completion = json::count(u, "completion_tokens");
    if prompt.is_none() && completion.is_none() {
        return None;
    }
    let details = u.get("prompt_tokens_details").unwrap_or(&Value::Null);
    // LiteLLM in front of Anthropic also reports the cache at the top level, already inside
    // `prompt_tokens`.
    let read = json::count(details, "cached_tokens")
        .or_else(|| json::count(u, "cache_read_input_tokens"))
        .unwrap_or(0);
    let write = json::count(details, "cache_write_tokens")
        .or_else(|| json::count(u, "cache_creation_input_tokens"))
        .unwrap_or(0);
    let reasoning = u
        .get("completion_tokens_details")
        .and_then(|d| json::count(d, "reasoning_tokens"))
        .unwrap_or(0);
    Some(Usage {
        input_tokens: prompt.unwrap_or(0),
        cache_read_tokens: read,
        cache_write_tokens: write,
        cache_write_5m_tokens: None,
        cache_write_1h_tokens: None,
        output_tokens: completion.unwrap_or(0),
        reasoning_tokens: reasoning,
    })
}
