//! The cascades applied to live HTTP messages in the forwarder.
//!
//! Filters are decided from the head first: when no step can match, the message streams on
//! untouched and nothing is buffered. Otherwise the body is read up to the effective limit —
//! within it the middlewares see it whole; beyond it they see `null` and the buffered prefix
//! plus the rest stream on unless a rewrite replaced the body. Memory per message is thus
//! bounded by the limit (greyproxy buffers every body whole).

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use greyproxy_protocol::middleware::MiddlewareEvent;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Version, header};
use http_body::Frame;
use http_body_util::{BodyExt, BodyStream, StreamBody};

use super::Middlewares;
use super::cascade::{
    Context, RequestSide, RequestWork, ResponseWork, run_request, run_response, wire_headers,
};
use crate::http::Body;
use crate::http::body::full;
use crate::http::percent::{self, Plus};
use crate::live::Live;

/// A body read up to a limit.
struct Buffered {
    /// Everything read so far.
    head: Bytes,
    /// Trailers, when the body ended with them.
    trailers: Option<HeaderMap>,
    /// The unread rest; `None` once the body ended within the limit.
    rest: Option<Body>,
}

impl Buffered {
    /// The whole body, when it ended within the limit.
    fn whole(&self) -> Option<Bytes> {
        self.rest.is_none().then(|| self.head.clone())
    }

    /// The body to send on: what was read, then whatever is left.
    fn into_body(self) -> Body {
        let mut frames: Vec<Result<Frame<Bytes>, hyper::Error>> = Vec::new();
        if !self.head.is_empty() {
            frames.push(Ok(Frame::data(self.head)));
        }
        if let Some(t) = self.trailers {
            frames.push(Ok(Frame::trailers(t)));
        }
        let first = futures_util::stream::iter(frames);
        match self.rest {
            None => StreamBody::new(first).boxed(),
            Some(rest) => {
                let chained = futures_util::StreamExt::chain(first, BodyStream::new(rest));
                BodyExt::boxed(StreamBody::new(chained))
            }
        }
    }
}

/// Reads `body` until it ends or more than `limit` bytes came.
async fn buffer(mut body: Body, limit: usize) -> Result<Buffered, hyper::Error> {
    let mut head = BytesMut::new();
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        match frame.into_data() {
            Ok(d) => {
                head.extend_from_slice(&d);
                if head.len() > limit {
                    return Ok(Buffered {
                        head: head.freeze(),
                        trailers: None,
                        rest: Some(body),
                    });
                }
            }
            Err(f) => {
                if let Ok(t) = f.into_trailers() {
                    trailers = Some(t);
                }
            }
        }
    }
    Ok(Buffered {
        head: head.freeze(),
        trailers,
        rest: None,
    })
}

/// Longest the unread rest of a request body is read and discarded after a deny or a body
/// replacement, so that the client can finish sending and read the answer (HTTP/1.1 clients
/// that are still writing otherwise see a reset; HTTP/2 streams a cancel).
const DRAIN_LIMIT: u64 = 64 << 20;
/// How long that may take.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads and discards what is left of a body, within [`DRAIN_LIMIT`] and [`DRAIN_TIME`].
async fn drain(rest: Option<Body>) {
    let Some(mut body) = rest else { return };
    let work = async {
        let mut seen = 0u64;
        while let Some(Ok(f)) = body.frame().await {
            if let Some(d) = f.data_ref() {
                seen += d.len() as u64;
                if seen > DRAIN_LIMIT {
                    break;
                }
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, work).await;
}

/// The facts of a request every hook needs. `plain_proxy`: absolute-form request on the
/// HTTP proxy (hook labels `http-*`, absolute `uri`); otherwise a tunnelled exchange (`mitm-*`).
pub(crate) fn context<B>(
    req: &Request<B>,
    container: &str,
    plain_proxy: bool,
    tls: bool,
    live: Arc<Live>,
) -> Context {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_string()))
        .unwrap_or_default();
    let uri = if plain_proxy {
        req.uri().to_string()
    } else {
        req.uri()
            .path_and_query()
            .map_or("/".into(), |p| p.as_str().to_string())
    };
    Context {
        host,
        // greyproxy filters on Go's decoded `URL.Path`; `+` is a literal in a path.
        path: percent::decode_lossy(req.uri().path(), Plus::Literal).into_owned(),
        uri,
        method: req.method().as_str().to_string(),
        proto: match req.version() {
            Version::HTTP_2 => "HTTP/2.0",
            Version::HTTP_10 => "HTTP/1.0",
            _ => "HTTP/1.1",
        }
        .into(),
        container: container.to_string(),
        tls,
        pipeline: if plain_proxy { "http" } else { "mitm" },
        live,
    }
}

/// A response the proxy makes for a deny or block.
fn stop_response(
    status: u16,
    body: Option<Vec<u8>>,
    by: &str,
    fallback: Option<&str>,
) -> Response<Body> {
    let body = match (body, fallback) {
        (Some(b), _) => b,
        (None, Some(reason)) => {
            format!("greyproxy: middleware {by} unavailable ({reason}); failing closed\n")
                .into_bytes()
        }
        (None, None) => Vec::new(),
    };
    let mut r = Response::new(full(Bytes::from(body.clone())));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN);
    if !body.is_empty() {
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
    }
    r
}

/// What the request side leaves for the response side.
#[derive(Debug, Default)]
pub(crate) struct RequestTrace {
    /// The request cascade ran (some step matched).
    pub(crate) ran: bool,
    /// The request body before the cascade, when it was buffered whole.
    pub(crate) original_body: Option<Bytes>,
}

/// Runs the request cascade. `Ok` carries the request to forward; `Err` the proxy's answer
/// (a deny). Events are appended to `events` either way.
pub(crate) async fn on_request(
    mw: &Middlewares,
    cx: &Context,
    req: Request<Body>,
    events: &mut Vec<MiddlewareEvent>,
) -> Result<(Request<Body>, RequestTrace), Response<Body>> {
    let steps = mw.steps(false);
    if steps.is_empty() {
        return Ok((req, RequestTrace::default()));
    }
    let llm = cx.is_llm(false);
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let input = cx.filter_input(false, llm, ct);
    // Only a step that matches the original head can start the cascade (later steps can only
    // change because an earlier one ran), so this decides buffering exactly.
    if !steps.iter().any(|s| s.filter.matches(&input)) {
        return Ok((req, RequestTrace::default()));
    }
    let (mut parts, body) = req.into_parts();
    let buffered = match buffer(body, mw.body_limit()).await {
        Ok(b) => b,
        Err(e) => {
            return Err(stop_response(
                400,
                Some(format!("greyproxy: reading the request body failed: {e}\n").into_bytes()),
                "",
                None,
            ));
        }
    };
    let original = buffered.whole();
    let mut work = RequestWork {
        headers: std::mem::take(&mut parts.headers),
        body: original.clone(),
        body_replaced: false,
    };
    if let Some(stop) = run_request(mw, &steps, cx, llm, &mut work, events).await {
        drain(buffered.rest).await;
        return Err(stop_response(
            stop.status,
            stop.body,
            &stop.by,
            stop.fallback,
        ));
    }
    parts.headers = work.headers;
    let body = if work.body_replaced {
        parts.headers.remove(header::CONTENT_LENGTH);
        parts.headers.remove(header::TRANSFER_ENCODING);
        drain(buffered.rest).await;
        full(work.body.unwrap_or_default())
    } else {
        buffered.into_body()
    };
    Ok((
        Request::from_parts(parts, body),
        RequestTrace {
            ran: true,
            original_body: original,
        },
    ))
}

/// Runs the response cascade and returns what the client gets.
pub(crate) async fn on_response(
    mw: &Middlewares,
    cx: &Context,
    request_headers: &HeaderMap,
    trace: &RequestTrace,
    duration_ms: i64,
    resp: Response<Body>,
    events: &mut Vec<MiddlewareEvent>,
) -> Response<Body> {
    let steps = mw.steps(true);
    if steps.is_empty() {
        return resp;
    }
    let llm = cx.is_llm(true);
    let ct = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let input = cx.filter_input(true, llm, ct);
    if !steps.iter().any(|s| s.filter.matches(&input)) {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let buffered = match buffer(body, mw.body_limit()).await {
        Ok(b) => b,
        Err(e) => {
            return stop_response(
                502,
                Some(
                    format!("greyproxy: reading the origin's response failed: {e}\n").into_bytes(),
                ),
                "",
                None,
            );
        }
    };
    let mut work = ResponseWork {
        status: parts.status.as_u16(),
        headers: parts.headers.clone(),
        body: buffered.whole(),
        rewritten: false,
        body_replaced: false,
        duration_ms,
    };
    let req_side = RequestSide {
        headers: wire_headers(request_headers),
        body: if trace.ran {
            trace.original_body.clone()
        } else {
            None
        },
    };
    if let Some(stop) = run_response(mw, &steps, cx, llm, &req_side, &mut work, events).await {
        return stop_response(stop.status, stop.body, &stop.by, stop.fallback);
    }
    if !work.rewritten {
        return Response::from_parts(parts, buffered.into_body());
    }
    parts.status = StatusCode::from_u16(work.status).unwrap_or(parts.status);
    parts.headers = work.headers;
    let body = if work.body_replaced {
        parts.headers.remove(header::CONTENT_LENGTH);
        parts.headers.remove(header::TRANSFER_ENCODING);
        full(work.body.unwrap_or_default())
    } else {
        buffered.into_body()
    };
    Response::from_parts(parts, body)
}
