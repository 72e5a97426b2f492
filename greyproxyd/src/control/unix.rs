//! The control unix socket (`<state dir>/control.sock` by default): the same WebSocket protocol
//! as `/ws`, run over a unix stream, with peers admitted by their credentials instead of the
//! token (`peer.rs`). `greyproxyd attach` bridges stdio to it, so an SSH login is a control
//! connection.
//!
//! Why the WebSocket handshake rather than bare frames: the session, the heartbeat, close
//! codes and every client library stay exactly those of `/ws`, and `attach` stays a byte pipe
//! that needs to understand nothing.
//!
//! Binding replaces a stale socket file (left by a daemon that died) but never one a live
//! daemon still accepts on, and never a file that is not a socket.

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use super::handlers::Handler;
use super::peer::{self, SocketOwner};
use super::server::{Admission, AuthMode, upgrade_and_run};

/// File name of the socket in the state dir.
pub const SOCKET_FILE: &str = "control.sock";

/// Why the socket cannot be bound.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// A daemon accepts on it.
    #[error(
        "another greyproxyd already serves control on {0} (stop it, or choose --control-socket)"
    )]
    InUse(PathBuf),
    /// The path is a regular file, a directory…
    #[error("{0} exists and is not a socket; remove it or choose --control-socket")]
    NotASocket(PathBuf),
    /// Longer than `sun_path` allows.
    #[error(
        "{0} is too long for a unix socket path (at most 107 bytes): choose a shorter --control-socket PATH, or off"
    )]
    TooLong(PathBuf),
    /// Any other I/O failure.
    #[error("cannot listen on {path}: {source}")]
    Io {
        /// The socket path.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
}

/// A bound control socket; the file is removed when this is dropped, if it is still ours.
#[derive(Debug)]
pub(crate) struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
    /// (device, inode) of the file we created, so that a successor's socket is never removed.
    id: (u64, u64),
    owner: SocketOwner,
}

impl ControlSocket {
    /// Where it listens.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        if let Ok(m) = std::fs::symlink_metadata(&self.path)
            && (m.dev(), m.ino()) == self.id
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Binds `path` with mode 0600, or 0660 when `group_access` (group members are then admitted
/// too), replacing a stale socket file.
pub(crate) fn bind(path: &Path, group_access: bool) -> Result<ControlSocket, SocketError> {
    let io_err = |source| SocketError::Io {
        path: path.to_path_buf(),
        source,
    };
    if path.as_os_str().len() > 107 {
        return Err(SocketError::TooLong(path.to_path_buf()));
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_socket() => {
            return Err(SocketError::NotASocket(path.to_path_buf()));
        }
        Ok(_) => match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => return Err(SocketError::InUse(path.to_path_buf())),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                tracing::info!(path = %path.display(), "replacing a stale control socket");
                std::fs::remove_file(path).map_err(io_err)?;
            }
            Err(e) => return Err(io_err(e)),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(e)),
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
        && !parent.is_dir()
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(if group_access { 0o750 } else { 0o700 })
            .create(parent)
            .map_err(io_err)?;
    }
    let listener = UnixListener::bind(path).map_err(io_err)?;
    let mode = if group_access { 0o660 } else { 0o600 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io_err)?;
    let meta = std::fs::symlink_metadata(path).map_err(io_err)?;
    let owner = SocketOwner {
        uid: rustix::process::geteuid().as_raw(),
        group: group_access.then_some(meta.gid()),
    };
    Ok(ControlSocket {
        listener,
        path: path.to_path_buf(),
        id: (meta.dev(), meta.ino()),
        owner,
    })
}

/// Accepts on the socket until shutdown; the file is removed when this returns.
pub(crate) async fn serve(
    socket: ControlSocket,
    handler: Arc<Handler>,
    auth: AuthMode,
    shutdown: CancellationToken,
) {
    loop {
        let stream = tokio::select! {
            r = socket.listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "control socket: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => return,
        };
        let (handler, auth, shutdown) = (handler.clone(), auth.clone(), shutdown.clone());
        let owner = socket.owner;
        tokio::spawn(async move {
            if let Err(e) = connection(stream, owner, handler, auth, shutdown).await {
                tracing::debug!(error = %e, "control socket: connection ended");
            }
        });
    }
}

async fn connection(
    stream: UnixStream,
    owner: SocketOwner,
    handler: Arc<Handler>,
    auth: AuthMode,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let cred = stream.peer_cred()?;
    let (uid, gid) = (cred.uid(), cred.gid());
    let mut gids = vec![gid];
    // Supplementary groups matter only when group members are admitted.
    if owner.group.is_some()
        && let Some(pid) = cred.pid()
    {
        gids.extend(peer::supplementary_groups(pid, uid));
    }
    let decision = peer::decide(uid, &gids, owner);
    let label = format!("unix uid {uid}");
    tracing::debug!(peer = %label, ?decision, "control socket peer");
    let admission = if decision.admitted() {
        Admission::Peer
    } else {
        Admission::Token {
            refusal: peer::refusal(uid, owner),
        }
    };
    upgrade_and_run(stream, &label, admission, handler, &auth, shutdown).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stale_socket_is_replaced_a_live_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sock");
        // A socket file whose listener is gone: what a killed daemon leaves behind.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let live = bind(&path, false).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(matches!(bind(&path, false), Err(SocketError::InUse(_))));
        drop(live);
        assert!(!path.exists(), "dropping the socket removes its file");

        std::fs::write(&path, "not a socket").unwrap();
        let e = bind(&path, false).unwrap_err();
        assert!(matches!(e, SocketError::NotASocket(_)), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "not a socket");
    }

    #[tokio::test]
    async fn group_access_makes_it_0660_and_names_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/c.sock");
        let s = bind(&path, true).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o660);
        assert_eq!(s.owner.group, Some(meta.gid()));
        let long = dir.path().join("x".repeat(120));
        assert!(matches!(bind(&long, false), Err(SocketError::TooLong(_))));
    }
}
