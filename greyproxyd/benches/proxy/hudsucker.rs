//! hudsucker as the reference Rust MITM proxy: a minimal proxy of our own on the hudsucker
//! crate (`peers/hudsucker_main.rs.txt`, no handlers: it records nothing), written as a cargo
//! project of its own under `target/bench-peers/hudsucker/`, built `--release` once (a full
//! run; a smoke run uses it only when already built), run on a free loopback port and stopped
//! on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use std::io::BufRead;
use std::net::SocketAddr;

/// Its name in the reports.
pub const NAME: &str = "hudsucker (records nothing)";

const MAIN: &str = include_str!("peers/hudsucker_main.rs.txt");
const MANIFEST: &str = include_str!("peers/hudsucker_Cargo.toml.txt");

/// `target/bench-peers/hudsucker` of this workspace.
fn project() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-peers/hudsucker")
}

/// Writes `text` to `path` unless it already holds exactly that (an unchanged file keeps its
/// mtime, so cargo has nothing to rebuild).
fn write_if_changed(path: &Path, text: &str) -> Result<bool, String> {
    if std::fs::read_to_string(path).is_ok_and(|t| t == text) {
        return Ok(false);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(true)
}

/// The peer's binary: built when missing or when its sources changed, if `build` is set
/// (cargo fetches hudsucker from crates.io the first time; after that nothing runs cargo
/// until the template changes). `Err` says why there is none.
pub fn locate(build: bool) -> Result<PathBuf, String> {
    let dir = project();
    let bin = dir.join("target/release/hudsucker-peer");
    let changed = write_if_changed(&dir.join("Cargo.toml"), MANIFEST)?
        | write_if_changed(&dir.join("src/main.rs"), MAIN)?;
    if bin.is_file() && !changed {
        return Ok(bin);
    }
    if !build {
        return Err("not built (a full `--bench` run builds it once)".into());
    }
    eprintln!(
        "      building the hudsucker peer in {} (once)…",
        dir.display()
    );
    let log = dir.join("build.log");
    let out = std::fs::File::create(&log).map_err(|e| e.to_string())?;
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet"])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .stdout(Stdio::null())
        .stderr(Stdio::from(out))
        .status()
        .map_err(|e| format!("cargo: {e}"))?;
    if !status.success() || !bin.is_file() {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(3).collect();
        return Err(format!(
            "cargo build failed ({status}): {}",
            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
        ));
    }
    Ok(bin)
}

/// A running peer; killed on drop.
pub struct Hudsucker {
    child: Child,
    /// Where it listens (HTTP proxy, CONNECT).
    pub addr: SocketAddr,
    /// Its pid.
    pub pid: u32,
    /// The CA its leaves chain to.
    pub ca: PathBuf,
    /// The hudsucker version it was built with.
    pub version: String,
    _dir: tempfile::TempDir,
}

impl Hudsucker {
    /// Starts `bin` verifying origins against `upstream_ca` only; waits for its
    /// `listening <addr>` line.
    pub fn start(bin: &Path, upstream_ca: &Path) -> Result<Hudsucker, String> {
        let dir = tempfile::Builder::new()
            .prefix("bench-hudsucker-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let log = dir.path().join("hudsucker.log");
        let err = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let mut child = Command::new(bin)
            .arg(upstream_ca)
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        // Read the first line on a thread of its own, so that a peer that hangs costs a
        // timeout, not the run.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
        let addr = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|a| a.parse::<SocketAddr>().ok());
        let Some(addr) = addr else {
            let _ = child.kill();
            let _ = child.wait();
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!("did not start: {}", text.trim()));
        };
        Ok(Hudsucker {
            pid: child.id(),
            child,
            addr,
            ca: dir.path().join("ca-cert.pem"),
            version: version(),
            _dir: dir,
        })
    }
}

/// `hudsucker x.y.z` from the peer's lock file.
fn version() -> String {
    let lock = std::fs::read_to_string(project().join("Cargo.lock")).unwrap_or_default();
    let mut lines = lock.lines();
    while let Some(l) = lines.next() {
        if l == "name = \"hudsucker\""
            && let Some(v) = lines.next().and_then(|v| v.strip_prefix("version = "))
        {
            return format!("hudsucker {}", v.trim_matches('"'));
        }
    }
    "hudsucker".into()
}

impl Drop for Hudsucker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
