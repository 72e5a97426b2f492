//! Today's LLM cost across all containers, for the status bar: `usage_summary` with
//! `since: "today"` (UTC midnight), asked for on every resync and again when `llm_call.new`
//! says a call was priced — at most every [`COST_REFRESH`], however fast calls arrive. A
//! daemon without the LLM layer (off, or an older build) answers with an error: the status bar
//! then shows no cost at all. Over a fleet every host is asked and the status bar shows the
//! sum of the hosts that answered.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use greyproxy_protocol::command::UsageSummaryArgs;
use greyproxy_protocol::{Command, Reply};
use serde::Deserialize;

use super::{App, Effect, HostId, Tag};

/// Shortest time between two `usage_summary` requests.
pub(crate) const COST_REFRESH: Duration = Duration::from_secs(2);

/// Slack for the once-a-second clock.
const TICK_SLACK: Duration = Duration::from_millis(250);

/// What the status bar knows about today's cost.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CostToday {
    /// Priced calls' cost today, micro-USD; `None` when unknown or the LLM layer is away.
    pub(crate) micro_usd: Option<u64>,
    /// Calls today without a price (their cost is not in the sum).
    pub(crate) unpriced: u64,
    /// Each host's answer: cost (micro-USD) and unpriced calls.
    by_host: BTreeMap<HostId, (u64, u64)>,
    /// Hosts whose answer is awaited.
    pub(crate) in_flight: BTreeSet<HostId>,
    /// When the last one was sent.
    asked_at: Option<SystemTime>,
    /// A call arrived since the last request: ask again when allowed.
    due: bool,
}

/// The part of `usage_summary`'s answer the status bar needs.
#[derive(Debug, Deserialize)]
struct Summary {
    total: Total,
}

#[derive(Debug, Deserialize)]
struct Total {
    #[serde(default)]
    cost_micro_usd: u64,
    #[serde(default)]
    unpriced_calls: u64,
}

impl App {
    /// Asks every connected host now, except those whose answer is awaited.
    pub(super) fn cost_fetch(&mut self) -> Vec<Effect> {
        let hosts = self.live_hosts();
        self.cost_fetch_from(&hosts)
    }

    /// Asks `hosts` now (a resync), unless their answer is awaited or their link is down.
    pub(super) fn cost_fetch_from(&mut self, hosts: &[HostId]) -> Vec<Effect> {
        let mut fx = Vec::new();
        let mut busy = false;
        for &h in hosts {
            if !self.host_connected(h) {
                continue;
            }
            let c = &mut self.cost;
            if c.in_flight.contains(&h) {
                busy = true;
                continue;
            }
            c.in_flight.insert(h);
            c.asked_at = Some(self.now);
            let args = UsageSummaryArgs {
                group_by: Some("container".into()),
                since: Some("today".into()),
                ..UsageSummaryArgs::default()
            };
            fx.push(self.send_on(h, Tag::CostToday, Command::UsageSummary(args)));
        }
        // An awaited answer may predate the calls that made this one due: ask again later.
        if busy {
            self.cost.due = true;
        } else if !fx.is_empty() {
            self.cost.due = false;
        }
        fx
    }

    /// `llm_call.new`, and the clock: asks when a call came and the last request is old
    /// enough.
    pub(super) fn cost_poke(&mut self, call: bool) -> Vec<Effect> {
        let c = &mut self.cost;
        c.due |= call;
        let old_enough = c.asked_at.is_none_or(|at| {
            self.now.duration_since(at).unwrap_or_default() + TICK_SLACK >= COST_REFRESH
        });
        if c.due && old_enough {
            self.cost_fetch()
        } else {
            Vec::new()
        }
    }

    /// The answer of host `self.route`.
    pub(super) fn cost_reply(&mut self, outcome: Result<Reply, String>) {
        let h = self.route;
        let c = &mut self.cost;
        c.in_flight.remove(&h);
        match outcome.and_then(super::daemon::data::<Summary>) {
            Ok(s) => {
                c.by_host
                    .insert(h, (s.total.cost_micro_usd, s.total.unpriced_calls));
            }
            Err(_) => {
                c.by_host.remove(&h);
            }
        }
        c.micro_usd = (!c.by_host.is_empty()).then(|| c.by_host.values().map(|v| v.0).sum());
        c.unpriced = c.by_host.values().map(|v| v.1).sum();
    }

    /// The link went down: the answer to a request in flight is lost.
    pub(super) fn cost_disconnected(&mut self) {
        let h = self.route;
        self.cost.in_flight.remove(&h);
    }
}
