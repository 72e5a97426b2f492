//! One daemon under the soak (`soak.rs`): started on its own state dir, fed the whole traffic
//! mix by workers of its own, sampled (RSS, descriptors, threads, runtime tasks), and stopped.
//! Several run side by side in one soak when `BENCH_SOAK_COMPARE` names other builds (glibc's
//! malloc against the shipped allocator), each on the same origins.
//!
//! Traffic, all at once: keep-alive HTTPS requests through the MITM (4 workers, reconnecting
//! every 200 requests), HTTPS bulk downloads larger than the capture cap, HTTP/2 requests, SSE
//! streams and WebSocket echoes through the MITM, plain-HTTP requests through the forwarding
//! (`soak_mix.rs`), raw CONNECT tunnels to an echo origin (not HTTP: relayed untouched), a held
//! connection to a fresh destination allowed over the control socket and its rule deleted again
//! every 2 s, and `list_activity` pages read every 5 s.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

use greyproxy_testkit::origin::echo_origin;
use greyproxy_testkit::tls::{TestCa, client_config};
use greyproxy_testkit::{Control, Daemon, DaemonBuilder};

use crate::client::{Via, open_async};
use crate::mitm_load::{connect, get, https_origin};
use crate::sys::{daemon_pid, rss_kib};

/// The origins every daemon of a soak talks to.
pub struct Origins {
    ca: TestCa,
    https: SocketAddr,
    echo: SocketAddr,
    proto: SocketAddr,
    ws: SocketAddr,
    plain: SocketAddr,
}

impl Origins {
    /// Starts them (tasks of this process).
    pub async fn start() -> Origins {
        let ca = TestCa::new("greyproxy soak origin CA");
        Origins {
            https: https_origin(&ca).await,
            echo: echo_origin("127.0.0.1").await,
            proto: crate::protocols_load::proto_origin(&ca).await,
            ws: crate::protocols_ws::ws_origin(&ca).await,
            plain: greyproxy_testkit::origin::http_origin("127.0.0.1").await,
            ca,
        }
    }
}

/// One sample of a daemon.
pub struct Sample {
    /// Since the traffic started.
    pub at: Duration,
    pub rss_kib: u64,
    pub fds: usize,
    pub threads: u64,
    /// `status.alive_tasks`, with the soak's own control connection open.
    pub tasks: u64,
    /// MITM keep-alive requests so far.
    pub requests: u64,
}

pub fn fds(pid: u32) -> usize {
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
pub async fn tasks_alone(d: &Daemon) -> u64 {
    let mut c = d.client().await;
    let st = c.query(json!({"command": "status"})).await;
    drop(c);
    st["alive_tasks"].as_u64().unwrap_or(0)
}

/// Counters of one daemon's traffic.
#[derive(Default)]
pub struct Counts {
    pub requests: Arc<AtomicU64>,
    pub errors: Arc<AtomicU64>,
    pub h2: Arc<AtomicU64>,
    pub sse: Arc<AtomicU64>,
    pub ws: Arc<AtomicU64>,
    pub plain: Arc<AtomicU64>,
}

/// A daemon under the soak, with its workers running.
pub struct Target {
    /// Its name in the report (`greyproxyd`, or the build it is compared with).
    pub label: String,
    pub d: Daemon,
    pub pid: u32,
    proxy: Via,
    /// The soak's control connection; closed once the traffic stops.
    ctl: Option<Control>,
    workers: Vec<JoinHandle<()>>,
    pub counts: Counts,
    /// Before the traffic: RSS (KiB), descriptors, runtime tasks.
    pub idle: (u64, usize, u64),
    pub holds: u64,
    pub samples: Vec<Sample>,
}

impl Target {
    /// Starts daemon `bin` and, once it has idled 1 s, its traffic.
    pub async fn start(label: &str, bin: &str, o: &Origins, stop: &Arc<AtomicBool>) -> Target {
        let ca_arg = o.ca.pem_arg();
        let d = DaemonBuilder::new(bin)
            .args(&["--upstream-ca", &ca_arg, "--hold-timeout", "60"])
            .env("RUST_LOG", "warn")
            .start()
            .await;
        let pid = daemon_pid(d.state_dir());
        let proxy = Via::Http(d.http.unwrap());
        let ca_pem = d.state_dir().join("ca-cert.pem");
        let tls = client_config(&ca_pem, &[b"http/1.1"]);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let idle = (rss_kib(pid).0, fds(pid), tasks_alone(&d).await);
        let counts = Counts::default();
        let mut workers = Vec::new();
        for _ in 0..4 {
            workers.push(tokio::spawn(keepalive(
                proxy,
                o.https,
                tls.clone(),
                stop.clone(),
                counts.requests.clone(),
                counts.errors.clone(),
            )));
        }
        workers.push(tokio::spawn(bulk(
            proxy,
            o.https,
            tls.clone(),
            stop.clone(),
            counts.errors.clone(),
        )));
        workers.push(tokio::spawn(tunnels(
            proxy,
            o.echo,
            stop.clone(),
            counts.errors.clone(),
        )));
        let mix = crate::soak_mix::Shared {
            stop: stop.clone(),
            errors: counts.errors.clone(),
        };
        let h2_tls = client_config(&ca_pem, &[b"h2", b"http/1.1"]);
        workers.push(tokio::spawn(crate::soak_mix::plain(
            d.http.unwrap(),
            o.plain,
            mix.clone(),
            counts.plain.clone(),
        )));
        workers.push(tokio::spawn(crate::soak_mix::h2(
            proxy,
            o.proto,
            h2_tls.clone(),
            mix.clone(),
            counts.h2.clone(),
        )));
        workers.push(tokio::spawn(crate::soak_mix::sse(
            proxy,
            o.proto,
            h2_tls,
            mix.clone(),
            counts.sse.clone(),
        )));
        workers.push(tokio::spawn(crate::soak_mix::ws(
            proxy,
            o.ws,
            tls,
            mix,
            counts.ws.clone(),
        )));
        let mut ctl = d.client().await;
        // Only what the hold step waits for: every transaction would otherwise be queued in
        // this client for the whole run (a 30-minute run grew the benchmark itself to 24 GB).
        let _ = ctl
            .cmd(json!({"command": "subscribe", "event_type": "pending_request.created"}))
            .await;
        Target {
            label: label.to_string(),
            d,
            pid,
            proxy,
            ctl: Some(ctl),
            workers,
            counts,
            idle,
            holds: 0,
            samples: Vec::new(),
        }
    }

    /// Takes a sample, `at` after the traffic started.
    pub async fn sample(&mut self, at: Duration) {
        let Some(ctl) = self.ctl.as_mut() else {
            return;
        };
        let st = ctl.query(json!({"command": "status"})).await;
        self.samples.push(Sample {
            tasks: st["alive_tasks"].as_u64().unwrap_or(0),
            at,
            rss_kib: rss_kib(self.pid).0,
            fds: fds(self.pid),
            threads: threads(self.pid),
            requests: self.counts.requests.load(Ordering::Relaxed),
        });
    }

    /// One held connection, allowed and its rule deleted.
    pub async fn hold(&mut self) {
        let Some(ctl) = self.ctl.as_mut() else {
            return;
        };
        if hold_and_allow(ctl, self.proxy).await {
            self.holds += 1;
        } else {
            self.counts.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Reads a page of the activity list.
    pub async fn list(&mut self) {
        if let Some(ctl) = self.ctl.as_mut() {
            let _ = ctl
                .query(json!({"command": "list_activity", "limit": 200}))
                .await;
        }
    }

    /// Waits for the workers (the stop flag is set) and closes the control connection.
    pub async fn quiesce(&mut self) {
        for w in self.workers.drain(..) {
            let _ = w.await;
        }
        if let Some(ctl) = self.ctl.take() {
            ctl.close().await;
        }
    }
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
