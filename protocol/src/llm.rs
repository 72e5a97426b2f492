//! Wire types of the LLM layer (docs/llm.md): one [`LlmCall`] per LLM API call the daemon
//! recognised, [`Conversation`]s assembled from them, usage summaries, endpoint rules and the
//! [`LlmContext`] a pending request carries ("why was this connection asked for").
//!
//! Token counts follow the OpenTelemetry GenAI conventions: `input_tokens` *includes* cache
//! reads and cache writes, `output_tokens` *includes* reasoning. Costs are integer micro-USD.

use serde::{Deserialize, Serialize};

use crate::names::wire_names;

wire_names! {
    /// The agent program that made a call, recognised from headers and body.
    pub enum LlmClient ("llm client") {
        /// Anthropic's Claude Code.
        ClaudeCode = "claude-code",
        /// OpenAI's codex CLI.
        Codex = "codex",
        /// opencode.
        Opencode = "opencode",
        /// aider.
        Aider = "aider",
        /// Google's gemini-cli.
        GeminiCli = "gemini-cli",
        /// Anything else.
        Other = "other",
    }
}

wire_names! {
    /// Which thread of an agent a call belongs to.
    pub enum LlmThread ("llm thread") {
        /// The conversation the user drives.
        Main = "main",
        /// A subagent spawned by a tool call of another thread.
        Subagent = "subagent",
        /// Side calls: titles, summaries, classifiers, warm-ups.
        Utility = "utility",
    }
}

wire_names! {
    /// How a call's session was found.
    pub enum SessionSource ("session source") {
        /// Read from the wire (a session id in headers or body).
        Wire = "wire",
        /// Inferred: container, provider, model and a time gap.
        Inferred = "inferred",
    }
}

wire_names! {
    /// Whether a call has a cost.
    pub enum PriceState ("price state") {
        /// Priced from the table (`cost_micro_usd` is set).
        Priced = "priced",
        /// The table has no price for the model answered (or requested): no cost, never 0.
        Unpriced = "unpriced",
        /// The call carried no usage to price (an error, a cut stream).
        NoUsage = "no_usage",
    }
}

wire_names! {
    /// How a conversation stands.
    pub enum ConversationStatus ("conversation status") {
        /// The latest call has not finished, or ended with tool calls whose results are not
        /// back yet.
        InProgress = "in_progress",
        /// The latest call ended with an answer.
        Answered = "answered",
        /// The latest call failed or was cut.
        Incomplete = "incomplete",
    }
}

/// Token usage normalised to OTel GenAI semantics. Every field is a count of tokens; a field
/// the provider did not send is 0 (the raw object is kept beside it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// All input tokens, *including* cache reads and cache writes.
    pub input_tokens: u64,
    /// Input tokens read from the provider's cache (⊂ `input_tokens`).
    pub cache_read_tokens: u64,
    /// Input tokens written to the provider's cache (⊂ `input_tokens`).
    pub cache_write_tokens: u64,
    /// Of the cache writes, those with a 5-minute TTL, when the provider splits them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_5m_tokens: Option<u64>,
    /// Of the cache writes, those with a 1-hour TTL, when the provider splits them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_1h_tokens: Option<u64>,
    /// All output tokens, *including* reasoning.
    pub output_tokens: u64,
    /// Reasoning (thinking) tokens (⊂ `output_tokens`).
    pub reasoning_tokens: u64,
}

impl Usage {
    /// Adds another call's usage (totals); the TTL split is added where either side has it.
    pub fn add(&mut self, o: &Usage) {
        self.input_tokens += o.input_tokens;
        self.cache_read_tokens += o.cache_read_tokens;
        self.cache_write_tokens += o.cache_write_tokens;
        self.output_tokens += o.output_tokens;
        self.reasoning_tokens += o.reasoning_tokens;
        self.cache_write_5m_tokens = add_opt(self.cache_write_5m_tokens, o.cache_write_5m_tokens);
        self.cache_write_1h_tokens = add_opt(self.cache_write_1h_tokens, o.cache_write_1h_tokens);
    }
}

fn add_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
    }
}

/// A call's cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cost {
    /// Priced, unpriced or no usage.
    pub state: PriceState,
    /// Our cost in micro-USD (only when `priced`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub micro_usd: Option<u64>,
    /// The price-table entry used (model key as the table spells it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_model: Option<String>,
    /// Version of the price table (vendored snapshot plus configured overrides).
    pub table_version: String,
    /// The cost the provider reported itself (OpenRouter's `usage.cost`), micro-USD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_micro_usd: Option<u64>,
}

/// One tool call the model asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCallInfo {
    /// Provider's id for the call (`toolu_…`, `call_…`), empty when none was sent.
    pub id: String,
    /// Tool name as the model spelled it.
    pub name: String,
    /// One line: `src/main.rs`, `npm install left-pad`, `pattern: foo in src`…
    pub summary: String,
    /// The arguments (JSON text), cut at 300 characters.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub input_preview: String,
}

/// One LLM API call (`llm_calls`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LlmCall {
    /// Monotonic call id.
    pub id: u64,
    /// The HTTP transaction, or the WebSocket message row carrying the request.
    pub transaction_id: u64,
    /// WebSocket calls: the message rows of the response (in order).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_transaction_ids: Vec<u64>,
    /// WebSocket calls: the upgrade transaction of the connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade_id: Option<u64>,
    /// When the request started, RFC 3339 UTC with milliseconds.
    pub timestamp: String,
    /// Client identity (container).
    pub container_name: String,
    /// Agent program.
    pub client: LlmClient,
    /// OTel `gen_ai.provider.name`: `anthropic`, `openai`, `openrouter`, `gcp.gemini`…
    pub provider: String,
    /// OTel `gen_ai.operation.name`: `chat` or `generate_content`.
    pub operation: String,
    /// The decoder that read it (`anthropic`, `openai`, `openai-ws`, `openai-chat`, `google-ai`).
    pub decoder: String,
    /// Origin host.
    pub host: String,
    /// Model in the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_requested: Option<String>,
    /// Model in the response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_answered: Option<String>,
    /// Provider's response id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_id: Option<String>,
    /// Session key (from the wire, or inferred).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Whether the session came from the wire.
    pub session_source: SessionSource,
    /// Thread kind.
    pub thread: LlmThread,
    /// Conversation the call belongs to, once assembled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    /// Turn of that conversation (from 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn: Option<u32>,
    /// The response was streamed (SSE or WebSocket events).
    pub stream: bool,
    /// Provider's stop / finish reason (`end_turn`, `tool_use`, `stop`, `tool_calls`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
    /// HTTP status of the response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    /// Request start to the last byte of the response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Request start to the first response chunk carrying content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<u64>,
    /// Tool calls the model asked for, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCallInfo>,
    /// Last line of the assistant's text (≤ 200 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_text: Option<String>,
    /// What could not be read (parse error, truncated body, cut stream, provider error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Normalised usage; `None` when the call carried none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// The provider's usage object as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_raw: Option<serde_json::Value>,
    /// Cost of the call.
    pub cost: Cost,
}

/// Totals over a set of calls.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LlmTotals {
    /// Number of calls.
    pub calls: u64,
    /// Summed usage.
    pub usage: Usage,
    /// Summed cost of the priced calls, micro-USD.
    pub cost_micro_usd: u64,
    /// Calls without a price (their tokens are in `usage`, their cost is not in the sum).
    pub unpriced_calls: u64,
    /// Summed call durations.
    pub duration_ms: u64,
}

/// A conversation as lists show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationSummary {
    /// Stable id (`<client>:<session>[/<thread>]`).
    pub id: String,
    /// Session key.
    pub session_id: String,
    /// Whether the session came from the wire.
    pub session_source: SessionSource,
    /// Thread kind.
    pub thread: LlmThread,
    /// Conversation of the tool call that spawned this one (subagents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    /// The spawning tool call's id in the parent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_tool_call_id: Option<String>,
    /// Client identity (container).
    pub container_name: String,
    /// Agent program.
    pub client: LlmClient,
    /// Provider name.
    pub provider: String,
    /// Models answered, most recent first.
    pub models: Vec<String>,
    /// In progress, answered or incomplete.
    pub status: ConversationStatus,
    /// First call, RFC 3339.
    pub started_at: String,
    /// Latest call, RFC 3339.
    pub last_activity: String,
    /// Turns (real user prompts). `turn_count` on the wire (greyproxy's name), so that it does
    /// not collide with [`Conversation::turns`], the list, which flattens this summary.
    #[serde(rename = "turn_count")]
    pub turns: u32,
    /// The first user prompt, cut at 200 characters.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub title: String,
    /// Totals over the conversation's calls.
    pub totals: LlmTotals,
    /// Input tokens of the latest call (how full the context is).
    pub context_tokens: u64,
    /// The model's context window, when the price table knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_window: Option<u64>,
}

/// One step of a turn: what the assistant said and did in one call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// The call that produced it.
    pub call_id: u64,
    /// Assistant text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text: String,
    /// Thinking, cut at 500 characters.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub thinking_preview: String,
    /// Tool calls with their results.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<StepToolCall>,
}

/// A tool call inside a step, with its result once the next request carried it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepToolCall {
    /// The call.
    #[serde(flatten)]
    pub call: ToolCallInfo,
    /// The result, cut at 500 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_preview: Option<String>,
    /// The tool reported an error.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_error: bool,
    /// The subagent conversation this call spawned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linked_conversation_id: Option<String>,
}

/// One turn: a real user prompt and what followed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Turn {
    /// From 1.
    pub number: u32,
    /// The user's prompt (client scaffolding stripped).
    pub user_prompt: String,
    /// Steps in order.
    pub steps: Vec<Step>,
    /// Calls of this turn.
    pub call_ids: Vec<u64>,
    /// First call of the turn, RFC 3339.
    pub started_at: String,
    /// Latest call of the turn, RFC 3339.
    pub ended_at: String,
}

/// A conversation with its turns (`get_conversation`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    /// The summary.
    #[serde(flatten)]
    pub summary: ConversationSummary,
    /// System prompt of the latest call, cut at 2 000 characters.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub system_prompt_preview: String,
    /// Turns in order.
    pub turns: Vec<Turn>,
    /// Subagent conversations spawned from this one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subagents: Vec<String>,
}

/// Why a held connection was asked for: the tool call the same container's latest LLM call
/// ended with, shortly before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LlmContext {
    /// Conversation of the call.
    pub conversation_id: String,
    /// Turn of the conversation.
    pub turn: u32,
    /// The call.
    pub call_id: u64,
    /// Tool name.
    pub tool: String,
    /// One-line summary of its arguments.
    pub summary: String,
    /// The model's last line of text before the tool call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_text: Option<String>,
    /// Seconds between the call's end and the held request.
    pub age_secs: u64,
}

/// One row of `usage_summary`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageRow {
    /// The group's key (container name, client, model, `YYYY-MM-DD` or conversation id).
    pub key: String,
    /// Totals.
    #[serde(flatten)]
    pub totals: LlmTotals,
    /// Cache reads ÷ input tokens (0 when there was no input).
    pub cache_hit_ratio: f64,
    /// Median time to first token over the calls that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_p50_ms: Option<u64>,
}

/// An endpoint rule as `/ws` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRule {
    /// Id (built-ins have ids below 100 and cannot be changed).
    pub id: u64,
    /// Host glob (only `*` is special).
    pub host: String,
    /// Path glob (only `*` is special).
    pub path: String,
    /// HTTP method, `WS_REQ`, `WS_RESP` or `*`.
    pub method: String,
    /// Decoder name.
    pub decoder: String,
    /// Higher first.
    pub priority: i32,
    /// Disabled rules never match.
    pub enabled: bool,
    /// `builtin`, `config` or `user`.
    pub source: String,
}

/// An unknown host that received what looks like a chat API call: a rule the operator may
/// create, never created by itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointProposal {
    /// Host as seen.
    pub host: String,
    /// Path as seen.
    pub path: String,
    /// Decoder that would read it.
    pub decoder: String,
    /// Calls seen so far.
    pub seen: u64,
    /// First sighting, RFC 3339.
    pub first_seen: String,
    /// A transaction that looked like a call.
    pub example_transaction_id: u64,
}
