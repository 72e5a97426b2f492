//! The credentials service: the daemon's one owner of the live [`Tables`], the [`Vault`] and
//! the two store tables. Control commands change them through it (each change committed
//! durably, off the async workers, before memory changes and the event goes out; the session
//! commands and the sweeper are in [`super::sessions`]); the exchange
//! asks it what to substitute ([`Service::plan`]) and holds secret egress through
//! [`super::holds`]. A background task expires sessions every minute and publishes the
//! substitution counters at most once a second.
//!
//! When the key file cannot be used (missing next to stored credentials, unreadable, of the
//! wrong length or mode) the service is *unavailable*: it says why, refuses to create
//! credentials, substitutes nothing (every placeholder is held), and the proxy serves on.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use greyproxy_protocol::Event;
use greyproxy_protocol::credentials::{
    CredentialDeleted, CredentialInfo, CredentialList, SessionInfo, SubstitutionCount,
    SubstitutionCounts,
};
use tokio_util::sync::CancellationToken;

use super::holds::Holds;
use super::model::{Credential, Destination, ModelError, Places, check_container};
use super::secret::Secret;
use super::session::{Session, SessionError};
use super::table::Tables;
use super::vault::Vault;
use super::{CredentialError, NewCredential, wire};
use crate::events::EventBus;
use crate::store::{RowOp, SecretTable, Store, StoreError};
use crate::time::now_secs;

/// How often expired sessions are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Shortest gap between two `credential.substitutions` events.
const COUNTS_EVERY: Duration = Duration::from_secs(1);

/// Why a credential or session command failed. Never contains a secret.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ServiceError {
    /// The key file cannot be used.
    #[error("credentials are unavailable: {0}")]
    Unavailable(String),
    /// The credential was refused.
    #[error(transparent)]
    Credential(#[from] CredentialError),
    /// The session was refused.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// No credential has this label.
    #[error("no credential labelled {0}")]
    NoCredential(String),
    /// No live session has this id (a launcher registers again).
    #[error("session {0} not found")]
    NoSession(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A blocking store task failed to run.
    #[error("store task failed: {0}")]
    Background(String),
    /// No held credential request has this id.
    #[error("no held credential request {0}")]
    NoHold(u64),
}

impl From<ModelError> for ServiceError {
    fn from(e: ModelError) -> Self {
        ServiceError::Credential(CredentialError::Model(e))
    }
}

/// What `update_credential` changes (absent: unchanged).
#[derive(Debug, Default)]
pub(crate) struct CredentialUpdate {
    pub(crate) secret: Option<Secret>,
    pub(crate) destinations: Option<Vec<String>>,
    pub(crate) containers: Option<Vec<String>>,
    pub(crate) places: Option<Places>,
    pub(crate) allow_plaintext: Option<bool>,
    /// `Some(None)` clears the expiry.
    pub(crate) expires_at: Option<Option<u64>>,
}

/// The live tables and the opened secrets, behind one short-lived lock.
#[derive(Debug, Default)]
pub(super) struct State {
    pub(super) tables: Tables,
    /// Credential id → its secret, opened once (at load, create or rotation).
    pub(super) secrets: HashMap<String, Secret>,
}

/// Substitution counters, bounded by the live sessions and the credentials.
#[derive(Debug, Default)]
struct Counts {
    /// Session id → credential id → (since start, since the last event); a session's lines go
    /// when it ends. Nested rather than keyed by the pair so that counting a substitution, on
    /// every request that has one, looks its line up without allocating the key.
    by_session: BTreeMap<String, BTreeMap<String, (u64, u64)>>,
    /// Credential id → since start, all sessions (ended ones included).
    by_credential: HashMap<String, u64>,
}

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct Service {
    state: Mutex<State>,
    /// Serialises changes so that the store and memory change in the same order.
    pub(super) write: tokio::sync::Mutex<()>,
    store: Arc<Store>,
    pub(super) events: Arc<EventBus>,
    vault: Result<Vault, String>,
    counts: Mutex<Counts>,
    /// Requests held as secret egress.
    pub(crate) holds: Holds,
    /// Cancelled when the daemon's shutdown begins: held requests end refused.
    pub(super) stopping: CancellationToken,
}

impl Service {
    /// Loads credentials and sessions and opens the vault (blocking: run it off the async
    /// workers). Never fails: a vault or store problem makes the service unavailable, with
    /// the reason logged and reported.
    pub(crate) fn open(store: Arc<Store>, events: Arc<EventBus>, state_dir: &Path) -> Service {
        let (vault, tables) = match super::load(&store, state_dir) {
            Ok((v, t)) => (Ok(v), t),
            Err(e) => {
                tracing::error!(error = %e, "credentials unavailable; the proxy serves on");
                // Still list what is stored, so that the user sees what cannot be used.
                let creds = store
                    .load_secret_rows(SecretTable::Credentials)
                    .unwrap_or_default();
                let sessions = store
                    .load_secret_rows(SecretTable::Sessions)
                    .unwrap_or_default();
                (Err(e.to_string()), Tables::new(creds, sessions))
            }
        };
        let mut secrets = HashMap::new();
        if let Ok(v) = &vault {
            for c in tables.credentials() {
                match super::reveal(v, c) {
                    Ok(s) => {
                        secrets.insert(c.id.clone(), s);
                    }
                    Err(e) => {
                        tracing::error!(label = %c.label, error = %e, "cannot open credential")
                    }
                }
            }
        }
        Service {
            state: Mutex::new(State { tables, secrets }),
            write: tokio::sync::Mutex::new(()),
            store,
            events,
            vault,
            counts: Mutex::new(Counts::default()),
            holds: Holds::default(),
            stopping: CancellationToken::new(),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn vault(&self) -> Result<&Vault, ServiceError> {
        self.vault
            .as_ref()
            .map_err(|e| ServiceError::Unavailable(e.clone()))
    }

    /// `None` when credentials work; else why not.
    pub(crate) fn unavailable(&self) -> Option<&str> {
        self.vault.as_ref().err().map(String::as_str)
    }

    /// A pending id from the store's sequence (shared with connection pending requests).
    pub(super) fn next_pending_id(&self) -> u64 {
        self.store.next_id(crate::store::IdKind::Pending)
    }

    /// Commits `ops` durably off the async workers.
    pub(super) async fn save(&self, ops: Vec<RowOp>) -> Result<(), ServiceError> {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || super::save(&store, &ops)).await {
            Ok(r) => Ok(r?),
            Err(e) => Err(ServiceError::Background(e.to_string())),
        }
    }

    fn info(&self, st: &State, c: &Credential) -> CredentialInfo {
        let _ = st;
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        wire::credential(c, counts.by_credential.get(&c.id).copied().unwrap_or(0))
    }

    pub(super) fn session_info(&self, st: &State, s: &Session, now: u64) -> SessionInfo {
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let mut by_label = BTreeMap::new();
        for cid in s.placeholders.keys() {
            if let Some(c) = st.tables.credential(cid) {
                let n = counts
                    .by_session
                    .get(&s.id)
                    .and_then(|m| m.get(cid))
                    .map_or(0, |(t, _)| *t);
                by_label.insert(c.label.clone(), n);
            }
        }
        wire::session(s, &by_label, now)
    }

    /// `create_credential`.
    pub(crate) async fn create_credential(
        &self,
        new: NewCredential,
    ) -> Result<CredentialInfo, ServiceError> {
        let vault = self.vault()?;
        for c in &new.containers {
            check_container(c)?;
        }
        let _w = self.write.lock().await;
        let c = {
            let st = self.lock();
            super::create(vault, &st.tables, &new, now_secs())?
        };
        self.save(vec![super::put_credential(&c)?]).await?;
        let info = {
            let mut st = self.lock();
            st.secrets.insert(c.id.clone(), new.secret.clone());
            st.tables.put_credential(c.clone());
            self.info(&st, &c)
        };
        tracing::info!(label = %c.label, preview = %c.preview, "credential created");
        self.events.publish(Event::CredentialCreated(info.clone()));
        Ok(info)
    }

    /// `update_credential`: a new secret is a rotation (same id, placeholders stay valid).
    pub(crate) async fn update_credential(
        &self,
        label: &str,
        up: CredentialUpdate,
    ) -> Result<CredentialInfo, ServiceError> {
        let vault = self.vault()?;
        let _w = self.write.lock().await;
        let mut c = self
            .lock()
            .tables
            .credential_by_label(label)
            .cloned()
            .ok_or_else(|| ServiceError::NoCredential(label.to_string()))?;
        let now = now_secs();
        if let Some(d) = up.destinations {
            c.destinations = d
                .iter()
                .map(|d| Destination::parse(d))
                .collect::<Result<Vec<_>, _>>()?;
        }
        if let Some(cs) = up.containers {
            c.containers = if cs.is_empty() { vec!["*".into()] } else { cs };
        }
        if let Some(p) = up.places {
            c.places = p;
        }
        if let Some(p) = up.allow_plaintext {
            c.allow_plaintext = p;
        }
        if let Some(e) = up.expires_at {
            c.expires_at = e;
        }
        c.validate()?;
        if let Some(s) = &up.secret {
            super::rotate(vault, &mut c, s, now)?;
        }
        c.updated_at = now;
        self.commit_credential(c, up.secret).await
    }

    /// Adds a (possibly timed) destination to the credential `id` (a `bind` decision).
    pub(crate) async fn bind(
        &self,
        id: &str,
        dest: Destination,
    ) -> Result<CredentialInfo, ServiceError> {
        let _w = self.write.lock().await;
        let mut c = self
            .lock()
            .tables
            .credential(id)
            .cloned()
            .ok_or_else(|| ServiceError::NoCredential(id.to_string()))?;
        c.destinations.retain(|d| {
            !(d.host == dest.host && d.port == dest.port && d.path_prefix == dest.path_prefix)
        });
        c.destinations.push(dest);
        c.validate()?;
        c.updated_at = now_secs();
        self.commit_credential(c, None).await
    }

    async fn commit_credential(
        &self,
        c: Credential,
        secret: Option<Secret>,
    ) -> Result<CredentialInfo, ServiceError> {
        self.save(vec![super::put_credential(&c)?]).await?;
        let info = {
            let mut st = self.lock();
            if let Some(s) = secret {
                st.secrets.insert(c.id.clone(), s);
            }
            st.tables.put_credential(c.clone());
            self.info(&st, &c)
        };
        self.events.publish(Event::CredentialUpdated(info.clone()));
        Ok(info)
    }

    /// `delete_credential`. Its placeholders are held from then on (reason
    /// `deleted_credential`).
    pub(crate) async fn delete_credential(&self, label: &str) -> Result<(), ServiceError> {
        let _w = self.write.lock().await;
        let id = self
            .lock()
            .tables
            .credential_by_label(label)
            .map(|c| c.id.clone())
            .ok_or_else(|| ServiceError::NoCredential(label.to_string()))?;
        self.save(vec![super::delete_credential(&id)]).await?;
        {
            let mut st = self.lock();
            st.tables.remove_credential(&id);
            st.secrets.remove(&id);
        }
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_credential
            .remove(&id);
        tracing::info!(label, "credential deleted");
        self.events
            .publish(Event::CredentialDeleted(CredentialDeleted {
                id,
                label: label.to_string(),
            }));
        Ok(())
    }

    /// `list_credentials`.
    pub(crate) fn list_credentials(&self) -> CredentialList {
        let st = self.lock();
        let mut credentials: Vec<CredentialInfo> =
            st.tables.credentials().map(|c| self.info(&st, c)).collect();
        credentials.sort_by(|a, b| a.label.cmp(&b.label));
        CredentialList {
            credentials,
            available: self.vault.is_ok(),
            unavailable_reason: self.unavailable().map(str::to_string),
        }
    }

    /// Counts substitutions made for `(session, credential id)`.
    pub(crate) fn count(&self, session: &str, credential: &str) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if !c.by_session.contains_key(session) {
            c.by_session.insert(session.to_string(), BTreeMap::new());
        }
        if let Some(lines) = c.by_session.get_mut(session) {
            match lines.get_mut(credential) {
                Some(e) => {
                    e.0 += 1;
                    e.1 += 1;
                }
                None => {
                    lines.insert(credential.to_string(), (1, 1));
                }
            }
        }
        match c.by_credential.get_mut(credential) {
            Some(n) => *n += 1,
            None => {
                c.by_credential.insert(credential.to_string(), 1);
            }
        }
    }

    /// Drops the counters of an ended session (published first if they changed).
    pub(super) fn forget_counts(&self, session: &str) {
        self.publish_counts();
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_session
            .remove(session);
    }

    /// Publishes the counters that changed since the last call, if any.
    pub(super) fn publish_counts(&self) {
        let changed: Vec<(String, String, u64, u64)> = {
            let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
            c.by_session
                .iter_mut()
                .flat_map(|(s, lines)| lines.iter_mut().map(move |(cid, e)| (s, cid, e)))
                .filter(|(_, _, (_, added))| *added > 0)
                .map(|(s, cid, (total, added))| {
                    let a = std::mem::take(added);
                    (s.clone(), cid.clone(), *total, a)
                })
                .collect()
        };
        if changed.is_empty() {
            return;
        }
        let st = self.lock();
        let counts = changed
            .into_iter()
            .map(|(session_id, cid, total, added)| SubstitutionCount {
                session_id,
                label: st
                    .tables
                    .credential(&cid)
                    .map_or(cid.clone(), |c| c.label.clone()),
                total,
                added,
            })
            .collect();
        drop(st);
        self.events
            .publish(Event::CredentialSubstitutions(SubstitutionCounts {
                counts,
            }));
    }

    /// Runs the sweeper and the counter publisher until `stop`, which also ends every hold.
    pub(crate) fn spawn_background(self: Arc<Self>, stop: CancellationToken) {
        tokio::spawn(async move {
            let mut sweep = tokio::time::interval(SWEEP_EVERY);
            let mut counts = tokio::time::interval(COUNTS_EVERY);
            loop {
                tokio::select! {
                    _ = sweep.tick() => self.sweep().await,
                    _ = counts.tick() => self.publish_counts(),
                    _ = stop.cancelled() => {
                        self.stopping.cancel();
                        self.publish_counts();
                        return;
                    }
                }
            }
        });
    }
}
