//! Folding a main-thread or subagent call into its conversation: new prompts start turns, tool
//! results fill the steps that asked for them, the response becomes a step, spawning tool
//! calls are remembered for the subagents they start, and subagents are linked back.

use greyproxy_protocol::llm::{
    ConversationStatus, LlmThread, SessionSource, Step, StepToolCall, ToolCallInfo,
};

use super::state::{self, Agent, MAX_AGENTS, MAX_OPEN_TOOLS, MAX_SPAWNS, OpenTool, Spawn};
use super::{
    Assembler, CallInput, MAX_SESSION_CHARS, Work, add_totals, conversation_id, cut, is_websocket,
    rfc3339_ms, scaffold, touch,
};
use crate::dissect::model::{Block, Role, ToolResult};
use crate::store::{StoreError, TurnHead};

/// Longest user prompt kept in a turn.
const MAX_PROMPT_CHARS: usize = 8_000;
/// Longest assistant text kept in a step.
const MAX_TEXT_CHARS: usize = 8_000;
/// Thinking preview.
const THINKING_CHARS: usize = 500;
/// Tool result preview.
const RESULT_CHARS: usize = 500;
/// Tool argument preview.
const INPUT_CHARS: usize = 300;
/// Conversation title.
const TITLE_CHARS: usize = 200;
/// System prompt preview.
const SYSTEM_CHARS: usize = 2_000;
/// Models listed per conversation.
const MAX_MODELS: usize = 8;
/// Leading messages searched for a subagent's first prompt.
const FIRST_PROMPT_MESSAGES: usize = 4;

/// The conversation a call goes to.
pub(super) struct Target<'a> {
    pub(super) id: &'a str,
    /// The session's main conversation (key of the session's links).
    pub(super) main_id: &'a str,
    pub(super) session: &'a str,
    pub(super) source: SessionSource,
    pub(super) thread: LlmThread,
    /// The spawning tool call a new subagent invocation claimed.
    pub(super) spawn: Option<Spawn>,
}

impl Assembler {
    /// A subagent call: finds its invocation (by thread id, else first prompt, else the
    /// session's latest subagent) or starts one, linked to the spawn with the same prompt.
    pub(super) fn subagent(
        &mut self,
        c: &CallInput,
        work: &mut Work,
        main_id: &str,
        session: &str,
        source: SessionSource,
        warm_up: bool,
    ) -> Result<(), StoreError> {
        let d = c.dissected;
        let first = if d.request.error.is_none() {
            d.request
                .messages
                .iter()
                .take(FIRST_PROMPT_MESSAGES)
                .find_map(|m| scaffold::prompt(c.client, m))
        } else {
            None
        };
        let prompt_hash = first
            .as_deref()
            .map(|p| state::hash_text(&scaffold::normalise(p)));
        let key = match d.request.thread_id.as_deref() {
            Some(t) if !t.is_empty() && t != session => {
                Some(state::hash_text(&format!("thread\u{1f}{t}")))
            }
            _ => prompt_hash,
        };
        let li = self.find_links(work, main_id)?;
        let (_, links, dirty) = &mut work.links[li];
        let known = match key {
            Some(k) => links
                .agents
                .iter()
                .rev()
                .find(|a| a.key == k)
                .map(|a| a.id.clone()),
            None => links.last_agent.clone(),
        };
        let (id, spawn) = match known {
            Some(id) => (id, None),
            None => {
                links.next_agent += 1;
                let id = format!("{main_id}/agent-{}", links.next_agent);
                links.agents.push_back(Agent {
                    key: key.unwrap_or(0),
                    id: id.clone(),
                });
                while links.agents.len() > MAX_AGENTS {
                    links.agents.pop_front();
                }
                *dirty = true;
                (id, prompt_hash.and_then(|h| links.take_spawn(h)))
            }
        };
        links.last_agent = Some(id.clone());
        let target = Target {
            id: &id,
            main_id,
            session,
            source,
            thread: LlmThread::Subagent,
            spawn,
        };
        self.converse(c, work, target, warm_up)
    }

    /// Folds the call into conversation `t.id`. A warm-up's messages count (its prompt is
    /// often not repeated by the request that follows) but it adds no step.
    pub(super) fn converse(
        &mut self,
        c: &CallInput,
        work: &mut Work,
        t: Target,
        warm_up: bool,
    ) -> Result<(), StoreError> {
        let i = self.open_or_create(work, c, t.id, t.session, t.source, t.thread)?;
        if let Some(spawn) = t.spawn {
            self.link_spawn(work, i, spawn)?;
        }
        let d = c.dissected;
        let ts = rfc3339_ms(c.timestamp_ms);
        if d.request.error.is_none() {
            let msgs = &d.request.messages;
            let o = &work.opens[i];
            let fresh = o.summary.turns == 0 && o.state.seen == 0;
            let chained = d.request.previous_response_id.is_some();
            let nm = state::new_messages(&o.state, msgs, chained, is_websocket(d.decoder), fresh);
            for m in msgs.iter().skip(nm.start) {
                if m.role != Role::User {
                    continue;
                }
                for b in &m.blocks {
                    if let Block::ToolResult(r) = b {
                        self.attach_result(c, work, i, r)?;
                    }
                }
                if let Some(p) = scaffold::prompt(c.client, m) {
                    let h = state::hash_text(&scaffold::normalise(&p));
                    let o = &work.opens[i];
                    // The same prompt again is the same turn when the history was rewritten,
                    // or when a warm-up already started the turn and nothing answered yet.
                    let repeat = o.summary.turns > 0
                        && h == o.state.prompt
                        && (nm.diverged || (nm.incremental && o.state.step == 0));
                    if !repeat {
                        begin_turn(work, i, &p, h, &ts);
                    }
                }
            }
            let o = &mut work.opens[i];
            state::remember(&mut o.state, msgs, nm.incremental);
            o.dirty = true;
        }
        if !warm_up {
            if work.opens[i].summary.turns == 0 {
                begin_turn(work, i, "", 0, &ts);
            }
            self.add_step(c, work, i, t.main_id)?;
        }
        let o = &mut work.opens[i];
        if let Some(head) = &mut o.head
            && (o.head_is_new || !warm_up)
        {
            if !warm_up {
                head.ended_at = ts;
            }
            work.w.turns.push((o.summary.id.clone(), head.clone()));
        }
        add_totals(&mut o.summary.totals, c);
        touch(o, c.timestamp_ms);
        if !warm_up {
            o.summary.status = status(c);
            if let Some(m) = c.model.filter(|m| !m.is_empty()) {
                o.summary.models.retain(|x| x != m);
                o.summary.models.insert(0, m.to_string());
                o.summary.models.truncate(MAX_MODELS);
            }
            if let Some(u) = &c.usage {
                o.summary.context_tokens = u.input_tokens;
            }
            if c.context_window.is_some() {
                o.summary.context_window = c.context_window;
            }
            work.out.turn = Some(o.summary.turns);
        }
        if !d.request.system_preview.is_empty() {
            o.system_preview = cut(&d.request.system_preview, SYSTEM_CHARS);
        }
        work.out.conversation_id = Some(o.summary.id.clone());
        work.out.summary = Some(o.summary.clone());
        Ok(())
    }

    /// The response as the current turn's next step; its tool calls wait for results, and
    /// those that spawn subagents are remembered for them.
    fn add_step(
        &mut self,
        c: &CallInput,
        work: &mut Work,
        i: usize,
        main_id: &str,
    ) -> Result<(), StoreError> {
        let r = &c.dissected.response;
        let o = &mut work.opens[i];
        let id = o.summary.id.clone();
        let turn = o.summary.turns;
        let ix = o.state.step;
        o.state.step += 1;
        let mut spawns = Vec::new();
        let mut tool_calls = Vec::with_capacity(r.tool_calls.len());
        for u in &r.tool_calls {
            tool_calls.push(StepToolCall {
                call: ToolCallInfo {
                    input_preview: cut(&u.info.input_preview, INPUT_CHARS),
                    ..u.info.clone()
                },
                result_preview: None,
                is_error: false,
                linked_conversation_id: None,
            });
            if !u.info.id.is_empty() {
                o.state.open.push_back(OpenTool {
                    id: u.info.id.clone(),
                    turn,
                    step: ix,
                });
            }
            if let Some(p) = u.spawn_prompt.as_deref() {
                spawns.push(Spawn {
                    hash: state::hash_text(&scaffold::normalise(p)),
                    parent: id.clone(),
                    turn,
                    step: ix,
                    tool: u.info.id.clone(),
                });
            }
        }
        while o.state.open.len() > MAX_OPEN_TOOLS {
            o.state.open.pop_front();
        }
        let step = Step {
            call_id: c.call_id,
            text: cut(&r.text, MAX_TEXT_CHARS),
            thinking_preview: cut(&r.thinking, THINKING_CHARS),
            tool_calls,
        };
        o.last_step = Some((turn, ix, step.clone()));
        work.w.steps.push((id, turn, ix, step));
        if !spawns.is_empty() {
            let li = self.find_links(work, main_id)?;
            let (_, links, dirty) = &mut work.links[li];
            links.spawns.extend(spawns);
            while links.spawns.len() > MAX_SPAWNS {
                links.spawns.pop_front();
            }
            *dirty = true;
        }
        Ok(())
    }

    /// Fills the waiting tool call `r` answers; links the child session it names (opencode).
    fn attach_result(
        &mut self,
        c: &CallInput,
        work: &mut Work,
        i: usize,
        r: &ToolResult,
    ) -> Result<(), StoreError> {
        let o = &mut work.opens[i];
        let Some(at) = o.state.open.iter().position(|t| t.id == r.tool_use_id) else {
            return Ok(());
        };
        let Some(waiting) = o.state.open.remove(at) else {
            return Ok(());
        };
        o.dirty = true;
        let child = r
            .child_session
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| conversation_id(c.client, &cut(s, MAX_SESSION_CHARS)));
        let preview = cut(&r.preview, RESULT_CHARS);
        self.patch_step(work, i, waiting.turn, waiting.step, |s| {
            if let Some(tc) = s.tool_calls.iter_mut().find(|t| t.call.id == r.tool_use_id) {
                tc.result_preview = Some(preview);
                tc.is_error = r.is_error;
                if let Some(child) = &child {
                    tc.linked_conversation_id = Some(child.clone());
                }
            }
        })?;
        if let Some(child) = child {
            self.link_child(work, i, &child, &r.tool_use_id)?;
        }
        Ok(())
    }

    /// Gives child conversation `child` its parent (conversation `i`, tool call `tool`), now
    /// or, when none of its calls was seen yet, when it starts.
    fn link_child(
        &mut self,
        work: &mut Work,
        i: usize,
        child: &str,
        tool: &str,
    ) -> Result<(), StoreError> {
        let parent = work.opens[i].summary.id.clone();
        if child == parent {
            return Ok(());
        }
        work.w.children.push((parent.clone(), child.to_string()));
        match self.find_open(work, child)? {
            Some(j) => {
                let o = &mut work.opens[j];
                if o.summary.parent_id.is_none() {
                    o.summary.parent_id = Some(parent);
                    o.summary.parent_tool_call_id = Some(tool.to_string());
                    o.dirty = true;
                    work.out.changed_child = Some(o.summary.clone());
                }
            }
            None => {
                self.pending_children
                    .put(child.to_string(), (parent, tool.to_string()));
            }
        }
        Ok(())
    }

    /// Links new subagent conversation `i` to the tool call that spawned it, both ways.
    fn link_spawn(&mut self, work: &mut Work, i: usize, spawn: Spawn) -> Result<(), StoreError> {
        let o = &mut work.opens[i];
        if o.summary.parent_id.is_some() {
            return Ok(());
        }
        let child = o.summary.id.clone();
        o.summary.parent_id = Some(spawn.parent.clone());
        o.summary.parent_tool_call_id = Some(spawn.tool.clone());
        o.dirty = true;
        work.w.children.push((spawn.parent.clone(), child.clone()));
        if let Some(p) = self.find_open(work, &spawn.parent)? {
            self.patch_step(work, p, spawn.turn, spawn.step, |s| {
                if let Some(tc) = s.tool_calls.iter_mut().find(|t| t.call.id == spawn.tool) {
                    tc.linked_conversation_id = Some(child.clone());
                }
            })?;
            work.out.changed_parent = Some(work.opens[p].summary.clone());
        }
        Ok(())
    }

    /// Changes step (`turn`, `step`) of conversation `i` with `f` and queues it for writing:
    /// from this call's queue, the cached latest step, or the store.
    fn patch_step(
        &mut self,
        work: &mut Work,
        i: usize,
        turn: u32,
        step: u32,
        f: impl FnOnce(&mut Step),
    ) -> Result<(), StoreError> {
        let id = work.opens[i].summary.id.clone();
        let queued = work
            .w
            .steps
            .iter_mut()
            .find(|(cid, t, s, _)| *cid == id && *t == turn && *s == step);
        if let Some(entry) = queued {
            f(&mut entry.3);
            let patched = entry.3.clone();
            keep_latest(&mut work.opens[i].last_step, turn, step, patched);
            return Ok(());
        }
        let cached = match &work.opens[i].last_step {
            Some((t, s, st)) if *t == turn && *s == step => Some(st.clone()),
            _ => None,
        };
        let current = match cached {
            Some(st) => Some(st),
            None => self.store.get_conversation_step(&id, turn, step)?,
        };
        let Some(mut st) = current else {
            return Ok(());
        };
        f(&mut st);
        keep_latest(&mut work.opens[i].last_step, turn, step, st.clone());
        work.w.steps.push((id, turn, step, st));
        Ok(())
    }
}

/// Replaces the cached latest step when it is the one patched.
fn keep_latest(latest: &mut Option<(u32, u32, Step)>, turn: u32, step: u32, patched: Step) {
    if let Some((t, s, st)) = latest
        && *t == turn
        && *s == step
    {
        *st = patched;
    }
}

/// Starts turn `turns + 1` of conversation `i` at `prompt`; a turn started earlier in the
/// same call is queued for writing first.
fn begin_turn(work: &mut Work, i: usize, prompt: &str, hash: u64, ts: &str) {
    let o = &mut work.opens[i];
    if o.head_is_new
        && let Some(h) = o.head.take()
    {
        work.w.turns.push((o.summary.id.clone(), h));
    }
    o.summary.turns += 1;
    o.head = Some(TurnHead {
        number: o.summary.turns,
        user_prompt: cut(prompt, MAX_PROMPT_CHARS),
        started_at: ts.to_string(),
        ended_at: ts.to_string(),
    });
    o.head_is_new = true;
    o.state.step = 0;
    o.state.prompt = hash;
    if o.summary.title.is_empty() && !prompt.is_empty() {
        o.summary.title = cut(prompt, TITLE_CHARS);
    }
    o.dirty = true;
}

/// Incomplete when the call failed or was cut, in progress when it ended with tool calls,
/// answered otherwise.
fn status(c: &CallInput) -> ConversationStatus {
    let r = &c.dissected.response;
    if c.error.is_some() || r.error.is_some() || !r.complete {
        ConversationStatus::Incomplete
    } else if !r.tool_calls.is_empty() {
        ConversationStatus::InProgress
    } else {
        ConversationStatus::Answered
    }
}
