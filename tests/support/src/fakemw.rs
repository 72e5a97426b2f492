//! A scripted fake external middleware for the middleware tests, one API for both transports.
//!
//! * WebSocket ([`FakeMw::ws`]): a WebSocket server on `127.0.0.1:0` that the daemon dials
//!   (`--middleware ws://…`); each upgrade request is recorded ([`FakeConn::upgrade`]).
//! * stdio ([`FakeMw::stdio`]): the daemon spawns `<python> fakemw_relay.py 127.0.0.1:PORT`
//!   (`--middleware-cmd`), which connects back to this listener and relays bytes exactly
//!   (stdin → socket, socket → stdout). The relay first reports its pid, process group and
//!   environment ([`FakeConn::meta`]); relay options ([`FakeMw::relay_args`]) make it print a
//!   banner, write stderr lines, spawn a port-holding grandchild or ignore stdin EOF.
//!
//! A test either drives connections itself ([`FakeMw::accept`], [`FakeConn::hello`],
//! [`FakeConn::recv_json`], [`FakeConn::send_text`]…) or lets [`FakeMw::serve`] answer every
//! connection with a hello and a scripted responder ([`Served`]).

pub mod conn;
pub mod env;
pub mod example;
pub mod origin;
pub mod serve;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

pub use conn::{FakeConn, Recv, Upgrade};
pub use serve::{Frame, Served};

/// The exact proxy hello.
pub const PROXY_HELLO: &str = r#"{"type":"hello","version":1}"#;

/// The relay script.
pub const RELAY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fakemw_relay.py");

pub use crate::python::python;

/// The test case a request message is for: the `case=` query parameter of its `uri` (empty
/// when it has none). The middleware tests tag each request with one so that a scripted
/// responder can answer each case differently.
pub fn case(m: &Value) -> String {
    let uri = m["uri"].as_str().unwrap_or("");
    uri.split_once("case=")
        .map(|(_, c)| c.split('&').next().unwrap_or("").to_string())
        .unwrap_or_default()
}

/// Which transport a fake speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// The daemon dials a WebSocket.
    Ws,
    /// The daemon spawns a child and speaks NDJSON on its stdio.
    Stdio,
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Transport::Ws => "ws",
            Transport::Stdio => "stdio",
        })
    }
}

/// Aborts a task when dropped.
#[derive(Debug)]
pub struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A fake middleware endpoint; accepted connections queue up for [`FakeMw::accept`].
#[derive(Debug)]
pub struct FakeMw {
    /// Its transport.
    pub transport: Transport,
    /// Where it listens.
    pub addr: SocketAddr,
    conns: tokio::sync::Mutex<mpsc::UnboundedReceiver<FakeConn>>,
    /// Accept times of every connection so far.
    pub accepts: Arc<Mutex<Vec<Instant>>>,
    relay_args: Vec<String>,
    _task: AbortOnDrop,
}

impl FakeMw {
    /// A WebSocket fake.
    pub async fn ws() -> FakeMw {
        FakeMw::new(Transport::Ws).await
    }

    /// A stdio fake.
    pub async fn stdio() -> FakeMw {
        FakeMw::new(Transport::Stdio).await
    }

    /// A fake of either transport.
    pub async fn new(transport: Transport) -> FakeMw {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let accepts: Arc<Mutex<Vec<Instant>>> = Arc::default();
        let acc = accepts.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = l.accept().await {
                let at = Instant::now();
                let (tx, acc) = (tx.clone(), acc.clone());
                tokio::spawn(async move {
                    let conn = match transport {
                        Transport::Ws => accept_ws(tcp, at).await,
                        Transport::Stdio => FakeConn::stdio(tcp, at).await,
                    };
                    if let Some(c) = conn {
                        acc.lock().unwrap().push(at);
                        let _ = tx.send(c);
                    }
                });
            }
        });
        FakeMw {
            transport,
            addr,
            conns: tokio::sync::Mutex::new(rx),
            accepts,
            relay_args: Vec::new(),
            _task: AbortOnDrop(task),
        }
    }

    /// stdio: extra relay options (`--banner T`, `--stderr T`, `--grandchild`, `--ignore-eof`).
    pub fn relay_args(mut self, args: &[&str]) -> FakeMw {
        self.relay_args.extend(args.iter().map(|s| s.to_string()));
        self
    }

    /// `ws://127.0.0.1:PORT/middleware`.
    pub fn url(&self) -> String {
        format!("ws://{}/middleware", self.addr)
    }

    /// The relay's argv (stdio).
    pub fn argv(&self) -> Vec<String> {
        let mut v = vec![
            python().to_string(),
            RELAY.to_string(),
            self.addr.to_string(),
        ];
        v.extend(self.relay_args.iter().cloned());
        v
    }

    /// The relay's command line for `--middleware-cmd` (each word single-quoted).
    pub fn command_line(&self) -> String {
        self.argv()
            .iter()
            .map(|a| format!("'{}'", a.replace('\'', "")))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// `serve` arguments configuring this fake: `--middleware URL` or `--middleware-cmd CMD`.
    pub fn cli_args(&self) -> Vec<String> {
        match self.transport {
            Transport::Ws => vec!["--middleware".into(), self.url()],
            Transport::Stdio => vec!["--middleware-cmd".into(), self.command_line()],
        }
    }

    /// A `[[middleware]]` TOML table for this fake plus `extra` lines (e.g. `timeout_ms = 100`).
    pub fn toml(&self, extra: &str) -> String {
        let target = match self.transport {
            Transport::Ws => format!("url = {}", json!(self.url())),
            Transport::Stdio => format!("command = {}", json!(self.argv())),
        };
        format!("[[middleware]]\n{target}\n{extra}\n")
    }

    /// The next accepted connection; panics after 10 s.
    pub async fn accept(&self) -> FakeConn {
        self.accept_within(Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("{} fake: the daemon did not connect", self.transport))
    }

    /// The next accepted connection within `wait`.
    pub async fn accept_within(&self, wait: Duration) -> Option<FakeConn> {
        let mut rx = self.conns.lock().await;
        tokio::time::timeout(wait, rx.recv()).await.ok().flatten()
    }

    /// How many connections were accepted so far.
    pub fn accept_count(&self) -> usize {
        self.accepts.lock().unwrap().len()
    }
}

#[allow(clippy::result_large_err)] // the callback's signature is tungstenite's
async fn accept_ws(tcp: tokio::net::TcpStream, at: Instant) -> Option<FakeConn> {
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
    let seen: Arc<Mutex<Upgrade>> = Arc::default();
    let s2 = seen.clone();
    let cb = move |req: &Request, resp: Response| {
        let mut u = s2.lock().unwrap();
        u.path = req.uri().to_string();
        u.headers = req
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        Ok(resp)
    };
    let ws = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::accept_hdr_async(tcp, cb),
    )
    .await
    .ok()?
    .ok()?;
    let up = seen.lock().unwrap().clone();
    Some(FakeConn::ws(ws, up, at))
}

/// A decision answering `msg`: `{"type":"decision","id":…,"action":…}`.
pub fn decision(msg: &Value, action: &str) -> Value {
    json!({"type":"decision","id":msg["id"],"action":action})
}

/// A decision answering `msg` with extra fields merged in (`status_code`, `body`, `tags`…).
pub fn decision_with(msg: &Value, action: &str, extra: Value) -> Value {
    let mut d = decision(msg, action);
    if let (Some(o), Value::Object(e)) = (d.as_object_mut(), extra) {
        o.extend(e);
    }
    d
}

/// The usual answer: `allow` to requests, `passthrough` to responses.
pub fn allow(msg: &Value) -> Value {
    if msg["type"] == "http-response" {
        decision(msg, "passthrough")
    } else {
        decision(msg, "allow")
    }
}

/// A hello declaring `hooks` (`["http-request", "http-response"]`), no filters.
pub fn hello(name: &str, hooks: &[&str]) -> Value {
    let hooks: Vec<Value> = hooks.iter().map(|h| json!({"type": h})).collect();
    json!({"type":"hello","name":name,"min_version":1,"max_version":1,"hooks":hooks})
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn b64(data: impl AsRef<[u8]>) -> String {
    let data = data.as_ref();
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes a JSON body field: None for `null`/absent, panics on bad base64.
pub fn unb64(v: &Value) -> Option<Vec<u8>> {
    let s = v.as_str()?;
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let mut acc = 0u32;
    let mut bits = 0;
    for ch in s.bytes().filter(|c| *c != b'=') {
        let d = B64
            .iter()
            .position(|b| *b == ch)
            .unwrap_or_else(|| panic!("not base64: {s:?}")) as u32;
        acc = (acc << 6) | d;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// A JSON body field decoded as text (lossy); None for `null`.
pub fn body_text(v: &Value) -> Option<String> {
    unb64(v).map(|b| String::from_utf8_lossy(&b).into_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_round_trips() {
        for s in ["", "a", "ab", "abc", "abcd", "hello world!"] {
            assert_eq!(super::unb64(&super::b64(s).into()).unwrap(), s.as_bytes());
        }
        assert_eq!(super::b64("ab"), "YWI=");
        assert_eq!(super::b64("a"), "YQ==");
    }
}
