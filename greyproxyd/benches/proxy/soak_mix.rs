//! The soak's protocol workers: HTTP/2 requests, SSE streams and WebSocket echoes through the
//! MITM (the origins of `protocols_load.rs` and `protocols_ws.rs`), and plain-HTTP requests
//! through the proxy's forwarding, each on connections that
//! are replaced now and then so that the daemon keeps opening, recording and closing them —
//! a WebSocket's upgrade row is completed at close, an SSE response at its end.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rustls::ClientConfig;
use tokio_tungstenite::tungstenite::Message;

use crate::client::Via;
use crate::protocols_load::{STALL, senders, sse_stream};
use crate::protocols_ws::{ws_msg, ws_open};

/// What every worker shares: the stop flag, its unit count and the error count.
#[derive(Clone)]
pub struct Shared {
    pub stop: Arc<AtomicBool>,
    pub errors: Arc<AtomicU64>,
}

impl Shared {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Counts a failure and backs off briefly, so a broken path does not spin.
    async fn failed(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// 8 concurrent streams of `GET /json` on one HTTP/2 connection, a new connection every 2 000
/// requests; `done` counts requests.
pub async fn h2(
    via: Via,
    origin: SocketAddr,
    tls: Arc<ClientConfig>,
    s: Shared,
    done: Arc<AtomicU64>,
) {
    let authority = origin.to_string();
    while !s.stopped() {
        let Ok((conns, _)) = senders(via, origin, tls.clone(), 8).await else {
            s.failed().await;
            continue;
        };
        let mut tasks = Vec::new();
        for mut c in conns {
            let (s, done, authority) = (s.clone(), done.clone(), authority.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..250 {
                    if s.stopped() {
                        return;
                    }
                    match c.json(&authority).await {
                        Ok(_) => done.fetch_add(1, Ordering::Relaxed),
                        Err(_) => {
                            s.failed().await;
                            return;
                        }
                    };
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    }
}

/// SSE streams of 100 events (200 µs apart) one after another on one connection, a new
/// connection every 20 streams; `done` counts events.
pub async fn sse(
    via: Via,
    origin: SocketAddr,
    tls: Arc<ClientConfig>,
    s: Shared,
    done: Arc<AtomicU64>,
) {
    let authority = origin.to_string();
    while !s.stopped() {
        let Ok((mut c, _)) = senders(via, origin, tls.clone(), 1).await else {
            s.failed().await;
            continue;
        };
        let mut c = c.remove(0);
        for _ in 0..20 {
            if s.stopped() {
                return;
            }
            let each = || {
                done.fetch_add(1, Ordering::Relaxed);
            };
            if sse_stream(&mut c, &authority, 100, 200, each)
                .await
                .is_err()
            {
                s.failed().await;
                break;
            }
        }
    }
}

/// WebSocket echoes of 1 KiB JSON messages, one at a time, a new WebSocket (closed cleanly)
/// every 1 000 messages; `done` counts round trips.
pub async fn ws(
    via: Via,
    origin: SocketAddr,
    tls: Arc<ClientConfig>,
    s: Shared,
    done: Arc<AtomicU64>,
) {
    let mut seq = 0u64;
    while !s.stopped() {
        let Ok(mut w) = ws_open(via, origin, tls.clone()).await else {
            s.failed().await;
            continue;
        };
        for _ in 0..1000 {
            if s.stopped() {
                break;
            }
            seq += 1;
            let msg = ws_msg(seq);
            let ok = w.send(Message::text(msg.clone())).await.is_ok()
                && matches!(
                    tokio::time::timeout(STALL, w.next()).await,
                    Ok(Some(Ok(Message::Text(t)))) if t.as_str() == msg
                );
            if !ok {
                s.failed().await;
                break;
            }
            done.fetch_add(1, Ordering::Relaxed);
        }
        let _ = w.close(None).await;
    }
}

/// Plain-HTTP `GET`s in absolute form through the proxy's forwarding (recorded as `http://`),
/// keep-alive, a new connection every 50 requests; `done` counts requests.
pub async fn plain(proxy: SocketAddr, origin: SocketAddr, s: Shared, done: Arc<AtomicU64>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let req = format!("GET http://{origin}/soak HTTP/1.1\r\nHost: {origin}\r\n\r\n");
    let want = format!("hello from {origin} GET /soak");
    while !s.stopped() {
        let Ok(mut c) = tokio::net::TcpStream::connect(proxy).await else {
            s.failed().await;
            continue;
        };
        for _ in 0..50 {
            if s.stopped() {
                return;
            }
            let mut got = Vec::new();
            let ok = c.write_all(req.as_bytes()).await.is_ok()
                && tokio::time::timeout(STALL, async {
                    let mut buf = [0u8; 512];
                    while !got.ends_with(want.as_bytes()) {
                        match c.read(&mut buf).await {
                            Ok(0) | Err(_) => return false,
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                        }
                    }
                    true
                })
                .await
                .unwrap_or(false);
            if !ok {
                s.failed().await;
                break;
            }
            done.fetch_add(1, Ordering::Relaxed);
        }
    }
}
