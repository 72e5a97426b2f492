//! Keys of an opened conversation: moving through its entries (through a tall one line by
//! line), turn by turn, back down the stack, into a subagent, and to the HTTP transaction of
//! a step (its call → `list_llm_calls` → `transaction_id` → the activity detail, from which
//! going back returns to the conversation).

use greyproxy_protocol::command::{ListLlmCallsArgs, TransactionIdArgs};
use greyproxy_protocol::llm::LlmCall;
use greyproxy_protocol::{ActivityItem, Command, Reply, Transaction};
use serde::Deserialize;

use super::conversation::reflow;
use super::detail::Detail;
use super::{App, Effect, Tag, View, send};
use crate::keymap::Action;

/// The reply to `list_llm_calls`.
#[derive(Debug, Deserialize)]
struct Calls {
    calls: Vec<LlmCall>,
}

impl App {
    /// Keys of the conversation detail.
    pub(super) fn conversation_act(&mut self, a: Action) -> Vec<Effect> {
        let (rows, width) = (self.doc_rows(), self.doc_width());
        let half = (rows / 2).max(1) as isize;
        let Some(d) = self.conversations.stack.last_mut() else {
            return Vec::new();
        };
        let host = d.host;
        match a {
            Action::Down => d.down(rows),
            Action::Up => d.up(rows),
            Action::PageDown => d.page(half, rows),
            Action::PageUp => d.page(-half, rows),
            Action::Top => {
                d.selected = 0;
                d.scroll = 0;
            }
            Action::Bottom => {
                d.selected = d.doc.entries().saturating_sub(1);
                d.scroll = d.doc.lines().saturating_sub(rows);
            }
            Action::NextTurn | Action::PrevTurn => {
                let cur = d.doc.turn_of(d.selected).unwrap_or(0);
                let on_prompt = d.doc.turn(cur).is_some_and(|(e, _)| e == d.selected);
                let n = match a {
                    Action::NextTurn => cur + 1,
                    _ if on_prompt => cur.saturating_sub(1),
                    _ => cur,
                };
                if !d.go_turn(n.max(1), rows) {
                    self.say("no more turns", false);
                }
            }
            Action::Open => {
                let link = d.doc.entry(d.selected).and_then(|e| e.link.clone());
                return match link {
                    // A subagent runs on the host of its parent.
                    Some(id) => self.conversation_open(host, id, None, None),
                    None => {
                        self.say(
                            "no subagent here: enter opens a tool call that spawned one",
                            true,
                        );
                        Vec::new()
                    }
                };
            }
            Action::ToTransaction => {
                let call = d.doc.entry(d.selected).and_then(|e| e.call_id);
                let id = d.id.clone();
                return match call {
                    Some(call) => {
                        let args = ListLlmCallsArgs {
                            conversation_id: Some(id),
                            before_id: Some(call + 1),
                            limit: Some(1),
                            ..ListLlmCallsArgs::default()
                        };
                        let cmd = Command::ListLlmCalls(args);
                        vec![self.send_on(host, Tag::LlmCall(call), cmd)]
                    }
                    None => {
                        self.say("select a prompt or a step: t opens its transaction", true);
                        Vec::new()
                    }
                };
            }
            Action::Back => {
                let closed = self.conversations.stack.pop();
                if let Some(v) = closed.and_then(|c| c.origin) {
                    self.view = v;
                }
                if let Some(d) = self.conversations.stack.last_mut() {
                    reflow(d, width, rows);
                }
                return self.conversation_tick();
            }
            _ => {}
        }
        Vec::new()
    }

    /// The answer to the `list_llm_calls` of `t` (from host `self.route`, the conversation's):
    /// the call's transaction opens in the activity detail, asked of that host; going back
    /// from it returns to the conversation.
    pub(super) fn llm_call_found(
        &mut self,
        call_id: u64,
        outcome: Result<Reply, String>,
    ) -> Vec<Effect> {
        let call = match outcome.and_then(super::daemon::data::<Calls>) {
            Ok(c) => c.calls.into_iter().find(|c| c.id == call_id),
            Err(e) => {
                self.say(format!("call {call_id}: {e}"), true);
                return Vec::new();
            }
        };
        let Some(c) = call else {
            self.say(format!("call {call_id} is no longer stored"), true);
            return Vec::new();
        };
        let id = c.transaction_id;
        // What the call says about its exchange, until `get_transaction` answers.
        let t = Transaction {
            id,
            timestamp: c.timestamp.clone(),
            container_name: c.container_name.clone(),
            destination_host: c.host.clone(),
            destination_port: 443,
            method: "POST".into(),
            url: format!("https://{}/", c.host),
            status_code: c.status_code,
            duration_ms: c.duration_ms,
            ..Transaction::default()
        };
        self.activity.detail = Some(Detail {
            host: self.route,
            item: ActivityItem::Transaction(t),
            full: None,
            scroll: 0,
            ws: None,
        });
        self.conversations.back_to = Some(id);
        self.view = View::Activity;
        let args = TransactionIdArgs { transaction_id: id };
        vec![send(Tag::Transaction(id), Command::GetTransaction(args))]
    }

    /// Back from an activity detail: when it was opened from a conversation, back there.
    /// Returns whether it was.
    pub(super) fn back_to_conversation(&mut self) -> bool {
        let Some(id) = self.conversations.back_to.take() else {
            return false;
        };
        let from_conv = self
            .activity
            .detail
            .as_ref()
            .is_some_and(|d| super::lists::item_key(&d.item) == ("transaction", id));
        if from_conv {
            self.activity.detail = None;
            self.view = View::Conversations;
        }
        from_conv
    }
}
