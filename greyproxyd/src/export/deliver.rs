//! The OTLP delivery loop: every `interval` it reads the records stored after its cursors
//! (LLM calls, transactions), builds at most `batch_size` spans, posts them gzipped, and moves
//! the cursors — persisted in the store — only once the collector accepted the request. A
//! restart or an outage therefore resends from the last accepted batch (at-least-once), and
//! memory holds one batch whatever the collector does.
//!
//! Retries: a transport failure, 429, 502, 503 or 504 retries the same batch after a backoff
//! (0.5 s doubling to 30 s, or the collector's `Retry-After`, at most 5 minutes); 400 means the
//! collector rejects the data itself, so the batch is dropped (counted in `skipped`) rather
//! than blocking everything after it; any other status is a configuration problem (wrong path,
//! missing auth) retried every 30 s with the state `failing`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use greyproxy_protocol::export::{ExportState, ExportStatus};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use tokio_util::sync::CancellationToken;

use super::client::OtlpClient;
use super::spans::{SpanBuilder, host_name};
use super::{OtlpSettings, What};
use crate::net::HostMap;
use crate::store::{Store, StoreError};

/// `settings` key of the LLM call cursor (the highest call id accepted by the collector).
pub(crate) const CALLS_CURSOR: &str = "export.otlp.calls_cursor";
/// `settings` key of the transaction cursor.
pub(crate) const TX_CURSOR: &str = "export.otlp.transactions_cursor";
/// First retry wait.
const BACKOFF_MIN: Duration = Duration::from_millis(500);
/// Longest retry wait of our own (and the wait after a non-retryable answer).
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Longest `Retry-After` honoured.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(300);

/// The exporter's counters, shared with `status`.
#[derive(Debug)]
pub(crate) struct Exporter {
    endpoint: String,
    what: What,
    shared: Mutex<ExportStatus>,
    store: Arc<Store>,
    /// The accepted cursors (calls, transactions), for the lag.
    accepted: [AtomicU64; 2],
}

impl Exporter {
    /// The state `status` reports; the lag is read from the store now (two index lookups), so
    /// that it grows while the collector is down.
    pub(crate) fn status(&self) -> ExportStatus {
        let mut st = self.lock().clone();
        if let Ok((calls, txs)) = self.store.newest_ids() {
            let mut lag = 0;
            if self.what.calls() {
                lag += calls.saturating_sub(self.accepted[0].load(Ordering::Relaxed));
            }
            if self.what.transactions() {
                lag += txs.saturating_sub(self.accepted[1].load(Ordering::Relaxed));
            }
            st.lag = lag;
        }
        st
    }

    fn accept(&self, c: Cursors) {
        self.accepted[0].store(c.calls, Ordering::Relaxed);
        self.accepted[1].store(c.transactions, Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ExportStatus> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Starts the exporter's task; it ends when `stop` is cancelled.
pub(crate) fn spawn(
    settings: OtlpSettings,
    store: Arc<Store>,
    tls: Arc<rustls::ClientConfig>,
    hosts: HostMap,
    stop: CancellationToken,
) -> Arc<Exporter> {
    let endpoint = settings.endpoint.display();
    let exporter = Arc::new(Exporter {
        endpoint: endpoint.clone(),
        what: settings.what,
        shared: Mutex::new(ExportStatus {
            endpoint,
            what: settings.what.as_str().to_owned(),
            state: ExportState::Ok,
            lag: 0,
            exported_spans: 0,
            retries: 0,
            skipped: 0,
            last_error: None,
            last_success: None,
        }),
        store: store.clone(),
        accepted: [AtomicU64::new(0), AtomicU64::new(0)],
    });
    let client = OtlpClient::new(
        settings.endpoint.clone(),
        settings.headers.clone(),
        settings.timeout,
        tls,
        hosts,
    );
    tracing::info!(
        endpoint = %exporter.endpoint,
        what = exporter.what.as_str(),
        "OTLP export on"
    );
    tokio::spawn(run(exporter.clone(), settings, store, client, stop));
    exporter
}

/// Where the exporter stands in the store.
#[derive(Debug, Clone, Copy, Default)]
struct Cursors {
    calls: u64,
    transactions: u64,
}

/// One batch read from the store.
struct Batch {
    spans: Vec<Span>,
    /// The cursors once this batch is accepted.
    next: Cursors,
    /// The batch filled up: more may be waiting.
    full: bool,
}

async fn run(
    exporter: Arc<Exporter>,
    settings: OtlpSettings,
    store: Arc<Store>,
    client: OtlpClient,
    stop: CancellationToken,
) {
    let s = store.clone();
    let loaded = tokio::task::spawn_blocking(move || -> Result<Cursors, StoreError> {
        Ok(Cursors {
            calls: s.export_cursor(CALLS_CURSOR)?,
            transactions: s.export_cursor(TX_CURSOR)?,
        })
    })
    .await;
    let mut cursors = match loaded {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "OTLP export: cannot read its cursors; starting from the oldest stored record");
            Cursors::default()
        }
        Err(_) => return,
    };
    exporter.accept(cursors);
    let mut builder = Some(SpanBuilder::new(host_name(), settings.include_content));
    loop {
        // Drain what is stored, one batch at a time.
        loop {
            let Some(b) = builder.take() else { return };
            let (s, set, ex) = (store.clone(), settings.clone(), exporter.clone());
            let read = tokio::task::spawn_blocking(move || {
                let mut b = b;
                let r = read_batch(&s, &mut b, &set, cursors, &ex);
                (b, r)
            })
            .await;
            let batch = match read {
                Ok((b, r)) => {
                    builder = Some(b);
                    r
                }
                Err(_) => return,
            };
            let batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "OTLP export: cannot read the store");
                    break;
                }
            };
            let n = batch.spans.len() as u64;
            if n > 0 {
                let Some(req) = builder.as_ref().map(|b| b.request(batch.spans)) else {
                    return;
                };
                let body = match gzip(&req.encode_to_vec()) {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::warn!(error = %e, "OTLP export: cannot compress a batch");
                        break;
                    }
                };
                match deliver(&exporter, &client, body, n, &stop).await {
                    Delivered::Accepted | Delivered::Dropped => {}
                    Delivered::Stopped => return,
                }
            }
            if batch.next.calls != cursors.calls || batch.next.transactions != cursors.transactions
            {
                let (s, c) = (store.clone(), batch.next);
                let saved = tokio::task::spawn_blocking(move || {
                    s.set_export_cursor(CALLS_CURSOR, c.calls)?;
                    s.set_export_cursor(TX_CURSOR, c.transactions)
                })
                .await;
                if let Ok(Err(e)) = saved {
                    tracing::warn!(error = %e, "OTLP export: cannot save its cursor (records may be sent again after a restart)");
                }
                cursors = batch.next;
            }
            exporter.accept(cursors);
            if !batch.full {
                break;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(settings.interval) => {}
            () = stop.cancelled() => return,
        }
    }
}

/// Reads the next batch after `c`, skipping ahead when the exporter is more than `queue`
/// records behind.
fn read_batch(
    store: &Store,
    builder: &mut SpanBuilder,
    set: &OtlpSettings,
    c: Cursors,
    exporter: &Exporter,
) -> Result<Batch, StoreError> {
    let (newest_call, newest_tx) = store.newest_ids()?;
    let mut next = c;
    let mut skipped = 0;
    let mut bound = |cursor: &mut u64, newest: u64| {
        if newest.saturating_sub(*cursor) > set.queue {
            skipped += newest - set.queue - *cursor;
            *cursor = newest - set.queue;
        }
    };
    if set.what.calls() {
        bound(&mut next.calls, newest_call);
    }
    if set.what.transactions() {
        bound(&mut next.transactions, newest_tx);
    }
    let mut spans = Vec::new();
    let mut records = 0;
    if set.what.calls() {
        for call in store.llm_calls_after(next.calls, set.batch_size)? {
            let rule = store
                .transaction_heads_after(call.transaction_id.saturating_sub(1), 1)?
                .into_iter()
                .find(|t| t.id == call.transaction_id)
                .and_then(|t| t.rule_id);
            spans.extend(builder.call_spans(store, &call, rule)?);
            next.calls = call.id;
            records += 1;
        }
    }
    if set.what.transactions() && records < set.batch_size {
        for t in store.transaction_heads_after(next.transactions, set.batch_size - records)? {
            next.transactions = t.id;
            records += 1;
            // WebSocket message rows are not HTTP exchanges; their upgrade row is.
            if t.upgrade_id.is_none() {
                spans.push(builder.transaction_span(&t));
            }
        }
    }
    exporter.lock().skipped += skipped;
    if skipped > 0 {
        tracing::warn!(
            skipped,
            "OTLP export: more than `queue` records behind; the oldest were skipped"
        );
    }
    Ok(Batch {
        spans,
        next,
        full: records >= set.batch_size,
    })
}

fn gzip(data: &[u8]) -> std::io::Result<Bytes> {
    use std::io::Write as _;
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 4 + 64),
        flate2::Compression::fast(),
    );
    enc.write_all(data)?;
    Ok(Bytes::from(enc.finish()?))
}

enum Delivered {
    Accepted,
    /// The collector refused the data itself (400): dropped.
    Dropped,
    /// The daemon is stopping.
    Stopped,
}

/// The wait before retry `attempt` (from 0).
fn backoff(attempt: u32) -> Duration {
    BACKOFF_MIN
        .saturating_mul(2u32.saturating_pow(attempt.min(16)))
        .min(BACKOFF_MAX)
}

/// Sends one batch until it is accepted (or dropped, or the daemon stops).
async fn deliver(
    exporter: &Exporter,
    client: &OtlpClient,
    body: Bytes,
    spans: u64,
    stop: &CancellationToken,
) -> Delivered {
    let mut attempt = 0u32;
    loop {
        let answer = tokio::select! {
            a = client.post(body.clone()) => a,
            () = stop.cancelled() => return Delivered::Stopped,
        };
        let (state, error, wait) = match answer {
            Ok(a) if (200..300).contains(&a.status) => {
                let mut st = exporter.lock();
                st.state = ExportState::Ok;
                st.exported_spans += spans;
                st.last_error = None;
                st.last_success = Some(crate::time::now_rfc3339());
                return Delivered::Accepted;
            }
            Ok(a) if a.status == 400 => {
                let msg = format!(
                    "collector refused a batch of {spans} spans: 400 {}",
                    a.body.trim()
                );
                tracing::warn!("OTLP export: {msg}");
                let mut st = exporter.lock();
                st.state = ExportState::Failing;
                st.last_error = Some(msg);
                st.skipped += spans;
                return Delivered::Dropped;
            }
            Ok(a) if matches!(a.status, 429 | 502 | 503 | 504) => (
                ExportState::Retrying,
                format!("collector answered {}", a.status),
                a.retry_after
                    .map_or_else(|| backoff(attempt), |r| r.min(RETRY_AFTER_MAX)),
            ),
            Ok(a) => (
                ExportState::Failing,
                format!("collector answered {} {}", a.status, first_line(&a.body)),
                BACKOFF_MAX,
            ),
            Err(e) => (ExportState::Retrying, e, backoff(attempt)),
        };
        if attempt == 0 || state == ExportState::Failing {
            tracing::warn!(error = %error, retry_in = ?wait, "OTLP export: request failed");
        } else {
            tracing::debug!(error = %error, retry_in = ?wait, "OTLP export: request failed");
        }
        {
            let mut st = exporter.lock();
            st.state = state;
            st.last_error = Some(error);
            st.retries += 1;
        }
        attempt = attempt.saturating_add(1);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stop.cancelled() => return Delivered::Stopped,
        }
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_half_a_second_to_thirty() {
        let ms: Vec<u128> = (0..9).map(|a| backoff(a).as_millis()).collect();
        assert_eq!(
            ms,
            [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
    }
}
