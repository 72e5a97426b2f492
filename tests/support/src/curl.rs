//! Running the real `curl` against the proxies.

use std::time::{Duration, Instant};

/// What curl did.
#[derive(Debug, Clone)]
pub struct CurlResult {
    /// curl's exit code (0 = transfer done; 56 = proxy CONNECT refused, 97 = SOCKS refused…).
    pub exit: i32,
    /// HTTP status of the final response (0 when none).
    pub status: u16,
    /// Response body.
    pub body: String,
    /// Wall time.
    pub elapsed: Duration,
    /// stderr.
    pub stderr: String,
}

/// Runs `curl -s -S <args>` with a 60 s cap and returns the outcome.
pub async fn curl(args: &[&str]) -> CurlResult {
    let start = Instant::now();
    let out = tokio::process::Command::new("curl")
        .args([
            "-s",
            "-S",
            "--max-time",
            "60",
            "-w",
            "\n__STATUS__%{http_code}",
        ])
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .expect("curl runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = match stdout.rsplit_once("\n__STATUS__") {
        Some((b, s)) => (b.to_string(), s.trim().parse().unwrap_or(0)),
        None => (stdout, 0),
    };
    CurlResult {
        exit: out.status.code().unwrap_or(-1),
        status,
        body,
        elapsed: start.elapsed(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
