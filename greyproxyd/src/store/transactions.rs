//! Recorded HTTP transactions: heads (`transactions`, small, listed and filtered) and bodies
//! (`bodies`, only read by `get_transaction`), written by one ordered writer, bounded by a
//! row count and a total body size (oldest evicted).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use greyproxy_protocol::Transaction;
use redb::{Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata};
use serde::{Deserialize, Serialize};

use super::logs::{OnCommit, Sink, WriteBatch, spawn_lingering_writer};
use super::{BODIES, IdKind, META, N_KINDS, Store, StoreError, TRANSACTIONS, raise};

/// How long a batch of transactions waits for more before it is committed (group commit). A
/// single keep-alive client otherwise commits every few requests, and the commits, not the
/// requests, then dominate the daemon's CPU: measured with `cargo bench -p greyproxyd --bench
/// proxy` (docs/bench-log/mitm.md), 5 ms took one connection from ≈ 4 800 to ≈ 6 400
/// requests/s and the daemon from ≈ 195 to ≈ 125 µs of CPU per request. `transaction.new`
/// events wait as long as the commit.
pub(crate) const TX_LINGER: std::time::Duration = std::time::Duration::from_millis(5);

/// `meta` key of the running total of stored body bytes.
const BODY_BYTES_KEY: &str = "bodies.total_bytes";

/// Retention limits; `0` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxRetention {
    /// Most transactions kept.
    pub max_rows: u64,
    /// Most body bytes kept (sum of stored bodies).
    pub max_body_bytes: u64,
}

/// The body fields of a transaction, stored apart from the head.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Bodies {
    request_body: Option<String>,
    request_body_encoding: Option<String>,
    response_body: Option<String>,
    response_body_encoding: Option<String>,
}

impl Bodies {
    /// Moves the bodies out of `t`, leaving its head.
    fn take(t: &mut Transaction) -> Bodies {
        Bodies {
            request_body: t.request_body.take(),
            request_body_encoding: t.request_body_encoding.take(),
            response_body: t.response_body.take(),
            response_body_encoding: t.response_body_encoding.take(),
        }
    }

    fn put_into(self, t: &mut Transaction) {
        t.request_body = self.request_body;
        t.request_body_encoding = self.request_body_encoding;
        t.response_body = self.response_body;
        t.response_body_encoding = self.response_body_encoding;
    }

    fn is_empty(&self) -> bool {
        self.request_body.is_none() && self.response_body.is_none()
    }
}

/// Starts the transaction writer. Rows must carry their id (assigned at request start with
/// [`IdKind::Transaction`], so ids follow capture order). `on_commit` gets the head (no bodies).
pub(crate) fn spawn_transaction_writer(
    store: Arc<Store>,
    capacity: usize,
    retention: TxRetention,
    queued_bytes: Arc<AtomicU64>,
    on_commit: OnCommit<Transaction>,
) -> Sink<Transaction> {
    let last_durable = std::sync::Mutex::new(std::time::Instant::now());
    let write: WriteBatch<Transaction> =
        Arc::new(move |store: &Store, rows: &mut [Transaction]| {
            let weight: u64 = rows.iter().map(body_weight).sum();
            let due = last_durable
                .lock()
                .map_or(true, |t| t.elapsed() >= DURABLE_EVERY);
            let durable = due || rows.len() < LAZY_BATCH;
            let r = store.write_transactions(rows, retention, durable);
            if durable
                && r.is_ok()
                && let Ok(mut t) = last_durable.lock()
            {
                *t = std::time::Instant::now();
            }
            // Stored or failed, these bodies no longer wait in memory.
            let _ = queued_bytes.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |q| {
                Some(q.saturating_sub(weight))
            });
            r
        });
    spawn_lingering_writer(store, capacity, "transaction", TX_LINGER, write, on_commit)
}

/// Body bytes a queued transaction holds (what the capture queue's byte budget counts).
pub(crate) fn body_weight(t: &Transaction) -> u64 {
    (t.request_body.as_ref().map_or(0, String::len)
        + t.response_body.as_ref().map_or(0, String::len)) as u64
}

/// Batches at least this large are committed without an fsync of their own: capture rows are
/// not decisions, a burst (WebSocket messages, many small requests) would otherwise be limited
/// by fsyncs, and the next durable commit (a smaller batch, a rule, a log batch) persists them.
const LAZY_BATCH: usize = 64;

/// Longest run of lazy commits: redb reuses the pages a commit replaced only after a durable
/// commit, so a sustained stream of large batches (keep-alive clients, no rule or log write in
/// between) would otherwise grow the file and the page cache without bound. Measured with 16
/// keep-alive MITM connections for 60 s (docs/bench-log/mitm.md): daemon RSS 260 MiB with
/// every batch lazy, 133 MiB with a durable commit every second, 100 MiB every 200 ms (92–96
/// MiB without [`TX_LINGER`]).
const DURABLE_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

/// Filters and page of a transaction query; empty strings count as no filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TxQuery {
    /// Case-insensitive substring of the container name.
    pub(crate) container: Option<String>,
    /// Case-insensitive substring of the host or the URL.
    pub(crate) destination: Option<String>,
    /// Case-insensitive method equality.
    pub(crate) method: Option<String>,
    /// Response status.
    pub(crate) status: Option<u16>,
    /// Unix seconds, inclusive.
    pub(crate) since: Option<u64>,
    /// Unix seconds, exclusive.
    pub(crate) until: Option<u64>,
    /// Only WebSocket messages of this upgrade transaction.
    pub(crate) upgrade_id: Option<u64>,
    /// Most rows returned.
    pub(crate) limit: usize,
    /// Only ids below this.
    pub(crate) before_id: Option<u64>,
}

/// One page of transactions, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TxPage {
    /// Heads (no bodies).
    pub(crate) items: Vec<Transaction>,
    /// Rows matching the filters in all.
    pub(crate) total: u64,
    /// Cursor for the next page.
    pub(crate) next_before_id: Option<u64>,
}

fn norm(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_lowercase)
}

impl TxQuery {
    fn is_unfiltered(&self) -> bool {
        norm(&self.container).is_none()
            && norm(&self.destination).is_none()
            && norm(&self.method).is_none()
            && self.status.is_none()
            && self.since.is_none()
            && self.until.is_none()
            && self.upgrade_id.is_none()
    }

    fn matches(&self, t: &Transaction) -> bool {
        let lc = |s: &str| s.to_lowercase();
        if let Some(c) = norm(&self.container)
            && !lc(&t.container_name).contains(&c)
        {
            return false;
        }
        if let Some(d) = norm(&self.destination)
            && !lc(&t.destination_host).contains(&d)
            && !lc(&t.url).contains(&d)
        {
            return false;
        }
        if let Some(m) = norm(&self.method)
            && lc(&t.method) != m
        {
            return false;
        }
        if self.status.is_some() && t.status_code != self.status {
            return false;
        }
        if self.upgrade_id.is_some() && t.upgrade_id != self.upgrade_id {
            return false;
        }
        let ts = crate::time::parse_timestamp(&t.timestamp).unwrap_or(0);
        if self.since.is_some_and(|s| ts < s) || self.until.is_some_and(|u| ts >= u) {
            return false;
        }
        true
    }
}

impl Store {
    /// Writes transactions (heads and bodies) in one transaction, then evicts the oldest
    /// beyond `retention`. Durable (blocks on an fsync) unless the batch has `LAZY_BATCH` rows
    /// or more.
    #[cfg(test)]
    pub(crate) fn append_transactions(
        &self,
        rows: &mut [Transaction],
        retention: TxRetention,
    ) -> Result<(), StoreError> {
        self.write_transactions(rows, retention, rows.len() < LAZY_BATCH)
    }

    /// `Store::append_transactions` (tests) with the durability chosen by the caller.
    fn write_transactions(
        &self,
        rows: &mut [Transaction],
        retention: TxRetention,
        durable: bool,
    ) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut txn = self.db.begin_write()?;
        if !durable {
            // If refused the commit is simply durable, only slower.
            let _ = txn.set_durability(Durability::None);
        }
        let mut high = [0u64; N_KINDS];
        {
            let mut heads = txn.open_table(TRANSACTIONS)?;
            let mut bodies = txn.open_table(BODIES)?;
            let mut meta = txn.open_table(META)?;
            let mut total = meta.get(BODY_BYTES_KEY)?.map_or(0, |v| v.value());
            for row in rows.iter_mut() {
                if row.id == 0 {
                    row.id = self.next_id(IdKind::Transaction);
                }
                let b = Bodies::take(row);
                heads.insert(row.id, serde_json::to_vec(&*row)?.as_slice())?;
                if !b.is_empty() {
                    let bytes = serde_json::to_vec(&b)?;
                    total += bytes.len() as u64;
                    if let Some(old) = bodies.insert(row.id, bytes.as_slice())? {
                        total = total.saturating_sub(old.value().len() as u64);
                    }
                }
                raise(&mut high, IdKind::Transaction, row.id);
            }
            // Oldest first: ids grow with capture time.
            loop {
                let over_rows = retention.max_rows > 0 && heads.len()? > retention.max_rows;
                let over_bytes = retention.max_body_bytes > 0 && total > retention.max_body_bytes;
                if !over_rows && !over_bytes {
                    break;
                }
                let Some((k, _)) = heads.pop_first()? else {
                    break;
                };
                let id = k.value();
                if let Some(old) = bodies.remove(id)? {
                    total = total.saturating_sub(old.value().len() as u64);
                }
            }
            meta.insert(BODY_BYTES_KEY, total)?;
        }
        self.persist_counters(&txn, &high)?;
        txn.commit()?;
        Ok(())
    }

    /// One transaction with its bodies, `None` when unknown (or evicted).
    pub(crate) fn get_transaction(&self, id: u64) -> Result<Option<Transaction>, StoreError> {
        let txn = self.db.begin_read()?;
        let heads = txn.open_table(TRANSACTIONS)?;
        let Some(head) = heads.get(id)? else {
            return Ok(None);
        };
        let mut t: Transaction = serde_json::from_slice(head.value())?;
        let bodies = txn.open_table(BODIES)?;
        if let Some(b) = bodies.get(id)? {
            let b: Bodies = serde_json::from_slice(b.value())?;
            b.put_into(&mut t);
        }
        Ok(Some(t))
    }

    /// Heads (no bodies) of the transactions with ids above `after_id`, ascending, at most
    /// `limit`: a rebuild walks the whole table in pages with it.
    pub(crate) fn transaction_heads_after(
        &self,
        after_id: u64,
        limit: usize,
    ) -> Result<Vec<Transaction>, StoreError> {
        let txn = self.db.begin_read()?;
        let heads = txn.open_table(TRANSACTIONS)?;
        let mut out = Vec::new();
        for entry in heads.range(after_id.saturating_add(1)..)? {
            let (_, v) = entry?;
            if let Ok(t) = serde_json::from_slice::<Transaction>(v.value()) {
                out.push(t);
            }
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Number of stored transactions with ids above `after`.
    pub(crate) fn count_transactions_after(&self, after: u64) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(TRANSACTIONS)?;
        if after == 0 {
            return Ok(t.len()?);
        }
        let mut n = 0;
        for e in t.range(after.saturating_add(1)..)? {
            e?;
            n += 1;
        }
        Ok(n)
    }

    /// A page of transaction heads matching `q`, newest first.
    pub(crate) fn query_transactions(&self, q: &TxQuery) -> Result<TxPage, StoreError> {
        let txn = self.db.begin_read()?;
        let heads = txn.open_table(TRANSACTIONS)?;
        let mut page = TxPage::default();
        let unfiltered = q.is_unfiltered();
        if unfiltered {
            page.total = heads.len()?;
        }
        let mut more = false;
        for entry in heads.iter()?.rev() {
            let (k, v) = entry?;
            let id = k.value();
            if unfiltered && q.before_id.is_some_and(|b| id >= b) {
                continue;
            }
            let Ok(t) = serde_json::from_slice::<Transaction>(v.value()) else {
                tracing::warn!(id, "skipping undecodable transaction");
                continue;
            };
            if !unfiltered {
                if !q.matches(&t) {
                    continue;
                }
                page.total += 1;
                if q.before_id.is_some_and(|b| id >= b) {
                    continue;
                }
            }
            if page.items.len() >= q.limit {
                more = true;
                if unfiltered {
                    break;
                }
                continue;
            }
            page.items.push(t);
        }
        if more {
            page.next_before_id = page.items.last().map(|t| t.id);
        }
        Ok(page)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn tx(host: &str, body: usize) -> Transaction {
        Transaction {
            timestamp: "2026-11-22T10:00:00Z".into(),
            container_name: "agent".into(),
            destination_host: host.into(),
            destination_port: 443,
            method: "GET".into(),
            url: format!("https://{host}/"),
            status_code: Some(200),
            result: greyproxy_protocol::TransactionResult::Auto,
            response_body: Some("x".repeat(body)),
            response_body_encoding: Some("text".into()),
            ..Default::default()
        }
    }

    #[test]
    fn heads_and_bodies_round_trip_and_retention_evicts_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let keep = TxRetention {
            max_rows: 3,
            max_body_bytes: 0,
        };
        let mut rows: Vec<Transaction> = (0..5).map(|i| tx(&format!("h{i}.test"), 10)).collect();
        store.append_transactions(&mut rows, keep).unwrap();
        let ids: Vec<u64> = rows.iter().map(|r| r.id).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert!(store.get_transaction(ids[0]).unwrap().is_none());
        let t = store.get_transaction(ids[4]).unwrap().unwrap();
        assert_eq!(t.response_body.as_deref(), Some("xxxxxxxxxx"));
        let page = store
            .query_transactions(&TxQuery {
                limit: 2,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(page.total, 3);
        assert_eq!(page.items.len(), 2);
        assert!(
            page.items[0].response_body.is_none(),
            "lists carry no bodies"
        );
        let next = store
            .query_transactions(&TxQuery {
                limit: 2,
                before_id: page.next_before_id,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(next.items.len(), 1);
        assert_eq!(next.next_before_id, None);

        // Byte budget: each body ~70 bytes of JSON; 200 bytes keep about two.
        let bytes = TxRetention {
            max_rows: 0,
            max_body_bytes: 200,
        };
        let mut more: Vec<Transaction> = (0..4).map(|i| tx(&format!("b{i}.test"), 20)).collect();
        store.append_transactions(&mut more, bytes).unwrap();
        let all = store
            .query_transactions(&TxQuery {
                limit: 100,
                ..Default::default()
            })
            .unwrap();
        assert!(all.total <= 3, "{}", all.total);
        assert_eq!(all.items[0].destination_host, "b3.test");
    }

    #[test]
    fn filters() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let mut rows = vec![tx("api.openai.com", 1), tx("example.org", 1)];
        rows[1].method = "POST".into();
        rows[1].status_code = Some(500);
        store
            .append_transactions(
                &mut rows,
                TxRetention {
                    max_rows: 0,
                    max_body_bytes: 0,
                },
            )
            .unwrap();
        let q = |f: TxQuery| {
            store
                .query_transactions(&TxQuery { limit: 10, ..f })
                .unwrap()
        };
        assert_eq!(
            q(TxQuery {
                destination: Some("OPENAI".into()),
                ..Default::default()
            })
            .total,
            1
        );
        assert_eq!(
            q(TxQuery {
                method: Some("post".into()),
                ..Default::default()
            })
            .items[0]
                .destination_host,
            "example.org"
        );
        assert_eq!(
            q(TxQuery {
                status: Some(404),
                ..Default::default()
            })
            .total,
            0
        );
    }
}
