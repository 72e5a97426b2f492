//! `curl` for tests that need the exact bytes: each URL's body goes to its own file, and curl's
//! per-transfer status, HTTP version and number of new connections are reported.

use std::time::{Duration, Instant};

/// One URL's transfer.
#[derive(Debug, Clone)]
pub struct Transfer {
    /// HTTP status (0 when none).
    pub status: u16,
    /// `1.1`, `2`… as curl's `%{http_version}`.
    pub http_version: String,
    /// New connections curl opened for this transfer (0 = an existing one was reused).
    pub num_connects: u32,
    /// The body, byte for byte (not content-decoded unless `--compressed` was given).
    pub body: Vec<u8>,
}

/// What curl did.
#[derive(Debug, Clone)]
pub struct Fetch {
    /// Exit code (0 = every transfer done; 35/60 = TLS problems).
    pub exit: i32,
    /// One per URL, in order (those curl did not reach are absent).
    pub transfers: Vec<Transfer>,
    /// All response heads (`-D`).
    pub headers: String,
    /// stderr.
    pub stderr: String,
    /// Wall time.
    pub elapsed: Duration,
}

impl Fetch {
    /// The first transfer's status (0 when none).
    pub fn status(&self) -> u16 {
        self.transfers.first().map_or(0, |t| t.status)
    }

    /// The first transfer's body.
    pub fn body(&self) -> &[u8] {
        self.transfers.first().map_or(&[], |t| &t.body)
    }

    /// The first transfer's body as (lossy) text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(self.body()).into_owned()
    }

    /// The first transfer's HTTP version.
    pub fn version(&self) -> &str {
        self.transfers
            .first()
            .map_or("", |t| t.http_version.as_str())
    }
}

/// Runs `curl -s -S <args> <url>…` (60 s cap) with one output file per URL.
pub async fn fetch(args: &[&str], urls: &[&str]) -> Fetch {
    let dir = tempfile::tempdir().unwrap();
    let head = dir.path().join("head");
    let mut cmd = tokio::process::Command::new("curl");
    cmd.args(["-s", "-S", "--max-time", "60", "-D"])
        .arg(&head)
        .args(["-w", "__T__ %{http_code} %{http_version} %{num_connects}\n"])
        .args(args);
    for (i, u) in urls.iter().enumerate() {
        cmd.arg("-o").arg(dir.path().join(format!("b{i}"))).arg(u);
    }
    let start = Instant::now();
    let out = cmd.kill_on_drop(true).output().await.expect("curl runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let transfers = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("__T__ "))
        .enumerate()
        .map(|(i, l)| {
            let mut f = l.split_whitespace();
            Transfer {
                status: f.next().and_then(|s| s.parse().ok()).unwrap_or(0),
                http_version: f.next().unwrap_or("").to_string(),
                num_connects: f.next().and_then(|s| s.parse().ok()).unwrap_or(0),
                body: std::fs::read(dir.path().join(format!("b{i}"))).unwrap_or_default(),
            }
        })
        .collect();
    Fetch {
        exit: out.status.code().unwrap_or(-1),
        transfers,
        headers: std::fs::read_to_string(&head).unwrap_or_default(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: start.elapsed(),
    }
}
