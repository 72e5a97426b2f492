//! What the assembler's tests share: an assembler over a real redb file in a temp dir, and
//! builders for calls shaped like the captured ones (`greyproxyd/tests/fixtures/llm`), made by
//! hand as dissectors would produce them.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;

use greyproxy_protocol::llm::{
    Cost, LlmClient, LlmThread, PriceState, SessionSource, ToolCallInfo, Usage,
};

use super::*;
use crate::dissect::model::{
    Block, Decoder, Dissected, Message, RequestFacts, ResponseFacts, Role, ToolResult, ToolUse,
};

/// An assembler over a store in a temp dir.
pub(super) struct Harness {
    pub(super) _dir: tempfile::TempDir,
    pub(super) path: PathBuf,
    pub(super) store: Arc<Store>,
    pub(super) asm: Assembler,
    pub(super) next_call: u64,
}

impl Harness {
    pub(super) fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("greyproxy.redb");
        let store = Arc::new(Store::open(&path).unwrap());
        let asm = Assembler::new(store.clone());
        Harness {
            _dir: dir,
            path,
            store,
            asm,
            next_call: 1,
        }
    }

    /// Closes the store and the assembler and opens new ones on the same file (redb refuses a
    /// second open while a handle is alive).
    pub(super) fn restart(self) -> Harness {
        let Harness {
            _dir,
            path,
            store,
            asm,
            next_call,
        } = self;
        drop(asm);
        drop(store);
        let store = Arc::new(Store::open(&path).unwrap());
        Harness {
            _dir,
            path,
            asm: Assembler::new(store.clone()),
            store,
            next_call,
        }
    }

    /// Runs one call; its id is the next in sequence.
    pub(super) fn call(&mut self, s: &Spec, d: &Dissected) -> Assembled {
        let id = self.next_call;
        self.next_call += 1;
        let input = CallInput {
            call_id: id,
            transaction_id: id,
            timestamp_ms: s.ts,
            container: &s.container,
            client: s.client,
            thread: s.thread,
            session_id: s.session.as_deref(),
            session_source: if s.session.is_some() {
                SessionSource::Wire
            } else {
                SessionSource::Inferred
            },
            provider: &s.provider,
            model: s.model.as_deref(),
            usage: s.usage,
            cost: &s.cost,
            duration_ms: Some(1_000),
            context_window: Some(200_000),
            error: s.error.as_deref(),
            dissected: d,
        };
        self.asm.on_call(&input).unwrap()
    }

    pub(super) fn get(&self, id: &str) -> greyproxy_protocol::llm::Conversation {
        self.store.get_conversation(id).unwrap().unwrap()
    }
}

/// Who made a call.
#[derive(Debug, Clone)]
pub(super) struct Spec {
    pub(super) client: LlmClient,
    pub(super) thread: LlmThread,
    pub(super) session: Option<String>,
    pub(super) container: String,
    pub(super) provider: String,
    pub(super) model: Option<String>,
    pub(super) ts: u64,
    pub(super) usage: Option<Usage>,
    pub(super) cost: Cost,
    pub(super) error: Option<String>,
}

/// 2026-03-13T10:00:00Z.
pub(super) const T0: u64 = 1_773_396_000_000;

impl Spec {
    pub(super) fn new(client: LlmClient, session: Option<&str>, provider: &str) -> Spec {
        Spec {
            client,
            thread: LlmThread::Main,
            session: session.map(str::to_string),
            container: client.as_str().into(),
            provider: provider.into(),
            model: Some("claude-opus-4-6".into()),
            ts: T0,
            usage: Some(usage(1_000, 50)),
            cost: priced(100),
            error: None,
        }
    }

    pub(super) fn claude(session: &str) -> Spec {
        Spec::new(LlmClient::ClaudeCode, Some(session), "anthropic")
    }

    pub(super) fn at(&self, secs: u64) -> Spec {
        Spec {
            ts: T0 + secs * 1_000,
            ..self.clone()
        }
    }

    pub(super) fn thread(&self, thread: LlmThread) -> Spec {
        Spec {
            thread,
            ..self.clone()
        }
    }
}

pub(super) fn usage(input: u64, output: u64) -> Usage {
    Usage {
        input_tokens: input,
        output_tokens: output,
        ..Default::default()
    }
}

pub(super) fn priced(micro_usd: u64) -> Cost {
    Cost {
        state: PriceState::Priced,
        micro_usd: Some(micro_usd),
        price_model: None,
        table_version: "test".into(),
        provider_micro_usd: None,
    }
}

pub(super) fn user(texts: &[&str]) -> Message {
    Message {
        role: Role::User,
        blocks: texts.iter().map(|t| Block::Text((*t).into())).collect(),
    }
}

pub(super) fn results(rs: &[(&str, &str, bool)]) -> Message {
    Message {
        role: Role::User,
        blocks: rs
            .iter()
            .map(|(id, text, err)| {
                Block::ToolResult(ToolResult {
                    tool_use_id: (*id).into(),
                    preview: (*text).into(),
                    is_error: *err,
                    child_session: None,
                })
            })
            .collect(),
    }
}

pub(super) fn tool(id: &str, name: &str, summary: &str, spawn: Option<&str>) -> ToolUse {
    ToolUse {
        info: ToolCallInfo {
            id: id.into(),
            name: name.into(),
            summary: summary.into(),
            input_preview: format!("{{\"q\":\"{summary}\"}}"),
        },
        spawn_prompt: spawn.map(str::to_string),
    }
}

/// The assistant message a later request echoes for `r`.
pub(super) fn echo(r: &ResponseFacts) -> Message {
    let mut blocks = Vec::new();
    if !r.text.is_empty() {
        blocks.push(Block::Text(r.text.clone()));
    }
    blocks.extend(r.tool_calls.iter().cloned().map(Block::ToolUse));
    Message {
        role: Role::Assistant,
        blocks,
    }
}

pub(super) fn answer(text: &str, tools: Vec<ToolUse>) -> ResponseFacts {
    ResponseFacts {
        text: text.into(),
        tool_calls: tools,
        stop_reason: Some("end_turn".into()),
        streamed: true,
        complete: true,
        ..Default::default()
    }
}

pub(super) fn call(decoder: Decoder, messages: Vec<Message>, response: ResponseFacts) -> Dissected {
    Dissected {
        decoder,
        provider: "anthropic".into(),
        operation: "chat",
        request: RequestFacts {
            model: Some("claude-opus-4-6".into()),
            stream: true,
            messages,
            generate: true,
            system_preview: "You are Claude Code".into(),
            system_len: 19,
            ..Default::default()
        },
        response,
    }
}

/// Claude Code's first user message around `prompt` (fixture 383's shape).
pub(super) fn cc_first(prompt: &str) -> Message {
    user(&[
        "<available-deferred-tools>\nAgent\nBash\nRead\n</available-deferred-tools>",
        "<system-reminder>\nThe following skills are available for use with the Skill tool\n</system-reminder>",
        prompt,
    ])
}

pub(super) fn prompts(c: &greyproxy_protocol::llm::Conversation) -> Vec<&str> {
    c.turns.iter().map(|t| t.user_prompt.as_str()).collect()
}
