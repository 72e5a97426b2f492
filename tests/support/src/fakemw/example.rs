//! The example middlewares (`examples/<name>/middleware.py`) under either transport, and a
//! daemon started with extra environment (inherited by stdio children).

use std::path::PathBuf;
use std::time::Duration;

use super::{Transport, python};
use crate::daemon::DaemonBuilder;
use crate::mitm::{MitmEnv, allow_loopback, config_file};
use crate::tls::TestCa;
use crate::wait::eventually_every;

/// `<repo>/examples`.
pub fn examples_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples"))
        .canonicalize()
        .unwrap()
}

/// Absolute path of `examples/<name>/middleware.py`.
pub fn script(name: &str) -> String {
    examples_dir()
        .join(name)
        .join("middleware.py")
        .display()
        .to_string()
}

/// A running example (WebSocket: a Python server process; stdio: nothing runs until the
/// daemon spawns it). The WebSocket process is killed on drop.
#[derive(Debug)]
pub struct Example {
    /// `serve` arguments that configure it.
    pub args: Vec<String>,
    child: Option<tokio::process::Child>,
}

impl Example {
    /// Starts `examples/<name>/middleware.py` for `t`; `env` goes to the WebSocket process
    /// (for stdio, pass it to the daemon: children inherit it).
    pub async fn start(t: Transport, name: &str, env: &[(&str, &str)]) -> Example {
        Example::start_script(t, &script(name), env).await
    }

    /// Like [`Example::start`] for any helper-based script.
    pub async fn start_script(t: Transport, path: &str, env: &[(&str, &str)]) -> Example {
        match t {
            Transport::Stdio => Example {
                args: vec![
                    "--middleware-cmd".into(),
                    format!("'{}' '{path}'", python()),
                ],
                child: None,
            },
            Transport::Ws => {
                let port = std::net::TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port();
                let mut cmd = tokio::process::Command::new(python());
                cmd.arg(path)
                    .env("GREYPROXY_TRANSPORT", "ws")
                    .env("GREYPROXY_WS_HOST", "127.0.0.1")
                    .env("GREYPROXY_WS_PORT", port.to_string())
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .kill_on_drop(true);
                for (k, v) in env {
                    cmd.env(k, v);
                }
                let mut child = cmd.spawn().unwrap();
                let what = format!("{path} to listen on port {port}");
                eventually_every(
                    &what,
                    Duration::from_secs(10),
                    Duration::from_millis(30),
                    async || match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
                        Ok(_) => Ok(()),
                        Err(e) => match child.try_wait() {
                            Ok(Some(st)) => panic!("{path} exited with {st} before listening"),
                            _ => Err(e),
                        },
                    },
                )
                .await;
                Example {
                    args: vec![
                        "--middleware".into(),
                        format!("ws://127.0.0.1:{port}/middleware"),
                    ],
                    child: Some(child),
                }
            }
        }
    }

    /// The WebSocket process id (None for stdio).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }
}

/// [`MitmEnv::start`] with environment for the daemon (and so for its stdio children).
pub async fn start_env(bin: &str, config: &str, args: &[String], env: &[(&str, &str)]) -> MitmEnv {
    let ca = TestCa::new("greyproxy test origin CA");
    let cfg = config_file(config);
    let cfg_path = cfg.path().display().to_string();
    let ca_path = ca.pem_arg();
    let mut all: Vec<&str> = vec!["--upstream-ca", &ca_path, "--config", &cfg_path];
    all.extend(args.iter().map(String::as_str));
    let mut b = DaemonBuilder::new(bin).args(&all);
    for (k, v) in env {
        b = b.env(k, v);
    }
    let d = b.start().await;
    let mut ws = d.client().await;
    allow_loopback(&mut ws).await;
    MitmEnv { d, ws, ca }
}
