//! mitmproxy as the reference MITM proxy: find `mitmdump` (installing it with pip when missing
//! and allowed), run it as an upstream-verifying interception proxy on a free loopback port
//! with a fresh confdir, and stop it.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The pip command that installs mitmproxy (zstandard's source build fails on this machine,
/// so only its wheel is accepted).
pub const INSTALL: &[&str] = &[
    "-m",
    "pip",
    "install",
    "--quiet",
    "--disable-pip-version-check",
    "--only-binary=zstandard",
    "mitmproxy",
];

/// Where pip puts scripts for `python3` (`sysconfig`'s `scripts` path).
fn pip_scripts_dir() -> Option<PathBuf> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!dir.is_empty()).then(|| PathBuf::from(dir))
}

/// A `mitmdump` that answers `--version`: `$BENCH_MITMDUMP` when set (and nothing else), else
/// pip's scripts dir for `python3` (a real script, so its pid is mitmdump's own), else `PATH`.
fn find() -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Ok(p) = std::env::var("BENCH_MITMDUMP") {
        candidates.push(PathBuf::from(p));
    } else if let Some(d) = pip_scripts_dir() {
        candidates.push(d.join("mitmdump"));
    }
    if std::env::var_os("BENCH_MITMDUMP").is_none() {
        for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
            candidates.push(dir.join("mitmdump"));
        }
    }
    candidates.into_iter().find(|p| {
        p.is_file()
            && Command::new(p)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
    })
}

/// `mitmdump`, installing mitmproxy with `python3 -m pip` first when it is missing and
/// `install` is set. `Err` says why there is none.
pub fn locate(install: bool) -> Result<PathBuf, String> {
    if let Some(p) = find() {
        return Ok(p);
    }
    if !install {
        return Err("mitmdump not found (not installed in a smoke run)".into());
    }
    eprintln!("      mitmdump not found: python3 {}", INSTALL.join(" "));
    let status = Command::new("python3")
        .args(INSTALL)
        .stdin(Stdio::null())
        .status()
        .map_err(|e| format!("python3: {e}"))?;
    if !status.success() {
        return Err(format!("pip install mitmproxy failed ({status})"));
    }
    find().ok_or_else(|| "mitmdump still not found after pip install".into())
}

/// A running `mitmdump`; killed when dropped.
pub struct Mitmdump {
    child: Child,
    /// Where it listens (HTTP proxy, CONNECT).
    pub addr: SocketAddr,
    /// Its pid.
    pub pid: u32,
    /// The CA its leaf certificates chain to (`<confdir>/mitmproxy-ca-cert.pem`).
    pub ca: PathBuf,
    /// `mitmdump --version`, first line.
    pub version: String,
    _confdir: tempfile::TempDir,
}

fn free_port() -> u16 {
    let l = StdListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}

impl Mitmdump {
    /// Starts `bin` verifying origins against `upstream_ca` only, quiet, streaming bodies over
    /// 1 MiB instead of buffering them; waits until it listens and its CA exists.
    pub async fn start(bin: &Path, upstream_ca: &Path) -> Result<Mitmdump, String> {
        let version = Command::new(bin)
            .arg("--version")
            .output()
            .map(|o| {
                let out = String::from_utf8_lossy(&o.stdout).into_owned();
                out.lines().next().unwrap_or_default().trim().to_string()
            })
            .unwrap_or_default();
        let confdir = tempfile::Builder::new()
            .prefix("bench-mitmproxy-")
            .tempdir()
            .unwrap();
        let log = confdir.path().join("mitmdump.log");
        let port = free_port();
        let set = |k: &str, v: &str| ["--set".to_string(), format!("{k}={v}")];
        let mut args: Vec<String> = vec![
            "-q".into(),
            "--listen-host".into(),
            "127.0.0.1".into(),
            "--listen-port".into(),
            port.to_string(),
        ];
        args.extend(set("confdir", &confdir.path().display().to_string()));
        args.extend(set(
            "ssl_verify_upstream_trusted_ca",
            &upstream_ca.display().to_string(),
        ));
        args.extend(set("flow_detail", "0"));
        args.extend(set("termlog_verbosity", "error"));
        args.extend(set("stream_large_bodies", "1m"));
        let child = Command::new(bin)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
            .stderr(Stdio::from(
                std::fs::OpenOptions::new().append(true).open(&log).unwrap(),
            ))
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        let mut m = Mitmdump {
            pid: child.id(),
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            ca: confdir.path().join("mitmproxy-ca-cert.pem"),
            version,
            _confdir: confdir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = m.child.try_wait() {
                return Err(format!("mitmdump exited ({status}): {}", log_tail(&log)));
            }
            if m.ca.is_file() && tokio::net::TcpStream::connect(m.addr).await.is_ok() {
                return Ok(m);
            }
            if Instant::now() > deadline {
                return Err(format!("mitmdump did not start: {}", log_tail(&log)));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Mitmdump {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
