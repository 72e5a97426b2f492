//! The measurements: bulk throughput, allow → release, connection setup.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener as StdListener};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::client::{
    Via, check_established, connect_request, open_async, open_blocking, read_head,
};
use crate::sys::Cpu;
use crate::{BULK_BUF, Cfg, ECHO};

// ---------------------------------------------------------------------------------------------
// 1. Bulk throughput.

/// A local origin that writes `bytes` bytes as fast as it can to every client, then closes.
fn source_origin(bytes: u64) -> SocketAddr {
    let l = StdListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let block: Vec<u8> = (0..BULK_BUF).map(|i| (i % 251) as u8).collect();
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let block = block.clone();
            std::thread::spawn(move || {
                let mut left = bytes;
                while left > 0 {
                    let n = left.min(block.len() as u64) as usize;
                    if s.write_all(&block[..n]).is_err() {
                        return;
                    }
                    left -= n as u64;
                }
            });
        }
    });
    addr
}

/// A local origin that reads until EOF, then answers the byte count (u64 LE) and closes.
fn sink_origin() -> SocketAddr {
    let l = StdListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let mut buf = vec![0u8; BULK_BUF];
                let mut total = 0u64;
                loop {
                    match s.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => total += n as u64,
                        Err(_) => return,
                    }
                }
                let _ = s.write_all(&total.to_le_bytes());
            });
        }
    });
    addr
}

/// Downloads everything the source sends; returns MB/s (10^6 bytes per second).
fn download(via: Via, source: SocketAddr, bytes: u64) -> f64 {
    let t = Instant::now();
    let (mut s, early) = open_blocking(via, source);
    let mut total = early.len() as u64;
    let mut buf = vec![0u8; BULK_BUF];
    loop {
        let n = s.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(total, bytes, "{}: short download", via.name());
    bytes as f64 / secs / 1e6
}

/// Uploads `bytes` bytes and waits for the sink's count; returns MB/s.
fn upload(via: Via, sink: SocketAddr, bytes: u64) -> f64 {
    let block: Vec<u8> = (0..BULK_BUF).map(|i| (i % 253) as u8).collect();
    let t = Instant::now();
    let (mut s, early) = open_blocking(via, sink);
    assert!(early.is_empty());
    let mut left = bytes;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        s.write_all(&block[..n]).unwrap();
        left -= n as u64;
    }
    s.shutdown(Shutdown::Write).unwrap();
    let mut ack = [0u8; 8];
    s.read_exact(&mut ack).unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(
        u64::from_le_bytes(ack),
        bytes,
        "{}: short upload",
        via.name()
    );
    bytes as f64 / secs / 1e6
}

/// The bulk transfers of one path in one direction.
pub struct Throughput {
    /// `download` (origin → client) or `upload`.
    pub direction: &'static str,
    /// The path.
    pub via: Via,
    /// MB/s of each run.
    pub runs: Vec<f64>,
    /// CPU seconds per GB (10^9 bytes) of each run: (benchmark process + daemon, daemon).
    pub cpu: Vec<(f64, f64)>,
}

/// The bulk transfers' origins: a source of `bytes`, a smaller source for the warm-up, a sink.
#[derive(Clone, Copy)]
pub struct BulkOrigins {
    /// Writes `cfg.bytes` to every client.
    pub source: SocketAddr,
    /// Writes the warm-up size to every client.
    pub warm_source: SocketAddr,
    /// Counts what it reads, then answers the count.
    pub sink: SocketAddr,
    warm: u64,
}

impl BulkOrigins {
    /// Starts the three origins (threads of this process).
    pub fn start(cfg: &Cfg) -> BulkOrigins {
        let warm = cfg.bytes.min(64 << 20);
        BulkOrigins {
            source: source_origin(cfg.bytes),
            warm_source: source_origin(warm),
            sink: sink_origin(),
            warm,
        }
    }

    /// Every origin, for a relay that needs one frontend per target.
    pub fn all(&self) -> [SocketAddr; 3] {
        [self.source, self.warm_source, self.sink]
    }
}

/// Bulk transfers over each of `vias` (each with the pid whose CPU is the proxy's), both
/// directions, interleaved.
pub fn throughput(cfg: &Cfg, o: BulkOrigins, vias: Vec<(Via, u32)>) -> Vec<Throughput> {
    let (source, warm_source, sink, warm) = (o.source, o.warm_source, o.sink, o.warm);
    let mut out = Vec::new();
    let all_vias = vias;
    for direction in ["download", "upload"] {
        // tinyproxy closes both directions when the client half-closes, so the upload's
        // acknowledgement (sent after the client's FIN) never arrives: downloads only.
        let vias: Vec<(Via, u32)> = all_vias
            .iter()
            .copied()
            .filter(|(v, _)| direction == "download" || !matches!(v, Via::Peer(..)))
            .collect();
        let mut runs: Vec<Vec<f64>> = vec![Vec::new(); vias.len()];
        let mut cpu: Vec<Vec<(f64, f64)>> = vec![Vec::new(); vias.len()];
        // Warm-up (page cache, TCP autotuning, daemon allocator), not counted.
        for &(via, _) in &vias {
            match direction {
                "download" => download(via, warm_source, warm),
                _ => upload(via, sink, warm),
            };
        }
        // Interleaved so that drift (thermal, neighbours) hits every path alike.
        for _ in 0..cfg.reps {
            for (i, &(via, pid)) in vias.iter().enumerate() {
                let before = Cpu::now(pid);
                let mbs = match direction {
                    "download" => download(via, source, cfg.bytes),
                    _ => upload(via, sink, cfg.bytes),
                };
                let (me, daemon, _, _) = Cpu::now(pid).since(before);
                let gb = cfg.bytes as f64 / 1e9;
                runs[i].push(mbs);
                cpu[i].push(((me + daemon) / gb, daemon / gb));
            }
        }
        for ((&(via, _), runs), cpu) in vias.iter().zip(runs).zip(cpu) {
            out.push(Throughput {
                direction,
                via,
                runs,
                cpu,
            });
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// 2. Allow → release.

/// Allow → release figures, one entry per held request.
pub struct AllowLatency {
    /// Allow sent → the held client has read `200 Connection established`, in ms.
    pub release_ms: Vec<f64>,
    /// Allow sent → `command_success` received, in ms.
    pub reply_ms: Vec<f64>,
    /// Held clients that were released before their own allow (should be 0).
    pub early_releases: usize,
}

/// Holds one CONNECT per destination in `holds`, then allows them one by one over `/ws`.
pub async fn allow_latency(
    d: &greyproxy_testkit::Daemon,
    holds: &[SocketAddr],
    http: SocketAddr,
) -> AllowLatency {
    let mut ws = d.client().await;
    // Every client holds on its own destination (same host, distinct port).
    let mut held = Vec::new();
    for &target in holds {
        held.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(http).await.unwrap();
            s.set_nodelay(true).unwrap();
            s.write_all(connect_request(target).as_bytes())
                .await
                .unwrap();
            let head = read_head(&mut s).await;
            let at = Instant::now();
            check_established(&head);
            at
        }));
    }
    let mut ids = Vec::new();
    for target in holds {
        let p = ws
            .pending_for(&target.ip().to_string(), target.port())
            .await;
        ids.push(p["id"].clone());
    }
    // Let every hold settle (waiter counted, hang-up watch armed) before the first decision.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut out = AllowLatency {
        release_ms: Vec::new(),
        reply_ms: Vec::new(),
        early_releases: 0,
    };
    for (id, task) in ids.into_iter().zip(held) {
        if task.is_finished() {
            out.early_releases += 1;
        }
        let t0 = Instant::now();
        let r = ws.cmd(json!({"command":"allow","pending_id":id})).await;
        let reply = t0.elapsed();
        assert_eq!(r["type"], "command_success", "{r}");
        let released = tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("held client not released within 10 s")
            .unwrap();
        out.release_ms
            .push(released.saturating_duration_since(t0).as_secs_f64() * 1e3);
        out.reply_ms.push(reply.as_secs_f64() * 1e3);
        // Drop the events this decision produced, so the backlog stays small.
        let _ = ws.drain(Duration::ZERO).await;
    }
    ws.close().await;
    out
}

// ---------------------------------------------------------------------------------------------
// 3. Connection setup.

/// Connect, handshake, one echo round trip; returns µs.
async fn one_round_trip(via: Via, target: SocketAddr) -> f64 {
    let t = Instant::now();
    let mut s = open_async(via, target).await;
    s.write_all(ECHO).await.unwrap();
    let mut back = [0u8; ECHO.len()];
    s.read_exact(&mut back).await.unwrap();
    let us = t.elapsed().as_secs_f64() * 1e6;
    assert_eq!(&back, ECHO);
    drop(s);
    us
}

/// Connection setup figures of one path.
pub struct Setup {
    /// The path.
    pub via: Via,
    /// Each connection's connect + handshake + echo round trip, in µs.
    pub micros: Vec<f64>,
    /// Total time spent on this path's connections.
    pub wall: Duration,
}

/// `cfg.conns` sequential connections with one echo round trip per path, interleaved.
pub async fn setup_latency(cfg: &Cfg, target: SocketAddr, vias: &[Via]) -> Vec<Setup> {
    for &via in vias {
        for _ in 0..20 {
            one_round_trip(via, target).await;
        }
    }
    let mut out: Vec<Setup> = vias
        .iter()
        .map(|&via| Setup {
            via,
            micros: Vec::with_capacity(cfg.conns),
            wall: Duration::ZERO,
        })
        .collect();
    for _ in 0..cfg.conns {
        for s in &mut out {
            let t = Instant::now();
            s.micros.push(one_round_trip(s.via, target).await);
            s.wall += t.elapsed();
        }
    }
    out
}
