//! The request side of the Responses API, shared by HTTP (`POST /v1/responses`) and WebSocket
//! (`response.create` messages): model, instructions, input items, tools and the session keys
//! opencode and codex put in the body.

use std::collections::HashSet;

use greyproxy_protocol::llm::LlmClient;
use serde_json::{Map, Value};

use super::super::model::{Block, Message, RequestFacts, Role, ToolResult};
use super::super::summary;

/// Characters of a system prompt kept as its preview.
const SYSTEM_PREVIEW_CHARS: usize = 2000;
/// Characters of a tool result kept.
const RESULT_PREVIEW_CHARS: usize = 500;
/// Characters of visible reasoning kept.
pub(super) const THINKING_CHARS: usize = 500;

/// Reads a request body (an HTTP body, or a WebSocket `response.create` payload). `truncated`
/// says the capture kept only a prefix. Whatever could be read is returned; `error` says what
/// could not.
pub(crate) fn parse_request(body: &[u8], truncated: bool) -> RequestFacts {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => read_request(&map),
        Ok(_) => RequestFacts {
            generate: true,
            error: Some("request body is not a JSON object".to_owned()),
            ..RequestFacts::default()
        },
        Err(e) => {
            let error = if truncated {
                "request body cut at the capture cap".to_owned()
            } else {
                format!("request body is not valid JSON: {e}")
            };
            // A cut body still starts with the fields clients write first (opencode and codex
            // put `model` before the long `input`): keep what a plain scan can find.
            RequestFacts {
                model: scan_string_field(body, "model"),
                session_id: scan_string_field(body, "prompt_cache_key"),
                generate: true,
                error: Some(error),
                ..RequestFacts::default()
            }
        }
    }
}

/// Reads a request object. A WebSocket `response.create` carries the request's fields beside
/// `type` (an early beta nested them under `response`: both are read).
pub(crate) fn read_request(map: &Map<String, Value>) -> RequestFacts {
    let map = match map.get("response").and_then(Value::as_object) {
        Some(inner) if !map.contains_key("model") && !map.contains_key("input") => inner,
        _ => map,
    };
    let str_of = |k: &str| map.get(k).and_then(non_empty_str).map(str::to_owned);
    let mut facts = RequestFacts {
        model: str_of("model"),
        stream: map.get("stream").and_then(Value::as_bool).unwrap_or(false),
        generate: map.get("generate").and_then(Value::as_bool).unwrap_or(true),
        previous_response_id: str_of("previous_response_id"),
        session_id: str_of("prompt_cache_key"),
        ..RequestFacts::default()
    };
    if let Some(meta) = map.get("client_metadata").and_then(Value::as_object) {
        let meta_str = |k: &str| meta.get(k).and_then(non_empty_str).map(str::to_owned);
        if facts.session_id.is_none() {
            facts.session_id = meta_str("session_id");
        }
        facts.thread_id = meta_str("thread_id");
        // codex names its own metadata `x-codex-…` (`x-codex-turn-metadata`,
        // `x-codex-window-id`…); nobody else does.
        if meta.keys().any(|k| k.starts_with("x-codex-")) {
            facts.client_hint = Some(LlmClient::Codex);
        }
    }

    let mut system = Vec::new();
    if let Some(instructions) = map.get("instructions").and_then(non_empty_str) {
        system.push(instructions.to_owned());
    }
    let mut tools = ToolNames::default();
    if let Some(list) = map.get("tools").and_then(Value::as_array) {
        tools.add_all(list);
    }
    match map.get("input") {
        Some(Value::String(s)) if !s.is_empty() => facts.messages.push(Message {
            role: Role::User,
            blocks: vec![Block::Text(s.clone())],
        }),
        Some(Value::Array(items)) => {
            let mut reader = InputReader {
                messages: &mut facts.messages,
                system: &mut system,
                tools: &mut tools,
            };
            for item in items {
                reader.item(item);
            }
        }
        _ => {}
    }
    let joined = system.join("\n\n");
    facts.system_len = joined.chars().count();
    facts.system_preview = summary::preview(&joined, SYSTEM_PREVIEW_CHARS);
    facts.tools = tools.names;
    facts
}

/// Tool names in order, each once.
#[derive(Default)]
struct ToolNames {
    names: Vec<String>,
    seen: HashSet<String>,
}

impl ToolNames {
    fn add_all(&mut self, list: &[Value]) {
        for tool in list {
            self.add(tool);
        }
    }

    /// `{"type":"function","name":…}` (Responses), `{"function":{"name":…}}` (Chat shape, which
    /// some clients send here too), a built-in by its type (`web_search`, `local_shell`), or a
    /// codex `namespace` grouping more tools.
    fn add(&mut self, tool: &Value) {
        let kind = tool.get("type").and_then(Value::as_str);
        if kind == Some("namespace") {
            if let Some(inner) = tool.get("tools").and_then(Value::as_array) {
                self.add_all(inner);
            }
            return;
        }
        let name = tool
            .get("name")
            .and_then(non_empty_str)
            .or_else(|| tool.get("function")?.get("name").and_then(non_empty_str))
            .or(kind.filter(|k| !k.is_empty() && *k != "function" && *k != "custom"));
        if let Some(name) = name
            && self.seen.insert(name.to_owned())
        {
            self.names.push(name.to_owned());
        }
    }
}

/// Turns input items into messages. Items the model produced (reasoning, assistant messages,
/// tool calls) gather into one assistant message until a user-side item comes.
struct InputReader<'a> {
    messages: &'a mut Vec<Message>,
    system: &'a mut Vec<String>,
    tools: &'a mut ToolNames,
}

impl InputReader<'_> {
    fn item(&mut self, item: &Value) {
        let kind = item.get("type").and_then(Value::as_str).unwrap_or("");
        let call_id = || {
            item.get("call_id")
                .or_else(|| item.get("id"))
                .and_then(Value::as_str)
                .unwrap_or("")
        };
        let name = || item.get("name").and_then(Value::as_str).unwrap_or("");
        match kind {
            "" | "message" => self.message(item),
            "function_call" => {
                let args = item.get("arguments").and_then(Value::as_str).unwrap_or("");
                let tool = summary::tool_use_raw(call_id(), name(), args);
                self.assistant(Block::ToolUse(tool));
            }
            // Freeform tools (codex's `apply_patch`): the input is plain text.
            "custom_tool_call" => {
                let input = item.get("input").cloned().unwrap_or(Value::Null);
                let tool = summary::tool_use(call_id(), name(), &input);
                self.assistant(Block::ToolUse(tool));
            }
            "local_shell_call" => {
                let action = item.get("action").cloned().unwrap_or(Value::Null);
                let tool = summary::tool_use(call_id(), "local_shell", &action);
                self.assistant(Block::ToolUse(tool));
            }
            "function_call_output" | "custom_tool_call_output" | "local_shell_call_output" => {
                self.result(call_id(), item.get("output"));
            }
            "reasoning" => {
                let text = reasoning_text(item);
                if !text.is_empty() {
                    self.assistant(Block::Thinking(text));
                }
            }
            "additional_tools" => {
                if let Some(list) = item.get("tools").and_then(Value::as_array) {
                    self.tools.add_all(list);
                }
            }
            // Built-in tool calls (`web_search_call`…), item references, compaction
            // summaries: nothing a conversation view needs.
            _ => {}
        }
    }

    fn message(&mut self, item: &Value) {
        let role = match item.get("role").and_then(Value::as_str) {
            Some("developer" | "system") => Role::System,
            Some("user") => Role::User,
            Some("assistant") => Role::Assistant,
            _ => return,
        };
        let blocks: Vec<Block> = content_texts(item.get("content"))
            .into_iter()
            .map(Block::Text)
            .collect();
        if blocks.is_empty() {
            return;
        }
        match role {
            Role::System => {
                for b in &blocks {
                    if let Block::Text(t) = b {
                        self.system.push(t.clone());
                    }
                }
                self.messages.push(Message { role, blocks });
            }
            Role::Assistant => {
                for b in blocks {
                    self.assistant(b);
                }
            }
            Role::User => self.messages.push(Message { role, blocks }),
        }
    }

    /// Appends to the current assistant message, opening one when the last message is not.
    fn assistant(&mut self, block: Block) {
        match self.messages.last_mut() {
            Some(m) if m.role == Role::Assistant => m.blocks.push(block),
            _ => self.messages.push(Message {
                role: Role::Assistant,
                blocks: vec![block],
            }),
        }
    }

    /// A tool result joins the previous message when that one holds only results (parallel
    /// calls answered together), else opens a user message.
    fn result(&mut self, call_id: &str, output: Option<&Value>) {
        let text = output_text(output);
        let block = Block::ToolResult(ToolResult {
            tool_use_id: call_id.to_owned(),
            preview: summary::preview(&text, RESULT_PREVIEW_CHARS),
            is_error: false,
            child_session: child_session(&text),
        });
        match self.messages.last_mut() {
            Some(m)
                if m.role == Role::User
                    && m.blocks.iter().all(|b| matches!(b, Block::ToolResult(_))) =>
            {
                m.blocks.push(block);
            }
            _ => self.messages.push(Message {
                role: Role::User,
                blocks: vec![block],
            }),
        }
    }
}

/// The texts of a message's content: a string, or parts (`input_text`, `output_text`, `text`,
/// `refusal`). Images and files have no text and are left out.
fn content_texts(content: Option<&Value>) -> Vec<String> {
    match content {
        Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| match p.get("type").and_then(Value::as_str) {
                Some("input_text" | "output_text" | "text") | None => p.get("text"),
                Some("refusal") => p.get("refusal"),
                _ => None,
            })
            .filter_map(non_empty_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// A tool output as text: a string, text parts joined by newlines, or other JSON as JSON.
fn output_text(output: Option<&Value>) -> String {
    match output {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(_)) => content_texts(output).join("\n"),
        Some(v) => v.to_string(),
    }
}

/// The readable part of a reasoning item: its summary texts (and plain `reasoning_text`
/// content when a provider sends it), cut at [`THINKING_CHARS`]; the encrypted content is
/// opaque.
pub(super) fn reasoning_text(item: &Value) -> String {
    let texts = ["summary", "content"]
        .iter()
        .filter_map(|k| item.get(*k)?.as_array())
        .flatten()
        .filter_map(|p| p.get("text").and_then(non_empty_str));
    let mut out = String::new();
    for t in texts {
        if !out.is_empty() {
            out.push_str("\n\n");
        }
        out.push_str(t);
        if out.len() > THINKING_CHARS * 4 {
            break;
        }
    }
    summary::preview(&out, THINKING_CHARS)
}

/// opencode's task tool answers `task_id: ses_… (for resuming…)`: the child session it ran.
pub(super) fn child_session(text: &str) -> Option<String> {
    let mut rest = text;
    while let Some(i) = rest.find("task_id:") {
        rest = &rest[i + "task_id:".len()..];
        let id = rest.trim_start_matches([' ', '\t']);
        if id.starts_with("ses_") {
            let end = id
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
                .unwrap_or(id.len());
            if end > "ses_".len() {
                return Some(id[..end].to_owned());
            }
        }
    }
    None
}

fn non_empty_str(v: &Value) -> Option<&str> {
    v.as_str().filter(|s| !s.is_empty())
}

/// The value of the first `"key": "value"` in raw (possibly cut) JSON, when the value is a
/// plain string without escapes. For salvaging a few fields of an unreadable body.
pub(crate) fn scan_string_field(body: &[u8], key: &str) -> Option<String> {
    let needle = format!("\"{key}\"");
    let text = String::from_utf8_lossy(body);
    let mut from = 0;
    while let Some(i) = text[from..].find(&needle) {
        let after = &text[from + i + needle.len()..];
        from += i + needle.len();
        let Some(after) = after.trim_start().strip_prefix(':') else {
            continue;
        };
        let Some(value) = after.trim_start().strip_prefix('"') else {
            continue;
        };
        let end = value.find(['"', '\\'])?;
        if value[end..].starts_with('"') && end > 0 {
            return Some(value[..end].to_owned());
        }
        return None;
    }
    None
}
