//! The MITM benchmark (targets: docs/performance.md#targets): HTTP/1.1 keep-alive request rate and
//! latency, and bulk HTTPS download throughput, over four paths in one run with one client and one
//! origin: direct, greyproxyd intercepting (`--upstream-ca` trusts the test origin), greyproxyd
//! with `--no-mitm` (a plain tunnel, end-to-end TLS) and mitmproxy (`mitmdump`, verifying the
//! origin against the same test CA).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ClientConfig;

use greyproxy_testkit::tls::{TestCa, client_config};
use greyproxy_testkit::{Daemon, DaemonBuilder};

use crate::client::Via;
use crate::mitm_load::{JSON, Rate, bulk, connect, get, https_origin, rate};
use crate::mitmproxy::{Mitmdump, locate};
use crate::sys::{Cpu, daemon_pid, human_bytes, mib, reset_peak_rss, rss_kib};

/// What the MITM section runs, from the environment.
pub struct MitmCfg {
    /// Measured window per request-rate row.
    pub window: Duration,
    /// Warm-up per row, on the row's connections.
    pub warm: Duration,
    /// Concurrent connections of the request-rate rows, in order.
    pub conns: Vec<usize>,
    /// Bytes per bulk download.
    pub bytes: u64,
    /// Bulk downloads per path.
    pub reps: usize,
    /// Whether mitmproxy may be installed with pip when missing (not in smoke runs).
    pub install: bool,
    /// The daemon binary.
    pub daemon: String,
    /// Another daemon binary measured beside it as an extra path (`BENCH_MITM_BASELINE`), for
    /// before/after figures of a change in one run.
    pub baseline: Option<String>,
}

impl MitmCfg {
    /// `BENCH_MITM_SECS`, `BENCH_MITM_WARMUP` (seconds), `BENCH_MITM_CONNS` (comma list),
    /// `BENCH_MITM_BYTES`, `BENCH_MITM_REPS`; small values for a smoke run.
    pub fn from_env(full: bool, daemon: &str) -> MitmCfg {
        let conns = crate::env_conns("BENCH_MITM_CONNS");
        MitmCfg {
            window: crate::env_secs("BENCH_MITM_SECS", if full { 10.0 } else { 0.3 }),
            warm: crate::env_secs("BENCH_MITM_WARMUP", if full { 1.0 } else { 0.1 }),
            conns,
            bytes: crate::env_size("BENCH_MITM_BYTES").unwrap_or(if full {
                1 << 30
            } else {
                16 << 20
            }),
            reps: crate::env_size("BENCH_MITM_REPS")
                .map_or(if full { 3 } else { 1 }, |v| v as usize)
                .max(1),
            install: full,
            daemon: daemon.to_string(),
            baseline: std::env::var("BENCH_MITM_BASELINE")
                .ok()
                .filter(|b| !b.is_empty()),
        }
    }
}

/// One way from the client to the origin.
pub(crate) struct Route {
    pub(crate) name: &'static str,
    pub(crate) via: Via,
    /// What the client trusts.
    pub(crate) tls: Arc<ClientConfig>,
    /// The proxy process, if any.
    pub(crate) pid: Option<u32>,
}

const DIRECT: &str = "direct";
const MITM: &str = "greyproxyd MITM";
const TUNNEL: &str = "greyproxyd `--no-mitm` (tunnel)";
const MITMPROXY: &str = "mitmproxy";
const HUDSUCKER: &str = crate::hudsucker::NAME;
const BASELINE: &str = "greyproxyd MITM, `BENCH_MITM_BASELINE` build";

/// Paths whose failure is reported in a row rather than ending the run: the peers.
fn is_peer(name: &str) -> bool {
    name == MITMPROXY || name == HUDSUCKER
}

fn h1_client(roots: &Path) -> Arc<ClientConfig> {
    client_config(roots, &[b"http/1.1"])
}

/// The two daemons every comparison section runs: one intercepting (trusting the origins'
/// test CA `ca_arg`) and one `--no-mitm`; also the intercepting one's CA file, once written.
pub async fn daemon_pair(bin: &str, ca_arg: &str) -> (Daemon, Daemon, PathBuf) {
    let (mitm_d, daemon_ca) = intercepting(bin, ca_arg).await;
    let tun_d = DaemonBuilder::new(bin)
        .args(&["--no-mitm"])
        .env("RUST_LOG", "info")
        .start()
        .await;
    (mitm_d, tun_d, daemon_ca)
}

/// An intercepting daemon trusting the origins' test CA `ca_arg`, and its CA file once written.
async fn intercepting(bin: &str, ca_arg: &str) -> (Daemon, PathBuf) {
    let d = DaemonBuilder::new(bin)
        .args(&["--upstream-ca", ca_arg])
        .env("RUST_LOG", "info")
        .start()
        .await;
    let daemon_ca = d.state_dir().join("ca-cert.pem");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !daemon_ca.is_file() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            daemon_ca.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (d, daemon_ca)
}

/// A bulk row: MB/s and CPU s/GB (bench, proxy) per download, and the proxy's peak RSS.
#[derive(Default)]
pub(crate) struct Bulk {
    pub(crate) mbs: Vec<f64>,
    pub(crate) cpu: Vec<(f64, f64)>,
    pub(crate) peak_kib: Option<u64>,
    pub(crate) error: Option<String>,
}

/// Transactions the daemon's writer dropped (its `row dropped` warnings), from its log.
pub fn dropped_transactions(d: &Daemon) -> u64 {
    d.log()
        .lines()
        .filter(|l| l.contains("row dropped") && l.contains("transaction"))
        .filter_map(|l| l.split("dropped_total=").nth(1))
        .filter_map(|v| v.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
        .max()
        .unwrap_or(0)
}

/// The MITM section's figures that have targets (docs/performance.md#targets), for the closing
/// summary.
#[derive(Default)]
pub struct MitmTargets {
    /// greyproxyd MITM req/s ÷ mitmproxy's, per connection count (absent: not measured).
    pub vs_mitmproxy: Vec<(usize, f64)>,
    /// greyproxyd MITM req/s ÷ hudsucker's, per connection count (absent: not measured).
    pub vs_hudsucker: Vec<(usize, f64)>,
    /// greyproxyd MITM p99 ÷ p50 latency, per connection count.
    pub p99_over_p50: Vec<(usize, f64)>,
    /// Added p50 latency of a small MITM request over direct, µs (1 connection).
    pub added_p50_us: Option<f64>,
    /// Why a peer is missing from the run, per peer.
    pub missing: Vec<(&'static str, String)>,
}

/// Runs the MITM section and prints its tables.
pub async fn run(cfg: &MitmCfg) -> MitmTargets {
    println!(
        "- MITM parameters: BENCH_MITM_SECS={} BENCH_MITM_WARMUP={} BENCH_MITM_CONNS={} BENCH_MITM_BYTES={} BENCH_MITM_REPS={}",
        cfg.window.as_secs_f64(),
        cfg.warm.as_secs_f64(),
        cfg.conns
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(","),
        human_bytes(cfg.bytes),
        cfg.reps
    );
    println!();
    eprintln!("[mitm] origin, two daemons, mitmdump…");
    let ca = TestCa::new("greyproxy bench origin CA");
    let origin = https_origin(&ca).await;
    let ca_arg = ca.pem_arg();
    let (mitm_d, tun_d, daemon_ca) = daemon_pair(&cfg.daemon, &ca_arg).await;
    let mitmdump = match locate(cfg.install) {
        Ok(bin) => Mitmdump::start(&bin, ca.pem_path()).await,
        Err(e) => Err(e),
    };
    let mut routes = vec![
        Route {
            name: DIRECT,
            via: Via::Direct,
            tls: h1_client(ca.pem_path()),
            pid: None,
        },
        Route {
            name: MITM,
            via: Via::Http(mitm_d.http.unwrap()),
            tls: h1_client(&daemon_ca),
            pid: Some(daemon_pid(mitm_d.state_dir())),
        },
        Route {
            name: TUNNEL,
            via: Via::Http(tun_d.http.unwrap()),
            tls: h1_client(ca.pem_path()),
            pid: Some(daemon_pid(tun_d.state_dir())),
        },
    ];
    let baseline = match &cfg.baseline {
        Some(bin) => Some(intercepting(bin, &ca_arg).await),
        None => None,
    };
    if let Some((d, ca_file)) = &baseline {
        routes.insert(
            2,
            Route {
                name: BASELINE,
                via: Via::Http(d.http.unwrap()),
                tls: h1_client(ca_file),
                pid: Some(daemon_pid(d.state_dir())),
            },
        );
    }
    // Each peer: a note for the report, or why it is not there.
    let mut notes: Vec<(&'static str, Result<String, String>)> = Vec::new();
    match &mitmdump {
        Ok(m) => {
            notes.push((MITMPROXY, Ok(format!("{} (pid {})", m.version, m.pid))));
            routes.push(Route {
                name: MITMPROXY,
                via: Via::Http(m.addr),
                tls: h1_client(&m.ca),
                pid: Some(m.pid),
            });
        }
        Err(e) => {
            eprintln!("      mitmproxy: not available: {e}");
            notes.push((MITMPROXY, Err(format!("not available ({e})"))));
        }
    }
    let hudsucker = crate::hudsucker::locate(cfg.install)
        .and_then(|bin| crate::hudsucker::Hudsucker::start(&bin, ca.pem_path()));
    match &hudsucker {
        Ok(h) => {
            notes.push((HUDSUCKER, Ok(format!("{} (pid {}), our minimal proxy on it with no handlers (`benches/proxy/peers/hudsucker_main.rs.txt`), built `--release`", h.version, h.pid))));
            routes.push(Route {
                name: HUDSUCKER,
                via: Via::Http(h.addr),
                tls: h1_client(&h.ca),
                pid: Some(h.pid),
            });
        }
        Err(e) => {
            eprintln!("      hudsucker: not available: {e}");
            notes.push((HUDSUCKER, Err(format!("not available ({e})"))));
        }
    }
    // Every route must deliver the origin's bytes before anything is timed; the roots each
    // client trusts prove who terminated TLS (the daemon's CA only works if it intercepted).
    let mut failed: Vec<(&'static str, String)> = Vec::new();
    let mut ok = Vec::new();
    for r in routes {
        let check = async {
            let mut c = connect(r.via, origin, r.tls.clone()).await?;
            let n = get(&mut c, &origin.to_string(), "/json").await?;
            if n == JSON.len() as u64 {
                Ok(())
            } else {
                Err(format!("{n} bytes"))
            }
        };
        match check.await {
            Ok(()) => ok.push(r),
            Err(e) if is_peer(r.name) => failed.push((r.name, e)),
            Err(e) => panic!("{}: {e}", r.name),
        }
    }
    let routes = ok;
    for r in &routes {
        if let Some(p) = r.pid {
            eprintln!("      {}: pid {p}", r.name);
        }
    }

    let mut rates: Vec<(usize, &'static str, Result<Rate, String>)> = Vec::new();
    for &n in &cfg.conns {
        for r in &routes {
            eprintln!(
                "[mitm] request rate, {n} connection(s), {} ({} s)…",
                r.name,
                cfg.window.as_secs_f64()
            );
            let res = rate(r.pid, r.via, origin, r.tls.clone(), n, cfg.warm, cfg.window).await;
            if let Err(e) = &res {
                assert!(is_peer(r.name), "{}: {e}", r.name);
            }
            rates.push((n, r.name, res));
        }
    }

    eprintln!(
        "[mitm] bulk download, {} × {}…",
        cfg.reps,
        human_bytes(cfg.bytes)
    );
    let mut bulks: Vec<Bulk> = routes.iter().map(|_| Bulk::default()).collect();
    let warm = cfg.bytes.min(64 << 20);
    for (r, b) in routes.iter().zip(&mut bulks) {
        if let Err(e) = bulk(r.via, origin, r.tls.clone(), warm).await {
            b.error = Some(e);
        }
        if let Some(p) = r.pid {
            reset_peak_rss(p);
        }
    }
    for _ in 0..cfg.reps {
        for (r, b) in routes.iter().zip(&mut bulks) {
            if b.error.is_some() {
                continue;
            }
            let before = Cpu::now(r.pid.unwrap_or(0));
            match bulk(r.via, origin, r.tls.clone(), cfg.bytes).await {
                Ok((mbs, _)) => {
                    let (me, proxy, _, _) = Cpu::now(r.pid.unwrap_or(0)).since(before);
                    let gb = cfg.bytes as f64 / 1e9;
                    b.mbs.push(mbs);
                    b.cpu.push((me / gb, proxy / gb));
                }
                Err(e) => {
                    assert!(is_peer(r.name), "{}: {e}", r.name);
                    b.error = Some(e);
                }
            }
        }
    }
    for (r, b) in routes.iter().zip(&mut bulks) {
        b.peak_kib = r.pid.map(|p| rss_kib(p).1);
    }
    let dropped = dropped_transactions(&mitm_d);
    let mitm_idle = rss_kib(daemon_pid(mitm_d.state_dir())).0;
    let db_bytes =
        std::fs::metadata(mitm_d.state_dir().join("greyproxy.redb")).map_or(0, |m| m.len());

    // ----- report -----
    // A peer that started but failed the check is reported as failed.
    for (name, e) in failed {
        if let Some(n) = notes.iter_mut().find(|n| n.0 == name) {
            n.1 = Err(format!("failed ({e})"));
        }
    }
    let missing: Vec<(&'static str, String)> = notes
        .iter()
        .filter_map(|(n, r)| r.as_ref().err().map(|e| (*n, e.clone())))
        .collect();
    let peers = crate::mitm_report::Peers {
        names: [MITMPROXY, HUDSUCKER],
        direct: DIRECT,
        mitm: MITM,
        missing: &missing,
    };
    crate::mitm_report::rates(cfg, &rates, &peers);
    crate::mitm_report::bulk(cfg, &routes, &bulks, &peers);
    for (name, note) in &notes {
        println!(
            "- {name}: {}",
            match note {
                Ok(n) | Err(n) => n,
            }
        );
    }
    println!(
        "- transactions dropped by the MITM daemon's writer (queue full): {dropped}; its RSS after the run: {}; its store file: {:.1} MiB",
        mib(mitm_idle),
        db_bytes as f64 / (1 << 20) as f64
    );
    println!();
    let targets = crate::mitm_report::targets(&rates, &peers);
    drop(mitmdump);
    drop(hudsucker);
    if let Some((d, _)) = baseline {
        println!(
            "- {BASELINE}: `{}`",
            cfg.baseline.as_deref().unwrap_or_default()
        );
        println!();
        let _ = d.stop().await;
    }
    let _ = mitm_d.stop().await;
    let _ = tun_d.stop().await;
    targets
}
