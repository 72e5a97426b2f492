//! Conversation assembly (docs/llm.md): each dissected call is folded into its conversation as
//! it comes, and the work is independent of the conversation's length. A call reads its
//! conversation's small state (cached), looks only at the messages it has not seen, and writes
//! in one store transaction: the conversation row, the current turn head, its new step and the
//! steps whose tool calls got results (see [`crate::store::ConversationWrite`]).
//!
//! - Sessions: `<client>:<session>` is the main thread's conversation; a client that sends no
//!   session gets one inferred per (container, client, provider), new after 5 minutes of quiet.
//! - Subagents: a conversation per invocation, `<client>:<session>/agent-<n>`, linked to the
//!   tool call whose spawn prompt equals the subagent's first prompt (by content, so parallel
//!   subagents whose calls interleave are linked right). opencode runs subagents in sessions of
//!   their own: the parent's tool result names the child session, which links it.
//! - Utility calls (titles, classifiers), warm-ups and side requests on the main history
//!   (suggestions, compaction) count in the main conversation's totals but add no step.
//!
//! [`Assembler::on_call`] blocks on the store (a write per call): run it off the async runtime.

mod calls;
#[cfg(test)]
mod harness;
mod scaffold;
#[cfg(test)]
mod session_tests;
mod state;
#[cfg(test)]
mod tests;

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use greyproxy_protocol::llm::{
    ConversationStatus, ConversationSummary, Cost, LlmClient, LlmThread, LlmTotals, PriceState,
    SessionSource, Usage,
};
use lru::LruCache;

use crate::dissect::model::{Decoder, Dissected};
use crate::store::{ConversationWrite, SESSION_ROW_PREFIX, Store, StoreError, WriteStats};
use state::{Open, Recent, SessionLinks};

/// Open conversations kept decoded in memory; others are read from the store when their next
/// call comes.
const OPEN_CACHE: usize = 256;
/// Sessions whose subagent links are kept in memory.
const LINKS_CACHE: usize = 256;
/// (container, client, provider) keys whose latest session is kept in memory.
const RECENT_CACHE: usize = 1024;
/// opencode child sessions named by a parent before any of their calls was seen.
const PENDING_CHILDREN: usize = 64;
/// Quiet time after which a sessionless client's next call starts a new inferred session.
const SESSION_GAP_MS: u64 = 5 * 60 * 1000;
/// Longest session key kept from the wire (it becomes part of conversation ids).
const MAX_SESSION_CHARS: usize = 256;
/// Key prefix of the inferred-session rows.
const RECENT_ROW_PREFIX: &str = "i:";

/// One call as the dissection task hands it over.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallInput<'a> {
    /// The call's id (`llm_calls`).
    pub(crate) call_id: u64,
    /// The transaction (or WebSocket message) carrying its request: stable across rebuilds,
    /// so inferred sessions are named by it.
    pub(crate) transaction_id: u64,
    /// When the request started, Unix ms.
    pub(crate) timestamp_ms: u64,
    /// Client identity (container).
    pub(crate) container: &'a str,
    /// Agent program.
    pub(crate) client: LlmClient,
    /// Thread kind.
    pub(crate) thread: LlmThread,
    /// Session key from the wire, if any.
    pub(crate) session_id: Option<&'a str>,
    /// Whether `session_id` came from the wire.
    pub(crate) session_source: SessionSource,
    /// Provider name.
    pub(crate) provider: &'a str,
    /// Model answered (else requested).
    pub(crate) model: Option<&'a str>,
    /// Normalised usage.
    pub(crate) usage: Option<Usage>,
    /// The call's cost.
    pub(crate) cost: &'a Cost,
    /// Request start to the last byte of the response.
    pub(crate) duration_ms: Option<u64>,
    /// The model's context window, when known.
    pub(crate) context_window: Option<u64>,
    /// What could not be read, or the provider's error.
    pub(crate) error: Option<&'a str>,
    /// The call read by its dissector.
    pub(crate) dissected: &'a Dissected,
}

/// What a call changed, for its `llm_calls` row and the `conversation.updated` events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Assembled {
    /// The conversation the call was counted in.
    pub(crate) conversation_id: Option<String>,
    /// Its turn (`None` for calls that add no step: utility calls, warm-ups).
    pub(crate) turn: Option<u32>,
    /// That conversation's summary after the call.
    pub(crate) summary: Option<ConversationSummary>,
    /// The parent whose tool call was linked to the subagent this call started.
    pub(crate) changed_parent: Option<ConversationSummary>,
    /// An opencode child conversation this call's tool result linked to its parent.
    pub(crate) changed_child: Option<ConversationSummary>,
}

/// Folds calls into conversations. One per daemon (calls must come in one order); the store
/// is the truth, the caches only spare reads.
pub(crate) struct Assembler {
    store: Arc<Store>,
    open: LruCache<String, Open>,
    links: LruCache<String, SessionLinks>,
    recent: LruCache<String, Recent>,
    pending_children: LruCache<String, (String, String)>,
    durable: bool,
    last_write: WriteStats,
}

/// The changes of the call being assembled: applied to the caches only once written.
#[derive(Default)]
struct Work {
    w: ConversationWrite,
    opens: Vec<Open>,
    links: Vec<(String, SessionLinks, bool)>,
    recent: Option<(String, Recent)>,
    out: Assembled,
}

impl Assembler {
    /// An assembler writing to `store`, with empty caches.
    pub(crate) fn new(store: Arc<Store>) -> Assembler {
        let n = |c: usize| NonZeroUsize::new(c).unwrap_or(NonZeroUsize::MIN);
        Assembler {
            store,
            open: LruCache::new(n(OPEN_CACHE)),
            links: LruCache::new(n(LINKS_CACHE)),
            recent: LruCache::new(n(RECENT_CACHE)),
            pending_children: LruCache::new(n(PENDING_CHILDREN)),
            durable: true,
            last_write: WriteStats::default(),
        }
    }

    /// Commit each call with an fsync (the default) or not (a rebuild replaying history, which
    /// turns it back on for its last call).
    pub(crate) fn set_durable(&mut self, durable: bool) {
        self.durable = durable;
    }

    /// Forgets everything cached: after [`Store::clear_conversations`] (before a rebuild) or
    /// [`Store::prune_conversations`].
    pub(crate) fn reset(&mut self) {
        self.open.clear();
        self.links.clear();
        self.recent.clear();
        self.pending_children.clear();
    }

    /// Rows and bytes the latest call wrote.
    #[cfg_attr(not(test), allow(dead_code))] // read by the flatness tests
    pub(crate) fn last_write(&self) -> WriteStats {
        self.last_write
    }

    /// Folds one call into its conversation and writes the changes in one transaction. On an
    /// error nothing of the call is kept, in the store or in memory.
    pub(crate) fn on_call(&mut self, c: &CallInput) -> Result<Assembled, StoreError> {
        let mut work = Work::default();
        work.w.durable = self.durable;
        let (session, source) = self.session_of(c, &mut work)?;
        let main_id = conversation_id(c.client, &session);
        let d = c.dissected;
        let warm_up =
            !d.request.generate && d.response.text.is_empty() && d.response.tool_calls.is_empty();
        let side = d.request.previous_response_id.is_none()
            && d.request
                .messages
                .last()
                .is_some_and(scaffold::is_side_request);
        if c.thread == LlmThread::Utility || side {
            self.utility(c, &mut work, &main_id, &session, source)?;
        } else if c.thread == LlmThread::Subagent && c.client != LlmClient::Opencode {
            self.subagent(c, &mut work, &main_id, &session, source, warm_up)?;
        } else {
            // opencode's subagents have sessions of their own: their conversation is their
            // session's, linked through the parent's tool result.
            let target = calls::Target {
                id: &main_id,
                main_id: &main_id,
                session: &session,
                source,
                thread: c.thread,
                spawn: None,
            };
            self.converse(c, &mut work, target, warm_up)?;
        }
        self.commit(work)
    }

    /// Writes the call's changes, then lets the caches take them.
    fn commit(&mut self, mut work: Work) -> Result<Assembled, StoreError> {
        for o in work.opens.iter().filter(|o| o.dirty) {
            work.w.records.push(o.record()?);
        }
        for (key, links, dirty) in &work.links {
            if *dirty {
                let row = format!("{SESSION_ROW_PREFIX}{key}");
                work.w.sessions.push((row, serde_json::to_vec(links)?));
            }
        }
        if let Some((key, recent)) = &work.recent {
            let row = format!("{RECENT_ROW_PREFIX}{key}");
            work.w.sessions.push((row, serde_json::to_vec(recent)?));
        }
        self.last_write = self.store.write_conversation(&work.w)?;
        for mut o in work.opens {
            o.dirty = false;
            o.head_is_new = false;
            self.open.put(o.summary.id.clone(), o);
        }
        for (key, links, _) in work.links {
            self.links.put(key, links);
        }
        if let Some((key, recent)) = work.recent {
            self.recent.put(key, recent);
        }
        Ok(work.out)
    }

    /// The call's session: from the wire, else the one its (container, client, provider) used
    /// last if within [`SESSION_GAP_MS`], else a new inferred one named after this call.
    fn session_of(
        &mut self,
        c: &CallInput,
        work: &mut Work,
    ) -> Result<(String, SessionSource), StoreError> {
        let key = format!("{}\u{1f}{}\u{1f}{}", c.container, c.client, c.provider);
        if let Some(s) = c.session_id.map(str::trim).filter(|s| !s.is_empty()) {
            let s = cut(s, MAX_SESSION_CHARS);
            if c.thread == LlmThread::Main {
                // Sessionless side calls of the same client then join this session. Memory
                // only: after a restart they start an inferred session instead.
                self.recent.put(
                    key,
                    Recent {
                        session: s.clone(),
                        source: c.session_source,
                        last_ms: c.timestamp_ms,
                    },
                );
            }
            return Ok((s, c.session_source));
        }
        let known = match self.recent.get(&key) {
            Some(r) => Some(r.clone()),
            None => self
                .store
                .get_conversation_session(&format!("{RECENT_ROW_PREFIX}{key}"))?
                .and_then(|b| serde_json::from_slice::<Recent>(&b).ok()),
        };
        let now = c.timestamp_ms;
        let recent = match known {
            Some(r) if now <= r.last_ms.saturating_add(SESSION_GAP_MS) => Recent {
                last_ms: r.last_ms.max(now),
                ..r
            },
            _ => Recent {
                session: format!("inferred-{}", c.transaction_id),
                source: SessionSource::Inferred,
                last_ms: now,
            },
        };
        let out = (recent.session.clone(), recent.source);
        work.recent = Some((key, recent));
        Ok(out)
    }

    /// Index in `work.opens` of conversation `id`, from the call's work, the cache or the
    /// store; `None` when it does not exist.
    fn find_open(&mut self, work: &mut Work, id: &str) -> Result<Option<usize>, StoreError> {
        if let Some(i) = work.opens.iter().position(|o| o.summary.id == id) {
            return Ok(Some(i));
        }
        let open = match self.open.pop(id) {
            Some(o) => o,
            None => match self.store.load_conversation_state(id)? {
                Some((record, head)) => Open::from_record(record, head),
                None => return Ok(None),
            },
        };
        work.opens.push(open);
        Ok(Some(work.opens.len() - 1))
    }

    /// Like [`Assembler::find_open`], creating the conversation when it does not exist.
    fn open_or_create(
        &mut self,
        work: &mut Work,
        c: &CallInput,
        id: &str,
        session: &str,
        source: SessionSource,
        thread: LlmThread,
    ) -> Result<usize, StoreError> {
        if let Some(i) = self.find_open(work, id)? {
            return Ok(i);
        }
        let ts = rfc3339_ms(c.timestamp_ms);
        let mut summary = ConversationSummary {
            id: id.to_string(),
            session_id: session.to_string(),
            session_source: source,
            thread,
            parent_id: None,
            parent_tool_call_id: None,
            container_name: c.container.to_string(),
            client: c.client,
            provider: c.provider.to_string(),
            models: Vec::new(),
            status: ConversationStatus::Answered,
            started_at: ts.clone(),
            last_activity: ts,
            turns: 0,
            title: String::new(),
            totals: LlmTotals::default(),
            context_tokens: 0,
            context_window: None,
        };
        // A child session a parent named before any of its calls was seen.
        if let Some((parent, tool)) = self.pending_children.pop(id) {
            summary.parent_id = Some(parent);
            summary.parent_tool_call_id = Some(tool);
        }
        work.opens.push(Open {
            summary,
            state: state::ConvState::default(),
            activity_ms: c.timestamp_ms,
            system_preview: String::new(),
            head: None,
            head_is_new: false,
            last_step: None,
            dirty: true,
        });
        Ok(work.opens.len() - 1)
    }

    /// Index in `work.links` of the session links of main conversation `main_id`.
    fn find_links(&mut self, work: &mut Work, main_id: &str) -> Result<usize, StoreError> {
        if let Some(i) = work.links.iter().position(|(k, _, _)| k == main_id) {
            return Ok(i);
        }
        let links = match self.links.pop(main_id) {
            Some(l) => l,
            None => self
                .store
                .get_conversation_session(&format!("{SESSION_ROW_PREFIX}{main_id}"))?
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default(),
        };
        work.links.push((main_id.to_string(), links, false));
        Ok(work.links.len() - 1)
    }

    /// A utility call or side request: counted in the session's main conversation only.
    fn utility(
        &mut self,
        c: &CallInput,
        work: &mut Work,
        main_id: &str,
        session: &str,
        source: SessionSource,
    ) -> Result<(), StoreError> {
        let i = self.open_or_create(work, c, main_id, session, source, LlmThread::Main)?;
        let o = &mut work.opens[i];
        add_totals(&mut o.summary.totals, c);
        touch(o, c.timestamp_ms);
        work.out.conversation_id = Some(main_id.to_string());
        work.out.summary = Some(o.summary.clone());
        Ok(())
    }
}

/// `<client>:<session>`.
fn conversation_id(client: LlmClient, session: &str) -> String {
    format!("{client}:{session}")
}

/// Counts a call in `t`.
fn add_totals(t: &mut LlmTotals, c: &CallInput) {
    t.calls += 1;
    if let Some(u) = &c.usage {
        t.usage.add(u);
    }
    match c.cost.state {
        PriceState::Priced => t.cost_micro_usd += c.cost.micro_usd.unwrap_or(0),
        PriceState::Unpriced => t.unpriced_calls += 1,
        _ => {}
    }
    t.duration_ms += c.duration_ms.unwrap_or(0);
}

/// Moves the conversation's last activity to `ms` (never back: calls can finish out of
/// order) and marks it changed.
fn touch(o: &mut Open, ms: u64) {
    if ms >= o.activity_ms {
        o.activity_ms = ms;
        o.summary.last_activity = rfc3339_ms(ms);
    }
    o.dirty = true;
}

/// Whether a call read by `decoder` can carry incremental input without saying so.
fn is_websocket(decoder: Decoder) -> bool {
    decoder == Decoder::OpenAiWs
}

/// RFC 3339 UTC with milliseconds, as call timestamps are.
fn rfc3339_ms(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// The first `max` characters of `s`.
fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => s[..at].to_string(),
        None => s.to_string(),
    }
}
