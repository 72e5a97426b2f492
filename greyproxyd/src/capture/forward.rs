//! The recording forwarder: one client request in, forwarded to the origin over an HTTP/1.1 or
//! HTTP/2 connection, the response streamed back untouched, and a copy of both recorded as a
//! [`Transaction`] once the response body has ended. Used for intercepted TLS, plaintext HTTP
//! inside tunnels, and absolute-form requests on the HTTP proxy.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use greyproxy_protocol::Transaction;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Uri, Version, header};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;

use super::body::{Captured, TeeBody};
use super::record::{fill_request, fill_response, ms};
use super::redact::Redactor;
use super::ws::Negotiated;
use crate::policy::Policy;
use crate::store::{IdKind, Sink, Store};
use crate::time::{now_secs, rfc3339};

/// Captured bodies up to this size are decoded on the async worker rather than the blocking
/// pool (the hand-over costs more than decoding a few KiB).
const INLINE_DECODE: usize = 16 * 1024;

/// Body type of everything forwarded.
pub type FwdBody = BoxBody<Bytes, hyper::Error>;

/// Any byte stream an HTTP connection can run over.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// Opens a new connection to the origin (TLS included when needed).
pub type Dial = Arc<dyn Fn() -> BoxFuture<'static, io::Result<Box<dyn Io>>> + Send + Sync>;

/// What the recording needs, shared by every connection.
pub struct CaptureCtx {
    /// Per-request deny checks.
    pub policy: Arc<Policy>,
    /// Transaction ids.
    pub store: Arc<Store>,
    /// Ordered transaction writer.
    pub sink: Sink<Transaction>,
    /// Header and URL redaction; replaced on a config reload (see [`CaptureCtx::redactor`]).
    pub redactor: std::sync::RwLock<Arc<Redactor>>,
    /// Stored copy cap per body.
    pub body_cap: usize,
    /// How long the origin may take to start its response.
    pub response_timeout: Duration,
    /// Cancelled when shutdown begins: intercepted connections finish the exchange in flight
    /// and close instead of idling in keep-alive through the grace period.
    pub stopping: tokio_util::sync::CancellationToken,
    /// Body bytes queued for the writer right now (the writer subtracts what it stored).
    pub queued_bytes: Arc<std::sync::atomic::AtomicU64>,
    /// Most body bytes queued at once; beyond it rows are queued without their bodies, so a
    /// slow disk never lets memory grow with the traffic.
    pub max_queued_bytes: u64,
}

impl CaptureCtx {
    /// Queues a finished transaction for storage, within the queue's byte budget.
    pub fn record(&self, mut t: Transaction) {
        use std::sync::atomic::Ordering;
        let mut weight = crate::store::body_weight(&t);
        if self.queued_bytes.load(Ordering::Relaxed) + weight > self.max_queued_bytes {
            t.request_body = None;
            t.request_body_encoding = None;
            t.response_body = None;
            t.response_body_encoding = None;
            t.error
                .get_or_insert_with(|| "bodies not stored: the capture queue is full".into());
            weight = 0;
        }
        self.queued_bytes.fetch_add(weight, Ordering::Relaxed);
        if !self.sink.record(t) {
            self.queued_bytes.fetch_sub(weight, Ordering::Relaxed);
        }
    }

    /// The redaction in force.
    pub fn redactor(&self) -> Arc<Redactor> {
        self.redactor
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the redaction (config reload); exchanges recorded from now on use it.
    pub fn set_redactor(&self, r: Redactor) {
        *self.redactor.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(r);
    }
}

impl std::fmt::Debug for CaptureCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureCtx")
            .field("body_cap", &self.body_cap)
            .finish()
    }
}

/// Per-connection facts.
#[derive(Debug, Clone)]
pub struct ExchangeMeta {
    /// Client identity.
    pub container: String,
    /// Origin host.
    pub host: String,
    /// Origin port.
    pub port: u16,
    /// `https` (intercepted TLS) or `http`.
    pub scheme: &'static str,
    /// Rule that allowed the connection.
    pub rule_id: Option<u64>,
}

enum Sender {
    H1(hyper::client::conn::http1::SendRequest<FwdBody>),
    H2(hyper::client::conn::http2::SendRequest<FwdBody>),
}

/// The origin side of a client connection: one HTTP/2 connection shared by all streams, or one
/// HTTP/1.1 connection used request by request and re-dialled if the origin closed it.
pub struct Upstream {
    h2: bool,
    sender: tokio::sync::Mutex<Option<Sender>>,
    dial: Dial,
}

async fn handshake(io: Box<dyn Io>, h2: bool) -> io::Result<Sender> {
    let io = TokioIo::new(io);
    if h2 {
        let (s, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(io::Error::other)?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream h2 connection ended");
            }
        });
        Ok(Sender::H2(s))
    } else {
        let (s, conn) = hyper::client::conn::http1::Builder::new()
            .preserve_header_case(true)
            .handshake(io)
            .await
            .map_err(io::Error::other)?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream h1 connection ended");
            }
        });
        Ok(Sender::H1(s))
    }
}

impl Upstream {
    /// Starts from an already connected stream; `dial` opens replacements (HTTP/1.1).
    pub async fn new(first: Box<dyn Io>, h2: bool, dial: Dial) -> io::Result<Upstream> {
        let sender = handshake(first, h2).await?;
        Ok(Upstream {
            h2,
            sender: tokio::sync::Mutex::new(Some(sender)),
            dial,
        })
    }

    /// Starts without a connection; the first request dials.
    pub fn lazy(h2: bool, dial: Dial) -> Upstream {
        Upstream {
            h2,
            sender: tokio::sync::Mutex::new(None),
            dial,
        }
    }

    /// Whether requests go out as HTTP/2.
    pub fn is_h2(&self) -> bool {
        self.h2
    }

    async fn send(&self, req: Request<FwdBody>) -> Result<Response<Incoming>, String> {
        let mut slot = self.sender.lock().await;
        let usable = match slot.as_mut() {
            Some(Sender::H1(s)) => !s.is_closed() && s.ready().await.is_ok(),
            Some(Sender::H2(s)) => !s.is_closed() && s.ready().await.is_ok(),
            None => false,
        };
        if !usable {
            let io = (self.dial)()
                .await
                .map_err(|e| format!("cannot reach the origin: {e}"))?;
            *slot = Some(
                handshake(io, self.h2)
                    .await
                    .map_err(|e| format!("origin handshake failed: {e}"))?,
            );
        }
        match slot.as_mut() {
            Some(Sender::H2(s)) => {
                // HTTP/2 streams run concurrently: don't hold the lock for the response.
                let fut = s.send_request(req);
                drop(slot);
                fut.await.map_err(|e| e.to_string())
            }
            Some(Sender::H1(s)) => {
                let fut = s.send_request(req);
                drop(slot);
                fut.await.map_err(|e| e.to_string())
            }
            None => Err("no origin connection".into()),
        }
    }
}

/// A plain-text response generated by the proxy.
pub fn text_response(status: StatusCode, body: impl Into<String>) -> Response<FwdBody> {
    let body: String = body.into();
    let mut r = Response::new(Full::new(Bytes::from(body)).map_err(|n| match n {}).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) and the proxy's own; `Upgrade` stays when asked.
/// `TE: trailers` is kept (the only `TE` HTTP/2 allows; gRPC requires it), and so is
/// `Trailer`, which is end to end: without it hyper's HTTP/1.1 side drops the trailers.
pub fn strip_hop_headers(h: &mut HeaderMap, keep_upgrade: bool) {
    let te_trailers = h.get_all(header::TE).iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',').any(|t| {
                t.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .eq_ignore_ascii_case("trailers")
            })
        })
    });
    let listed: Vec<String> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    for name in listed {
        if keep_upgrade && name == "upgrade" {
            continue;
        }
        h.remove(name.as_str());
    }
    for name in [
        "proxy-authorization",
        "proxy-connection",
        "keep-alive",
        "te",
    ] {
        h.remove(name);
    }
    if te_trailers {
        h.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    if keep_upgrade {
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        h.remove(header::CONNECTION);
        h.remove(header::UPGRADE);
    }
}

/// `scheme://host[:port]/path?query` as the client addressed it.
fn full_url(meta: &ExchangeMeta, uri: &Uri) -> String {
    let default = if meta.scheme == "https" { 443 } else { 80 };
    let host = if meta.host.contains(':') {
        format!("[{}]", meta.host)
    } else {
        meta.host.clone()
    };
    let authority = if meta.port == default {
        host
    } else {
        format!("{host}:{}", meta.port)
    };
    let pq = uri.path_and_query().map_or("/", |p| p.as_str());
    format!("{}://{authority}{pq}", meta.scheme)
}

/// Forwards one request and records it. Never fails: problems become proxy-generated
/// responses (403 deny, 502 origin unreachable, 504 origin too slow), recorded too.
pub async fn forward(
    ctx: Arc<CaptureCtx>,
    upstream: Arc<Upstream>,
    meta: Arc<ExchangeMeta>,
    mut req: Request<Incoming>,
) -> Response<FwdBody> {
    let start = Instant::now();
    let mut t = Transaction {
        id: ctx.store.next_id(IdKind::Transaction),
        timestamp: rfc3339(now_secs()),
        container_name: meta.container.clone(),
        destination_host: meta.host.clone(),
        destination_port: meta.port,
        method: req.method().as_str().to_string(),
        url: ctx.redactor().url(&full_url(&meta, req.uri())),
        http_version: Some(
            match req.version() {
                Version::HTTP_2 => "HTTP/2",
                Version::HTTP_10 => "HTTP/1.0",
                _ => "HTTP/1.1",
            }
            .into(),
        ),
        rule_id: meta.rule_id,
        result: "auto".into(),
        ..Default::default()
    };
    let req_headers = req.headers().clone();
    let redacted_req = ctx.redactor().headers(&req_headers);

    // A deny rule created while the tunnel is open applies to its next request.
    if let Some(rule) = ctx
        .policy
        .denying_rule(&meta.container, &meta.host, meta.port)
    {
        fill_request(&mut t, &req_headers, redacted_req, None, ctx.body_cap);
        t.result = "denied".into();
        t.rule_id = Some(rule);
        let resp = text_response(StatusCode::FORBIDDEN, "Request denied by proxy\n");
        fill_response(
            &mut t,
            403,
            resp.headers(),
            ctx.redactor().headers(resp.headers()),
            None,
            0,
        );
        t.duration_ms = Some(ms(start, Instant::now()));
        ctx.record(t);
        return resp;
    }

    let wants_upgrade = !upstream.is_h2() && req.headers().contains_key(header::UPGRADE);
    let client_upgrade = wants_upgrade.then(|| hyper::upgrade::on(&mut req));
    let (parts, body) = req.into_parts();
    let (req_tx, req_rx) = oneshot::channel();
    let body = TeeBody::new(body, ctx.body_cap, req_tx).boxed();
    let mut out = Request::from_parts(parts, body);
    prepare_request(&mut out, &meta, upstream.is_h2(), wants_upgrade);

    let sent = tokio::time::timeout(ctx.response_timeout, upstream.send(out)).await;
    let mut resp = match sent {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            return failed(
                ctx,
                t,
                &req_headers,
                redacted_req,
                req_rx,
                start,
                StatusCode::BAD_GATEWAY,
                format!("greyproxy: origin error: {e}\n"),
            )
            .await;
        }
        Err(_) => {
            let msg = format!(
                "greyproxy: the origin did not answer within {} s\n",
                ctx.response_timeout.as_secs()
            );
            return failed(
                ctx,
                t,
                &req_headers,
                redacted_req,
                req_rx,
                start,
                StatusCode::GATEWAY_TIMEOUT,
                msg,
            )
            .await;
        }
    };
    let ttfb = ms(start, Instant::now());
    t.ttfb_ms = Some(ttfb);
    let status = resp.status();
    let resp_headers = resp.headers().clone();

    if status == StatusCode::SWITCHING_PROTOCOLS {
        let req_cap = req_rx.await.ok();
        fill_request(
            &mut t,
            &req_headers,
            redacted_req,
            req_cap.as_ref(),
            ctx.body_cap,
        );
        fill_response(
            &mut t,
            101,
            &resp_headers,
            ctx.redactor().headers(&resp_headers),
            None,
            0,
        );
        t.duration_ms = Some(ttfb);
        let negotiated = Negotiated::from_headers(&resp_headers);
        t.ws_extensions = resp_headers
            .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .reduce(|a, b| format!("{a}, {b}"));
        let upgrade_row = t.clone();
        ctx.record(t);
        if let Some(client_up) = client_upgrade {
            let server_up = hyper::upgrade::on(&mut resp);
            let ctx = ctx.clone();
            tokio::spawn(async move {
                // hyper hands over bytes that arrived together with the 101 inside Upgraded,
                // so a server that speaks first loses nothing.
                let (Ok(c), Ok(s)) = (client_up.await, server_up.await) else {
                    return;
                };
                super::wsrelay::relay(ctx, c, s, upgrade_row, negotiated).await;
            });
        }
        return resp.map(|b| b.boxed());
    }

    let (mut parts, body) = resp.into_parts();
    strip_hop_headers(&mut parts.headers, false);
    let (resp_tx, resp_rx) = oneshot::channel();
    let body = TeeBody::new(body, ctx.body_cap, resp_tx).boxed();
    let ctx2 = ctx.clone();
    tokio::spawn(async move {
        let req_cap = req_rx.await.ok();
        let resp_cap: Option<Captured> = resp_rx.await.ok();
        let end = resp_cap.as_ref().map_or_else(Instant::now, |c| c.ended);
        t.duration_ms = Some(ms(start, end));
        let cap = ctx2.body_cap;
        let redacted_resp = ctx2.redactor().headers(&resp_headers);
        let small = req_cap
            .as_ref()
            .is_none_or(|c| c.bytes.len() <= INLINE_DECODE)
            && resp_cap
                .as_ref()
                .is_none_or(|c| c.bytes.len() <= INLINE_DECODE);
        let fill = move || {
            fill_request(&mut t, &req_headers, redacted_req, req_cap.as_ref(), cap);
            fill_response(
                &mut t,
                status.as_u16(),
                &resp_headers,
                redacted_resp,
                resp_cap.as_ref(),
                cap,
            );
            t
        };
        // Decoding a few MiB takes milliseconds: keep that off the async workers. Small
        // bodies (the usual API call) are cheaper to finish here than to hand over.
        let t = if small {
            Ok(fill())
        } else {
            tokio::task::spawn_blocking(fill).await
        };
        if let Ok(t) = t {
            ctx2.record(t);
        }
    });
    Response::from_parts(parts, body)
}

#[allow(clippy::too_many_arguments)]
async fn failed(
    ctx: Arc<CaptureCtx>,
    mut t: Transaction,
    req_headers: &HeaderMap,
    redacted_req: greyproxy_protocol::HeaderMapJson,
    req_rx: oneshot::Receiver<Captured>,
    start: Instant,
    status: StatusCode,
    msg: String,
) -> Response<FwdBody> {
    tracing::debug!(host = %t.destination_host, %status, "{}", msg.trim());
    // The request body copy is complete or abandoned by now (the send finished or timed out).
    let req_cap = tokio::time::timeout(Duration::from_millis(100), req_rx)
        .await
        .ok()
        .and_then(Result::ok);
    fill_request(
        &mut t,
        req_headers,
        redacted_req,
        req_cap.as_ref(),
        ctx.body_cap,
    );
    t.result = "error".into();
    t.error = Some(msg.trim().to_string());
    let resp = text_response(status, msg);
    fill_response(
        &mut t,
        status.as_u16(),
        resp.headers(),
        ctx.redactor().headers(resp.headers()),
        None,
        0,
    );
    t.duration_ms = Some(ms(start, Instant::now()));
    ctx.record(t);
    resp
}

/// Rewrites a client request for the origin connection's protocol.
fn prepare_request(req: &mut Request<FwdBody>, meta: &ExchangeMeta, h2: bool, upgrade: bool) {
    let host_hdr = {
        let default = if meta.scheme == "https" { 443 } else { 80 };
        let h = if meta.host.contains(':') {
            format!("[{}]", meta.host)
        } else {
            meta.host.clone()
        };
        if meta.port == default {
            h
        } else {
            format!("{h}:{}", meta.port)
        }
    };
    // The authority the client used (h2 `:authority`, or the Host header), else the target.
    let authority = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or(host_hdr);
    let pq = req
        .uri()
        .path_and_query()
        .map_or("/".to_string(), |p| p.as_str().to_string());
    strip_hop_headers(req.headers_mut(), upgrade);
    if h2 {
        // HTTP/2 carries the authority in the URI, not in Host; joined cookies may be split.
        req.headers_mut().remove(header::HOST);
        req.headers_mut().remove(header::TRANSFER_ENCODING);
        if let Ok(uri) = format!("{}://{authority}{pq}", meta.scheme).parse() {
            *req.uri_mut() = uri;
        }
        *req.version_mut() = Version::HTTP_2;
    } else {
        if let Ok(uri) = pq.parse() {
            *req.uri_mut() = uri;
        }
        if !req.headers().contains_key(header::HOST)
            && let Ok(v) = HeaderValue::from_str(&authority)
        {
            req.headers_mut().insert(header::HOST, v);
        }
        // HTTP/2 clients may send several cookie fields; HTTP/1.1 wants one.
        let cookies: Vec<String> = req
            .headers()
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect();
        if cookies.len() > 1
            && let Ok(v) = HeaderValue::from_str(&cookies.join("; "))
        {
            req.headers_mut().insert(header::COOKIE, v);
        }
        *req.version_mut() = Version::HTTP_11;
    }
}

/// Boxed future helper for [`Dial`]s.
pub fn boxed_io<S: Io>(s: S) -> Box<dyn Io> {
    Box::new(s)
}

/// Pins a dial future.
pub fn dial_fn<F, Fut>(f: F) -> Dial
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = io::Result<Box<dyn Io>>> + Send + 'static,
{
    Arc::new(move || -> BoxFuture<'static, io::Result<Box<dyn Io>>> {
        Box::pin(f()) as Pin<Box<_>>
    })
}
