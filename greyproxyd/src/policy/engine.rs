//! The policy engine: in-memory rules and pending requests (mirrored in the store) and the
//! evaluation of a destination against silent mode and the rules; holds live in [`super::hold`].
//!
//! Every mutation (in [`super::mutate`] and [`super::allow_all`]) takes `write_lock` and goes
//! through `Policy::apply` (policy/apply.rs): commit to the store, update memory, publish events, bump `changed`.
//! The time is read from one [`Clock`]. Held connections watch `changed` and
//! re-evaluate their own destination on every bump, so any change that decides them — an allow,
//! a rule created or edited, silent mode switched on — releases them at once, and a dismiss or
//! deny ends only the holds of the pending requests it removed (docs/design.md#holds).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use greyproxy_protocol::{Action, AllowAllMode, Decision, MitmOutcome};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::allow_all::AllowAllState;
use super::clock::Clock;
use super::error::PolicyError;
use super::matching::find_matching;
use super::selfaddr::SelfAddrs;
use super::tracker::{ConnTracker, Tracked};
use crate::credentials::service::Service;
use crate::dissect::recent::RecentCalls;
use crate::events::EventBus;
use crate::live::LiveCell;
use crate::records::{PendingRecord, RequestLogRecord, RuleRecord};
use crate::store::{LogSink, Op, Store, StoreError};

/// Which proxy front end a connection came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrontEnd {
    /// HTTP proxy (CONNECT or absolute-form).
    Http,
    /// SOCKS5 proxy.
    Socks5,
}

impl FrontEnd {
    /// The `method` column of request_logs.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            FrontEnd::Http => "HTTP",
            FrontEnd::Socks5 => "SOCKS5",
        }
    }
}

/// A connection asking to go somewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConnRequest {
    /// Client identity (container name).
    pub(crate) container: String,
    /// Destination host as asked (hostname or IP literal, no brackets).
    pub(crate) host: String,
    /// Destination port.
    pub(crate) port: u16,
    /// Hostname known for an IP destination.
    pub(crate) resolved: Option<String>,
    /// Front end.
    pub(crate) front: FrontEnd,
    /// A tunnel whose interception outcome is known only after the decision: the log row of an
    /// allowed tunnel waits for [`Verdict::log_mitm`] (or the verdict being dropped).
    pub(crate) tunnel: bool,
}

/// Why a decision came out as it did (the `reason` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// A rule decided.
    Rule,
    /// Silent mode decided.
    AllowAll,
    /// Nobody decided within the hold timeout.
    HoldTimeout,
    /// The pending request was dismissed.
    Dismissed,
    /// The client hung up while held.
    ClientGone,
    /// The daemon is shutting down.
    Shutdown,
    /// The destination is not a plain host name or IP (e.g. `*`, `a/b`); never held.
    InvalidDestination,
    /// The pending request could not be recorded (the store refused the write), so nobody
    /// could have decided it: refused at once instead of held.
    StoreError,
    /// The destination is one of the daemon's own listeners: refused before any rule.
    SelfAddress,
}

impl Reason {
    /// Wire spelling.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Reason::Rule => "rule",
            Reason::AllowAll => "allow_all",
            Reason::HoldTimeout => "hold_timeout",
            Reason::Dismissed => "dismissed",
            Reason::ClientGone => "client_gone",
            Reason::Shutdown => "shutdown",
            Reason::InvalidDestination => "invalid_destination",
            Reason::StoreError => "store_error",
            Reason::SelfAddress => "self",
        }
    }
}

/// Outcome of [`Policy::decide`].
#[derive(Debug)]
pub(crate) struct Verdict {
    /// Allowed or blocked.
    pub(crate) decision: Decision,
    /// Deciding rule.
    pub(crate) rule_id: Option<u64>,
    /// Why.
    pub(crate) reason: Reason,
    /// For connections allowed by a rule: cancelled when that rule is revoked. Keep it alive
    /// for the connection's lifetime.
    pub(crate) tracked: Option<Tracked>,
    /// The log row of an allowed tunnel, written by [`Verdict::log_mitm`] or on drop.
    pub(super) pending_log: Option<(LogSink, RequestLogRecord)>,
}

impl Drop for Verdict {
    fn drop(&mut self) {
        if let Some((sink, row)) = self.pending_log.take() {
            sink.record(row);
        }
    }
}

impl Verdict {
    /// Writes the deferred log row of an allowed tunnel with its interception outcome
    /// (`intercepted`, `http`, or why it went raw).
    pub(crate) fn log_mitm(&mut self, mitm: MitmOutcome) {
        if let Some((sink, mut row)) = self.pending_log.take() {
            row.mitm = Some(mitm);
            sink.record(row);
        }
    }

    /// True when the connection may proceed.
    pub(crate) fn allowed(&self) -> bool {
        self.decision == Decision::Allowed
    }
}

/// Mutable state behind one short-lived std mutex (never held across an await).
#[derive(Debug, Default)]
pub(super) struct State {
    pub(super) rules: Vec<RuleRecord>,
    pub(super) pending: BTreeMap<u64, PendingRecord>,
    /// Held connections per pending id.
    pub(super) waiters: HashMap<u64, u64>,
    pub(super) allow_all: AllowAllState,
    /// Rules whose `last_used_at` changed since the last flush.
    pub(super) dirty_rules: Vec<u64>,
    /// Pending requests bumped (attempt count, last seen) since the last flush.
    pub(super) dirty_pending: Vec<u64>,
}

/// The policy engine. Shared as `Arc<Policy>`.
#[derive(Debug)]
pub(crate) struct Policy {
    pub(super) state: Mutex<State>,
    pub(super) store: Arc<Store>,
    pub(super) events: Arc<EventBus>,
    pub(super) logs: LogSink,
    pub(super) tracker: ConnTracker,
    /// Bumped after every mutation; holders re-evaluate on each bump.
    pub(super) changed: watch::Sender<u64>,
    /// Serialises mutations so that the store and memory change in the same order.
    pub(super) write_lock: tokio::sync::Mutex<()>,
    /// The reloadable settings (the hold timeout).
    pub(super) live: Arc<LiveCell>,
    /// Where time is read.
    pub(super) clock: Clock,
    /// Cancelled at shutdown: every hold ends blocked with reason `shutdown`.
    pub(super) stopping: CancellationToken,
    /// Each container's latest LLM call, for the `llm_context` of new pending requests.
    pub(super) recent: Arc<RecentCalls>,
    /// The daemon's own listeners, never a destination (set once they are bound).
    pub(super) self_addrs: std::sync::RwLock<SelfAddrs>,
    /// Launcher sessions in learning mode (allow-all for their container).
    pub(super) credentials: std::sync::OnceLock<Arc<Service>>,
}

/// Result of evaluating a destination against silent mode and the rules.
pub(super) enum Eval {
    Decided(Decision, Option<u64>, Reason),
    Undecided,
}

impl Policy {
    /// Builds the engine from what the store holds, on the system clock.
    pub(crate) fn new(
        store: Arc<Store>,
        events: Arc<EventBus>,
        logs: LogSink,
        live: Arc<LiveCell>,
    ) -> Result<Arc<Policy>, StoreError> {
        Policy::with_clock(store, events, logs, live, Clock::system())
    }

    /// The same, reading the time from `clock`.
    pub(crate) fn with_clock(
        store: Arc<Store>,
        events: Arc<EventBus>,
        logs: LogSink,
        live: Arc<LiveCell>,
        clock: Clock,
    ) -> Result<Arc<Policy>, StoreError> {
        let rules = store.load_rules()?;
        let pending = store
            .load_pending()?
            .into_iter()
            .map(|p| (p.id, p))
            .collect();
        let allow_all = AllowAllState::load(&store, clock.now_secs());
        let (changed, _) = watch::channel(0);
        Ok(Arc::new(Policy {
            state: Mutex::new(State {
                rules,
                pending,
                waiters: HashMap::new(),
                allow_all,
                dirty_rules: Vec::new(),
                dirty_pending: Vec::new(),
            }),
            store,
            events,
            logs,
            tracker: ConnTracker::default(),
            changed,
            write_lock: tokio::sync::Mutex::new(()),
            live,
            clock,
            stopping: CancellationToken::new(),
            recent: Arc::new(RecentCalls::default()),
            self_addrs: std::sync::RwLock::new(SelfAddrs::default()),
            credentials: std::sync::OnceLock::new(),
        }))
    }

    /// The daemon's own listening addresses, refused as destinations from now on.
    pub(crate) fn set_self_addrs(&self, bound: &[std::net::SocketAddr]) {
        *self.self_addrs.write().unwrap_or_else(|p| p.into_inner()) = SelfAddrs::new(bound);
    }

    /// True when `host`:`port` (as asked) is one of the daemon's listeners.
    pub(crate) fn is_self_host(&self, host: &str, port: u16) -> bool {
        self.self_addrs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_host(host, port)
    }

    /// True when a connection reached one of the daemon's listeners (a name that resolved
    /// to it).
    pub(crate) fn is_self_addr(&self, addr: std::net::SocketAddr) -> bool {
        self.self_addrs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(addr.ip(), addr.port())
    }

    /// The credentials service, whose learning-mode sessions allow their container's
    /// connections that no rule decides.
    pub(crate) fn set_credentials(&self, service: Arc<Service>) {
        let _ = self.credentials.set(service);
    }

    /// Where the dissection task reports each container's latest LLM call.
    pub(crate) fn recent_calls(&self) -> &Arc<RecentCalls> {
        &self.recent
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes every held connection so it re-evaluates.
    pub(super) fn bump(&self) {
        self.changed.send_modify(|g| *g += 1);
    }

    /// The event bus.
    pub(crate) fn events(&self) -> &Arc<EventBus> {
        &self.events
    }

    /// The rule that denies `host:port` to `container` right now, if the winning rule is a deny
    /// (the per-request check inside intercepted tunnels; silent mode does not apply there).
    pub(crate) fn denying_rule(&self, container: &str, host: &str, port: u16) -> Option<u64> {
        let st = self.lock();
        find_matching(
            &st.rules,
            container,
            host,
            port,
            None,
            self.clock.now_secs(),
        )
        .filter(|r| r.action == Action::Deny)
        .map(|r| r.id)
    }

    /// How long a connection is held: the one in force now (a reload changes it for the holds
    /// that start after it).
    pub(crate) fn hold_timeout(&self) -> Duration {
        self.live.load().hold_timeout
    }

    /// Ends every hold, now and from now on, as blocked with reason `shutdown` (the held
    /// clients get their refusal: HTTP 403, SOCKS5 reply 0x02).
    pub(crate) fn stop_holds(&self) {
        self.stopping.cancel();
    }

    /// Runs a blocking store write off the async runtime.
    pub(super) async fn commit(&self, ops: Vec<Op>) -> Result<(), PolicyError> {
        if ops.is_empty() {
            return Ok(());
        }
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.apply(&ops)).await {
            Ok(r) => Ok(r?),
            Err(e) => Err(PolicyError::Background(e.to_string())),
        }
    }

    pub(super) fn evaluate(&self, req: &ConnRequest) -> Eval {
        let now = self.clock.now_secs();
        let mut st = self.lock();
        if let Some(mode) = st.allow_all.active_mode(now) {
            let d = match mode {
                AllowAllMode::Allow => Decision::Allowed,
                AllowAllMode::Deny => Decision::Blocked,
                // The enum is non_exhaustive for third-party clients; a mode this build does
                // not know fails closed.
                _ => Decision::Blocked,
            };
            return Eval::Decided(d, None, Reason::AllowAll);
        }
        let Some(rule) = find_matching(
            &st.rules,
            &req.container,
            &req.host,
            req.port,
            req.resolved.as_deref(),
            now,
        ) else {
            if self
                .credentials
                .get()
                .is_some_and(|c| c.allows_all(&req.container))
            {
                return Eval::Decided(Decision::Allowed, None, Reason::AllowAll);
            }
            return Eval::Undecided;
        };
        let (id, action) = (rule.id, rule.action);
        if let Some(r) = st.rules.iter_mut().find(|r| r.id == id) {
            r.last_used_at = Some(now);
        }
        if !st.dirty_rules.contains(&id) {
            st.dirty_rules.push(id);
        }
        let d = match action {
            Action::Allow => Decision::Allowed,
            Action::Deny => Decision::Blocked,
            // A rule action this build does not know fails closed.
            _ => Decision::Blocked,
        };
        Eval::Decided(d, Some(id), Reason::Rule)
    }

    /// Writes rules whose `last_used_at` changed and pending requests bumped by another attempt
    /// (called periodically and at shutdown), so that the hot path never waits for the disk.
    ///
    /// The rows are taken under `write_lock`: taken before it, a row deleted or edited by a
    /// mutation in progress would be written back over it (a deleted rule resurrected, an
    /// acknowledged edit undone).
    pub(crate) async fn flush_last_used(&self) {
        let _w = self.write_lock.lock().await;
        let ops: Vec<Op> = {
            let mut st = self.lock();
            let dirty = std::mem::take(&mut st.dirty_rules);
            let dirty_pending = std::mem::take(&mut st.dirty_pending);
            let rules = st
                .rules
                .iter()
                .filter(|r| dirty.contains(&r.id))
                .cloned()
                .map(Op::PutRule);
            let pending = dirty_pending
                .iter()
                .filter_map(|id| st.pending.get(id))
                .cloned()
                .map(Op::PutPending);
            rules.chain(pending).collect()
        };
        if let Err(e) = self.commit(ops).await {
            tracing::warn!(error = %e, "cannot persist rule last_used_at and pending attempt counts");
        }
    }

    /// Number of connections currently held.
    pub(crate) fn held_connections(&self) -> u64 {
        self.lock().waiters.values().sum()
    }

    /// Waits until the log writer has committed every decision made so far.
    pub(crate) async fn flush_logs(&self) {
        self.logs.flush().await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::spawn_log_writer;

    /// The periodic `last_used_at` flush waits for `write_lock` while a delete holds it: what it
    /// writes must be taken after the delete, or the deleted rule comes back on disk.
    #[tokio::test]
    async fn a_flush_never_writes_back_a_rule_deleted_while_it_waited() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("s.redb")).unwrap());
        let logs = spawn_log_writer(store.clone(), 16, 1000, Box::new(|_| {}));
        let events = Arc::new(EventBus::new());
        let live = crate::live::LiveCell::new(
            crate::live::Live::new(vec![], vec![], vec![], Duration::from_secs(30)).unwrap(),
        );
        let policy = Policy::new(store.clone(), events, logs, live).unwrap();
        let args = serde_json::from_value(serde_json::json!({
            "container_pattern": "*", "destination_pattern": "used.example"}))
        .unwrap();
        let rule = policy.create_rule(&args).await.unwrap();
        let req = ConnRequest {
            container: "c".into(),
            host: "used.example".into(),
            port: 443,
            resolved: None,
            front: FrontEnd::Http,
            tunnel: false,
        };
        assert!(matches!(policy.evaluate(&req), Eval::Decided(..)));

        let busy = policy.write_lock.lock().await;
        let p = policy.clone();
        let delete = tokio::spawn(async move { p.delete_rule(rule.id).await });
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        let p = policy.clone();
        let flush = tokio::spawn(async move { p.flush_last_used().await });
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        drop(busy);
        delete.await.unwrap().unwrap();
        flush.await.unwrap();
        let on_disk = store.load_rules().unwrap();
        assert!(on_disk.iter().all(|r| r.id != rule.id), "{on_disk:?}");
    }
}
