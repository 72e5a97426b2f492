//! WebSocket origin and load client of the protocols section (`proxy/protocols.rs`):
//! [`ws_origin`] is a TLS echo server written with tokio-tungstenite (no permessage-deflate: it
//! has none), [`ws_rate`] pipelines [`ws_msg`] JSON text messages over one WebSocket through the
//! path under test and checks every echo byte for byte.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rustls::ClientConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use greyproxy_testkit::tls::{TestCa, server_config};

use crate::client::Via;
use crate::protocols_load::{Load, STALL, padded, tls_open, watch};

/// Bytes of one WebSocket message (JSON text).
pub const MSG: usize = 1024;

/// WebSocket message `seq`: [`MSG`] bytes of JSON text.
pub fn ws_msg(seq: u64) -> String {
    padded(
        format!("{{\"seq\":{seq:012},\"type\":\"delta\",\"text\":\""),
        MSG,
    )
}

/// Starts the WebSocket echo origin on 127.0.0.1 (TLS, ALPN `http/1.1`): every text or binary
/// message comes back unchanged.
pub async fn ws_origin(ca: &TestCa) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(server_config(
        &ca.leaf(&["127.0.0.1", "localhost"]),
        &[b"http/1.1"],
    ));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(ws) = tokio_tungstenite::accept_async(tls).await else {
                    return;
                };
                let (mut tx, mut rx) = ws.split();
                while let Some(Ok(m)) = rx.next().await {
                    if (m.is_text() || m.is_binary()) && tx.send(m).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// A WebSocket client over TLS.
pub type Ws = WebSocketStream<TlsStream<TcpStream>>;

/// Opens a WebSocket to the echo origin (the client config should offer `http/1.1`).
pub async fn ws_open(via: Via, origin: SocketAddr, tls: Arc<ClientConfig>) -> Result<Ws, String> {
    let (s, _) = tls_open(via, origin, tls).await?;
    let url = format!("wss://{origin}/echo");
    let (ws, _) = tokio::time::timeout(STALL, tokio_tungstenite::client_async(url, s))
        .await
        .map_err(|_| "WebSocket handshake stalled".to_string())?
        .map_err(|e| format!("WebSocket handshake: {e}"))?;
    Ok(ws)
}

/// Opens a WebSocket, sends three messages and checks their echoes; returns the ALPN the
/// client negotiated.
pub async fn ws_check(
    via: Via,
    origin: SocketAddr,
    tls: Arc<ClientConfig>,
) -> Result<String, String> {
    let mut ws = ws_open(via, origin, tls).await?;
    let alpn = ws
        .get_ref()
        .get_ref()
        .1
        .alpn_protocol()
        .map_or("none".into(), |p| String::from_utf8_lossy(p).into_owned());
    for seq in 0..3 {
        ws.send(Message::text(ws_msg(seq)))
            .await
            .map_err(|e| format!("send: {e}"))?;
        match tokio::time::timeout(STALL, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) if t.as_str() == ws_msg(seq) => {}
            Ok(Some(Ok(m))) => return Err(format!("echo {seq} differs ({} bytes)", m.len())),
            Ok(Some(Err(e))) => return Err(format!("echo {seq}: {e}")),
            Ok(None) => return Err(format!("closed before echo {seq}")),
            Err(_) => return Err(format!("no echo of message {seq}")),
        }
    }
    let _ = ws.close(None).await;
    Ok(alpn)
}

/// One WebSocket, [`ws_msg`] messages sent with up to `inflight` unanswered, each echo checked
/// byte for byte: `warm`, then `window` measured (round trips completed in the window, with
/// their latency).
pub async fn ws_rate(
    proxy: Option<u32>,
    via: Via,
    origin: SocketAddr,
    tls: Arc<ClientConfig>,
    inflight: usize,
    (warm, window): (Duration, Duration),
) -> Result<Load, String> {
    let (mut tx, mut rx) = ws_open(via, origin, tls).await?.split();
    let sem = Arc::new(Semaphore::new(inflight.max(1)));
    let (sent_tx, mut sent) = mpsc::unbounded_channel::<(u64, Instant)>();
    let start = Instant::now() + warm;
    let end = start + window;
    let s = sem.clone();
    let sender = tokio::spawn(async move {
        let mut seq = 0u64;
        while Instant::now() < end {
            // Closed by the reader when it fails.
            let Ok(p) = s.acquire().await else { break };
            p.forget();
            let _ = sent_tx.send((seq, Instant::now()));
            tx.send(Message::text(ws_msg(seq)))
                .await
                .map_err(|e| format!("send: {e}"))?;
            seq += 1;
        }
        Ok::<_, String>(tx)
    });
    let reader = tokio::spawn(async move {
        let mut micros = Vec::with_capacity(1 << 16);
        let res = async {
            while let Some((seq, t)) = sent.recv().await {
                let m = match tokio::time::timeout(STALL, rx.next()).await {
                    Err(_) => return Err(format!("no echo of message {seq}")),
                    Ok(None) => return Err(format!("closed before echo {seq}")),
                    Ok(Some(m)) => m.map_err(|e| format!("receive: {e}"))?,
                };
                let done = Instant::now();
                match m {
                    Message::Text(t) if t.as_str() == ws_msg(seq) => {}
                    other => return Err(format!("echo {seq} differs ({} bytes)", other.len())),
                }
                if t >= start && done <= end {
                    micros.push((done - t).as_secs_f64() * 1e6);
                }
                sem.add_permits(1);
            }
            Ok(())
        }
        .await;
        sem.close();
        res.map(|()| (micros, rx))
    });
    let mut out = watch(proxy, start, end).await;
    let tx = sender.await.map_err(|e| e.to_string())??;
    let (micros, rx) = reader.await.map_err(|e| e.to_string())??;
    if let Ok(mut ws) = tx.reunite(rx) {
        let _ = ws.close(None).await;
    }
    out.units = micros.len() as u64;
    out.bytes = out.units * MSG as u64;
    out.micros = micros;
    Ok(out)
}
