//! Desktop-notification fallback: when nobody holds a notification claim and `notify-send` is
//! on PATH, each new pending request pops a desktop notification. Without a desktop session
//! (the usual case on a server) `notify-send` fails and that is only logged at debug level.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use greyproxy_protocol::Event;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::control::Claims;
use crate::events::EventBus;

/// Finds `notify-send` on PATH.
pub(crate) fn find_notify_send() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("notify-send"))
        .find(|p| p.is_file())
}

/// The notification text for a pending request.
pub(crate) fn message(container: &str, host: &str, port: u16) -> String {
    format!("{container} wants to connect to {host}:{port}")
}

/// Runs until shutdown, notifying for every new pending request while nobody claims.
pub(crate) async fn run(events: Arc<EventBus>, claims: Claims, shutdown: CancellationToken) {
    let Some(bin) = find_notify_send() else {
        tracing::debug!("notify-send not found: no desktop notifications from the daemon");
        return;
    };
    let mut rx = events.subscribe();
    loop {
        let ev = tokio::select! {
            ev = rx.recv() => ev,
            _ = shutdown.cancelled() => return,
        };
        let p = match ev {
            Ok(p) => p,
            Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => return,
        };
        let Event::PendingCreated(pending) = &p.event else {
            continue;
        };
        if claims.active() > 0 {
            continue;
        }
        let body = message(
            &pending.container_name,
            pending.display_host(),
            pending.destination_port,
        );
        let mut cmd = tokio::process::Command::new(&bin);
        cmd.args([
            "-a",
            "greyproxy",
            "-u",
            "normal",
            "-t",
            "30000",
            "GreyProxy",
        ])
        .arg(&body)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
        match cmd.spawn() {
            Ok(mut child) => {
                // Reap it without ever waiting on it from the event loop.
                tokio::spawn(async move {
                    match tokio::time::timeout(Duration::from_secs(10), child.wait()).await {
                        Ok(Ok(s)) if !s.success() => {
                            tracing::debug!(status = %s, "notify-send failed (no desktop session?)")
                        }
                        Err(_) => {
                            let _ = child.kill().await;
                        }
                        _ => {}
                    }
                });
            }
            Err(e) => tracing::debug!(error = %e, "cannot run notify-send"),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn message_text() {
        assert_eq!(
            super::message("opencode", "registry.npmjs.org", 443),
            "opencode wants to connect to registry.npmjs.org:443"
        );
    }
}
