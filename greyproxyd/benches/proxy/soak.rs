//! The soak run (`BENCH_ONLY=soak`): mixed traffic against one intercepting daemon for
//! `BENCH_SOAK_SECS` (default 1800 with `--bench`, 120 otherwise), sampling its RSS, open file
//! descriptors and threads every `BENCH_SOAK_SAMPLE` seconds (default 10). Passes when RSS stays
//! flat after warm-up (capture caps bound the store; no queue grows) and the descriptors return
//! to their idle baseline once the traffic stops.
//!
//! Traffic, all at once: keep-alive HTTPS requests through the MITM (4 workers, reconnecting
//! every 200 requests), HTTPS bulk downloads larger than the capture cap, HTTP/2 requests, SSE
//! streams and WebSocket echoes through the MITM, plain-HTTP requests through the forwarding
//! (`soak_mix.rs`), raw CONNECT tunnels to an
//! echo origin (not HTTP: relayed untouched), a held connection to a fresh destination
//! allowed over the control socket and its rule deleted again every 2 s, and `list_activity`
//! pages read every 5 s.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use greyproxy_testkit::DaemonBuilder;
use greyproxy_testkit::origin::echo_origin;
use greyproxy_testkit::tls::{TestCa, client_config};

use crate::client::{Via, open_async};
use crate::mitm_load::{connect, get, https_origin};
use crate::sys::{daemon_pid, mib, rss_kib};

/// Soak settings from the environment.
pub struct SoakCfg {
    duration: Duration,
    sample: Duration,
    daemon: String,
}

impl SoakCfg {
    /// `BENCH_SOAK_SECS`, `BENCH_SOAK_SAMPLE`.
    pub fn from_env(full: bool, daemon: &str) -> SoakCfg {
        let secs = |k: &str, d: u64| {
            std::env::var(k)
                .ok()
                .map(|v| {
                    v.trim()
                        .parse::<u64>()
                        .unwrap_or_else(|_| panic!("{k}={v:?}"))
                })
                .unwrap_or(d)
        };
        SoakCfg {
            duration: Duration::from_secs(secs("BENCH_SOAK_SECS", if full { 1800 } else { 120 })),
            sample: Duration::from_secs(secs("BENCH_SOAK_SAMPLE", 10).max(1)),
            daemon: daemon.to_string(),
        }
    }
}

/// One sample of the daemon.
struct Sample {
    at: Duration,
    rss_kib: u64,
    fds: usize,
    threads: u64,
    /// `status.alive_tasks`, with the soak's own control connection open.
    tasks: u64,
    requests: u64,
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn threads(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// `status.alive_tasks` seen from a control connection of its own, opened and closed here:
/// the same count before and after the traffic is comparable.
async fn tasks_alone(d: &greyproxy_testkit::Daemon) -> u64 {
    let mut c = d.client().await;
    let st = c.query(json!({"command": "status"})).await;
    drop(c);
    st["alive_tasks"].as_u64().unwrap_or(0)
}

/// Runs the soak and prints its table and verdict.
pub async fn run(cfg: &SoakCfg) {
    eprintln!("[soak] {} s of mixed traffic…", cfg.duration.as_secs());
    let ca = TestCa::new("greyproxy soak origin CA");
    let origin = https_origin(&ca).await;
    let echo = echo_origin("127.0.0.1").await;
    let proto = crate::protocols_load::proto_origin(&ca).await;
    let ws = crate::protocols_ws::ws_origin(&ca).await;
    let plain_origin = greyproxy_testkit::origin::http_origin("127.0.0.1").await;
    let ca_arg = ca.pem_arg();
    let d = DaemonBuilder::new(&cfg.daemon)
        .args(&["--upstream-ca", &ca_arg, "--hold-timeout", "60"])
        .env("RUST_LOG", "warn")
        .start()
        .await;
    let pid = daemon_pid(d.state_dir());
    let proxy = Via::Http(d.http.unwrap());
    let tls = client_config(&d.state_dir().join("ca-cert.pem"), &[b"http/1.1"]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_fds = fds(pid);
    let idle_rss = rss_kib(pid).0;
    let idle_tasks = tasks_alone(&d).await;

    let stop = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..4 {
        workers.push(tokio::spawn(keepalive(
            proxy,
            origin,
            tls.clone(),
            stop.clone(),
            requests.clone(),
            errors.clone(),
        )));
    }
    workers.push(tokio::spawn(bulk(
        proxy,
        origin,
        tls.clone(),
        stop.clone(),
        errors.clone(),
    )));
    workers.push(tokio::spawn(tunnels(
        proxy,
        echo,
        stop.clone(),
        errors.clone(),
    )));
    let mix = crate::soak_mix::Shared {
        stop: stop.clone(),
        errors: errors.clone(),
    };
    let ca_pem = d.state_dir().join("ca-cert.pem");
    let h2_tls = client_config(&ca_pem, &[b"h2", b"http/1.1"]);
    let (h2_done, sse_done, ws_done, plain_done) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    workers.push(tokio::spawn(crate::soak_mix::plain(
        d.http.unwrap(),
        plain_origin,
        mix.clone(),
        plain_done.clone(),
    )));
    workers.push(tokio::spawn(crate::soak_mix::h2(
        proxy,
        proto,
        h2_tls.clone(),
        mix.clone(),
        h2_done.clone(),
    )));
    workers.push(tokio::spawn(crate::soak_mix::sse(
        proxy,
        proto,
        h2_tls,
        mix.clone(),
        sse_done.clone(),
    )));
    workers.push(tokio::spawn(crate::soak_mix::ws(
        proxy,
        ws,
        tls.clone(),
        mix,
        ws_done.clone(),
    )));
    let mut ctl = d.client().await;
    // Only what the hold step waits for: every transaction would otherwise be queued in this
    // client for the whole run (a 30-minute run grew the benchmark itself to 24 GB).
    let _ = ctl
        .cmd(json!({"command": "subscribe", "event_type": "pending_request.created"}))
        .await;
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut next_sample = started;
    let mut next_hold = started;
    let mut next_list = started;
    let mut holds = 0u64;
    while started.elapsed() < cfg.duration {
        let now = Instant::now();
        if now >= next_sample {
            let st = ctl.query(json!({"command": "status"})).await;
            samples.push(Sample {
                tasks: st["alive_tasks"].as_u64().unwrap_or(0),
                at: started.elapsed(),
                rss_kib: rss_kib(pid).0,
                fds: fds(pid),
                threads: threads(pid),
                requests: requests.load(Ordering::Relaxed),
            });
            next_sample += cfg.sample;
        }
        if now >= next_hold {
            if hold_and_allow(&mut ctl, proxy).await {
                holds += 1;
            } else {
                errors.fetch_add(1, Ordering::Relaxed);
            }
            next_hold += Duration::from_secs(2);
        }
        if now >= next_list {
            let _ = ctl
                .query(json!({"command": "list_activity", "limit": 200}))
                .await;
            next_list += Duration::from_secs(5);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.await;
    }
    drop(ctl);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let end_fds = fds(pid);
    let (end_rss, peak_rss) = rss_kib(pid);
    let end_tasks = tasks_alone(&d).await;
    report(
        cfg,
        &samples,
        (idle_fds, end_fds),
        (idle_tasks, end_tasks),
        (idle_rss, end_rss, peak_rss),
        holds,
        &errors,
    );
    println!(
        "- other traffic: {} HTTP/2 requests, {} SSE events, {} WebSocket round trips through the MITM; {} plain-HTTP requests",
        h2_done.load(Ordering::Relaxed),
        sse_done.load(Ordering::Relaxed),
        ws_done.load(Ordering::Relaxed),
        plain_done.load(Ordering::Relaxed)
    );
    let log = d.log();
    let bad: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" ERROR ") || l.contains(" WARN "))
        .collect();
    println!("- daemon warnings and errors: {}", bad.len());
    for l in bad.iter().take(5) {
        println!("  - `{l}`");
    }
    println!();
    let _ = d.stop().await;
}

/// Prints the samples and the verdict; pairs are (idle before traffic, 3 s after it).
fn report(
    cfg: &SoakCfg,
    samples: &[Sample],
    (idle_fds, end_fds): (usize, usize),
    (idle_tasks, end_tasks): (u64, u64),
    (idle_rss, end_rss, peak_rss): (u64, u64, u64),
    holds: u64,
    errors: &AtomicU64,
) {
    println!(
        "## Soak ({} s of mixed traffic, sampled every {} s)",
        cfg.duration.as_secs(),
        cfg.sample.as_secs()
    );
    println!();
    println!("| t (s) | RSS | open fds | threads | runtime tasks | MITM requests so far |");
    println!("|---:|---:|---:|---:|---:|---:|");
    let step = (samples.len() / 12).max(1);
    for (i, s) in samples.iter().enumerate() {
        if i % step == 0 || i + 1 == samples.len() {
            println!(
                "| {} | {} | {} | {} | {} | {} |",
                s.at.as_secs(),
                mib(s.rss_kib),
                s.fds,
                s.threads,
                s.tasks,
                s.requests
            );
        }
    }
    println!();
    // Flat = the mean RSS of the last quarter exceeds the third quarter's by less than 10 % or
    // 8 MiB, whichever is larger. Quarter means, not two samples: RSS oscillates by tens of
    // MiB as the writer's queue fills and drains, and a heavy mix takes a third of the run to
    // reach its plateau (new blocking threads bring new allocator arenas).
    let mean = |from: f64, to: f64| {
        let v: Vec<u64> = samples
            .iter()
            .filter(|s| {
                let f = s.at.as_secs_f64() / cfg.duration.as_secs_f64();
                f >= from && f < to
            })
            .map(|s| s.rss_kib)
            .collect();
        (!v.is_empty()).then(|| v.iter().sum::<u64>() as i64 / v.len() as i64)
    };
    let last = samples.last();
    let warm = samples.iter().find(|s| s.at >= cfg.duration / 4);
    let from_warm = match (warm, last) {
        (Some(w), Some(l)) => l.rss_kib as i64 - w.rss_kib as i64,
        _ => 0,
    };
    let (flat, growth) = match (mean(0.5, 0.75), mean(0.75, 1.01)) {
        (Some(q3), Some(q4)) => (q4 - q3 <= (q3 / 10).max(8 * 1024), q4 - q3),
        _ => (false, 0),
    };
    let total = last.map_or(0, |l| l.requests);
    println!(
        "- idle before traffic: {} RSS, {idle_fds} fds, {idle_tasks} runtime tasks",
        mib(idle_rss)
    );
    println!(
        "- after traffic (+3 s): {} RSS (peak {}), {end_fds} fds — fds {}",
        mib(end_rss),
        mib(peak_rss),
        if end_fds <= idle_fds + 2 {
            "back to baseline"
        } else {
            "NOT back to baseline"
        }
    );
    println!(
        "- runtime tasks after traffic (+3 s): {end_tasks} — {}",
        if end_tasks <= idle_tasks + 2 {
            "back to baseline (no task leak)"
        } else {
            "NOT back to baseline"
        }
    );
    println!(
        "- RSS, mean of the last quarter against the third: {:+.1} MiB — {} (from the end of the first quarter to the last sample: {:+.1} MiB)",
        growth as f64 / 1024.0,
        if flat { "flat" } else { "GROWING" },
        from_warm as f64 / 1024.0
    );
    println!(
        "- traffic: {total} MITM requests, {holds} held-then-allowed connections, {} client-side errors",
        errors.load(Ordering::Relaxed)
    );
    println!();
}

/// Keep-alive GETs through the MITM, a new connection every 200 requests.
async fn keepalive(
    via: Via,
    origin: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    stop: Arc<AtomicBool>,
    requests: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
) {
    let authority = origin.to_string();
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut c) = connect(via, origin, tls.clone()).await else {
            errors.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        for _ in 0..200 {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            match get(&mut c, &authority, "/json").await {
                Ok(_) => requests.fetch_add(1, Ordering::Relaxed),
                Err(_) => {
                    errors.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            };
        }
    }
}

/// 4 MiB HTTPS downloads (twice the default capture cap), one after another.
async fn bulk(
    via: Via,
    origin: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    stop: Arc<AtomicBool>,
    errors: Arc<AtomicU64>,
) {
    let authority = origin.to_string();
    while !stop.load(Ordering::Relaxed) {
        let ok = match connect(via, origin, tls.clone()).await {
            Ok(mut c) => get(&mut c, &authority, "/bulk?bytes=4194304").await.is_ok(),
            Err(_) => false,
        };
        if !ok {
            errors.fetch_add(1, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Raw tunnels: 64 KiB echoed through a CONNECT to a non-HTTP origin, then closed.
async fn tunnels(via: Via, echo: SocketAddr, stop: Arc<AtomicBool>, errors: Arc<AtomicU64>) {
    let block = vec![0x5au8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        let mut s = open_async(via, echo).await;
        let mut back = vec![0u8; block.len()];
        let ok = s.write_all(&block).await.is_ok() && s.read_exact(&mut back).await.is_ok();
        if !ok || back != block {
            errors.fetch_add(1, Ordering::Relaxed);
        }
        drop(s);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A CONNECT to a fresh destination is held, allowed over the control socket (a rule), the
/// tunnel used, and the rule deleted again.
async fn hold_and_allow(ctl: &mut greyproxy_testkit::Control, via: Via) -> bool {
    let target = echo_origin("127.0.0.3").await;
    let held = tokio::spawn(async move {
        let mut s = open_async(via, target).await;
        let mut b = [0u8; 4];
        s.write_all(b"ping").await.is_ok() && s.read_exact(&mut b).await.is_ok() && &b == b"ping"
    });
    let p: Value = ctl.pending_for("127.0.0.3", target.port()).await;
    let r = ctl
        .cmd(json!({"command": "allow", "pending_id": p["id"], "scope": "exact", "duration": "permanent"}))
        .await;
    let ok = held.await.unwrap_or(false);
    if let Some(rule) = r["rule_id"].as_u64() {
        let _ = ctl
            .cmd(json!({"command": "delete_rule", "rule_id": rule}))
            .await;
    }
    ok && r["type"] == "command_success"
}
