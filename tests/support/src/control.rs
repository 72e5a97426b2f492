//! A real control-WebSocket client for tests: commands with request ids, replies matched by
//! id, and events kept in a backlog until a test asks for them.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Message, http::HeaderValue};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for an expected message.
pub const WAIT: Duration = Duration::from_secs(10);

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Any byte stream a control connection can run over: TCP, the control unix socket, or the
/// stdio of `greyproxyd attach`.
pub trait Duplex: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Duplex for T {}

/// A connected control client.
pub struct Control {
    ws: WebSocketStream<Box<dyn Duplex>>,
    backlog: VecDeque<Value>,
    next_id: u64,
    /// The `connected` greeting.
    pub greeting: Value,
    /// Close frame received, if the server closed.
    pub closed: Option<Option<CloseFrame>>,
}

/// Opens the WebSocket with an optional bearer token; returns the raw stream.
pub async fn open(url: &str, token: Option<&str>) -> anyhow::Result<Ws> {
    let mut req = url.into_client_request()?;
    if let Some(t) = token {
        req.headers_mut().insert(
            "Authorization",
            HeaderValue::from_str(&format!("Bearer {t}"))?,
        );
    }
    let (ws, _) = tokio_tungstenite::connect_async(req).await?;
    Ok(ws)
}

/// Reads until the server closes; returns the close frame (None if closed without one).
pub async fn expect_close(ws: &mut Ws) -> Option<CloseFrame> {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await {
            Ok(Some(Ok(Message::Close(f)))) => return f,
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(_))) | Ok(None) => return None,
            Err(_) => panic!("server did not close"),
        }
    }
}

impl Control {
    /// Connects (plain `ws://` only) and reads the greeting.
    pub async fn connect(url: &str, token: Option<&str>) -> anyhow::Result<Control> {
        let uri: http::Uri = url.parse()?;
        let host = uri
            .host()
            .ok_or_else(|| anyhow::anyhow!("no host in {url}"))?;
        let port = uri.port_u16().unwrap_or(80);
        let tcp = TcpStream::connect((host, port)).await?;
        Control::over(Box::new(tcp), url, token).await
    }

    /// Connects to a control unix socket with no token (the peer's uid admits it).
    pub async fn unix(path: &std::path::Path) -> anyhow::Result<Control> {
        let s = UnixStream::connect(path).await?;
        Control::over(Box::new(s), "ws://localhost/ws", None).await
    }

    /// Runs `greyproxyd attach ARGS…` and speaks the protocol over its stdin/stdout; the
    /// child ends when this client closes (its stdin reaches end of file).
    pub async fn attach(bin: &std::path::Path, args: &[&str]) -> anyhow::Result<Control> {
        let mut cmd = tokio::process::Command::new(bin);
        cmd.arg("attach").args(args);
        Control::command(cmd).await
    }

    /// Runs `cmd` (a `greyproxyd attach`, maybe wrapped: another user, ssh) and speaks the
    /// protocol over its stdin/stdout.
    pub async fn command(mut cmd: tokio::process::Command) -> anyhow::Result<Control> {
        let mut child = cmd
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        let io = tokio::io::join(
            child
                .stdout
                .take()
                .ok_or_else(|| anyhow::anyhow!("no stdout"))?,
            child
                .stdin
                .take()
                .ok_or_else(|| anyhow::anyhow!("no stdin"))?,
        );
        Control::over(Box::new(io), "ws://localhost/ws", None).await
    }

    /// The WebSocket handshake for `url` over `stream`, then the greeting.
    pub async fn over(
        stream: Box<dyn Duplex>,
        url: &str,
        token: Option<&str>,
    ) -> anyhow::Result<Control> {
        let mut req = url.into_client_request()?;
        if let Some(t) = token {
            req.headers_mut().insert(
                "Authorization",
                HeaderValue::from_str(&format!("Bearer {t}"))?,
            );
        }
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::client_async(req, stream))
            .await
            .map_err(|_| anyhow::anyhow!("WebSocket handshake timed out"))??;
        let mut c = Control {
            ws,
            backlog: VecDeque::new(),
            next_id: 0,
            greeting: Value::Null,
            closed: None,
        };
        let hello = c
            .read_raw(WAIT)
            .await
            .ok_or_else(|| anyhow::anyhow!("no greeting"))?;
        anyhow::ensure!(hello["type"] == "connected", "unexpected greeting {hello}");
        c.greeting = hello;
        Ok(c)
    }

    /// Next message from the socket (ignoring pings), or None on timeout/close.
    async fn read_raw(&mut self, wait: Duration) -> Option<Value> {
        loop {
            match tokio::time::timeout(wait, self.ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => {
                    return Some(serde_json::from_str(t.as_str()).expect("server sends JSON"));
                }
                Ok(Some(Ok(Message::Close(f)))) => {
                    self.closed = Some(f);
                    return None;
                }
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(_))) | Ok(None) => {
                    self.closed.get_or_insert(None);
                    return None;
                }
                Err(_) => return None,
            }
        }
    }

    /// Sends raw text.
    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text.to_string())).await.unwrap();
    }

    /// Sends a command (a `request_id` is added) and returns its reply; events that arrive in
    /// the meantime are kept for [`Control::event`].
    pub async fn cmd(&mut self, mut v: Value) -> Value {
        self.next_id += 1;
        let id = format!("t{}", self.next_id);
        v["request_id"] = json!(id);
        self.send_text(&v.to_string()).await;
        self.reply_for(&id).await
    }

    /// Waits for the reply carrying `request_id`.
    pub async fn reply_for(&mut self, id: &str) -> Value {
        loop {
            let m = self
                .read_raw(WAIT)
                .await
                .unwrap_or_else(|| panic!("no reply for {id}"));
            if m["request_id"] == json!(id) {
                return m;
            }
            self.backlog.push_back(m);
        }
    }

    /// Like [`Control::cmd`] but asserts a `result` reply and returns its `data`.
    pub async fn query(&mut self, v: Value) -> Value {
        let r = self.cmd(v).await;
        assert_eq!(r["type"], "result", "query failed: {r}");
        r["data"].clone()
    }

    /// The next message of any kind (backlog first), or None within `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<Value> {
        if let Some(m) = self.backlog.pop_front() {
            return Some(m);
        }
        self.read_raw(wait).await
    }

    /// Waits for the first event of `ty` whose data satisfies `pred`; other messages are kept.
    pub async fn event_where(&mut self, ty: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self
            .backlog
            .iter()
            .position(|m| m["type"] == ty && pred(&m["data"]))
        {
            return self.backlog.remove(i).unwrap();
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let m = self.read_raw(left).await.unwrap_or_else(|| {
                panic!("no {ty} event within {WAIT:?}; backlog {:?}", self.backlog)
            });
            if m["type"] == ty && pred(&m["data"]) {
                return m;
            }
            self.backlog.push_back(m);
        }
    }

    /// Waits for the next event of `ty`.
    pub async fn event(&mut self, ty: &str) -> Value {
        self.event_where(ty, |_| true).await
    }

    /// Collects every message arriving within `wait` (backlog included).
    pub async fn drain(&mut self, wait: Duration) -> Vec<Value> {
        let mut out: Vec<Value> = self.backlog.drain(..).collect();
        while let Some(m) = self.read_raw(wait).await {
            out.push(m);
        }
        out
    }

    /// Waits for a pending request for `host` (and port) to appear, via events or listing.
    pub async fn pending_for(&mut self, host: &str, port: u16) -> Value {
        let ev = self
            .event_where("pending_request.created", |d| {
                d["destination_host"] == host && d["destination_port"] == port
            })
            .await;
        ev["data"].clone()
    }

    /// Closes the connection politely.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}
