//! Accepts control connections: HTTP upgrade on `/ws` only, token check, then a session. The
//! unix socket (`unix.rs`) shares the upgrade and the session, admitting peers by credentials.
//! A missing or wrong token completes the upgrade and closes at once with 4001
//! `unauthorized`, before anything else is sent (so WebSocket clients see a close code
//! rather than an HTTP error they may not surface).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use futures_util::SinkExt;
use greyproxy_protocol::{CLOSE_UNAUTHORIZED, MAX_CONTROL_MESSAGE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};

use tokio_tungstenite::tungstenite::{Message, http};
use tokio_util::sync::CancellationToken;

use super::auth::{presented_token, read_token, token_matches};
use super::handlers::Handler;
use super::session::{ControlIo, run_session};
use crate::accept::accept_loop;

/// How control clients authenticate.
#[derive(Debug, Clone)]
pub(crate) enum AuthMode {
    /// Bearer token from this file (re-read per connection).
    Token(PathBuf),
    /// No authentication (`control.auth = "none"`; loopback-only setups).
    None,
}

/// Accepts control connections until shutdown.
pub(crate) async fn serve(
    listener: TcpListener,
    handler: Arc<Handler>,
    auth: AuthMode,
    shutdown: CancellationToken,
) {
    let stop = shutdown.clone();
    accept_loop(listener, stop, "control", |s, peer| {
        connection(s, peer, handler.clone(), auth.clone(), shutdown.clone())
    })
    .await;
}

fn not_found() -> ErrorResponse {
    let mut r = http::Response::new(Some(
        "greyproxyd: the control endpoint is a WebSocket at /ws\n".to_string(),
    ));
    *r.status_mut() = http::StatusCode::NOT_FOUND;
    r
}

/// The request target of the first request line, peeked so that nothing is consumed (the
/// WebSocket handshake still reads the whole request). `None` when the client closes first or
/// the line is not there within 8 KiB.
async fn peek_target(stream: &TcpStream) -> std::io::Result<Option<String>> {
    let mut buf = vec![0u8; 8192];
    loop {
        let n = stream.peek(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        if let Some(end) = buf[..n].windows(2).position(|w| w == b"\r\n") {
            let line = String::from_utf8_lossy(&buf[..end]);
            return Ok(line.split(' ').nth(1).map(str::to_string));
        }
        if n == buf.len() {
            return Ok(None);
        }
        // Only part of the line has arrived; peek returns at once, so wait a little.
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Answers a plain HTTP request for another path with 404 (tungstenite would drop a request
/// without upgrade headers before our callback sees its path, leaving the client an empty
/// reply). The request head is read first so that closing does not reset the connection.
async fn refuse_not_found(mut stream: TcpStream) {
    let mut head = Vec::new();
    let mut chunk = [0u8; 4096];
    let read_head = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&chunk[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), read_head).await;
    let body = not_found().into_body().unwrap_or_default();
    let resp = format!(
        "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(resp.as_bytes()).await;
    let _ = stream.shutdown().await;
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    handler: Arc<Handler>,
    auth: AuthMode,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let _ = stream.set_nodelay(true);
    let target = tokio::time::timeout(std::time::Duration::from_secs(10), peek_target(&stream))
        .await
        .map_err(|_| anyhow::anyhow!("no request line within 10 s"))??;
    if let Some(t) = target
        && t.starts_with('/')
        && t.split('?').next() != Some("/ws")
    {
        refuse_not_found(stream).await;
        return Ok(());
    }
    upgrade_and_run(
        stream,
        &peer.to_string(),
        Admission::Token {
            refusal: "unauthorized".into(),
        },
        handler,
        &auth,
        shutdown,
    )
    .await
}

/// Whether the presented token (if any) admits a client under `auth`.
fn token_ok(auth: &AuthMode, presented: Option<&str>) -> bool {
    match auth {
        AuthMode::None => true,
        AuthMode::Token(path) => match read_token(path) {
            Ok(expected) => presented.is_some_and(|p| token_matches(p, &expected)),
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "cannot read control token; refusing client");
                false
            }
        },
    }
}

/// How a connection is admitted besides the token.
#[derive(Debug, Clone)]
pub(crate) enum Admission {
    /// The token decides (TCP clients, and unix peers their credentials did not admit);
    /// `refusal` is the close reason sent with 4001 when it is missing or wrong.
    Token {
        /// Close reason.
        refusal: String,
    },
    /// Admitted by the peer's credentials on the unix socket: no token needed.
    Peer,
}

/// The WebSocket upgrade on `stream` (request path `/ws`), the admission check, then the
/// session. `peer` names the client in logs.
pub(crate) async fn upgrade_and_run<S: ControlIo>(
    stream: S,
    peer: &str,
    admission: Admission,
    handler: Arc<Handler>,
    auth: &AuthMode,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut presented: Option<String> = None;
    // The error type is fixed by tungstenite's callback signature.
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        if req.uri().path() != "/ws" {
            return Err(not_found());
        }
        let authz = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        presented = presented_token(authz, req.uri().query());
        Ok(resp)
    };
    let config = WebSocketConfig::default()
        .read_buffer_size(crate::net::READ_CHUNK)
        .max_message_size(Some(MAX_CONTROL_MESSAGE))
        .max_frame_size(Some(MAX_CONTROL_MESSAGE));
    let handshake = tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config));
    let mut ws = tokio::time::timeout(std::time::Duration::from_secs(10), handshake)
        .await
        .map_err(|_| anyhow::anyhow!("websocket handshake timed out"))??;
    let refusal = match admission {
        Admission::Peer => None,
        Admission::Token { refusal } => (!token_ok(auth, presented.as_deref())).then_some(refusal),
    };
    if let Some(reason) = refusal {
        tracing::info!(%peer, %reason, "control client refused: missing or wrong token");
        let frame = CloseFrame {
            code: CloseCode::from(CLOSE_UNAUTHORIZED),
            reason: reason.into(),
        };
        let _ = ws.send(Message::Close(Some(frame))).await;
        let _ = ws.close(None).await;
        return Ok(());
    }
    tracing::debug!(%peer, "control client connected");
    run_session(ws, handler, shutdown).await;
    tracing::debug!(%peer, "control client disconnected");
    Ok(())
}
