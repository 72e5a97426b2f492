//! Today's LLM cost across all containers, for the status bar: `usage_summary` with
//! `since: "today"` (UTC midnight), asked for on every resync and again when `llm_call.new`
//! says a call was priced — at most every [`COST_REFRESH`], however fast calls arrive. A
//! daemon without the LLM layer (off, or an older build) answers with an error: the status bar
//! then shows no cost at all.

use std::time::{Duration, SystemTime};

use greyproxy_protocol::command::UsageSummaryArgs;
use greyproxy_protocol::{Command, Reply};
use serde::Deserialize;

use super::{App, ConnState, Effect, Tag, send};

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
    /// A request is in flight.
    in_flight: bool,
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
    /// Asks now (resync), unless a request is in flight or the link is down.
    pub(super) fn cost_fetch(&mut self) -> Vec<Effect> {
        let c = &mut self.cost;
        if c.in_flight || self.conn != ConnState::Connected {
            c.due |= c.in_flight;
            return Vec::new();
        }
        c.in_flight = true;
        c.due = false;
        c.asked_at = Some(self.now);
        let args = UsageSummaryArgs {
            group_by: Some("container".into()),
            since: Some("today".into()),
            ..UsageSummaryArgs::default()
        };
        vec![send(Tag::CostToday, Command::UsageSummary(args))]
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

    /// The answer.
    pub(super) fn cost_reply(&mut self, outcome: Result<Reply, String>) {
        let c = &mut self.cost;
        c.in_flight = false;
        match outcome.and_then(super::daemon::data::<Summary>) {
            Ok(s) => {
                c.micro_usd = Some(s.total.cost_micro_usd);
                c.unpriced = s.total.unpriced_calls;
            }
            Err(_) => {
                c.micro_usd = None;
                c.unpriced = 0;
            }
        }
    }

    /// The link went down: the answer to a request in flight is lost.
    pub(super) fn cost_disconnected(&mut self) {
        self.cost.in_flight = false;
    }
}
