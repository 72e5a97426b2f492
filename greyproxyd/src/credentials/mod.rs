//! Credentials (docs/credentials.md): agents hold placeholders, the daemon swaps in the real
//! secret on the way out, and only where the secret is bound to go.
//!
//! * [`vault`]: AES-256-GCM at rest, key file `credentials.key` (0600) in the state dir;
//! * [`secret`]: the in-memory secret, wiped on drop, printed only as a preview;
//! * [`model`]: credentials (label, destinations, containers, places, plaintext, expiry);
//! * [`session`]: launcher sessions and the placeholder format;
//! * [`table`]: the live tables; [`scan`]: finding placeholders in a request;
//! * [`bind`]: may this placeholder be substituted here? (else: secret egress, held);
//! * [`substitute`]: placeholder → secret in headers, query, bodies; secret → placeholder in
//!   an echoing response.
//!
//! * [`service`]: the daemon's owner of all of it (commands, counters; the session commands
//!   and the sweeper in [`sessions`]); [`plan`]:
//!   what to do with one request's placeholders; [`holds`]: secret egress held for a human;
//!   [`wire`]: the control protocol's reports.
//!
//! The exchange (capture/credentials.rs) and the control commands use the service.

pub mod bench;
pub(crate) mod bind;
pub mod fuzzing;
pub(crate) mod holds;
pub(crate) mod model;
pub(crate) mod plan;
pub(crate) mod scan;
pub(crate) mod secret;
pub(crate) mod service;
pub(crate) mod session;
pub(crate) mod sessions;
pub(crate) mod substitute;
pub(crate) mod table;
pub(crate) mod vault;
pub(crate) mod wire;

#[cfg(test)]
mod bind_tests;
#[cfg(test)]
mod scan_tests;
#[cfg(test)]
mod service_tests;
#[cfg(test)]
mod tests;

use std::path::Path;

use model::{Credential, Destination, ModelError, Places, check_label};
use secret::{Secret, SecretError};
use session::Session;
use table::Tables;
use vault::{KeyFile, Vault, VaultError};

use crate::store::{RowOp, SecretTable, Store, StoreError};

/// Why a credential operation failed. Never contains a secret.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CredentialError {
    /// The description is invalid.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The secret is refused.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The vault failed.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another credential has this label.
    #[error("a credential labelled {0} exists already")]
    DuplicateLabel(String),
}

/// What a user gives to create a credential.
#[derive(Debug, Clone)]
pub(crate) struct NewCredential {
    /// Unique label.
    pub(crate) label: String,
    /// The secret.
    pub(crate) secret: Secret,
    /// `host[:port][/path-prefix]` patterns.
    pub(crate) destinations: Vec<String>,
    /// Container globs; empty means `*`.
    pub(crate) containers: Vec<String>,
    /// Where to substitute.
    pub(crate) places: Places,
    /// Allow plain HTTP.
    pub(crate) allow_plaintext: bool,
    /// Unix seconds.
    pub(crate) expires_at: Option<u64>,
}

/// Builds and seals a credential, checking every part and that its label is free in `tables`.
pub(crate) fn create(
    vault: &Vault,
    tables: &Tables,
    new: &NewCredential,
    now: u64,
) -> Result<Credential, CredentialError> {
    check_label(&new.label)?;
    if tables.credential_by_label(&new.label).is_some() {
        return Err(CredentialError::DuplicateLabel(new.label.clone()));
    }
    let destinations = new
        .destinations
        .iter()
        .map(|d| Destination::parse(d))
        .collect::<Result<Vec<_>, _>>()?;
    let containers = if new.containers.is_empty() {
        vec!["*".to_string()]
    } else {
        new.containers.clone()
    };
    let id = format!(
        "cr-{}",
        session::random_hex(8).map_err(|_| VaultError::Random)?
    );
    let c = Credential {
        sealed: vault.seal(&id, &new.secret)?,
        id,
        label: new.label.clone(),
        preview: new.secret.preview(),
        destinations,
        containers,
        places: new.places,
        allow_plaintext: new.allow_plaintext,
        expires_at: new.expires_at,
        created_at: now,
        updated_at: now,
    };
    c.validate()?;
    Ok(c)
}

/// Replaces a credential's secret, keeping its id (so its placeholders stay valid).
pub(crate) fn rotate(
    vault: &Vault,
    c: &mut Credential,
    secret: &Secret,
    now: u64,
) -> Result<(), CredentialError> {
    c.sealed = vault.seal(&c.id, secret)?;
    c.preview = secret.preview();
    c.updated_at = now;
    Ok(())
}

/// The secret of `c`.
pub(crate) fn reveal(vault: &Vault, c: &Credential) -> Result<Secret, VaultError> {
    vault.open_secret(&c.id, &c.sealed)
}

/// Opens the vault of `state_dir` and loads the tables from `store`. The key is created only
/// when no credential is stored yet; a missing or bad key otherwise is an error the daemon
/// reports while serving on (credentials unavailable).
pub(crate) fn load(store: &Store, state_dir: &Path) -> Result<(Vault, Tables), CredentialError> {
    let credentials: Vec<Credential> = store.load_secret_rows(SecretTable::Credentials)?;
    let sessions: Vec<Session> = store.load_secret_rows(SecretTable::Sessions)?;
    let mode = if credentials.is_empty() {
        KeyFile::CreateIfMissing
    } else {
        KeyFile::MustExist
    };
    let vault = Vault::open(state_dir, mode)?;
    Ok((vault, Tables::new(credentials, sessions)))
}

/// The store write for a credential.
pub(crate) fn put_credential(c: &Credential) -> Result<RowOp, StoreError> {
    RowOp::put(SecretTable::Credentials, &c.id, c)
}

/// The store write for a session.
pub(crate) fn put_session(s: &Session) -> Result<RowOp, StoreError> {
    RowOp::put(SecretTable::Sessions, &s.id, s)
}

/// The store write deleting a credential.
pub(crate) fn delete_credential(id: &str) -> RowOp {
    RowOp::Delete(SecretTable::Credentials, id.to_string())
}

/// The store write deleting a session.
pub(crate) fn delete_session(id: &str) -> RowOp {
    RowOp::Delete(SecretTable::Sessions, id.to_string())
}

/// Commits `ops` durably (blocks on an fsync).
pub(crate) fn save(store: &Store, ops: &[RowOp]) -> Result<(), StoreError> {
    store.apply_secret_rows(ops)
}
