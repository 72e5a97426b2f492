//! The WebSocket relay after a 101: bytes are copied both ways untouched (masking, extensions,
//! everything), and a copy of each chunk goes through one bounded queue (both directions, in
//! relay order) to a [`Tap`] per direction that records one transaction per message (`WS_REQ`
//! client→server, `WS_RESP` server→client). If a tap falls behind or meets something it
//! cannot parse, capture for the connection stops with a recorded reason; the relay never
//! waits for capture.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use bytes::Bytes;
use greyproxy_protocol::{Transaction, TransactionResult};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::exchange::CaptureCtx;
use super::ws::{Direction, Event, Limits, MessageOpcode, Negotiated, Tap};
use crate::time::{now_secs, rfc3339};

/// Chunks queued per direction for the taps before capture gives up (× 64 KiB reads at most).
const TAP_QUEUE: usize = 256;
/// Read size of each relay direction.
const RELAY_BUF: usize = 64 * 1024;

/// What both directions share.
struct Shared {
    ctx: Arc<CaptureCtx>,
    /// The upgrade row, completed at the end.
    upgrade: Mutex<Transaction>,
    /// Message order across both directions.
    index: AtomicU64,
}

impl Shared {
    fn stop_capture(&self, reason: String) {
        let mut up = self.upgrade.lock().unwrap_or_else(|p| p.into_inner());
        if up.ws_capture_stopped.is_none() {
            tracing::debug!(upgrade = up.id, %reason, "websocket capture stopped");
            up.ws_capture_stopped = Some(reason);
        }
    }

    fn record(&self, dir: Direction, ev: Event) {
        let (opcode, payload, wire_size, decoded_size, compressed, truncated) = match ev {
            Event::Message {
                opcode,
                payload,
                wire_size,
                decoded_size,
                compressed,
                truncated,
            } => (
                opcode,
                payload,
                wire_size,
                decoded_size,
                compressed,
                truncated,
            ),
            Event::Close { code, reason } => {
                let mut up = self.upgrade.lock().unwrap_or_else(|p| p.into_inner());
                if up.ws_close_code.is_none() {
                    up.ws_close_code = code;
                    up.ws_close_reason = Some(reason).filter(|r| !r.is_empty());
                }
                return;
            }
            Event::Ping { .. } | Event::Pong { .. } => return,
        };
        let (template, url) = {
            let up = self.upgrade.lock().unwrap_or_else(|p| p.into_inner());
            (up.clone(), up.url.clone())
        };
        let ws_url = url
            .replacen("https://", "wss://", 1)
            .replacen("http://", "ws://", 1);
        let (body, encoding) = match (opcode, String::from_utf8(payload)) {
            (MessageOpcode::Text, Ok(text)) => (text, "text"),
            (_, Ok(text)) => (
                base64::engine::general_purpose::STANDARD.encode(text.as_bytes()),
                "base64",
            ),
            (_, Err(e)) => (
                base64::engine::general_purpose::STANDARD.encode(e.as_bytes()),
                "base64",
            ),
        };
        let t = Transaction {
            id: self.ctx.recorder().next_id(),
            timestamp: rfc3339(now_secs()),
            container_name: template.container_name,
            destination_host: template.destination_host,
            destination_port: template.destination_port,
            method: match dir {
                Direction::ClientToServer => "WS_REQ",
                Direction::ServerToClient => "WS_RESP",
            }
            .into(),
            url: ws_url,
            http_version: template.http_version,
            status_code: Some(101),
            rule_id: template.rule_id,
            result: TransactionResult::Auto,
            request_body: Some(body),
            request_body_encoding: Some(encoding.into()),
            request_body_size: Some(decoded_size as u64),
            request_body_truncated: truncated,
            upgrade_id: Some(template.id),
            opcode: Some(
                match opcode {
                    MessageOpcode::Text => "text",
                    MessageOpcode::Binary => "binary",
                }
                .into(),
            ),
            message_index: Some(self.index.fetch_add(1, Ordering::Relaxed)),
            wire_size: Some(wire_size as u64),
            compressed,
            ..Default::default()
        };
        self.ctx.recorder().record(t);
    }
}

/// Reads from one side and writes to the other, handing a copy of each chunk to the tap queue
/// (dropping capture, never bytes, when the queue is full). The copy is queued before the
/// bytes are written, and both directions share the queue, so the taps see the chunks in an
/// order the peers could have seen them: a reply is never recorded before its request.
async fn pump<R, W>(
    mut from: R,
    mut to: W,
    tap: Option<mpsc::Sender<(Direction, Bytes)>>,
    shared: Arc<Shared>,
    dir: Direction,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut tap = tap;
    let mut buf = vec![0u8; RELAY_BUF];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(t) = &tap
            && t.try_send((dir, Bytes::copy_from_slice(&buf[..n])))
                .is_err()
        {
            shared.stop_capture(format!("capture fell behind ({dir:?})"));
            tap = None;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// Decodes both directions' copies, in the order they were relayed (message indexes follow the
/// conversation). A direction whose tap fails stops being decoded; the other goes on.
async fn tap_task(
    mut rx: mpsc::Receiver<(Direction, Bytes)>,
    mut taps: [Option<Tap>; 2],
    shared: Arc<Shared>,
) {
    let mut events = Vec::new();
    while let Some((dir, chunk)) = rx.recv().await {
        let slot = &mut taps[dir as usize];
        let Some(tap) = slot else { continue };
        events.clear();
        let res = tap.feed_into(&chunk, &mut events);
        for ev in events.drain(..) {
            shared.record(dir, ev);
        }
        if let Err(e) = res {
            shared.stop_capture(format!("{dir:?}: {e}"));
            *slot = None;
        }
    }
    for mut tap in taps.into_iter().flatten() {
        if let Err(e) = tap.finish() {
            shared.stop_capture(format!("{:?}: {e}", tap.direction()));
        }
    }
}

/// Relays an upgraded WebSocket connection and records its messages. `upgrade` is the 101
/// transaction (already recorded); it is written again, completed, when both sides are done.
pub(crate) async fn relay(
    ctx: Arc<CaptureCtx>,
    client: Upgraded,
    server: Upgraded,
    upgrade: Transaction,
    negotiated: Negotiated,
) {
    let limits = Limits {
        max_message: ctx.recorder().body_cap,
        ..Limits::default()
    };
    let shared = Arc::new(Shared {
        ctx,
        upgrade: Mutex::new(upgrade),
        index: AtomicU64::new(0),
    });
    let (c_read, c_write) = tokio::io::split(TokioIo::new(client));
    let (s_read, s_write) = tokio::io::split(TokioIo::new(server));
    // Indexed by `Direction as usize`.
    let taps = [Direction::ClientToServer, Direction::ServerToClient]
        .map(|dir| Some(Tap::new(dir, negotiated, limits)));
    let (tx, rx) = mpsc::channel(2 * TAP_QUEUE);
    let taps = tokio::spawn(tap_task(rx, taps, shared.clone()));
    let up = pump(
        c_read,
        s_write,
        Some(tx.clone()),
        shared.clone(),
        Direction::ClientToServer,
    );
    let down = pump(
        s_read,
        c_write,
        Some(tx),
        shared.clone(),
        Direction::ServerToClient,
    );
    // `down` is polled first: bytes the server sent with the 101 (already buffered) are queued
    // before anything the client sent once it had the 101, as they arrived.
    tokio::join!(down, up);
    // The senders are gone with the pumps: the taps drain what is queued and finish.
    let _ = taps.await;
    let mut row = shared
        .upgrade
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    row.ws_messages = Some(shared.index.load(Ordering::Relaxed));
    if let Some(start) = crate::time::parse_timestamp(&row.timestamp) {
        row.duration_ms = Some(now_secs().saturating_sub(start) * 1000);
    }
    row.is_update = true;
    shared.ctx.recorder().record(row);
}
