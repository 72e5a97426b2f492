//! Notification claims: while any control connection holds one, the daemon sends no desktop
//! notifications of its own. A claim is released when its connection closes, however it closes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use greyproxy_protocol::Event;
use greyproxy_protocol::event::ClaimsChanged;

use crate::events::EventBus;

/// The global claim counter.
#[derive(Debug, Clone)]
pub(crate) struct Claims {
    count: Arc<AtomicU64>,
    events: Arc<EventBus>,
}

/// One connection's claim; dropping it releases the claim.
#[derive(Debug)]
pub(crate) struct ClaimGuard {
    claims: Claims,
}

impl Claims {
    /// No claims.
    pub(crate) fn new(events: Arc<EventBus>) -> Claims {
        Claims {
            count: Arc::new(AtomicU64::new(0)),
            events,
        }
    }

    /// Claims held now.
    pub(crate) fn active(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }

    /// Takes a claim; publishes `notification.claims_changed`.
    pub(crate) fn claim(&self) -> (ClaimGuard, u64) {
        let n = self.count.fetch_add(1, Ordering::SeqCst) + 1;
        self.publish(n);
        (
            ClaimGuard {
                claims: self.clone(),
            },
            n,
        )
    }

    fn publish(&self, n: u64) {
        self.events
            .publish(Event::ClaimsChanged(ClaimsChanged { active_claims: n }));
    }
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        let prev = self
            .claims
            .count
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| {
                Some(c.saturating_sub(1))
            })
            .unwrap_or(0);
        self.claims.publish(prev.saturating_sub(1));
    }
}
