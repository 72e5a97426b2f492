//! The one path every decision and rule or silent-mode change takes: a [`Plan`] of what
//! changes, computed under `write_lock`, goes through [`Policy::apply`], which
//!
//! 1. commits it to the store (nothing else happens if that fails: the caller's reply is an
//!    error and memory still matches the disk);
//! 2. applies it in memory;
//! 3. cuts the live connections of revoked rules;
//! 4. publishes its events, in a fixed order: rules created/updated, rules deleted, pending
//!    requests allowed/dismissed, silent mode changed;
//! 5. wakes the held connections, which re-evaluate — whenever an event was published: a change
//!    nobody is told about decides nobody.
//!
//! So the order cannot be changed nor a step forgotten by one mutation. Two writes stay
//! outside, being attempts rather than decisions: a hold registering its pending request
//! (published by the hold once its waiter is counted) and the periodic `last_used_at` flush.

use greyproxy_protocol::event::{PendingDecided, RuleDeleted};
use greyproxy_protocol::{Action, AllowAllStatus, Event};
use tokio::sync::MutexGuard;

use super::allow_all::AllowAllState;
use super::engine::Policy;
use super::error::PolicyError;
use crate::records::{PendingRecord, RuleRecord};
use crate::store::Op;

/// Proof that the caller holds `write_lock`, so that plans are made and applied one at a
/// time, in the order the store sees them.
pub(super) type Writing<'a> = MutexGuard<'a, ()>;

/// The event a rule put publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RuleEvent {
    /// `rule.created`.
    Created,
    /// `rule.updated`.
    Updated,
    /// None (the built-in rules, seeded before anyone listens).
    Quiet,
}

/// What one mutation changes. Everything in it is committed in one store transaction.
#[derive(Debug, Default)]
pub(super) struct Plan {
    /// Unix seconds the plan was made at (the `now` of the rules' wire forms).
    pub(super) now: u64,
    /// Rules added or replaced (by id), each with its event.
    pub(super) put_rules: Vec<(RuleRecord, RuleEvent)>,
    /// Rules removed; each publishes `rule.deleted`.
    pub(super) delete_rules: Vec<u64>,
    /// Pending requests removed, each with the rule that now decides it: an allow publishes
    /// `pending_request.allowed`, a deny or none (a dismissal) `pending_request.dismissed`.
    pub(super) resolved: Vec<(PendingRecord, Option<RuleRecord>)>,
    /// The new silent-mode state and the status to publish (`None`: no event).
    pub(super) allow_all: Option<(AllowAllState, Option<AllowAllStatus>)>,
    /// Other settings written in the same transaction.
    pub(super) settings: Vec<Op>,
    /// Rules whose live connections are cut, with the log line saying why.
    pub(super) cut: Vec<(u64, &'static str)>,
}

impl Plan {
    /// An empty plan made at `now`.
    pub(super) fn at(now: u64) -> Plan {
        Plan {
            now,
            ..Plan::default()
        }
    }

    /// The store writes, in one transaction.
    fn ops(&self) -> Result<Vec<Op>, PolicyError> {
        let mut ops: Vec<Op> = self
            .put_rules
            .iter()
            .map(|(r, _)| Op::PutRule(r.clone()))
            .collect();
        ops.extend(self.delete_rules.iter().map(|id| Op::DeleteRule(*id)));
        ops.extend(self.resolved.iter().map(|(p, _)| Op::DeletePending(p.id)));
        if let Some((state, _)) = &self.allow_all {
            ops.push(state.setting_op()?);
        }
        ops.extend(self.settings.iter().cloned());
        Ok(ops)
    }

    /// The events, in publishing order.
    fn events(&self) -> Vec<Event> {
        let now = self.now;
        let mut out = Vec::new();
        for (r, ev) in &self.put_rules {
            match ev {
                RuleEvent::Created => out.push(Event::RuleCreated(r.to_wire(now))),
                RuleEvent::Updated => out.push(Event::RuleUpdated(r.to_wire(now))),
                RuleEvent::Quiet => {}
            }
        }
        out.extend(
            self.delete_rules
                .iter()
                .map(|&rule_id| Event::RuleDeleted(RuleDeleted { rule_id })),
        );
        for (p, winner) in &self.resolved {
            let ev = PendingDecided {
                pending_id: p.id,
                rule: winner.as_ref().map(|w| w.to_wire(now)),
            };
            out.push(match winner.as_ref().map(|w| w.action) {
                Some(Action::Allow) => Event::PendingAllowed(ev),
                _ => Event::PendingDismissed(ev),
            });
        }
        if let Some((_, Some(status))) = &self.allow_all {
            out.push(Event::AllowAllChanged(status.clone()));
        }
        out
    }
}

impl Policy {
    /// Commits `plan`, applies it in memory, cuts revoked connections, publishes its events
    /// and wakes the holds — in that order, always. On a store error nothing has changed.
    pub(super) async fn apply(&self, _w: &Writing<'_>, plan: Plan) -> Result<(), PolicyError> {
        self.commit(plan.ops()?).await?;
        {
            let mut st = self.lock();
            for (r, _) in &plan.put_rules {
                match st.rules.iter_mut().find(|x| x.id == r.id) {
                    Some(x) => *x = r.clone(),
                    None => st.rules.push(r.clone()),
                }
            }
            st.rules.retain(|r| !plan.delete_rules.contains(&r.id));
            for (p, _) in &plan.resolved {
                st.pending.remove(&p.id);
            }
            if let Some((state, _)) = &plan.allow_all {
                st.allow_all = state.clone();
            }
        }
        for &(rule_id, why) in &plan.cut {
            let cut = self.tracker.cancel_rule(rule_id);
            if cut > 0 {
                tracing::info!(rule_id, cut, "{why}");
            }
        }
        let events = plan.events();
        let wake = !events.is_empty();
        for e in events {
            self.events.publish(e);
        }
        if wake {
            self.bump();
        }
        Ok(())
    }
}
