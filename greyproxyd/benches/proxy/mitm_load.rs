//! The MITM benchmark's HTTPS origin and load client, shared by every path (direct, greyproxyd
//! MITM, greyproxyd `--no-mitm`, mitmproxy) so that only the path differs.
//!
//! The origin speaks HTTP/1.1 over TLS (a leaf from the test CA, ALPN `http/1.1`) with
//! keep-alive: `/json` answers [`JSON`] (200 bytes, `Content-Length`), `/bulk?bytes=N` streams N
//! bytes in [`BULK_CHUNK`] frames. The client opens TLS to the origin's IP either directly or
//! through an HTTP `CONNECT` tunnel, trusting one root (the test CA, the daemon's or
//! mitmproxy's), and drives hyper's HTTP/1.1 client over it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper::body::{Body, Frame, SizeHint};
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpListener;

use greyproxy_testkit::https_origin::big_body;
use greyproxy_testkit::tls::{TestCa, server_config};

use crate::client::{Via, open_async};
use crate::sys::{Cpu, reset_peak_rss, rss_kib};

/// The small response: a chat-completion-like JSON document of exactly 200 bytes.
pub const JSON: &[u8; 200] = br#"{"id":"chatcmpl-bench","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hello from the benchmark origin, and hello again, you!"}}],"usage":{"total_tokens":42}}"#;

/// Size of the bulk body's frames.
pub const BULK_CHUNK: usize = 256 * 1024;

/// The origin's response body: the small JSON, or `left` bytes cut from one shared block.
enum OBody {
    Small(Option<Bytes>),
    Bulk { block: Bytes, left: u64 },
}

impl Body for OBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let frame = match &mut *self {
            OBody::Small(b) => b.take(),
            OBody::Bulk { block, left } => (*left > 0).then(|| {
                let n = (*left).min(block.len() as u64) as usize;
                *left -= n as u64;
                block.slice(..n)
            }),
        };
        Poll::Ready(frame.map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        match self {
            OBody::Small(b) => b.is_none(),
            OBody::Bulk { left, .. } => *left == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            OBody::Small(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            OBody::Bulk { left, .. } => SizeHint::with_exact(*left),
        }
    }
}

fn respond(path: &str, block: &Bytes) -> Response<OBody> {
    let b = Response::builder();
    if path == "/json" {
        return b
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CONTENT_LENGTH, JSON.len())
            .body(OBody::Small(Some(Bytes::from_static(JSON))))
            .unwrap();
    }
    let bytes = path
        .strip_prefix("/bulk?bytes=")
        .and_then(|n| n.parse::<u64>().ok());
    match bytes {
        Some(n) => b
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CONTENT_LENGTH, n)
            .body(OBody::Bulk {
                block: block.clone(),
                left: n,
            })
            .unwrap(),
        None => b
            .status(StatusCode::NOT_FOUND)
            .body(OBody::Small(Some(Bytes::from_static(b"no such route\n"))))
            .unwrap(),
    }
}

/// Serves HTTP/1.1 over TLS on 127.0.0.1 (a leaf from `ca` for `names`, ALPN `http/1.1`,
/// `TCP_NODELAY`): every section's HTTPS origin, each connection with the service `make` gives.
pub async fn serve_h1_tls<S, B>(
    ca: &TestCa,
    names: &[&str],
    make: impl Fn() -> S + Send + Sync + 'static,
) -> SocketAddr
where
    S: hyper::service::Service<
            Request<hyper::body::Incoming>,
            Response = Response<B>,
            Error = Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let acceptor = tokio_rustls::TlsAcceptor::from(server_config(&ca.leaf(names), &[b"http/1.1"]));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            let _ = tcp.set_nodelay(true);
            let (acceptor, svc) = (acceptor.clone(), make());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    addr
}

/// Starts the origin on 127.0.0.1 with a certificate from `ca` for `127.0.0.1` and `localhost`.
pub async fn https_origin(ca: &TestCa) -> SocketAddr {
    let block = Bytes::from(big_body(BULK_CHUNK));
    serve_h1_tls(ca, &["127.0.0.1", "localhost"], move || {
        let block = block.clone();
        service_fn(move |req: Request<hyper::body::Incoming>| {
            let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
            let resp = respond(path, &block);
            async move { Ok::<_, Infallible>(resp) }
        })
    })
    .await
}

/// One keep-alive client connection.
pub type Conn = SendRequest<Empty<Bytes>>;

/// Opens TLS to `origin` (directly or through `CONNECT` on the proxy in `via`) trusting the
/// roots of `tls`, then an HTTP/1.1 client connection over it.
pub async fn connect(via: Via, origin: SocketAddr, tls: Arc<ClientConfig>) -> Result<Conn, String> {
    let tcp = open_async(via, origin).await;
    let name = ServerName::IpAddress(origin.ip().into());
    let tls = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake: {e}"))?;
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    tokio::spawn(conn);
    Ok(send)
}

/// Sends `GET path` and reads the whole body, counting bytes; returns the body length.
pub async fn get(c: &mut Conn, authority: &str, path: &str) -> Result<u64, String> {
    c.ready().await.map_err(|e| format!("connection: {e}"))?;
    let req = Request::get(path)
        .header(header::HOST, authority)
        .body(Empty::new())
        .unwrap();
    let resp = c
        .send_request(req)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = resp.status();
    let mut body = resp.into_body();
    let mut len = 0u64;
    let mut first = Vec::new();
    while let Some(f) = body.frame().await {
        let f = f.map_err(|e| format!("body: {e}"))?;
        if let Some(d) = f.data_ref() {
            if status != StatusCode::OK && first.len() < 512 {
                first.extend_from_slice(d);
            }
            len += d.len() as u64;
        }
    }
    if status != StatusCode::OK {
        return Err(format!(
            "status {status}: {}",
            String::from_utf8_lossy(&first).trim()
        ));
    }
    Ok(len)
}

/// The outcome of a fixed-duration request-rate run.
pub struct Rate {
    /// Requests completed inside the measured window.
    pub requests: u64,
    /// Latency of each of them, µs (request written → whole response read).
    pub micros: Vec<f64>,
    /// The measured window.
    pub window: Duration,
    /// CPU seconds in the window: (benchmark process, proxy, other processes, interrupts and
    /// softirqs of the whole machine).
    pub cpu: (f64, f64, f64, f64),
    /// The proxy's peak RSS in the window, KiB (`None` without a proxy process).
    pub peak_kib: Option<u64>,
    /// Requests completed in all, warm-up and the window's last ones included.
    pub total: u64,
}

/// `conns` keep-alive connections, each sending `GET /json` back to back: `warm` of warm-up,
/// then `window` measured. Connection setup is outside both; CPU and the peak RSS of `proxy`
/// (a pid) are taken over the window only.
pub async fn rate(
    proxy: Option<u32>,
    via: Via,
    origin: SocketAddr,
    tls: Arc<ClientConfig>,
    conns: usize,
    warm: Duration,
    window: Duration,
) -> Result<Rate, String> {
    let mut open = Vec::new();
    for _ in 0..conns {
        open.push(connect(via, origin, tls.clone()).await?);
    }
    let authority = origin.to_string();
    drive(proxy, open, warm, window, move |mut c: Conn| {
        let authority = authority.clone();
        async move {
            let r = match get(&mut c, &authority, "/json").await {
                Ok(len) if len != JSON.len() as u64 => Err(format!("short response: {len} bytes")),
                Ok(_) => Ok(()),
                Err(e) => Err(e),
            };
            (c, r)
        }
    })
    .await
}

/// Runs `one` back to back on each of the `open` connections (a task each): `warm` of warm-up,
/// then `window` measured; `one` takes a connection, makes one request and gives the
/// connection back with the outcome. CPU and the peak RSS of `proxy` (a pid) are taken over
/// the window only.
pub async fn drive<C, F, Fut>(
    proxy: Option<u32>,
    open: Vec<C>,
    warm: Duration,
    window: Duration,
    one: F,
) -> Result<Rate, String>
where
    C: Send + 'static,
    F: Fn(C) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = (C, Result<(), String>)> + Send,
{
    let start = Instant::now() + warm;
    let end = start + window;
    let mut tasks = Vec::new();
    for mut c in open {
        let one = one.clone();
        tasks.push(tokio::spawn(async move {
            let mut micros = Vec::with_capacity(1 << 16);
            let mut total = 0u64;
            loop {
                let t = Instant::now();
                if t >= end {
                    break;
                }
                let (back, r) = one(c).await;
                c = back;
                r?;
                total += 1;
                let done = Instant::now();
                if t >= start && done <= end {
                    micros.push((done - t).as_secs_f64() * 1e6);
                }
            }
            Ok::<_, String>((micros, total))
        }));
    }
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
    let cpu = (me, proxy_cpu, (others - irq).max(0.0), irq);
    let peak_kib = proxy.map(|p| rss_kib(p).1);
    let mut out = Rate {
        requests: 0,
        micros: Vec::new(),
        window,
        cpu,
        peak_kib,
        total: 0,
    };
    for t in tasks {
        let (micros, total) = t.await.map_err(|e| e.to_string())??;
        out.micros.extend(micros);
        out.total += total;
    }
    out.requests = out.micros.len() as u64;
    Ok(out)
}

/// Downloads `/bulk?bytes=N` on a fresh connection; returns (MB/s, seconds) from the request to
/// the last body byte.
pub async fn bulk(
    via: Via,
    origin: SocketAddr,
    tls: Arc<ClientConfig>,
    bytes: u64,
) -> Result<(f64, f64), String> {
    let mut c = connect(via, origin, tls).await?;
    let t = Instant::now();
    let len = get(&mut c, &origin.to_string(), &format!("/bulk?bytes={bytes}")).await?;
    let secs = t.elapsed().as_secs_f64();
    if len != bytes {
        return Err(format!("short download: {len} of {bytes} bytes"));
    }
    Ok((bytes as f64 / secs / 1e6, secs))
}
