//! The fleet inside the dashboard: items tagged with the host that owns them ([`Hosted`]), the
//! state of each host for the Hosts view ([`HostView`]), and how the [`App`] follows a host
//! other than the focused one.
//!
//! Pending requests, rules, activity and conversations of every host merge into one list each
//! (a HOST column shows when there is more than one host), and the status bar's cost and the
//! Usage view sum every host's; a command about an item goes to the host that owns it. The
//! per-daemon views (middlewares, credentials) and silent mode follow the focused host, chosen
//! in the Hosts view. A host other than the focused one is followed for what the merged views
//! need: its greeting, `status`, pending requests, rules, activity, conversations, LLM usage
//! and their events.

use std::ops::{Deref, DerefMut};
use std::time::Duration;

use greyproxy_protocol::command::ListArgs;
use greyproxy_protocol::{Command, EventEnvelope, Status};

use super::listed::Keyed;
use super::{App, ConnState, Effect, Tag, send};
use crate::link::LinkEvent;

/// Index of a host in [`App::hosts`]; 0 when there is one daemon.
pub type HostId = usize;

/// An item and the host it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hosted<T> {
    /// The owning host.
    pub host: HostId,
    /// The item.
    pub item: T,
}

impl<T> Hosted<T> {
    /// `item` of `host`.
    pub fn new(host: HostId, item: T) -> Hosted<T> {
        Hosted { host, item }
    }

    /// `item` of the only host.
    pub fn local(item: T) -> Hosted<T> {
        Hosted { host: 0, item }
    }
}

impl<T> Deref for Hosted<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.item
    }
}

impl<T> DerefMut for Hosted<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.item
    }
}

impl<T: PartialEq> PartialEq<T> for Hosted<T> {
    fn eq(&self, other: &T) -> bool {
        self.item == *other
    }
}

impl<T: Keyed> Keyed for Hosted<T> {
    /// Ids are per daemon: the host makes them unique. Lists keep newest first by key, so the
    /// host is reversed: host 0's block comes first, each block newest first.
    type Key = (std::cmp::Reverse<HostId>, T::Key);

    fn key(&self) -> Self::Key {
        (std::cmp::Reverse(self.host), self.item.key())
    }
}

/// The key of `host`'s item `key` in a [`Listed`](super::listed::Listed) of [`Hosted`] items.
pub(crate) fn hkey<K>(host: HostId, key: K) -> (std::cmp::Reverse<HostId>, K) {
    (std::cmp::Reverse(host), key)
}

/// One host as the Hosts view shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostView {
    /// Its name (HOST column, `HOST:ID`).
    pub name: String,
    /// Link state.
    pub conn: ConnState,
    /// Daemon version (greeting / status).
    pub version: Option<String>,
    /// Round-trip time of the last ping.
    pub rtt: Option<Duration>,
    /// `seq` of its last event (hosts other than the focused one; the focused host's is
    /// [`App::last_seq`]).
    pub(crate) last_seq: Option<u64>,
}

impl HostView {
    /// A host not connected yet.
    pub fn new(name: impl Into<String>) -> HostView {
        HostView {
            name: name.into(),
            conn: ConnState::Connecting(1),
            version: None,
            rtt: None,
            last_seq: None,
        }
    }

    /// The state's one word: connected, reconnecting, refused.
    pub fn state_word(&self) -> &'static str {
        match &self.conn {
            ConnState::Connected => "connected",
            ConnState::Connecting(_) => "connecting",
            ConnState::Disconnected {
                unauthorized: true, ..
            } => "refused",
            ConnState::Disconnected { .. } => "reconnecting",
        }
    }

    /// Why it is not connected, if it is not.
    pub fn reason(&self) -> Option<&str> {
        match &self.conn {
            ConnState::Disconnected { reason, .. } => Some(reason),
            _ => None,
        }
    }
}

fn first_page() -> ListArgs {
    ListArgs {
        limit: Some(1000),
        ..ListArgs::default()
    }
}

impl App {
    /// More than one host: the dashboard shows HOST columns and the Hosts view matters.
    pub fn is_fleet(&self) -> bool {
        self.hosts.len() > 1
    }

    /// The dashboard over these hosts (their names, in order); the first is focused.
    pub fn with_hosts(mut self, names: &[String]) -> App {
        if !names.is_empty() {
            self.hosts = names.iter().map(HostView::new).collect();
        }
        self.activity.fleet = self.is_fleet();
        self
    }

    /// The name of `host` ("" when out of range).
    pub fn host_name(&self, host: HostId) -> &str {
        self.hosts.get(host).map_or("", |h| h.name.as_str())
    }

    /// Pending requests across hosts.
    pub fn pending_on(&self, host: HostId) -> usize {
        self.pending.iter().filter(|p| p.host == host).count()
    }

    /// Notes what the Hosts view shows of a host's link event.
    pub(super) fn note_host(&mut self, host: HostId, ev: &LinkEvent<Tag>) {
        let Some(h) = self.hosts.get_mut(host) else {
            return;
        };
        match ev {
            LinkEvent::Connecting { attempt, .. }
                if !matches!(h.conn, ConnState::Disconnected { .. }) || *attempt == 1 =>
            {
                h.conn = ConnState::Connecting(*attempt);
            }
            LinkEvent::Connected { server_version, .. } => {
                h.conn = ConnState::Connected;
                h.version = Some(server_version.clone());
            }
            LinkEvent::Disconnected {
                reason,
                unauthorized,
                retry_in,
            } => {
                h.conn = ConnState::Disconnected {
                    reason: reason.clone(),
                    unauthorized: *unauthorized,
                    retry_in: *retry_in,
                };
                h.last_seq = None;
                h.rtt = None;
            }
            LinkEvent::Rtt(d) => h.rtt = Some(*d),
            _ => {}
        }
    }

    /// What the merged views need from host `self.route`: status, pending requests, rules, the
    /// first page of its activity, today's cost, its usage while the Usage view is shown, and
    /// its conversations once that view was opened (with the open conversation, if its).
    fn host_resync(&mut self) -> Vec<Effect> {
        let h = self.route;
        let mut fx = vec![
            send(Tag::Status, Command::Status),
            send(
                Tag::Pending { append: false },
                Command::ListPending(first_page()),
            ),
            send(
                Tag::Rules { append: false },
                Command::ListRules(first_page()),
            ),
        ];
        fx.extend(self.activity_page_of(h, false));
        fx.extend(self.cost_fetch_from(&[h]));
        if self.view == super::View::Usage {
            fx.extend(self.usage_fetch_from(&[h]));
        }
        fx.extend(self.conversations_resync());
        fx
    }

    /// A link event of a host other than the focused one (`self.route` is that host).
    pub(super) fn on_other_host(&mut self, host: HostId, ev: LinkEvent<Tag>) -> Vec<Effect> {
        match ev {
            LinkEvent::Connected { .. } => {
                let mut fx = vec![send(Tag::Claim, Command::ClaimNotifications)];
                fx.extend(self.host_resync());
                fx
            }
            LinkEvent::Lagged(_) => self.host_resync(),
            LinkEvent::Event(env) => self.other_host_event(host, env),
            LinkEvent::Reply { tag, outcome } => match (tag, outcome) {
                (Tag::Status, Ok(r)) => {
                    if let Ok(s) = super::daemon::data::<Status>(r)
                        && let Some(h) = self.hosts.get_mut(host)
                    {
                        h.version = Some(s.version);
                    }
                    Vec::new()
                }
                (Tag::Claim | Tag::Status, _) => Vec::new(),
                (
                    tag @ (Tag::Pending { .. }
                    | Tag::Rules { .. }
                    | Tag::Decide { .. }
                    | Tag::CreateRule
                    | Tag::UpdateRule(_)
                    | Tag::DeleteRule(_)
                    | Tag::Activity { .. }
                    | Tag::Transaction(_)
                    | Tag::WsMessages(_)
                    | Tag::WsBody(_)
                    | Tag::CostToday
                    | Tag::Usage { .. }
                    | Tag::Conversations { .. }
                    | Tag::Conversation(_)
                    | Tag::LlmCall(_)),
                    outcome,
                ) => self.on_reply(tag, outcome),
                // The other views follow the focused host: answers for them are stale.
                (_, _) => Vec::new(),
            },
            LinkEvent::Disconnected { .. } => {
                // Answers in flight are lost; the resync on connect asks again.
                self.activity.loading.remove(&host);
                self.activity.loading_more.remove(&host);
                self.cost.in_flight.remove(&host);
                self.usage.in_flight.remove(&host);
                self.conversations.loading.remove(&host);
                self.conversations.loading_more.remove(&host);
                Vec::new()
            }
            LinkEvent::Connecting { .. } | LinkEvent::Rtt(_) => Vec::new(),
        }
    }

    fn other_host_event(&mut self, host: HostId, env: EventEnvelope) -> Vec<Effect> {
        let Some(h) = self.hosts.get_mut(host) else {
            return Vec::new();
        };
        let gap = h.last_seq.is_some_and(|last| env.seq != last + 1);
        h.last_seq = Some(env.seq);
        let mut fx = match env.event() {
            Some(e) => self.host_event(e, false),
            None => Vec::new(),
        };
        if gap {
            fx.extend(self.host_resync());
        }
        fx
    }

    /// `R`: the focused host reloads everything, every other connected host its merged lists.
    pub(super) fn resync_all(&mut self) -> Vec<Effect> {
        let mut fx = self.resync();
        for h in 0..self.hosts.len() {
            if h == self.focus || self.hosts[h].conn != ConnState::Connected {
                continue;
            }
            self.route = h;
            for e in self.host_resync() {
                fx.push(match e {
                    Effect::Send(r) => Effect::SendTo(h, r),
                    e => e,
                });
            }
        }
        self.route = self.focus;
        fx
    }

    /// Sends `command` to every connected host (a rule "on all hosts"); says which are not.
    pub(super) fn send_to_all_hosts(&mut self, tag: Tag, command: Command) -> Vec<Effect> {
        let mut fx = Vec::new();
        let mut skipped = Vec::new();
        for (i, h) in self.hosts.iter().enumerate() {
            if h.conn == ConnState::Connected {
                fx.push(Effect::SendTo(
                    i,
                    crate::link::Request {
                        tag: tag.clone(),
                        command: command.clone(),
                    },
                ));
            } else {
                skipped.push(h.name.clone());
            }
        }
        if !skipped.is_empty() {
            self.say(
                format!("not sent to {} (not connected)", skipped.join(", ")),
                true,
            );
        }
        fx
    }

    /// In a fleet, addresses every plain `Send` to `self.route` (the host this update is
    /// about); with one daemon effects stay as they are.
    pub(super) fn routed(&self, fx: Vec<Effect>) -> Vec<Effect> {
        if !self.is_fleet() {
            return fx;
        }
        fx.into_iter()
            .map(|e| match e {
                Effect::Send(r) => Effect::SendTo(self.route, r),
                e => e,
            })
            .collect()
    }

    /// Focuses `host`: the per-daemon views (middlewares, credentials) reload from it; the
    /// merged views keep every host's items.
    pub(super) fn focus_host(&mut self, host: HostId) -> Vec<Effect> {
        if host >= self.hosts.len() || host == self.focus {
            return Vec::new();
        }
        // The old focus keeps its seq for the merged lists; the new one's moves in.
        let old = self.focus;
        self.hosts[old].last_seq = self.last_seq;
        self.focus = host;
        self.route = host;
        let h = &self.hosts[host];
        self.conn = h.conn.clone();
        self.server_version = h.version.clone();
        self.url = h.name.clone();
        self.say(format!("focused on {}", h.name), false);
        if self.conn == ConnState::Connected {
            self.resync()
        } else {
            Vec::new()
        }
    }
}

/// The usage summaries of several hosts as one: each group key's totals summed over hosts,
/// the cache hit ratio recomputed from the sums, and for time to first token the slowest
/// host's median (medians do not add up). `since` is the earliest host's.
pub(crate) fn sum_usage<'a>(
    summaries: impl Iterator<Item = &'a crate::llm_text::UsageSummary>,
) -> crate::llm_text::UsageSummary {
    use greyproxy_protocol::llm::UsageRow;
    fn add(into: &mut UsageRow, r: &UsageRow) {
        let (a, b) = (&mut into.totals, &r.totals);
        a.calls += b.calls;
        a.cost_micro_usd += b.cost_micro_usd;
        a.unpriced_calls += b.unpriced_calls;
        a.duration_ms += b.duration_ms;
        let (x, y) = (&mut a.usage, &b.usage);
        x.input_tokens += y.input_tokens;
        x.cache_read_tokens += y.cache_read_tokens;
        x.cache_write_tokens += y.cache_write_tokens;
        x.output_tokens += y.output_tokens;
        x.reasoning_tokens += y.reasoning_tokens;
        x.cache_write_5m_tokens = sum_opt(x.cache_write_5m_tokens, y.cache_write_5m_tokens);
        x.cache_write_1h_tokens = sum_opt(x.cache_write_1h_tokens, y.cache_write_1h_tokens);
        into.ttft_p50_ms = into.ttft_p50_ms.max(r.ttft_p50_ms);
        let u = &into.totals.usage;
        into.cache_hit_ratio = if u.input_tokens == 0 {
            0.0
        } else {
            u.cache_read_tokens as f64 / u.input_tokens as f64
        };
    }
    fn sum_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
        match (a, b) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
        }
    }
    let mut rows: Vec<UsageRow> = Vec::new();
    let mut total: Option<UsageRow> = None;
    let mut since: Option<String> = None;
    for s in summaries {
        for r in &s.rows {
            match rows.iter_mut().find(|x| x.key == r.key) {
                Some(x) => add(x, r),
                None => rows.push(r.clone()),
            }
        }
        match &mut total {
            Some(t) => add(t, &s.total),
            None => total = Some(s.total.clone()),
        }
        if since.as_ref().is_none_or(|x| s.since < *x) {
            since = Some(s.since.clone());
        }
    }
    crate::llm_text::UsageSummary {
        since: since.unwrap_or_default(),
        rows,
        total: total.unwrap_or_else(|| UsageRow {
            key: "total".into(),
            totals: Default::default(),
            cache_hit_ratio: 0.0,
            ttft_p50_ms: None,
        }),
    }
}
