//! The recording forwarder: one client request in, forwarded to the origin over an HTTP/1.1 or
//! HTTP/2 connection, the response streamed back untouched, and a copy of both recorded as a
//! [`Transaction`] once the response body has ended. Used for intercepted TLS, plaintext HTTP
//! inside tunnels, and absolute-form requests on the HTTP proxy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use greyproxy_protocol::Transaction;
use http::{HeaderMap, Request, Response, StatusCode, Version, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::oneshot;

use super::body::{Captured, TeeBody};
use super::record::{self, fill_request, fill_response, ms};
use super::redact::Redactor;
use super::upstream::Upstream;
use super::ws::Negotiated;
use crate::http::{Body, Origin, prepare_request, strip_hop_headers, text_response};
use crate::middleware::hook;
use crate::policy::Policy;
use crate::store::{IdKind, Sink, Store};
use crate::time::{now_secs, rfc3339};

/// Captured bodies up to this size are decoded on the async worker rather than the blocking
/// pool (the hand-over costs more than decoding a few KiB).
const INLINE_DECODE: usize = 16 * 1024;

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
    /// External middlewares consulted for each request and response.
    pub middlewares: Arc<crate::middleware::Middlewares>,
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
    /// An absolute-form request on the HTTP proxy (middleware hooks `http-*`), not an exchange
    /// inside a tunnel (`mitm-*`).
    pub plain_proxy: bool,
}

impl ExchangeMeta {
    /// Where the exchanges of this connection go.
    pub fn origin(&self) -> Origin<'_> {
        Origin {
            scheme: self.scheme,
            host: &self.host,
            port: self.port,
        }
    }
}

/// Forwards one request and records it. Never fails: problems become proxy-generated
/// responses (403 deny, 502 origin unreachable, 504 origin too slow), recorded too.
pub async fn forward(
    ctx: Arc<CaptureCtx>,
    upstream: Arc<Upstream>,
    meta: Arc<ExchangeMeta>,
    mut req: Request<Incoming>,
) -> Response<Body> {
    let start = Instant::now();
    let mut t = Transaction {
        id: ctx.store.next_id(IdKind::Transaction),
        timestamp: rfc3339(now_secs()),
        container_name: meta.container.clone(),
        destination_host: meta.host.clone(),
        destination_port: meta.port,
        method: req.method().as_str().to_string(),
        url: ctx.redactor().url(&meta.origin().url(req.uri())),
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
    // A deny rule created while the tunnel is open applies to its next request.
    if let Some(rule) = ctx
        .policy
        .denying_rule(&meta.container, &meta.host, meta.port)
    {
        let req_headers = req.headers().clone();
        let redacted_req = ctx.redactor().headers(&req_headers);
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
    let mw = ctx.middlewares.clone();
    let cx = (!mw.is_empty()).then(|| {
        hook::context(
            &req,
            &meta.container,
            meta.plain_proxy,
            meta.scheme == "https",
        )
    });
    let mut req = req.map(BodyExt::boxed);
    let mut trace = hook::RequestTrace::default();
    if let Some(cx) = &cx {
        let asked = req.headers().clone();
        match hook::on_request(&mw, cx, req, &mut t.middleware_events).await {
            Ok((r, tr)) => {
                req = r;
                trace = tr;
            }
            Err(resp) => return middleware_denied(&ctx, t, &asked, resp, start),
        }
    }
    let req_headers = req.headers().clone();
    let redacted_req = ctx.redactor().headers(&req_headers);
    let (parts, body) = req.into_parts();
    let (req_tx, req_rx) = oneshot::channel();
    let body = TeeBody::new(body, ctx.body_cap, req_tx).boxed();
    let mut out = Request::from_parts(parts, body);
    prepare_request(&mut out, meta.origin(), upstream.is_h2(), wants_upgrade);

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

    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let resp_headers = resp.headers().clone();
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
    let mut resp = Response::from_parts(parts, body.boxed());
    if let Some(cx) = &cx {
        resp = hook::on_response(
            &mw,
            cx,
            &req_headers,
            &trace,
            ttfb as i64,
            resp,
            &mut t.middleware_events,
        )
        .await;
    }
    let status = resp.status();
    let resp_headers = resp.headers().clone();
    let (parts, body) = resp.into_parts();
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

/// Records a request a middleware denied (without its body, which may be what it objected
/// to) and returns the middleware's answer.
fn middleware_denied(
    ctx: &CaptureCtx,
    mut t: Transaction,
    req_headers: &HeaderMap,
    resp: Response<Body>,
    start: Instant,
) -> Response<Body> {
    let redacted = ctx.redactor().headers(req_headers);
    fill_request(&mut t, req_headers, redacted, None, ctx.body_cap);
    t.result = "denied".into();
    t.status_code = Some(resp.status().as_u16());
    t.response_headers = Some(ctx.redactor().headers(resp.headers()));
    t.response_content_type = record::content_type(resp.headers());
    t.duration_ms = Some(ms(start, Instant::now()));
    ctx.record(t);
    resp
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
) -> Response<Body> {
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
