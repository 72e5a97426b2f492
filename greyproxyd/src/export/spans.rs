//! Stored records as OpenTelemetry spans (docs/export.md).
//!
//! - An LLM call is a CLIENT span named `{operation} {model}` with the GenAI attributes
//!   (`gen_ai.*`, usage in OTel's semantics: input includes cache reads and writes), the cost
//!   as `gen_ai.usage.cost` (USD, what Langfuse reads) and `greyproxy.*` context.
//! - Each tool call the model asked for is an INTERNAL `execute_tool {name}` span under its
//!   call, at the call's end.
//! - Ids are derived, not random: the trace id from the *root* conversation's id (a subagent's
//!   conversation is followed up to the one the user drives), so a conversation tree is one
//!   trace; a call's span id from the host and call id; a tool call's span id from its
//!   conversation and tool call id, so a subagent's calls name the span of the tool call that
//!   spawned them as their parent without any state kept here. Sending a record twice (the
//!   delivery is at-least-once) sends the same ids, which back ends merge or show once.
//! - A transaction is an HTTP CLIENT span of its own trace (OTel HTTP conventions).

use std::collections::HashMap;

use greyproxy_protocol::Transaction;
use greyproxy_protocol::llm::{ConversationSummary, LlmCall, LlmThread};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, any_value::Value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, span::SpanKind, status::StatusCode,
};

use crate::store::{Store, StoreError};
use crate::time::parse_timestamp_ms;

/// Deepest subagent nesting followed to find a trace's root (and the guard against a cycle).
const MAX_DEPTH: usize = 16;
/// Conversation summaries remembered between batches.
const CACHE: usize = 4096;

fn sha(parts: &[&str]) -> [u8; 32] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for p in parts {
        ctx.update(p.as_bytes());
        ctx.update(&[0]);
    }
    let d = ctx.finish();
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// The trace id of a conversation tree (16 bytes), from its root conversation's id.
pub(crate) fn trace_id(root_conversation: &str) -> Vec<u8> {
    sha(&["greyproxy.trace", root_conversation])[..16].to_vec()
}

/// The span id of a tool call (8 bytes).
pub(crate) fn tool_span_id(conversation: &str, tool_call_id: &str) -> Vec<u8> {
    sha(&["greyproxy.tool", conversation, tool_call_id])[..8].to_vec()
}

fn kv(key: &str, v: Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn s(key: &str, v: impl Into<String>) -> KeyValue {
    kv(key, Value::StringValue(v.into()))
}

fn i(key: &str, v: u64) -> KeyValue {
    kv(key, Value::IntValue(i64::try_from(v).unwrap_or(i64::MAX)))
}

fn f(key: &str, v: f64) -> KeyValue {
    kv(key, Value::DoubleValue(v))
}

fn ms_to_ns(ms: u64) -> u64 {
    ms.saturating_mul(1_000_000)
}

/// This machine's name for `host.name`.
pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// Builds spans, reading conversation summaries (cached) and transaction heads from the store.
#[derive(Debug)]
pub(crate) struct SpanBuilder {
    host: String,
    include_content: bool,
    convs: HashMap<String, Option<ConversationSummary>>,
}

impl SpanBuilder {
    pub(crate) fn new(host: String, include_content: bool) -> SpanBuilder {
        SpanBuilder {
            host,
            include_content,
            convs: HashMap::new(),
        }
    }

    fn summary(
        &mut self,
        store: &Store,
        id: &str,
    ) -> Result<Option<ConversationSummary>, StoreError> {
        if let Some(s) = self.convs.get(id) {
            // A subagent may have been linked after it was first read: re-read unlinked ones.
            if s.as_ref()
                .is_some_and(|s| s.parent_id.is_some() || s.thread != LlmThread::Subagent)
            {
                return Ok(s.clone());
            }
        }
        let s = store.get_conversation_summary(id)?;
        if self.convs.len() >= CACHE {
            self.convs.clear();
        }
        self.convs.insert(id.to_owned(), s.clone());
        Ok(s)
    }

    /// The root of `conv`'s tree and the parent (conversation, tool call) of `conv` itself.
    fn lineage(
        &mut self,
        store: &Store,
        conv: &str,
    ) -> Result<(String, Option<(String, String)>), StoreError> {
        let own = self.summary(store, conv)?;
        let parent = own
            .as_ref()
            .and_then(|s| Some((s.parent_id.clone()?, s.parent_tool_call_id.clone()?)));
        let mut root = conv.to_owned();
        let mut next = own.and_then(|s| s.parent_id);
        let mut seen = vec![root.clone()];
        while let Some(p) = next {
            if seen.len() > MAX_DEPTH || seen.contains(&p) {
                break;
            }
            seen.push(p.clone());
            root = p.clone();
            next = self.summary(store, &p)?.and_then(|s| s.parent_id);
        }
        Ok((root, parent))
    }

    /// The spans of one LLM call: the call and its tool calls.
    pub(crate) fn call_spans(
        &mut self,
        store: &Store,
        c: &LlmCall,
        rule_id: Option<u64>,
    ) -> Result<Vec<Span>, StoreError> {
        let call_span = sha(&["greyproxy.call", &self.host, &c.id.to_string()])[..8].to_vec();
        let (trace, parent) = match &c.conversation_id {
            Some(conv) => {
                let (root, parent) = self.lineage(store, conv)?;
                let parent_span = parent.map(|(p, tool)| tool_span_id(&p, &tool));
                (trace_id(&root), parent_span.unwrap_or_default())
            }
            // A call outside any conversation is a trace of its own.
            None => (
                sha(&["greyproxy.call-trace", &self.host, &c.id.to_string()])[..16].to_vec(),
                Vec::new(),
            ),
        };
        let start_ms = parse_timestamp_ms(&c.timestamp).unwrap_or(0);
        let end_ms = start_ms + c.duration_ms.unwrap_or(0);
        let model = c
            .model_requested
            .clone()
            .or_else(|| c.model_answered.clone())
            .unwrap_or_default();
        let mut a = vec![
            s("gen_ai.operation.name", c.operation.clone()),
            s("gen_ai.provider.name", c.provider.clone()),
            s("server.address", c.host.clone()),
        ];
        if let Some(m) = &c.model_requested {
            a.push(s("gen_ai.request.model", m.clone()));
        }
        if let Some(m) = &c.model_answered {
            a.push(s("gen_ai.response.model", m.clone()));
        }
        if let Some(r) = &c.response_id {
            a.push(s("gen_ai.response.id", r.clone()));
        }
        if let Some(r) = &c.stop_reason {
            a.push(kv(
                "gen_ai.response.finish_reasons",
                Value::ArrayValue(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(Value::StringValue(r.clone())),
                    }],
                }),
            ));
        }
        if let Some(u) = &c.usage {
            a.push(i("gen_ai.usage.input_tokens", u.input_tokens));
            a.push(i("gen_ai.usage.output_tokens", u.output_tokens));
            a.push(i(
                "gen_ai.usage.cache_read.input_tokens",
                u.cache_read_tokens,
            ));
            a.push(i(
                "gen_ai.usage.cache_creation.input_tokens",
                u.cache_write_tokens,
            ));
            a.push(i(
                "gen_ai.usage.reasoning.output_tokens",
                u.reasoning_tokens,
            ));
        }
        if let Some(t) = c.ttft_ms {
            a.push(f("gen_ai.response.time_to_first_chunk", t as f64 / 1000.0));
        }
        if let Some(conv) = &c.conversation_id {
            a.push(s("gen_ai.conversation.id", conv.clone()));
        }
        if let Some(sid) = &c.session_id {
            a.push(s("session.id", sid.clone()));
        }
        if let Some(m) = c.cost.micro_usd {
            a.push(f("gen_ai.usage.cost", m as f64 / 1_000_000.0));
        }
        a.extend([
            s("greyproxy.container", c.container_name.clone()),
            s("greyproxy.client", c.client.as_str()),
            s("greyproxy.thread", c.thread.as_str()),
            s("greyproxy.session.source", c.session_source.as_str()),
            s("greyproxy.decoder", c.decoder.clone()),
            i("greyproxy.call.id", c.id),
            i("greyproxy.transaction.id", c.transaction_id),
            s("greyproxy.price.state", c.cost.state.as_str()),
            s("greyproxy.price.table", c.cost.table_version.clone()),
        ]);
        if let Some(t) = c.turn {
            a.push(i("greyproxy.turn", u64::from(t)));
        }
        if let Some(st) = c.status_code {
            a.push(i("http.response.status_code", u64::from(st)));
        }
        if let Some(r) = rule_id {
            a.push(i("greyproxy.rule.id", r));
        }
        let failed = c.error.is_some() || c.status_code.is_some_and(|s| s >= 400);
        if failed {
            let kind = match c.status_code {
                Some(st) if st >= 400 => st.to_string(),
                _ => "_OTHER".to_owned(),
            };
            a.push(s("error.type", kind));
        }
        if self.include_content {
            a.push(s("gen_ai.output.messages", output_messages(c)));
        }
        let mut out = vec![Span {
            trace_id: trace.clone(),
            span_id: call_span.clone(),
            parent_span_id: parent,
            name: format!("{} {model}", c.operation).trim().to_owned(),
            kind: SpanKind::Client as i32,
            start_time_unix_nano: ms_to_ns(start_ms),
            end_time_unix_nano: ms_to_ns(end_ms),
            attributes: a,
            status: Some(Status {
                message: if failed {
                    c.error.clone().unwrap_or_default()
                } else {
                    String::new()
                },
                code: if failed {
                    StatusCode::Error as i32
                } else {
                    StatusCode::Unset as i32
                },
            }),
            ..Default::default()
        }];
        for t in c.tool_calls.iter().filter(|t| !t.id.is_empty()) {
            let conv = c.conversation_id.as_deref().unwrap_or("");
            let mut a = vec![
                s("gen_ai.operation.name", "execute_tool"),
                s("gen_ai.tool.name", t.name.clone()),
                s("gen_ai.tool.call.id", t.id.clone()),
                s("greyproxy.tool.summary", t.summary.clone()),
            ];
            if let Some(conv) = &c.conversation_id {
                a.push(s("gen_ai.conversation.id", conv.clone()));
            }
            out.push(Span {
                trace_id: trace.clone(),
                span_id: tool_span_id(conv, &t.id),
                parent_span_id: call_span.clone(),
                name: format!("execute_tool {}", t.name),
                kind: SpanKind::Internal as i32,
                start_time_unix_nano: ms_to_ns(end_ms),
                end_time_unix_nano: ms_to_ns(end_ms),
                attributes: a,
                ..Default::default()
            });
        }
        Ok(out)
    }

    /// An HTTP transaction as an HTTP client span of its own trace.
    pub(crate) fn transaction_span(&self, t: &Transaction) -> Span {
        let id = t.id.to_string();
        let start_ms = parse_timestamp_ms(&t.timestamp).unwrap_or(0);
        let end_ms = start_ms + t.duration_ms.unwrap_or(0);
        let mut a = vec![
            s("http.request.method", t.method.clone()),
            s("url.full", t.url.clone()),
            s("server.address", t.destination_host.clone()),
            i("server.port", u64::from(t.destination_port)),
            s("greyproxy.container", t.container_name.clone()),
            i("greyproxy.transaction.id", t.id),
            s("greyproxy.result", t.result.as_str()),
        ];
        if let Some(v) = &t.http_version {
            a.push(s(
                "network.protocol.version",
                v.trim_start_matches("HTTP/").to_owned(),
            ));
        }
        if let Some(st) = t.status_code {
            a.push(i("http.response.status_code", u64::from(st)));
        }
        if let Some(n) = t.request_body_size {
            a.push(i("http.request.body.size", n));
        }
        if let Some(n) = t.response_body_size {
            a.push(i("http.response.body.size", n));
        }
        if let Some(r) = t.rule_id {
            a.push(i("greyproxy.rule.id", r));
        }
        let failed = t.error.is_some() || t.status_code.is_some_and(|s| s >= 400);
        if failed {
            let kind = match t.status_code {
                Some(st) if st >= 400 => st.to_string(),
                _ => "_OTHER".to_owned(),
            };
            a.push(s("error.type", kind));
        }
        Span {
            trace_id: sha(&["greyproxy.tx-trace", &self.host, &id])[..16].to_vec(),
            span_id: sha(&["greyproxy.tx", &self.host, &id])[..8].to_vec(),
            name: t.method.clone(),
            kind: SpanKind::Client as i32,
            start_time_unix_nano: ms_to_ns(start_ms),
            end_time_unix_nano: ms_to_ns(end_ms),
            attributes: a,
            status: Some(Status {
                message: if failed {
                    t.error.clone().unwrap_or_default()
                } else {
                    String::new()
                },
                code: if failed {
                    StatusCode::Error as i32
                } else {
                    StatusCode::Unset as i32
                },
            }),
            ..Default::default()
        }
    }

    /// The request carrying `spans` with this daemon's resource.
    pub(crate) fn request(&self, spans: Vec<Span>) -> ExportTraceServiceRequest {
        let version = env!("CARGO_PKG_VERSION");
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        s("service.name", "greyproxyd"),
                        s("service.version", version),
                        s("host.name", self.host.clone()),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "greyproxyd".into(),
                        version: version.into(),
                        ..Default::default()
                    }),
                    spans,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        }
    }
}

/// `gen_ai.output.messages` from what the store keeps of a call: the last line of its text
/// and its tool calls (arguments cut at 300 characters).
fn output_messages(c: &LlmCall) -> String {
    let mut parts = Vec::new();
    if let Some(t) = &c.last_text {
        parts.push(serde_json::json!({"type": "text", "content": t}));
    }
    for t in &c.tool_calls {
        parts.push(
            serde_json::json!({"type": "tool_call", "id": t.id, "name": t.name,
            "arguments": t.input_preview}),
        );
    }
    serde_json::json!([{"role": "assistant", "parts": parts,
        "finish_reason": c.stop_reason}])
    .to_string()
}

#[cfg(test)]
#[path = "spans_tests.rs"]
mod tests;
