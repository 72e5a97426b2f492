//! The event bus: every state change is published here once, serialised once, stamped with a
//! sequence number that grows by one per event, and fanned out to control clients.
//!
//! Fan-out uses a `tokio::sync::broadcast` ring: publishing never blocks and never allocates per
//! subscriber, and a subscriber that falls more than [`BUS_CAPACITY`] events behind learns how
//! many it missed (the control session turns that into one `lagged` message).

use std::sync::{Arc, Mutex};

use greyproxy_protocol::{Event, EventEnvelope};
use tokio::sync::broadcast;

use crate::time::now_rfc3339;

/// Events buffered for subscribers before a slow one starts losing them.
pub(crate) const BUS_CAPACITY: usize = 4096;

/// One published event, already serialised.
#[derive(Debug)]
pub(crate) struct Published {
    /// Sequence number.
    #[cfg_attr(not(test), allow(dead_code))] // read by the tests
    pub(crate) seq: u64,
    /// Event type, for subscription filters.
    pub(crate) event_type: &'static str,
    /// The typed event, for in-process consumers (notifier).
    pub(crate) event: Event,
    /// The wire envelope as JSON text.
    pub(crate) json: String,
}

/// Publisher side of the bus; cheap to share behind an `Arc`.
#[derive(Debug)]
pub(crate) struct EventBus {
    tx: broadcast::Sender<Arc<Published>>,
    /// Held while numbering and sending, so that `seq` order equals delivery order.
    seq: Mutex<u64>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    /// A bus with no subscribers.
    pub(crate) fn new() -> EventBus {
        let (tx, _) = broadcast::channel(BUS_CAPACITY);
        EventBus {
            tx,
            seq: Mutex::new(0),
        }
    }

    /// Publishes an event to every current subscriber.
    pub(crate) fn publish(&self, event: Event) {
        let mut seq = self.seq.lock().unwrap_or_else(|p| p.into_inner());
        *seq += 1;
        let envelope = EventEnvelope::new(&event, *seq, now_rfc3339());
        let json = serde_json::to_string(&envelope).unwrap_or_default();
        let published = Published {
            seq: *seq,
            event_type: event.event_type(),
            event,
            json,
        };
        // An error only means nobody listens right now.
        let _ = self.tx.send(Arc::new(published));
    }

    /// A new subscription that sees events published from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<Published>> {
        self.tx.subscribe()
    }

    /// Sequence number of the last published event (0 before the first).
    pub(crate) fn last_seq(&self) -> u64 {
        *self.seq.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use greyproxy_protocol::event::ClaimsChanged;

    #[tokio::test]
    async fn seq_grows_by_one_and_slow_subscribers_learn_what_they_missed() {
        let bus = EventBus::new();
        let mut fast = bus.subscribe();
        let mut slow = bus.subscribe();
        for i in 0..(BUS_CAPACITY as u64 + 10) {
            bus.publish(Event::ClaimsChanged(ClaimsChanged { active_claims: i }));
            let p = fast.recv().await.unwrap();
            assert_eq!(p.seq, i + 1);
            assert!(p.json.contains(&format!("\"seq\":{}", i + 1)));
        }
        match slow.recv().await {
            Err(broadcast::error::RecvError::Lagged(n)) => assert_eq!(n, 10),
            other => panic!("expected lag, got {other:?}"),
        }
        assert_eq!(slow.recv().await.unwrap().seq, 11);
        assert_eq!(bus.last_seq(), BUS_CAPACITY as u64 + 10);
    }
}
