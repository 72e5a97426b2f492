//! A fake middleware that answers every connection by itself: a hello (per connection, so a
//! reconnect can declare different hooks), then a scripted responder per message; everything
//! received is recorded.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::mpsc;

use super::{AbortOnDrop, FakeConn, FakeMw, Recv, Upgrade};
use crate::wait::{POLL, within_sync};

/// What the fake sends back.
#[derive(Debug, Clone)]
pub enum Frame {
    /// One JSON message (WS text frame / stdio line).
    Json(Value),
    /// One text message as is (WS text frame / stdio text + `\n`).
    Text(String),
    /// WebSocket binary frame.
    Binary(Vec<u8>),
    /// stdio: raw bytes, no newline added.
    Raw(Vec<u8>),
    /// Wait before the next frame (the fake reads nothing meanwhile).
    Sleep(Duration),
    /// Close the connection from the fake's side.
    Close,
}

/// The responder: every received message → frames to send (empty = no reply).
pub type Responder = Box<dyn FnMut(&Value) -> Vec<Frame> + Send>;

/// The hello for the n-th connection (from 0); None = never answer the proxy hello.
pub type HelloFn = Box<dyn FnMut(usize) -> Option<Value> + Send>;

/// One connection the fake served.
#[derive(Debug, Clone)]
pub struct ConnRecord {
    /// Accept time.
    pub accepted_at: Instant,
    /// When it ended, if it did.
    pub closed_at: Option<Instant>,
    /// WebSocket upgrade request.
    pub upgrade: Option<Upgrade>,
    /// stdio relay report.
    pub meta: Option<Value>,
    /// The proxy hello exactly as received.
    pub proxy_hello: Vec<u8>,
}

enum Ctl {
    Send(Frame),
    Close,
}

/// A running auto-answering fake; stops when dropped.
pub struct Served {
    /// The fake endpoint (for its URL/command line).
    pub mw: Arc<FakeMw>,
    messages: Arc<Mutex<Vec<Value>>>,
    raw: Arc<Mutex<Vec<Vec<u8>>>>,
    conns: Arc<Mutex<Vec<ConnRecord>>>,
    down: Arc<AtomicBool>,
    ctl: mpsc::UnboundedSender<Ctl>,
    _task: AbortOnDrop,
}

impl std::fmt::Debug for Served {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Served").field("mw", &self.mw).finish()
    }
}

impl FakeMw {
    /// Answers every connection with `hello`, then each message with `responder`.
    pub fn serve(
        self,
        hello: Value,
        responder: impl FnMut(&Value) -> Vec<Frame> + Send + 'static,
    ) -> Served {
        self.serve_with(Box::new(move |_| Some(hello.clone())), Box::new(responder))
    }

    /// Answers every connection with `allow`/`passthrough` after `hello`.
    pub fn serve_allow(self, hello: Value) -> Served {
        self.serve(hello, |m| vec![Frame::Json(super::allow(m))])
    }

    /// Like [`FakeMw::serve`] with a hello chosen per connection.
    pub fn serve_with(self, mut hello: HelloFn, mut responder: Responder) -> Served {
        let mw = Arc::new(self);
        let messages: Arc<Mutex<Vec<Value>>> = Arc::default();
        let raw: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let conns: Arc<Mutex<Vec<ConnRecord>>> = Arc::default();
        let down = Arc::new(AtomicBool::new(false));
        let (ctl, mut ctl_rx) = mpsc::unbounded_channel();
        let (m2, r2, c2, d2, mw2) = (
            messages.clone(),
            raw.clone(),
            conns.clone(),
            down.clone(),
            mw.clone(),
        );
        let task = tokio::spawn(async move {
            let mut n = 0;
            loop {
                let Some(mut conn) = mw2.accept_within(Duration::from_secs(3600)).await else {
                    continue;
                };
                if d2.load(Ordering::SeqCst) {
                    drop(conn);
                    continue;
                }
                // Controls sent while no connection was up are stale.
                while ctl_rx.try_recv().is_ok() {}
                let proxy_hello = match conn.recv(Duration::from_secs(10)).await {
                    Recv::Text(b) | Recv::Binary(b) => b,
                    _ => Vec::new(),
                };
                let idx = {
                    let mut c = c2.lock().unwrap();
                    c.push(ConnRecord {
                        accepted_at: conn.accepted_at,
                        closed_at: None,
                        upgrade: conn.upgrade.clone(),
                        meta: conn.meta.clone(),
                        proxy_hello,
                    });
                    c.len() - 1
                };
                let h = hello(n);
                n += 1;
                if let Some(h) = h {
                    conn.send_json(&h).await;
                }
                let mut conn = Some(conn);
                while let Some(c) = conn.as_mut() {
                    tokio::select! {
                        r = c.recv(Duration::from_secs(3600)) => match r {
                            Recv::Text(b) | Recv::Binary(b) => {
                                r2.lock().unwrap().push(b.clone());
                                let Ok(v) = serde_json::from_slice::<Value>(&b) else {
                                    continue;
                                };
                                m2.lock().unwrap().push(v.clone());
                                for f in responder(&v) {
                                    if !apply(&mut conn, f).await {
                                        break;
                                    }
                                }
                            }
                            Recv::Closed => conn = None,
                            Recv::Timeout => {}
                        },
                        c = ctl_rx.recv() => match c {
                            Some(Ctl::Send(f)) => {
                                apply(&mut conn, f).await;
                            }
                            Some(Ctl::Close) | None => {
                                apply(&mut conn, Frame::Close).await;
                            }
                        },
                    }
                }
                c2.lock().unwrap()[idx].closed_at = Some(Instant::now());
            }
        });
        Served {
            mw,
            messages,
            raw,
            conns,
            down,
            ctl,
            _task: AbortOnDrop(task),
        }
    }
}

/// Sends one frame; false once the connection is gone.
async fn apply(conn: &mut Option<FakeConn>, f: Frame) -> bool {
    let Some(c) = conn.as_mut() else {
        return false;
    };
    match f {
        Frame::Json(v) => c.send_json(&v).await,
        Frame::Text(t) => c.send_text(&t).await,
        Frame::Binary(b) => c.send_binary(&b).await,
        Frame::Raw(b) => c.send_raw(&b).await,
        Frame::Sleep(d) => tokio::time::sleep(d).await,
        Frame::Close => {
            if let Some(c) = conn.take() {
                c.close().await;
            }
            return false;
        }
    }
    true
}

impl Served {
    /// Every message received so far (after the hellos), in order.
    pub fn messages(&self) -> Vec<Value> {
        self.messages.lock().unwrap().clone()
    }

    /// Messages of `type` (`http-request` / `http-response`).
    pub fn of_type(&self, ty: &str) -> Vec<Value> {
        self.messages()
            .into_iter()
            .filter(|m| m["type"] == ty)
            .collect()
    }

    /// Raw bytes of every message received (after the hellos).
    pub fn raw(&self) -> Vec<Vec<u8>> {
        self.raw.lock().unwrap().clone()
    }

    /// Forgets the messages received so far.
    pub fn clear(&self) {
        self.messages.lock().unwrap().clear();
        self.raw.lock().unwrap().clear();
    }

    /// The connections served so far.
    pub fn conns(&self) -> Vec<ConnRecord> {
        self.conns.lock().unwrap().clone()
    }

    /// Waits up to `wait` until `n` messages have arrived; returns them.
    pub async fn wait_messages(&self, n: usize, wait: Duration) -> Vec<Value> {
        within_sync(wait, POLL, || {
            let m = self.messages();
            if m.len() >= n { Ok(m) } else { Err(m) }
        })
        .await
        .unwrap_or_else(|m| m)
    }

    /// Waits up to `wait` until `n` connections were accepted.
    pub async fn wait_conns(&self, n: usize, wait: Duration) -> Vec<ConnRecord> {
        within_sync(wait, POLL, || {
            let c = self.conns();
            if c.len() >= n { Ok(c) } else { Err(c) }
        })
        .await
        .unwrap_or_else(|c| c)
    }

    /// Sends a frame on the current connection.
    pub fn send(&self, f: Frame) {
        let _ = self.ctl.send(Ctl::Send(f));
    }

    /// Closes the current connection from the fake's side.
    pub fn close_current(&self) {
        let _ = self.ctl.send(Ctl::Close);
    }

    /// Down: closes the current connection and drops every new one at once (so the middleware
    /// stays unavailable); up again with `false`.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
        if down {
            self.close_current();
        }
    }
}
