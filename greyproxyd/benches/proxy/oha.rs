//! oha (crates.io `oha`): HTTPS load through an HTTP `CONNECT` proxy (`-x`), trusting one root
//! (`--cacert`), HTTP/1.1 keep-alive (`-c N`) or HTTP/2 (`--http2 -c 1 -p N`), results as JSON.
//! Found on `PATH`, in `~/.cargo/bin` or `target/bench-tools/bin`; a full run builds it there
//! with `cargo install --locked` when missing (a few minutes on two cores, once).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::loadgen::{LoadCfg, Row};

/// Where a full run installs oha.
fn tools_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-tools")
}

/// oha's binary (`BENCH_OHA` overrides), built with `cargo install` when missing and `install`
/// is set.
pub fn locate(install: bool) -> Result<PathBuf, String> {
    if let Ok(p) = std::env::var("BENCH_OHA") {
        return Ok(PathBuf::from(p));
    }
    let find = || {
        let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect())
            .unwrap_or_default();
        if let Some(home) = std::env::var_os("HOME") {
            dirs.push(Path::new(&home).join(".cargo/bin"));
        }
        dirs.push(tools_root().join("bin"));
        dirs.into_iter()
            .map(|d| d.join("oha"))
            .find(|p| p.is_file())
    };
    if let Some(p) = find() {
        return Ok(p);
    }
    if !install {
        return Err("not installed (a full `--bench` run builds it with cargo install)".into());
    }
    eprintln!(
        "      building oha with cargo install into {} (once)…",
        tools_root().display()
    );
    let ok = Command::new(env!("CARGO"))
        .args(["install", "oha", "--locked", "--quiet", "--root"])
        .arg(tools_root())
        .stdin(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    find().ok_or_else(|| {
        format!(
            "cargo install oha {}",
            if ok { "gave no binary" } else { "failed" }
        )
    })
}

/// `oha --version`.
pub fn version(bin: &Path) -> String {
    Command::new(bin)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// oha's arguments for `GET https://origin/json` trusting `cacert`, through `proxy` (CONNECT)
/// when given; HTTP/2 multiplexes `cfg.conns` streams on one connection.
pub fn args(
    cfg: &LoadCfg,
    origin: SocketAddr,
    proxy: Option<SocketAddr>,
    cacert: &Path,
    h2: bool,
) -> Vec<String> {
    let mut a = vec![
        "--no-tui".to_string(),
        "--output-format".into(),
        "json".into(),
        "-z".into(),
        format!("{}s", cfg.secs),
        "--cacert".into(),
        cacert.display().to_string(),
    ];
    if h2 {
        a.extend(["--http2".into(), "-c".into(), "1".into(), "-p".into()]);
        a.push(cfg.conns.to_string());
    } else {
        a.extend(["-c".into(), cfg.conns.to_string()]);
    }
    if let Some(p) = proxy {
        a.extend(["-x".into(), format!("http://{p}")]);
    }
    a.push(format!("https://{origin}/json"));
    a
}

/// Reads oha's JSON report. Requests cut off by the end of the run (`aborted due to deadline`)
/// are not failures; any other error or non-200 status is.
pub fn parse(out: &str) -> Result<Row, String> {
    let v: Value = serde_json::from_str(out.trim())
        .map_err(|e| format!("oha output is not JSON ({e}): {}", out.trim()))?;
    let s = |k: &str| v["summary"][k].as_f64();
    let p = |k: &str| v["latencyPercentiles"][k].as_f64().map(|x| x * 1e6);
    let mut r = Row::default();
    let codes = v["statusCodeDistribution"].as_object();
    for (code, n) in codes.into_iter().flatten() {
        let n = n.as_u64().unwrap_or(0);
        if code == "200" {
            r.requests += n;
        } else {
            r.failed += n;
        }
    }
    let mut errors = Vec::new();
    for (e, n) in v["errorDistribution"].as_object().into_iter().flatten() {
        if !e.contains("aborted due to deadline") {
            r.failed += n.as_u64().unwrap_or(0);
            errors.push(format!("{e} ×{n}"));
        }
    }
    r.req_s = s("requestsPerSec").unwrap_or(0.0);
    // oha counts every status in its rate; only successes count here.
    if let Some(total) = s("total").filter(|t| *t > 0.0) {
        r.req_s = r.requests as f64 / total;
    }
    r.p50 = p("p50").unwrap_or(0.0);
    r.p90 = p("p90").unwrap_or(0.0);
    r.p99 = p("p99").unwrap_or(0.0);
    if r.requests == 0 {
        return Err(format!(
            "no successful request; {}",
            if errors.is_empty() {
                "no errors reported".to_string()
            } else {
                errors.join(", ")
            }
        ));
    }
    if !errors.is_empty() {
        r.note = errors.join(", ");
    }
    Ok(r)
}
