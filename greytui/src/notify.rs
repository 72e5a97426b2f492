//! Getting the operator's attention for a new pending request: the terminal bell, and a desktop
//! notification through `notify-send` when a desktop session bus exists. Neither ever fails the
//! dashboard: on a headless SSH host there is simply no desktop notification.

use std::ffi::OsString;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

/// Rings the terminal bell (BEL), ignoring errors.
pub(crate) fn bell(out: &mut dyn Write) {
    let _ = out.write_all(b"\x07");
    let _ = out.flush();
}

/// Puts `text` on the terminal's clipboard with OSC 52 (`ESC ] 52 ; c ; base64 BEL`), which
/// terminals honour over SSH and tmux passes on (`set -g set-clipboard on`); errors ignored.
pub(crate) fn clipboard(out: &mut dyn Write, text: &str) {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(text);
    let _ = write!(out, "\x1b]52;c;{b64}\x07");
    let _ = out.flush();
}

/// Whether a desktop session bus is reachable: `$DBUS_SESSION_BUS_ADDRESS` is set, or the
/// systemd user bus socket `$XDG_RUNTIME_DIR/bus` exists.
pub(crate) fn session_bus_present(env: &dyn Fn(&str) -> Option<OsString>) -> bool {
    if env("DBUS_SESSION_BUS_ADDRESS").is_some_and(|v| !v.is_empty()) {
        return true;
    }
    env("XDG_RUNTIME_DIR")
        .filter(|v| !v.is_empty())
        .is_some_and(|d| Path::new(&d).join("bus").exists())
}

/// Sends a desktop notification with `notify-send` in the background. A missing `notify-send`,
/// a failing one or one that hangs (killed after 5 s) is ignored.
pub(crate) fn desktop(summary: &str, body: &str) {
    let child = tokio::process::Command::new("notify-send")
        .args(["--app-name=greytui", "--", summary, body])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn();
    if let Ok(mut child) = child {
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_detection() {
        let none = |_: &str| None;
        assert!(!session_bus_present(&none));
        let dbus =
            |k: &str| (k == "DBUS_SESSION_BUS_ADDRESS").then(|| OsString::from("unix:path=/x"));
        assert!(session_bus_present(&dbus));
        let runtime =
            |k: &str| (k == "XDG_RUNTIME_DIR").then(|| OsString::from("/nonexistent-dir"));
        assert!(!session_bus_present(&runtime));
    }

    #[test]
    fn clipboard_writes_osc_52_with_base64() {
        let mut out = Vec::new();
        clipboard(&mut out, "curl 'x'");
        assert_eq!(out, b"\x1b]52;c;Y3VybCAneCc=\x07");
    }

    #[test]
    fn bell_writes_bel() {
        let mut out = Vec::new();
        bell(&mut out);
        assert_eq!(out, b"\x07");
    }
}
