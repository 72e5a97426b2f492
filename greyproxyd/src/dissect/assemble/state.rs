//! What the assembler remembers between calls, all of it bounded: per conversation a few
//! counters and hashes ([`ConvState`], kept opaque in the conversation's row), per session the
//! spawn prompts and subagent invocations it links by content ([`SessionLinks`]), and per
//! sessionless client the session inferred for it ([`Recent`]). Also how a request's messages
//! are split into those already seen and the new ones ([`new_messages`]).

use std::collections::VecDeque;

use greyproxy_protocol::llm::{ConversationSummary, SessionSource, Step};
use serde::{Deserialize, Serialize};

use crate::dissect::model::{Block, Message, Role};
use crate::store::{ConversationRecord, TurnHead};

/// Tool calls waiting for their result, per conversation. Results come in the next request
/// almost always; older ones are dropped first.
pub(super) const MAX_OPEN_TOOLS: usize = 64;
/// Spawn prompts remembered per session until a subagent claims them.
pub(super) const MAX_SPAWNS: usize = 64;
/// Subagent invocations remembered per session.
pub(super) const MAX_AGENTS: usize = 64;
/// Messages hashed to recognise a history as the one seen before.
const HEAD_MESSAGES: usize = 2;

/// A conversation's private state (the `state` of its row).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct ConvState {
    /// Messages of the latest full-history request; 0 after an incremental one (unknown).
    #[serde(default)]
    pub(super) seen: u32,
    /// How many leading messages `head` hashes.
    #[serde(default)]
    pub(super) head_n: u32,
    /// Hash of the first `head_n` messages.
    #[serde(default)]
    pub(super) head: u64,
    /// Hash of message `seen - 1`.
    #[serde(default)]
    pub(super) tail: u64,
    /// Steps in the current turn (the next step's index).
    #[serde(default)]
    pub(super) step: u32,
    /// Hash of the current turn's prompt (normalised).
    #[serde(default)]
    pub(super) prompt: u64,
    /// Tool calls whose results have not come back, oldest first.
    #[serde(default)]
    pub(super) open: VecDeque<OpenTool>,
}

/// A tool call waiting for its result, and where its step is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct OpenTool {
    pub(super) id: String,
    pub(super) turn: u32,
    pub(super) step: u32,
}

/// Per session (row `s:<main conversation id>`): what links subagents to the tool calls that
/// spawned them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct SessionLinks {
    /// Subagent invocations numbered so far.
    #[serde(default)]
    pub(super) next_agent: u32,
    /// Spawning tool calls not yet claimed by a subagent, oldest first.
    #[serde(default)]
    pub(super) spawns: VecDeque<Spawn>,
    /// Invocations by key (hash of the thread id or of the first prompt), oldest first.
    #[serde(default)]
    pub(super) agents: VecDeque<Agent>,
    /// The subagent conversation of the latest subagent call (for calls that carry no key).
    #[serde(skip)]
    pub(super) last_agent: Option<String>,
}

/// A tool call that spawns a subagent, by the hash of its prompt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Spawn {
    pub(super) hash: u64,
    pub(super) parent: String,
    pub(super) turn: u32,
    pub(super) step: u32,
    pub(super) tool: String,
}

/// A subagent invocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Agent {
    pub(super) key: u64,
    pub(super) id: String,
}

impl SessionLinks {
    /// Removes and returns the oldest unclaimed spawn with this prompt hash.
    pub(super) fn take_spawn(&mut self, hash: u64) -> Option<Spawn> {
        let at = self.spawns.iter().position(|s| s.hash == hash)?;
        self.spawns.remove(at)
    }
}

/// The session a sessionless client's calls were last put in (row `i:<key>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Recent {
    pub(super) session: String,
    pub(super) source: SessionSource,
    pub(super) last_ms: u64,
}

/// An open conversation: its row decoded, its current turn head and latest step at hand.
#[derive(Debug, Clone)]
pub(super) struct Open {
    pub(super) summary: ConversationSummary,
    pub(super) state: ConvState,
    pub(super) activity_ms: u64,
    pub(super) system_preview: String,
    pub(super) head: Option<TurnHead>,
    /// Whether `head` was started by the call being assembled (so it must be written even if
    /// a later turn starts in the same call).
    pub(super) head_is_new: bool,
    pub(super) last_step: Option<(u32, u32, Step)>,
    /// The row changed in this call.
    pub(super) dirty: bool,
}

impl Open {
    pub(super) fn from_record(r: ConversationRecord, head: Option<TurnHead>) -> Open {
        let state = serde_json::from_value(r.state).unwrap_or_else(|error| {
            // Written by another build: go on from an empty state (the next call then reads as
            // a new history) rather than refuse the conversation.
            tracing::warn!(id = %r.summary.id, %error, "conversation state unreadable; reset");
            ConvState::default()
        });
        Open {
            summary: r.summary,
            state,
            activity_ms: r.last_activity_ms,
            system_preview: r.system_prompt_preview,
            head,
            head_is_new: false,
            last_step: None,
            dirty: false,
        }
    }

    pub(super) fn record(&self) -> Result<ConversationRecord, serde_json::Error> {
        Ok(ConversationRecord {
            summary: self.summary.clone(),
            state: serde_json::to_value(&self.state)?,
            last_activity_ms: self.activity_ms,
            system_prompt_preview: self.system_preview.clone(),
        })
    }
}

/// Where the new messages of a request start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct NewMessages {
    pub(super) start: usize,
    /// The history is not the one seen before (compaction, a fork, a reconnection): only its
    /// trailing user side is new, and a prompt equal to the current turn's is not a new turn.
    pub(super) diverged: bool,
    /// The request carried only new items; nothing can be said about the history.
    pub(super) incremental: bool,
}

/// Splits `msgs` into seen and new, given the conversation's state.
/// - `previous_response_id` set: every message is new (Responses API incremental input);
/// - a conversation with nothing yet: every message is new;
/// - same head and the message last seen still in place: those after it are new;
/// - otherwise the history diverged (compaction, a fork, a reconnection): the messages after
///   the last assistant message are new. A WebSocket request with no assistant message at all
///   is incremental input sent without `previous_response_id`: all of it is new.
///
/// Only the head, one message and the diverged tail are read: the cost does not grow with
/// the history.
pub(super) fn new_messages(
    st: &ConvState,
    msgs: &[Message],
    chained: bool,
    websocket: bool,
    fresh: bool,
) -> NewMessages {
    let all = |incremental| NewMessages {
        start: 0,
        diverged: false,
        incremental,
    };
    if chained {
        return all(true);
    }
    if fresh {
        return all(false);
    }
    let head_n = st.head_n as usize;
    let head_ok = head_n > 0 && msgs.len() >= head_n && hash_messages(&msgs[..head_n]) == st.head;
    let seen = st.seen as usize;
    if head_ok && seen > 0 && msgs.len() >= seen && hash_messages(&msgs[seen - 1..seen]) == st.tail
    {
        return NewMessages {
            start: seen,
            diverged: false,
            incremental: false,
        };
    }
    match msgs.iter().rposition(|m| m.role == Role::Assistant) {
        None if websocket => all(true),
        last => NewMessages {
            start: last.map_or(0, |i| i + 1),
            diverged: true,
            incremental: false,
        },
    }
}

/// Records `msgs` as the history seen (full requests), or forgets the count (incremental ones:
/// the next full request is then compared by its head only).
pub(super) fn remember(st: &mut ConvState, msgs: &[Message], incremental: bool) {
    if incremental {
        st.seen = 0;
        return;
    }
    let Some(last) = msgs.len().checked_sub(1) else {
        return;
    };
    let n = msgs.len().min(HEAD_MESSAGES);
    st.seen = u32::try_from(msgs.len()).unwrap_or(u32::MAX);
    st.head_n = n as u32;
    st.head = hash_messages(&msgs[..n]);
    st.tail = hash_messages(&msgs[last..]);
}

/// A stable 64-bit hash (SHA-256, first 8 bytes): it is persisted, so it must not change
/// between builds the way `std`'s hasher may.
pub(super) fn hash_text(s: &str) -> u64 {
    let mut h = Hasher::new();
    h.str(s);
    h.finish()
}

/// [`hash_text`] over messages: roles, texts, tool calls and results, each length-prefixed.
pub(super) fn hash_messages(msgs: &[Message]) -> u64 {
    let mut h = Hasher::new();
    for m in msgs {
        h.bytes(match m.role {
            Role::System => b"s",
            Role::User => b"u",
            Role::Assistant => b"a",
        });
        for b in &m.blocks {
            match b {
                Block::Text(t) => {
                    h.bytes(b"t");
                    h.str(t);
                }
                Block::Thinking(t) => {
                    h.bytes(b"k");
                    h.str(t);
                }
                Block::ToolUse(u) => {
                    h.bytes(b"c");
                    h.str(&u.info.id);
                    h.str(&u.info.name);
                    h.str(&u.info.input_preview);
                }
                Block::ToolResult(r) => {
                    h.bytes(if r.is_error { b"E" } else { b"r" });
                    h.str(&r.tool_use_id);
                    h.str(&r.preview);
                }
            }
        }
    }
    h.finish()
}

struct Hasher(aws_lc_rs::digest::Context);

impl Hasher {
    fn new() -> Hasher {
        Hasher(aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256))
    }

    fn bytes(&mut self, b: &[u8]) {
        self.0.update(b);
    }

    fn str(&mut self, s: &str) {
        self.0.update(&(s.len() as u64).to_le_bytes());
        self.0.update(s.as_bytes());
    }

    fn finish(self) -> u64 {
        let d = self.0.finish();
        let mut first = [0u8; 8];
        first.copy_from_slice(&d.as_ref()[..8]);
        u64::from_le_bytes(first)
    }
}
