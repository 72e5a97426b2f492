//! One accepted fake-middleware connection, the same API over WebSocket and stdio.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use super::PROXY_HELLO;

/// The WebSocket upgrade request as the fake received it.
#[derive(Debug, Clone, Default)]
pub struct Upgrade {
    /// Request target (path and query).
    pub path: String,
    /// Headers in order, names lower-cased.
    pub headers: Vec<(String, String)>,
}

impl Upgrade {
    /// Values of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// What one receive produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recv {
    /// A WebSocket text frame, or a stdio line (its bytes include the trailing `\n`).
    Text(Vec<u8>),
    /// A WebSocket binary frame.
    Binary(Vec<u8>),
    /// The proxy closed the connection (WS close / EOF, stdio: the relay's stdin closed).
    Closed,
    /// Nothing within the wait.
    Timeout,
}

enum Io {
    Ws(Box<WebSocketStream<TcpStream>>),
    Stdio {
        r: OwnedReadHalf,
        w: OwnedWriteHalf,
        buf: Vec<u8>,
        eof: bool,
    },
}

/// An accepted connection from the daemon.
pub struct FakeConn {
    io: Io,
    /// When the fake accepted it (for a stdio fake: when the relay connected back).
    pub accepted_at: Instant,
    /// WebSocket: the upgrade request.
    pub upgrade: Option<Upgrade>,
    /// stdio: what the relay reported (`pid`, `pgid`, `env`, `grandchild_pid`, `grandchild_port`).
    pub meta: Option<Value>,
}

impl std::fmt::Debug for FakeConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeConn")
            .field("accepted_at", &self.accepted_at)
            .field("upgrade", &self.upgrade)
            .field("meta", &self.meta.as_ref().map(|m| &m["pid"]))
            .finish()
    }
}

impl FakeConn {
    pub(super) fn ws(ws: WebSocketStream<TcpStream>, upgrade: Upgrade, at: Instant) -> FakeConn {
        FakeConn {
            io: Io::Ws(Box::new(ws)),
            accepted_at: at,
            upgrade: Some(upgrade),
            meta: None,
        }
    }

    /// A relay connection: reads the relay's meta line first.
    pub(super) async fn stdio(tcp: TcpStream, at: Instant) -> Option<FakeConn> {
        tcp.set_nodelay(true).ok()?;
        let (r, w) = tcp.into_split();
        let mut c = FakeConn {
            io: Io::Stdio {
                r,
                w,
                buf: Vec::new(),
                eof: false,
            },
            accepted_at: at,
            upgrade: None,
            meta: None,
        };
        let Recv::Text(line) = c.recv(Duration::from_secs(10)).await else {
            return None;
        };
        c.meta = Some(serde_json::from_slice(&line).ok()?);
        Some(c)
    }

    /// True for a WebSocket connection.
    pub fn is_ws(&self) -> bool {
        matches!(self.io, Io::Ws(_))
    }

    /// The relay's pid (stdio).
    pub fn pid(&self) -> Option<u32> {
        self.meta.as_ref()?["pid"].as_u64().map(|p| p as u32)
    }

    /// Next message within `wait` (cancel-safe).
    pub async fn recv(&mut self, wait: Duration) -> Recv {
        match tokio::time::timeout(wait, self.recv_inner()).await {
            Ok(r) => r,
            Err(_) => Recv::Timeout,
        }
    }

    async fn recv_inner(&mut self) -> Recv {
        match &mut self.io {
            Io::Ws(ws) => loop {
                match ws.next().await {
                    Some(Ok(Message::Text(t))) => return Recv::Text(t.as_bytes().to_vec()),
                    Some(Ok(Message::Binary(b))) => return Recv::Binary(b.to_vec()),
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return Recv::Closed,
                    Some(Ok(_)) => continue,
                }
            },
            Io::Stdio { r, buf, eof, .. } => loop {
                if let Some(p) = buf.iter().position(|b| *b == b'\n') {
                    return Recv::Text(buf.drain(..=p).collect());
                }
                if *eof {
                    return Recv::Closed;
                }
                let mut chunk = vec![0u8; 64 * 1024];
                match r.read(&mut chunk).await {
                    Ok(0) | Err(_) => *eof = true,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            },
        }
    }

    /// The next message parsed as JSON; panics on close, timeout (10 s) or bad JSON.
    pub async fn recv_json(&mut self) -> Value {
        self.next_json(Duration::from_secs(10))
            .await
            .expect("a message from the proxy")
    }

    /// The next message parsed as JSON within `wait`, None on close or timeout.
    pub async fn next_json(&mut self, wait: Duration) -> Option<Value> {
        match self.recv(wait).await {
            Recv::Text(b) | Recv::Binary(b) => Some(
                serde_json::from_slice(&b)
                    .unwrap_or_else(|e| panic!("proxy sent non-JSON {e}: {b:?}")),
            ),
            Recv::Closed | Recv::Timeout => None,
        }
    }

    /// Waits up to `wait` for the proxy to close, discarding messages; true if it closed.
    pub async fn wait_closed(&mut self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left).await {
                Recv::Closed => return true,
                Recv::Timeout => return false,
                _ => continue,
            }
        }
    }

    /// Sends one text message (stdio: the text and `\n`).
    pub async fn send_text(&mut self, text: &str) {
        match &mut self.io {
            Io::Ws(ws) => {
                let _ = ws.send(Message::text(text.to_string())).await;
            }
            Io::Stdio { w, .. } => {
                let mut line = text.as_bytes().to_vec();
                line.push(b'\n');
                let _ = w.write_all(&line).await;
            }
        }
    }

    /// Sends one JSON message.
    pub async fn send_json(&mut self, v: &Value) {
        self.send_text(&v.to_string()).await;
    }

    /// WebSocket only: sends a binary frame.
    pub async fn send_binary(&mut self, data: &[u8]) {
        match &mut self.io {
            Io::Ws(ws) => {
                let _ = ws.send(Message::binary(data.to_vec())).await;
            }
            Io::Stdio { .. } => panic!("send_binary on a stdio fake"),
        }
    }

    /// stdio only: writes raw bytes to the proxy (no newline added).
    pub async fn send_raw(&mut self, data: &[u8]) {
        match &mut self.io {
            Io::Stdio { w, .. } => {
                let _ = w.write_all(data).await;
                let _ = w.flush().await;
            }
            Io::Ws(_) => panic!("send_raw on a WebSocket fake"),
        }
    }

    /// Reads the proxy hello (asserting its exact bytes) and answers with `hello`.
    pub async fn hello(&mut self, hello: &Value) {
        let raw = self.proxy_hello().await;
        assert_eq!(raw.as_slice(), self.expected_hello().as_slice());
        self.send_json(hello).await;
    }

    /// Reads the first message exactly as the proxy sent it (stdio: with its `\n`).
    pub async fn proxy_hello(&mut self) -> Vec<u8> {
        match self.recv(Duration::from_secs(10)).await {
            Recv::Text(b) => b,
            other => panic!("expected the proxy hello as text, got {other:?}"),
        }
    }

    /// The exact bytes of the proxy hello on this transport.
    pub fn expected_hello(&self) -> Vec<u8> {
        let mut v = PROXY_HELLO.as_bytes().to_vec();
        if !self.is_ws() {
            v.push(b'\n');
        }
        v
    }

    /// Closes from the fake's side (WS close frame; stdio: the relay exits, the proxy sees EOF).
    pub async fn close(mut self) {
        match &mut self.io {
            Io::Ws(ws) => {
                let _ = ws.as_mut().close(None).await;
            }
            Io::Stdio { w, .. } => {
                let _ = w.shutdown().await;
            }
        }
    }
}
