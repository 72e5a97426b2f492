//! Accepts control connections: HTTP upgrade on `/ws` only, token check, then a session.
//! A missing or wrong token completes the upgrade and closes at once with 4001
//! `unauthorized`, before anything else is sent (so WebSocket clients see a close code
//! rather than an HTTP error they may not surface).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use futures_util::SinkExt;
use greyproxy_protocol::{CLOSE_UNAUTHORIZED, MAX_CONTROL_MESSAGE};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, http};
use tokio_util::sync::CancellationToken;

use super::auth::{presented_token, read_token, token_matches};
use super::handlers::Handler;
use super::session::run_session;

/// How control clients authenticate.
#[derive(Debug, Clone)]
pub enum AuthMode {
    /// Bearer token from this file (re-read per connection).
    Token(PathBuf),
    /// No authentication (`control.auth = "none"`; loopback-only setups).
    None,
}

/// Accepts control connections until shutdown.
pub async fn serve(
    listener: TcpListener,
    handler: Arc<Handler>,
    auth: AuthMode,
    shutdown: CancellationToken,
) {
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "control accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => return,
        };
        let handler = handler.clone();
        let auth = auth.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(stream, peer, handler, auth, shutdown).await {
                tracing::debug!(%peer, error = %e, "control connection ended");
            }
        });
    }
}

fn not_found() -> ErrorResponse {
    let mut r = http::Response::new(Some(
        "greyproxyd: the control endpoint is a WebSocket at /ws\n".to_string(),
    ));
    *r.status_mut() = http::StatusCode::NOT_FOUND;
    r
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    handler: Arc<Handler>,
    auth: AuthMode,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let _ = stream.set_nodelay(true);
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
        .max_message_size(Some(MAX_CONTROL_MESSAGE))
        .max_frame_size(Some(MAX_CONTROL_MESSAGE));
    let handshake = tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config));
    let mut ws = tokio::time::timeout(std::time::Duration::from_secs(10), handshake)
        .await
        .map_err(|_| anyhow::anyhow!("websocket handshake timed out"))??;
    let authorized = match &auth {
        AuthMode::None => true,
        AuthMode::Token(path) => match read_token(path) {
            Ok(expected) => presented
                .as_deref()
                .is_some_and(|p| token_matches(p, &expected)),
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "cannot read control token; refusing client");
                false
            }
        },
    };
    if !authorized {
        tracing::info!(%peer, "control client refused: missing or wrong token");
        let frame = CloseFrame {
            code: CloseCode::from(CLOSE_UNAUTHORIZED),
            reason: "unauthorized".into(),
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
