//! HAProxy as the reference TCP relay (Debian package `haproxy`, installed with apt when
//! missing, allowed and running as root): `mode tcp` with splice in both directions
//! (`option splice-auto`, `splice-request`, `splice-response`), one frontend
//! per origin on a free loopback port, run in the foreground, and stopped on drop.
//!
//! HAProxy is not a CONNECT proxy: a client connects to the frontend that stands for its
//! target and HAProxy relays the bytes to that one origin. That is what a greyproxyd tunnel
//! does after the `CONNECT` exchange, so the bulk rows compare the relays; its setup row has no
//! CONNECT round trip to make (the report says so).

use std::net::{SocketAddr, TcpListener as StdListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Its name in the reports.
pub const NAME: &str = "HAProxy TCP relay (no CONNECT)";

/// Frontends per HAProxy instance.
pub const MAX_TARGETS: usize = 4;

/// Where a client connects to reach each target through the relay.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Relay {
    map: [Option<(SocketAddr, SocketAddr)>; MAX_TARGETS],
}

impl Relay {
    /// The frontend that relays to `target`; panics for a target the relay was not set up for
    /// (a bug in the benchmark, not a measurement).
    pub fn front(&self, target: SocketAddr) -> SocketAddr {
        self.map
            .iter()
            .flatten()
            .find(|(t, _)| *t == target)
            .map(|(_, f)| *f)
            .unwrap_or_else(|| panic!("HAProxy has no frontend for {target}"))
    }
}

/// A running HAProxy; killed on drop.
pub struct Haproxy {
    child: Child,
    /// Its frontends (leaked: a few bytes per HAProxy started, and `Via` stays small and
    /// `Copy`).
    pub relay: &'static Relay,
    /// Its pid (`-db`: one foreground process, no master).
    pub pid: u32,
    /// `haproxy -v`, first line.
    pub version: String,
    _dir: tempfile::TempDir,
}

/// The binary, installed with apt first when `install` is set.
pub fn locate(install: bool) -> Result<PathBuf, String> {
    crate::sys::apt_binary(
        &[
            "/usr/sbin/haproxy",
            "/usr/bin/haproxy",
            "/usr/local/sbin/haproxy",
        ],
        "haproxy",
        install,
    )
}

fn free_port() -> Result<u16, String> {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

impl Haproxy {
    /// Starts HAProxy with one frontend per target (at most [`MAX_TARGETS`]); waits until
    /// every frontend accepts.
    pub fn start(install: bool, targets: &[SocketAddr]) -> Result<Haproxy, String> {
        assert!(targets.len() <= MAX_TARGETS, "too many HAProxy targets");
        let bin = locate(install)?;
        let version = Command::new(&bin)
            .arg("-v")
            .output()
            .map(|o| {
                let out = String::from_utf8_lossy(&o.stdout).into_owned();
                out.lines().next().unwrap_or_default().trim().to_string()
            })
            .unwrap_or_default();
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        // Threads: HAProxy's default (one per CPU). Splice asked for in both directions, not
        // only when `splice-auto` guesses it worthwhile; HAProxy still copies part of the data
        // through its buffers (docs/bench-log/issue-19.md). Long timeouts: a 2 GiB transfer on
        // a busy machine must not be cut.
        let mut conf = String::from(
            "global\n  maxconn 4096\n\ndefaults\n  mode tcp\n  option splice-auto\n  option splice-request\n  option splice-response\n  timeout connect 5s\n  timeout client 600s\n  timeout server 600s\n",
        );
        let mut map = [None; MAX_TARGETS];
        for (i, &t) in targets.iter().enumerate() {
            let front = SocketAddr::from(([127, 0, 0, 1], free_port()?));
            conf.push_str(&format!(
                "\nlisten relay{i}\n  bind {front}\n  server origin{i} {t}\n"
            ));
            map[i] = Some((t, front));
        }
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, conf).map_err(|e| e.to_string())?;
        let log = dir.path().join("haproxy.log");
        let out = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(&bin)
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", bin.display()))?;
        let mut h = Haproxy {
            pid: child.id(),
            child,
            relay: Box::leak(Box::new(Relay { map })),
            version,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        for (_, front) in map.iter().flatten() {
            while TcpStream::connect(front).is_err() {
                if let Ok(Some(status)) = h.child.try_wait() {
                    let text = std::fs::read_to_string(&log).unwrap_or_default();
                    return Err(format!("haproxy exited ({status}): {}", text.trim()));
                }
                if Instant::now() > deadline {
                    return Err("haproxy did not listen within 10 s".into());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        // The readiness probes above reached the origins as empty connections, which they
        // shrug off (a source's writes fail, a sink counts zero bytes nobody reads).
        Ok(h)
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
