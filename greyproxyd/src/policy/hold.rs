//! Holds: deciding a connection, creating or bumping its pending request, and waiting —
//! with the waiter count kept right however the wait ends — until a change decides it.

use std::future::Future;
use std::sync::Arc;

use greyproxy_protocol::event::WaitersChanged;
use greyproxy_protocol::{Decision, Event};
use tokio::time::Instant;

use super::engine::{ConnRequest, Eval, Policy, Reason, Verdict};
use super::error::PolicyError;
use super::pattern::validate_literal_host;
use crate::records::{PendingRecord, RequestLogRecord, RuleRecord};
use crate::store::{IdKind, Op};

/// How long a new pending request without a tool call behind it waits for the LLM call of its
/// container (still queued for dissection, or not yet recorded: on a loaded machine the
/// lowest-priority dissection thread can take seconds) before it gives up on naming one.
const LATE_CONTEXT_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

impl Policy {
    /// Decides a connection. With no deciding rule the connection is held: a pending request is
    /// created (or bumped) and this future waits until a change decides it, its pending request
    /// is dismissed, the hold times out, or `client_gone` completes. Dropping the future
    /// mid-hold is safe: the waiter count and the log row are still taken care of.
    pub(crate) async fn decide(
        self: &Arc<Self>,
        req: &ConnRequest,
        client_gone: impl Future<Output = ()>,
    ) -> Verdict {
        let start = self.clock.instant();
        if self.is_self_host(&req.host, req.port) {
            return self.finish(req, start, Decision::Blocked, None, Reason::SelfAddress);
        }
        // A destination that is no plain host could only ever become a wildcard-like rule.
        if validate_literal_host(&req.host).is_err() {
            return self.finish(
                req,
                start,
                Decision::Blocked,
                None,
                Reason::InvalidDestination,
            );
        }
        if let Eval::Decided(d, rule, reason) = self.evaluate(req) {
            return self.finish(req, start, d, rule, reason);
        }
        let mut changed = self.changed.subscribe();
        let (record, created) = {
            let _w = self.write_lock.lock().await;
            changed.borrow_and_update();
            // Something may have decided this destination while we waited for the lock.
            if let Eval::Decided(d, rule, reason) = self.evaluate(req) {
                return self.finish(req, start, d, rule, reason);
            }
            match self.register_pending(req).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "cannot record pending request; blocking");
                    return self.finish(req, start, Decision::Blocked, None, Reason::StoreError);
                }
            }
        };
        let pending_id = record.id;
        let (prev, cur) = self.count_waiter(pending_id, 1);
        self.publish_pending(&record, created);
        self.publish_waiters(req, pending_id, prev, cur);
        let mut guard = HoldGuard {
            policy: self.clone(),
            req: req.clone(),
            pending_id,
            start,
            done: false,
        };
        let deadline = tokio::time::sleep(self.hold_timeout());
        tokio::pin!(deadline);
        tokio::pin!(client_gone);
        let (d, rule, reason) = loop {
            tokio::select! {
                r = changed.changed() => {
                    if r.is_err() {
                        break (Decision::Blocked, None, Reason::Shutdown);
                    }
                    if let Eval::Decided(d, rule, reason) = self.evaluate(req) {
                        break (d, rule, reason);
                    }
                    if !self.lock().pending.contains_key(&pending_id) {
                        // An allow adds its rule and removes the pending request together, and
                        // may have done so between the evaluation above and this check (a hold
                        // woken by an earlier change): only a removal without a deciding rule
                        // is a dismissal.
                        if let Eval::Decided(d, rule, reason) = self.evaluate(req) {
                            break (d, rule, reason);
                        }
                        break (Decision::Blocked, None, Reason::Dismissed);
                    }
                }
                _ = &mut deadline => break (Decision::Blocked, None, Reason::HoldTimeout),
                _ = &mut client_gone => break (Decision::Blocked, None, Reason::ClientGone),
                _ = self.stopping.cancelled() => break (Decision::Blocked, None, Reason::Shutdown),
            }
        };
        guard.done = true;
        drop(guard);
        self.finish(req, start, d, rule, reason)
    }

    /// Logs the decision and, for rule-allowed connections, registers them for revocation.
    fn finish(
        &self,
        req: &ConnRequest,
        start: Instant,
        decision: Decision,
        rule_id: Option<u64>,
        reason: Reason,
    ) -> Verdict {
        let mut row = self.log_row(req, start, decision, rule_id, reason);
        let pending_log = if req.tunnel && decision == Decision::Allowed {
            Some((self.logs.clone(), row))
        } else {
            if decision == Decision::Allowed {
                // Absolute-form requests are always recorded as plaintext HTTP.
                row.mitm = Some(greyproxy_protocol::MitmOutcome::Http);
            }
            self.logs.record(row);
            None
        };
        let tracked = match (decision, rule_id) {
            (Decision::Allowed, Some(id)) => Some(self.tracker.register(id)),
            _ => None,
        };
        Verdict {
            decision,
            rule_id,
            reason,
            tracked,
            pending_log,
        }
    }

    fn log(
        &self,
        req: &ConnRequest,
        start: Instant,
        decision: Decision,
        rule_id: Option<u64>,
        reason: Reason,
    ) {
        let row = self.log_row(req, start, decision, rule_id, reason);
        self.logs.record(row);
    }

    fn log_row(
        &self,
        req: &ConnRequest,
        start: Instant,
        decision: Decision,
        rule_id: Option<u64>,
        reason: Reason,
    ) -> RequestLogRecord {
        let rule_summary = rule_id.and_then(|id| {
            self.lock()
                .rules
                .iter()
                .find(|r| r.id == id)
                .map(RuleRecord::summary)
        });
        RequestLogRecord {
            id: 0,
            timestamp: self.clock.now_secs(),
            container_name: req.container.clone(),
            container_id: None,
            destination_host: req.host.clone(),
            destination_port: req.port,
            resolved_hostname: req.resolved.clone(),
            method: req.front.as_str().to_string(),
            result: decision,
            rule_id,
            rule_summary,
            response_time_ms: start.elapsed().as_millis() as u64,
            reason: reason.as_str().to_string(),
            mitm: None,
        }
    }

    /// Creates or bumps the pending request for `req` (caller holds `write_lock`); returns it and
    /// whether it is new. Publishing is left to the caller, once the waiter is counted.
    async fn register_pending(
        self: &Arc<Self>,
        req: &ConnRequest,
    ) -> Result<(PendingRecord, bool), PolicyError> {
        let now = self.clock.now_secs();
        let (record, created) = {
            let st = self.lock();
            let same = st.pending.values().find(|p| {
                p.container_name == req.container
                    && p.destination_host == req.host
                    && p.destination_port == req.port
            });
            let sibling = || {
                let resolved = req.resolved.as_deref()?;
                st.pending.values().find(|p| {
                    p.container_name == req.container
                        && p.destination_port == req.port
                        && p.resolved_hostname.as_deref() == Some(resolved)
                })
            };
            match same.or_else(sibling) {
                Some(p) => {
                    let mut p = p.clone();
                    p.last_seen = now;
                    p.attempt_count += 1;
                    if p.resolved_hostname.is_none() {
                        p.resolved_hostname = req.resolved.clone();
                    }
                    (p, false)
                }
                None => (
                    PendingRecord {
                        id: self.store.next_id(IdKind::Pending),
                        container_name: req.container.clone(),
                        container_id: String::new(),
                        destination_host: req.host.clone(),
                        destination_port: req.port,
                        resolved_hostname: req.resolved.clone(),
                        first_seen: now,
                        last_seen: now,
                        attempt_count: 1,
                        llm_context: self.recent.context_for(&req.container, &req.host, now),
                    },
                    true,
                ),
            }
        };
        if created {
            self.commit(vec![Op::PutPending(record.clone())]).await?;
            self.lock().pending.insert(record.id, record.clone());
            // Only for a container that speaks to an LLM: any other held request would keep a
            // task alive for nothing.
            if record.llm_context.is_none() && self.recent.active(&req.container) {
                self.clone().attach_context_late(record.id, req.clone());
            }
        } else {
            // Another attempt at a known destination changes only its counters: written by the
            // periodic flush rather than one durable commit each, which, under `write_lock`,
            // would queue every decision behind a burst of held clients (one fsync apiece).
            let mut st = self.lock();
            st.pending.insert(record.id, record.clone());
            if !st.dirty_pending.contains(&record.id) {
                st.dirty_pending.push(record.id);
            }
        }
        Ok((record, created))
    }

    /// The LLM call behind a new pending request may still be queued for dissection, or not yet
    /// recorded (the tool ran as soon as the response's last bytes arrived): wait for it a
    /// while, then attach its context and publish `pending_request.updated`.
    fn attach_context_late(self: Arc<Self>, pending_id: u64, req: ConnRequest) {
        tokio::spawn(async move {
            let clock = self.clock;
            let found =
                self.recent
                    .context_within(&req.container, &req.host, LATE_CONTEXT_WAIT, || {
                        clock.now_secs()
                    });
            let ctx = tokio::select! {
                found = found => found,
                _ = self.stopping.cancelled() => return,
            };
            let Some(ctx) = ctx else {
                return;
            };
            let record = {
                let mut st = self.lock();
                let Some(p) = st.pending.get_mut(&pending_id) else {
                    return;
                };
                if p.llm_context.is_some() {
                    return;
                }
                p.llm_context = Some(ctx);
                let record = p.clone();
                if !st.dirty_pending.contains(&pending_id) {
                    st.dirty_pending.push(pending_id);
                }
                record
            };
            self.publish_pending(&record, false);
        });
    }

    /// Publishes `pending_request.created`/`updated` with the live waiting count.
    fn publish_pending(&self, record: &PendingRecord, created: bool) {
        let waiting = self.lock().waiters.get(&record.id).copied().unwrap_or(0);
        let wire = record.to_wire(waiting);
        self.events.publish(if created {
            Event::PendingCreated(wire)
        } else {
            Event::PendingUpdated(wire)
        });
    }

    /// Changes the held-connection count of a pending request; returns (before, after).
    fn count_waiter(&self, pending_id: u64, delta: i64) -> (u64, u64) {
        let mut st = self.lock();
        let e = st.waiters.entry(pending_id).or_insert(0);
        let prev = *e;
        *e = e.saturating_add_signed(delta);
        let cur = *e;
        if cur == 0 {
            st.waiters.remove(&pending_id);
        }
        (prev, cur)
    }

    /// Publishes `waiters.changed`.
    fn publish_waiters(&self, req: &ConnRequest, pending_id: u64, prev: u64, cur: u64) {
        self.events.publish(Event::WaitersChanged(WaitersChanged {
            container_name: req.container.clone(),
            host: req.host.clone(),
            port: req.port,
            previous_count: prev,
            current_count: cur,
            pending_id: Some(pending_id),
        }));
    }
}

/// Keeps the waiter count right however a hold ends, including when its future is dropped.
struct HoldGuard {
    policy: Arc<Policy>,
    req: ConnRequest,
    pending_id: u64,
    start: Instant,
    done: bool,
}

impl Drop for HoldGuard {
    fn drop(&mut self) {
        let (prev, cur) = self.policy.count_waiter(self.pending_id, -1);
        self.policy
            .publish_waiters(&self.req, self.pending_id, prev, cur);
        if !self.done {
            // The connection's task was dropped mid-hold (client gone or shutdown).
            self.policy.log(
                &self.req,
                self.start,
                Decision::Blocked,
                None,
                Reason::ClientGone,
            );
        }
    }
}
