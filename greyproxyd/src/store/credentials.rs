//! The `credentials` and `credential_sessions` tables (`&str` id → JSON bytes). The rows are
//! the `credentials` module's records, opaque here: that module owns their shape and keeps the
//! secret in them only as ciphertext (its secret type cannot be serialised at all).
//!
//! Writes are rare (a human adding a credential, a launcher registering or heartbeating a
//! session) and each is committed durably on its own.

use redb::{ReadableDatabase, ReadableTable, TableDefinition, TableError};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Store, StoreError};

/// Which of the two tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SecretTable {
    /// Credentials by id.
    Credentials,
    /// Sessions by id.
    Sessions,
}

impl SecretTable {
    fn def(self) -> TableDefinition<'static, &'static str, &'static [u8]> {
        match self {
            SecretTable::Credentials => TableDefinition::new("credentials"),
            SecretTable::Sessions => TableDefinition::new("credential_sessions"),
        }
    }
}

/// One change given to [`Store::apply_secret_rows`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RowOp {
    /// Insert or replace the row `id` with these JSON bytes.
    Put(SecretTable, String, Vec<u8>),
    /// Delete the row `id`; a missing one is not an error.
    Delete(SecretTable, String),
}

impl RowOp {
    /// A put of `row` encoded as JSON.
    pub(crate) fn put<T: Serialize>(
        table: SecretTable,
        id: &str,
        row: &T,
    ) -> Result<RowOp, StoreError> {
        Ok(RowOp::Put(table, id.to_string(), serde_json::to_vec(row)?))
    }
}

impl Store {
    /// Applies `ops` in one durable transaction (a credential deleted with its sessions' rows
    /// rewritten, say, is all or nothing). Blocks on an fsync.
    pub(crate) fn apply_secret_rows(&self, ops: &[RowOp]) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        let txn = self.db.begin_write()?;
        {
            let mut creds = txn.open_table(SecretTable::Credentials.def())?;
            let mut sessions = txn.open_table(SecretTable::Sessions.def())?;
            for op in ops {
                match op {
                    RowOp::Put(t, id, bytes) => {
                        let table = match t {
                            SecretTable::Credentials => &mut creds,
                            SecretTable::Sessions => &mut sessions,
                        };
                        table.insert(id.as_str(), bytes.as_slice())?;
                    }
                    RowOp::Delete(t, id) => {
                        let table = match t {
                            SecretTable::Credentials => &mut creds,
                            SecretTable::Sessions => &mut sessions,
                        };
                        table.remove(id.as_str())?;
                    }
                }
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Every row of `table` by id, decoded; an undecodable row is skipped with a warning (one
    /// bad row must not cost the others).
    pub(crate) fn load_secret_rows<T: DeserializeOwned>(
        &self,
        table: SecretTable,
    ) -> Result<Vec<T>, StoreError> {
        let txn = self.db.begin_read()?;
        let t = match txn.open_table(table.def()) {
            Ok(t) => t,
            // Nothing stored yet (or a file from a build without credentials).
            Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for entry in t.iter()? {
            let (key, value) = entry?;
            match serde_json::from_slice::<T>(value.value()) {
                Ok(row) => out.push(row),
                Err(error) => tracing::warn!(
                    table = ?table,
                    key = key.value(),
                    %error,
                    "skipping undecodable credentials row"
                ),
            }
        }
        Ok(out)
    }
}
