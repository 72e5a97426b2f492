//! Decisions and rule edits: allow, deny, dismiss, create/update/delete rule. Each validates
//! and makes a `Plan` under `write_lock`, then `Policy::apply` commits it to the store before
//! memory changes and before the caller replies (docs/design.md#durability), publishes the
//! events and lets held connections re-evaluate.

use std::sync::Arc;

use greyproxy_protocol::command::{CreateRuleArgs, DecideArgs, UpdateRuleArgs};
use greyproxy_protocol::{Action, RuleType};

use super::apply::{Plan, RuleEvent};
use super::duration::{RuleDuration, parse_duration};
use super::engine::Policy;
use super::error::PolicyError;
use super::matching::find_matching;
use super::pattern::{
    normalize_destination_pattern, validate_container_pattern, validate_destination_pattern,
    validate_literal_host, validate_port_pattern,
};
use super::scope::patterns_for;
use crate::records::{PendingRecord, RuleRecord};
use crate::store::{IdKind, Op};
use crate::time::parse_timestamp;

/// Destinations allowed for everyone on first start (greyproxy's built-in rules).
pub(crate) const BUILTIN_DESTINATIONS: &[&str] = &["127.0.0.1", "::1", "localhost"];

const BUILTINS_SEEDED: &str = "builtins_seeded";

/// Parses an optional duration argument; absent or empty = permanent.
fn duration_arg(d: Option<&str>) -> Result<RuleDuration, PolicyError> {
    match d.map(str::trim) {
        None | Some("") => Ok(RuleDuration::Permanent),
        Some(s) => Ok(parse_duration(s)?),
    }
}

fn same_key(r: &RuleRecord, c: &str, d: &str, p: &str, a: Action) -> bool {
    r.container_pattern == c && r.destination_pattern == d && r.port_pattern == p && r.action == a
}

impl Policy {
    /// Creates the built-in localhost allow rules once per store (deleting them later sticks).
    pub(crate) async fn seed_builtins(self: &Arc<Self>) -> Result<(), PolicyError> {
        if self.store.get_setting(BUILTINS_SEEDED)?.is_some() {
            return Ok(());
        }
        let w = self.write_lock.lock().await;
        let now = self.clock.now_secs();
        let mut plan = Plan::at(now);
        for dest in BUILTIN_DESTINATIONS {
            let exists = self
                .lock()
                .rules
                .iter()
                .any(|r| same_key(r, "*", dest, "*", Action::Allow));
            if exists {
                continue;
            }
            let r = RuleRecord {
                id: self.store.next_id(IdKind::Rule),
                container_pattern: "*".into(),
                destination_pattern: (*dest).into(),
                port_pattern: "*".into(),
                action: Action::Allow,
                rule_type: RuleType::Permanent,
                created_at: now,
                expires_at: None,
                last_used_at: None,
                created_by: "builtin".into(),
                notes: Some("built-in: loopback is always reachable".into()),
                session_id: None,
            };
            plan.put_rules.push((r, RuleEvent::Quiet));
        }
        plan.settings
            .push(Op::PutSetting(BUILTINS_SEEDED.into(), b"1".to_vec()));
        self.apply(&w, plan).await
    }

    /// `allow`: creates (or reuses) an allow rule for the pending request with the given scope
    /// and duration; returns the rule.
    pub(crate) async fn allow(
        self: &Arc<Self>,
        args: &DecideArgs,
    ) -> Result<RuleRecord, PolicyError> {
        self.decide_pending(args, Action::Allow).await
    }

    /// `deny`: the same with a deny rule; the held connections end blocked.
    pub(crate) async fn deny(
        self: &Arc<Self>,
        args: &DecideArgs,
    ) -> Result<RuleRecord, PolicyError> {
        self.decide_pending(args, Action::Deny).await
    }

    async fn decide_pending(
        self: &Arc<Self>,
        args: &DecideArgs,
        action: Action,
    ) -> Result<RuleRecord, PolicyError> {
        let duration = duration_arg(args.duration.as_deref())?;
        let w = self.write_lock.lock().await;
        let pending = self
            .lock()
            .pending
            .get(&args.pending_id)
            .cloned()
            .ok_or(PolicyError::PendingNotFound(args.pending_id))?;
        validate_literal_host(pending.display_host())?;
        let p = patterns_for(
            args.scope.unwrap_or_default(),
            &pending.container_name,
            pending.display_host(),
            pending.destination_port,
        );
        let now = self.clock.now_secs();
        let existing = self
            .lock()
            .rules
            .iter()
            .find(|r| {
                r.is_active(now)
                    && same_key(
                        r,
                        &p.container_pattern,
                        &p.destination_pattern,
                        &p.port_pattern,
                        action,
                    )
            })
            .cloned();
        let rule = match existing {
            Some(r) => r,
            None => RuleRecord {
                id: self.store.next_id(IdKind::Rule),
                container_pattern: p.container_pattern,
                destination_pattern: p.destination_pattern,
                port_pattern: p.port_pattern,
                action,
                rule_type: duration.rule_type(),
                created_at: now,
                expires_at: duration.expires_at(now),
                last_used_at: None,
                created_by: "admin".into(),
                notes: args.notes.clone().filter(|n| !n.is_empty()),
                session_id: None,
            },
        };
        let event = if self.lock().rules.iter().any(|r| r.id == rule.id) {
            RuleEvent::Updated
        } else {
            RuleEvent::Created
        };
        // The pending request itself goes whatever rule now wins for it (a better-ranked deny
        // may shadow a new allow); its siblings go with it.
        let group = self.group_of(&pending);
        let plan = self.plan_rule_change(rule.clone(), event, &group, now);
        self.apply(&w, plan).await?;
        Ok(rule)
    }

    /// `dismiss`: drops the pending request (and siblings) without a rule; its held
    /// connections end blocked.
    pub(crate) async fn dismiss(self: &Arc<Self>, pending_id: u64) -> Result<(), PolicyError> {
        let w = self.write_lock.lock().await;
        let pending = self
            .lock()
            .pending
            .get(&pending_id)
            .cloned()
            .ok_or(PolicyError::PendingNotFound(pending_id))?;
        let mut plan = Plan::at(self.clock.now_secs());
        plan.resolved = self
            .group_of(&pending)
            .into_iter()
            .map(|p| (p, None))
            .collect();
        self.apply(&w, plan).await
    }

    /// The pending request and its siblings: same container and port, and the same resolved
    /// hostname (other IPs of the same host).
    fn group_of(&self, pending: &PendingRecord) -> Vec<PendingRecord> {
        let st = self.lock();
        st.pending
            .values()
            .filter(|p| {
                p.id == pending.id
                    || (pending.resolved_hostname.is_some()
                        && p.container_name == pending.container_name
                        && p.destination_port == pending.destination_port
                        && p.resolved_hostname == pending.resolved_hostname)
            })
            .cloned()
            .collect()
    }

    /// The plan for a new or changed rule: it, plus the removal of every pending request the
    /// new rule set decides (and of `forced`, whatever decides them), each with its winner.
    /// Caller holds `write_lock`.
    fn plan_rule_change(
        &self,
        rule: RuleRecord,
        event: RuleEvent,
        forced: &[PendingRecord],
        now: u64,
    ) -> Plan {
        let st = self.lock();
        let mut rules = st.rules.clone();
        match rules.iter_mut().find(|x| x.id == rule.id) {
            Some(x) => *x = rule.clone(),
            None => rules.push(rule.clone()),
        }
        let mut plan = Plan::at(now);
        for p in st.pending.values() {
            let winner = find_matching(
                &rules,
                &p.container_name,
                &p.destination_host,
                p.destination_port,
                p.resolved_hostname.as_deref(),
                now,
            )
            .cloned();
            let is_forced = forced.iter().any(|f| f.id == p.id);
            if winner.is_some() || is_forced {
                plan.resolved.push((p.clone(), winner));
            }
        }
        plan.put_rules.push((rule, event));
        plan
    }

    /// `create_rule`: validates and stores a rule; an identical active rule is returned
    /// unchanged instead (as greyproxy). Held connections it decides are released.
    pub(crate) async fn create_rule(
        self: &Arc<Self>,
        args: &CreateRuleArgs,
    ) -> Result<RuleRecord, PolicyError> {
        let container = args.container_pattern.trim().to_string();
        let destination = normalize_destination_pattern(&args.destination_pattern);
        let port = args
            .port_pattern
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .unwrap_or("*")
            .to_string();
        validate_container_pattern(&container)?;
        validate_destination_pattern(&destination)?;
        validate_port_pattern(&port)?;
        let action = args.action.unwrap_or(Action::Allow);
        let now = self.clock.now_secs();
        let (expires_at, rule_type) = match (&args.expires_at, &args.duration) {
            (Some(_), Some(_)) => {
                return Err(PolicyError::Invalid(
                    "give either expires_at or duration, not both".into(),
                ));
            }
            (Some(e), None) if !e.trim().is_empty() => {
                let t = parse_timestamp(e).ok_or_else(|| {
                    PolicyError::Invalid(format!(
                        "invalid expires_at {e:?}: expected RFC 3339 like 2026-04-22T10:00:00Z"
                    ))
                })?;
                (Some(t), RuleType::Temporary)
            }
            (_, d) => {
                let d = duration_arg(d.as_deref())?;
                (d.expires_at(now), d.rule_type())
            }
        };
        let w = self.write_lock.lock().await;
        let existing = self
            .lock()
            .rules
            .iter()
            .find(|r| r.is_active(now) && same_key(r, &container, &destination, &port, action))
            .cloned();
        if let Some(r) = existing {
            return Ok(r);
        }
        let rule = RuleRecord {
            id: self.store.next_id(IdKind::Rule),
            container_pattern: container,
            destination_pattern: destination,
            port_pattern: port,
            action,
            rule_type,
            created_at: now,
            expires_at,
            last_used_at: None,
            created_by: "admin".into(),
            notes: args.notes.clone().filter(|n| !n.is_empty()),
            session_id: None,
        };
        let plan = self.plan_rule_change(rule.clone(), RuleEvent::Created, &[], now);
        self.apply(&w, plan).await?;
        Ok(rule)
    }

    /// `update_rule`: changes the given fields. A rule that becomes a deny cuts the live
    /// connections it allowed.
    pub(crate) async fn update_rule(
        self: &Arc<Self>,
        args: &UpdateRuleArgs,
    ) -> Result<RuleRecord, PolicyError> {
        let w = self.write_lock.lock().await;
        let mut rule = self
            .lock()
            .rules
            .iter()
            .find(|r| r.id == args.rule_id)
            .cloned()
            .ok_or(PolicyError::RuleNotFound(args.rule_id))?;
        let now = self.clock.now_secs();
        if let Some(c) = &args.container_pattern {
            validate_container_pattern(c.trim())?;
            rule.container_pattern = c.trim().to_string();
        }
        if let Some(d) = &args.destination_pattern {
            let d = normalize_destination_pattern(d);
            validate_destination_pattern(&d)?;
            rule.destination_pattern = d;
        }
        if let Some(p) = &args.port_pattern {
            validate_port_pattern(p.trim())?;
            rule.port_pattern = p.trim().to_string();
        }
        if let Some(a) = args.action {
            rule.action = a;
        }
        if let Some(n) = &args.notes {
            rule.notes = n.clone();
        }
        match (&args.expires_at, &args.duration) {
            (Some(_), Some(_)) => {
                return Err(PolicyError::Invalid(
                    "give either expires_at or duration, not both".into(),
                ));
            }
            (Some(None), None) => {
                rule.expires_at = None;
                rule.rule_type = RuleType::Permanent;
            }
            (Some(Some(e)), None) => {
                rule.expires_at = Some(parse_timestamp(e).ok_or_else(|| {
                    PolicyError::Invalid(format!(
                        "invalid expires_at {e:?}: expected RFC 3339 like 2026-04-22T10:00:00Z"
                    ))
                })?);
                rule.rule_type = RuleType::Temporary;
            }
            (None, Some(d)) => {
                let d = duration_arg(Some(d))?;
                rule.expires_at = d.expires_at(now);
                rule.rule_type = d.rule_type();
            }
            (None, None) => {}
        }
        let clash = self
            .lock()
            .rules
            .iter()
            .find(|r| {
                r.id != rule.id
                    && r.is_active(now)
                    && same_key(
                        r,
                        &rule.container_pattern,
                        &rule.destination_pattern,
                        &rule.port_pattern,
                        rule.action,
                    )
            })
            .map(|r| r.id);
        if let Some(id) = clash {
            return Err(PolicyError::Duplicate(id));
        }
        let mut plan = self.plan_rule_change(rule.clone(), RuleEvent::Updated, &[], now);
        if rule.action == Action::Deny {
            plan.cut
                .push((rule.id, "rule became deny: connections cut"));
        }
        self.apply(&w, plan).await?;
        Ok(rule)
    }

    /// `delete_rule`: removes the rule and cuts the live connections it allowed.
    pub(crate) async fn delete_rule(self: &Arc<Self>, rule_id: u64) -> Result<(), PolicyError> {
        let w = self.write_lock.lock().await;
        if !self.lock().rules.iter().any(|r| r.id == rule_id) {
            return Err(PolicyError::RuleNotFound(rule_id));
        }
        let mut plan = Plan::at(self.clock.now_secs());
        plan.delete_rules.push(rule_id);
        plan.cut.push((rule_id, "rule deleted: connections cut"));
        self.apply(&w, plan).await
    }
}
