//! What a test scripts in the mock LLM origin: the [`Call`] it sees (which API, which body),
//! the [`Answer`] it gives (text, optional thinking, optional tool call, usage numbers, model),
//! and ready-made [`Script`]s.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

/// Model names a price table knows.
pub const CLAUDE_MODEL: &str = "claude-sonnet-4-5-20250929";
/// An OpenAI model a price table knows.
pub const OPENAI_MODEL: &str = "gpt-5-mini";
/// A model no price table has: the call must come out as unpriced.
pub const UNKNOWN_MODEL: &str = "mock-frontier-9-preview";

/// Which wire API a call came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    /// Anthropic `POST /v1/messages`.
    AnthropicMessages,
    /// OpenAI Responses: `POST /v1/responses` or `response.create` over the WebSocket.
    OpenAiResponses,
    /// `POST /v1/chat/completions` (OpenAI, OpenRouter and compatible).
    ChatCompletions,
}

/// How a call reached the mock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// An HTTP request (JSON or SSE answer).
    Http,
    /// A message on the Responses WebSocket.
    WebSocket,
}

/// One model call as the script sees it.
#[derive(Debug, Clone)]
pub struct Call {
    /// The API.
    pub api: Api,
    /// The transport.
    pub transport: Transport,
    /// The request body (for the WebSocket: the `response.create` message).
    pub body: Value,
    /// How many calls of this API the mock answered before this one (warm-ups excluded).
    pub index: usize,
}

impl Call {
    /// The requested model (empty when absent).
    pub fn model(&self) -> &str {
        self.body["model"].as_str().unwrap_or("")
    }

    /// Whether the client asked for a stream (always true over the WebSocket).
    pub fn stream(&self) -> bool {
        self.transport == Transport::WebSocket || self.body["stream"].as_bool() == Some(true)
    }

    /// The names of the tools the request offers.
    pub fn tool_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.body["tools"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["name"].as_str().or(t["function"]["name"].as_str()))
            .map(str::to_string)
            .collect();
        // codex may send tools as an `additional_tools` input item.
        for item in self.body["input"].as_array().into_iter().flatten() {
            for t in item["tools"].as_array().into_iter().flatten() {
                if let Some(n) = t["name"].as_str() {
                    names.push(n.to_string());
                }
            }
        }
        names
    }

    /// Whether the request offers a tool called `name`.
    pub fn offers_tool(&self, name: &str) -> bool {
        self.tool_names().iter().any(|n| n == name)
    }

    /// The text of the tool results the request carries back (Anthropic `tool_result` blocks
    /// of the last user message, Responses `function_call_output` items, Chat `tool`
    /// messages); empty when it carries none.
    pub fn tool_results(&self) -> Vec<String> {
        match self.api {
            Api::AnthropicMessages => {
                let Some(last) = self.body["messages"].as_array().and_then(|m| m.last()) else {
                    return Vec::new();
                };
                last["content"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|b| b["type"] == "tool_result")
                    .map(|b| match &b["content"] {
                        Value::String(s) => s.clone(),
                        Value::Array(parts) => parts
                            .iter()
                            .filter_map(|p| p["text"].as_str())
                            .collect::<Vec<_>>()
                            .join("\n"),
                        other => other.to_string(),
                    })
                    .collect()
            }
            Api::OpenAiResponses => self.body["input"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|i| {
                    i["type"]
                        .as_str()
                        .is_some_and(|t| t.ends_with("call_output"))
                })
                .map(|i| match &i["output"] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect(),
            Api::ChatCompletions => {
                let msgs = self.body["messages"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                msgs.iter()
                    .rev()
                    .take_while(|m| m["role"] == "tool")
                    .map(|m| m["content"].as_str().unwrap_or("").to_string())
                    .collect()
            }
        }
    }
}

/// A tool call the mock answers with.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// Tool name (`Bash` for Claude Code, `exec_command` / `shell` for codex).
    pub name: String,
    /// Its input (sent as `input_json_delta` chunks, or as the `arguments` string).
    pub input: Value,
}

/// Token counts the mock reports, in parts that do not overlap: `input` is the uncached
/// input, `cache_read` and `cache_creation` the cached parts, `output` every generated token
/// (`reasoning` included). Each API gets them in its own convention:
///
/// * Anthropic: `input_tokens` = `input`, `cache_creation_input_tokens` = `cache_creation`
///   (all of it `ephemeral_5m`), `cache_read_input_tokens` = `cache_read`, `output_tokens` =
///   `output` (`message_start` carries 1 output token, `message_delta` the total).
/// * Responses: `input_tokens` = `input + cache_read + cache_creation`,
///   `input_tokens_details.cached_tokens` = `cache_read`, `output_tokens` = `output`,
///   `output_tokens_details.reasoning_tokens` = `reasoning`, `total_tokens` the sum.
/// * Chat Completions: the same as Responses under `prompt_tokens`, `completion_tokens`,
///   `prompt_tokens_details`, `completion_tokens_details`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MockUsage {
    /// Uncached input tokens.
    pub input: u64,
    /// Input tokens written to the cache.
    pub cache_creation: u64,
    /// Input tokens read from the cache.
    pub cache_read: u64,
    /// Output tokens, reasoning included.
    pub output: u64,
    /// Reasoning tokens (part of `output`).
    pub reasoning: u64,
}

impl MockUsage {
    /// Input as OpenAI counts it (cached parts included).
    pub fn openai_input(&self) -> u64 {
        self.input + self.cache_read + self.cache_creation
    }
}

/// What the mock answers to one call.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The model named in the answer; `None` echoes the request's.
    pub model: Option<String>,
    /// A thinking block (Anthropic) or reasoning summary (Responses) before the text.
    pub thinking: Option<String>,
    /// The assistant's text (may be empty when a tool call follows).
    pub text: String,
    /// A tool call after the text; the stop reason becomes `tool_use` / `tool_calls`.
    pub tool_call: Option<ToolCall>,
    /// Token counts.
    pub usage: MockUsage,
    /// Pause between streamed events (time to first token, chunked delivery).
    pub chunk_delay: Duration,
}

impl Answer {
    /// A plain text answer with small default usage.
    pub fn text(text: &str) -> Answer {
        Answer {
            model: None,
            thinking: None,
            text: text.to_string(),
            tool_call: None,
            usage: MockUsage {
                input: 12,
                output: 7,
                ..MockUsage::default()
            },
            chunk_delay: Duration::ZERO,
        }
    }

    /// A tool call (with a short lead-in text).
    pub fn tool(name: &str, input: Value) -> Answer {
        Answer {
            tool_call: Some(ToolCall {
                name: name.to_string(),
                input,
            }),
            ..Answer::text("Let me run that.")
        }
    }

    /// With these token counts.
    pub fn with_usage(mut self, usage: MockUsage) -> Answer {
        self.usage = usage;
        self
    }

    /// With a thinking block.
    pub fn with_thinking(mut self, thinking: &str) -> Answer {
        self.thinking = Some(thinking.to_string());
        self
    }

    /// Naming `model` instead of the requested one.
    pub fn with_model(mut self, model: &str) -> Answer {
        self.model = Some(model.to_string());
        self
    }

    /// Pausing `delay` between streamed events.
    pub fn with_chunk_delay(mut self, delay: Duration) -> Answer {
        self.chunk_delay = delay;
        self
    }

    /// The model to name for `call`.
    pub(crate) fn model_for<'a>(&'a self, call: &'a Call) -> &'a str {
        self.model.as_deref().unwrap_or_else(|| call.model())
    }
}

/// Decides the answer to each call.
pub type Script = Arc<dyn Fn(&Call) -> Answer + Send + Sync>;

/// Always the same answer.
pub fn always(answer: Answer) -> Script {
    Arc::new(move |_| answer.clone())
}

/// The agent loop of one tool round: a request that carries a tool result gets `last`; one
/// that offers the tool `tool.name` gets the tool call `tool`; any other (utility calls such
/// as titles and summaries) gets `last` as well. Content decides, not the order of calls, so
/// extra calls an agent makes do not shift the script.
pub fn tool_then_text(tool: Answer, last: Answer) -> Script {
    let name = tool
        .tool_call
        .as_ref()
        .map(|t| t.name.clone())
        .unwrap_or_default();
    Arc::new(move |call| {
        if call.tool_results().is_empty() && call.offers_tool(&name) {
            tool.clone()
        } else {
            last.clone()
        }
    })
}
