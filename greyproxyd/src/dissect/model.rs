//! The common model every dissector produces: what one LLM request asked and what its response
//! answered, independent of the wire format. The conversation assembler, the call records and
//! the pricing read only this.

use greyproxy_protocol::llm::{LlmClient, LlmThread, ToolCallInfo, Usage};

/// A dissector, as an endpoint rule's `decoder` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Decoder {
    /// Anthropic Messages (`anthropic`).
    Anthropic,
    /// OpenAI Responses over HTTP, JSON or SSE (`openai`).
    OpenAiResponses,
    /// OpenAI Responses over WebSocket (`openai-ws`).
    OpenAiWs,
    /// Chat Completions, OpenAI and compatible hosts (`openai-chat`).
    OpenAiChat,
    /// Google AI generateContent / streamGenerateContent (`google-ai`).
    GoogleAi,
}

impl Decoder {
    /// Every decoder, in the order names are documented.
    pub(crate) const ALL: [Decoder; 5] = [
        Decoder::Anthropic,
        Decoder::OpenAiResponses,
        Decoder::OpenAiWs,
        Decoder::OpenAiChat,
        Decoder::GoogleAi,
    ];

    /// The name rules use.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Decoder::Anthropic => "anthropic",
            Decoder::OpenAiResponses => "openai",
            Decoder::OpenAiWs => "openai-ws",
            Decoder::OpenAiChat => "openai-chat",
            Decoder::GoogleAi => "google-ai",
        }
    }

    /// The decoder a rule names, if it is one we have.
    pub(crate) fn from_name(name: &str) -> Option<Decoder> {
        Decoder::ALL.into_iter().find(|d| d.name() == name)
    }
}

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// System / developer instructions.
    System,
    /// The user (or tool results sent back on the user's side).
    User,
    /// The model.
    Assistant,
}

/// One piece of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Block {
    /// Plain text.
    Text(String),
    /// Visible thinking (cut at 500 characters); opaque/encrypted reasoning is left out.
    Thinking(String),
    /// A tool call (in assistant messages).
    ToolUse(ToolUse),
    /// A tool's result (in user / tool messages).
    ToolResult(ToolResult),
}

/// A tool call with what linking needs besides its wire summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ToolUse {
    /// Id, name, one-line summary and a 300-character preview of the arguments.
    pub(crate) info: ToolCallInfo,
    /// For tools that spawn a subagent (`Agent`, `Task`, `spawn_agent`, `task`…): the prompt
    /// given to it, in full, so the subagent's first user prompt can be matched by content.
    pub(crate) spawn_prompt: Option<String>,
}

/// A tool's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ToolResult {
    /// The tool call it answers.
    pub(crate) tool_use_id: String,
    /// The result text, cut at 500 characters.
    pub(crate) preview: String,
    /// The tool reported an error.
    pub(crate) is_error: bool,
    /// A child session the result names (opencode's `task_id: ses_…`).
    pub(crate) child_session: Option<String>,
}

/// One message of the request's input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message {
    /// Who said it.
    pub(crate) role: Role,
    /// Its pieces in order.
    pub(crate) blocks: Vec<Block>,
}

/// What the request asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestFacts {
    /// `model` of the request (Gemini: from the URL).
    pub(crate) model: Option<String>,
    /// The request asked for a stream.
    pub(crate) stream: bool,
    /// Session id found in the body (`metadata.user_id`, `prompt_cache_key`,
    /// `client_metadata.session_id`…).
    pub(crate) session_id: Option<String>,
    /// Thread id found in the body (codex `client_metadata.thread_id`).
    pub(crate) thread_id: Option<String>,
    /// A hint about the client from the body (codex `client_metadata`).
    pub(crate) client_hint: Option<LlmClient>,
    /// The thread the body says the call belongs to (codex `client_metadata` naming a
    /// subagent); the client's shape heuristics decide when it says nothing.
    pub(crate) thread_hint: Option<LlmThread>,
    /// Total characters of the system prompt / instructions.
    pub(crate) system_len: usize,
    /// The system prompt's first 2 000 characters.
    pub(crate) system_preview: String,
    /// Tool names offered.
    pub(crate) tools: Vec<String>,
    /// The input messages as sent (the whole history for Anthropic, Chat Completions and
    /// Gemini; only the new items of the turn for the Responses API over WebSocket).
    pub(crate) messages: Vec<Message>,
    /// `false` for a codex warm-up (`generate: false`): no reply, not a turn.
    pub(crate) generate: bool,
    /// Responses API `previous_response_id`.
    pub(crate) previous_response_id: Option<String>,
    /// The request body could not be read in full (cut at the capture cap, invalid JSON).
    pub(crate) error: Option<String>,
}

impl Default for RequestFacts {
    /// Nothing read yet; a request generates a reply unless it says otherwise (only codex
    /// warm-ups do).
    fn default() -> Self {
        RequestFacts {
            model: None,
            stream: false,
            session_id: None,
            thread_id: None,
            thread_hint: None,
            client_hint: None,
            system_len: 0,
            system_preview: String::new(),
            tools: Vec::new(),
            messages: Vec::new(),
            generate: true,
            previous_response_id: None,
            error: None,
        }
    }
}

/// What the response answered.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ResponseFacts {
    /// Model the provider says answered.
    pub(crate) model: Option<String>,
    /// Provider's response id.
    pub(crate) id: Option<String>,
    /// Assistant text, concatenated.
    pub(crate) text: String,
    /// Visible thinking, cut at 500 characters.
    pub(crate) thinking: String,
    /// Tool calls in order, with arguments accumulated from deltas.
    pub(crate) tool_calls: Vec<ToolUse>,
    /// Stop / finish reason.
    pub(crate) stop_reason: Option<String>,
    /// Normalised usage (OTel semantics), when the response carried any.
    pub(crate) usage: Option<Usage>,
    /// The provider's usage object as sent (the last one, for cumulative streams).
    pub(crate) usage_raw: Option<serde_json::Value>,
    /// Cost the provider reported (OpenRouter `usage.cost`), USD.
    pub(crate) provider_cost_usd: Option<f64>,
    /// Byte offset (in the decoded response body) just past the first event that carries
    /// content (text, thinking or a tool call); `None` for a JSON body or when none did.
    pub(crate) first_content_end: Option<usize>,
    /// The response was a stream (SSE or WebSocket events).
    pub(crate) streamed: bool,
    /// The response ended properly (final event seen / JSON complete).
    pub(crate) complete: bool,
    /// What went wrong: provider error event, invalid JSON, truncated body, cut stream.
    pub(crate) error: Option<String>,
}

/// One dissected call.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Dissected {
    /// The decoder that read it.
    pub(crate) decoder: Decoder,
    /// OTel `gen_ai.provider.name`: `anthropic`, `openai`, `openrouter`, `gcp.gemini`.
    pub(crate) provider: String,
    /// OTel `gen_ai.operation.name`: `chat` or `generate_content`.
    pub(crate) operation: &'static str,
    /// The request side.
    pub(crate) request: RequestFacts,
    /// The response side.
    pub(crate) response: ResponseFacts,
}
