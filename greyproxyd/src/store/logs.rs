//! Rows written off the hot path (request logs, recorded transactions): the proxy hands each row
//! to a [`Sink`] (a non-blocking `try_send` on a bounded channel) and one writer task per kind
//! stores them in batches, in the order they were queued,
//! so a burst of connections costs one fsync per batch instead of one per connection, and a slow
//! disk costs dropped log rows rather than stalled connections.
//!
//! The writer is a tokio task that hands each batch to `spawn_blocking` for the redb commit.
//! A dedicated std thread would also work, but the task keeps `on_commit` (which publishes
//! events) and `flush` inside the runtime, and the per-batch hop to the blocking pool costs
//! microseconds next to the commit's fsync.
//!
//! A writer may also *linger* (group commit): after the first row of a batch it waits up to a
//! few milliseconds for more before committing, so that rows trickling in one by one (a single
//! keep-alive client) share a commit instead of paying one each. It sleeps out the linger rather
//! than waiting on the channel, so that rows arriving meanwhile wake nothing; a flush that opens
//! a batch commits it at once, one sent during a linger waits for its end.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redb::ReadableTableMetadata;
use tokio::sync::{mpsc, oneshot};

use super::{IdKind, REQUEST_LOGS, Store, StoreError, raise};
use crate::records::RequestLogRecord;

/// Most rows written in one transaction: large enough to absorb a burst in a few commits, small
/// enough that `on_commit` events are not held back for long behind one huge write.
const BATCH_MAX: usize = 512;

/// What the channel carries: rows, and flush markers that the writer answers once everything
/// before them is committed (the channel is FIFO, so "before" is exact).
// The channel is sized by its largest variant anyway and nearly every message is a row, so
// boxing the row would only add an allocation per row.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Msg<T> {
    Row(T),
    Flush(oneshot::Sender<()>),
}

/// Handle to a writer. Cheap to clone; when the last clone is dropped the writer stores what is
/// still queued and exits.
pub(crate) struct Sink<T> {
    tx: mpsc::Sender<Msg<T>>,
    shared: Arc<Shared>,
    /// What the rows are, for warnings.
    what: &'static str,
}

impl<T> Clone for Sink<T> {
    fn clone(&self) -> Self {
        Sink {
            tx: self.tx.clone(),
            shared: Arc::clone(&self.shared),
            what: self.what,
        }
    }
}

/// The request-log sink.
pub(crate) type LogSink = Sink<RequestLogRecord>;

/// How a writer stores one batch (blocking; runs on the blocking pool). It may fill in ids.
pub(crate) type WriteBatch<T> =
    Arc<dyn Fn(&Store, &mut [T]) -> Result<(), StoreError> + Send + Sync>;

/// Called on the writer task for each committed row, in order.
pub(crate) type OnCommit<T> = Box<dyn Fn(&T) + Send + Sync>;

/// Counters shared by the sinks and the writer.
struct Shared {
    /// Rows that never reached the store.
    dropped: AtomicU64,
    /// Origin of `last_warn_ms`; monotonic so that clock steps cannot silence warnings.
    started: Instant,
    /// Milliseconds since `started` (+1, so 0 means never) of the last warning.
    last_warn_ms: AtomicU64,
}

impl Shared {
    /// True at most once per second, for whichever caller gets there first.
    fn may_warn(&self) -> bool {
        let now = u64::try_from(self.started.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let last = self.last_warn_ms.load(Ordering::Relaxed);
        (last == 0 || now.saturating_sub(last) >= 1000)
            && self
                .last_warn_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    fn count_dropped(&self, rows: u64) -> u64 {
        self.dropped.fetch_add(rows, Ordering::Relaxed) + rows
    }
}

impl<T> fmt::Debug for Sink<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sink")
            .field("what", &self.what)
            .field("dropped", &self.dropped())
            .field("closed", &self.tx.is_closed())
            .finish()
    }
}

impl<T> Sink<T> {
    /// Queues a row without waiting; returns whether it was queued. When the queue is full (the
    /// disk cannot keep up) the row is dropped and counted, with a warning at most once per
    /// second. A request-log row with `id == 0` gets its id when written.
    pub(crate) fn record(&self, rec: T) -> bool {
        let reason = match self.tx.try_send(Msg::Row(rec)) {
            Ok(()) => return true,
            Err(mpsc::error::TrySendError::Full(_)) => "queue full",
            Err(mpsc::error::TrySendError::Closed(_)) => "writer stopped",
        };
        let total = self.shared.count_dropped(1);
        if self.shared.may_warn() {
            tracing::warn!(
                dropped_total = total,
                reason,
                what = self.what,
                "row dropped"
            );
        }
        false
    }

    /// Rows dropped so far: queue full, writer gone, or their write failed.
    pub(crate) fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Waits until every row queued before this call has been committed (or its write failed),
    /// and its `on_commit` has run. Returns at once if the writer is gone.
    pub(crate) async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).await.is_ok() {
            // An error means the writer went away; nothing more will be committed either way.
            let _ = rx.await;
        }
    }
}

/// Starts the request-log writer on the current tokio runtime (panics outside one, like
/// `tokio::spawn`) and returns the sink feeding it.
///
/// `capacity` bounds the queue (at least 1). After each batch, rows beyond the newest
/// `max_rows` are deleted, oldest first (`0` keeps everything). `on_commit` runs on the writer
/// task for each committed row, in id order, with its id assigned; it must be quick and must
/// neither block nor panic (a panic ends the writer, and later rows are counted as dropped).
pub(crate) fn spawn_log_writer(
    store: Arc<Store>,
    capacity: usize,
    max_rows: u64,
    on_commit: Box<dyn Fn(&RequestLogRecord) + Send + Sync>,
) -> LogSink {
    let write: WriteBatch<RequestLogRecord> =
        Arc::new(move |store: &Store, rows: &mut [RequestLogRecord]| {
            store.append_logs(rows, max_rows)
        });
    spawn_writer(store, capacity, "request log", write, on_commit)
}

/// Starts a writer for rows of type `T` on the current tokio runtime and returns its sink.
/// `write` stores one batch (blocking); `on_commit` runs for each committed row, in order.
pub(crate) fn spawn_writer<T: Send + 'static>(
    store: Arc<Store>,
    capacity: usize,
    what: &'static str,
    write: WriteBatch<T>,
    on_commit: OnCommit<T>,
) -> Sink<T> {
    spawn_lingering_writer(store, capacity, what, Duration::ZERO, write, on_commit)
}

/// [`spawn_writer`] whose batches wait up to `linger` after their first row for more rows
/// (group commit; a flush, a full batch or a closed queue ends the wait early).
pub(crate) fn spawn_lingering_writer<T: Send + 'static>(
    store: Arc<Store>,
    capacity: usize,
    what: &'static str,
    linger: Duration,
    write: WriteBatch<T>,
    on_commit: OnCommit<T>,
) -> Sink<T> {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let shared = Arc::new(Shared {
        dropped: AtomicU64::new(0),
        started: Instant::now(),
        last_warn_ms: AtomicU64::new(0),
    });
    tokio::spawn(run_writer(
        store,
        rx,
        write,
        on_commit,
        Arc::clone(&shared),
        what,
        linger,
    ));
    Sink { tx, shared, what }
}

/// The writer loop: wait for a message, take everything else already queued (up to
/// [`BATCH_MAX`] rows) or arriving within `linger`, commit it, publish, answer flushes. Ends
/// when every sender is gone and the queue is drained.
async fn run_writer<T: Send + 'static>(
    store: Arc<Store>,
    mut rx: mpsc::Receiver<Msg<T>>,
    write: WriteBatch<T>,
    on_commit: OnCommit<T>,
    shared: Arc<Shared>,
    what: &'static str,
    linger: Duration,
) {
    let mut batch: Vec<T> = Vec::new();
    let mut waiters: Vec<oneshot::Sender<()>> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        let deadline = tokio::time::Instant::now() + linger;
        let mut lingered = false;
        loop {
            while let Some(msg) = next.take() {
                match msg {
                    Msg::Row(rec) => batch.push(rec),
                    Msg::Flush(waiter) => waiters.push(waiter),
                }
                if batch.len() < BATCH_MAX {
                    next = rx.try_recv().ok();
                }
            }
            if lingered || linger.is_zero() || batch.len() >= BATCH_MAX || !waiters.is_empty() {
                break;
            }
            // Sleep out the linger, then take what came meanwhile: waiting on the channel
            // instead would wake this task (and often a parked worker thread) for every row.
            // The queue holds thousands of rows; a linger's worth at any rate we reach is far
            // fewer. A flush sent meanwhile waits for the linger's end, as its rows do.
            tokio::time::sleep_until(deadline).await;
            lingered = true;
            next = rx.try_recv().ok();
        }
        if !batch.is_empty() {
            let mut rows = std::mem::take(&mut batch);
            let count = rows.len();
            let store = Arc::clone(&store);
            let write = Arc::clone(&write);
            let written = tokio::task::spawn_blocking(move || {
                let result = write(&store, &mut rows);
                (rows, result)
            })
            .await;
            let failure = match written {
                Ok((rows, Ok(()))) => {
                    for row in &rows {
                        on_commit(row);
                    }
                    // Keep the allocation for the next batch.
                    batch = rows;
                    batch.clear();
                    None
                }
                Ok((_, Err(error))) => Some(error.to_string()),
                Err(join) => Some(format!("writer task failed: {join}")),
            };
            if let Some(error) = failure {
                let rows = u64::try_from(count).unwrap_or(u64::MAX);
                let total = shared.count_dropped(rows);
                if shared.may_warn() {
                    tracing::error!(%error, rows, dropped_total = total, what, "cannot store rows");
                }
            }
        }
        for waiter in waiters.drain(..) {
            let _ = waiter.send(());
        }
    }
}

impl Store {
    /// Writes request logs in one durable transaction, then deletes the oldest rows beyond
    /// `max_rows` (`0` keeps everything). Rows with `id == 0` get the next
    /// [`IdKind::RequestLog`] id, written back into `rows`. Blocks on an fsync.
    ///
    /// [`spawn_log_writer`] is the usual way in; this is for bulk imports and tests.
    pub(crate) fn append_logs(
        &self,
        rows: &mut [RequestLogRecord],
        max_rows: u64,
    ) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        for row in rows.iter_mut() {
            if row.id == 0 {
                row.id = self.next_id(IdKind::RequestLog);
            }
        }
        let txn = self.db.begin_write()?;
        let mut high = [0u64; super::N_KINDS];
        {
            let mut table = txn.open_table(REQUEST_LOGS)?;
            for row in rows.iter() {
                table.insert(row.id, serde_json::to_vec(row)?.as_slice())?;
                raise(&mut high, IdKind::RequestLog, row.id);
            }
            if max_rows > 0 {
                // Keys are ids, ascending in time, so the first keys are the oldest rows.
                let len = table.len()?;
                for _ in max_rows..len {
                    if table.pop_first()?.is_none() {
                        break;
                    }
                }
            }
        }
        self.persist_counters(&txn, &high)?;
        txn.commit()?;
        Ok(())
    }
}
