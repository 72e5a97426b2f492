//! Errors of the store, worded for the person running the daemon: the ones that can happen at
//! startup name the file, since "DB corrupted" alone does not say which file or what to do.

use std::path::PathBuf;

/// Anything that can go wrong opening, reading or writing the store.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// The redb file could not be opened or created (missing directory, permissions, not a redb
    /// file, locked by another process).
    #[error("cannot open store {}: {}", path.display(), describe_open_error(source))]
    Database {
        /// The file the daemon tried to open.
        path: PathBuf,
        /// What redb reported.
        #[source]
        source: redb::DatabaseError,
    },
    /// The file was written by a newer greyproxyd whose layout this build does not know.
    #[error(
        "cannot open store {}: it has schema version {found}, but this greyproxyd supports \
         version {supported} at most; run a newer greyproxyd or move the file aside",
        path.display()
    )]
    SchemaTooNew {
        /// The file.
        path: PathBuf,
        /// Version recorded in the file.
        found: u64,
        /// [`super::SCHEMA_VERSION`] of this build.
        supported: u64,
    },
    /// A read or write transaction could not be started.
    #[error("store transaction failed: {}", describe_transaction_error(.0))]
    Transaction(#[from] redb::TransactionError),
    /// A table could not be opened (for example, it has an unexpected type).
    #[error("store table error: {0}")]
    Table(#[from] redb::TableError),
    /// Reading or writing pages failed (I/O error, corruption).
    #[error("store I/O error: {0}")]
    Storage(#[from] redb::StorageError),
    /// A write transaction could not be committed; nothing of it was written.
    #[error("store commit failed: {0}")]
    Commit(#[from] redb::CommitError),
    /// A record could not be encoded as JSON.
    #[error("store encoding error: {0}")]
    Json(#[from] serde_json::Error),
}

/// redb's own wording plus a hint for the two cases a user actually meets: pointing the daemon
/// at some other file, and starting a second daemon on the same state dir.
fn describe_open_error(err: &redb::DatabaseError) -> String {
    match err {
        // redb reports a foreign file as invalid data ("Not a redb database: magic number
        // mismatch"); its own wording says it best without the generic "I/O error" prefix.
        redb::DatabaseError::Storage(redb::StorageError::Io(io))
            if io.kind() == std::io::ErrorKind::InvalidData =>
        {
            io.to_string()
        }
        redb::DatabaseError::Storage(redb::StorageError::Corrupted(_)) => {
            format!("not a redb database, or damaged ({err})")
        }
        redb::DatabaseError::DatabaseAlreadyOpen => {
            format!("in use by another process, is another greyproxyd running? ({err})")
        }
        _ => err.to_string(),
    }
}

/// redb's wording, except after an earlier failed write: redb then refuses every write until the
/// file is reopened ("Please close and re-open the database"), which for the person running the
/// daemon means a restart once the disk takes writes again.
fn describe_transaction_error(err: &redb::TransactionError) -> String {
    match err {
        redb::TransactionError::Storage(redb::StorageError::PreviousIo) => {
            "an earlier write to the store failed (disk full or read-only?); nothing can be \
             saved until greyproxyd is restarted with the disk writable"
                .to_string()
        }
        _ => err.to_string(),
    }
}
