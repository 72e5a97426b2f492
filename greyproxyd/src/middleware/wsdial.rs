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
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;

use super::link::{IN_QUEUE, Inbound, Link, OUT_QUEUE};
use super::stdio::MAX_LINE;

/// How long dialling (TCP, TLS and the upgrade) may take.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Splits an `auth_header` value at its first `:` into a header; `None` without a colon (the
/// value is ignored, as greyproxy does) or for an invalid name/value.
pub fn parse_auth_header(s: &str) -> Option<(String, String)> {
    let (k, v) = s.split_once(':')?;
    let (k, v) = (k.trim(), v.trim());
    if k.is_empty() {
        return None;
    }
    Some((k.to_string(), v.to_string()))
}

/// Dials `url` and wires the socket up as a [`Link`].
pub async fn dial(
    url: &str,
    auth: Option<&(String, String)>,
    tls: Arc<rustls::ClientConfig>,
) -> Result<Link, String> {
    tokio::time::timeout(DIAL_TIMEOUT, dial_inner(url, auth, tls))
        .await
        .map_err(|_| format!("dial timed out after {} s", DIAL_TIMEOUT.as_secs()))?
}

async fn dial_inner(
    url: &str,
    auth: Option<&(String, String)>,
    tls: Arc<rustls::ClientConfig>,
) -> Result<Link, String> {
    let mut req = url
        .into_client_request()
        .map_err(|e| format!("bad url: {e}"))?;
    if let Some((k, v)) = auth {
        let name = HeaderName::from_bytes(k.as_bytes()).map_err(|e| format!("auth_header: {e}"))?;
        let value = HeaderValue::from_str(v).map_err(|e| format!("auth_header: {e}"))?;
        req.headers_mut().insert(name, value);
    }
    let uri = req.uri().clone();
    let secure = match uri.scheme_str() {
        Some("ws") => false,
        Some("wss") => true,
        other => {
            return Err(format!(
                "unsupported scheme {other:?} (want ws:// or wss://)"
            ));
        }
    };
    let host = uri.host().ok_or("url has no host")?.to_string();
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
    let bare = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let tcp = TcpStream::connect((bare.as_str(), port))
        .await
        .map_err(|e| format!("connect {host}:{port}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let config = WebSocketConfig::default()
        .read_buffer_size(crate::net::READ_CHUNK)
        .max_message_size(Some(MAX_LINE))
        .max_frame_size(Some(MAX_LINE));
    if secure {
        let name = crate::net::server_name(&bare).ok_or("bad TLS server name")?;
        let tls = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS to {host}:{port}: {e}"))?;
        let (ws, _) = tokio_tungstenite::client_async_with_config(req, tls, Some(config))
            .await
            .map_err(|e| format!("upgrade: {e}"))?;
        Ok(pump(ws))
    } else {
        let (ws, _) = tokio_tungstenite::client_async_with_config(req, tcp, Some(config))
            .await
            .map_err(|e| format!("upgrade: {e}"))?;
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
                _ = rclose.cancelled() => break "closed".to_string(),
            };
            match msg {
                Some(Ok(Message::Text(t))) => {
                    if in_tx.send(Ok(t.as_bytes().to_vec())).await.is_err() {
                        break "closed".into();
                    }
                }
                Some(Ok(Message::Binary(b))) => {
                    if in_tx.send(Ok(b.to_vec())).await.is_err() {
                        break "closed".into();
                    }
                }
                Some(Ok(Message::Close(f))) => {
                    break match f {
                        Some(f) => {
                            format!("middleware closed the socket ({} {})", f.code, f.reason)
                        }
                        None => "middleware closed the socket".into(),
                    };
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => break format!("websocket: {e}"),
                None => break "connection closed".into(),
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
