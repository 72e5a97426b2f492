//! One opened conversation (`get_conversation`) and the stack of them: `Enter` on a tool call
//! that spawned a subagent opens that conversation above its parent, `q`/`Esc`/`Backspace`
//! goes back down (the keys are in `conversation_keys`). The selection moves between the
//! entries of the [`Transcript`] (prompt, text, thinking, tool call); an entry taller than the
//! screen is scrolled through line by line first, so nothing is cut without a way to read it.
//!
//! A `conversation.updated` for the shown conversation fetches it again, at most every
//! [`REFRESH`]; the turns that did not change keep their layout, and a selection on the last
//! entry stays on the last entry (the conversation is followed as it grows).

use std::time::{Duration, SystemTime};

use greyproxy_protocol::command::ConversationIdArgs;
use greyproxy_protocol::llm::{Conversation, LlmContext};
use greyproxy_protocol::{Command, Reply};

use super::hosted::HostId;
use super::{App, Effect, Tag, View};
use crate::layout;
use crate::transcript::Transcript;

/// Shortest time between two fetches of the open conversation while it changes.
pub(crate) const REFRESH: Duration = Duration::from_secs(2);

/// Slack for the once-a-second clock.
const TICK_SLACK: Duration = Duration::from_millis(250);

/// Where the selection goes once a conversation opened "at" something arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// The turn.
    pub(crate) turn: u32,
    /// The call and the tool name of the call that asked (the why of a held request).
    pub(crate) call: Option<(u64, String)>,
}

/// One opened conversation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ConvDetail {
    /// The host that holds it (asked for it and for its calls).
    pub(crate) host: HostId,
    /// Its id.
    pub(crate) id: String,
    /// As last fetched.
    pub(crate) conv: Option<Conversation>,
    /// Its layout at the current width.
    pub(crate) doc: Transcript,
    /// Why it could not be fetched.
    pub(crate) error: Option<String>,
    /// A fetch is in flight.
    pub(crate) loading: bool,
    /// Selected entry.
    pub(crate) selected: usize,
    /// First line on screen.
    pub(crate) scroll: usize,
    /// Where to put the selection when it arrives.
    pub(crate) target: Option<Target>,
    /// It changed since the last fetch.
    pub(crate) stale: bool,
    /// When the last fetch was sent.
    pub(crate) asked_at: Option<SystemTime>,
    /// The view to go back to when it closes (opened from the Pending view).
    pub(crate) origin: Option<View>,
}

impl ConvDetail {
    fn new(host: HostId, id: String, target: Option<Target>, origin: Option<View>) -> ConvDetail {
        ConvDetail {
            host,
            id,
            conv: None,
            doc: Transcript::default(),
            error: None,
            loading: false,
            selected: 0,
            scroll: 0,
            target,
            stale: false,
            asked_at: None,
            origin,
        }
    }

    /// Scrolls so that lines `[start, end)` are on screen (their start first when they do
    /// not fit).
    pub(super) fn reveal(&mut self, start: usize, end: usize, rows: usize) {
        if end > self.scroll + rows {
            self.scroll = end.saturating_sub(rows);
        }
        if start < self.scroll {
            self.scroll = start;
        }
        self.clamp(rows);
    }

    pub(super) fn clamp(&mut self, rows: usize) {
        self.selected = self.selected.min(self.doc.entries().saturating_sub(1));
        self.scroll = self.scroll.min(self.doc.lines().saturating_sub(rows));
    }

    /// `j`: through a tall entry line by line, then to the next entry.
    pub(super) fn down(&mut self, rows: usize) {
        let Some(cur) = self.doc.span(self.selected) else {
            return;
        };
        if cur.end() > self.scroll + rows {
            self.scroll += 1;
        } else if let Some(next) = self.doc.span(self.selected + 1) {
            self.selected += 1;
            self.reveal(next.start, next.end(), rows);
        }
        self.clamp(rows);
    }

    /// `k`: back through a tall entry line by line, then to the previous entry.
    pub(super) fn up(&mut self, rows: usize) {
        let Some(cur) = self.doc.span(self.selected) else {
            return;
        };
        if cur.start < self.scroll {
            self.scroll -= 1;
        } else if let Some(prev) = self.selected.checked_sub(1).and_then(|p| self.doc.span(p)) {
            self.selected -= 1;
            // Its end, next to where the reader is, comes into view first.
            let start = prev.start.max(prev.end().saturating_sub(rows));
            self.reveal(start, prev.end(), rows);
        } else {
            self.scroll = 0; // the header above the first entry
        }
        self.clamp(rows);
    }

    /// `ctrl-d`/`ctrl-u`, `g`/`G`: scrolls by `delta` lines; the selection moves to the first
    /// entry on screen when it left it.
    pub(super) fn page(&mut self, delta: isize, rows: usize) {
        let max = self.doc.lines().saturating_sub(rows);
        self.scroll = self.scroll.saturating_add_signed(delta).min(max);
        let on_screen = self
            .doc
            .span(self.selected)
            .is_some_and(|s| s.end() > self.scroll && s.start < self.scroll + rows);
        if !on_screen && let Some(e) = self.doc.entry_at_or_after(self.scroll) {
            self.selected = e;
        }
        if self.scroll == max && delta > 0 {
            self.selected = self.doc.entries().saturating_sub(1);
        }
        self.clamp(rows);
    }

    /// Selects the prompt of turn `n` with its heading at the top of the screen.
    pub(super) fn go_turn(&mut self, n: u32, rows: usize) -> bool {
        match self.doc.turn(n) {
            Some((e, heading)) => {
                self.selected = e;
                self.scroll = heading;
                self.clamp(rows);
                true
            }
            None => false,
        }
    }
}

impl App {
    /// Lines of the conversation detail on screen: the body without a table header.
    pub(crate) fn doc_rows(&self) -> usize {
        layout::list_rows(self.size.1) + 1
    }

    /// Columns of transcript text (one column of gutter for the selection, one of margin).
    pub(crate) fn doc_width(&self) -> usize {
        (self.size.0 as usize).saturating_sub(2)
    }

    fn get_conversation(&mut self) -> Vec<Effect> {
        let now = self.now;
        let host = match self.conversations.stack.last() {
            Some(d) => d.host,
            None => return Vec::new(),
        };
        let connected = self.host_connected(host);
        let Some(d) = self.conversations.stack.last_mut() else {
            return Vec::new();
        };
        if d.loading || !connected {
            return Vec::new();
        }
        d.loading = true;
        d.stale = false;
        d.asked_at = Some(now);
        let args = ConversationIdArgs {
            conversation_id: d.id.clone(),
        };
        let tag = Tag::Conversation(d.id.clone());
        vec![self.send_on(host, tag, Command::GetConversation(args))]
    }

    /// Opens conversation `id` of `host` above the current one (or as the first), in the
    /// Conversations view; it is asked of that host.
    pub(super) fn conversation_open(
        &mut self,
        host: HostId,
        id: String,
        target: Option<Target>,
        origin: Option<View>,
    ) -> Vec<Effect> {
        self.view = View::Conversations;
        self.conversations
            .stack
            .push(ConvDetail::new(host, id, target, origin));
        let mut fx = self.conversations_opened();
        fx.extend(self.get_conversation());
        fx
    }

    /// The "why" of a held request of `host`: its conversation (on that host) at its turn, the
    /// tool call selected.
    pub(super) fn why_open(&mut self, host: HostId, ctx: &LlmContext) -> Vec<Effect> {
        let from = self.view;
        // A new question: the conversations opened before are closed.
        self.conversations.stack.clear();
        let target = Target {
            turn: ctx.turn,
            call: Some((ctx.call_id, ctx.tool.clone())),
        };
        self.conversation_open(host, ctx.conversation_id.clone(), Some(target), Some(from))
    }

    /// Fetches the open conversation again (resync).
    pub(super) fn conversation_refetch(&mut self) -> Vec<Effect> {
        if let Some(d) = self.conversations.stack.last_mut() {
            d.loading = false;
        }
        self.get_conversation()
    }

    /// Conversation `id` of `host` changed: the shown one is fetched again (at most every
    /// [`REFRESH`]), the ones below it when they are shown again.
    pub(super) fn conversation_changed(&mut self, host: HostId, id: &str) -> Vec<Effect> {
        let mut top = false;
        let n = self.conversations.stack.len();
        for (i, d) in self.conversations.stack.iter_mut().enumerate() {
            if d.host == host && d.id == id {
                d.stale = true;
                top |= i + 1 == n;
            }
        }
        if top {
            self.conversation_tick()
        } else {
            Vec::new()
        }
    }

    /// On the clock (and on changes): fetch the shown conversation when it is stale and the
    /// last fetch is old enough.
    pub(super) fn conversation_tick(&mut self) -> Vec<Effect> {
        let now = self.now;
        let due = match self.conversations.stack.last() {
            Some(d) if d.stale && !d.loading && self.view == View::Conversations => {
                d.asked_at.is_none_or(|at| {
                    now.duration_since(at).unwrap_or_default() + TICK_SLACK >= REFRESH
                })
            }
            _ => false,
        };
        if due {
            self.get_conversation()
        } else {
            Vec::new()
        }
    }

    /// The answer to `get_conversation` from host `self.route`.
    pub(super) fn conversation_loaded(&mut self, id: &str, outcome: Result<Reply, String>) {
        let (rows, width) = (self.doc_rows(), self.doc_width());
        let Some(d) = self.conversations.stack.last_mut() else {
            return;
        };
        if d.id != id || d.host != self.route {
            return; // closed meanwhile
        }
        d.loading = false;
        let conv = match outcome.and_then(conversation_of) {
            Ok(c) => c,
            Err(e) => {
                d.error = Some(e);
                return;
            }
        };
        d.error = None;
        let at_end = d.conv.is_some()
            && d.selected + 1 >= d.doc.entries()
            && d.scroll + rows >= d.doc.lines();
        let old = d.conv.take();
        let prev = old.as_ref().map(|o| (o, std::mem::take(&mut d.doc)));
        d.doc = Transcript::build(&conv, width, prev);
        d.conv = Some(conv);
        if let Some(t) = d.target.take() {
            let call = t.call.and_then(|(c, tool)| d.doc.find_call(c, &tool));
            if d.go_turn(t.turn, rows)
                && let Some(e) = call
                && let Some(s) = d.doc.span(e)
            {
                d.selected = e;
                d.reveal(s.start, s.end(), rows);
            }
        } else if at_end {
            d.selected = d.doc.entries().saturating_sub(1);
            d.scroll = d.doc.lines().saturating_sub(rows);
        }
        d.clamp(rows);
    }

    /// After a resize: the shown conversation is laid out again at the new width.
    pub(super) fn conversation_reflow(&mut self) {
        let (rows, width) = (self.doc_rows(), self.doc_width());
        if let Some(d) = self.conversations.stack.last_mut() {
            reflow(d, width, rows);
        }
    }
}

/// Reads `get_conversation`'s answer.
fn conversation_of(r: Reply) -> Result<Conversation, String> {
    let v: serde_json::Value = super::daemon::data(r)?;
    serde_json::from_value(v).map_err(|e| format!("unexpected result: {e}"))
}

/// Lays `d` out again when the width changed.
pub(super) fn reflow(d: &mut ConvDetail, width: usize, rows: usize) {
    if let Some(c) = &d.conv
        && d.doc.width() != width.max(20)
    {
        d.doc = Transcript::build(c, width, None);
        if let Some(s) = d.doc.span(d.selected) {
            d.reveal(s.start, s.end(), rows);
        }
    }
    d.clamp(rows);
}
