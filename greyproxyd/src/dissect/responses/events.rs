//! The response side of the Responses API: one accumulator fed with response events, whether
//! they came as SSE events over HTTP or as WebSocket messages, or as the final response
//! object of a JSON body.
//!
//! Stop reason (the API has none of its own): the final `response.status`, except that a
//! `completed` response whose output ends with tool calls reads `tool_calls` (what Chat
//! Completions says, and what the conversation status needs: results are owed), and an
//! `incomplete` one reads its `incomplete_details.reason` (`max_output_tokens`,
//! `content_filter`).
//!
//! `complete` is set by a final response event (`response.completed`, `response.incomplete`,
//! `response.failed`); an `error` event ends the response too but leaves it incomplete.
//!
//! Memory is bounded whatever the peer sends: text ≤ [`MAX_TEXT`], thinking ≤ 500 characters,
//! each call's arguments ≤ [`MAX_ARGS`], all arguments together ≤ [`MAX_ARGS_TOTAL`], at most
//! [`MAX_CALLS`] calls. A WebSocket response that never completes keeps no more than that.

use greyproxy_protocol::llm::Usage;
use serde_json::Value;

use super::super::model::{ResponseFacts, ToolUse};
use super::super::summary;
use super::request::{THINKING_CHARS, reasoning_text};

/// Bytes of assistant text kept (far above any model's output limit).
pub(crate) const MAX_TEXT: usize = 4 * 1024 * 1024;
/// Bytes of one tool call's arguments kept.
pub(crate) const MAX_ARGS: usize = 1024 * 1024;
/// Bytes of arguments kept over all calls of one response.
pub(crate) const MAX_ARGS_TOTAL: usize = 8 * 1024 * 1024;
/// Tool calls kept per response.
pub(crate) const MAX_CALLS: usize = 1024;

/// What one event did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Step {
    /// It carried content: text, thinking or a tool call.
    pub(crate) content: bool,
    /// It ended the response (a final response event or an `error` event).
    pub(crate) terminal: bool,
}

/// The kind of the latest output item, for the stop reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Last {
    Text,
    Call,
}

/// A tool call being read.
#[derive(Debug, Default)]
struct Call {
    /// The output item's id (`fc_…`), which argument deltas name.
    item_id: Option<String>,
    /// Its position in the output.
    output_index: Option<u64>,
    /// The id the result will answer (`call_…`).
    call_id: String,
    name: String,
    /// Arguments (function calls) or input (custom tools) as text.
    args: String,
    /// A `local_shell_call`'s action: arguments as an object, not text.
    action: Option<Value>,
}

/// Accumulates one response's events.
#[derive(Debug, Default)]
pub(crate) struct Accumulator {
    model: Option<String>,
    id: Option<String>,
    text: String,
    saw_text: bool,
    thinking: String,
    thinking_chars: usize,
    /// The reasoning part the last thinking delta belonged to (item, summary index).
    thinking_part: Option<(String, u64)>,
    calls: Vec<Call>,
    args_total: usize,
    last: Option<Last>,
    stop_reason: Option<String>,
    usage: Option<Usage>,
    usage_raw: Option<Value>,
    error: Option<String>,
    finished: bool,
    complete: bool,
}

impl Accumulator {
    /// A fresh accumulator.
    pub(crate) fn new() -> Accumulator {
        Accumulator::default()
    }

    /// A final response event, an `error` event or the end of the input was seen.
    pub(crate) fn finished(&self) -> bool {
        self.finished
    }

    /// Feeds one event (an SSE event's data or a WebSocket message, parsed). `fallback_type`
    /// is the SSE event name, used when the data has no `type`. Events after the end are
    /// ignored.
    pub(crate) fn on_event(&mut self, ev: &Value, fallback_type: &str) -> Step {
        if self.finished {
            return Step::default();
        }
        let kind = ev
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or(fallback_type);
        let str_of = |k: &str| ev.get(k).and_then(Value::as_str).unwrap_or("");
        let mut step = Step::default();
        match kind {
            "response.created" | "response.in_progress" | "response.queued" => {
                if let Some(r) = ev.get("response") {
                    self.head(r);
                }
            }
            "response.output_text.delta" | "response.refusal.delta" => {
                let delta = str_of("delta");
                if !delta.is_empty() {
                    self.saw_text = true;
                    self.last = Some(Last::Text);
                    push_capped(&mut self.text, delta, MAX_TEXT);
                    step.content = true;
                }
            }
            "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => {
                let delta = str_of("delta");
                if !delta.is_empty() {
                    let part = (
                        str_of("item_id").to_owned(),
                        ev.get("summary_index")
                            .or_else(|| ev.get("content_index"))
                            .and_then(Value::as_u64)
                            .unwrap_or(0),
                    );
                    if self.thinking_part.as_ref().is_some_and(|p| *p != part) {
                        self.push_thinking("\n\n");
                    }
                    self.thinking_part = Some(part);
                    self.push_thinking(delta);
                    step.content = true;
                }
            }
            "response.output_item.added" | "response.output_item.done" => {
                if let Some(item) = ev.get("item") {
                    let index = ev.get("output_index").and_then(Value::as_u64);
                    step.content = self.item(item, index);
                    if item.get("type").and_then(Value::as_str) == Some("message") {
                        self.last = Some(Last::Text);
                    }
                }
            }
            "response.function_call_arguments.delta" | "response.custom_tool_call_input.delta" => {
                let delta = str_of("delta");
                if !delta.is_empty()
                    && let Some(i) = self.call_for(ev)
                {
                    self.append_args(i, delta);
                    step.content = true;
                }
            }
            "response.function_call_arguments.done" | "response.custom_tool_call_input.done" => {
                let full = ev.get("arguments").or_else(|| ev.get("input"));
                if let (Some(full), Some(i)) = (full.and_then(Value::as_str), self.call_for(ev)) {
                    self.set_args(i, full);
                }
            }
            "response.completed" | "response.incomplete" | "response.failed" => {
                let status = kind.trim_start_matches("response.");
                match ev.get("response") {
                    Some(r) => self.final_response(r, status),
                    None => self.stop_reason = Some(status.to_owned()),
                }
                if kind == "response.failed" && self.error.is_none() {
                    self.error = Some("response failed".to_owned());
                }
                // The event ends the response whatever status its object claims.
                self.finished = true;
                self.complete = true;
                step.terminal = true;
            }
            "error" => {
                let nested = ev.get("error").filter(|e| e.is_object());
                self.error = Some(error_text(nested.unwrap_or(ev)));
                self.finished = true;
                step.terminal = true;
            }
            _ => {}
        }
        step
    }

    /// Reads a whole response object (a JSON body, or the one a final event carries);
    /// `default_status` stands in for a missing `status` (the final event's own kind).
    pub(crate) fn final_response(&mut self, r: &Value, default_status: &str) {
        self.head(r);
        let status = r
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or(default_status);
        if let Some(output) = r.get("output").and_then(Value::as_array) {
            self.final_output(output);
        }
        if let Some(u) = r.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(normalise_usage(u));
            self.usage_raw = Some(u.clone());
        }
        if let Some(e) = r.get("error").filter(|e| !e.is_null()) {
            self.error = Some(error_text(e));
        }
        self.stop_reason = match status {
            "completed" if self.last == Some(Last::Call) => Some("tool_calls".to_owned()),
            "incomplete" => Some(
                r.get("incomplete_details")
                    .and_then(|d| d.get("reason"))
                    .and_then(Value::as_str)
                    .unwrap_or("incomplete")
                    .to_owned(),
            ),
            "" => None,
            s => Some(s.to_owned()),
        };
        // A background response polled while running is not over.
        let over = !matches!(status, "in_progress" | "queued");
        self.finished = over;
        self.complete = over;
        if status == "failed" && self.error.is_none() {
            self.error = Some("response failed".to_owned());
        }
    }

    /// The facts read so far. `streamed` and `first_content_end` are the caller's.
    pub(crate) fn finish(self) -> ResponseFacts {
        let tool_calls: Vec<ToolUse> = self
            .calls
            .iter()
            .map(|c| {
                let name = if c.name.is_empty() {
                    "unknown"
                } else {
                    &c.name
                };
                match &c.action {
                    Some(action) => summary::tool_use(&c.call_id, name, action),
                    None => summary::tool_use_raw(&c.call_id, name, &c.args),
                }
            })
            .collect();
        ResponseFacts {
            model: self.model,
            id: self.id,
            text: self.text,
            thinking: self.thinking,
            tool_calls,
            stop_reason: self.stop_reason,
            usage: self.usage,
            usage_raw: self.usage_raw,
            complete: self.complete,
            error: self.error,
            ..ResponseFacts::default()
        }
    }

    /// `id` and `model` of a response object.
    fn head(&mut self, r: &Value) {
        let s = |k: &str| r.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
        if let Some(id) = s("id") {
            self.id = Some(id.to_owned());
        }
        if let Some(model) = s("model") {
            self.model = Some(model.to_owned());
        }
    }

    /// An output item announced or finished. Tool calls are opened (or completed: `.done`
    /// carries the whole arguments); true when the item is a tool call.
    fn item(&mut self, item: &Value, index: Option<u64>) -> bool {
        let kind = item.get("type").and_then(Value::as_str).unwrap_or("");
        if !matches!(
            kind,
            "function_call" | "custom_tool_call" | "local_shell_call"
        ) {
            return false;
        }
        let s = |k: &str| item.get(k).and_then(Value::as_str).unwrap_or("");
        let item_id = item
            .get("id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        let call_id = s("call_id");
        let found = self.find(item_id, index, call_id);
        let Some(i) = found.or_else(|| self.open_call(item_id, index)) else {
            return true;
        };
        self.last = Some(Last::Call);
        let call = &mut self.calls[i];
        if item_id.is_some() && call.item_id.is_none() {
            call.item_id = item_id.map(str::to_owned);
        }
        if !call_id.is_empty() {
            call.call_id = call_id.to_owned();
        } else if call.call_id.is_empty() {
            call.call_id = item_id.unwrap_or("").to_owned();
        }
        match kind {
            "local_shell_call" => {
                call.name = "local_shell".to_owned();
                call.action = item.get("action").cloned();
            }
            _ => {
                let name = s("name");
                if !name.is_empty() {
                    call.name = name.to_owned();
                }
                let args = if kind == "custom_tool_call" {
                    s("input")
                } else {
                    s("arguments")
                };
                if !args.is_empty() {
                    self.set_args(i, args);
                }
            }
        }
        true
    }

    /// The call an argument event names by `item_id` (else by `output_index`), opened if new.
    fn call_for(&mut self, ev: &Value) -> Option<usize> {
        let item_id = ev
            .get("item_id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        let index = ev.get("output_index").and_then(Value::as_u64);
        self.find(item_id, index, "")
            .or_else(|| self.open_call(item_id, index))
    }

    /// The known call an event names: by item id; else by position (when one side has no
    /// item id); else by call id. Never by order of appearance, so parallel calls stay apart.
    fn find(&self, item_id: Option<&str>, index: Option<u64>, call_id: &str) -> Option<usize> {
        let by_id = || {
            let id = item_id?;
            self.calls
                .iter()
                .position(|c| c.item_id.as_deref() == Some(id))
        };
        let by_index = || {
            index?;
            self.calls
                .iter()
                .position(|c| c.output_index == index && (c.item_id.is_none() || item_id.is_none()))
        };
        let by_call_id = || {
            (!call_id.is_empty())
                .then(|| self.calls.iter().position(|c| c.call_id == call_id))
                .flatten()
        };
        by_id().or_else(by_index).or_else(by_call_id)
    }

    fn open_call(&mut self, item_id: Option<&str>, index: Option<u64>) -> Option<usize> {
        if self.calls.len() >= MAX_CALLS {
            return None;
        }
        self.calls.push(Call {
            item_id: item_id.map(str::to_owned),
            output_index: index,
            ..Call::default()
        });
        self.last = Some(Last::Call);
        Some(self.calls.len() - 1)
    }

    fn append_args(&mut self, i: usize, delta: &str) {
        let room = MAX_ARGS_TOTAL.saturating_sub(self.args_total);
        let Some(call) = self.calls.get_mut(i) else {
            return;
        };
        let before = call.args.len();
        push_capped(&mut call.args, delta, MAX_ARGS.min(before + room));
        self.args_total += call.args.len() - before;
    }

    fn set_args(&mut self, i: usize, full: &str) {
        let Some(call) = self.calls.get_mut(i) else {
            return;
        };
        self.args_total -= call.args.len();
        call.args.clear();
        self.append_args(i, full);
    }

    /// The output of a final response: tool calls are merged with those streamed (the final
    /// arguments win); text and reasoning are taken only when no delta carried them.
    fn final_output(&mut self, output: &[Value]) {
        let take_text = !self.saw_text;
        let take_thinking = self.thinking.is_empty();
        let mut last = None;
        for (i, item) in output.iter().enumerate() {
            match item.get("type").and_then(Value::as_str).unwrap_or("") {
                "message" => {
                    last = Some(Last::Text);
                    if take_text {
                        let parts = item.get("content").and_then(Value::as_array);
                        for p in parts.into_iter().flatten() {
                            let t = p.get("text").or_else(|| p.get("refusal"));
                            if let Some(t) = t.and_then(Value::as_str) {
                                push_capped(&mut self.text, t, MAX_TEXT);
                            }
                        }
                    }
                }
                "function_call" | "custom_tool_call" | "local_shell_call" => {
                    last = Some(Last::Call);
                    self.item(item, u64::try_from(i).ok());
                }
                "reasoning" if take_thinking => {
                    let t = reasoning_text(item);
                    if !t.is_empty() {
                        if !self.thinking.is_empty() {
                            self.push_thinking("\n\n");
                        }
                        self.push_thinking(&t);
                    }
                }
                _ => {}
            }
        }
        if last.is_some() {
            self.last = last;
        }
    }

    /// Bytes of arguments kept per call.
    #[cfg(test)]
    pub(crate) fn args_lens(&self) -> Vec<usize> {
        self.calls.iter().map(|c| c.args.len()).collect()
    }

    fn push_thinking(&mut self, s: &str) {
        for c in s.chars() {
            if self.thinking_chars >= THINKING_CHARS {
                return;
            }
            self.thinking.push(c);
            self.thinking_chars += 1;
        }
    }
}

/// OTel usage from a Responses `usage`: cached ⊂ input, reasoning ⊂ output, no cache writes.
pub(crate) fn normalise_usage(u: &Value) -> Usage {
    let n = |path: &[&str]| {
        path.iter()
            .try_fold(u, |v, k| v.get(*k))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    Usage {
        input_tokens: n(&["input_tokens"]),
        cache_read_tokens: n(&["input_tokens_details", "cached_tokens"]),
        output_tokens: n(&["output_tokens"]),
        reasoning_tokens: n(&["output_tokens_details", "reasoning_tokens"]),
        ..Usage::default()
    }
}

/// `code: message` of an error object (`{"code","message"}`, `{"type","message"}`), or the
/// JSON itself when it has neither.
pub(crate) fn error_text(e: &Value) -> String {
    let s = |k: &str| e.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    let text = match (s("code").or_else(|| s("type")), s("message")) {
        (Some(code), Some(msg)) if code != "error" => format!("{code}: {msg}"),
        (_, Some(msg)) => msg.to_owned(),
        (Some(code), None) => code.to_owned(),
        (None, None) => e.to_string(),
    };
    summary::preview(&text, 1000)
}

/// Appends `s` to `out` without growing `out` past `cap` bytes (cut on a char boundary).
fn push_capped(out: &mut String, s: &str, cap: usize) {
    let room = cap.saturating_sub(out.len());
    if s.len() <= room {
        out.push_str(s);
        return;
    }
    let mut end = room;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out.push_str(&s[..end]);
}
