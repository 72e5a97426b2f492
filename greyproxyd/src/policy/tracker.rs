//! Live connections allowed by a rule, so that deleting the rule (or turning it into a deny)
//! cuts them. Each tunnel holds a [`Tracked`] whose token it watches; dropping it unregisters.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

#[derive(Debug, Default)]
struct Inner {
    next: u64,
    by_rule: HashMap<u64, HashMap<u64, CancellationToken>>,
}

/// Registry of live connections per rule id.
#[derive(Debug, Default, Clone)]
pub(crate) struct ConnTracker {
    inner: Arc<Mutex<Inner>>,
}

/// A registered connection; its token is cancelled when its rule is revoked.
#[derive(Debug)]
pub(crate) struct Tracked {
    tracker: ConnTracker,
    rule_id: u64,
    conn_id: u64,
    /// Cancelled on revocation.
    pub(crate) token: CancellationToken,
}

impl ConnTracker {
    /// Registers a connection allowed by `rule_id`.
    pub(crate) fn register(&self, rule_id: u64) -> Tracked {
        let token = CancellationToken::new();
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.next += 1;
        let conn_id = g.next;
        g.by_rule
            .entry(rule_id)
            .or_default()
            .insert(conn_id, token.clone());
        Tracked {
            tracker: self.clone(),
            rule_id,
            conn_id,
            token,
        }
    }

    /// Cuts every live connection allowed by `rule_id`; returns how many.
    pub(crate) fn cancel_rule(&self, rule_id: u64) -> usize {
        let conns = self
            .inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_rule
            .remove(&rule_id)
            .unwrap_or_default();
        for t in conns.values() {
            t.cancel();
        }
        conns.len()
    }

    /// Number of live tracked connections.
    #[cfg(test)]
    pub(crate) fn live(&self) -> usize {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.by_rule.values().map(HashMap::len).sum()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let mut g = self.tracker.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = g.by_rule.get_mut(&self.rule_id) {
            m.remove(&self.conn_id);
            if m.is_empty() {
                g.by_rule.remove(&self.rule_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_cuts_only_that_rules_connections_and_drop_unregisters() {
        let t = ConnTracker::default();
        let a = t.register(1);
        let b = t.register(2);
        assert_eq!(t.live(), 2);
        assert_eq!(t.cancel_rule(1), 1);
        assert!(a.token.is_cancelled());
        assert!(!b.token.is_cancelled());
        drop(b);
        assert_eq!(t.live(), 0);
        assert_eq!(t.cancel_rule(2), 0);
    }
}
