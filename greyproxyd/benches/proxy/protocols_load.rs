//! HTTP origin and load clients of the protocols section (`proxy/protocols.rs`): HTTP/2
//! request rate and SSE streaming, shared by every path (direct, greyproxyd MITM, greyproxyd
//! `--no-mitm`, mitmproxy) so that only the path differs; the WebSocket ones are in
//! `proxy/protocols_ws.rs`.
//!
//! [`proto_origin`] speaks HTTP/2 or HTTP/1.1 over TLS as ALPN chose (it offers both, `h2`
//! first): `/json` answers [`JSON`] with an `x-origin-proto` header naming the HTTP version the
//! origin saw, `/sse?events=N&gap_us=G` streams N [`sse_event`]s as `text/event-stream` without
//! a length (chunked on HTTP/1.1), each event a body frame of its own that the connection
//! flushes before the next (the body yields between events, or sleeps G µs). It is separate
//! from the MITM section's HTTP/1.1 origin so that those figures do not move.
//!
//! Every client opens TLS to the origin's IP directly or through `CONNECT` ([`open_async`]),
//! trusting one root (the test CA, the daemon's or mitmproxy's); each load function runs a
//! warm-up, then a measured window over which CPU and the proxy's peak RSS are taken.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode, Version, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::client::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;

use greyproxy_testkit::tls::{TestCa, server_config};

use crate::client::{Via, open_async};
pub use crate::mitm_load::JSON;
use crate::sys::{Cpu, reset_peak_rss, rss_kib};

/// Bytes of one SSE event's JSON payload; on the wire it is `data: <payload>\n\n`.
pub const EVENT: usize = 200;
/// The longest wait for any single response, event or echo before a path is declared failed.
pub const STALL: Duration = Duration::from_secs(30);

type OBody = UnsyncBoxBody<Bytes, Infallible>;

/// `head` padded with token-like text to `total` bytes, then `"}` closing the JSON.
pub fn padded(mut head: String, total: usize) -> String {
    let words = "lorem ipsum dolor sit amet ";
    while head.len() + 2 < total {
        let k = (total - 2 - head.len()).min(words.len());
        head.push_str(&words[..k]);
    }
    head.push_str("\"}");
    head
}

/// SSE event `i` as sent: `data: ` + an [`EVENT`]-byte chat-completion-chunk JSON + `\n\n`.
pub fn sse_event(i: u64) -> Bytes {
    let json = padded(
        format!("{{\"id\":{i:010},\"object\":\"chat.completion.chunk\",\"delta\":\""),
        EVENT,
    );
    Bytes::from(format!("data: {json}\n\n"))
}

fn query(q: &str, key: &str) -> Option<u64> {
    q.split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

/// `events` SSE events; before each but the first the body yields (so the connection flushes)
/// or sleeps `gap`.
fn sse_body(events: u64, gap: Duration) -> OBody {
    let s = futures_util::stream::unfold(0u64, move |i| async move {
        if i >= events {
            return None;
        }
        if i > 0 {
            if gap.is_zero() {
                tokio::task::yield_now().await;
            } else {
                tokio::time::sleep(gap).await;
            }
        }
        Some((Ok(Frame::data(sse_event(i))), i + 1))
    });
    StreamBody::new(s).boxed_unsync()
}

fn respond(req: &Request<Incoming>) -> Response<OBody> {
    let b = Response::builder();
    match (req.uri().path(), req.uri().query().unwrap_or("")) {
        ("/json", _) => b
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CONTENT_LENGTH, JSON.len())
            .header("x-origin-proto", format!("{:?}", req.version()))
            .body(Full::new(Bytes::from_static(JSON)).boxed_unsync()),
        ("/sse", q) => b
            .header(header::CONTENT_TYPE, "text/event-stream")
            .header(header::CACHE_CONTROL, "no-cache")
            .body(sse_body(
                query(q, "events").unwrap_or(10),
                Duration::from_micros(query(q, "gap_us").unwrap_or(0)),
            )),
        _ => b
            .status(StatusCode::NOT_FOUND)
            .body(Full::new(Bytes::from_static(b"no such route\n")).boxed_unsync()),
    }
    .unwrap()
}

/// Starts the HTTP origin on 127.0.0.1 (certificate from `ca`, ALPN `h2`, `http/1.1`).
pub async fn proto_origin(ca: &TestCa) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(server_config(
        &ca.leaf(&["127.0.0.1", "localhost"]),
        &[b"h2", b"http/1.1"],
    ));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                let svc = service_fn(|req: Request<Incoming>| {
                    let resp = respond(&req);
                    async move { Ok::<_, Infallible>(resp) }
                });
                let io = TokioIo::new(tls);
                let _ = if h2 {
                    hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(io, svc)
                        .await
                } else {
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, svc)
                        .await
                };
            });
        }
    });
    addr
}

// ----- clients -----

/// TLS to `origin` (directly or through `CONNECT` on the proxy in `via`) trusting the roots of
/// `tls`; also the ALPN protocol the client negotiated (`none` when none).
pub async fn tls_open(
    via: Via,
    origin: SocketAddr,
    tls: Arc<ClientConfig>,
) -> Result<(TlsStream<TcpStream>, String), String> {
    let tcp = open_async(via, origin).await;
    let name = ServerName::IpAddress(origin.ip().into());
    let s = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake: {e}"))?;
    let alpn = s
        .get_ref()
        .1
        .alpn_protocol()
        .map_or("none".into(), |p| String::from_utf8_lossy(p).into_owned());
    Ok((s, alpn))
}

/// A request sender: a handle on an HTTP/2 connection (handles share it, one stream each), or
/// an HTTP/1.1 connection of its own when the path did not negotiate `h2`.
pub enum Sender {
    /// HTTP/2.
    H2(http2::SendRequest<Empty<Bytes>>),
    /// HTTP/1.1 (a downgrade).
    H1(http1::SendRequest<Empty<Bytes>>),
}

/// What a path negotiated, end to end.
pub struct Proto {
    /// ALPN the client negotiated with the proxy (or the origin, direct).
    pub alpn: String,
    /// HTTP version of the response the client read.
    pub client: Version,
    /// HTTP version the origin saw (its `x-origin-proto` header).
    pub origin: String,
}

impl Proto {
    /// `h2` end to end.
    pub fn is_h2(&self) -> bool {
        self.alpn == "h2" && self.client == Version::HTTP_2 && self.origin == "HTTP/2.0"
    }
}

impl std::fmt::Display for Proto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tag = if self.is_h2() { "" } else { " **downgraded**" };
        write!(f, "ALPN {}, origin saw {}{tag}", self.alpn, self.origin)
    }
}

/// Opens `n` senders to the HTTP origin: one HTTP/2 connection shared by all when ALPN chose
/// `h2`, else `n` HTTP/1.1 connections; also the ALPN of the first connection.
pub async fn senders(
    via: Via,
    origin: SocketAddr,
    tls: Arc<ClientConfig>,
    n: usize,
) -> Result<(Vec<Sender>, String), String> {
    let (mut out, mut first) = (Vec::new(), None);
    while out.len() < n {
        let (s, alpn) = tls_open(via, origin, tls.clone()).await?;
        first.get_or_insert_with(|| alpn.clone());
        let io = TokioIo::new(s);
        if alpn == "h2" {
            let (send, conn) = http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|e| format!("HTTP/2 handshake: {e}"))?;
            tokio::spawn(conn);
            out.extend((0..n).map(|_| Sender::H2(send.clone())));
            break;
        }
        let (send, conn) = http1::handshake(io)
            .await
            .map_err(|e| format!("HTTP/1.1 handshake: {e}"))?;
        tokio::spawn(conn);
        out.push(Sender::H1(send));
    }
    Ok((out, first.unwrap_or_default()))
}

impl Sender {
    /// Sends `GET path` (an absolute URI on HTTP/2, `Host` on HTTP/1.1); the body is left to
    /// the caller.
    pub async fn get(&mut self, authority: &str, path: &str) -> Result<Response<Incoming>, String> {
        let req = Request::get(format!("https://{authority}{path}"));
        let fut = async {
            match self {
                Sender::H2(s) => {
                    s.ready().await?;
                    s.send_request(req.body(Empty::new()).unwrap()).await
                }
                Sender::H1(s) => {
                    s.ready().await?;
                    let req = req.uri(path).header(header::HOST, authority);
                    s.send_request(req.body(Empty::new()).unwrap()).await
                }
            }
        };
        let resp = tokio::time::timeout(STALL, fut)
            .await
            .map_err(|_| format!("no response in {STALL:?}"))?
            .map_err(|e| format!("request: {e}"))?;
        if resp.status() != StatusCode::OK {
            return Err(format!("status {}", resp.status()));
        }
        Ok(resp)
    }

    /// `GET /json`, whole body read and checked; returns the protocol seen at both ends.
    pub async fn json(&mut self, authority: &str) -> Result<(Version, String), String> {
        let resp = self.get(authority, "/json").await?;
        let version = resp.version();
        let origin = resp
            .headers()
            .get("x-origin-proto")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("(header missing)")
            .to_string();
        let body = tokio::time::timeout(STALL, resp.into_body().collect())
            .await
            .map_err(|_| "body stalled".to_string())?
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        if body.as_ref() != JSON.as_slice() {
            return Err(format!("wrong body ({} bytes)", body.len()));
        }
        Ok((version, origin))
    }
}

/// One `GET /json` on a fresh connection: what the path negotiated.
pub async fn h2_probe(
    via: Via,
    origin: SocketAddr,
    tls: Arc<ClientConfig>,
) -> Result<Proto, String> {
    let (mut c, alpn) = senders(via, origin, tls, 1).await?;
    let (client, origin) = c[0].json(&origin.to_string()).await?;
    Ok(Proto {
        alpn,
        client,
        origin,
    })
}

/// A fixed-duration load: units are requests, events or messages.
pub struct Load {
    /// Units completed inside the measured window.
    pub units: u64,
    /// Payload bytes those units carried (one way).
    pub bytes: u64,
    /// Latency of each unit in the window, µs (empty for SSE events).
    pub micros: Vec<f64>,
    /// The measured window.
    pub window: Duration,
    /// CPU seconds in the window: (benchmark process, proxy, other processes, interrupts).
    pub cpu: (f64, f64, f64, f64),
    /// The proxy's peak RSS in the window, KiB (`None` without a proxy process).
    pub peak_kib: Option<u64>,
}

impl Load {
    /// Units per second.
    pub fn per_s(&self) -> f64 {
        self.units as f64 / self.window.as_secs_f64()
    }
}

/// Waits for `start`, resets the peak RSS of `proxy`, and takes CPU from `start` to `end`.
pub async fn watch(proxy: Option<u32>, start: Instant, end: Instant) -> Load {
    let pid = proxy.unwrap_or(0);
    tokio::time::sleep_until(start.into()).await;
    if let Some(p) = proxy {
        reset_peak_rss(p);
    }
    let before = Cpu::now(pid);
    tokio::time::sleep_until(end.into()).await;
    let after = Cpu::now(pid);
    let irq = after.irq_since(before);
    let (me, proxy_cpu, others, _) = after.since(before);
    Load {
        units: 0,
        bytes: 0,
        micros: Vec::new(),
        window: end - start,
        cpu: (me, proxy_cpu, (others - irq).max(0.0), irq),
        peak_kib: proxy.map(|p| rss_kib(p).1),
    }
}

/// `streams` concurrent streams of `GET /json` back to back (one HTTP/2 connection, or one
/// HTTP/1.1 connection per stream when downgraded): `warm`, then `window` measured.
pub async fn h2_rate(
    proxy: Option<u32>,
    via: Via,
    origin: SocketAddr,
    tls: Arc<ClientConfig>,
    streams: usize,
    (warm, window): (Duration, Duration),
) -> Result<Load, String> {
    let (open, _) = senders(via, origin, tls, streams).await?;
    let authority = origin.to_string();
    let start = Instant::now() + warm;
    let end = start + window;
    let mut tasks = Vec::new();
    for mut c in open {
        let authority = authority.clone();
        tasks.push(tokio::spawn(async move {
            let mut micros = Vec::with_capacity(1 << 16);
            while Instant::now() < end {
                let t = Instant::now();
                c.json(&authority).await?;
                let done = Instant::now();
                if t >= start && done <= end {
                    micros.push((done - t).as_secs_f64() * 1e6);
                }
            }
            Ok::<_, String>(micros)
        }));
    }
    let mut out = watch(proxy, start, end).await;
    for t in tasks {
        out.micros.extend(t.await.map_err(|e| e.to_string())??);
    }
    out.units = out.micros.len() as u64;
    out.bytes = out.units * JSON.len() as u64;
    Ok(out)
}

/// Opens one HTTP/1.1 connection for SSE (the client config should offer `http/1.1` only).
pub async fn sse_conn(
    via: Via,
    origin: SocketAddr,
    tls: Arc<ClientConfig>,
) -> Result<Sender, String> {
    Ok(senders(via, origin, tls, 1).await?.0.remove(0))
}

/// One SSE stream of `events` events `gap_us` apart: checks the content type and every
/// event's bytes, calls `each` as each complete event arrives; returns how the response was
/// framed (`chunked` or `Content-Length: N`, which would mean a proxy buffered it).
pub async fn sse_stream(
    c: &mut Sender,
    authority: &str,
    events: u64,
    gap_us: u64,
    mut each: impl FnMut(),
) -> Result<String, String> {
    let path = format!("/sse?events={events}&gap_us={gap_us}");
    let resp = c.get(authority, &path).await?;
    let h = resp.headers();
    let ctype = h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    if ctype != Some("text/event-stream") {
        return Err(format!("content type {ctype:?}"));
    }
    let framing = match h.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()) {
        Some(n) => format!("Content-Length: {n}"),
        None if resp.version() == Version::HTTP_2 => "h2 DATA frames".into(),
        None => "chunked".into(),
    };
    let mut body = resp.into_body();
    let (mut buf, mut n) = (Vec::<u8>::new(), 0u64);
    loop {
        let f = match tokio::time::timeout(STALL, body.frame()).await {
            Err(_) => return Err(format!("stream stalled after {n} events")),
            Ok(None) => break,
            Ok(Some(f)) => f.map_err(|e| format!("body after {n} events: {e}"))?,
        };
        let Some(d) = f.data_ref() else { continue };
        buf.extend_from_slice(d);
        let mut used = 0;
        while let Some(p) = buf[used..].windows(2).position(|w| w == b"\n\n") {
            let ev = &buf[used..used + p + 2];
            if ev != sse_event(n).as_ref() {
                return Err(format!("event {n} differs ({} bytes)", ev.len()));
            }
            used += p + 2;
            n += 1;
            each();
        }
        buf.drain(..used);
    }
    if n != events || !buf.is_empty() {
        return Err(format!("{n} of {events} events, {} stray bytes", buf.len()));
    }
    Ok(framing)
}

/// SSE streams of `events` events back to back on one connection: `warm`, then `window`
/// measured; events are counted as they arrive.
pub async fn sse_rate(
    proxy: Option<u32>,
    via: Via,
    origin: SocketAddr,
    tls: Arc<ClientConfig>,
    events: u64,
    (warm, window): (Duration, Duration),
) -> Result<Load, String> {
    let mut c = sse_conn(via, origin, tls).await?;
    let authority = origin.to_string();
    let start = Instant::now() + warm;
    let end = start + window;
    let task = tokio::spawn(async move {
        let mut counted = 0u64;
        while Instant::now() < end {
            sse_stream(&mut c, &authority, events, 0, || {
                let t = Instant::now();
                counted += u64::from(t >= start && t <= end);
            })
            .await?;
        }
        Ok::<_, String>(counted)
    });
    let mut out = watch(proxy, start, end).await;
    out.units = task.await.map_err(|e| e.to_string())??;
    out.bytes = out.units * EVENT as u64;
    Ok(out)
}

/// `streams` SSE streams of `events` events `gap` apart, one after the other on one
/// connection: time to the first complete event and to the end of the stream, ms each.
pub async fn sse_first(
    via: Via,
    origin: SocketAddr,
    tls: Arc<ClientConfig>,
    streams: usize,
    events: u64,
    gap: Duration,
) -> Result<(Vec<f64>, Vec<f64>), String> {
    let mut c = sse_conn(via, origin, tls).await?;
    let authority = origin.to_string();
    let (mut first, mut whole) = (Vec::new(), Vec::new());
    for _ in 0..streams {
        let t = Instant::now();
        let mut at = None;
        let gap_us = gap.as_micros() as u64;
        sse_stream(&mut c, &authority, events, gap_us, || {
            at.get_or_insert_with(Instant::now);
        })
        .await?;
        first.push(at.map_or(0.0, |a| (a - t).as_secs_f64() * 1e3));
        whole.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok((first, whole))
}
