//! The state of the activity detail: the row being shown, what `get_transaction` answered and,
//! for a WebSocket upgrade, the list of its messages (one of which may be open in a detail of
//! its own). The two types refer to each other, so they live together.

use std::collections::{BTreeMap, BTreeSet};

use greyproxy_protocol::{ActivityItem, Transaction};

use super::hosted::HostId;
use super::listed::Nav;

/// The detail of one activity row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Detail {
    /// The host the row came from: what the detail asks for goes there.
    pub(crate) host: HostId,
    /// The row as listed.
    pub(crate) item: ActivityItem,
    /// For a transaction: what `get_transaction` answered (any JSON: it is rendered as a
    /// transaction when it decodes as one, as pretty JSON otherwise), or its error.
    pub(crate) full: Option<Result<serde_json::Value, String>>,
    /// Lines scrolled.
    pub(crate) scroll: u16,
    /// For a WebSocket upgrade: its messages.
    pub(crate) ws: Option<WsMessages>,
}

/// Whether a transaction is a WebSocket upgrade (the 101 row, not one of its messages).
pub(crate) fn is_upgrade(t: &Transaction) -> bool {
    t.upgrade_id.is_none()
        && (t.ws_extensions.is_some()
            || t.ws_messages.is_some()
            || (t.status_code == Some(101) && t.method.eq_ignore_ascii_case("GET")))
}

/// The message list of an upgrade's detail.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct WsMessages {
    /// Messages in connection order (`message_index`).
    pub(crate) items: Vec<Transaction>,
    /// The list was requested and not answered yet.
    pub(crate) loading: bool,
    /// Why the list could not be loaded.
    pub(crate) error: Option<String>,
    /// Selection.
    pub(crate) nav: Nav,
    /// First line of the payloads fetched so far, by message id.
    pub(crate) previews: BTreeMap<u64, String>,
    /// Messages whose payload was asked for.
    pub(crate) requested: BTreeSet<u64>,
    /// The message opened with Enter.
    pub(crate) open: Option<Box<Detail>>,
    /// The upgrade's own request and response (`h`) are shown instead of the messages.
    pub(crate) headers: bool,
}

impl WsMessages {
    /// Adds a live message unless already listed; keeps connection order and the selection.
    pub(crate) fn push(&mut self, t: Transaction) -> bool {
        if self.items.iter().any(|m| m.id == t.id) {
            return false;
        }
        let at = self
            .items
            .iter()
            .position(|m| order(m) > order(&t))
            .unwrap_or(self.items.len());
        self.items.insert(at, t);
        if at <= self.nav.selected && self.items.len() > 1 {
            self.nav.selected += 1;
        }
        true
    }
}

/// Connection order of a message: by index, then by id.
pub(crate) fn order(t: &Transaction) -> (u64, u64) {
    (t.message_index.unwrap_or(u64::MAX), t.id)
}

/// The first line of a fetched message's payload (binary shown as its base64).
pub(crate) fn first_line(t: &Transaction) -> String {
    let body = t.request_body.as_deref().unwrap_or("");
    let line = body.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let line: String = line.trim().chars().take(400).collect();
    match (t.request_body_encoding.as_deref(), body.is_empty()) {
        (_, true) => "(empty)".into(),
        (Some("base64"), _) => format!("base64 {line}"),
        _ => line,
    }
}
