//! The LLM section (`BENCH_ONLY=llm`; docs/performance.md#llm): the MITM request rate on
//! LLM-shaped traffic with the LLM layer on and off. One HTTPS origin answers
//! `POST /v1/messages` like the Anthropic API: the request body (21–25 KB: Claude Code's system
//! prompt, tools and a growing history, `llm/claude.rs`) is read whole, the answer is an SSE
//! stream of 20 events with usage, one frame per event. Two intercepting daemons dial
//! `api.anthropic.com` at the origin (`--map-host`, trusting its CA with `--upstream-ca`), one
//! with `[llm] enabled = true`, one with `enabled = false` (each from a `--config` file); the
//! same client (hyper HTTP/1.1 keep-alive over `CONNECT api.anthropic.com:port`, TLS to the
//! name) drives direct, then off and on twice each for half a window, in the order off on on
//! off. After each on half the on daemon's dissection queue is waited for (it would disturb
//! the next row), and its calls are counted against the requests sent; the report also gives
//! the dissection thread's CPU and the transactions either recorder dropped.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use greyproxy_testkit::agent_env::rule;
use greyproxy_testkit::control::Control;
use greyproxy_testkit::tls::{TestCa, client_config};
use greyproxy_testkit::{Daemon, DaemonBuilder};

use crate::claude::{self, Session};
use crate::client::{check_established, read_head};
use crate::mitm_load::{Rate, drive, serve_h1_tls};
use crate::sys::{daemon_pid, mib, pct, proc_cpu_secs, sorted};

/// The API host the client names.
const API: &str = "api.anthropic.com";
/// Requests per connection before its history starts again.
const HISTORY: u64 = 8;

/// What the LLM section runs, from the environment.
pub struct LlmCfg {
    /// Measured window per row.
    pub window: Duration,
    /// Warm-up per row.
    pub warm: Duration,
    /// Connection counts, in order.
    pub conns: Vec<usize>,
    /// The daemon binary.
    pub daemon: String,
}

impl LlmCfg {
    /// `BENCH_LLM_SECS`, `BENCH_LLM_WARMUP` (seconds), `BENCH_LLM_CONNS` (comma list).
    pub fn from_env(full: bool, daemon: &str) -> LlmCfg {
        let conns = crate::env_conns("BENCH_LLM_CONNS");
        LlmCfg {
            window: crate::env_secs("BENCH_LLM_SECS", if full { 10.0 } else { 0.3 }),
            warm: crate::env_secs("BENCH_LLM_WARMUP", if full { 1.0 } else { 0.1 }),
            conns,
            daemon: daemon.to_string(),
        }
    }
}

/// The origin: `POST /v1/messages…` reads the body and streams `frames`; anything else 404.
async fn origin(ca: &TestCa, frames: Arc<Vec<Bytes>>) -> SocketAddr {
    serve_h1_tls(ca, &[API, "127.0.0.1"], move || {
        let frames = frames.clone();
        service_fn(move |req: Request<hyper::body::Incoming>| {
            let frames = frames.clone();
            async move {
                let ok = req.method() == http::Method::POST && req.uri().path() == "/v1/messages";
                let _ = req.into_body().collect().await;
                let chunks: Vec<Bytes> = if ok { frames.to_vec() } else { Vec::new() };
                let body = StreamBody::new(futures_util::stream::iter(
                    chunks
                        .into_iter()
                        .map(|b| Ok::<_, Infallible>(Frame::data(b))),
                ));
                let resp = Response::builder()
                    .status(if ok {
                        StatusCode::OK
                    } else {
                        StatusCode::NOT_FOUND
                    })
                    .header(header::CONTENT_TYPE, "text/event-stream; charset=utf-8")
                    .header("request-id", "req_bench")
                    .body(body)
                    .unwrap();
                Ok::<_, Infallible>(resp)
            }
        })
    })
    .await
}

/// One client connection with its precomputed requests.
struct Conn {
    send: SendRequest<Full<Bytes>>,
    bodies: Arc<Vec<Bytes>>,
    next: usize,
}

/// Opens TLS to `api.anthropic.com` (directly at the origin, or through `CONNECT` to the name on
/// `proxy`), then an HTTP/1.1 client connection.
async fn connect(
    proxy: Option<SocketAddr>,
    origin: SocketAddr,
    tls: Arc<ClientConfig>,
) -> Result<SendRequest<Full<Bytes>>, String> {
    let tcp = match proxy {
        None => TcpStream::connect(origin)
            .await
            .map_err(|e| e.to_string())?,
        Some(p) => {
            let mut s = TcpStream::connect(p).await.map_err(|e| e.to_string())?;
            let target = format!("{API}:{}", origin.port());
            s.write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            check_established(&read_head(&mut s).await);
            s
        }
    };
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(tls)
        .connect(ServerName::try_from(API).unwrap(), tcp)
        .await
        .map_err(|e| format!("TLS handshake: {e}"))?;
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    tokio::spawn(conn);
    Ok(send)
}

/// One request on `c`: its next body; checks the status and the streamed length.
async fn one(
    mut c: Conn,
    headers: Arc<Vec<(String, String)>>,
    authority: Arc<String>,
    expect: u64,
) -> (Conn, Result<(), String>) {
    let body = c.bodies[c.next % c.bodies.len()].clone();
    c.next += 1;
    let r = async {
        c.send
            .ready()
            .await
            .map_err(|e| format!("connection: {e}"))?;
        let mut req = Request::post("/v1/messages?beta=true").header(header::HOST, &*authority);
        for (k, v) in headers.iter() {
            req = req.header(k, v);
        }
        let resp = c
            .send
            .send_request(req.body(Full::new(body)).unwrap())
            .await
            .map_err(|e| format!("request: {e}"))?;
        if resp.status() != StatusCode::OK {
            return Err(format!("status {}", resp.status()));
        }
        let mut b = resp.into_body();
        let mut len = 0u64;
        while let Some(f) = b.frame().await {
            if let Some(d) = f.map_err(|e| format!("body: {e}"))?.data_ref() {
                len += d.len() as u64;
            }
        }
        if len != expect {
            return Err(format!("short stream: {len} of {expect} bytes"));
        }
        Ok(())
    }
    .await;
    (c, r)
}

/// A daemon intercepting with the LLM layer on or off.
async fn daemon(
    bin: &str,
    ca_arg: &str,
    origin: SocketAddr,
    llm: bool,
) -> (Daemon, tempfile::NamedTempFile) {
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config.path(), format!("[llm]\nenabled = {llm}\n")).unwrap();
    let map = format!("{API}={}", origin.ip());
    let d = DaemonBuilder::new(bin)
        .args(&[
            "--config",
            &config.path().display().to_string(),
            "--upstream-ca",
            ca_arg,
            "--map-host",
            &map,
        ])
        .env("RUST_LOG", "info")
        .start()
        .await;
    let mut ws = d.client().await;
    rule(&mut ws, "*", API, "allow").await;
    (d, config)
}

/// The section's figure that has a target (docs/performance.md#targets).
pub struct LlmTargets {
    /// req/s with the LLM layer on ÷ off, %, per connection count.
    pub on_vs_off: Vec<(usize, f64)>,
}

/// Adds the second half of a row to its first.
fn merge(sum: &mut Rate, r: Rate) {
    sum.requests += r.requests;
    sum.micros.extend(r.micros);
    sum.window += r.window;
    sum.cpu = (
        sum.cpu.0 + r.cpu.0,
        sum.cpu.1 + r.cpu.1,
        sum.cpu.2 + r.cpu.2,
        sum.cpu.3 + r.cpu.3,
    );
    sum.peak_kib = sum.peak_kib.max(r.peak_kib);
    sum.total += r.total;
}

/// Calls recorded (all of `usage_summary`) and rows dropped so far by the on daemon.
async fn counts(ws: &mut Control) -> (u64, u64) {
    let summary = ws.query(json!({"command":"usage_summary"})).await;
    let status = ws.query(json!({"command":"status"})).await;
    (
        summary["total"]["calls"].as_u64().unwrap_or(0),
        status["llm"]["dropped"].as_u64().unwrap_or(0),
    )
}

/// CPU seconds used by the threads of `pid` whose name starts with `name`.
fn threads_cpu_secs(pid: u32, name: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0.0;
    };
    let mut ticks = 0u64;
    for t in tasks.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if !comm.starts_with(name) {
            continue;
        }
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        if let Some((_, rest)) = stat.rsplit_once(')') {
            let f: Vec<u64> = rest
                .split_whitespace()
                .map(|x| x.parse().unwrap_or(0))
                .collect();
            // utime and stime: fields 14 and 15 of the line, 11 and 12 after the name.
            ticks += f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
        }
    }
    ticks as f64 / 100.0
}

/// Waits (at most a minute) until the on daemon has no row queued for dissection.
async fn drain(ws: &mut Control) {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(60) {
        let status = ws.query(json!({"command":"status"})).await;
        if status["llm"]["queued"].as_u64().unwrap_or(0) == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs the section and prints its table (about 90 s with the default 10 s windows).
pub async fn run(cfg: &LlmCfg) -> LlmTargets {
    eprintln!("[llm] origin, two daemons (LLM layer on, off)…");
    let ca = TestCa::new("greyproxy bench LLM origin CA");
    let fixture = claude::fixture();
    let answer = claude::sse(3, Some("toolu_01BenchMitm000000000003".into()));
    let frames: Vec<Bytes> = answer
        .split_inclusive("\n\n")
        .map(|e| Bytes::copy_from_slice(e.as_bytes()))
        .collect();
    let events = frames.len();
    let expect = answer.len() as u64;
    let origin = origin(&ca, Arc::new(frames)).await;
    let ca_arg = ca.pem_arg();
    let (off, _off_cfg) = daemon(&cfg.daemon, &ca_arg, origin, false).await;
    let (on, _on_cfg) = daemon(&cfg.daemon, &ca_arg, origin, true).await;
    let headers = Arc::new(claude::headers(&fixture));
    let authority = Arc::new(format!("{API}:{}", origin.port()));
    let mut sizes = Vec::new();
    // Each connection sends its own session's first calls, over and over.
    let bodies_for = |n: u64, sizes: &mut Vec<usize>| {
        let mut s = Session::new(&fixture, n);
        let mut out = Vec::new();
        for k in 1..=HISTORY {
            let b = s.request();
            sizes.push(b.len());
            out.push(Bytes::from(b));
            s.answered(k);
        }
        Arc::new(out)
    };
    let routes: [(&str, Option<&Daemon>); 3] = [
        ("direct", None),
        ("MITM, LLM layer off", Some(&off)),
        ("MITM, LLM layer on", Some(&on)),
    ];
    let cpu0: Vec<f64> = [&off, &on]
        .iter()
        .map(|d| proc_cpu_secs(daemon_pid(d.state_dir())))
        .collect();
    let mut sent = [0u64; 3];
    let mut rows: Vec<(usize, usize, Rate)> = Vec::new();
    // Per row of the on daemon: calls recorded, rows dropped, seconds its queue took to drain,
    // CPU seconds of its dissection thread and of the whole daemon over the row and the drain.
    let mut dissected: Vec<(usize, u64, u64, f64, f64, f64)> = Vec::new();
    let mut session = 0;
    for &n in &cfg.conns {
        // Off and on each measured twice, half a window each, in the order off on on off: the
        // drift of a shared machine and any advantage of going second fall on both alike.
        for i in [0, 1, 2, 2, 1] {
            let (name, d) = routes[i];
            let window = if i == 0 { cfg.window } else { cfg.window / 2 };
            eprintln!("[llm] {n} connection(s), {name}…");
            let tls = match d {
                None => client_config(ca.pem_path(), &[b"http/1.1"]),
                Some(d) => client_config(&d.state_dir().join("ca-cert.pem"), &[b"http/1.1"]),
            };
            let mut open = Vec::new();
            for _ in 0..n {
                session += 1;
                let send = connect(d.map(|d| d.http.unwrap()), origin, tls.clone())
                    .await
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                open.push(Conn {
                    send,
                    bodies: bodies_for(session, &mut sizes),
                    next: 0,
                });
            }
            let (h, a) = (headers.clone(), authority.clone());
            let pid = d.map(|d| daemon_pid(d.state_dir()));
            // A control connection per query: one left open during a row would fall behind the
            // events of every request and be dropped by the daemon as a slow reader.
            let on_pid = daemon_pid(on.state_dir());
            let before = if i == 2 {
                let (calls, dropped) = counts(&mut on.client().await).await;
                let cpu = (
                    threads_cpu_secs(on_pid, "greyproxyd-dis"),
                    proc_cpu_secs(on_pid),
                );
                Some((calls, dropped, cpu))
            } else {
                None
            };
            let r = drive(pid, open, cfg.warm, window, move |c| {
                one(c, h.clone(), a.clone(), expect)
            })
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
            sent[i] += r.total;
            // The on daemon's queue drains before the next row, which it would disturb.
            if let Some((calls0, dropped0, (dis0, all0))) = before {
                let mut ws = on.client().await;
                let t = Instant::now();
                drain(&mut ws).await;
                let secs = t.elapsed().as_secs_f64();
                let (calls1, dropped1) = counts(&mut ws).await;
                let row = (
                    n,
                    calls1 - calls0,
                    dropped1 - dropped0,
                    secs,
                    threads_cpu_secs(on_pid, "greyproxyd-dis") - dis0,
                    proc_cpu_secs(on_pid) - all0,
                );
                match dissected.iter_mut().find(|x| x.0 == n) {
                    Some(x) => {
                        x.1 += row.1;
                        x.2 += row.2;
                        x.3 += row.3;
                        x.4 += row.4;
                        x.5 += row.5;
                    }
                    None => dissected.push(row),
                }
            }
            match rows.iter_mut().find(|(c, j, _)| *c == n && *j == i) {
                Some((_, _, sum)) => merge(sum, r),
                None => rows.push((n, i, r)),
            }
        }
    }
    let off_status = off.client().await.query(json!({"command":"status"})).await;
    let cpu1: Vec<f64> = [&off, &on]
        .iter()
        .map(|d| proc_cpu_secs(daemon_pid(d.state_dir())))
        .collect();
    report(cfg, &rows, &routes.map(|r| r.0), (events, expect), &sizes);
    for (n, calls, dropped, secs, dis, all) in &dissected {
        let total = rows
            .iter()
            .find(|(c, i, _)| c == n && *i == 2)
            .map_or(0, |(_, _, r)| r.total);
        println!(
            "- LLM layer on, {n} connection(s): {calls} calls recorded for {total} requests sent (warm-up included), {dropped} rows dropped because the queue was full; the queue drained {secs:.1} s after the two halves of the row. Over the row and the drain the dissection thread used {dis:.1} CPU-s ({:.0} µs per call recorded), {:.0} % of the daemon's {all:.1} CPU-s.",
            dis * 1e6 / (*calls).max(1) as f64,
            100.0 * dis / all.max(f64::MIN_POSITIVE),
        );
    }
    println!(
        "- Transactions the recorder dropped (its queue full): off {}, on {}.",
        crate::mitm::dropped_transactions(&off),
        crate::mitm::dropped_transactions(&on)
    );
    println!(
        "- The LLM-off daemon reports {}. Daemon CPU over the whole section, drains included: off {:.0} µs/request, on {:.0} µs/request.",
        if off_status.get("llm").is_some_and(|l| !l.is_null()) {
            "an LLM layer (wrong)"
        } else {
            "no LLM layer"
        },
        (cpu1[0] - cpu0[0]) * 1e6 / sent[1].max(1) as f64,
        (cpu1[1] - cpu0[1]) * 1e6 / sent[2].max(1) as f64,
    );
    println!();
    let _ = off.stop().await;
    let _ = on.stop().await;
    let rate = |n: usize, i: usize| {
        rows.iter()
            .find(|(c, j, _)| *c == n && *j == i)
            .map_or(0.0, |(_, _, r)| r.requests as f64 / r.window.as_secs_f64())
    };
    LlmTargets {
        on_vs_off: cfg
            .conns
            .iter()
            .map(|&n| (n, 100.0 * rate(n, 2) / rate(n, 1).max(f64::MIN_POSITIVE)))
            .collect(),
    }
}

fn report(
    cfg: &LlmCfg,
    rows: &[(usize, usize, Rate)],
    names: &[&str; 3],
    (events, bytes): (usize, u64),
    sizes: &[usize],
) {
    let (lo, hi) = (
        sizes.iter().min().copied().unwrap_or(0),
        sizes.iter().max().copied().unwrap_or(0),
    );
    println!(
        "## LLM-shaped traffic through the MITM, LLM layer off and on (HTTP/1.1 keep-alive, `POST /v1/messages` with a {:.1}–{:.1} KB JSON body, answered by a {events}-event SSE stream of {bytes} bytes; {} s per row, off and on as two halves: off on on off)",
        lo as f64 / 1e3,
        hi as f64 / 1e3,
        cfg.window.as_secs_f64()
    );
    println!();
    println!(
        "| conns | path | req/s | ÷ LLM off | p50 µs | p99 µs | daemon CPU µs/req | daemon peak RSS |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|");
    for &n in &cfg.conns {
        let rs = |i: usize| {
            rows.iter()
                .find(|(c, j, _)| *c == n && *j == i)
                .map(|(_, _, r)| r.requests as f64 / r.window.as_secs_f64())
        };
        for (c, i, r) in rows.iter().filter(|(c, ..)| *c == n) {
            let v = sorted(&r.micros);
            let rate = r.requests as f64 / r.window.as_secs_f64();
            println!(
                "| {c} | {} | {rate:.0} | {} | {:.0} | {:.0} | {} | {} |",
                names[*i],
                match (i, rs(1)) {
                    (1 | 2, Some(off)) => format!("{:.1} %", 100.0 * rate / off),
                    _ => "—".into(),
                },
                pct(&v, 50.0),
                pct(&v, 99.0),
                if *i == 0 {
                    "—".into()
                } else {
                    format!("{:.0}", r.cpu.1 * 1e6 / r.requests.max(1) as f64)
                },
                r.peak_kib.map_or("—".into(), mib),
            );
        }
    }
    println!();
}
