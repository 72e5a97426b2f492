//! One control-WebSocket connection: connect with the bearer token, read the greeting, send
//! commands with a fresh `request_id`, read replies and events.
//!
//! The daemon tells a wrong token apart from a network failure only by closing the upgraded
//! socket with code 4001, so `connect` reads the first frame before it reports success.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use greyproxy_protocol::{
    CLOSE_UNAUTHORIZED, ClientMessage, Command, EventEnvelope, Reply, RequestId, ServerMessage,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::stdio::{ChildStream, StdioCommand, explain};

/// How long connecting (TCP, upgrade and greeting) may take before the daemon counts as down.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where and how to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `ws://host:port/ws`.
    pub url: String,
    /// Bearer token, if any.
    pub token: Option<String>,
}

/// What a control connection runs over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The control WebSocket over TCP.
    Ws(Endpoint),
    /// The stdio of a command that reaches a control socket (`ssh HOST greyproxyd attach`):
    /// the SSH login authenticates, so no token is sent.
    Stdio(StdioCommand),
}

impl From<Endpoint> for Target {
    fn from(ep: Endpoint) -> Target {
        Target::Ws(ep)
    }
}

impl Target {
    /// The URL, or the command's label, for messages.
    pub fn label(&self) -> &str {
        match self {
            Target::Ws(ep) => &ep.url,
            Target::Stdio(c) => &c.label,
        }
    }
}

/// Any byte stream a control connection runs over.
pub(crate) trait Duplex: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Duplex for T {}

/// Why a connection could not be made or was lost.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientError {
    /// TCP connect, upgrade or I/O failed, or timed out.
    #[error("cannot reach the daemon at {url}: {detail}")]
    Unreachable {
        /// The URL tried.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// The daemon closed with 4001: missing or wrong token.
    #[error("unauthorized: the daemon at {0} refused the control token")]
    Unauthorized(String),
    /// The daemon sent something that is not the control protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A command transport (ssh) ended without a control connection; the message says why.
    #[error("{0}")]
    Refused(String),
    /// The connection closed.
    #[error("connection closed{}", .0.as_deref().map(|r| format!(": {r}")).unwrap_or_default())]
    Closed(Option<String>),
}

impl ClientError {
    /// The daemon or the transport refused this client (token, peer uid, ssh login, no
    /// daemon there), as opposed to a connection that failed or was lost.
    pub(crate) fn is_refusal(&self) -> bool {
        matches!(self, ClientError::Unauthorized(_) | ClientError::Refused(_))
    }
}

/// A message read from the daemon.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Incoming {
    /// A direct reply (also `lagged`).
    Reply(Reply),
    /// A broadcast event.
    Event(EventEnvelope),
}

type Ws = WebSocketStream<Box<dyn Duplex>>;

/// An open, authenticated control connection.
pub(crate) struct Connection {
    ws: Ws,
    url: String,
    next_id: i64,
    /// Daemon version from the greeting.
    pub(crate) server_version: String,
    /// Protocol version from the greeting.
    pub(crate) protocol_version: u32,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("url", &self.url)
            .field("server_version", &self.server_version)
            .finish()
    }
}

fn unreachable(url: &str, detail: impl std::fmt::Display) -> ClientError {
    ClientError::Unreachable {
        url: url.to_string(),
        detail: detail.to_string(),
    }
}

/// Connects, authenticates and reads the greeting, all within [`CONNECT_TIMEOUT`].
pub(crate) async fn connect(ep: &Endpoint) -> Result<Connection, ClientError> {
    connect_to(&Target::Ws(ep.clone())).await
}

/// [`connect`] over any [`Target`]. An ssh command gets [`SSH_CONNECT_TIMEOUT`]: a login over
/// a slow link takes longer than a local TCP connect.
pub(crate) async fn connect_to(target: &Target) -> Result<Connection, ClientError> {
    let limit = match target {
        Target::Ws(_) => CONNECT_TIMEOUT,
        Target::Stdio(_) => SSH_CONNECT_TIMEOUT,
    };
    match tokio::time::timeout(limit, connect_inner(target)).await {
        Ok(r) => r,
        Err(_) => Err(unreachable(target.label(), "timed out")),
    }
}

/// How long an ssh login, `greyproxyd attach` and the greeting may take.
pub(crate) const SSH_CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

async fn connect_inner(target: &Target) -> Result<Connection, ClientError> {
    // tungstenite's default limits (64 MiB messages), as before: the daemon's replies may be
    // large (a long conversation is megabytes of JSON); only what clients send is capped.
    let config = None;
    let ws = match target {
        Target::Ws(ep) => {
            let mut req = ep
                .url
                .as_str()
                .into_client_request()
                .map_err(|e| unreachable(&ep.url, format!("invalid URL: {e}")))?;
            if let Some(t) = &ep.token {
                let v = HeaderValue::from_str(&format!("Bearer {t}"))
                    .map_err(|_| unreachable(&ep.url, "the token contains invalid characters"))?;
                req.headers_mut().insert("Authorization", v);
            }
            let uri = req.uri();
            if uri.scheme_str() != Some("ws") {
                return Err(unreachable(&ep.url, "only ws:// URLs are supported"));
            }
            let host = uri.host().unwrap_or_default().trim_matches(['[', ']']);
            let port = uri.port_u16().unwrap_or(80);
            let tcp = TcpStream::connect((host, port))
                .await
                .map_err(|e| unreachable(&ep.url, e))?;
            let _ = tcp.set_nodelay(true);
            let io: Box<dyn Duplex> = Box::new(tcp);
            let (ws, _) = tokio_tungstenite::client_async_with_config(req, io, config)
                .await
                .map_err(|e| unreachable(&ep.url, e))?;
            ws
        }
        Target::Stdio(cmd) => {
            let child = ChildStream::spawn(cmd).map_err(|e| unreachable(&cmd.label, e))?;
            let stderr = child.stderr();
            let req = "ws://localhost/ws"
                .into_client_request()
                .map_err(|e| unreachable(&cmd.label, e))?;
            let why = |stderr: &std::sync::Mutex<String>| {
                let text = stderr.lock().map(|t| t.clone()).unwrap_or_default();
                ClientError::Refused(explain(&text, &cmd.label))
            };
            // The handshake needs the child's first bytes; when the child fails instead, its
            // stderr says why, so let it finish writing before reading it.
            let hs = {
                let io: Box<dyn Duplex> = Box::new(child);
                tokio_tungstenite::client_async_with_config(req, io, config).await
            };
            match hs {
                Ok((ws, _)) => ws,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    return Err(why(&stderr));
                }
            }
        }
    };
    let mut conn = Connection {
        ws,
        url: target.label().to_string(),
        next_id: 0,
        server_version: String::new(),
        protocol_version: 0,
    };
    match conn.recv().await? {
        Incoming::Reply(Reply::Connected {
            server_version,
            protocol_version,
            ..
        }) => {
            conn.server_version = server_version;
            conn.protocol_version = protocol_version;
            Ok(conn)
        }
        other => Err(ClientError::Protocol(format!(
            "expected the connected greeting, got {other:?}"
        ))),
    }
}

impl Connection {
    /// Sends a command with a fresh integer `request_id` and returns that id.
    pub(crate) async fn send(&mut self, command: Command) -> Result<RequestId, ClientError> {
        self.next_id += 1;
        let id = RequestId::Num(self.next_id);
        let msg = ClientMessage {
            request_id: Some(id.clone()),
            command,
        };
        self.ws
            .send(Message::text(msg.encode()))
            .await
            .map_err(|e| unreachable(&self.url, e))?;
        Ok(id)
    }

    /// Reads the next reply or event. Cancel-safe: a message is never lost when the future is
    /// dropped before it completes (the stream keeps it).
    pub(crate) async fn recv(&mut self) -> Result<Incoming, ClientError> {
        loop {
            let frame = match self.ws.next().await {
                None => return Err(ClientError::Closed(None)),
                Some(Err(e)) => return Err(unreachable(&self.url, e)),
                Some(Ok(f)) => f,
            };
            let text = match frame {
                Message::Text(t) => t.as_str().to_string(),
                Message::Binary(b) => String::from_utf8_lossy(&b).into_owned(),
                Message::Close(Some(f)) if u16::from(f.code) == CLOSE_UNAUTHORIZED => {
                    return Err(ClientError::Unauthorized(self.url.clone()));
                }
                Message::Close(f) => {
                    return Err(ClientError::Closed(
                        f.map(|f| format!("{} {}", u16::from(f.code), f.reason)),
                    ));
                }
                // Pings are answered by tungstenite itself on the next read or write.
                _ => continue,
            };
            return match ServerMessage::decode(&text) {
                Ok(ServerMessage::Reply(r)) => Ok(Incoming::Reply(r)),
                Ok(ServerMessage::Event(e)) => Ok(Incoming::Event(e)),
                Ok(_) => Err(ClientError::Protocol("unexpected message".into())),
                Err(e) => Err(ClientError::Protocol(format!("undecodable message: {e}"))),
            };
        }
    }

    /// Sends a command and waits for its reply; events arriving meanwhile are dropped (scripts
    /// that want events use [`Connection::recv`]).
    pub(crate) async fn request(&mut self, command: Command) -> Result<Reply, ClientError> {
        let id = self.send(command).await?;
        loop {
            if let Incoming::Reply(r) = self.recv().await?
                && reply_id(&r) == Some(&id)
            {
                return Ok(r);
            }
        }
    }

    /// Closes politely (errors ignored: the peer may be gone already).
    pub(crate) async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// The `request_id` a reply echoes, if any.
pub(crate) fn reply_id(r: &Reply) -> Option<&RequestId> {
    match r {
        Reply::Pong { request_id, .. }
        | Reply::CommandSuccess { request_id, .. }
        | Reply::Subscribed { request_id, .. }
        | Reply::Unsubscribed { request_id, .. }
        | Reply::NotificationClaimed { request_id, .. }
        | Reply::Result { request_id, .. }
        | Reply::Error { request_id, .. } => request_id.as_ref(),
        _ => None,
    }
}
