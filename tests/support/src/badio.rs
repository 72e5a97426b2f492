//! Raw clients for malformed and misbehaving input: plain TCP byte exchanges with the proxy
//! ports, a hand-driven SOCKS5 handshake, and WebSocket connections that a test controls at the
//! frame level (a small receive buffer for a client that falls behind, close codes).

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A WebSocket over a plain TCP stream.
pub type RawWs = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What a raw exchange saw.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Every byte the server sent.
    pub reply: Vec<u8>,
    /// True when the server closed (FIN or reset) within the wait; false on timeout.
    pub closed: bool,
}

impl Outcome {
    /// The reply as (lossy) text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.reply).into_owned()
    }
}

/// Reads until the server closes the connection (EOF or reset) or `wait` passes.
pub async fn read_until_close(s: &mut TcpStream, wait: Duration) -> Outcome {
    let deadline = tokio::time::Instant::now() + wait;
    let mut out = Outcome::default();
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                out.closed = true;
                return out;
            }
            Ok(Ok(n)) => out.reply.extend_from_slice(&buf[..n]),
            Err(_) => return out,
        }
    }
}

/// Connects to `addr`, writes `input` (write errors ignored: the server may hang up first),
/// half-closes the write side when `close_write`, then reads until the server closes.
pub async fn exchange(
    addr: SocketAddr,
    input: &[u8],
    close_write: bool,
    wait: Duration,
) -> Outcome {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(input).await;
    if close_write {
        let _ = s.shutdown().await;
    }
    read_until_close(&mut s, wait).await
}

/// Opens a SOCKS5 connection (no-auth) and sends CONNECT to an IPv4 target; the reply is left
/// unread (the daemon may be holding the connection).
pub async fn socks5_connect_ipv4(proxy: SocketAddr, target: SocketAddr) -> TcpStream {
    let SocketAddr::V4(t) = target else {
        panic!("IPv4 targets only")
    };
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(&[5, 1, 0]).await.unwrap();
    let mut choice = [0u8; 2];
    s.read_exact(&mut choice).await.unwrap();
    assert_eq!(choice, [5, 0], "method selection");
    let mut req = vec![5, 1, 0, 1];
    req.extend_from_slice(&t.ip().octets());
    req.extend_from_slice(&t.port().to_be_bytes());
    s.write_all(&req).await.unwrap();
    s
}

/// Opens the control WebSocket with a receive buffer of `rcvbuf` bytes, so that a client that
/// stops reading fills the socket buffers quickly. The greeting is left unread.
pub async fn ws_small_rcvbuf(url: &str, token: &str, addr: SocketAddr, rcvbuf: u32) -> RawWs {
    let sock = TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(rcvbuf).unwrap();
    let stream = sock.connect(addr).await.unwrap();
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert(
        "Authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    let (ws, _) = tokio_tungstenite::client_async(req, MaybeTlsStream::Plain(stream))
        .await
        .unwrap();
    ws
}

/// What a raw WebSocket read produced.
#[derive(Debug)]
pub enum WsRead {
    /// A text message, parsed as JSON.
    Json(Value),
    /// A close frame with this code (None when the frame carried no code).
    Close(Option<u16>),
    /// The connection ended without a close frame (EOF or reset).
    Gone(String),
    /// Nothing within the wait.
    Timeout,
}

/// Reads the next text or close message, skipping pings and pongs.
pub async fn ws_read(ws: &mut RawWs, wait: Duration) -> WsRead {
    loop {
        match tokio::time::timeout(wait, ws.next()).await {
            Err(_) => return WsRead::Timeout,
            Ok(None) => return WsRead::Gone("end of stream".into()),
            Ok(Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed))) => {
                return WsRead::Gone("closed".into());
            }
            Ok(Some(Err(e))) => return WsRead::Gone(e.to_string()),
            Ok(Some(Ok(Message::Text(t)))) => {
                return WsRead::Json(serde_json::from_str(t.as_str()).expect("server sends JSON"));
            }
            Ok(Some(Ok(Message::Close(f)))) => {
                return WsRead::Close(f.map(|f| u16::from(f.code)));
            }
            Ok(Some(Ok(_))) => continue,
        }
    }
}
