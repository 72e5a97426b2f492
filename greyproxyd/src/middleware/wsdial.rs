//! The WebSocket transport: the daemon dials the middleware (`ws://` or `wss://`, upstream TLS
//! verified like every other origin), optionally with one extra header on the upgrade, and
//! exchanges one JSON document per text frame. Text and binary frames are both accepted from
//! the middleware; pings are answered by the library.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_util::sync::CancellationToken;

use super::link::{Ended, IN_QUEUE, Inbound, Link, OUT_QUEUE};
use super::stdio::MAX_LINE;

/// How long dialling (TCP, TLS and the upgrade) may take.
pub(crate) const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Splits an `auth_header` value at its first `:` into a header; `None` without a colon (the
/// value is ignored, as greyproxy does) or for an invalid name/value.
pub(crate) fn parse_auth_header(s: &str) -> Option<(String, String)> {
    let (k, v) = s.split_once(':')?;
    let (k, v) = (k.trim(), v.trim());
    if k.is_empty() {
        return None;
    }
    Some((k.to_string(), v.to_string()))
}

/// Why dialling a middleware failed; the text becomes its `last_error`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DialError {
    /// Dialling took longer than [`DIAL_TIMEOUT`].
    #[error("dial timed out after {} s", DIAL_TIMEOUT.as_secs())]
    Timeout,
    /// The URL does not parse as a WebSocket request.
    #[error("bad url: {0}")]
    Url(Box<tungstenite::Error>),
    /// The `auth_header` name is not a header name.
    #[error("auth_header: {0}")]
    AuthName(#[from] tungstenite::http::header::InvalidHeaderName),
    /// The `auth_header` value is not a header value.
    #[error("auth_header: {0}")]
    AuthValue(#[from] tungstenite::http::header::InvalidHeaderValue),
    /// Neither `ws://` nor `wss://` (`None`: no scheme).
    #[error("unsupported scheme {0:?} (want ws:// or wss://)")]
    Scheme(Option<String>),
    /// The URL names no host.
    #[error("url has no host")]
    NoHost,
    /// TCP connect failed.
    #[error("connect {host}:{port}: {source}")]
    Connect {
        /// Host as in the URL.
        host: String,
        /// Port.
        port: u16,
        /// Why.
        source: std::io::Error,
    },
    /// The host is not usable as a TLS server name.
    #[error("bad TLS server name")]
    ServerName,
    /// The TLS handshake failed.
    #[error("TLS to {host}:{port}: {source}")]
    Tls {
        /// Host as in the URL.
        host: String,
        /// Port.
        port: u16,
        /// Why.
        source: std::io::Error,
    },
    /// The WebSocket upgrade failed.
    #[error("upgrade: {0}")]
    Upgrade(Box<tungstenite::Error>),
}

/// Dials `url` and wires the socket up as a [`Link`].
pub(crate) async fn dial(
    url: &str,
    auth: Option<&(String, String)>,
    tls: Arc<rustls::ClientConfig>,
) -> Result<Link, DialError> {
    tokio::time::timeout(DIAL_TIMEOUT, dial_inner(url, auth, tls))
        .await
        .map_err(|_| DialError::Timeout)?
}

async fn dial_inner(
    url: &str,
    auth: Option<&(String, String)>,
    tls: Arc<rustls::ClientConfig>,
) -> Result<Link, DialError> {
    let mut req = url
        .into_client_request()
        .map_err(|e| DialError::Url(Box::new(e)))?;
    if let Some((k, v)) = auth {
        let name = HeaderName::from_bytes(k.as_bytes())?;
        let value = HeaderValue::from_str(v)?;
        req.headers_mut().insert(name, value);
    }
    let uri = req.uri().clone();
    let secure = match uri.scheme_str() {
        Some("ws") => false,
        Some("wss") => true,
        other => return Err(DialError::Scheme(other.map(str::to_string))),
    };
    let host = uri.host().ok_or(DialError::NoHost)?.to_string();
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
    let bare = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let tcp = TcpStream::connect((bare.as_str(), port))
        .await
        .map_err(|source| DialError::Connect {
            host: host.clone(),
            port,
            source,
        })?;
    let _ = tcp.set_nodelay(true);
    let config = WebSocketConfig::default()
        .read_buffer_size(crate::net::READ_CHUNK)
        .max_message_size(Some(MAX_LINE))
        .max_frame_size(Some(MAX_LINE));
    if secure {
        let name = crate::net::server_name(&bare).ok_or(DialError::ServerName)?;
        let tls = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|source| DialError::Tls { host, port, source })?;
        let (ws, _) = tokio_tungstenite::client_async_with_config(req, tls, Some(config))
            .await
            .map_err(|e| DialError::Upgrade(Box::new(e)))?;
        Ok(pump(ws))
    } else {
        let (ws, _) = tokio_tungstenite::client_async_with_config(req, tcp, Some(config))
            .await
            .map_err(|e| DialError::Upgrade(Box::new(e)))?;
        Ok(pump(ws))
    }
}

fn pump<S>(ws: WebSocketStream<S>) -> Link
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut stream) = ws.split();
    let close = CancellationToken::new();
    let (out_tx, mut out_rx) = mpsc::channel::<String>(OUT_QUEUE);
    let (in_tx, in_rx) = mpsc::channel::<Inbound>(IN_QUEUE);
    let rclose = close.clone();
    tokio::spawn(async move {
        let end = loop {
            let msg = tokio::select! {
                m = stream.next() => m,
                _ = rclose.cancelled() => break Ended::Closed,
            };
            match msg {
                Some(Ok(Message::Text(t))) => {
                    if in_tx.send(Ok(t.as_bytes().to_vec())).await.is_err() {
                        break Ended::Closed;
                    }
                }
                Some(Ok(Message::Binary(b))) => {
                    if in_tx.send(Ok(b.to_vec())).await.is_err() {
                        break Ended::Closed;
                    }
                }
                Some(Ok(Message::Close(f))) => {
                    break match f {
                        Some(f) => Ended::SocketClosedWith {
                            code: f.code.into(),
                            reason: f.reason.to_string(),
                        },
                        None => Ended::SocketClosed,
                    };
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => break Ended::WebSocket(Box::new(e)),
                None => break Ended::ConnectionClosed,
            }
        };
        let _ = in_tx.send(Err(end)).await;
        rclose.cancel();
    });
    let wclose = close.clone();
    let reaper = tokio::spawn(async move {
        loop {
            tokio::select! {
                m = out_rx.recv() => {
                    let Some(m) = m else { break };
                    if sink.send(Message::text(m)).await.is_err() {
                        wclose.cancel();
                        break;
                    }
                }
                _ = wclose.cancelled() => break,
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
    });
    Link::new(out_tx, in_rx, None, close, reaper)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_header_splits_at_the_first_colon() {
        assert_eq!(
            parse_auth_header(" X-Secret : s:3 "),
            Some(("X-Secret".into(), "s:3".into()))
        );
        assert_eq!(parse_auth_header("nocolon"), None);
        assert_eq!(parse_auth_header(""), None);
    }
}
