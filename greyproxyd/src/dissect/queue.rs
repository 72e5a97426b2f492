//! The bounded hand-over from the recorder to the dissection task. [`DissectQueue::offer`] runs
//! on the forwarding path for every recorded row, so it only looks at the row's head (host, path,
//! method) against the endpoint registry; a match is cloned into a bounded queue, and when the
//! queue is full (by count or by bytes) the row is counted as dropped and the forwarder goes on.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use greyproxy_protocol::Transaction;
use tokio::sync::mpsc;

use super::model::Decoder;
use super::recent::RecentCalls;
use crate::endpoints::{LlmRegistry, url_path};
use crate::live::LiveCell;

/// Rows queued at most.
pub(crate) const QUEUE_ROWS: usize = 4096;
/// Body bytes queued at most (a row is counted by its body sizes).
pub(crate) const QUEUE_BYTES: u64 = 64 << 20;

/// What a queued row is to the dissection task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowKind {
    /// A finished HTTP exchange to a recognised endpoint.
    Http(Decoder),
    /// A WebSocket message (`WS_REQ` / `WS_RESP`) on a recognised endpoint.
    WsMessage(Decoder),
    /// The upgrade row of a recognised WebSocket endpoint, completed at close.
    WsClosed,
    /// A POST with a JSON body to an endpoint no rule knows, whose path looks like a chat API:
    /// the task checks the body and may propose a rule.
    Probe,
}

/// What the dissection task receives.
#[derive(Debug)]
// Rows are nearly every message; the rare maintenance ones are small. Boxing the common case
// would cost an allocation per row for nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Msg {
    /// A recorded row.
    Row(Job),
    /// Re-dissect everything stored (`rebuild_conversations`); the answer says how many
    /// transactions were read and calls recorded.
    Rebuild(tokio::sync::oneshot::Sender<Result<(u64, u64), String>>),
    /// Read the stored transactions after this id that were never dissected (at start).
    CatchUp(u64),
}

/// One queued row.
#[derive(Debug)]
pub(crate) struct Job {
    /// The row (with its bodies).
    pub(crate) tx: Transaction,
    /// What it is.
    pub(crate) kind: RowKind,
    /// Unix ms when it was queued (WebSocket messages: when the message passed).
    pub(crate) at_ms: u64,
    /// Bytes it counts against [`QUEUE_BYTES`].
    pub(crate) weight: u64,
}

/// The recorder's side of the queue.
#[derive(Debug)]
pub(crate) struct DissectQueue {
    tx: mpsc::Sender<Msg>,
    live: Arc<LiveCell>,
    recent: Arc<RecentCalls>,
    queued_bytes: Arc<AtomicU64>,
    dropped: AtomicU64,
}

/// Paths that look like a chat API on a host no rule knows.
fn looks_like_llm_path(path: &str) -> bool {
    path.ends_with("/chat/completions")
        || path.ends_with("/v1/messages")
        || path.ends_with("/responses")
        || path.ends_with(":generateContent")
        || path.ends_with(":streamGenerateContent")
}

/// What the dissection task would do with `t`, if anything (cheap: the head only).
pub(crate) fn classify(reg: &LlmRegistry, t: &Transaction) -> Option<RowKind> {
    let path = url_path(&t.url);
    let host = t.destination_host.as_str();
    if t.upgrade_id.is_some() {
        let d = reg.lookup(host, path, &t.method)?;
        return Decoder::from_name(d).map(RowKind::WsMessage);
    }
    if t.is_update {
        return reg
            .lookup(host, path, "WS_REQ")
            .and_then(Decoder::from_name)
            .map(|_| RowKind::WsClosed);
    }
    if t.ws_extensions.is_some() || t.status_code == Some(101) {
        // The upgrade itself: its messages carry the calls.
        return None;
    }
    match reg.lookup(host, path, &t.method) {
        Some(d) => Decoder::from_name(d).map(RowKind::Http),
        None => (t.method == "POST"
            && t.request_content_type
                .as_deref()
                .is_some_and(|ct| ct.contains("json"))
            && looks_like_llm_path(path))
        .then_some(RowKind::Probe),
    }
}

fn weight(t: &Transaction) -> u64 {
    (t.request_body.as_ref().map_or(0, String::len)
        + t.response_body.as_ref().map_or(0, String::len)) as u64
}

impl DissectQueue {
    /// A queue feeding `tx`; `queued_bytes` is shared with the task, which subtracts what it
    /// took.
    pub(crate) fn new(
        tx: mpsc::Sender<Msg>,
        live: Arc<LiveCell>,
        recent: Arc<RecentCalls>,
        queued_bytes: Arc<AtomicU64>,
    ) -> DissectQueue {
        DissectQueue {
            tx,
            live,
            recent,
            queued_bytes,
            dropped: AtomicU64::new(0),
        }
    }

    /// The live settings it classifies with.
    pub(crate) fn live(&self) -> &Arc<LiveCell> {
        &self.live
    }

    /// The task's inbox, for maintenance commands.
    pub(crate) fn sender(&self) -> &mpsc::Sender<Msg> {
        &self.tx
    }

    /// Rows queued and not taken by the task yet.
    pub(crate) fn queued(&self) -> u64 {
        (self.tx.max_capacity() - self.tx.capacity()) as u64
    }

    /// Rows dropped because the queue was full.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Queues `t` when the registry recognises it; never waits.
    pub(crate) fn offer(&self, t: &Transaction) {
        let Some(kind) = classify(&self.live.load().llm, t) else {
            return;
        };
        let w = weight(t);
        if self.queued_bytes.load(Ordering::Relaxed) + w > QUEUE_BYTES {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let container = t.container_name.clone();
        self.recent.queued(&container);
        self.queued_bytes.fetch_add(w, Ordering::Relaxed);
        let job = Job {
            tx: t.clone(),
            kind,
            at_ms: crate::time::now_ms(),
            weight: w,
        };
        if self.tx.try_send(Msg::Row(job)).is_err() {
            self.queued_bytes.fetch_sub(w, Ordering::Relaxed);
            self.recent.done(&container, None);
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::live::Live;

    fn row(host: &str, path: &str, method: &str) -> Transaction {
        Transaction {
            id: 1,
            container_name: "c".into(),
            destination_host: host.into(),
            url: format!("https://{host}{path}"),
            method: method.into(),
            request_content_type: Some("application/json".into()),
            request_body: Some("x".repeat(100)),
            status_code: Some(200),
            ..Default::default()
        }
    }

    #[test]
    fn classify_reads_the_head_only() {
        let reg = LlmRegistry::default();
        let anthropic = row("api.anthropic.com", "/v1/messages?beta=true", "POST");
        assert_eq!(
            classify(&reg, &anthropic),
            Some(RowKind::Http(Decoder::Anthropic))
        );
        let mut ws = row("api.openai.com", "/v1/responses", "WS_REQ");
        ws.upgrade_id = Some(7);
        assert_eq!(
            classify(&reg, &ws),
            Some(RowKind::WsMessage(Decoder::OpenAiWs))
        );
        let mut upgrade = row("api.openai.com", "/v1/responses", "GET");
        upgrade.status_code = Some(101);
        assert_eq!(classify(&reg, &upgrade), None);
        upgrade.is_update = true;
        assert_eq!(classify(&reg, &upgrade), Some(RowKind::WsClosed));
        let probe = row("llm.internal", "/v1/chat/completions", "POST");
        assert_eq!(classify(&reg, &probe), Some(RowKind::Probe));
        let mut form = probe.clone();
        form.request_content_type = Some("application/x-www-form-urlencoded".into());
        assert_eq!(classify(&reg, &form), None);
        assert_eq!(
            classify(&reg, &row("example.com", "/index.html", "GET")),
            None
        );
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_waiting() {
        let live =
            LiveCell::new(Live::new(vec![], vec![], vec![], Duration::from_secs(1)).unwrap());
        let recent = Arc::new(RecentCalls::default());
        let bytes = Arc::new(AtomicU64::new(0));
        let (tx, mut rx) = mpsc::channel(2);
        let q = DissectQueue::new(tx, live, recent.clone(), bytes.clone());
        let t = row("api.anthropic.com", "/v1/messages", "POST");
        for _ in 0..5 {
            q.offer(&t);
        }
        q.offer(&row("example.com", "/", "GET"));
        assert_eq!((q.queued(), q.dropped()), (2, 3));
        assert_eq!(recent.in_flight("c"), 2, "dropped rows are not waited for");
        assert_eq!(bytes.load(Ordering::Relaxed), 200);
        let Some(Msg::Row(job)) = rx.try_recv().ok() else {
            panic!("a row")
        };
        assert_eq!(
            (job.kind, job.weight),
            (RowKind::Http(Decoder::Anthropic), 100)
        );
        // The byte budget refuses too.
        bytes.store(QUEUE_BYTES, Ordering::Relaxed);
        q.offer(&t);
        assert_eq!(q.dropped(), 4);
    }
}
