//! The activity view's window: a bounded window of the feed of every host, newest first, with
//! each row's host ([`Hosted`]). It holds the first pages, the pages the operator scrolled to,
//! and live rows prepended as they arrive. Rendering looks at the visible rows only, so its
//! cost does not grow with the window. Pure data: the [`super::App`] decides when to fetch.
//!
//! Over a fleet each host keeps its own place in its feed (`next`, one per host); a page from
//! a host is merged into the window by time, so the window reads newest first across hosts
//! however the pages arrive. With one daemon the window is the daemon's feed as it pages it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::SystemTime;

use greyproxy_protocol::{ActivityItem, Decision};

use super::detail::Detail;
use super::hosted::{HostId, Hosted};
use super::listed::Nav;
use super::lists::time_of;
use super::lists::{MAX_ACTIVITY, PREFETCH_MARGIN, container_of, decision_of, item_key, kind_of};

/// Identity of a row across hosts.
pub(crate) type RowKey = (HostId, (&'static str, u64));

/// The identity of a hosted row.
pub(crate) fn row_key(i: &Hosted<ActivityItem>) -> RowKey {
    (i.host, item_key(&i.item))
}

/// The time of a row, for merging hosts' pages (an unreadable time sorts oldest).
fn when(i: &Hosted<ActivityItem>) -> Option<SystemTime> {
    crate::format::parse_time(time_of(&i.item))
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
    /// Rows of every host, newest first.
    pub items: VecDeque<Hosted<ActivityItem>>,
    /// Rows matching the filter in the daemons (grows with live rows).
    pub total: u64,
    /// Each host's share of `total`.
    pub(crate) totals: BTreeMap<HostId, u64>,
    /// Where each host's next (older) page starts; a host absent is at the end of its feed.
    pub next: BTreeMap<HostId, NextPage>,
    /// Current filter (every host is asked with it).
    pub filter: ActivityFilter,
    /// Bumped whenever the filter changes, so that answers to older queries are ignored.
    pub(crate) generation: u64,
    /// Hosts whose first page was requested and not answered yet.
    pub loading: BTreeSet<HostId>,
    /// Hosts whose next page was requested and not answered yet.
    pub loading_more: BTreeSet<HostId>,
    /// Over a fleet: pages are merged by time (with one daemon they are appended as paged).
    pub(crate) fleet: bool,
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

/// Merges `new` (newest first) into `old` (newest first) by time; at equal times `old` rows
/// come first. Each side keeps its own order.
fn merge(
    old: VecDeque<Hosted<ActivityItem>>,
    new: Vec<Hosted<ActivityItem>>,
) -> VecDeque<Hosted<ActivityItem>> {
    let mut out = VecDeque::with_capacity(old.len() + new.len());
    let mut old = old.into_iter().peekable();
    let mut new = new.into_iter().peekable();
    loop {
        let take_new = match (old.peek(), new.peek()) {
            (Some(o), Some(n)) => when(n) > when(o),
            (None, Some(_)) => true,
            (_, None) => false,
        };
        let next = if take_new { new.next() } else { old.next() };
        match next {
            Some(i) => out.push_back(i),
            None => return out,
        }
    }
}

impl Activity {
    /// An empty window in follow mode.
    pub(crate) fn new() -> Activity {
        Activity {
            follow: true,
            ..Activity::default()
        }
    }

    /// Whether a first page is awaited from any host.
    pub fn is_loading(&self) -> bool {
        !self.loading.is_empty()
    }

    /// The key of the selected row.
    fn selected_key(&self) -> Option<RowKey> {
        self.items.get(self.nav.selected).map(row_key)
    }

    /// Puts the selection back on `key` when it is still in the window.
    fn reselect(&mut self, key: Option<RowKey>) {
        if let Some(i) = key.and_then(|k| self.items.iter().position(|r| row_key(r) == k)) {
            let delta = i as isize - self.nav.selected as isize;
            self.nav.selected = i;
            self.nav.offset = (self.nav.offset as isize + delta).max(0) as usize;
        }
    }

    /// `host`'s first page: replaces that host's rows (and rows the filter no longer admits).
    /// With one daemon the window becomes the page.
    pub(crate) fn set_first_page(
        &mut self,
        host: HostId,
        items: Vec<ActivityItem>,
        total: u64,
        cursor: Option<String>,
    ) {
        let rows: Vec<_> = items.into_iter().map(|i| Hosted::new(host, i)).collect();
        match cursor {
            Some(c) => {
                self.next.insert(
                    host,
                    NextPage {
                        cursor: Some(c),
                        until: None,
                    },
                );
            }
            None => {
                self.next.remove(&host);
            }
        }
        self.totals.insert(host, total);
        self.total = self.totals.values().sum();
        self.unseen = 0;
        self.stale_top = false;
        if !self.fleet {
            self.items = rows.into();
            self.nav = Nav::default();
            return;
        }
        let keep = (!self.follow).then(|| self.selected_key()).flatten();
        let filter = self.filter.clone();
        let old = std::mem::take(&mut self.items);
        let old = old
            .into_iter()
            .filter(|r| r.host != host && filter.matches(&r.item))
            .collect();
        self.items = merge(old, rows);
        self.items.truncate(MAX_ACTIVITY);
        if self.follow {
            self.nav = Nav::default();
        } else {
            self.reselect(keep);
        }
    }

    /// Appends an older page of `host` (asked for with `asked`), skipping rows already in the
    /// window: within a host and a kind, ids grow with time, so an older row has a smaller id
    /// than every row of its kind and host already shown.
    pub(crate) fn append_page(
        &mut self,
        host: HostId,
        items: Vec<ActivityItem>,
        asked: &NextPage,
        cursor: Option<String>,
    ) {
        let mut min: [Option<u64>; 2] = [None, None];
        for i in self.items.iter().filter(|i| i.host == host) {
            let (kind, id) = item_key(i);
            let slot = &mut min[usize::from(kind == "transaction")];
            *slot = Some(slot.map_or(id, |m| m.min(id)));
        }
        let fresh = items.into_iter().filter(|i| {
            let (kind, id) = item_key(i);
            min[usize::from(kind == "transaction")].is_none_or(|m| id < m)
        });
        let fresh: Vec<_> = fresh.map(|i| Hosted::new(host, i)).collect();
        if self.fleet {
            let keep = self.selected_key();
            let old = std::mem::take(&mut self.items);
            self.items = merge(old, fresh);
            self.reselect(keep);
        } else {
            self.items.extend(fresh);
        }
        match cursor {
            Some(c) => {
                self.next.insert(
                    host,
                    NextPage {
                        cursor: Some(c),
                        until: asked.until.clone(),
                    },
                );
            }
            None => {
                self.next.remove(&host);
            }
        }
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

    /// Drops rows from the old end down to [`MAX_ACTIVITY`]; older pages of the hosts that lost
    /// rows are then asked for by time: everything up to the new last row's second (the same
    /// second's rows already shown are skipped when the page arrives).
    fn drop_oldest(&mut self) {
        let dropped: BTreeSet<HostId> = self
            .items
            .iter()
            .skip(MAX_ACTIVITY)
            .map(|i| i.host)
            .collect();
        self.items.truncate(MAX_ACTIVITY);
        let until = self.items.back().and_then(when).map(|t| {
            humantime::format_rfc3339_seconds(t + std::time::Duration::from_secs(1)).to_string()
        });
        for h in dropped {
            match &until {
                Some(u) => {
                    self.next.insert(
                        h,
                        NextPage {
                            cursor: None,
                            until: Some(u.clone()),
                        },
                    );
                }
                None => {
                    self.next.remove(&h);
                }
            }
        }
    }

    /// Prepends a live row if it matches the filter; keeps the selected row in place unless
    /// following. Returns whether the row was added.
    pub(crate) fn push_live(&mut self, item: Hosted<ActivityItem>, rows: usize) -> bool {
        if !self.filter.matches(&item) {
            return false;
        }
        let key = row_key(&item);
        // The first page may already hold a row whose event arrives after it.
        if self.items.iter().take(64).any(|i| row_key(i) == key) {
            return false;
        }
        let host = item.host;
        self.items.push_front(item);
        *self.totals.entry(host).or_default() += 1;
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

    /// Whether the next pages should be requested now.
    pub(crate) fn wants_more(&self) -> bool {
        !self.next.is_empty()
            && self.loading.is_empty()
            && self.loading_more.is_empty()
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

    fn live(id: u64, container: &str, host: &str, result: Decision) -> Hosted<ActivityItem> {
        Hosted::local(log(id, container, host, result))
    }

    fn at(id: u64, time: &str) -> ActivityItem {
        let mut i = log(id, "c", "h", Decision::Allowed);
        if let ActivityItem::Connection(r) = &mut i {
            r.timestamp = time.into();
        }
        i
    }

    #[test]
    fn a_fleet_merges_each_hosts_pages_by_time_and_pages_each_host_on() {
        let mut a = Activity::new();
        a.fleet = true;
        a.set_first_page(
            0,
            vec![at(9, "2026-11-22T10:00:09Z"), at(5, "2026-11-22T10:00:05Z")],
            4,
            Some("c5".into()),
        );
        a.set_first_page(
            1,
            vec![at(7, "2026-11-22T10:00:07Z"), at(3, "2026-11-22T10:00:03Z")],
            2,
            None,
        );
        let order: Vec<_> = a.items.iter().map(row_key).collect();
        assert_eq!(
            order,
            vec![
                (0, ("connection", 9)),
                (1, ("connection", 7)),
                (0, ("connection", 5)),
                (1, ("connection", 3)),
            ]
        );
        assert_eq!(a.total, 6);
        // Host 0 has more; host 1 is at its end.
        assert_eq!(a.next.keys().copied().collect::<Vec<_>>(), vec![0]);
        // Host 0's next page slots in by time, below host 1's newer rows.
        let asked = a.next.get(&0).cloned().unwrap();
        a.append_page(
            0,
            vec![at(4, "2026-11-22T10:00:04Z"), at(1, "2026-11-22T10:00:01Z")],
            &asked,
            None,
        );
        let order: Vec<_> = a.items.iter().map(row_key).collect();
        assert_eq!(
            order,
            vec![
                (0, ("connection", 9)),
                (1, ("connection", 7)),
                (0, ("connection", 5)),
                (0, ("connection", 4)),
                (1, ("connection", 3)),
                (0, ("connection", 1)),
            ]
        );
        assert!(a.next.is_empty());
        // Ids are per host: host 1's row 9 is not host 0's.
        assert!(a.push_live(Hosted::new(1, at(9, "2026-11-22T10:00:10Z")), 10));
        assert_eq!(row_key(&a.items[0]), (1, ("connection", 9)));
        // A host's first page again replaces its rows only.
        a.set_first_page(1, vec![at(10, "2026-11-22T10:00:11Z")], 1, None);
        let hosts: Vec<_> = a.items.iter().map(|i| i.host).collect();
        assert_eq!(hosts, vec![1, 0, 0, 0, 0]);
        assert_eq!(a.total, 5);
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
        a.set_first_page(0, vec![log(2, "c", "h", Decision::Allowed)], 1, None);
        assert!(a.push_live(live(3, "c", "h", Decision::Allowed), 10));
        assert_eq!(a.nav.selected, 0);
        assert!(
            !a.push_live(live(3, "c", "h", Decision::Allowed), 10),
            "duplicate"
        );
        a.follow = false;
        a.nav.go(1, a.items.len(), 10);
        assert!(a.push_live(live(4, "c", "h", Decision::Allowed), 10));
        assert_eq!(item_key(&a.items[a.nav.selected]), ("connection", 2));
        assert_eq!((a.unseen, a.total), (1, 3));
    }

    #[test]
    fn the_window_is_bounded_and_pages_on_by_time_below_its_last_row() {
        let mut a = Activity::new();
        for id in 1..=(MAX_ACTIVITY as u64 + 5) {
            a.push_live(live(id, "c", "h", Decision::Allowed), 10);
        }
        assert_eq!(a.items.len(), MAX_ACTIVITY);
        let next = a.next.get(&0).cloned().unwrap();
        assert_eq!(
            next,
            NextPage {
                cursor: None,
                until: Some("2026-11-22T10:00:01Z".into())
            }
        );
        // The page by time repeats the same second's rows already shown: skipped by id.
        a.append_page(
            0,
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
            a.next.get(&0).cloned(),
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
        a.set_first_page(0, page, 200_000, Some("c1_t".into()));
        a.nav.go(MAX_ACTIVITY - 50, MAX_ACTIVITY, 20);
        let sel = item_key(&a.items[a.nav.selected]);
        let older: Vec<_> = (0..500u64)
            .map(|i| log(90_000 - i, "c", "h", Decision::Allowed))
            .collect();
        let asked = a.next.get(&0).cloned().unwrap();
        a.append_page(0, older, &asked, Some("c2_t".into()));
        assert_eq!(a.items.len(), MAX_ACTIVITY);
        assert_eq!(item_key(&a.items[a.nav.selected]), sel);
        assert!(a.stale_top);
    }
}
