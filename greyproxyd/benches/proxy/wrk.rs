//! wrk (Debian package `wrk`, installed with apt on full runs): HTTP/1.1 keep-alive `GET`s over
//! plain HTTP. wrk speaks neither `CONNECT` nor SOCKS, so through a proxy the request goes in
//! absolute form (`GET http://origin/json`), set by a Lua script: the proxy's plain-HTTP
//! forwarding path.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::loadgen::{LoadCfg, Row};

/// wrk's binary, installed with apt when missing and `install` is set.
pub fn locate(install: bool) -> Result<PathBuf, String> {
    crate::sys::apt_binary(&["/usr/bin/wrk", "/usr/local/bin/wrk"], "wrk", install)
}

/// `wrk -v`, first line.
pub fn version(bin: &Path) -> String {
    Command::new(bin)
        .arg("-v")
        .output()
        .map(|o| {
            let all = [o.stdout, o.stderr].concat();
            let text = String::from_utf8_lossy(&all).into_owned();
            text.lines().next().unwrap_or_default().trim().to_string()
        })
        .unwrap_or_default()
}

/// wrk's arguments for `GET http://origin/json`, through `proxy`'s plain-HTTP forwarding when
/// given; the Lua script goes into `dir`.
pub fn args(
    cfg: &LoadCfg,
    origin: SocketAddr,
    proxy: Option<SocketAddr>,
    dir: &Path,
) -> Result<Vec<String>, String> {
    let mut args = vec![
        format!("-t{}", cfg.threads),
        format!("-c{}", cfg.conns),
        format!("-d{}s", cfg.secs),
        "--latency".to_string(),
    ];
    let url = match proxy {
        None => format!("http://{origin}/json"),
        Some(addr) => {
            // wrk builds its one request from these globals: an absolute-form target and the
            // origin's Host, sent to the proxy's address.
            let script = dir.join("proxy.lua");
            std::fs::write(
                &script,
                format!(
                    "wrk.path = \"http://{origin}/json\"\nwrk.headers[\"Host\"] = \"{origin}\"\n"
                ),
            )
            .map_err(|e| e.to_string())?;
            args.push("-s".into());
            args.push(script.display().to_string());
            format!("http://{addr}/")
        }
    };
    args.push(url);
    Ok(args)
}

/// `120.5us`, `1.20ms`, `2.00s`, `1.00m` → µs.
fn micros(v: &str) -> Option<f64> {
    let (num, mul) = if let Some(n) = v.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1e6)
    } else if let Some(n) = v.strip_suffix('m') {
        (n, 60e6)
    } else {
        return None;
    };
    num.parse::<f64>().ok().map(|x| x * mul)
}

/// Reads wrk's report (printed with `--latency`).
pub fn parse(out: &str) -> Result<Row, String> {
    let mut r = Row::default();
    for line in out.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let bad_line = || format!("wrk: cannot read {line:?}");
        match words.as_slice() {
            ["Requests/sec:", v] => r.req_s = v.parse().map_err(|_| bad_line())?,
            [n, "requests", "in", ..] => r.requests = n.parse().map_err(|_| bad_line())?,
            ["50%", v] => r.p50 = micros(v).ok_or_else(bad_line)?,
            ["90%", v] => r.p90 = micros(v).ok_or_else(bad_line)?,
            ["99%", v] => r.p99 = micros(v).ok_or_else(bad_line)?,
            ["Non-2xx", "or", "3xx", "responses:", n] => r.failed += n.parse::<u64>().unwrap_or(1),
            ["Socket", "errors:", rest @ ..] => {
                r.failed += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>()
            }
            _ => {}
        }
    }
    if r.requests == 0 || r.req_s == 0.0 {
        return Err(format!("no figures in wrk's output: {}", out.trim()));
    }
    Ok(r)
}
