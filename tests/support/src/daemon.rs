//! Starting and stopping a real daemon process for a test.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::control::Control;
use crate::wait::{POLL, Text, eventually_sync, within_sync};

/// A loopback port that nothing listens on: one the kernel just handed out and that was
/// released again. Unlike a fixed port (the daemon's defaults, 43080…), it is closed even when
/// a real greyproxyd runs on this machine.
pub fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// How to start a daemon.
#[derive(Debug, Clone)]
pub struct DaemonBuilder {
    bin: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl DaemonBuilder {
    /// A daemon from this binary (pass `env!("CARGO_BIN_EXE_greyproxyd")`).
    pub fn new(bin: impl Into<PathBuf>) -> DaemonBuilder {
        DaemonBuilder {
            bin: bin.into(),
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    /// Extra `serve` arguments.
    pub fn args(mut self, args: &[&str]) -> DaemonBuilder {
        self.args.extend(args.iter().map(|s| s.to_string()));
        self
    }

    /// Extra environment.
    pub fn env(mut self, k: &str, v: &str) -> DaemonBuilder {
        self.env.push((k.into(), v.into()));
        self
    }

    /// Starts on a fresh temporary state dir.
    pub async fn start(self) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        self.start_in(dir).await
    }

    /// Starts on an existing state dir (e.g. after [`Daemon::stop`]).
    pub async fn start_in(self, dir: tempfile::TempDir) -> Daemon {
        let log_path = dir.path().join("daemon.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap();
        let _ = std::fs::remove_file(dir.path().join("daemon.json"));
        let mut cmd = Command::new(&self.bin);
        cmd.arg("serve")
            .arg("--state-dir")
            .arg(dir.path())
            .args([
                "--control-addr",
                "127.0.0.1:0",
                "--http-addr",
                "127.0.0.1:0",
                "--socks-addr",
                "127.0.0.1:0",
                // Never the default 43053: tests run in parallel.
                "--dns-addr",
                "127.0.0.1:0",
            ])
            .args(&self.args)
            .env("RUST_LOG", "greyproxyd=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        // Killed if the start is abandoned (a panic, or the test dropping this future), so that
        // no daemon outlives its test.
        let mut guard = StartGuard(Some(cmd.spawn().unwrap()));
        let runtime = wait_runtime(dir.path(), guard.child(), &log_path).await;
        let child = guard.0.take().unwrap();
        let addr = |k: &str| -> Option<SocketAddr> {
            runtime["listeners"][k].as_str().map(|s| s.parse().unwrap())
        };
        let token = std::fs::read_to_string(dir.path().join("control.token"))
            .unwrap_or_default()
            .trim()
            .to_string();
        Daemon {
            child: Some(child),
            builder: self,
            dir: Some(dir),
            control: addr("control").unwrap(),
            http: addr("http"),
            socks: addr("socks5"),
            dns: addr("dns"),
            token,
        }
    }
}

/// The daemon being started; killed on drop unless handed over.
struct StartGuard(Option<Child>);

impl StartGuard {
    fn child(&mut self) -> &mut Child {
        self.0.as_mut().unwrap()
    }
}

impl Drop for StartGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

async fn wait_runtime(dir: &Path, child: &mut Child, log: &Path) -> Value {
    let pid = child.id();
    let read_log = || Text(std::fs::read_to_string(log).unwrap_or_default());
    eventually_sync(
        "the daemon to start (its daemon.json)",
        Duration::from_secs(20),
        POLL,
        || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "daemon exited with {status} before listening; log:\n{}",
                    read_log().0
                );
            }
            if let Ok(text) = std::fs::read_to_string(dir.join("daemon.json"))
                && let Ok(v) = serde_json::from_str::<Value>(&text)
                && v["pid"].as_u64() == Some(pid as u64)
            {
                return Ok(v);
            }
            Err(read_log())
        },
    )
    .await
}

/// A running daemon; killed when dropped.
#[derive(Debug)]
pub struct Daemon {
    child: Option<Child>,
    builder: DaemonBuilder,
    dir: Option<tempfile::TempDir>,
    /// Control address.
    pub control: SocketAddr,
    /// HTTP proxy address.
    pub http: Option<SocketAddr>,
    /// SOCKS5 proxy address.
    pub socks: Option<SocketAddr>,
    /// DNS forwarder address (UDP and TCP), when on.
    pub dns: Option<SocketAddr>,
    /// Control token.
    pub token: String,
}

impl Daemon {
    /// The state dir.
    pub fn state_dir(&self) -> &Path {
        self.dir.as_ref().unwrap().path()
    }

    /// `ws://…/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.control)
    }

    /// `http://127.0.0.1:port` of the HTTP proxy.
    pub fn http_proxy(&self) -> String {
        format!("http://{}", self.http.unwrap())
    }

    /// `host:port` of the SOCKS5 proxy.
    pub fn socks_proxy(&self) -> String {
        self.socks.unwrap().to_string()
    }

    /// A control client with the right token.
    pub async fn client(&self) -> Control {
        Control::connect(&self.ws_url(), Some(&self.token))
            .await
            .unwrap()
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.state_dir().join("daemon.log")).unwrap_or_default()
    }

    /// SIGTERM, wait for exit; returns the state dir for a restart.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let exited = within_sync(Duration::from_secs(10), POLL, || {
                child.try_wait().unwrap().ok_or(())
            })
            .await;
            if exited.is_err() {
                let _ = child.kill();
                let _ = child.wait();
                panic!("daemon did not stop on SIGTERM");
            }
        }
        self.dir.take().unwrap()
    }

    /// SIGKILL, as a crash would: the state dir stays (with a stale control socket).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops (SIGTERM) and starts again on the same state dir with the same arguments.
    pub async fn restart(self) -> Daemon {
        let builder = self.builder.clone();
        let dir = self.stop().await;
        builder.start_in(dir).await
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
