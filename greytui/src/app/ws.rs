//! The messages of a WebSocket upgrade shown in its activity detail: the list comes from
//! `list_activity` filtered by `upgrade_id`, the rows carry no payloads, so the first line of
//! each visible message is fetched with `get_transaction` (only the rows on screen, once), and
//! Enter opens one message in the ordinary transaction detail.

use greyproxy_protocol::command::{ListArgs, TransactionIdArgs};
use greyproxy_protocol::{ActivityItem, Command, Page, Reply, Transaction};

use super::detail::{Detail, WsMessages, first_line, order};
use super::{App, Effect, Tag, send};
use crate::layout;

/// Most messages listed for one upgrade (the daemon's page limit).
pub(super) const WS_LIMIT: u32 = 1000;

fn get(tag: Tag, id: u64) -> Effect {
    send(
        tag,
        Command::GetTransaction(TransactionIdArgs { transaction_id: id }),
    )
}

impl App {
    /// Visible rows of the message list of an upgrade detail.
    pub(crate) fn ws_rows(&self) -> usize {
        layout::ws_rows(self.size.1)
    }

    /// The message list of the open detail, when it shows an upgrade.
    fn ws_mut(&mut self) -> Option<&mut WsMessages> {
        self.activity.detail.as_mut().and_then(|d| d.ws.as_mut())
    }

    /// On opening an upgrade's detail: asks for its messages.
    pub(super) fn ws_list(upgrade_id: u64) -> Effect {
        let args = ListArgs {
            upgrade_id: Some(upgrade_id),
            kind: Some("transaction".into()),
            limit: Some(WS_LIMIT),
            ..ListArgs::default()
        };
        send(Tag::WsMessages(upgrade_id), Command::ListActivity(args))
    }

    /// Asks for the payloads of the visible messages not asked for yet.
    fn ws_previews(&mut self) -> Vec<Effect> {
        let rows = self.ws_rows();
        let Some(ws) = self.ws_mut() else {
            return Vec::new();
        };
        let start = ws.nav.offset.min(ws.items.len());
        let end = (start + rows).min(ws.items.len());
        let mut fx = Vec::new();
        for m in &ws.items[start..end] {
            if ws.requested.insert(m.id) {
                fx.push(get(Tag::WsBody(m.id), m.id));
            }
        }
        fx
    }

    /// Moves the message selection (or scrolls an open message). `None` when the detail has no
    /// message list.
    pub(super) fn ws_step(&mut self, delta: isize) -> Option<Vec<Effect>> {
        let rows = self.ws_rows();
        let ws = self.ws_mut()?;
        if ws.headers {
            return None; // the upgrade's own detail scrolls as any other
        }
        if let Some(o) = &mut ws.open {
            let delta = delta.clamp(-10_000, 10_000) as i32;
            o.scroll = (o.scroll as i32 + delta).clamp(0, u16::MAX as i32) as u16;
            return Some(Vec::new());
        }
        ws.nav.step(delta, ws.items.len(), rows);
        Some(self.ws_previews())
    }

    /// Enter in an upgrade's detail: opens the selected message.
    pub(super) fn ws_open(&mut self) -> Vec<Effect> {
        let Some(ws) = self.ws_mut() else {
            return Vec::new();
        };
        let Some(m) = ws.items.get(ws.nav.selected).cloned() else {
            self.say("no message selected", true);
            return Vec::new();
        };
        let id = m.id;
        let host = self.activity.detail.as_ref().map_or(self.focus, |d| d.host);
        let Some(ws) = self.ws_mut() else {
            return Vec::new();
        };
        ws.open = Some(Box::new(Detail {
            host,
            item: ActivityItem::Transaction(m),
            full: None,
            scroll: 0,
            ws: None,
        }));
        vec![get(Tag::WsBody(id), id)]
    }

    /// Back in an upgrade's detail: closes an open message or the upgrade's headers. Returns
    /// whether one was open.
    pub(super) fn ws_close(&mut self) -> bool {
        match self.ws_mut() {
            Some(ws) if ws.headers => {
                ws.headers = false;
                true
            }
            Some(ws) => ws.open.take().is_some(),
            None => false,
        }
    }

    /// `h` in an upgrade's detail: its own headers, or back to its messages.
    pub(super) fn ws_toggle_headers(&mut self) {
        if let Some(ws) = self.ws_mut() {
            ws.open = None;
            ws.headers = !ws.headers;
        }
    }

    /// A live message row: listed when it belongs to the upgrade being shown.
    pub(super) fn ws_live(&mut self, t: &Transaction) -> Vec<Effect> {
        let rows = self.ws_rows();
        let Some(up) = t.upgrade_id else {
            return Vec::new();
        };
        let shown = match &self.activity.detail {
            Some(Detail {
                host,
                item: ActivityItem::Transaction(u),
                ws: Some(_),
                ..
            }) => u.id == up && *host == self.route,
            _ => false,
        };
        if !shown {
            return Vec::new();
        }
        if let Some(ws) = self.ws_mut()
            && !ws.loading
            && ws.push(t.clone())
        {
            let n = ws.items.len();
            ws.nav.clamp(n, rows);
            return self.ws_previews();
        }
        Vec::new()
    }

    /// The answer to the message list of upgrade `upgrade_id`.
    pub(super) fn ws_listed(
        &mut self,
        upgrade_id: u64,
        outcome: Result<Reply, String>,
    ) -> Vec<Effect> {
        let rows = self.ws_rows();
        let Some(d) = &mut self.activity.detail else {
            return Vec::new();
        };
        let (ActivityItem::Transaction(u), Some(ws)) = (&d.item, &mut d.ws) else {
            return Vec::new();
        };
        if u.id != upgrade_id {
            return Vec::new();
        }
        ws.loading = false;
        match outcome.and_then(super::daemon::data::<Page<ActivityItem>>) {
            Ok(page) => {
                let mut items: Vec<Transaction> = page
                    .items
                    .into_iter()
                    .filter_map(|i| match i {
                        ActivityItem::Transaction(t) if t.upgrade_id == Some(upgrade_id) => Some(t),
                        _ => None,
                    })
                    .collect();
                // Live rows that arrived while loading are in the page too.
                items.sort_by_key(order);
                items.dedup_by_key(|t| t.id);
                ws.items = items;
                ws.error = None;
                let n = ws.items.len();
                ws.nav.clamp(n, rows);
            }
            Err(e) => ws.error = Some(e),
        }
        self.ws_previews()
    }

    /// The answer to `get_transaction` of one message: its preview and, when it is the open
    /// message, its detail.
    pub(super) fn ws_body(&mut self, id: u64, outcome: Result<Reply, String>) {
        let Some(ws) = self.ws_mut() else {
            return;
        };
        let value = outcome.and_then(|r| match r {
            Reply::Result { data, .. } => Ok(data),
            other => Err(format!("unexpected reply {other:?}")),
        });
        let preview = match &value {
            Ok(v) => match serde_json::from_value::<Transaction>(v.clone()) {
                Ok(t) => first_line(&t),
                Err(e) => format!("(unexpected record: {e})"),
            },
            Err(e) => format!("(cannot load: {e})"),
        };
        ws.previews.insert(id, preview);
        if let Some(o) = &mut ws.open
            && super::lists::item_key(&o.item) == ("transaction", id)
        {
            o.full = Some(value);
        }
    }
}
