//! Established load generators where they fit (`BENCH_ONLY=loadgen`): the same proxies as the
//! other sections, measured by tools nobody here wrote, as a cross-check of the benchmark's own
//! client.
//!
//! - wrk (`wrk.rs`): plain HTTP/1.1 keep-alive, direct and through each proxy's plain-HTTP
//!   forwarding — greyproxyd (which records every plain-HTTP exchange, with or without
//!   `--no-mitm`), mitmproxy and tinyproxy.
//! - oha (`oha.rs`): HTTPS through `CONNECT`, HTTP/1.1 keep-alive and HTTP/2 — direct,
//!   greyproxyd MITM, greyproxyd `--no-mitm` (end-to-end TLS) and mitmproxy.
//!
//! Each row runs the tool as a child process and reads the CPU of the tool, of the proxy and
//! of this process (the origins) over the run, and the proxy's peak RSS.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use greyproxy_testkit::Daemon;
use greyproxy_testkit::origin::http_origin;
use greyproxy_testkit::tls::TestCa;

use crate::mitmproxy::{Mitmdump, locate as locate_mitmdump};
use crate::protocols_load::proto_origin;
use crate::sys::{Cpu, daemon_pid, mib, reset_peak_rss, rss_kib};
use crate::tinyproxy::Tinyproxy;
use crate::{oha, wrk};

/// What the section runs, from the environment.
pub struct LoadCfg {
    /// Seconds per row.
    pub secs: u32,
    /// Connections (HTTP/1.1) or concurrent streams on one connection (HTTP/2).
    pub conns: usize,
    /// wrk's threads.
    pub threads: usize,
    /// Whether wrk, oha, mitmproxy and tinyproxy may be installed (full runs only).
    install: bool,
    daemon: String,
}

impl LoadCfg {
    /// `BENCH_LOAD_SECS` (10; 1 in a smoke run), `BENCH_LOAD_CONNS` (16), `BENCH_WRK_THREADS` (2).
    pub fn from_env(full: bool, daemon: &str) -> LoadCfg {
        let num = |k: &str, d: u64| crate::env_size(k).unwrap_or(d).max(1);
        LoadCfg {
            secs: num("BENCH_LOAD_SECS", if full { 10 } else { 1 }) as u32,
            conns: num("BENCH_LOAD_CONNS", 16) as usize,
            threads: num("BENCH_WRK_THREADS", 2) as usize,
            install: full,
            daemon: daemon.to_string(),
        }
    }
}

/// One row: what the tool reported and what the processes spent.
#[derive(Default)]
pub struct Row {
    /// Successful requests per second.
    pub req_s: f64,
    /// Successful requests.
    pub requests: u64,
    /// Latency percentiles, µs.
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    /// Failed requests (error statuses, socket errors).
    pub failed: u64,
    /// The errors the tool reported, if any.
    pub note: String,
    /// CPU seconds over the run: the tool, the proxy, this process (the origins).
    tool_cpu: f64,
    proxy_cpu: Option<f64>,
    origin_cpu: f64,
    peak_kib: Option<u64>,
}

/// Runs `bin args` to completion while measuring; `parse` reads its stdout.
async fn measured(
    bin: &Path,
    args: &[String],
    proxy_pid: Option<u32>,
    parse: fn(&str) -> Result<Row, String>,
) -> Result<Row, String> {
    let pid = proxy_pid.unwrap_or(0);
    if let Some(p) = proxy_pid {
        reset_peak_rss(p);
    }
    let before = Cpu::now(pid);
    let child = tokio::process::Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    let tool = child.id().unwrap_or(0);
    // A reaped child has no /proc entry, so the tool's CPU (in ticks) is sampled while it
    // runs; the last sample misses at most its final 50 ms.
    let ticks = Arc::new(AtomicU64::new(0));
    let sampler = {
        let ticks = ticks.clone();
        tokio::spawn(async move {
            loop {
                ticks.fetch_max(
                    (crate::sys::proc_cpu_secs(tool) * 100.0) as u64,
                    Ordering::Relaxed,
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let out = child.wait_with_output().await;
    let after = Cpu::now(pid);
    sampler.abort();
    let out = out.map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!(
            "{} {}: {}",
            bin.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let mut r = parse(&text)?;
    let (me, proxy_cpu, _, _) = after.since(before);
    r.origin_cpu = me;
    r.tool_cpu = ticks.load(Ordering::Relaxed) as f64 / 100.0;
    r.proxy_cpu = proxy_pid.map(|_| proxy_cpu);
    r.peak_kib = proxy_pid.map(|p| rss_kib(p).1);
    Ok(r)
}

/// One request through `proxy` in absolute form: the origin's answer must come back.
fn check_forwarding(proxy: SocketAddr, origin: SocketAddr) -> Result<(), String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(proxy).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    write!(
        s,
        "GET http://{origin}/json HTTP/1.1\r\nHost: {origin}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let text = String::from_utf8_lossy(&resp);
    if text.starts_with("HTTP/1.1 200") && text.contains(&format!("hello from {origin} GET /json"))
    {
        Ok(())
    } else {
        Err(format!(
            "unexpected answer: {}",
            text.lines().next().unwrap_or("(nothing)")
        ))
    }
}

/// A path: its name, and the proxy (address, pid) or why it is missing (`Ok(None)`: direct).
type Route = (&'static str, Result<Option<(SocketAddr, u32)>, String>);

fn pid_of(d: &Daemon) -> u32 {
    daemon_pid(d.state_dir())
}

/// Whether a failure on this path is a bug here (a panic) rather than a peer's limit.
fn ours(name: &str) -> bool {
    name == "direct" || name.starts_with("greyproxyd")
}

/// Runs the section and prints its tables.
pub async fn run(cfg: &LoadCfg) {
    eprintln!("[loadgen] wrk and oha…");
    let ca = TestCa::new("greyproxy bench loadgen CA");
    let plain = http_origin("127.0.0.1").await;
    let tls_origin = proto_origin(&ca).await;
    let ca_arg = ca.pem_arg();
    let (mitm_d, tun_d, daemon_ca) = crate::mitm::daemon_pair(&cfg.daemon, &ca_arg).await;
    let mitmdump = match locate_mitmdump(cfg.install) {
        Ok(b) => Mitmdump::start(&b, ca.pem_path()).await,
        Err(e) => Err(e),
    };
    let tiny = Tinyproxy::start(cfg.install);
    let mitm = (mitm_d.http.unwrap(), pid_of(&mitm_d));
    let tun = (tun_d.http.unwrap(), pid_of(&tun_d));
    let peer = |r: Result<(SocketAddr, u32), &String>| r.map(Some).map_err(|e| e.clone());

    // ----- wrk, plain HTTP -----
    let wrk_bin = wrk::locate(cfg.install);
    let mut wrk_paths: Vec<Route> = vec![
        ("direct", Ok(None)),
        ("greyproxyd (records plain HTTP)", Ok(Some(mitm))),
        ("greyproxyd `--no-mitm` (records plain HTTP)", Ok(Some(tun))),
        (
            "mitmproxy",
            peer(mitmdump.as_ref().map(|m| (m.addr, m.pid))),
        ),
        ("tinyproxy", peer(tiny.as_ref().map(|t| (t.addr, t.pid)))),
    ];
    for (name, p) in &mut wrk_paths {
        if let Ok(Some((addr, _))) = p
            && let Err(e) = check_forwarding(*addr, plain)
        {
            assert!(!ours(name), "{name}: {e}");
            *p = Err(e);
        }
    }
    let mut wrk_rows = Vec::new();
    if let Ok(bin) = &wrk_bin {
        let dir = tempfile::tempdir().unwrap();
        for (name, p) in &wrk_paths {
            let res = match p {
                Ok(proxy) => {
                    eprintln!("[loadgen] wrk: {name} ({} s)…", cfg.secs);
                    match wrk::args(cfg, plain, proxy.map(|p| p.0), dir.path()) {
                        Ok(a) => measured(bin, &a, proxy.map(|p| p.1), wrk::parse).await,
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e.clone()),
            };
            wrk_rows.push((*name, res));
        }
    }

    // ----- oha, HTTPS through CONNECT -----
    let oha_bin = oha::locate(cfg.install);
    let mp_ca = mitmdump.as_ref().map(|m| m.ca.clone());
    let oha_paths: Vec<(Route, PathBuf)> = vec![
        (("direct", Ok(None)), ca.pem_path().to_path_buf()),
        (("greyproxyd MITM", Ok(Some(mitm))), daemon_ca.clone()),
        (
            ("greyproxyd `--no-mitm` (tunnel)", Ok(Some(tun))),
            ca.pem_path().to_path_buf(),
        ),
        (
            (
                "mitmproxy",
                peer(mitmdump.as_ref().map(|m| (m.addr, m.pid))),
            ),
            mp_ca.clone().unwrap_or_default(),
        ),
    ];
    let mut oha_rows = [Vec::new(), Vec::new()];
    if let Ok(bin) = &oha_bin {
        for (i, h2) in [false, true].into_iter().enumerate() {
            for ((name, p), cacert) in &oha_paths {
                let res = match p {
                    Ok(proxy) => {
                        eprintln!(
                            "[loadgen] oha {}: {name} ({} s)…",
                            if h2 { "HTTP/2" } else { "HTTP/1.1" },
                            cfg.secs
                        );
                        let a = oha::args(cfg, tls_origin, proxy.map(|p| p.0), cacert, h2);
                        measured(bin, &a, proxy.map(|p| p.1), oha::parse).await
                    }
                    Err(e) => Err(e.clone()),
                };
                oha_rows[i].push((*name, res));
            }
        }
    }

    // ----- report -----
    for (title, tool, rows) in [
        (
            format!(
                "## wrk: plain HTTP/1.1 keep-alive through each proxy's forwarding (-t{} -c{} -d{}s, GET of a 36-byte text body)",
                cfg.threads, cfg.conns, cfg.secs
            ),
            wrk_bin.as_ref().map(|b| wrk::version(b)),
            &wrk_rows,
        ),
        (
            format!(
                "## oha: HTTPS, HTTP/1.1 keep-alive through CONNECT (-c {} -z {}s, GET of a 200-byte JSON)",
                cfg.conns, cfg.secs
            ),
            oha_bin.as_ref().map(|b| oha::version(b)),
            &oha_rows[0],
        ),
        (
            format!(
                "## oha: HTTPS, HTTP/2 through CONNECT (--http2 -c 1 -p {} -z {}s, GET of a 200-byte JSON)",
                cfg.conns, cfg.secs
            ),
            oha_bin.as_ref().map(|b| oha::version(b)),
            &oha_rows[1],
        ),
    ] {
        report(&title, tool, rows);
    }
    drop(mitmdump);
    drop(tiny);
    let _ = mitm_d.stop().await;
    let _ = tun_d.stop().await;
}

fn report(title: &str, tool: Result<String, &String>, rows: &[(&str, Result<Row, String>)]) {
    println!("{title}");
    println!();
    let version = match tool {
        Ok(v) => v,
        Err(e) => {
            println!("Not measured: the tool is not available ({e}).");
            println!();
            return;
        }
    };
    println!("Tool: {version}.");
    println!();
    println!(
        "| path | req/s | p50 µs | p90 µs | p99 µs | ÷ direct | ÷ mitmproxy | proxy CPU s | proxy CPU µs/req | proxy peak RSS | tool CPU s | origin CPU s | failed |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let rate_of = |n: &str| {
        rows.iter()
            .find(|(name, _)| *name == n)
            .and_then(|(_, r)| r.as_ref().ok())
            .map(|r| r.req_s)
    };
    let (direct, mp) = (rate_of("direct"), rate_of("mitmproxy"));
    for (name, res) in rows {
        let r = match res {
            Ok(r) => r,
            Err(e) => {
                assert!(!ours(name), "{name}: {e}");
                println!("| {name}: not measured ({e}) | | | | | | | | | | | | |");
                continue;
            }
        };
        assert!(
            r.failed == 0 || !ours(name),
            "{name}: {} failed requests ({})",
            r.failed,
            r.note
        );
        let ratio = |b: Option<f64>| b.map_or("—".into(), |b| format!("{:.2}×", r.req_s / b));
        let dash = || "—".to_string();
        println!(
            "| {name} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {:.2} | {:.2} | {}{} |",
            r.req_s,
            r.p50,
            r.p90,
            r.p99,
            ratio(direct),
            ratio(mp),
            r.proxy_cpu.map_or_else(dash, |c| format!("{c:.2}")),
            r.proxy_cpu.map_or_else(dash, |c| format!(
                "{:.0}",
                c * 1e6 / r.requests.max(1) as f64
            )),
            r.peak_kib.map_or_else(dash, mib),
            r.tool_cpu,
            r.origin_cpu,
            r.failed,
            if r.note.is_empty() {
                String::new()
            } else {
                format!(" ({})", r.note)
            },
        );
    }
    println!();
}
