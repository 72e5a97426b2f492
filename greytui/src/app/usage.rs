//! The Usage view ("top for agents"): the `usage_summary` rows of the selected window and
//! grouping, sorted here by any column, with the live rates of [`super::usage_live`].
//!
//! The summary is asked for when the view is opened, when the window or the grouping changes,
//! on `R`, and after `llm_call.new` events while the view is shown — at most once every
//! `USAGE_REFRESH`: an event inside that time marks the board stale and the clock sends the
//! one refresh that covers them all. A daemon without the LLM layer answers with an error; the
//! board then says what is unavailable and asks again only when opened or on `R`.
//!
//! Over a fleet every connected host is asked; the board shows each group key's rows summed
//! over the hosts that answered (`super::hosted::sum_usage`).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use greyproxy_protocol::command::UsageSummaryArgs;
use greyproxy_protocol::llm::{LlmCall, UsageRow};
use greyproxy_protocol::{Command, Reply};

use super::listed::{Keyed, Listed};
use super::usage_live::{Group, Live, Rate};
use super::{App, Effect, HostId, Tag, View};
use crate::keymap::Action;
use crate::layout;
use crate::llm_text::UsageSummary;

/// Shortest time between two summaries asked for because calls arrived.
pub(crate) const USAGE_REFRESH: Duration = Duration::from_secs(2);

/// Slack for the once-a-second clock: a tick a little early still refreshes.
const TICK_SLACK: Duration = Duration::from_millis(250);

/// Rows of the view around the table's own rows: the title line, the table header, the
/// total row and the two lines of live figures and notes under it.
pub(crate) const AROUND_ROWS: u16 = 5;

/// The time window of the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Span {
    /// The last hour.
    Hour,
    /// Since UTC midnight.
    Today,
    /// The last seven days.
    Week,
    /// Since the daemon started.
    Start,
}

impl Span {
    /// In the order the window key cycles through.
    pub(crate) const ALL: [Span; 4] = [Span::Hour, Span::Today, Span::Week, Span::Start];

    /// `usage_summary`'s `since`.
    pub(crate) fn wire(self) -> &'static str {
        match self {
            Span::Hour => "1h",
            Span::Today => "today",
            Span::Week => "7d",
            Span::Start => "start",
        }
    }

    /// As the view's title says it.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Span::Hour => "last hour",
            Span::Today => "today (UTC)",
            Span::Week => "last 7 days",
            Span::Start => "since the daemon started",
        }
    }

    /// As a sentence ends with it: "No LLM calls today."
    pub(crate) fn phrase(self) -> &'static str {
        match self {
            Span::Hour => "in the last hour",
            Span::Today => "today",
            Span::Week => "in the last 7 days",
            Span::Start => "since the daemon started",
        }
    }
}

/// A sortable column, in table order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Column {
    /// The group's key.
    Key,
    /// Calls.
    Calls,
    /// Input tokens (cache reads and writes included).
    Input,
    /// Input tokens read from the cache.
    Cached,
    /// Output tokens.
    Output,
    /// Cost of the priced calls.
    Cost,
    /// Live tokens per minute.
    TokensPerMin,
    /// Live dollars per hour.
    UsdPerHour,
    /// Cache reads ÷ input.
    CacheHit,
    /// Median time to first token.
    Ttft,
}

impl Column {
    /// In table order, which the sort key cycles through.
    pub(crate) const ALL: [Column; 10] = [
        Column::Key,
        Column::Calls,
        Column::Input,
        Column::Cached,
        Column::Output,
        Column::Cost,
        Column::TokensPerMin,
        Column::UsdPerHour,
        Column::CacheHit,
        Column::Ttft,
    ];

    /// Header (the key column's depends on the grouping).
    pub(crate) fn title(self, group: Group) -> &'static str {
        match self {
            Column::Key => match group {
                Group::Container => "CONTAINER",
                Group::Client => "CLIENT",
                Group::Model => "MODEL",
            },
            Column::Calls => "CALLS",
            Column::Input => "INPUT",
            Column::Cached => "CACHED",
            Column::Output => "OUTPUT",
            Column::Cost => "COST",
            Column::TokensPerMin => "TOK/MIN",
            Column::UsdPerHour => "$/H",
            Column::CacheHit => "HIT",
            Column::Ttft => "TTFT",
        }
    }

    /// The next column, after the last the first.
    fn next(self) -> Column {
        let i = Column::ALL.iter().position(|c| *c == self).unwrap_or(0);
        Column::ALL[(i + 1) % Column::ALL.len()]
    }

    /// Whether the live figures decide this column's order (re-sorted as calls arrive).
    fn is_live(self) -> bool {
        matches!(self, Column::TokensPerMin | Column::UsdPerHour)
    }
}

impl Keyed for UsageRow {
    type Key = String;
    fn key(&self) -> String {
        self.key.clone()
    }
}

/// The Usage view's state.
#[derive(Debug, Clone)]
pub struct UsageBoard {
    /// Rows grouped by.
    pub(crate) group: Group,
    /// Time window.
    pub(crate) span: Span,
    /// Sort column.
    pub(crate) sort: Column,
    /// Against the column's natural order (numbers largest first, keys A to Z).
    pub(crate) reverse: bool,
    /// The rows, in display order, and the selection.
    pub(crate) rows: Listed<UsageRow>,
    /// Every call of the window.
    pub total: Option<UsageRow>,
    /// Window start as the daemon resolved it.
    pub(crate) since: Option<String>,
    /// Bumped when the window or grouping changes: answers for the old ones are ignored.
    pub generation: u64,
    /// Hosts whose summary for the current generation is awaited.
    pub(crate) in_flight: BTreeSet<HostId>,
    /// Each host's last summary for the current generation.
    pub(crate) by_host: BTreeMap<HostId, UsageSummary>,
    /// Hosts without an LLM layer, and why.
    pub(crate) unavailable_on: BTreeMap<HostId, String>,
    /// When the last one was asked for.
    pub(crate) asked_at: Option<SystemTime>,
    /// Calls arrived since it was asked for.
    pub(crate) stale: bool,
    /// The error of the last attempt, when it failed for another reason than the layer.
    pub(crate) error: Option<String>,
    /// Why the daemon has no usage to give (its LLM layer is off, or it predates it).
    pub(crate) unavailable: Option<String>,
    /// Live rates from `llm_call.new`.
    pub(crate) live: Live,
}

impl UsageBoard {
    /// A board of today's usage by container, costliest first, with nothing loaded.
    pub(crate) fn new(now: SystemTime) -> UsageBoard {
        UsageBoard {
            group: Group::Container,
            span: Span::Today,
            sort: Column::Cost,
            reverse: false,
            rows: Listed::default(),
            total: None,
            since: None,
            generation: 0,
            in_flight: BTreeSet::new(),
            by_host: BTreeMap::new(),
            unavailable_on: BTreeMap::new(),
            asked_at: None,
            stale: false,
            error: None,
            unavailable: None,
            live: Live::new(now),
        }
    }

    /// The rows in display order.
    pub fn rows(&self) -> &[UsageRow] {
        &self.rows
    }

    /// Why the daemon has no usage to give, when it has none (no LLM layer).
    pub fn unavailable(&self) -> Option<&str> {
        self.unavailable.as_deref()
    }

    /// The live rates of a row (`None`: of everything) under the current grouping.
    pub fn rate(&self, key: Option<&str>, now: SystemTime) -> Rate {
        self.live.rate(self.group, key, now)
    }

    /// Puts the rows in the order of the sort column (ties by key), keeping the selection.
    pub(crate) fn sort_rows(&mut self, now: SystemTime, visible: usize) {
        let (col, reverse) = (self.sort, self.reverse);
        // The live figures are computed once per row, not once per comparison.
        let mut v: Vec<(UsageRow, (f64, f64))> = self
            .rows
            .iter()
            .map(|r| {
                let live = if col.is_live() {
                    let x = self.rate(Some(&r.key), now);
                    (x.tokens_per_min, x.usd_per_hour)
                } else {
                    (0.0, 0.0)
                };
                (r.clone(), live)
            })
            .collect();
        v.sort_by(|(a, la), (b, lb)| {
            let by_key = a.key.cmp(&b.key);
            let natural = match col {
                Column::Key => by_key,
                _ => desc(value(a, col, *la), value(b, col, *lb)),
            };
            let o = if reverse { natural.reverse() } else { natural };
            o.then(by_key)
        });
        self.rows
            .replace(v.into_iter().map(|(r, _)| r).collect(), visible);
    }
}

/// Larger first; absent values (`None` as `-1`) last.
fn desc(a: f64, b: f64) -> Ordering {
    b.partial_cmp(&a).unwrap_or(Ordering::Equal)
}

/// A row's number in a column (the key column has none).
fn value(r: &UsageRow, col: Column, live: (f64, f64)) -> f64 {
    let t = &r.totals;
    match col {
        Column::Key => 0.0,
        Column::Calls => t.calls as f64,
        Column::Input => t.usage.input_tokens as f64,
        Column::Cached => t.usage.cache_read_tokens as f64,
        Column::Output => t.usage.output_tokens as f64,
        Column::Cost => t.cost_micro_usd as f64,
        Column::TokensPerMin => live.0,
        Column::UsdPerHour => live.1,
        Column::CacheHit if t.usage.input_tokens == 0 => -1.0,
        Column::CacheHit => r.cache_hit_ratio,
        Column::Ttft => r.ttft_p50_ms.map_or(-1.0, |v| v as f64),
    }
}

/// Why a failed summary means the layer is missing, in the words the view shows; `None` for
/// other errors.
fn unavailable_reason(e: &str) -> Option<String> {
    if e.contains("LLM layer is off") {
        Some("The daemon's LLM layer is off (llm.enabled = false in its configuration): it records no LLM calls, so there is no usage to show.".into())
    } else if e.starts_with("unknown command") {
        Some("This greyproxyd has no LLM layer (it predates it): there is no usage to show. Upgrade the daemon to see LLM calls and their cost.".into())
    } else {
        None
    }
}

impl App {
    /// Rows of the usage table at the current size.
    pub(crate) fn usage_rows(&self) -> usize {
        layout::list_rows(self.size.1)
            .saturating_sub(AROUND_ROWS as usize - 1)
            .max(1)
    }

    /// Asks every connected host for the summary of the current window and grouping.
    pub(super) fn usage_fetch(&mut self) -> Vec<Effect> {
        let hosts = self.live_hosts();
        self.usage_fetch_from(&hosts)
    }

    /// Asks `hosts` for the summary of the current window and grouping, except a host whose
    /// summary is awaited (then the board is marked stale) or whose link is down (the resync
    /// on connect asks again).
    pub(super) fn usage_fetch_from(&mut self, hosts: &[HostId]) -> Vec<Effect> {
        let mut fx = Vec::new();
        let mut busy = false;
        for &h in hosts {
            if !self.host_connected(h) {
                continue;
            }
            let u = &mut self.usage;
            if !u.in_flight.insert(h) {
                busy = true;
                continue;
            }
            u.asked_at = Some(self.now);
            let args = UsageSummaryArgs {
                group_by: Some(u.group.wire().into()),
                since: Some(u.span.wire().into()),
                ..UsageSummaryArgs::default()
            };
            let tag = Tag::Usage {
                generation: u.generation,
            };
            fx.push(self.send_on(h, tag, Command::UsageSummary(args)));
        }
        self.usage.stale = busy;
        fx
    }

    /// Whether the last summary is old enough to ask again.
    fn usage_due(&self) -> bool {
        match self.usage.asked_at {
            None => true,
            Some(at) => {
                self.now.duration_since(at).unwrap_or_default() + TICK_SLACK >= USAGE_REFRESH
            }
        }
    }

    /// An `llm_call.new` event: live figures, and a refresh when the board is shown.
    pub(super) fn usage_call(&mut self, c: &LlmCall) -> Vec<Effect> {
        self.usage.live.add(c, self.now);
        if self.view != View::Usage || self.usage.unavailable.is_some() {
            // Opening the view asks anyway.
            return Vec::new();
        }
        if self.usage.sort.is_live() {
            let rows = self.usage_rows();
            self.usage.sort_rows(self.now, rows);
        }
        if self.usage.in_flight.is_empty() && self.usage_due() {
            self.usage_fetch()
        } else {
            self.usage.stale = true;
            Vec::new()
        }
    }

    /// On the clock: old live minutes leave, live columns re-sort, a stale board refreshes.
    pub(super) fn usage_tick(&mut self) -> Vec<Effect> {
        let minute = self
            .now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
            / 60;
        self.usage.live.expire(minute);
        if self.view != View::Usage {
            return Vec::new();
        }
        if self.usage.sort.is_live() {
            let rows = self.usage_rows();
            self.usage.sort_rows(self.now, rows);
        }
        if self.usage.stale && self.usage.in_flight.is_empty() && self.usage_due() {
            self.usage_fetch()
        } else {
            Vec::new()
        }
    }

    /// The view was opened (or the dashboard resynced while it is shown).
    pub(super) fn usage_open(&mut self) -> Vec<Effect> {
        self.usage.unavailable = None;
        self.usage_fetch()
    }

    /// The link dropped: the awaited answer will not come.
    pub(super) fn usage_disconnected(&mut self) {
        let h = self.route;
        self.usage.in_flight.remove(&h);
    }

    /// The view's own keys: grouping, window, sort column, sort direction.
    pub(super) fn usage_key(&mut self, a: Action) -> Vec<Effect> {
        let rows = self.usage_rows();
        let u = &mut self.usage;
        match a {
            Action::UsageGroup => {
                let i = Group::ALL.iter().position(|g| *g == u.group).unwrap_or(0);
                u.group = Group::ALL[(i + 1) % Group::ALL.len()];
            }
            Action::UsageWindow => {
                let i = Span::ALL.iter().position(|s| *s == u.span).unwrap_or(0);
                u.span = Span::ALL[(i + 1) % Span::ALL.len()];
            }
            Action::UsageSort => {
                u.sort = u.sort.next();
                u.reverse = false;
                u.sort_rows(self.now, rows);
                return Vec::new();
            }
            Action::UsageReverse => {
                u.reverse = !u.reverse;
                u.sort_rows(self.now, rows);
                return Vec::new();
            }
            _ => return Vec::new(),
        }
        // Another window or grouping: what is shown no longer applies.
        u.generation += 1;
        u.in_flight.clear();
        u.by_host.clear();
        u.unavailable_on.clear();
        u.rows.clear();
        u.total = None;
        u.since = None;
        u.error = None;
        self.usage_fetch()
    }

    /// The reply to `usage_summary` of host `self.route`.
    pub(super) fn usage_listed(&mut self, generation: u64, outcome: Result<Reply, String>) {
        if generation != self.usage.generation {
            return; // for a window or grouping that is gone
        }
        let rows = self.usage_rows();
        let h = self.route;
        let u = &mut self.usage;
        u.in_flight.remove(&h);
        match outcome.and_then(super::daemon::data::<UsageSummary>) {
            Ok(s) => {
                u.by_host.insert(h, s);
                u.unavailable_on.remove(&h);
                u.error = None;
            }
            Err(e) => match unavailable_reason(&e) {
                Some(why) => {
                    u.unavailable_on.insert(h, why);
                    u.by_host.remove(&h);
                }
                None => {
                    u.error = Some(e);
                    return;
                }
            },
        }
        if u.by_host.is_empty() {
            // No host has usage to give: say why (the first host's reason).
            u.unavailable = u.unavailable_on.values().next().cloned();
            u.rows.clear();
            u.total = None;
            u.stale = false;
            return;
        }
        let s = super::hosted::sum_usage(u.by_host.values());
        u.rows.replace(s.rows, rows);
        u.total = Some(s.total);
        u.since = Some(s.since);
        u.unavailable = None;
        u.sort_rows(self.now, rows);
    }
}
