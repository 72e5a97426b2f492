//! The live CA: [`MitmCerts`] holds the current [`LeafIssuer`] (none while there is no CA)
//! and replaces it when `ca-cert.pem` / `ca-key.pem` change, without a restart.
//!
//! A replacement issuer starts with an empty leaf cache, so every handshake after a rotation
//! is signed by the new CA. A pair that does not load (half-written, mismatched, corrupt)
//! never replaces a working one: the old issuer keeps serving and an error is logged.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::ca::{self, Ca, CaError};
use super::leaf::LeafIssuer;

/// The bytes of both CA files at one moment (`None` = missing or unreadable).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Snapshot {
    cert: Option<Vec<u8>>,
    key: Option<Vec<u8>>,
}

impl Snapshot {
    fn read(state_dir: &Path) -> Snapshot {
        let read = |p: PathBuf| match fs::read(&p) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => {
                tracing::debug!(path = %p.display(), error = %e, "cannot read CA file");
                None
            }
        };
        Snapshot {
            cert: read(ca::cert_path(state_dir)),
            key: read(ca::key_path(state_dir)),
        }
    }
}

/// The current leaf issuer and what it was loaded from.
pub(crate) struct MitmCerts {
    state_dir: PathBuf,
    capacity: usize,
    // Readers are on the TLS accept path: an uncontended read lock plus an `Arc` clone is a
    // couple of atomic operations; writers only come from reloads.
    current: RwLock<Option<Arc<LeafIssuer>>>,
    // Contents of the pair behind `current`, to tell a real change from a touch; also
    // serializes reloads.
    loaded: Mutex<Snapshot>,
}

impl std::fmt::Debug for MitmCerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MitmCerts")
            .field("state_dir", &self.state_dir)
            .field("current", &self.current())
            .finish_non_exhaustive()
    }
}

impl MitmCerts {
    /// Loads the CA from `state_dir` if both files are there; otherwise (or if they do not
    /// load, which is logged) starts without one, and `MitmCerts::reload` (tests) or the watcher
    /// picks it up later. `capacity` is the leaf cache size of each issuer.
    pub(crate) fn new(state_dir: impl Into<PathBuf>, capacity: usize) -> MitmCerts {
        let me = MitmCerts {
            state_dir: state_dir.into(),
            capacity,
            current: RwLock::new(None),
            loaded: Mutex::new(Snapshot::default()),
        };
        let snap = Snapshot::read(&me.state_dir);
        if (snap.cert.is_some() || snap.key.is_some())
            && let Err(e) = me.apply(snap)
        {
            tracing::error!(error = %e, "cannot load the MITM CA; TLS is tunnelled raw until it is fixed");
        }
        me
    }

    /// The issuer for new handshakes, or `None` when there is no usable CA.
    pub(crate) fn current(&self) -> Option<Arc<LeafIssuer>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Re-reads both files and swaps in a new issuer (empty cache) when their content changed
    /// and the new pair loads. `Ok(false)`: unchanged. On error the current issuer stays.
    #[cfg(test)]
    pub(crate) fn reload(&self) -> Result<bool, CaError> {
        let r = self.apply(Snapshot::read(&self.state_dir));
        if let Err(e) = &r {
            tracing::error!(error = %e, "MITM CA not reloaded; keeping the current one");
        }
        r
    }

    /// Loads `snap` unless it is what is already loaded. Does not log errors: the watcher
    /// decides whether a failure is final or just a rotation in progress.
    fn apply(&self, snap: Snapshot) -> Result<bool, CaError> {
        let mut loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        if *loaded == snap && self.current().is_some() {
            return Ok(false);
        }
        let (cert_file, key_file) = (
            ca::cert_path(&self.state_dir),
            ca::key_path(&self.state_dir),
        );
        let (cert, key) = match (&snap.cert, &snap.key) {
            (Some(c), Some(k)) => (c, k),
            (None, Some(_)) => {
                return Err(CaError::OnlyOne {
                    present: key_file,
                    missing: cert_file,
                });
            }
            (Some(_), None) => {
                return Err(CaError::OnlyOne {
                    present: cert_file,
                    missing: key_file,
                });
            }
            (None, None) => return Err(CaError::Missing { path: cert_file }),
        };
        ca::tighten_key_mode(&key_file)?;
        let new = Ca::from_pem(cert, key, &cert_file, &key_file)?;
        let issuer = LeafIssuer::new(Arc::new(new), self.capacity)?;
        tracing::info!(
            subject = issuer.ca().subject(),
            fingerprint = issuer.ca().fingerprint(),
            "MITM CA loaded"
        );
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(issuer));
        *loaded = snap;
        Ok(true)
    }

    /// Polls the two CA files every `interval` until `shutdown`, reloading when their
    /// content changes.
    ///
    /// Polling rather than inotify: no extra dependency, it works on every filesystem
    /// (network mounts, bind mounts into containers, where change notification is
    /// unreliable or absent), and a CA rotation is a rare manual act for which a couple of
    /// seconds is fine. The files are under a kilobyte each, so comparing their content is
    /// cheap and stronger than mtime/length (coarse timestamps, same-length rewrites).
    ///
    /// A pair that fails to load right after a change may be a rotation in progress (one file
    /// renamed, not yet the other): it is retried quietly on the next poll, and reported only
    /// once the files have stopped changing.
    pub(crate) fn spawn_watcher(
        self: Arc<Self>,
        interval: Duration,
        shutdown: CancellationToken,
    ) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut state = WatchState {
                previous: self
                    .loaded
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone(),
                reported: None,
            };
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(interval) => {}
                }
                let me = self.clone();
                // File reads, parsing and key generation are blocking work (well under a
                // millisecond, but not for the async workers).
                match tokio::task::spawn_blocking(move || {
                    me.poll(&mut state);
                    state
                })
                .await
                {
                    Ok(s) => state = s,
                    Err(e) => {
                        tracing::error!(error = %e, "CA watcher stopped");
                        return;
                    }
                }
            }
        })
    }

    /// One watcher step.
    fn poll(&self, st: &mut WatchState) {
        let snap = Snapshot::read(&self.state_dir);
        let stable = snap == st.previous;
        st.previous = snap.clone();
        if *self.loaded.lock().unwrap_or_else(PoisonError::into_inner) == snap {
            st.reported = None;
            return;
        }
        if st.reported.as_ref() == Some(&snap) {
            return; // this broken state was already reported
        }
        match self.apply(snap.clone()) {
            Ok(_) => st.reported = None,
            Err(e) if stable => {
                tracing::error!(error = %e, "MITM CA files changed but do not load; keeping the current CA");
                st.reported = Some(snap);
            }
            Err(_) => {} // still changing: look again next time
        }
    }
}

/// What the watcher remembers between polls.
struct WatchState {
    /// Contents seen at the previous poll (to tell a settled state from one in progress).
    previous: Snapshot,
    /// A broken state already logged, not to repeat the error every poll.
    reported: Option<Snapshot>,
}

#[cfg(test)]
mod tests;
