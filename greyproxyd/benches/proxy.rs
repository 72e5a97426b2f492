//! End-to-end benchmarks of the real `greyproxyd` binary (docs/performance.md), printed as one
//! table: `cargo bench -p greyproxyd --bench proxy`.
//!
//! 1. Bulk throughput of a CONNECT tunnel and of a SOCKS5 tunnel over loopback, download
//!    (origin → client) and upload (client → origin), against the same transfer done directly,
//!    tinyproxy (`proxy/tinyproxy.rs`) and HAProxy as a TCP relay with splice
//!    (`proxy/haproxy.rs`; not a CONNECT proxy: one frontend per origin).
//! 2. Allow → release latency: K connections held on distinct destinations, each released by an
//!    `allow` on the control WebSocket; also the time to the `command_success` reply.
//! 3. Connection setup through the proxy to an allowed destination: connect, handshake, one
//!    small echo round trip, close — direct vs HTTP CONNECT vs SOCKS5.
//! 4. Daemon RSS idle, with many open tunnels, after the benchmarks, and its peak.
//! 5. MITM (`proxy/mitm.rs`): HTTP/1.1 keep-alive request rate and latency, and bulk HTTPS
//!    download throughput, direct vs greyproxyd MITM vs greyproxyd `--no-mitm` vs mitmproxy
//!    (installed with pip when missing) vs a minimal hudsucker proxy that records nothing
//!    (`proxy/hudsucker.rs`, built once into `target/bench-peers/hudsucker`), with one client
//!    and one HTTPS origin; `BENCH_MITM_BASELINE` adds another daemon build as a path.
//!
//! 6. Middleware (`proxy/middleware.rs`): the MITM request rate and latency with no middleware
//!    and with the Python passthrough example on stdio and on WebSocket.
//!
//! 7. Protocols (`proxy/protocols.rs`): HTTP/2 request rate and latency (N streams on one
//!    connection, and 1), SSE streaming (events/s, MB/s, time to the first event: streamed or
//!    buffered) and WebSocket echo (messages/s, round-trip latency), over the MITM section's
//!    four paths, with the negotiated protocol reported per path.
//!
//! 8. Established load generators (`proxy/loadgen.rs`): wrk for plain HTTP/1.1 through each
//!    proxy's forwarding (greyproxyd, mitmproxy, tinyproxy), oha for HTTPS through `CONNECT`
//!    (HTTP/1.1 and HTTP/2; direct, greyproxyd MITM and `--no-mitm`, mitmproxy): a cross-check
//!    of the benchmark's own client by tools nobody here wrote.
//!
//! 9. LLM layer (`proxy/llm.rs`): the MITM request rate on LLM-shaped traffic
//!    (`POST /v1/messages` with Claude Code's request bodies, Anthropic SSE answers) through a
//!    daemon with `[llm] enabled = true` and one with `false`, with the calls recorded and
//!    dropped (docs/bench-log/llm.md).
//!
//! 9b. Credentials (`proxy/credentials.rs`): the MITM request rate with a placeholder
//!     substituted on every request (header and query) vs a daemon with no credentials, and
//!     the in-process cost of scanning a request that carries no placeholder.
//!
//! 10. Soak (`proxy/soak.rs`, only with `BENCH_ONLY=soak`): 30 minutes (`BENCH_SOAK_SECS`)
//!     of mixed traffic; RSS, descriptors, threads and runtime tasks sampled, then idle RSS for
//!     `BENCH_SOAK_IDLE` s; other builds side by side with `BENCH_SOAK_COMPARE` (default with
//!     `--bench`: the glibc build); flat RSS ≤ 64 MiB, idle ≤ 30 MiB within a minute, and
//!     descriptors and tasks back to baseline, are the verdict.
//!
//! 11. Export (`proxy/export.rs`, `BENCH_ONLY=export`): the MITM request rate with the OTLP
//!     exporter of every transaction off and on, spans/s to a local receiver, and the daemon
//!     with its collector down (rate, RSS, `status.export`).
//!
//! Knobs (environment): `BENCH_BYTES` (bytes per transfer, default 2 GiB; `K`/`M`/`G` suffixes
//! are binary), `BENCH_REPS` (transfers per path and direction, default 5), `BENCH_HOLDS`
//! (held requests, default 50), `BENCH_CONNS` (sequential connections per path, default 2000),
//! `BENCH_TUNNELS` (concurrent open tunnels for the memory figure, default 200),
//! `BENCH_DAEMON` (another `greyproxyd` binary, to compare builds; default: a full run builds
//! the release daemon without dev-dependency features into `target/bench-daemon`),
//! `BENCH_ONLY` (`tunnel` for 1–4, `mitm` for 5, `middleware` for 6, `protocols` for 7,
//! `loadgen` for 8, `llm` for 9, `credentials` for 9b, `soak` for 10, `export` for 11, or a comma list; default `all`: every section
//! but the soak),
//! the MITM knobs `BENCH_MITM_SECS`, `BENCH_MITM_WARMUP`,
//! `BENCH_MITM_CONNS`, `BENCH_MITM_BYTES`, `BENCH_MITM_REPS`, `BENCH_MITMDUMP` (see
//! `proxy/mitm.rs`, `proxy/mitmproxy.rs`), and the protocols knobs `BENCH_PROTO_SECS`, `BENCH_PROTO_WARMUP`, `BENCH_PROTO_STREAMS` (HTTP/2
//! streams, default 16), `BENCH_PROTO_INFLIGHT` (WebSocket messages in flight, default 64),
//! `BENCH_PROTO_EVENTS` (events per SSE stream), `BENCH_PROTO_FIRST` (SSE streams timed to the
//! first event) (see `proxy/protocols.rs`), and the load generators' `BENCH_LOAD_SECS`,
//! `BENCH_LOAD_CONNS`, `BENCH_WRK_THREADS`, `BENCH_OHA` (see `proxy/loadgen.rs`), and the LLM
//! section's `BENCH_LLM_SECS`, `BENCH_LLM_WARMUP`, `BENCH_LLM_CONNS` (see `proxy/llm.rs`), and
//! the export section's `BENCH_EXPORT_SECS`, `BENCH_EXPORT_WARMUP`, `BENCH_EXPORT_CONNS`,
//! `BENCH_EXPORT_DEAD_SECS` (see `proxy/export.rs`).
//! the credentials section's `BENCH_CRED_SECS`, `BENCH_CRED_WARMUP`, `BENCH_CRED_CONNS`.
//! Run without `--bench` (as `cargo test --benches` does) it is a quick smoke run with small
//! defaults.
#![allow(clippy::unwrap_used)]

// Shared with `benches/llm.rs`, which uses more of it.
#[allow(dead_code)]
#[path = "llm/claude.rs"]
mod claude;
#[path = "proxy/client.rs"]
mod client;
#[path = "proxy/credentials.rs"]
mod credentials;
#[path = "proxy/daemon_bin.rs"]
mod daemon_bin;
#[path = "proxy/export.rs"]
mod export;
#[path = "proxy/haproxy.rs"]
mod haproxy;
#[path = "proxy/hudsucker.rs"]
mod hudsucker;
#[path = "proxy/llm.rs"]
mod llm;
#[path = "proxy/loadgen.rs"]
mod loadgen;
#[path = "proxy/measure.rs"]
mod measure;
#[path = "proxy/middleware.rs"]
mod middleware;
#[path = "proxy/mitm.rs"]
mod mitm;
#[path = "proxy/mitm_load.rs"]
mod mitm_load;
#[path = "proxy/mitm_report.rs"]
mod mitm_report;
#[path = "proxy/mitmproxy.rs"]
mod mitmproxy;
#[path = "proxy/oha.rs"]
mod oha;
#[path = "proxy/protocols.rs"]
mod protocols;
#[path = "proxy/protocols_load.rs"]
mod protocols_load;
#[path = "proxy/protocols_ws.rs"]
mod protocols_ws;
#[path = "proxy/soak.rs"]
mod soak;
#[path = "proxy/soak_mix.rs"]
mod soak_mix;
#[path = "proxy/soak_target.rs"]
mod soak_target;
#[path = "proxy/summary.rs"]
mod summary;
#[path = "proxy/sys.rs"]
mod sys;
#[path = "proxy/tinyproxy.rs"]
mod tinyproxy;
#[path = "proxy/tunnel_report.rs"]
mod tunnel_report;
#[path = "proxy/wrk.rs"]
mod wrk;

use std::time::{Duration, Instant};

use greyproxy_testkit::DaemonBuilder;
use greyproxy_testkit::origin::echo_origin;

use client::{Via, open_tunnels};
use daemon_bin::production_daemon;
use measure::{BulkOrigins, allow_latency, setup_latency, throughput};
use sys::{Cpu, daemon_pid, human_bytes, machine, rss_kib};

/// Size of the client's read buffer and of the origin's writes in the bulk transfers.
pub const BULK_BUF: usize = 1 << 20;
/// Payload of the echo round trip in the setup benchmark.
pub const ECHO: &[u8; 32] = b"greyproxy-bench-echo-0123456789\n";

/// What to run, from the environment.
pub struct Cfg {
    /// Bytes per bulk transfer.
    pub bytes: u64,
    /// Bulk transfers per path and direction.
    pub reps: usize,
    /// Held requests for the allow → release figure.
    pub holds: usize,
    /// Sequential connections per path for the setup figure.
    pub conns: usize,
    /// Concurrent open tunnels for the memory figure.
    pub tunnels: usize,
    /// The daemon binary.
    pub daemon: String,
    /// Run the tunnel sections (1–4).
    pub tunnel: bool,
    /// Run the MITM section.
    pub mitm: Option<mitm::MitmCfg>,
    /// Run the middleware section (same knobs as the MITM one).
    pub middleware: Option<mitm::MitmCfg>,
    /// Run the protocols section (HTTP/2, SSE, WebSocket).
    pub protocols: Option<protocols::ProtoCfg>,
    /// Run the established load generators (wrk, oha).
    pub loadgen: Option<loadgen::LoadCfg>,
    /// Run the LLM section (MITM with the LLM layer on and off).
    pub llm: Option<llm::LlmCfg>,
    /// Run the export section (OTLP exporter off, on, collector down).
    pub export: Option<export::ExportCfg>,
    /// Run the credentials section (substitution on and off).
    pub credentials: Option<credentials::CredCfg>,
    /// Run the soak (only when asked for: it takes 30 minutes).
    pub soak: Option<soak::SoakCfg>,
}

impl Cfg {
    fn from_env() -> Cfg {
        let full = std::env::args().any(|a| a == "--bench");
        let only = std::env::var("BENCH_ONLY").unwrap_or_default();
        let only = only.trim();
        let known = [
            "tunnel",
            "mitm",
            "middleware",
            "protocols",
            "loadgen",
            "llm",
            "export",
            "credentials",
            "soak",
            "all",
        ];
        let sections: Vec<&str> = if only.is_empty() {
            vec!["all"]
        } else {
            only.split(',').map(str::trim).collect()
        };
        if let Some(bad) = sections.iter().find(|s| !known.contains(s)) {
            panic!(
                "BENCH_ONLY={bad:?}: expected a comma list of {}",
                known.join(", ")
            );
        }
        // `all` is every section but the soak, which takes 30 minutes.
        let on =
            |name: &str| sections.contains(&name) || (name != "soak" && sections.contains(&"all"));
        let (tunnel, with_mitm, with_mw, with_proto, with_load, with_llm, with_soak) = (
            on("tunnel"),
            on("mitm"),
            on("middleware"),
            on("protocols"),
            on("loadgen"),
            on("llm"),
            on("soak"),
        );
        let daemon = std::env::var("BENCH_DAEMON").unwrap_or_else(|_| production_daemon(full));
        let (bytes, reps, holds, conns, tunnels) = if full {
            (2u64 << 30, 5, 50, 2000, 200)
        } else {
            (16u64 << 20, 1, 3, 50, 10)
        };
        Cfg {
            bytes: env_size("BENCH_BYTES").unwrap_or(bytes),
            reps: env_size("BENCH_REPS").map_or(reps, |v| v as usize).max(1),
            holds: env_size("BENCH_HOLDS").map_or(holds, |v| v as usize).max(1),
            conns: env_size("BENCH_CONNS").map_or(conns, |v| v as usize).max(1),
            tunnels: env_size("BENCH_TUNNELS").map_or(tunnels, |v| v as usize),
            mitm: with_mitm.then(|| mitm::MitmCfg::from_env(full, &daemon)),
            middleware: with_mw.then(|| mitm::MitmCfg::from_env(full, &daemon)),
            protocols: with_proto.then(|| protocols::ProtoCfg::from_env(full, &daemon)),
            loadgen: with_load.then(|| loadgen::LoadCfg::from_env(full, &daemon)),
            llm: with_llm.then(|| llm::LlmCfg::from_env(full, &daemon)),
            export: on("export").then(|| export::ExportCfg::from_env(full, &daemon)),
            credentials: on("credentials").then(|| credentials::CredCfg::from_env(full, &daemon)),
            soak: with_soak.then(|| soak::SoakCfg::from_env(full, &daemon)),
            daemon,
            tunnel,
        }
    }
}

/// An integer from the environment, with an optional binary `K`, `M` or `G` suffix.
/// `key` as seconds (a float), or `default` when unset; panics on a value that is not a number.
fn env_secs(key: &str, default: f64) -> Duration {
    let secs = std::env::var(key).ok().map_or(default, |v| {
        v.trim()
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("{key}={v:?} is not a number of seconds"))
    });
    Duration::from_secs_f64(secs)
}

/// `key` as a comma list of connection counts (each at least 1), or 16 then 1 when unset.
fn env_conns(key: &str) -> Vec<usize> {
    std::env::var(key).ok().map_or_else(
        || vec![16, 1],
        |v| {
            v.split(',')
                .map(|c| {
                    c.trim()
                        .parse::<usize>()
                        .unwrap_or_else(|_| panic!("{key}={v:?} is not a list of counts"))
                        .max(1)
                })
                .collect()
        },
    )
}

fn env_size(key: &str) -> Option<u64> {
    let v = std::env::var(key).ok()?;
    let v = v.trim();
    let (num, mul) = match v.char_indices().last()? {
        (i, 'k' | 'K') => (&v[..i], 1u64 << 10),
        (i, 'm' | 'M') => (&v[..i], 1 << 20),
        (i, 'g' | 'G') => (&v[..i], 1 << 30),
        _ => (v, 1),
    };
    match num.trim().parse::<u64>() {
        Ok(n) => Some(n * mul),
        Err(_) => panic!("{key}={v:?} is not a size"),
    }
}

// ---------------------------------------------------------------------------------------------

#[tokio::main]
async fn main() {
    let mut cfg = Cfg::from_env();
    println!("# greyproxyd benchmark");
    println!();
    for (k, v) in machine() {
        println!("- {k}: {v}");
    }
    println!("- daemon: {}", cfg.daemon);
    if cfg.tunnel {
        println!(
            "- parameters: BENCH_BYTES={} BENCH_REPS={} BENCH_HOLDS={} BENCH_CONNS={} BENCH_TUNNELS={}",
            human_bytes(cfg.bytes),
            cfg.reps,
            cfg.holds,
            cfg.conns,
            cfg.tunnels
        );
    }
    let mitm_cfg = cfg.mitm.take();
    let mw_cfg = cfg.middleware.take();
    let proto_cfg = cfg.protocols.take();
    let load_cfg = cfg.loadgen.take();
    let llm_cfg = cfg.llm.take();
    let cred_cfg = cfg.credentials.take();
    let soak_cfg = cfg.soak.take();
    let export_cfg = cfg.export.take();
    let mut tunnel_targets = None;
    if cfg.tunnel {
        println!();
        tunnel_targets = Some(tunnel_sections(cfg).await);
    }
    let mut mitm_targets = None;
    if let Some(m) = mitm_cfg {
        mitm_targets = Some(mitm::run(&m).await);
    }
    if let Some(m) = mw_cfg {
        middleware::run(&m).await;
    }
    if let Some(p) = proto_cfg {
        protocols::run(&p).await;
    }
    if let Some(l) = load_cfg {
        loadgen::run(&l).await;
    }
    let mut llm_targets = None;
    if let Some(l) = llm_cfg {
        llm_targets = Some(llm::run(&l).await);
    }
    let mut cred_targets = None;
    if let Some(c) = cred_cfg {
        cred_targets = Some(credentials::run(&c).await);
    }
    if let Some(e) = export_cfg {
        export::run(&e).await;
    }
    summary::print(
        tunnel_targets.as_ref(),
        mitm_targets.as_ref(),
        llm_targets.as_ref(),
        cred_targets.as_ref(),
    );
    if let Some(s) = soak_cfg {
        soak::run(&s).await;
    }
}

/// Sections 1–4: tunnels, allow → release, setup, memory.
async fn tunnel_sections(cfg: Cfg) -> summary::TunnelTargets {
    // The daemon as shipped (default log level), with long holds so that K holds outlive the
    // run, and tunnels relayed raw: the tunnel throughput target is without MITM.
    let d = DaemonBuilder::new(&cfg.daemon)
        .args(&["--hold-timeout", "600", "--no-mitm"])
        .env("RUST_LOG", "info")
        .start()
        .await;
    let pid = daemon_pid(d.state_dir());
    let (http, socks) = (d.http.unwrap(), d.socks.unwrap());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (idle_rss, _) = rss_kib(pid);

    eprintln!(
        "[1/4] bulk throughput ({} per transfer)…",
        human_bytes(cfg.bytes)
    );
    let full = std::env::args().any(|a| a == "--bench");
    let origins = BulkOrigins::start(&cfg);
    let mut vias = vec![
        (Via::Direct, pid),
        (Via::Http(http), pid),
        (Via::Socks(socks), pid),
    ];
    // The peers: absent ones get a line in the report saying why, never a panic.
    let mut peers = Vec::new();
    let tiny = match tinyproxy::Tinyproxy::start(full) {
        Ok(t) => {
            eprintln!("      tinyproxy {} (pid {})", t.version, t.pid);
            peers.push(format!("tinyproxy: {} (its CPU column is its own process; downloads only: it closes both directions on the client's half-close, which the upload's acknowledgement needs)", t.version));
            vias.push((Via::Peer(t.addr, "tinyproxy CONNECT"), t.pid));
            Some(t)
        }
        Err(e) => {
            eprintln!("      tinyproxy: not available: {e}");
            peers.push(format!("tinyproxy: not available ({e})"));
            None
        }
    };
    let relay = match haproxy::Haproxy::start(full, &origins.all()) {
        Ok(h) => {
            eprintln!("      {} (pid {})", h.version, h.pid);
            peers.push(format!("HAProxy: {} — `mode tcp`, `option splice-auto`, one frontend per origin: a TCP relay, not a CONNECT proxy (what a greyproxyd tunnel does after CONNECT); its CPU column is its own process", h.version));
            vias.push((Via::Relay(h.relay, haproxy::NAME), h.pid));
            Some(h)
        }
        Err(e) => {
            eprintln!("      HAProxy: not available: {e}");
            peers.push(format!("HAProxy: not available ({e})"));
            None
        }
    };
    let cpu_start = Cpu::now(pid);
    let started = Instant::now();
    let (tp, cfg) = tokio::task::spawn_blocking(move || (throughput(&cfg, origins, vias), cfg))
        .await
        .unwrap();
    drop((tiny, relay));

    eprintln!("[2/4] allow → release ({} holds)…", cfg.holds);
    let mut holds = Vec::new();
    for _ in 0..cfg.holds {
        holds.push(echo_origin("127.0.0.2").await);
    }
    let allow = allow_latency(&d, &holds, http).await;

    eprintln!("[3/4] connection setup ({} per path)…", cfg.conns);
    // holds[0] was allowed in step 2: a destination allowed by a user rule.
    let mut setup_vias = vec![Via::Direct, Via::Http(http), Via::Socks(socks)];
    let relay = haproxy::Haproxy::start(full, &[holds[0]]).ok();
    if let Some(h) = &relay {
        setup_vias.push(Via::Relay(h.relay, haproxy::NAME));
    }
    let setup = setup_latency(&cfg, holds[0], &setup_vias).await;
    drop(relay);

    let (_, _, others, steal) = Cpu::now(pid).since(cpu_start);
    let elapsed = started.elapsed().as_secs_f64();

    eprintln!("[4/4] memory with {} open tunnels…", cfg.tunnels);
    let tunnels = open_tunnels(cfg.tunnels, 1 << 20, Via::Http(http), holds[0]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (open_rss, _) = rss_kib(pid);
    drop(tunnels);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (after_rss, peak_rss) = rss_kib(pid);

    let _ = d.stop().await;
    tunnel_report::print(&tunnel_report::TunnelRun {
        cfg: &cfg,
        tp,
        peers,
        allow,
        setup,
        load: (others, steal, elapsed),
        rss: (idle_rss, open_rss, after_rss, peak_rss),
    })
}
