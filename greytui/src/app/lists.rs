//! The lists the dashboard shows: the identity of pending requests, rules and middlewares
//! (their `Listed` does the rest), the middlewares' freshness and the activity window. Pure
//! data: the [`super::App`] decides when to fetch pages.
//!
//! The activity window itself lives in `super::activity`; the helpers reading an activity row
//! (identity, kind, container, decision, time) live here.

use std::time::SystemTime;

use greyproxy_protocol::middleware::MiddlewareStatus;
use greyproxy_protocol::{ActivityItem, Decision, PendingRequest, Rule, TransactionResult};

use super::listed::{Keyed, Listed};

/// Most activity rows kept in memory (a page more while scrolling); rows beyond it are dropped
/// and fetched again from the daemon when scrolled back to.
pub(crate) const MAX_ACTIVITY: usize = 10_000;

/// Rows fetched per activity page.
pub(crate) const ACTIVITY_PAGE: u32 = 500;

/// Fetch the next page when the selection is this close to the end of the window.
pub(crate) const PREFETCH_MARGIN: usize = 100;

impl Keyed for PendingRequest {
    type Key = u64;
    fn key(&self) -> u64 {
        self.id
    }
}

impl Keyed for Rule {
    type Key = u64;
    fn key(&self) -> u64 {
        self.id
    }
}

/// The Middlewares view's list and what is known about its freshness.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Middlewares {
    /// As the daemon listed them, in configuration order, and the selection (its details are
    /// shown under the table).
    pub(crate) list: Listed<MiddlewareStatus>,
    /// A list arrived at least once.
    pub(crate) loaded: bool,
    /// A `list_middlewares` is in flight.
    pub(crate) in_flight: bool,
    /// When the last one was sent.
    pub(crate) asked_at: Option<SystemTime>,
    /// The error of the last attempt, if it failed.
    pub(crate) error: Option<String>,
}

/// A middleware is known by its endpoint: its name comes with its hello and may change.
impl Keyed for MiddlewareStatus {
    type Key = String;
    fn key(&self) -> String {
        self.url.clone()
    }
}

/// Identity of an activity row: connections and transactions are numbered separately.
pub fn item_key(item: &ActivityItem) -> (&'static str, u64) {
    match item {
        ActivityItem::Connection(r) => ("connection", r.id),
        ActivityItem::Transaction(t) => ("transaction", t.id),
        // A kind of row this build does not know (a newer daemon).
        _ => ("other", 0),
    }
}

/// Kind name of an activity item, as `list_activity`'s `kind` filter spells it.
pub(crate) fn kind_of(item: &ActivityItem) -> &'static str {
    item_key(item).0
}

/// Container name of an activity row.
pub(crate) fn container_of(item: &ActivityItem) -> &str {
    match item {
        ActivityItem::Connection(r) => &r.container_name,
        ActivityItem::Transaction(t) => &t.container_name,
        _ => "",
    }
}

/// Whether a row counts as allowed or blocked for the `result` filter: transactions answered
/// by a deny rule count as blocked, every other recorded exchange as allowed.
pub(crate) fn decision_of(item: &ActivityItem) -> Decision {
    match item {
        ActivityItem::Connection(r) => r.result,
        ActivityItem::Transaction(t) if t.result == TransactionResult::Denied => Decision::Blocked,
        ActivityItem::Transaction(_) => Decision::Allowed,
        _ => Decision::Allowed,
    }
}

/// The timestamp of an activity row (RFC 3339).
pub(crate) fn time_of(item: &ActivityItem) -> &str {
    match item {
        ActivityItem::Connection(r) => &r.timestamp,
        ActivityItem::Transaction(t) => &t.timestamp,
        _ => "",
    }
}

pub use super::activity::{Activity, ActivityFilter, NextPage};
