//! The protocols benchmark: HTTP/2 request rate, SSE streaming and WebSocket echo over the
//! MITM section's four paths in one run, with one client and one origin per workload
//! (`proxy/protocols_load.rs`, `proxy/protocols_ws.rs`): direct, greyproxyd intercepting
//! (`--upstream-ca` trusts the test origin), greyproxyd `--no-mitm` (a plain tunnel,
//! end-to-end TLS) and mitmproxy.
//!
//! Every path must deliver correct bytes before anything is timed (the JSON body, every SSE
//! event, every echo). greyproxyd or direct failing is a bug and panics; mitmproxy failing
//! becomes a `failed (reason)` row. What each path negotiated is reported, not assumed: the
//! HTTP/2 rows name the client's ALPN and the HTTP version the origin saw, the SSE row the
//! framing the client received and whether the first event arrived before the stream ended.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;

use greyproxy_testkit::tls::{TestCa, client_config};

use crate::client::Via;
use crate::mitmproxy::{Mitmdump, locate};
use crate::protocols_load::{
    EVENT, JSON, Load, h2_probe, h2_rate, proto_origin, sse_conn, sse_first, sse_rate, sse_stream,
};
use crate::protocols_ws::{MSG, ws_check, ws_origin, ws_rate};
use crate::sys::{daemon_pid, mib, pct, rss_kib, sorted};

/// What the protocols section runs, from the environment.
pub struct ProtoCfg {
    /// Measured window per row.
    pub window: Duration,
    /// Warm-up per row, on the row's connection.
    pub warm: Duration,
    /// Concurrent HTTP/2 streams of the request-rate rows, in order.
    pub streams: Vec<usize>,
    /// WebSocket messages in flight of the echo rows, in order.
    pub inflight: Vec<usize>,
    /// Events per SSE stream in the throughput row.
    pub events: u64,
    /// SSE streams timed to their first event.
    pub first: usize,
    /// Whether mitmproxy may be installed with pip when missing (not in smoke runs).
    pub install: bool,
    /// The daemon binary.
    pub daemon: String,
}

impl ProtoCfg {
    /// `BENCH_PROTO_SECS`, `BENCH_PROTO_WARMUP` (seconds), `BENCH_PROTO_STREAMS` (HTTP/2
    /// streams of the loaded row; a 1-stream row always follows), `BENCH_PROTO_INFLIGHT`
    /// (WebSocket window of the loaded row; a window-1 row follows), `BENCH_PROTO_EVENTS`
    /// (events per SSE stream), `BENCH_PROTO_FIRST` (SSE streams timed to the first event);
    /// small values for a smoke run.
    pub fn from_env(full: bool, daemon: &str) -> ProtoCfg {
        let n = |k: &str, d: u64| crate::env_size(k).unwrap_or(d).max(1);
        let pair = |k: usize| if k == 1 { vec![1] } else { vec![k, 1] };
        ProtoCfg {
            window: crate::env_secs("BENCH_PROTO_SECS", if full { 10.0 } else { 0.3 }),
            warm: crate::env_secs("BENCH_PROTO_WARMUP", if full { 1.0 } else { 0.1 }),
            streams: pair(n("BENCH_PROTO_STREAMS", 16) as usize),
            inflight: pair(n("BENCH_PROTO_INFLIGHT", 64) as usize),
            events: n("BENCH_PROTO_EVENTS", if full { 5000 } else { 200 }),
            first: n("BENCH_PROTO_FIRST", if full { 20 } else { 3 }) as usize,
            install: full,
            daemon: daemon.to_string(),
        }
    }

    fn windows(&self) -> (Duration, Duration) {
        (self.warm, self.window)
    }
}

/// Events of each first-event stream, and the origin's pause between them.
const FIRST_EVENTS: u64 = 20;
const FIRST_GAP: Duration = Duration::from_millis(5);

/// One way from the client to the origins.
struct Route {
    name: &'static str,
    via: Via,
    /// The root the client trusts.
    roots: PathBuf,
    /// The proxy process, if any.
    pid: Option<u32>,
}

impl Route {
    fn tls(&self, alpn: &[&[u8]]) -> Arc<ClientConfig> {
        client_config(&self.roots, alpn)
    }
}

const DIRECT: &str = "direct";
const MITM: &str = "greyproxyd MITM";
const TUNNEL: &str = "greyproxyd `--no-mitm` (tunnel)";
const MITMPROXY: &str = "mitmproxy";
const H2: &[&[u8]] = &[b"h2", b"http/1.1"];
const H1: &[&[u8]] = &[b"http/1.1"];

/// A failure is a bug unless mitmproxy's.
fn settle<T>(name: &str, what: &str, r: Result<T, String>) -> Result<T, String> {
    if let Err(e) = &r {
        assert_eq!(name, MITMPROXY, "{name}, {what}: {e}");
        eprintln!("      {name}, {what}: failed: {e}");
    }
    r
}

/// A measured row: the load parameter (streams, window), the path, the load.
type Row = (usize, &'static str, Result<Load, String>);
/// What a path negotiated, or why it failed before timing.
type Probe = (&'static str, Result<String, String>);
/// A path's SSE first-event streams: ms to the first event and to the end of each stream.
type First = (&'static str, Result<(Vec<f64>, Vec<f64>), String>);

/// Runs the protocols section and prints its tables.
pub async fn run(cfg: &ProtoCfg) {
    let list = |v: &[usize]| v.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
    println!(
        "- protocols parameters: BENCH_PROTO_SECS={} BENCH_PROTO_WARMUP={} streams {} in flight {} BENCH_PROTO_EVENTS={} BENCH_PROTO_FIRST={}",
        cfg.window.as_secs_f64(),
        cfg.warm.as_secs_f64(),
        list(&cfg.streams),
        list(&cfg.inflight),
        cfg.events,
        cfg.first
    );
    println!();
    eprintln!("[protocols] origins, two daemons, mitmdump…");
    let ca = TestCa::new("greyproxy bench origin CA");
    let origin = proto_origin(&ca).await;
    let ws = ws_origin(&ca).await;
    let ca_arg = ca.pem_arg();
    let (mitm_d, tun_d, daemon_ca) = crate::mitm::daemon_pair(&cfg.daemon, &ca_arg).await;
    let mitmdump = match locate(cfg.install) {
        Ok(bin) => Mitmdump::start(&bin, ca.pem_path()).await,
        Err(e) => Err(e),
    };
    let mut routes = vec![
        Route {
            name: DIRECT,
            via: Via::Direct,
            roots: ca.pem_path().to_path_buf(),
            pid: None,
        },
        Route {
            name: MITM,
            via: Via::Http(mitm_d.http.unwrap()),
            roots: daemon_ca,
            pid: Some(daemon_pid(mitm_d.state_dir())),
        },
        Route {
            name: TUNNEL,
            via: Via::Http(tun_d.http.unwrap()),
            roots: ca.pem_path().to_path_buf(),
            pid: Some(daemon_pid(tun_d.state_dir())),
        },
    ];
    let unavailable = match &mitmdump {
        Ok(m) => {
            routes.push(Route {
                name: MITMPROXY,
                via: Via::Http(m.addr),
                roots: m.ca.clone(),
                pid: Some(m.pid),
            });
            None
        }
        Err(e) => Some(format!("not available ({e})")),
    };
    let mitmproxy_note = match &mitmdump {
        Ok(m) => format!("{} (pid {})", m.version, m.pid),
        Err(e) => format!("not available ({e})"),
    };
    let w = cfg.windows();

    // Probes first: every path must deliver correct bytes before anything is timed.
    let (mut h2_probes, mut sse_probes, mut ws_probes): (Vec<Probe>, Vec<Probe>, Vec<Probe>) =
        Default::default();
    for r in &routes {
        let p = h2_probe(r.via, origin, r.tls(H2))
            .await
            .map(|p| p.to_string());
        h2_probes.push((r.name, settle(r.name, "HTTP/2 check", p)));
        let sse = async {
            let mut c = sse_conn(r.via, origin, r.tls(H1)).await?;
            sse_stream(&mut c, &origin.to_string(), 50, 0, || {}).await
        };
        sse_probes.push((r.name, settle(r.name, "SSE check", sse.await)));
        let echo = ws_check(r.via, ws, r.tls(H1))
            .await
            .map(|a| format!("ALPN {a}"));
        ws_probes.push((r.name, settle(r.name, "WebSocket check", echo)));
    }
    let ok = |probes: &[Probe], name: &str| probes.iter().any(|(n, p)| *n == name && p.is_ok());

    let mut h2_rows: Vec<Row> = Vec::new();
    for &k in &cfg.streams {
        for r in routes.iter().filter(|r| ok(&h2_probes, r.name)) {
            eprintln!("[protocols] HTTP/2, {k} stream(s), {}…", r.name);
            let res = h2_rate(r.pid, r.via, origin, r.tls(H2), k, w).await;
            h2_rows.push((k, r.name, settle(r.name, "HTTP/2 rate", res)));
        }
    }
    let mut sse_rows: Vec<Row> = Vec::new();
    let mut firsts: Vec<First> = Vec::new();
    for r in routes.iter().filter(|r| ok(&sse_probes, r.name)) {
        eprintln!("[protocols] SSE, {}…", r.name);
        let res = sse_rate(r.pid, r.via, origin, r.tls(H1), cfg.events, w).await;
        sse_rows.push((1, r.name, settle(r.name, "SSE rate", res)));
        let f = sse_first(r.via, origin, r.tls(H1), cfg.first, FIRST_EVENTS, FIRST_GAP).await;
        firsts.push((r.name, settle(r.name, "SSE first event", f)));
    }
    let mut ws_rows: Vec<Row> = Vec::new();
    for &k in &cfg.inflight {
        for r in routes.iter().filter(|r| ok(&ws_probes, r.name)) {
            eprintln!("[protocols] WebSocket, {k} in flight, {}…", r.name);
            let res = ws_rate(r.pid, r.via, ws, r.tls(H1), k, w).await;
            ws_rows.push((k, r.name, settle(r.name, "WebSocket rate", res)));
        }
    }

    // ----- report -----
    let secs = format!(
        "{} s per row after {} s warm-up",
        cfg.window.as_secs_f64(),
        cfg.warm.as_secs_f64()
    );
    let title = format!(
        "## HTTP/2 request rate (GET of a {}-byte JSON, N concurrent streams on one TLS connection offering ALPN h2 then http/1.1; {secs})",
        JSON.len()
    );
    let t = Table {
        title: &title,
        n: "streams",
        unit: "req",
    };
    t.print(&h2_rows, &h2_probes, unavailable.as_deref());
    report_sse(cfg, &sse_rows, &firsts, &sse_probes, unavailable.as_deref());
    let title = format!(
        "## WebSocket echo ({MSG}-byte JSON text messages, N in flight on one TLS WebSocket over HTTP/1.1, every echo checked; no permessage-deflate: tungstenite has none; {secs})"
    );
    let t = Table {
        title: &title,
        n: "in flight",
        unit: "msg",
    };
    t.print(&ws_rows, &ws_probes, unavailable.as_deref());
    println!("- mitmproxy: {mitmproxy_note}");
    for r in routes.iter().filter(|r| r.name != MITMPROXY) {
        if let Some(p) = r.pid {
            println!("- {} RSS after the section: {}", r.name, mib(rss_kib(p).0));
        }
    }
    println!();
    drop(mitmdump);
    let _ = mitm_d.stop().await;
    let _ = tun_d.stop().await;
}

fn find<'a>(rows: &'a [Row], n: usize, name: &str) -> Option<&'a Load> {
    rows.iter()
        .find(|(k, p, _)| *k == n && *p == name)
        .and_then(|(_, _, r)| r.as_ref().ok())
}

fn ratio(x: f64, base: Option<f64>) -> String {
    base.map_or("—".into(), |b| format!("{:.2}×", x / b))
}

/// Proxy CPU s, µs per unit and peak RSS; dashes for the direct path.
fn proxy_cols(name: &str, l: &Load) -> [String; 3] {
    if name == DIRECT {
        return ["—".into(), "—".into(), "—".into()];
    }
    let cpu = l.cpu.1;
    [
        format!("{cpu:.2}"),
        format!("{:.0}", cpu * 1e6 / l.units.max(1) as f64),
        l.peak_kib.map_or("—".into(), mib),
    ]
}

/// A rate-and-latency table (HTTP/2 requests, WebSocket round trips).
struct Table<'a> {
    title: &'a str,
    /// Header of the load-parameter column.
    n: &'a str,
    /// What a unit is, in column headers.
    unit: &'a str,
}

impl Table<'_> {
    fn print(&self, rows: &[Row], probes: &[Probe], unavailable: Option<&str>) {
        let u = self.unit;
        println!("{}", self.title);
        println!();
        println!(
            "| {} | path | negotiated | {u}/s | MB/s | p50 µs | p99 µs | ÷ direct | ÷ mitmproxy | proxy CPU s | proxy CPU µs/{u} | proxy peak RSS | other CPUs |",
            self.n
        );
        println!("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        let mut ns: Vec<usize> = rows.iter().map(|r| r.0).collect();
        ns.dedup();
        for n in ns {
            let direct = find(rows, n, DIRECT).map(Load::per_s);
            let mp = find(rows, n, MITMPROXY).map(Load::per_s);
            for (_, name, r) in rows.iter().filter(|r| r.0 == n) {
                let l = match r {
                    Ok(l) => l,
                    Err(e) => {
                        println!("| {n} | {name}: failed ({e}) | | | | | | | | | | | |");
                        continue;
                    }
                };
                let proto = probes
                    .iter()
                    .find(|p| p.0 == *name)
                    .and_then(|p| p.1.as_ref().ok())
                    .map_or("", String::as_str);
                let v = sorted(&l.micros);
                let (p50, p99) = if v.is_empty() {
                    (f64::NAN, f64::NAN)
                } else {
                    (pct(&v, 50.0), pct(&v, 99.0))
                };
                let [cpu, per, rss] = proxy_cols(name, l);
                let secs = l.window.as_secs_f64();
                println!(
                    "| {n} | {name} | {proto} | {:.0} | {:.1} | {p50:.0} | {p99:.0} | {} | {} | {cpu} | {per} | {rss} | {:.2} |",
                    l.per_s(),
                    l.bytes as f64 / secs / 1e6,
                    ratio(l.per_s(), direct),
                    ratio(l.per_s(), mp),
                    l.cpu.2 / secs
                );
            }
        }
        for (name, p) in probes {
            if let Err(e) = p {
                println!("| — | {name}: failed before timing ({e}) | | | | | | | | | | | |");
            }
        }
        if let Some(u) = unavailable {
            println!("| — | mitmproxy: {u} | | | | | | | | | | | |");
        }
        println!();
    }
}

fn report_sse(
    cfg: &ProtoCfg,
    rows: &[Row],
    firsts: &[First],
    probes: &[Probe],
    unavailable: Option<&str>,
) {
    println!(
        "## SSE streaming (`text/event-stream` over HTTP/1.1 without a length, {EVENT}-byte JSON events each flushed on its own; rate: {}-event streams back to back on one connection, {} s after {} s warm-up; first event: {} streams of {FIRST_EVENTS} events {} ms apart)",
        cfg.events,
        cfg.window.as_secs_f64(),
        cfg.warm.as_secs_f64(),
        cfg.first,
        FIRST_GAP.as_millis()
    );
    println!();
    println!(
        "| path | framing received | events/s | MB/s | ÷ direct | ÷ mitmproxy | first event p50 ms | first event p99 ms | whole stream p50 ms | delivery | proxy CPU s | proxy CPU µs/event | proxy peak RSS | other CPUs |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|");
    let direct = find(rows, 1, DIRECT).map(Load::per_s);
    let mp = find(rows, 1, MITMPROXY).map(Load::per_s);
    for (_, name, r) in rows {
        let l = match r {
            Ok(l) => l,
            Err(e) => {
                println!("| {name}: failed ({e}) | | | | | | | | | | | | | |");
                continue;
            }
        };
        let framing = probes
            .iter()
            .find(|p| p.0 == *name)
            .and_then(|p| p.1.as_ref().ok())
            .map_or("", String::as_str);
        let first = firsts.iter().find(|f| f.0 == *name).map(|f| &f.1);
        let (f50, f99, w50, delivery) = match first {
            Some(Ok((f, w))) => {
                let (f, w) = (sorted(f), sorted(w));
                let (f50, w50) = (pct(&f, 50.0), pct(&w, 50.0));
                let d = if f50 < w50 / 2.0 {
                    "streamed"
                } else {
                    "**buffered** (first event only at the end)"
                };
                (
                    format!("{f50:.1}"),
                    format!("{:.1}", pct(&f, 99.0)),
                    format!("{w50:.1}"),
                    d.to_string(),
                )
            }
            Some(Err(e)) => ("—".into(), "—".into(), "—".into(), format!("failed ({e})")),
            None => ("—".into(), "—".into(), "—".into(), "—".into()),
        };
        let [cpu, per, rss] = proxy_cols(name, l);
        let secs = l.window.as_secs_f64();
        println!(
            "| {name} | {framing} | {:.0} | {:.2} | {} | {} | {f50} | {f99} | {w50} | {delivery} | {cpu} | {per} | {rss} | {:.2} |",
            l.per_s(),
            l.bytes as f64 / secs / 1e6,
            ratio(l.per_s(), direct),
            ratio(l.per_s(), mp),
            l.cpu.2 / secs
        );
    }
    for (name, p) in probes {
        if let Err(e) = p {
            println!("| {name}: failed before timing ({e}) | | | | | | | | | | | | | |");
        }
    }
    if let Some(u) = unavailable {
        println!("| mitmproxy: {u} | | | | | | | | | | | | | |");
    }
    println!();
    println!(
        "MB/s counts event payloads ({EVENT} B each); \"buffered\" means the first event's p50 is at least half the whole stream's."
    );
    println!();
}
