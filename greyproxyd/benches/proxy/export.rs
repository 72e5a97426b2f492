//! The export section (`BENCH_ONLY=export`; docs/performance.md#export): what the OTLP
//! exporter costs and delivers. One HTTPS origin (`GET /json`), three intercepting daemons: one
//! without an exporter, one exporting every transaction (`what = "transactions"`) to a local
//! counting OTLP receiver, one exporting to a closed port (a dead collector).
//!
//! 1. MITM request rate and latency, exporter off vs on, each driven for half a window in the
//!    order off on on off (so that a trend over the run favours neither).
//! 2. Export throughput: the receiver answers 503 while the exporting daemon is driven for a
//!    window (a backlog builds up in its store), then serves again; the spans of the backlog
//!    divided by the time from the first to the last accepted request while it drains.
//! 3. Dead collector: the rate through the daemon whose collector is down, its RSS after
//!    `BENCH_EXPORT_DEAD_SECS` of load (default 60 s; 600 for the 10 minutes) and what
//!    its `status.export` says.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use greyproxy_testkit::control::Control;
use greyproxy_testkit::otlp::OtlpReceiver;
use greyproxy_testkit::tls::TestCa;
use greyproxy_testkit::{Daemon, DaemonBuilder};
use rustls::ClientConfig;
use serde_json::json;

use crate::client::Via;
use crate::mitm_load::{Rate, https_origin, rate};
use crate::sys::{daemon_pid, mib, pct, rss_kib, sorted};

/// What the section runs, from the environment.
pub struct ExportCfg {
    /// Measured window per row (two halves each).
    pub window: Duration,
    /// Warm-up per half.
    pub warm: Duration,
    /// Client connections.
    pub conns: usize,
    /// Load on the dead-collector daemon.
    pub dead: Duration,
    /// The daemon binary.
    pub daemon: String,
}

impl ExportCfg {
    /// `BENCH_EXPORT_SECS`, `BENCH_EXPORT_WARMUP`, `BENCH_EXPORT_DEAD_SECS` (seconds),
    /// `BENCH_EXPORT_CONNS`.
    pub fn from_env(full: bool, daemon: &str) -> ExportCfg {
        ExportCfg {
            window: crate::env_secs("BENCH_EXPORT_SECS", if full { 10.0 } else { 0.4 }),
            warm: crate::env_secs("BENCH_EXPORT_WARMUP", if full { 1.0 } else { 0.1 }),
            conns: crate::env_size("BENCH_EXPORT_CONNS").unwrap_or(16).max(1) as usize,
            dead: crate::env_secs("BENCH_EXPORT_DEAD_SECS", if full { 60.0 } else { 0.5 }),
            daemon: daemon.to_string(),
        }
    }
}

/// An intercepting daemon with `config` (TOML).
async fn daemon(bin: &str, ca_arg: &str, config: &str) -> (Daemon, tempfile::NamedTempFile) {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), config).unwrap();
    let d = DaemonBuilder::new(bin)
        .args(&[
            "--config",
            &f.path().display().to_string(),
            "--upstream-ca",
            ca_arg,
        ])
        .env("RUST_LOG", "info")
        .start()
        .await;
    (d, f)
}

/// The client trusting `d`'s interception CA.
fn client_tls(d: &Daemon) -> Arc<ClientConfig> {
    let ca = d.state_dir().join("ca-cert.pem");
    let t = Instant::now();
    while !ca.is_file() && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    greyproxy_testkit::tls::client_config(&ca, &[b"http/1.1"])
}

fn merge(sum: &mut Option<Rate>, r: Rate) {
    match sum {
        None => *sum = Some(r),
        Some(s) => {
            s.requests += r.requests;
            s.micros.extend(r.micros);
            s.window += r.window;
            s.cpu = (
                s.cpu.0 + r.cpu.0,
                s.cpu.1 + r.cpu.1,
                s.cpu.2 + r.cpu.2,
                s.cpu.3 + r.cpu.3,
            );
            s.peak_kib = s.peak_kib.max(r.peak_kib);
            s.total += r.total;
        }
    }
}

async fn export_status(ws: &mut Control) -> serde_json::Value {
    ws.query(json!({"command":"status"})).await["export"].clone()
}

/// Waits (at most 5 minutes) until the exporter has nothing left to send.
async fn caught_up(ws: &mut Control) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let st = export_status(ws).await;
        if st["lag"] == 0 || Instant::now() > deadline {
            return st;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn row(name: &str, r: &Rate) -> String {
    let s = sorted(&r.micros);
    format!(
        "| {name} | {:.0} | {:.0} | {:.0} | {:.2} | {} |",
        r.requests as f64 / r.window.as_secs_f64(),
        pct(&s, 50.0),
        pct(&s, 99.0),
        r.cpu.1 / r.requests.max(1) as f64 * 1e6,
        r.peak_kib.map_or("—".into(), mib),
    )
}

async fn half(d: &Daemon, origin: SocketAddr, tls: &Arc<ClientConfig>, cfg: &ExportCfg) -> Rate {
    let pid = daemon_pid(d.state_dir());
    rate(
        Some(pid),
        Via::Http(d.http.unwrap()),
        origin,
        tls.clone(),
        cfg.conns,
        cfg.warm,
        cfg.window / 2,
    )
    .await
    .unwrap_or_else(|e| panic!("export bench: {e}\n{}", d.log()))
}

/// Runs the section and prints its table.
pub async fn run(cfg: &ExportCfg) {
    eprintln!("[export] origin, receiver, three daemons (no exporter, exporter, dead collector)…");
    let ca = TestCa::new("greyproxy bench export origin CA");
    let origin = https_origin(&ca).await;
    let ca_arg = ca.pem_arg();
    let rx = OtlpReceiver::counting("127.0.0.1").await;
    let on_cfg = format!(
        "[export.otlp]\nendpoint = \"{}\"\nwhat = \"transactions\"\ninterval = \"1s\"\n",
        rx.endpoint()
    );
    let dead_port = greyproxy_testkit::closed_port();
    let dead_cfg = format!(
        "[export.otlp]\nendpoint = \"http://127.0.0.1:{dead_port}/v1/traces\"\nwhat = \"transactions\"\ninterval = \"1s\"\ntimeout = \"2s\"\n"
    );
    let (off, _f1) = daemon(&cfg.daemon, &ca_arg, "").await;
    let (on, _f2) = daemon(&cfg.daemon, &ca_arg, &on_cfg).await;
    let (dead, _f3) = daemon(&cfg.daemon, &ca_arg, &dead_cfg).await;
    let (off_tls, on_tls, dead_tls) = (client_tls(&off), client_tls(&on), client_tls(&dead));

    let (mut off_rate, mut on_rate) = (None, None);
    merge(&mut off_rate, half(&off, origin, &off_tls, cfg).await);
    merge(&mut on_rate, half(&on, origin, &on_tls, cfg).await);
    merge(&mut on_rate, half(&on, origin, &on_tls, cfg).await);
    merge(&mut off_rate, half(&off, origin, &off_tls, cfg).await);
    // A control client receives every event: connected during the load, it would have a
    // transaction.new per request to read before the reply to its first command.
    let mut on_ws = on.client().await;
    // Throughput: a backlog built while the receiver is down, then drained.
    caught_up(&mut on_ws).await;
    on_ws.close().await;
    rx.set_down(true);
    let pid = daemon_pid(on.state_dir());
    rate(
        Some(pid),
        Via::Http(on.http.unwrap()),
        origin,
        on_tls.clone(),
        cfg.conns,
        cfg.warm,
        cfg.window,
    )
    .await
    .unwrap_or_else(|e| panic!("export bench: {e}\n{}", on.log()));
    let mut on_ws = on.client().await;
    let backlog = export_status(&mut on_ws).await["lag"].as_u64().unwrap_or(0);
    let before = rx.count();
    rx.mark();
    rx.set_down(false);
    let st = caught_up(&mut on_ws).await;
    let drained = rx.count() - before;
    let drain = rx.accepted_span();

    eprintln!("[export] dead collector for {:?}…", cfg.dead);
    let dead_pid = daemon_pid(dead.state_dir());
    let dead_rate = rate(
        Some(dead_pid),
        Via::Http(dead.http.unwrap()),
        origin,
        dead_tls,
        cfg.conns,
        cfg.warm,
        cfg.dead,
    )
    .await
    .unwrap_or_else(|e| panic!("export bench: {e}\n{}", dead.log()));
    let (dead_rss, dead_peak) = rss_kib(dead_pid);
    let mut dead_ws = dead.client().await;
    let dead_st = export_status(&mut dead_ws).await;

    let (off_rate, on_rate) = (off_rate.unwrap(), on_rate.unwrap());
    println!();
    println!("## Export (OTLP, every transaction)");
    println!();
    println!(
        "{} client connections, `GET /json` over MITM, {:?} per row in halves (off on on off).",
        cfg.conns, cfg.window
    );
    println!();
    println!("| daemon | req/s | p50 µs | p99 µs | daemon CPU µs/req | peak RSS |");
    println!("|---|---|---|---|---|---|");
    println!("{}", row("no exporter", &off_rate));
    println!("{}", row("exporting every transaction", &on_rate));
    println!(
        "{}",
        row(
            &format!("collector down ({:?} of load)", cfg.dead),
            &dead_rate
        )
    );
    let off_rps = off_rate.requests as f64 / off_rate.window.as_secs_f64();
    let on_rps = on_rate.requests as f64 / on_rate.window.as_secs_f64();
    println!();
    println!(
        "- exporter on ÷ off: {:.1} % of the request rate",
        on_rps / off_rps * 100.0
    );
    if drain.is_zero() {
        println!(
            "- export throughput: a backlog of {backlog} transactions (receiver down for {:?} of \
             load) drained as {drained} spans in one request: too small to time (raise \
             BENCH_EXPORT_SECS)",
            cfg.window
        );
    } else {
        println!(
            "- export throughput: a backlog of {backlog} transactions (receiver down for {:?} of \
             load) drained as {drained} spans in {:.2} s from the first to the last accepted \
             request: {:.0} spans/s (state {}, {} retries in all)",
            cfg.window,
            drain.as_secs_f64(),
            drained as f64 / drain.as_secs_f64(),
            st["state"],
            st["retries"]
        );
    }
    println!(
        "- collector down: RSS {} after the load (peak {}), export state {}, lag {}, {} exported",
        mib(dead_rss),
        mib(dead_peak),
        dead_st["state"],
        dead_st["lag"],
        dead_st["exported_spans"]
    );
}
