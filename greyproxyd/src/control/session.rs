//! One control connection: greeting, commands, filtered events, heartbeat.
//!
//! One task per connection selects over incoming frames, bus events and the heartbeat. Events
//! come from the bus's bounded ring: a client that does not keep up gets one `lagged` message
//! saying how many it missed, and the proxy never waits for it. Writes have a deadline, so a
//! client that stops reading is disconnected rather than holding resources forever.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use greyproxy_protocol::reply::Lagged;
use greyproxy_protocol::{ClientMessage, PROTOCOL_VERSION, Reply};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::CancellationToken;

use super::handlers::{Handler, SessionState};
use crate::time::now_rfc3339;

/// Server ping interval and pong deadline.
#[derive(Debug, Clone, Copy)]
pub struct Heartbeat {
    /// Time between server pings.
    pub ping_every: Duration,
    /// A ping not answered within this closes the connection.
    pub pong_within: Duration,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat {
            ping_every: Duration::from_secs(30),
            pong_within: Duration::from_secs(10),
        }
    }
}
/// A write that takes longer than this closes the connection.
const WRITE_DEADLINE: Duration = Duration::from_secs(10);

/// What a control connection runs over: TCP (`/ws`) or the unix socket.
pub(crate) trait ControlIo: AsyncRead + AsyncWrite + Unpin + Send {}
impl<S: AsyncRead + AsyncWrite + Unpin + Send> ControlIo for S {}

async fn send<S: ControlIo>(ws: &mut WebSocketStream<S>, msg: Message) -> bool {
    matches!(
        tokio::time::timeout(WRITE_DEADLINE, ws.send(msg)).await,
        Ok(Ok(()))
    )
}

async fn send_reply<S: ControlIo>(ws: &mut WebSocketStream<S>, reply: &Reply) -> bool {
    match serde_json::to_string(reply) {
        Ok(text) => send(ws, Message::text(text)).await,
        Err(_) => true,
    }
}

async fn close<S: ControlIo>(ws: &mut WebSocketStream<S>, code: CloseCode, reason: &str) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let _ = tokio::time::timeout(WRITE_DEADLINE, ws.send(Message::Close(Some(frame)))).await;
}

/// Runs a session until the client leaves, misbehaves or the daemon stops.
pub(crate) async fn run_session<S: ControlIo>(
    mut ws: WebSocketStream<S>,
    handler: Arc<Handler>,
    shutdown: CancellationToken,
) {
    let mut events = handler.policy.events().subscribe();
    let mut state = SessionState::default();
    let hello = Reply::Connected {
        message: "Connected to proxy event stream".into(),
        timestamp: now_rfc3339(),
        protocol_version: PROTOCOL_VERSION,
        server_version: env!("CARGO_PKG_VERSION").into(),
    };
    if !send_reply(&mut ws, &hello).await {
        return;
    }
    let hb = handler.heartbeat;
    let mut next_ping = Instant::now() + hb.ping_every;
    let mut pong_deadline: Option<Instant> = None;
    loop {
        let heartbeat_at = pong_deadline.unwrap_or(next_ping);
        tokio::select! {
            incoming = ws.next() => {
                let msg = match incoming {
                    None => break,
                    Some(Ok(m)) => m,
                    Some(Err(WsError::Capacity(e))) => {
                        tracing::debug!(error = %e, "control message too large");
                        close(&mut ws, CloseCode::Size, "message too large").await;
                        break;
                    }
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "control read failed");
                        break;
                    }
                };
                let text = match &msg {
                    Message::Text(t) => t.as_str().to_string(),
                    Message::Binary(b) => String::from_utf8_lossy(b).into_owned(),
                    Message::Pong(_) => {
                        pong_deadline = None;
                        continue;
                    }
                    Message::Close(_) => break,
                    _ => continue,
                };
                let reply = match ClientMessage::decode(&text) {
                    Ok(cmd) => handler.handle(cmd, &mut state).await,
                    Err((request_id, e)) => Reply::Error {
                        error: e.to_string(),
                        timestamp: now_rfc3339(),
                        request_id,
                    },
                };
                if !send_reply(&mut ws, &reply).await {
                    break;
                }
            }
            ev = events.recv() => {
                let ok = match ev {
                    Ok(p) => !state.wants(p.event_type) || send(&mut ws, Message::text(p.json.clone())).await,
                    Err(RecvError::Lagged(n)) => {
                        tracing::debug!(missed = n, "control client lagged");
                        send_reply(&mut ws, &Reply::Lagged { data: Lagged { missed: n } }).await
                    }
                    Err(RecvError::Closed) => false,
                };
                if !ok {
                    break;
                }
            }
            _ = tokio::time::sleep_until(heartbeat_at) => {
                if pong_deadline.is_some() {
                    tracing::debug!("control client missed its pong; closing");
                    close(&mut ws, CloseCode::Away, "heartbeat timeout").await;
                    break;
                }
                if !send(&mut ws, Message::Ping(Vec::new().into())).await {
                    break;
                }
                pong_deadline = Some(Instant::now() + hb.pong_within);
                next_ping = Instant::now() + hb.ping_every;
            }
            _ = shutdown.cancelled() => {
                close(&mut ws, CloseCode::Away, "daemon shutting down").await;
                break;
            }
        }
    }
    // `state.claim` drops here: the claim is released however the session ended.
}
