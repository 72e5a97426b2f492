//! The recorder: transaction ids, the stored-copy cap and the ordered writer, with a byte
//! budget for what is queued so a slow disk never lets memory grow with the traffic. Every
//! recorded exchange and WebSocket message goes through [`Recorder::record`]. (The redaction
//! comes with each exchange's [`crate::live`] snapshot.)

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use greyproxy_protocol::Transaction;

use crate::dissect::queue::DissectQueue;
use crate::store::{IdKind, Sink, Store};

/// What recording needs, shared by every connection.
pub(crate) struct Recorder {
    /// Transaction ids.
    store: Arc<Store>,
    /// Ordered transaction writer.
    sink: Sink<Transaction>,
    /// Stored copy cap per body.
    pub(crate) body_cap: usize,
    /// Body bytes queued for the writer right now (the writer subtracts what it stored).
    queued_bytes: Arc<AtomicU64>,
    /// Most body bytes queued at once; beyond it rows are queued without their bodies.
    max_queued_bytes: u64,
    /// The LLM layer's queue: rows the endpoint registry recognises are offered to it.
    dissect: Option<Arc<DissectQueue>>,
}

impl Recorder {
    /// A recorder writing through `sink`; `queued_bytes` is shared with the writer, which
    /// subtracts what it stored.
    pub(crate) fn new(
        store: Arc<Store>,
        sink: Sink<Transaction>,
        body_cap: usize,
        queued_bytes: Arc<AtomicU64>,
        max_queued_bytes: u64,
    ) -> Recorder {
        Recorder {
            store,
            sink,
            body_cap,
            queued_bytes,
            max_queued_bytes,
            dissect: None,
        }
    }

    /// Offers every recorded row to the LLM layer's queue too.
    pub(crate) fn with_dissect(mut self, q: Arc<DissectQueue>) -> Recorder {
        self.dissect = Some(q);
        self
    }

    /// A new transaction id.
    pub(crate) fn next_id(&self) -> u64 {
        self.store.next_id(IdKind::Transaction)
    }

    /// The writer, for those who must wait until what was recorded is stored.
    pub(crate) fn sink(&self) -> &Sink<Transaction> {
        &self.sink
    }

    /// Queues a finished transaction for storage, within the queue's byte budget.
    pub(crate) fn record(&self, mut t: Transaction) {
        if let Some(q) = &self.dissect {
            q.offer(&t);
        }
        let mut weight = crate::store::body_weight(&t);
        if self.queued_bytes.load(Ordering::Relaxed) + weight > self.max_queued_bytes {
            t.request_body = None;
            t.request_body_encoding = None;
            t.response_body = None;
            t.response_body_encoding = None;
            t.error
                .get_or_insert_with(|| "bodies not stored: the capture queue is full".into());
            weight = 0;
        }
        self.queued_bytes.fetch_add(weight, Ordering::Relaxed);
        if !self.sink.record(t) {
            self.queued_bytes.fetch_sub(weight, Ordering::Relaxed);
        }
    }
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("body_cap", &self.body_cap)
            .field("max_queued_bytes", &self.max_queued_bytes)
            .finish()
    }
}
