//! Helpers of greytui's end-to-end tests: the daemon binary (built by `cargo test --workspace`
//! next to this test's executable), running `greytui --once` as a real process, and real
//! curl requests held by the daemon.
#![allow(clippy::unwrap_used, dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use greyproxy_testkit::{CurlResult, Daemon, DaemonBuilder, curl};
use tokio::task::JoinHandle;

/// The `greyproxyd` binary of this build: `target/<profile>/greyproxyd`, beside the `deps/`
/// directory holding this test executable.
pub fn daemon_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test executable lives in target/<profile>/deps");
    let bin = profile_dir.join("greyproxyd");
    assert!(
        bin.is_file(),
        "{} is missing: greytui's end-to-end tests drive the real daemon; run \
         `cargo build -p greyproxyd` (or `cargo test --workspace`, which builds it) first",
        bin.display()
    );
    bin
}

/// A daemon on port-0 listeners and a fresh state dir.
pub async fn daemon() -> Daemon {
    DaemonBuilder::new(daemon_bin()).start().await
}

/// The greytui binary under test.
pub fn greytui_bin() -> &'static str {
    env!("CARGO_BIN_EXE_greytui")
}

/// What a `greytui` run did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// A greytui command with an environment free of the developer's own greyproxy settings.
pub fn command() -> tokio::process::Command {
    let mut c = tokio::process::Command::new(greytui_bin());
    for k in [
        "GREYPROXY_TOKEN",
        "GREYPROXY_STATE_DIR",
        "STATE_DIRECTORY",
        "XDG_STATE_HOME",
        "DBUS_SESSION_BUS_ADDRESS",
    ] {
        c.env_remove(k);
    }
    c.kill_on_drop(true);
    c
}

/// Runs `greytui` with `args` (and nothing else: pass `--state-dir` yourself).
pub async fn greytui(args: &[&str]) -> Run {
    let out = tokio::time::timeout(Duration::from_secs(30), command().args(args).output())
        .await
        .expect("greytui --once finishes")
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `greytui --once <args> --state-dir <daemon's>`: finds URL and token on its own.
pub async fn once(d: &Daemon, args: &[&str]) -> Run {
    let dir = d.state_dir().to_str().unwrap().to_string();
    let mut all = vec!["--once"];
    all.extend_from_slice(args);
    all.extend(["--state-dir", &dir]);
    greytui(&all).await
}

/// A curl through the daemon's HTTP proxy to `url`, held until decided.
pub fn held_curl(d: &Daemon, url: &str) -> JoinHandle<CurlResult> {
    let proxy = d.http_proxy();
    let url = url.to_string();
    tokio::spawn(async move { curl(&["-x", proxy.as_str(), url.as_str()]).await })
}

/// Awaits a curl with a bound.
pub async fn finish(h: JoinHandle<CurlResult>) -> CurlResult {
    tokio::time::timeout(Duration::from_secs(15), h)
        .await
        .expect("curl answered")
        .unwrap()
}

/// A stand-in for ssh: skips the options up to `--`, then runs `greyproxyd attach` on the
/// state dir `BASE/HOST` (a symlink to a test daemon's), ignoring the remote command. `BASE`
/// holds the script too.
pub fn standin(base: &std::path::Path) -> PathBuf {
    let script = base.join("fake-ssh");
    let text = format!(
        "#!/bin/sh\nwhile [ \"$#\" -gt 0 ] && [ \"$1\" != \"--\" ]; do shift; done\nshift\nexec {} attach --state-dir {}/\"$1\"\n",
        daemon_bin().display(),
        base.display()
    );
    std::fs::write(&script, text).unwrap();
    let exec = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755);
    std::fs::set_permissions(&script, exec).unwrap();
    script
}
