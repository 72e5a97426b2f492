//! Assembled LLM conversations (docs/llm.md), written by the conversation assembler one call at
//! a time. Every table is keyed so that one call touches a handful of rows whatever the length
//! of its conversation:
//! - `conversations` (`&str` id → JSON [`ConversationRecord`]): the summary lists show, plus the
//!   assembler's private state, which the store keeps without reading it;
//! - `conversations_by_activity` (`(u64 ms, &str id)` → `()`): the newest-first index lists and
//!   retention walk, so neither scans every conversation;
//! - `conversation_turns` (`(&str id, u32 turn)` → JSON [`TurnHead`]);
//! - `conversation_steps` (`(&str id, u32 turn, u32 step)` → JSON [`Step`]), steps from 0;
//! - `conversation_children` (`(&str parent, &str child)` → `()`): subagents spawned from a
//!   conversation;
//! - `conversation_sessions` (`&str` → bytes): per-session rows of the assembler (subagent
//!   linking, inferred sessions), opaque to the store.
//!
//! Conversations have their own retention ([`Store::prune_conversations`]): they outlive the
//! transactions they were assembled from.

use greyproxy_protocol::llm::{Conversation, ConversationSummary, LlmClient, Step, Turn};
use redb::{
    Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
    TableError, WriteTransaction,
};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError};

const CONVERSATIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("conversations");
const BY_ACTIVITY: TableDefinition<(u64, &str), ()> =
    TableDefinition::new("conversations_by_activity");
const TURNS: TableDefinition<(&str, u32), &[u8]> = TableDefinition::new("conversation_turns");
const STEPS: TableDefinition<(&str, u32, u32), &[u8]> = TableDefinition::new("conversation_steps");
const CHILDREN: TableDefinition<(&str, &str), ()> = TableDefinition::new("conversation_children");
const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("conversation_sessions");

/// Key prefix of the assembler's per-session rows; [`Store::prune_conversations`] removes the
/// row of a pruned conversation whose id it is followed by.
pub(crate) const SESSION_ROW_PREFIX: &str = "s:";

/// One `conversations` row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ConversationRecord {
    /// What lists show.
    pub(crate) summary: ConversationSummary,
    /// The assembler's state, not interpreted here.
    #[serde(default)]
    pub(crate) state: serde_json::Value,
    /// `summary.last_activity` in Unix milliseconds: the key of the activity index.
    pub(crate) last_activity_ms: u64,
    /// System prompt of the latest call, cut at 2 000 characters.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) system_prompt_preview: String,
}

/// A turn without its steps (the steps are rows of their own, so a long turn is not rewritten
/// on every call). Its call ids are those of its steps: every call of a turn makes one step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TurnHead {
    /// From 1.
    pub(crate) number: u32,
    /// The user's prompt, scaffolding stripped.
    pub(crate) user_prompt: String,
    /// First call of the turn, RFC 3339.
    pub(crate) started_at: String,
    /// Latest call of the turn, RFC 3339.
    pub(crate) ended_at: String,
}

/// Everything one call changed, written in one transaction by [`Store::write_conversation`].
#[derive(Debug, Default)]
pub(crate) struct ConversationWrite {
    /// Conversation rows (the call's own, and a parent or child it linked).
    pub(crate) records: Vec<ConversationRecord>,
    /// New or changed turn heads, by conversation id.
    pub(crate) turns: Vec<(String, TurnHead)>,
    /// New or changed steps: conversation id, turn, step index.
    pub(crate) steps: Vec<(String, u32, u32, Step)>,
    /// New (parent, child) links.
    pub(crate) children: Vec<(String, String)>,
    /// The assembler's per-session rows.
    pub(crate) sessions: Vec<(String, Vec<u8>)>,
    /// Commit with an fsync. A rebuild replaying thousands of calls turns it off and makes its
    /// last write durable.
    pub(crate) durable: bool,
}

/// What a write cost: rows inserted or removed and the value bytes written. The assembler
/// exposes it so tests can show that a call's write does not grow with its conversation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct WriteStats {
    /// Rows inserted, replaced or removed.
    pub(crate) rows: u32,
    /// Bytes of the values (and string keys) written.
    pub(crate) bytes: u64,
}

/// Filters of [`Store::list_conversations`]; `None` or empty means any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ConversationFilter {
    /// Case-insensitive substring of the container name.
    pub(crate) container: Option<String>,
    /// Agent program.
    pub(crate) client: Option<LlmClient>,
    /// Case-insensitive substring of one of the models answered.
    pub(crate) model: Option<String>,
    /// Only subagents of this conversation.
    pub(crate) parent: Option<String>,
}

impl ConversationFilter {
    fn matches(&self, s: &ConversationSummary) -> bool {
        let sub = |hay: &str, needle: &str| hay.to_lowercase().contains(&needle.to_lowercase());
        if let Some(c) = set(&self.container)
            && !sub(&s.container_name, c)
        {
            return false;
        }
        if self.client.is_some_and(|c| c != s.client) {
            return false;
        }
        if let Some(m) = set(&self.model)
            && !s.models.iter().any(|x| sub(x, m))
        {
            return false;
        }
        if let Some(p) = set(&self.parent)
            && s.parent_id.as_deref() != Some(p)
        {
            return false;
        }
        true
    }
}

/// One page of conversations, newest activity first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ConversationPage {
    /// Summaries.
    pub(crate) items: Vec<ConversationSummary>,
    /// Cursor for the next page (exclusive `before_last_activity`, ms), when there is one.
    pub(crate) next_before: Option<u64>,
}

impl Store {
    /// Writes one call's changes in one write transaction, keeping the activity index in step
    /// with the conversation rows.
    pub(crate) fn write_conversation(
        &self,
        w: &ConversationWrite,
    ) -> Result<WriteStats, StoreError> {
        let mut txn = self.db.begin_write()?;
        if !w.durable {
            // If refused the commit is simply durable, only slower.
            let _ = txn.set_durability(Durability::None);
        }
        let mut st = WriteStats::default();
        {
            let mut convs = txn.open_table(CONVERSATIONS)?;
            let mut index = txn.open_table(BY_ACTIVITY)?;
            for r in &w.records {
                let id = r.summary.id.as_str();
                let bytes = serde_json::to_vec(r)?;
                let old_ms = match convs.insert(id, bytes.as_slice())? {
                    Some(old) => serde_json::from_slice::<ConversationRecord>(old.value())
                        .ok()
                        .map(|o| o.last_activity_ms),
                    None => None,
                };
                st.add(1, bytes.len() + id.len());
                if old_ms != Some(r.last_activity_ms) {
                    if let Some(ms) = old_ms {
                        index.remove((ms, id))?;
                        st.add(1, 0);
                    }
                    index.insert((r.last_activity_ms, id), ())?;
                    st.add(1, id.len() + 8);
                }
            }
            let mut turns = txn.open_table(TURNS)?;
            for (id, head) in &w.turns {
                let bytes = serde_json::to_vec(head)?;
                turns.insert((id.as_str(), head.number), bytes.as_slice())?;
                st.add(1, bytes.len() + id.len());
            }
            let mut steps = txn.open_table(STEPS)?;
            for (id, turn, step, value) in &w.steps {
                let bytes = serde_json::to_vec(value)?;
                steps.insert((id.as_str(), *turn, *step), bytes.as_slice())?;
                st.add(1, bytes.len() + id.len());
            }
            let mut children = txn.open_table(CHILDREN)?;
            for (parent, child) in &w.children {
                children.insert((parent.as_str(), child.as_str()), ())?;
                st.add(1, parent.len() + child.len());
            }
            let mut sessions = txn.open_table(SESSIONS)?;
            for (key, value) in &w.sessions {
                sessions.insert(key.as_str(), value.as_slice())?;
                st.add(1, key.len() + value.len());
            }
        }
        txn.commit()?;
        Ok(st)
    }

    /// A conversation's row and the head of its latest turn: what the assembler needs to go
    /// on with it.
    pub(crate) fn load_conversation_state(
        &self,
        id: &str,
    ) -> Result<Option<(ConversationRecord, Option<TurnHead>)>, StoreError> {
        let txn = self.db.begin_read()?;
        let convs = match txn.open_table(CONVERSATIONS) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let Some(row) = convs.get(id)? else {
            return Ok(None);
        };
        let record: ConversationRecord = serde_json::from_slice(row.value())?;
        let turns = txn.open_table(TURNS)?;
        let head = match turns.get((id, record.summary.turns))? {
            Some(v) => Some(serde_json::from_slice(v.value())?),
            None => None,
        };
        Ok(Some((record, head)))
    }

    /// One step, `None` when missing.
    pub(crate) fn get_conversation_step(
        &self,
        id: &str,
        turn: u32,
        step: u32,
    ) -> Result<Option<Step>, StoreError> {
        let txn = self.db.begin_read()?;
        let steps = match txn.open_table(STEPS) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        match steps.get((id, turn, step))? {
            Some(v) => Ok(Some(serde_json::from_slice(v.value())?)),
            None => Ok(None),
        }
    }

    /// One of the assembler's per-session rows.
    pub(crate) fn get_conversation_session(
        &self,
        key: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read()?;
        let rows = match txn.open_table(SESSIONS) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        Ok(rows.get(key)?.map(|v| v.value().to_vec()))
    }

    /// Conversations matching `filter`, newest activity first, at most `limit` (more when
    /// several share the last one's millisecond, so that the cursor skips none), only those
    /// whose last activity is before `before_last_activity` (Unix ms) when given.
    pub(crate) fn list_conversations(
        &self,
        filter: &ConversationFilter,
        limit: usize,
        before_last_activity: Option<u64>,
    ) -> Result<ConversationPage, StoreError> {
        let txn = self.db.begin_read()?;
        let (convs, index) = match (txn.open_table(CONVERSATIONS), txn.open_table(BY_ACTIVITY)) {
            (Ok(c), Ok(i)) => (c, i),
            (Err(TableError::TableDoesNotExist(_)), _)
            | (_, Err(TableError::TableDoesNotExist(_))) => {
                return Ok(ConversationPage::default());
            }
            (Err(e), _) | (_, Err(e)) => return Err(e.into()),
        };
        let mut page = ConversationPage::default();
        let upper = before_last_activity.unwrap_or(u64::MAX);
        let mut last_ms = None;
        for entry in index.range((0u64, "")..(upper, ""))?.rev() {
            let (k, _) = entry?;
            let (ms, id) = k.value();
            if page.items.len() >= limit && last_ms != Some(ms) {
                page.next_before = last_ms;
                break;
            }
            let Some(row) = convs.get(id)? else { continue };
            let Ok(r) = serde_json::from_slice::<ConversationRecord>(row.value()) else {
                tracing::warn!(id, "skipping undecodable conversation");
                continue;
            };
            if filter.matches(&r.summary) {
                page.items.push(r.summary);
                last_ms = Some(ms);
            }
        }
        Ok(page)
    }

    /// A conversation's summary alone (one row read); `None` when unknown.
    pub(crate) fn get_conversation_summary(
        &self,
        id: &str,
    ) -> Result<Option<ConversationSummary>, StoreError> {
        let txn = self.db.begin_read()?;
        let convs = match txn.open_table(CONVERSATIONS) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let Some(row) = convs.get(id)? else {
            return Ok(None);
        };
        let record: ConversationRecord = serde_json::from_slice(row.value())?;
        Ok(Some(record.summary))
    }

    /// A conversation with all its turns, their steps and its subagents; `None` when unknown.
    pub(crate) fn get_conversation(&self, id: &str) -> Result<Option<Conversation>, StoreError> {
        let txn = self.db.begin_read()?;
        let convs = match txn.open_table(CONVERSATIONS) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let Some(row) = convs.get(id)? else {
            return Ok(None);
        };
        let record: ConversationRecord = serde_json::from_slice(row.value())?;
        let mut turns: Vec<Turn> = Vec::new();
        for entry in txn.open_table(TURNS)?.range((id, 0u32)..=(id, u32::MAX))? {
            let (_, v) = entry?;
            let h: TurnHead = serde_json::from_slice(v.value())?;
            turns.push(Turn {
                number: h.number,
                user_prompt: h.user_prompt,
                steps: Vec::new(),
                call_ids: Vec::new(),
                started_at: h.started_at,
                ended_at: h.ended_at,
            });
        }
        // Both ranges are in turn order: one cursor walks the turns.
        let mut at = 0;
        let steps = txn.open_table(STEPS)?;
        for entry in steps.range((id, 0u32, 0u32)..=(id, u32::MAX, u32::MAX))? {
            let (k, v) = entry?;
            let (_, turn, _) = k.value();
            let step: Step = serde_json::from_slice(v.value())?;
            while at < turns.len() && turns[at].number < turn {
                at += 1;
            }
            if let Some(t) = turns.get_mut(at).filter(|t| t.number == turn) {
                if t.call_ids.last() != Some(&step.call_id) {
                    t.call_ids.push(step.call_id);
                }
                t.steps.push(step);
            }
        }
        let mut subagents = Vec::new();
        for entry in txn.open_table(CHILDREN)?.range((id, "")..)? {
            let (k, _) = entry?;
            let (parent, child) = k.value();
            if parent != id {
                break;
            }
            subagents.push(child.to_string());
        }
        Ok(Some(Conversation {
            summary: record.summary,
            system_prompt_preview: record.system_prompt_preview,
            turns,
            subagents,
        }))
    }

    /// Removes conversations whose last activity is before `older_than_ms`, then the least
    /// recently active beyond `max_count` (`0`: no count limit), with their turns, steps,
    /// links and session rows. Returns how many were removed. An assembler still holding one
    /// of them open would write it back on its next call: reset its caches afterwards.
    pub(crate) fn prune_conversations(
        &self,
        older_than_ms: u64,
        max_count: u64,
    ) -> Result<u64, StoreError> {
        let txn = self.db.begin_write()?;
        let mut doomed: Vec<(u64, String)> = Vec::new();
        {
            let index = txn.open_table(BY_ACTIVITY)?;
            let total = index.len()?;
            let over = if max_count == 0 {
                0
            } else {
                total.saturating_sub(max_count)
            };
            for entry in index.iter()? {
                let (k, _) = entry?;
                let (ms, id) = k.value();
                if ms >= older_than_ms && (doomed.len() as u64) >= over {
                    break;
                }
                doomed.push((ms, id.to_string()));
            }
        }
        for (ms, id) in &doomed {
            delete_conversation(&txn, *ms, id)?;
        }
        txn.commit()?;
        Ok(doomed.len() as u64)
    }

    /// Removes every conversation and the assembler's session rows (before a rebuild).
    pub(crate) fn clear_conversations(&self) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        txn.delete_table(CONVERSATIONS)?;
        txn.delete_table(BY_ACTIVITY)?;
        txn.delete_table(TURNS)?;
        txn.delete_table(STEPS)?;
        txn.delete_table(CHILDREN)?;
        txn.delete_table(SESSIONS)?;
        txn.commit()?;
        Ok(())
    }
}

/// The filter's value, `None` when unset or blank.
fn set(f: &Option<String>) -> Option<&str> {
    f.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

impl WriteStats {
    fn add(&mut self, rows: u32, bytes: usize) {
        self.rows += rows;
        self.bytes += bytes as u64;
    }
}

/// Deletes one conversation's rows within `txn`. Links naming it as a child stay: the parent's
/// `subagents` then names a conversation that is gone, as its tool call does.
fn delete_conversation(txn: &WriteTransaction, ms: u64, id: &str) -> Result<(), StoreError> {
    txn.open_table(BY_ACTIVITY)?.remove((ms, id))?;
    txn.open_table(CONVERSATIONS)?.remove(id)?;
    let mut turns = txn.open_table(TURNS)?;
    let keys: Vec<u32> = turns
        .range((id, 0u32)..=(id, u32::MAX))?
        .map(|e| e.map(|(k, _)| k.value().1))
        .collect::<Result<_, _>>()?;
    for t in keys {
        turns.remove((id, t))?;
    }
    let mut steps = txn.open_table(STEPS)?;
    let keys: Vec<(u32, u32)> = steps
        .range((id, 0u32, 0u32)..=(id, u32::MAX, u32::MAX))?
        .map(|e| e.map(|(k, _)| (k.value().1, k.value().2)))
        .collect::<Result<_, _>>()?;
    for (t, s) in keys {
        steps.remove((id, t, s))?;
    }
    let mut children = txn.open_table(CHILDREN)?;
    let mut kids = Vec::new();
    for entry in children.range((id, "")..)? {
        let (k, _) = entry?;
        let (parent, child) = k.value();
        if parent != id {
            break;
        }
        kids.push(child.to_string());
    }
    for child in kids {
        children.remove((id, child.as_str()))?;
    }
    let key = format!("{SESSION_ROW_PREFIX}{id}");
    txn.open_table(SESSIONS)?.remove(key.as_str())?;
    Ok(())
}
