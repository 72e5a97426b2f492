//! The exchange: one client request forwarded to the origin over an HTTP/1.1 or HTTP/2
//! connection, the response streamed back, and a copy of both recorded as a [`Transaction`]
//! once the response body has ended. Used for intercepted TLS, plaintext HTTP inside tunnels,
//! and absolute-form requests on the HTTP proxy.
//!
//! An [`Exchange`] moves through named stages, each of which may end it with the proxy's own
//! answer (recorded too):
//!
//! 1. [`Exchange::check_policy`]: a deny rule created while the connection is open applies to
//!    its next request (403).
//! 2. [`Exchange::request_hooks`]: the middlewares' request cascade (their deny or rewrite),
//!    then [`Exchange::credentials`]: placeholders substituted on the copy that goes upstream,
//!    or the request held as secret egress (403 when refused).
//! 3. [`Exchange::send_upstream`]: the request, prepared for the origin connection's protocol,
//!    goes out with a copy of its body taken (502 origin error, 504 origin too slow).
//! 4. [`Exchange::switch_protocols`] for a `101` (the WebSocket relay takes over), else
//!    [`Exchange::response_hooks`]: the middlewares' response cascade.
//! 5. [`Exchange::record`]: the response streams to the client while its copy is taken; the
//!    transaction is recorded when the body ends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use greyproxy_protocol::{HeaderMapJson, Transaction, TransactionResult};
use http::{HeaderMap, Request, Response, StatusCode, Version, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use tokio::sync::oneshot;

use super::body::{Captured, TeeBody};
use super::credentials::{self as creds, Injection};
use super::record::{self, fill_request, fill_response, ms};
use super::recorder::Recorder;
use super::upstream::Upstream;
use super::ws::Negotiated;
use crate::credentials::service::Service;
use crate::http::{Body, Origin, full, prepare_request, strip_hop_headers, text_response};
use crate::live::{Live, LiveCell};
use crate::middleware::{Middlewares, hook};
use crate::policy::Policy;
use crate::shutdown::Shutdown;
use crate::time::{now_secs, rfc3339};

/// Captured bodies up to this size are decoded on the async worker rather than the blocking
/// pool (the hand-over costs more than decoding a few KiB).
const INLINE_DECODE: usize = 16 * 1024;

/// What an exchange needs from the rest of the daemon: the seam between the recording
/// forwarder and the parts it consults. The daemon declares and builds the one implementation
/// (`daemon::DataPlane`) and hands it down to the front ends and the interception as
/// `Arc<CaptureCtx>`.
pub(crate) trait ExchangeEnv: Send + Sync + std::fmt::Debug {
    /// Per-request deny checks.
    fn policy(&self) -> &Arc<Policy>;
    /// Ids, redaction and the ordered writer.
    fn recorder(&self) -> &Arc<Recorder>;
    /// How long the origin may take to start its response.
    fn response_timeout(&self) -> Duration;
    /// When shutdown begins, intercepted connections finish the exchange in flight and close
    /// instead of idling in keep-alive through the grace period.
    fn shutdown(&self) -> &Shutdown;
    /// External middlewares consulted for each request and response.
    fn middlewares(&self) -> &Arc<Middlewares>;
    /// The reloadable settings; each exchange takes one snapshot when it begins.
    fn live(&self) -> &Arc<LiveCell>;
    /// The credentials service (placeholder substitution and secret-egress holds).
    fn credentials(&self) -> Option<&Arc<Service>> {
        None
    }
}

/// The exchange's view of the daemon, as every connection holds it.
pub(crate) type CaptureCtx = dyn ExchangeEnv;

/// Per-connection facts.
#[derive(Debug, Clone)]
pub(crate) struct ExchangeMeta {
    /// Client identity.
    pub(crate) container: String,
    /// Origin host.
    pub(crate) host: String,
    /// Origin port.
    pub(crate) port: u16,
    /// `https` (intercepted TLS) or `http`.
    pub(crate) scheme: &'static str,
    /// Rule that allowed the connection.
    pub(crate) rule_id: Option<u64>,
    /// An absolute-form request on the HTTP proxy (middleware hooks `http-*`), not an exchange
    /// inside a tunnel (`mitm-*`).
    pub(crate) plain_proxy: bool,
}

impl ExchangeMeta {
    /// Where the exchanges of this connection go.
    pub(crate) fn origin(&self) -> Origin<'_> {
        Origin {
            scheme: self.scheme,
            host: &self.host,
            port: self.port,
        }
    }
}

/// Forwards one request and records it. Never fails: problems become proxy-generated
/// responses (403 deny, 502 origin unreachable, 504 origin too slow), recorded too.
pub(crate) async fn forward(
    ctx: Arc<CaptureCtx>,
    upstream: Arc<Upstream>,
    meta: Arc<ExchangeMeta>,
    req: Request<Incoming>,
) -> Response<Body> {
    let mut x = Exchange::begin(ctx, meta, &req);
    if let Some(denied) = x.check_policy(&req) {
        return denied;
    }
    let (req, hooks) = match x.request_hooks(req, upstream.is_h2()).await {
        Ok(r) => r,
        Err(answer) => return answer,
    };
    let (req, injection) = match x.credentials(req).await {
        Ok(r) => r,
        Err(answer) => return answer,
    };
    let sent = match x
        .send_upstream(&upstream, req, hooks.wants_upgrade, injection.as_ref())
        .await
    {
        Ok(s) => s,
        Err(answer) => return answer,
    };
    if sent.response.status() == StatusCode::SWITCHING_PROTOCOLS {
        return x.switch_protocols(sent, hooks.client_upgrade).await;
    }
    let Sent {
        request,
        response,
        ttfb,
    } = sent;
    let mut resp = sent_parts(response);
    if let Some(i) = &injection {
        // An echo of a substituted secret goes back as its placeholder, before the
        // middlewares, the capture or the agent see the response.
        resp = super::scrub::response(resp, i.scrubber()).await;
    }
    let resp = x.response_hooks(&request.headers, ttfb, &hooks, resp).await;
    x.record(resp, request)
}

/// The response with hop-by-hop headers stripped and its body boxed.
fn sent_parts(resp: Response<Incoming>) -> Response<Body> {
    let (mut parts, body) = resp.into_parts();
    strip_hop_headers(&mut parts.headers, false);
    Response::from_parts(parts, body.boxed())
}

/// One request on its way through the stages, with the transaction being filled in.
struct Exchange {
    ctx: Arc<CaptureCtx>,
    meta: Arc<ExchangeMeta>,
    /// The settings snapshot taken when the exchange began: its redaction and LLM endpoint
    /// rules stay consistent whatever a reload does meanwhile.
    live: Arc<Live>,
    t: Transaction,
    start: Instant,
}

/// What the request stage leaves for the later ones.
struct Hooks {
    /// The middleware context, when there are middlewares.
    cx: Option<crate::middleware::cascade::Context>,
    /// What the request cascade did.
    trace: hook::RequestTrace,
    /// An HTTP/1.1 client asked to upgrade (WebSocket); `Upgrade` is kept for the origin.
    wants_upgrade: bool,
    /// The client side of that upgrade.
    client_upgrade: Option<OnUpgrade>,
}

/// The request as it went out: its headers (as sent, and redacted for the record) and the
/// copy of its body, complete once the origin has read it.
struct SentRequest {
    headers: HeaderMap,
    redacted: HeaderMapJson,
    body: oneshot::Receiver<Captured>,
}

/// What the upstream stage got back.
struct Sent {
    request: SentRequest,
    response: Response<Incoming>,
    ttfb: u64,
}

impl Exchange {
    /// Starts the transaction for a request.
    fn begin(ctx: Arc<CaptureCtx>, meta: Arc<ExchangeMeta>, req: &Request<Incoming>) -> Exchange {
        let recorder = &ctx.recorder();
        let live = ctx.live().load();
        let t = Transaction {
            id: recorder.next_id(),
            timestamp: rfc3339(now_secs()),
            container_name: meta.container.clone(),
            destination_host: meta.host.clone(),
            destination_port: meta.port,
            method: req.method().as_str().to_string(),
            url: live.redactor.url(&meta.origin().url(req.uri())),
            http_version: Some(
                match req.version() {
                    Version::HTTP_2 => "HTTP/2",
                    Version::HTTP_10 => "HTTP/1.0",
                    _ => "HTTP/1.1",
                }
                .into(),
            ),
            rule_id: meta.rule_id,
            result: TransactionResult::Auto,
            ..Default::default()
        };
        Exchange {
            ctx,
            meta,
            live,
            t,
            start: Instant::now(),
        }
    }

    fn recorder(&self) -> &Recorder {
        self.ctx.recorder()
    }

    /// Stage 1: a deny rule created while the tunnel is open applies to its next request.
    /// `Some` is the proxy's 403, already recorded.
    fn check_policy(&mut self, req: &Request<Incoming>) -> Option<Response<Body>> {
        let meta = &self.meta;
        let rule = self
            .ctx
            .policy()
            .denying_rule(&meta.container, &meta.host, meta.port)?;
        let recorder = self.ctx.recorder().clone();
        let mut t = std::mem::take(&mut self.t);
        let req_headers = req.headers();
        let redacted_req = self.live.redactor.headers(req_headers);
        fill_request(&mut t, req_headers, redacted_req, None, recorder.body_cap);
        t.result = TransactionResult::Denied;
        t.rule_id = Some(rule);
        let resp = text_response(StatusCode::FORBIDDEN, "Request denied by proxy\n");
        fill_response(
            &mut t,
            403,
            resp.headers(),
            self.live.redactor.headers(resp.headers()),
            None,
            0,
        );
        t.duration_ms = Some(ms(self.start, Instant::now()));
        recorder.record(t);
        Some(resp)
    }

    /// Stage 2: the request cascade of the middlewares, if any. `Err` is their answer (a deny),
    /// already recorded.
    async fn request_hooks(
        &mut self,
        mut req: Request<Incoming>,
        upstream_h2: bool,
    ) -> Result<(Request<Body>, Hooks), Response<Body>> {
        let wants_upgrade = !upstream_h2 && req.headers().contains_key(header::UPGRADE);
        let client_upgrade = wants_upgrade.then(|| hyper::upgrade::on(&mut req));
        let mw = self.ctx.middlewares();
        let cx = (!mw.is_empty()).then(|| {
            hook::context(
                &req,
                &self.meta.container,
                self.meta.plain_proxy,
                self.meta.scheme == "https",
                self.live.clone(),
            )
        });
        let mut req = req.map(BodyExt::boxed);
        let mut trace = hook::RequestTrace::default();
        if let Some(cx) = &cx {
            let asked = req.headers().clone();
            match hook::on_request(mw, cx, req, &mut self.t.middleware_events).await {
                Ok((r, tr)) => {
                    req = r;
                    trace = tr;
                }
                Err(resp) => return Err(self.middleware_denied(&asked, resp)),
            }
        }
        Ok((
            req,
            Hooks {
                cx,
                trace,
                wants_upgrade,
                client_upgrade,
            },
        ))
    }

    /// Stage 2b: the placeholders the request carries (see [`super::credentials`]). `Err` is
    /// the proxy's refusal (a held request refused, or not decided in time), already recorded
    /// with the request as the client sent it.
    async fn credentials(
        &mut self,
        req: Request<Body>,
    ) -> Result<(Request<Body>, Option<Injection>), Response<Body>> {
        let Some(service) = self.ctx.credentials().cloned() else {
            return Ok((req, None));
        };
        let cap = self.recorder().body_cap;
        let timeout = self.ctx.policy().hold_timeout();
        match creds::stage(&service, &self.meta, req, cap, timeout).await {
            Ok(r) => Ok(r),
            Err((req, refused)) => {
                let resp = text_response(refused.status, refused.message);
                Err(self.middleware_denied(req.headers(), resp))
            }
        }
    }

    /// Records a request a middleware denied (without its body, which may be what it objected
    /// to) and returns the middleware's answer.
    fn middleware_denied(
        &mut self,
        req_headers: &HeaderMap,
        resp: Response<Body>,
    ) -> Response<Body> {
        let recorder = self.ctx.recorder().clone();
        let mut t = std::mem::take(&mut self.t);
        let redacted = self.live.redactor.headers(req_headers);
        fill_request(&mut t, req_headers, redacted, None, recorder.body_cap);
        t.result = TransactionResult::Denied;
        t.status_code = Some(resp.status().as_u16());
        t.response_headers = Some(self.live.redactor.headers(resp.headers()));
        t.response_content_type = record::content_type(resp.headers());
        t.duration_ms = Some(ms(self.start, Instant::now()));
        recorder.record(t);
        resp
    }

    /// Stage 3: the request goes to the origin, prepared for the connection's protocol, with a
    /// copy of its body taken on the way. `Err` is the proxy's answer when the origin fails
    /// (502) or does not start its response in time (504), already recorded.
    async fn send_upstream(
        &mut self,
        upstream: &Upstream,
        req: Request<Body>,
        upgrade: bool,
        injection: Option<&Injection>,
    ) -> Result<Sent, Response<Body>> {
        // The record's copy is taken before any secret goes in: it keeps the placeholders.
        let headers = req.headers().clone();
        let redacted = self.live.redactor.headers(&headers);
        let (mut parts, body) = req.into_parts();
        let (req_tx, req_rx) = oneshot::channel();
        let tee = TeeBody::new(body, self.recorder().body_cap, req_tx);
        let body = match injection.and_then(|i| i.apply(&mut parts)) {
            Some(substituted) => {
                // The copy is taken from the original (already whole) body; the origin gets
                // the substituted one.
                tokio::spawn(async move {
                    let _ = tee.collect().await;
                });
                full(substituted)
            }
            None => tee.boxed(),
        };
        let mut out = Request::from_parts(parts, body);
        prepare_request(&mut out, self.meta.origin(), upstream.is_h2(), upgrade);
        let request = SentRequest {
            headers,
            redacted,
            body: req_rx,
        };

        let timeout = self.ctx.response_timeout();
        let (status, msg) = match tokio::time::timeout(timeout, upstream.send(out)).await {
            Ok(Ok(response)) => {
                let ttfb = ms(self.start, Instant::now());
                self.t.ttfb_ms = Some(ttfb);
                return Ok(Sent {
                    request,
                    response,
                    ttfb,
                });
            }
            Ok(Err(e)) => (
                StatusCode::BAD_GATEWAY,
                format!("greyproxy: origin error: {e}\n"),
            ),
            Err(_) => (
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "greyproxy: the origin did not answer within {} s\n",
                    timeout.as_secs()
                ),
            ),
        };
        Err(self.failed(request, status, msg).await)
    }

    /// Records an exchange the origin failed and returns the proxy's answer.
    async fn failed(
        &mut self,
        request: SentRequest,
        status: StatusCode,
        msg: String,
    ) -> Response<Body> {
        let recorder = self.ctx.recorder().clone();
        let mut t = std::mem::take(&mut self.t);
        tracing::debug!(host = %t.destination_host, %status, "{}", msg.trim());
        // The request body copy is complete or abandoned by now (the send finished or timed
        // out).
        let req_cap = tokio::time::timeout(Duration::from_millis(100), request.body)
            .await
            .ok()
            .and_then(Result::ok);
        fill_request(
            &mut t,
            &request.headers,
            request.redacted,
            req_cap.as_ref(),
            recorder.body_cap,
        );
        t.result = TransactionResult::Error;
        t.error = Some(msg.trim().to_string());
        let resp = text_response(status, msg);
        fill_response(
            &mut t,
            status.as_u16(),
            resp.headers(),
            self.live.redactor.headers(resp.headers()),
            None,
            0,
        );
        t.duration_ms = Some(ms(self.start, Instant::now()));
        recorder.record(t);
        resp
    }

    /// Stage 4a: the origin switched protocols (WebSocket). The upgrade exchange is recorded at
    /// once and the relay, which records each message, takes both connections over.
    async fn switch_protocols(
        mut self,
        sent: Sent,
        client_upgrade: Option<OnUpgrade>,
    ) -> Response<Body> {
        let Sent {
            request,
            mut response,
            ttfb,
        } = sent;
        let recorder = self.ctx.recorder().clone();
        let t = &mut self.t;
        let resp_headers = response.headers().clone();
        let req_cap = request.body.await.ok();
        fill_request(
            t,
            &request.headers,
            request.redacted,
            req_cap.as_ref(),
            recorder.body_cap,
        );
        fill_response(
            t,
            101,
            &resp_headers,
            self.live.redactor.headers(&resp_headers),
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
        recorder.record(self.t);
        if let Some(client_up) = client_upgrade {
            let server_up = hyper::upgrade::on(&mut response);
            let ctx = self.ctx.clone();
            tokio::spawn(async move {
                // hyper hands over bytes that arrived together with the 101 inside Upgraded,
                // so a server that speaks first loses nothing.
                let (Ok(c), Ok(s)) = (client_up.await, server_up.await) else {
                    return;
                };
                super::wsrelay::relay(ctx, c, s, upgrade_row, negotiated).await;
            });
        }
        response.map(|b| b.boxed())
    }

    /// Stage 4b: the response cascade of the middlewares, if any.
    async fn response_hooks(
        &mut self,
        req_headers: &HeaderMap,
        ttfb: u64,
        hooks: &Hooks,
        resp: Response<Body>,
    ) -> Response<Body> {
        let Some(cx) = &hooks.cx else {
            return resp;
        };
        hook::on_response(
            self.ctx.middlewares(),
            cx,
            req_headers,
            &hooks.trace,
            ttfb as i64,
            resp,
            &mut self.t.middleware_events,
        )
        .await
    }

    /// Stage 5: the response streams to the client while a copy of its body is taken; the
    /// transaction is completed and recorded when both copies are done: where the response
    /// body ends for small bodies (a few µs of work, less than a task's hand-over), on the
    /// blocking pool for large ones.
    fn record(self, resp: Response<Body>, request: SentRequest) -> Response<Body> {
        let Exchange {
            ctx,
            live,
            mut t,
            start,
            ..
        } = self;
        let recorder = ctx.recorder().clone();
        let body_cap = recorder.body_cap;
        let status = resp.status();
        let resp_headers = resp.headers().clone();
        let (parts, body) = resp.into_parts();
        // Completed where the response body ends, on the connection's own task: a task per
        // exchange cost a spawn and two wake-ups, which at one connection woke the idle worker
        // thread every request (docs/bench-log/issue-19.md).
        let complete = move |req_cap: Option<Captured>, resp_cap: Captured| {
            let end = resp_cap.ended;
            let resp_cap = Some(resp_cap);
            t.duration_ms = Some(ms(start, end));
            let cap = recorder.body_cap;
            let redacted_resp = live.redactor.headers(&resp_headers);
            let small = req_cap
                .as_ref()
                .is_none_or(|c| c.bytes.len() <= INLINE_DECODE)
                && resp_cap
                    .as_ref()
                    .is_none_or(|c| c.bytes.len() <= INLINE_DECODE);
            let fill = move || {
                fill_request(
                    &mut t,
                    &request.headers,
                    request.redacted,
                    req_cap.as_ref(),
                    cap,
                );
                fill_response(
                    &mut t,
                    status.as_u16(),
                    &resp_headers,
                    redacted_resp,
                    resp_cap.as_ref(),
                    cap,
                );
                // Only streams need it (time to first token); offsets are wire offsets, which
                // index the stored body only when it was not content-encoded.
                if let Some(c) = &resp_cap
                    && t.response_body_decoding.as_deref() == Some("identity")
                    && t.response_content_type
                        .as_deref()
                        .is_some_and(|ct| ct.starts_with("text/event-stream"))
                {
                    t.response_timeline = c
                        .timeline
                        .iter()
                        .map(|&(end, at)| [end, ms(start, at)])
                        .collect();
                }
                t
            };
            // Decoding a few MiB takes milliseconds: keep that off the async workers. Small
            // bodies (the usual API call) are cheaper to finish here than to hand over.
            match tokio::runtime::Handle::try_current() {
                Ok(rt) if !small => {
                    rt.spawn_blocking(move || recorder.record(fill()));
                }
                _ => recorder.record(fill()),
            }
        };
        let mut req_body = request.body;
        let body = TeeBody::calling(body, body_cap, move |resp_cap: Captured| {
            match req_body.try_recv() {
                Ok(req_cap) => complete(Some(req_cap), resp_cap),
                Err(oneshot::error::TryRecvError::Closed) => complete(None, resp_cap),
                // The origin answered before the request body ended (a streaming upload):
                // wait for it off this task.
                Err(oneshot::error::TryRecvError::Empty) => {
                    if let Ok(rt) = tokio::runtime::Handle::try_current() {
                        rt.spawn(async move { complete(req_body.await.ok(), resp_cap) });
                    } else {
                        complete(None, resp_cap);
                    }
                }
            }
        })
        .boxed();
        Response::from_parts(parts, body)
    }
}
