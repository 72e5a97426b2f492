//! The lists the dashboard shows: the identity of pending requests, rules and middlewares
//! (their `Listed` does the rest), the middlewares' freshness and the activity window. Pure
//! data: the [`super::App`] decides when to fetch pages.
//!
//! The activity list is a bounded window of the daemon's feed: the first page, the pages the
//! operator scrolled to, and live rows prepended as they arrive. Rendering looks at the visible
//! rows only, so its cost does not grow with the window.

use std::collections::VecDeque;
use std::time::SystemTime;

use greyproxy_protocol::middleware::MiddlewareStatus;
use greyproxy_protocol::{ActivityItem, Decision, PendingRequest, Rule, TransactionResult};

use super::detail::Detail;
use super::listed::{Keyed, Listed, Nav};

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

/// Where the next (older) page of the feed starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NextPage {
    /// The daemon's `next_cursor` (opaque).
    pub(crate) cursor: Option<String>,
    /// After the window was trimmed: rows before this time (RFC 3339). The daemon's cursors are
    /// opaque, so the page below a trimmed window is asked for by time, and rows already shown
    /// (the same second) are skipped by id.
    pub(crate) until: Option<String>,
}

/// Filters of the activity view; the daemon applies them to pages, `ActivityFilter::matches`
/// to live rows with the same semantics (case-insensitive substrings, exact result and kind).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActivityFilter {
    /// Substring of the container name.
    pub(crate) container: String,
    /// Substring of the destination host or resolved hostname.
    pub(crate) destination: String,
    /// Only allowed or only blocked rows.
    pub(crate) result: Option<Decision>,
    /// Only rows of this kind (`connection`).
    pub(crate) kind: Option<String>,
}

impl ActivityFilter {
    /// Whether a live row belongs in the filtered view.
    pub(crate) fn matches(&self, item: &ActivityItem) -> bool {
        let has = |hay: &str, needle: &str| hay.to_lowercase().contains(&needle.to_lowercase());
        let destination = match item {
            ActivityItem::Connection(r) => {
                has(&r.destination_host, &self.destination)
                    || r.resolved_hostname
                        .as_deref()
                        .is_some_and(|h| has(h, &self.destination))
            }
            ActivityItem::Transaction(t) => has(&t.destination_host, &self.destination),
            _ => false,
        };
        (self.container.is_empty() || has(container_of(item), &self.container))
            && (self.destination.is_empty() || destination)
            && self.result.is_none_or(|d| d == decision_of(item))
            && self.kind.as_deref().is_none_or(|k| k == kind_of(item))
    }

    /// Whether any filter is set.
    pub fn is_active(&self) -> bool {
        *self != ActivityFilter::default()
    }

    /// A one-line description (`container~x result=blocked`), empty when none.
    pub(crate) fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.container.is_empty() {
            parts.push(format!("container~{}", self.container));
        }
        if !self.destination.is_empty() {
            parts.push(format!("destination~{}", self.destination));
        }
        if let Some(d) = self.result {
            parts.push(format!("result={}", d.as_str()));
        }
        if let Some(k) = &self.kind {
            parts.push(format!("kind={k}"));
        }
        parts.join(" ")
    }
}

/// The activity view's window of the feed.
#[derive(Debug, Clone, Default)]
pub struct Activity {
    /// Rows, newest first.
    pub items: VecDeque<ActivityItem>,
    /// Rows matching the filter in the daemon (grows with live rows).
    pub total: u64,
    /// Where the next (older) page starts, `None` at the end of the feed.
    pub next: Option<NextPage>,
    /// Current filter.
    pub filter: ActivityFilter,
    /// Bumped whenever the filter changes, so that answers to older queries are ignored.
    pub(crate) generation: u64,
    /// First page requested and not answered yet.
    pub loading: bool,
    /// Next page requested and not answered yet.
    pub loading_more: bool,
    /// Selection pinned to the newest row.
    pub(crate) follow: bool,
    /// Rows that arrived above the selection while not following.
    pub(crate) unseen: usize,
    /// Newer rows were dropped to keep the window bounded: the top must be reloaded.
    pub(crate) stale_top: bool,
    /// Selection.
    pub nav: Nav,
    /// The detail being shown.
    pub(crate) detail: Option<Detail>,
}

impl Activity {
    /// An empty window in follow mode.
    pub(crate) fn new() -> Activity {
        Activity {
            follow: true,
            ..Activity::default()
        }
    }

    /// Replaces the window with a first page.
    pub(crate) fn set_first_page(
        &mut self,
        items: Vec<ActivityItem>,
        total: u64,
        cursor: Option<String>,
    ) {
        self.items = items.into();
        self.total = total;
        self.next = cursor.map(|c| NextPage {
            cursor: Some(c),
            until: None,
        });
        self.unseen = 0;
        self.stale_top = false;
        self.nav = Nav::default();
    }

    /// Appends an older page (asked for with `asked`), skipping rows already in the window:
    /// within a kind, ids grow with time, so an older row has a smaller id than every row of
    /// its kind already shown.
    pub(crate) fn append_page(
        &mut self,
        items: Vec<ActivityItem>,
        asked: &NextPage,
        cursor: Option<String>,
    ) {
        let mut min: [Option<u64>; 2] = [None, None];
        for i in &self.items {
            let (kind, id) = item_key(i);
            let slot = &mut min[usize::from(kind == "transaction")];
            *slot = Some(slot.map_or(id, |m| m.min(id)));
        }
        self.items.extend(items.into_iter().filter(|i| {
            let (kind, id) = item_key(i);
            min[usize::from(kind == "transaction")].is_none_or(|m| id < m)
        }));
        self.next = cursor.map(|c| NextPage {
            cursor: Some(c),
            until: asked.until.clone(),
        });
        // Scrolling far down drops the newest rows (far above the selection) to stay within
        // the bound; going back to the top reloads them.
        let excess = self.items.len().saturating_sub(MAX_ACTIVITY);
        let drop = excess.min(self.nav.selected.saturating_sub(PREFETCH_MARGIN));
        if drop > 0 {
            self.items.drain(..drop);
            self.nav.selected -= drop;
            self.nav.offset = self.nav.offset.saturating_sub(drop);
            self.stale_top = true;
        }
    }

    /// Drops rows from the old end down to [`MAX_ACTIVITY`]; older pages are then asked for by
    /// time: everything up to the new last row's second (the same second's rows already shown
    /// are skipped when the page arrives).
    fn drop_oldest(&mut self) {
        self.items.truncate(MAX_ACTIVITY);
        let until = self
            .items
            .back()
            .and_then(|i| crate::format::parse_time(time_of(i)))
            .map(|t| {
                humantime::format_rfc3339_seconds(t + std::time::Duration::from_secs(1)).to_string()
            });
        self.next = until.map(|u| NextPage {
            cursor: None,
            until: Some(u),
        });
    }

    /// Prepends a live row if it matches the filter; keeps the selected row in place unless
    /// following. Returns whether the row was added.
    pub(crate) fn push_live(&mut self, item: ActivityItem, rows: usize) -> bool {
        if !self.filter.matches(&item) {
            return false;
        }
        let key = item_key(&item);
        // The first page may already hold a row whose event arrives after it.
        if self.items.iter().take(64).any(|i| item_key(i) == key) {
            return false;
        }
        self.items.push_front(item);
        self.total += 1;
        if self.follow {
            self.nav = Nav::default();
        } else {
            self.nav.selected += 1;
            self.nav.offset += 1;
            self.unseen += 1;
        }
        if self.items.len() > MAX_ACTIVITY {
            if self.nav.selected < MAX_ACTIVITY / 2 {
                self.drop_oldest();
            } else {
                // The operator reads deep in the window: keep what they look at and stop
                // adding above it; going back to the top reloads the newest rows.
                self.items.pop_front();
                self.nav.selected -= 1;
                self.nav.offset = self.nav.offset.saturating_sub(1);
                self.stale_top = true;
            }
        }
        self.nav.clamp(self.items.len(), rows);
        true
    }

    /// Whether the next page should be requested now.
    pub(crate) fn wants_more(&self) -> bool {
        self.next.is_some()
            && !self.loading
            && !self.loading_more
            && self.nav.selected + PREFETCH_MARGIN >= self.items.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use greyproxy_protocol::RequestLog;

    fn log(id: u64, container: &str, host: &str, result: Decision) -> ActivityItem {
        ActivityItem::Connection(RequestLog {
            id,
            timestamp: "2026-11-22T10:00:00Z".into(),
            container_name: container.into(),
            container_id: None,
            destination_host: host.into(),
            destination_port: Some(443),
            resolved_hostname: None,
            method: Some("HTTP".into()),
            result,
            rule_id: None,
            response_time_ms: Some(1),
            reason: None,
            rule_summary: None,
            mitm: None,
        })
    }

    #[test]
    fn filter_matches_like_the_daemon() {
        let f = ActivityFilter {
            container: "OPEN".into(),
            destination: "npm".into(),
            result: Some(Decision::Blocked),
            kind: Some("connection".into()),
        };
        assert!(f.matches(&log(1, "opencode", "registry.npmjs.org", Decision::Blocked)));
        assert!(!f.matches(&log(1, "opencode", "registry.npmjs.org", Decision::Allowed)));
        assert!(!f.matches(&log(1, "aider", "registry.npmjs.org", Decision::Blocked)));
        assert_eq!(
            f.describe(),
            "container~OPEN destination~npm result=blocked kind=connection"
        );
        assert!(ActivityFilter::default().matches(&log(1, "a", "b", Decision::Allowed)));
    }

    #[test]
    fn live_rows_follow_or_keep_the_selection() {
        let mut a = Activity::new();
        a.set_first_page(vec![log(2, "c", "h", Decision::Allowed)], 1, None);
        assert!(a.push_live(log(3, "c", "h", Decision::Allowed), 10));
        assert_eq!(a.nav.selected, 0);
        assert!(
            !a.push_live(log(3, "c", "h", Decision::Allowed), 10),
            "duplicate"
        );
        a.follow = false;
        a.nav.go(1, a.items.len(), 10);
        assert!(a.push_live(log(4, "c", "h", Decision::Allowed), 10));
        assert_eq!(item_key(&a.items[a.nav.selected]), ("connection", 2));
        assert_eq!((a.unseen, a.total), (1, 3));
    }

    #[test]
    fn the_window_is_bounded_and_pages_on_by_time_below_its_last_row() {
        let mut a = Activity::new();
        for id in 1..=(MAX_ACTIVITY as u64 + 5) {
            a.push_live(log(id, "c", "h", Decision::Allowed), 10);
        }
        assert_eq!(a.items.len(), MAX_ACTIVITY);
        let next = a.next.clone().unwrap();
        assert_eq!(
            next,
            NextPage {
                cursor: None,
                until: Some("2026-11-22T10:00:01Z".into())
            }
        );
        // The page by time repeats the same second's rows already shown: skipped by id.
        a.append_page(
            vec![
                log(7, "c", "h", Decision::Allowed),
                log(6, "c", "h", Decision::Allowed),
                log(5, "c", "h", Decision::Allowed),
            ],
            &next,
            Some("c5_t".into()),
        );
        assert_eq!(a.items.len(), MAX_ACTIVITY + 1);
        assert_eq!(item_key(a.items.back().unwrap()), ("connection", 5));
        assert_eq!(
            a.next,
            Some(NextPage {
                cursor: Some("c5_t".into()),
                until: next.until
            })
        );
    }

    #[test]
    fn scrolling_far_down_drops_the_newest_rows() {
        let mut a = Activity::new();
        let page: Vec<_> = (0..MAX_ACTIVITY as u64)
            .map(|i| log(100_000 - i, "c", "h", Decision::Allowed))
            .collect();
        a.set_first_page(page, 200_000, Some("c1_t".into()));
        a.nav.go(MAX_ACTIVITY - 50, MAX_ACTIVITY, 20);
        let sel = item_key(&a.items[a.nav.selected]);
        let older: Vec<_> = (0..500u64)
            .map(|i| log(90_000 - i, "c", "h", Decision::Allowed))
            .collect();
        let asked = a.next.clone().unwrap();
        a.append_page(older, &asked, Some("c2_t".into()));
        assert_eq!(a.items.len(), MAX_ACTIVITY);
        assert_eq!(item_key(&a.items[a.nav.selected]), sel);
        assert!(a.stale_top);
    }
}
