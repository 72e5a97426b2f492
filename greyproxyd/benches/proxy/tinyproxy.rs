//! tinyproxy as the reference plain tunnelling proxy (Debian package `tinyproxy`, installed with
//! apt when missing, allowed and running as root): run on a free loopback port with a minimal
//! config that allows CONNECT to any port, and stop it.

use std::net::{SocketAddr, TcpListener as StdListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running tinyproxy; killed on drop.
pub struct Tinyproxy {
    child: Child,
    /// Its listening address.
    pub addr: SocketAddr,
    /// Its pid (it runs in the foreground, `-d`).
    pub pid: u32,
    /// `tinyproxy -v`.
    pub version: String,
    _dir: tempfile::TempDir,
}

fn locate(install: bool) -> Result<PathBuf, String> {
    crate::sys::apt_binary(
        &[
            "/usr/bin/tinyproxy",
            "/usr/sbin/tinyproxy",
            "/usr/local/bin/tinyproxy",
        ],
        "tinyproxy-bin",
        install,
    )
}

impl Tinyproxy {
    /// Starts tinyproxy (installing it first when `install`).
    pub fn start(install: bool) -> Result<Tinyproxy, String> {
        let bin = locate(install)?;
        let version = Command::new(&bin)
            .arg("-v")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        let port = StdListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let conf = dir.path().join("tinyproxy.conf");
        // No ConnectPort line: CONNECT to every port is allowed. Enough workers for the
        // benchmark's sequential transfers; logging kept out of the way.
        let text = format!(
            "Port {port}\nListen 127.0.0.1\nTimeout 600\nAllow 127.0.0.1\nMaxClients 64\nLogLevel Critical\nLogFile \"{}\"\n",
            dir.path().join("tinyproxy.log").display()
        );
        std::fs::write(&conf, text).map_err(|e| e.to_string())?;
        let child = Command::new(&bin)
            .arg("-d")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", bin.display()))?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            if Instant::now() > deadline {
                return Err("tinyproxy did not listen within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Tinyproxy {
            pid: child.id(),
            child,
            addr,
            version,
            _dir: dir,
        })
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
