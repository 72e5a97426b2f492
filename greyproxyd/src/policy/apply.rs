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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use greyproxy_protocol::{AllowAllMode, RuleType};

    use super::*;

    fn rule(id: u64, action: Action) -> RuleRecord {
        RuleRecord {
            id,
            container_pattern: "*".into(),
            destination_pattern: "example.com".into(),
            port_pattern: "*".into(),
            action,
            rule_type: RuleType::Permanent,
            created_at: 0,
            expires_at: None,
            last_used_at: None,
            created_by: "admin".into(),
            notes: None,
            session_id: None,
        }
    }

    fn pending(id: u64) -> PendingRecord {
        PendingRecord {
            id,
            container_name: "c".into(),
            container_id: String::new(),
            destination_host: "example.com".into(),
            destination_port: 443,
            resolved_hostname: None,
            first_seen: 0,
            last_seen: 0,
            attempt_count: 1,
            llm_context: None,
        }
    }

    #[test]
    fn one_plan_is_one_transaction_and_its_events_come_in_a_fixed_order() {
        let on = AllowAllState {
            mode: Some(AllowAllMode::Allow),
            expires_at: Some(100),
            epoch: 1,
        };
        let status = on.status(10);
        let plan = Plan {
            now: 10,
            put_rules: vec![
                (rule(1, Action::Allow), RuleEvent::Created),
                (rule(2, Action::Deny), RuleEvent::Quiet),
                (rule(3, Action::Deny), RuleEvent::Updated),
            ],
            delete_rules: vec![4],
            resolved: vec![
                (pending(5), Some(rule(1, Action::Allow))),
                (pending(6), Some(rule(3, Action::Deny))),
                (pending(7), None),
            ],
            allow_all: Some((on, Some(status.clone()))),
            settings: vec![Op::PutSetting("k".into(), b"1".to_vec())],
            cut: vec![(4, "gone")],
        };
        let kinds: Vec<String> = plan
            .ops()
            .unwrap()
            .iter()
            .map(|op| match op {
                Op::PutRule(r) => format!("put rule {}", r.id),
                Op::DeleteRule(id) => format!("delete rule {id}"),
                Op::DeletePending(id) => format!("delete pending {id}"),
                Op::PutSetting(k, _) => format!("put {k}"),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "put rule 1",
                "put rule 2",
                "put rule 3",
                "delete rule 4",
                "delete pending 5",
                "delete pending 6",
                "delete pending 7",
                "put allow_all",
                "put k",
            ]
        );
        let events: Vec<(&str, Option<u64>)> = plan
            .events()
            .iter()
            .map(|e| {
                let id = match e {
                    Event::RuleCreated(r) | Event::RuleUpdated(r) => Some(r.id),
                    Event::RuleDeleted(d) => Some(d.rule_id),
                    Event::PendingAllowed(p) | Event::PendingDismissed(p) => Some(p.pending_id),
                    _ => None,
                };
                (e.event_type(), id)
            })
            .collect();
        assert_eq!(
            events,
            [
                ("rule.created", Some(1)),
                ("rule.updated", Some(3)),
                ("rule.deleted", Some(4)),
                ("pending_request.allowed", Some(5)),
                ("pending_request.dismissed", Some(6)),
                ("pending_request.dismissed", Some(7)),
                ("allowall.changed", None),
            ]
        );
        assert_eq!(plan.events().last(), Some(&Event::AllowAllChanged(status)));
    }

    #[test]
    fn a_plan_nobody_is_told_about_publishes_nothing() {
        let mut quiet = Plan::at(0);
        quiet
            .put_rules
            .push((rule(1, Action::Allow), RuleEvent::Quiet));
        quiet.allow_all = Some((AllowAllState::default(), None));
        assert!(quiet.events().is_empty());
        assert_eq!(
            quiet.ops().unwrap().last(),
            Some(&Op::DeleteSetting("allow_all".into()))
        );
    }
}
