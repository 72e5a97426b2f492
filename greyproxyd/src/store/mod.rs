//! Persistence (docs/design.md#persistence): one redb file, `greyproxy.redb` in the state dir,
//! holding the rules, the pending requests, the request logs and free-form settings.
//!
//! Tables:
//! - `meta` (`&str → u64`): `schema_version` and the id counters `next_id.<table>`;
//! - `rules`, `pending`, `request_logs` (`u64 id → JSON bytes` of [`RuleRecord`],
//!   [`PendingRecord`], [`RequestLogRecord`](crate::records::RequestLogRecord));
//! - `settings` (`&str → bytes`), opaque to the store;
//! - `dns_cache` (`&str` IP → JSON bytes of [`DnsCacheRow`]), see [`Store::put_dns_cache`];
//! - `credentials`, `credential_sessions` (`&str` id → JSON bytes, the secret sealed), see
//!   [`credentials`];
//! - the assembled LLM conversations (`conversations`, `conversations_by_activity`,
//!   `conversation_turns`, `conversation_steps`, `conversation_children`,
//!   `conversation_sessions`), see [`conversations`].
//!
//! Values are serde_json bytes rather than a binary encoding: records are flexible (a field added
//! later reads from old rows through serde defaults, and an older build ignores fields it does not
//! know), so the schema grows additively without a migration per change; rows are small (a few
//! hundred bytes), so the extra size and parse cost do not matter; and a file can be inspected
//! with any redb tool while debugging.
//!
//! Every call here blocks on disk I/O (a durable commit is an fsync): async callers go through
//! `tokio::task::spawn_blocking`, holding the store as `Arc<Store>`. Request logs, which are
//! written on every decision, go through the batching writer of [`spawn_log_writer`] instead.

#[cfg(test)]
mod conversation_tests;
mod conversations;
mod credentials;
mod dns;
mod error;
mod export;
mod llm_calls;
#[cfg(test)]
mod log_tests;
mod logs;
mod query;
#[cfg(test)]
mod tests;
mod transactions;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use redb::{
    Database, ReadableDatabase, ReadableTable, TableDefinition, TableError, TableHandle,
    WriteTransaction,
};
use serde::de::DeserializeOwned;

#[allow(unused_imports)]
pub(crate) use conversations::{
    ConversationFilter, ConversationPage, ConversationRecord, ConversationWrite,
    SESSION_ROW_PREFIX, TurnHead, WriteStats,
};
pub(crate) use credentials::{RowOp, SecretTable};
pub(crate) use dns::DnsCacheRow;
pub(crate) use error::StoreError;
pub(crate) use llm_calls::CallQuery;
#[cfg(test)]
pub(crate) use llm_calls::test_call;
pub(crate) use logs::{LogSink, Sink, WriteBatch, spawn_log_writer, spawn_writer};
pub(crate) use query::LogQuery;
pub use transactions::TxRetention;
pub(crate) use transactions::{TxQuery, body_weight, spawn_transaction_writer};

use crate::records::{PendingRecord, RuleRecord};

/// Layout version this build writes. A file with a higher version is refused at open rather
/// than misread; a lower one would be migrated there (there is none yet).
pub(crate) const SCHEMA_VERSION: u64 = 1;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const RULES: TableDefinition<u64, &[u8]> = TableDefinition::new("rules");
const PENDING: TableDefinition<u64, &[u8]> = TableDefinition::new("pending");
const REQUEST_LOGS: TableDefinition<u64, &[u8]> = TableDefinition::new("request_logs");
const SETTINGS: TableDefinition<&str, &[u8]> = TableDefinition::new("settings");
const TRANSACTIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("transactions");
const BODIES: TableDefinition<u64, &[u8]> = TableDefinition::new("bodies");
const LLM_CALLS: TableDefinition<u64, &[u8]> = TableDefinition::new("llm_calls");

const SCHEMA_KEY: &str = "schema_version";

/// Which id sequence to draw from; each table with `u64` keys has its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum IdKind {
    /// Ids of [`RuleRecord`]s.
    Rule,
    /// Ids of [`PendingRecord`]s.
    Pending,
    /// Ids of [`RequestLogRecord`](crate::records::RequestLogRecord)s.
    RequestLog,
    /// Ids of recorded transactions (assigned when the request starts: capture order).
    Transaction,
    /// Ids of LLM calls (assigned when dissected).
    LlmCall,
}

/// Number of id sequences.
const N_KINDS: usize = 5;

impl IdKind {
    const ALL: [IdKind; N_KINDS] = [
        IdKind::Rule,
        IdKind::Pending,
        IdKind::RequestLog,
        IdKind::Transaction,
        IdKind::LlmCall,
    ];

    fn index(self) -> usize {
        match self {
            IdKind::Rule => 0,
            IdKind::Pending => 1,
            IdKind::RequestLog => 2,
            IdKind::Transaction => 3,
            IdKind::LlmCall => 4,
        }
    }

    /// `meta` key holding the next id to hand out.
    fn counter_key(self) -> &'static str {
        match self {
            IdKind::Rule => "next_id.rules",
            IdKind::Pending => "next_id.pending",
            IdKind::RequestLog => "next_id.request_logs",
            IdKind::Transaction => "next_id.transactions",
            IdKind::LlmCall => "next_id.llm_calls",
        }
    }

    fn table(self) -> TableDefinition<'static, u64, &'static [u8]> {
        match self {
            IdKind::Rule => RULES,
            IdKind::Pending => PENDING,
            IdKind::RequestLog => REQUEST_LOGS,
            IdKind::Transaction => TRANSACTIONS,
            IdKind::LlmCall => LLM_CALLS,
        }
    }
}

/// One change in a batch given to [`Store::apply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    /// Insert or replace the rule with this record's id.
    PutRule(RuleRecord),
    /// Delete a rule; deleting a missing id is not an error.
    DeleteRule(u64),
    /// Insert or replace the pending request with this record's id.
    PutPending(PendingRecord),
    /// Delete a pending request; deleting a missing id is not an error.
    DeletePending(u64),
    /// Set a setting.
    PutSetting(String, Vec<u8>),
    /// Remove a setting; removing a missing key is not an error.
    DeleteSetting(String),
}

/// The open store. `Send + Sync`; share it as `Arc<Store>`.
#[derive(Debug)]
pub(crate) struct Store {
    db: Database,
    /// Next id to hand out, by [`IdKind::index`]. Allocation stays in memory (no transaction per
    /// id); the write that stores a row persists the counter past it (see [`Store::apply`]).
    next: [AtomicU64; N_KINDS],
}

/// redb's page cache. Its default (1 GiB) follows the file as capture fills it, so the daemon's
/// memory grew with the recorded traffic (the soak run saw 450 MiB after 40 s); the pages are in
/// the kernel's page cache anyway, so a small cache costs little on the (rare) full scans. Once
/// filled it stays filled, so it is most of a daemon's idle memory after traffic: 4 MiB (a
/// thousand pages) keeps the tables' upper levels (what every insert and page of a listing
/// walks) and brings the idle daemon back near its start after traffic (docs/performance.md#soak;
/// at 8 MiB a soak left it at 31 MiB, over the 30 MiB target). redb holds at most half of it as
/// the write buffer of a commit and writes a larger commit's pages straight to the file.
pub(crate) const CACHE_BYTES: usize = 4 << 20;

impl Store {
    /// Opens the store at `path`, creating the file and its tables when missing.
    ///
    /// Fails when the file cannot be opened (missing directory, permissions, locked by another
    /// process), is not a redb database, or was written with a newer [`SCHEMA_VERSION`].
    pub(crate) fn open(path: &Path) -> Result<Store, StoreError> {
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|source| StoreError::Database {
                path: path.to_path_buf(),
                source,
            })?;
        // Checked in a read transaction first, so that a newer file is left exactly as it was.
        if let Some(found) = read_schema_version(&db)?
            && found > SCHEMA_VERSION
        {
            return Err(StoreError::SchemaTooNew {
                path: path.to_path_buf(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        let next = initialise(&db)?;
        Ok(Store { db, next })
    }

    /// Hands out a new id of `kind`: strictly increasing, starting at 1, never reused, including
    /// after the newest row is deleted or the daemon restarts (once the row was written).
    pub(crate) fn next_id(&self, kind: IdKind) -> u64 {
        self.next[kind.index()].fetch_add(1, Ordering::Relaxed)
    }

    /// Applies `ops` in order in one write transaction, committed durably before returning:
    /// either all of them are on disk afterwards, or (on error) none.
    ///
    /// Blocks on an fsync; call it from `tokio::task::spawn_blocking` in async code.
    pub(crate) fn apply(&self, ops: &[Op]) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        let txn = self.db.begin_write()?;
        // Highest "next id" implied by the rows written, by IdKind::index (0 = none written).
        let mut high = [0u64; N_KINDS];
        {
            let mut rules = txn.open_table(RULES)?;
            let mut pending = txn.open_table(PENDING)?;
            let mut settings = txn.open_table(SETTINGS)?;
            for op in ops {
                match op {
                    Op::PutRule(rule) => {
                        rules.insert(rule.id, serde_json::to_vec(rule)?.as_slice())?;
                        raise(&mut high, IdKind::Rule, rule.id);
                    }
                    Op::DeleteRule(id) => {
                        rules.remove(id)?;
                    }
                    Op::PutPending(row) => {
                        pending.insert(row.id, serde_json::to_vec(row)?.as_slice())?;
                        raise(&mut high, IdKind::Pending, row.id);
                    }
                    Op::DeletePending(id) => {
                        pending.remove(id)?;
                    }
                    Op::PutSetting(key, value) => {
                        settings.insert(key.as_str(), value.as_slice())?;
                    }
                    Op::DeleteSetting(key) => {
                        settings.remove(key.as_str())?;
                    }
                }
            }
        }
        self.persist_counters(&txn, &high)?;
        // Default durability (Immediate): the data is on disk when commit returns.
        txn.commit()?;
        Ok(())
    }

    /// All rules, by ascending id. Rows that fail to decode are skipped with a warning.
    pub(crate) fn load_rules(&self) -> Result<Vec<RuleRecord>, StoreError> {
        self.load_all(RULES)
    }

    /// All pending requests, by ascending id. Rows that fail to decode are skipped with a
    /// warning.
    pub(crate) fn load_pending(&self) -> Result<Vec<PendingRecord>, StoreError> {
        self.load_all(PENDING)
    }

    /// The value of a setting, `None` when unset.
    pub(crate) fn get_setting(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(SETTINGS)?;
        Ok(table.get(key)?.map(|v| v.value().to_vec()))
    }

    /// Decodes a whole id-keyed table. A bad row (written by a buggy or newer build, or damaged)
    /// costs that row only: losing every rule because one does not parse would be far worse.
    fn load_all<T: DeserializeOwned>(
        &self,
        def: TableDefinition<u64, &[u8]>,
    ) -> Result<Vec<T>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(def)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (key, value) = entry?;
            match serde_json::from_slice::<T>(value.value()) {
                Ok(row) => out.push(row),
                Err(error) => tracing::warn!(
                    table = def.name(),
                    key = key.value(),
                    %error,
                    "skipping undecodable row in the store"
                ),
            }
        }
        Ok(out)
    }

    /// Persists, within `txn`, each counter of `high` that is set as `max(counter, high)`, and
    /// raises the in-memory counter the same way (a row written with an id this process did not
    /// hand out, e.g. an import, must not be handed out again either).
    fn persist_counters(
        &self,
        txn: &WriteTransaction,
        high: &[u64; N_KINDS],
    ) -> Result<(), StoreError> {
        if high.iter().all(|&h| h == 0) {
            return Ok(());
        }
        let mut meta = txn.open_table(META)?;
        for kind in IdKind::ALL {
            let wanted = high[kind.index()];
            if wanted == 0 {
                continue;
            }
            self.next[kind.index()].fetch_max(wanted, Ordering::Relaxed);
            let stored = meta.get(kind.counter_key())?.map_or(0, |v| v.value());
            if wanted > stored {
                meta.insert(kind.counter_key(), wanted)?;
            }
        }
        Ok(())
    }
}

/// Notes that a row with `id` of `kind` is being written: the next id must be above it.
fn raise(high: &mut [u64; N_KINDS], kind: IdKind, id: u64) {
    let slot = &mut high[kind.index()];
    *slot = (*slot).max(id.saturating_add(1));
}

/// The recorded schema version, `None` for a file with no `meta` table yet (a new file).
fn read_schema_version(db: &Database) -> Result<Option<u64>, StoreError> {
    let txn = db.begin_read()?;
    let meta = match txn.open_table(META) {
        Ok(meta) => meta,
        Err(TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    Ok(meta.get(SCHEMA_KEY)?.map(|v| v.value()))
}

/// Creates missing tables, records the schema version and works out where each id sequence
/// resumes: after the persisted counter, and never at or below an existing key (a floor for
/// files whose counter was lost or never written).
fn initialise(db: &Database) -> Result<[AtomicU64; N_KINDS], StoreError> {
    let txn = db.begin_write()?;
    let mut next = [1u64; N_KINDS];
    {
        let mut meta = txn.open_table(META)?;
        // No migrations exist yet: an older or missing version is simply stamped current.
        if meta.get(SCHEMA_KEY)?.map(|v| v.value()) != Some(SCHEMA_VERSION) {
            meta.insert(SCHEMA_KEY, SCHEMA_VERSION)?;
        }
        txn.open_table(SETTINGS)?;
        for kind in IdKind::ALL {
            let table = txn.open_table(kind.table())?;
            let floor = table
                .last()?
                .map_or(1, |(key, _)| key.value().saturating_add(1));
            let stored = meta.get(kind.counter_key())?.map_or(0, |v| v.value());
            let resume = stored.max(floor).max(1);
            if resume != stored {
                meta.insert(kind.counter_key(), resume)?;
            }
            next[kind.index()] = resume;
        }
    }
    txn.commit()?;
    Ok(next.map(AtomicU64::new))
}
