//! Process lifecycle under a service manager: sd-notify readiness, watchdog pings, status
//! lines and `STOPPING=1`, and the signals that stop (SIGTERM, SIGINT) or reload (SIGHUP) the
//! daemon. Without `$NOTIFY_SOCKET` every notification is a no-op.

use std::time::Duration;

use greyproxy_protocol::Listeners;
use sd_notify::NotifyState;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// What a signal asks of the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Request {
    /// SIGTERM or SIGINT: shut down gracefully.
    Stop,
    /// SIGHUP: re-read the config file.
    Reload,
}

/// The signals the daemon reacts to, installed once at start (before readiness, so that a
/// SIGTERM right after `READY=1` is never lost).
#[derive(Debug)]
pub(crate) struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    /// Installs the handlers.
    pub(crate) fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Waits for the next signal.
    pub(crate) async fn next(&mut self) -> Request {
        tokio::select! {
            _ = self.term.recv() => Request::Stop,
            _ = self.int.recv() => Request::Stop,
            _ = self.hup.recv() => Request::Reload,
        }
    }
}

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify the service manager");
    }
}

/// The `STATUS=` line describing the listeners.
pub(crate) fn status_line(l: &Listeners) -> String {
    let mut s = format!("control {}", l.control);
    for (what, addr) in [("http", &l.http), ("socks5", &l.socks5), ("dns", &l.dns)] {
        if let Some(a) = addr {
            s.push_str(&format!(", {what} {a}"));
        }
    }
    format!("listening: {s}")
}

/// `READY=1` with the listening addresses; call once every listener accepts.
pub(crate) fn notify_ready(l: &Listeners) {
    let status = status_line(l);
    send(&[NotifyState::Ready, NotifyState::Status(&status)]);
}

/// `STOPPING=1`: shutdown has begun.
pub(crate) fn notify_stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("shutting down")]);
}

/// `RELOADING=1` (with the monotonic timestamp systemd requires), before re-reading config.
pub(crate) fn notify_reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(e) => tracing::debug!(error = %e, "no monotonic clock for RELOADING=1"),
    }
}

/// `READY=1` again after a reload, with a status line.
pub(crate) fn notify_reloaded(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// When `$WATCHDOG_USEC` is set (for this process), pings `WATCHDOG=1` at half that interval
/// until `stop`.
pub(crate) fn spawn_watchdog(stop: CancellationToken) {
    let Some(period) = sd_notify::watchdog_enabled() else {
        return;
    };
    let every = (period / 2).max(Duration::from_millis(100));
    tracing::debug!(?every, "watchdog pings enabled");
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = tick.tick() => send(&[NotifyState::Watchdog]),
                _ = stop.cancelled() => return,
            }
        }
    });
}

/// Raises the soft limit on open files (`RLIMIT_NOFILE`) to the hard limit, once at start:
/// every held connection costs a descriptor (two once it is released and dials upstream), and
/// the soft limit a shell or service manager hands out (often 1024) is far below what a burst
/// of held clients needs. The new value is logged at debug; failure only warns.
pub(crate) fn raise_fd_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let lim = getrlimit(Resource::Nofile);
    let (Some(soft), Some(hard)) = (lim.current, lim.maximum) else {
        tracing::debug!(soft = ?lim.current, hard = ?lim.maximum, "open-file limit unlimited");
        return;
    };
    if soft >= hard {
        tracing::debug!(limit = soft, "open-file limit already at its hard limit");
        return;
    }
    let raised = Rlimit {
        current: Some(hard),
        maximum: Some(hard),
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => tracing::debug!(from = soft, to = hard, "raised the open-file limit"),
        Err(e) => {
            tracing::warn!(error = %e, limit = soft, "cannot raise the open-file limit");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn status_lists_enabled_listeners() {
        let l = Listeners {
            control: "127.0.0.1:1".into(),
            http: Some("127.0.0.1:2".into()),
            socks5: None,
            dns: None,
            control_socket: None,
        };
        assert_eq!(
            status_line(&l),
            "listening: control 127.0.0.1:1, http 127.0.0.1:2"
        );
    }
}
