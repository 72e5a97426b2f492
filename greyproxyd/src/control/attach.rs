//! `greyproxyd attach`: finds the local control socket and copies bytes between it and
//! stdin/stdout, so that `ssh host greyproxyd attach` is a control connection authenticated by
//! the SSH login (the socket admits the daemon's user, root, and with mode 0660 its group). It
//! understands nothing of what it carries: the client speaks the WebSocket protocol of `/ws`
//! end to end.

use std::io;
use std::path::{Path, PathBuf};

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use super::unix::SOCKET_FILE;

/// Where the system unit puts the socket (`RuntimeDirectory=greyproxy`), tried last when no
/// flag names a socket or a state dir.
pub const SYSTEM_SOCKET: &str = "/run/greyproxy/control.sock";

/// Why `attach` cannot connect.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// No socket file at any candidate path.
    #[error(
        "no greyproxyd control socket here (looked for {}): the daemon is not running, or it is too old to have a control socket (upgrade greyproxyd on this host)",
        list(.0)
    )]
    NoSocket(Vec<PathBuf>),
    /// The file exists but nothing accepts on it.
    #[error(
        "nothing listens on {0}: the daemon that created it has stopped (start greyproxyd again)"
    )]
    Stale(PathBuf),
    /// Not allowed to connect.
    #[error(
        "permission denied on {0}: only the daemon's user, root, and (with control.socket_mode 0660) members of its group may attach (ls -l {0})"
    )]
    PermissionDenied(PathBuf),
    /// Any other failure.
    #[error("cannot connect to {path}: {source}")]
    Io {
        /// The socket.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
}

fn list(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The runtime file a running daemon writes into its state dir (`daemon::RUNTIME_FILE`; named
/// here because the daemon's wiring sits above the control plane).
const RUNTIME_FILE: &str = "daemon.json";

/// The socket a running daemon announced in `daemon.json` (it may differ from the default).
fn announced(state_dir: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(state_dir.join(RUNTIME_FILE)).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["listeners"]["control_socket"].as_str().map(PathBuf::from)
}

/// The paths to try, best first: `--socket`; else the state dir's announced and default
/// sockets; with no `--state-dir`, the system unit's socket last.
/// `state_dir` is `None` when none can be found (no HOME).
pub fn candidates(
    socket: Option<&Path>,
    state_dir: Option<&Path>,
    explicit_dir: bool,
) -> Vec<PathBuf> {
    if let Some(s) = socket {
        return vec![s.to_path_buf()];
    }
    let mut v: Vec<PathBuf> = Vec::new();
    if let Some(dir) = state_dir {
        v.extend(announced(dir));
        v.push(dir.join(SOCKET_FILE));
    }
    if !explicit_dir {
        v.push(PathBuf::from(SYSTEM_SOCKET));
    }
    v.dedup();
    v
}

/// Connects to the first candidate that exists.
pub fn connect(candidates: &[PathBuf]) -> Result<UnixStream, AttachError> {
    let Some(path) = candidates
        .iter()
        .find(|p| std::fs::symlink_metadata(p).is_ok())
    else {
        return Err(AttachError::NoSocket(candidates.to_vec()));
    };
    UnixStream::connect(path).map_err(|e| match e.kind() {
        io::ErrorKind::ConnectionRefused => AttachError::Stale(path.clone()),
        io::ErrorKind::PermissionDenied => AttachError::PermissionDenied(path.clone()),
        _ => AttachError::Io {
            path: path.clone(),
            source: e,
        },
    })
}

/// Copies `from` to `to`, flushing after every read so that replies are not held in a buffer
/// while the other side waits for them.
fn pump(mut from: impl Read, mut to: impl Write) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
        to.flush()?;
    }
}

/// Bridges stdin/stdout to `stream` until the daemon closes its side. The end of stdin (the
/// client went away) half-closes the socket, so the daemon ends the session and closes too.
/// Plain threads: a blocking read of stdin cannot be cancelled, so the caller exits the
/// process when this returns rather than waiting for that thread.
pub fn bridge(stream: UnixStream) -> io::Result<()> {
    let mut up = stream.try_clone()?;
    std::thread::spawn(move || {
        let _ = pump(io::stdin().lock(), &mut up);
        let _ = up.shutdown(std::net::Shutdown::Write);
    });
    match pump(&stream, io::stdout().lock()) {
        // The daemon ending the session hard (after a close frame, or at shutdown) is still
        // the end of the session; the client sees its close frame or the end of the stream.
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(()),
        other => other,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn candidates_put_the_flag_first_and_the_system_socket_last() {
        let dir = tempfile::tempdir().unwrap();
        let s = Path::new("/x/y.sock");
        assert_eq!(
            candidates(Some(s), Some(dir.path()), true),
            vec![s.to_path_buf()]
        );
        assert_eq!(
            candidates(None, Some(dir.path()), true),
            vec![dir.path().join(SOCKET_FILE)]
        );
        std::fs::write(
            dir.path().join("daemon.json"),
            r#"{"listeners":{"control":"127.0.0.1:1","control_socket":"/run/custom.sock"}}"#,
        )
        .unwrap();
        assert_eq!(
            candidates(None, Some(dir.path()), false),
            vec![
                PathBuf::from("/run/custom.sock"),
                dir.path().join(SOCKET_FILE),
                PathBuf::from(SYSTEM_SOCKET)
            ]
        );
    }

    #[test]
    fn connect_errors_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.sock");
        let e = connect(std::slice::from_ref(&missing)).unwrap_err();
        assert!(matches!(e, AttachError::NoSocket(_)), "{e}");
        assert!(e.to_string().contains("none.sock"), "{e}");

        let stale = dir.path().join("stale.sock");
        drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
        let e = connect(&[missing, stale]).unwrap_err();
        assert!(matches!(e, AttachError::Stale(_)), "{e}");
        assert!(e.to_string().contains("stopped"), "{e}");
    }
}
