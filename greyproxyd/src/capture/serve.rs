//! Serving a client connection (HTTP/1.1 or HTTP/2) whose every exchange goes through the
//! recording forwarder; at shutdown the connection finishes the exchange in flight and closes.

use std::io;
use std::sync::Arc;

use std::future::Future;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::{Service, service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::exchange::{CaptureCtx, ExchangeMeta, forward};
use super::upstream::Upstream;
use crate::http::Body;

/// The per-connection service: every request goes through [`forward`].
fn recording_service(
    capture: Arc<CaptureCtx>,
    up: Arc<Upstream>,
    meta: Arc<ExchangeMeta>,
) -> impl Service<
    Request<Incoming>,
    Response = Response<Body>,
    Error = hyper::Error,
    Future = impl Future<Output = Result<Response<Body>, hyper::Error>> + Send,
> + Clone {
    service_fn(move |req| {
        let (c, u, m) = (capture.clone(), up.clone(), meta.clone());
        async move { Ok::<_, hyper::Error>(forward(c, u, m, req).await) }
    })
}

/// Serves HTTP/1.1 from the client, recording each exchange.
pub(crate) async fn serve_h1<S>(
    capture: Arc<CaptureCtx>,
    up: Arc<Upstream>,
    meta: Arc<ExchangeMeta>,
    io: S,
) -> io::Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let stopping = capture.shutdown().begun_token();
    let svc = recording_service(capture, up, meta);
    let conn = hyper::server::conn::http1::Builder::new()
        .preserve_header_case(true)
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => return r.map_err(io::Error::other),
        _ = stopping.cancelled() => conn.as_mut().graceful_shutdown(),
    }
    conn.await.map_err(io::Error::other)
}

/// Serves HTTP/2 from the client, recording each stream.
pub(crate) async fn serve_h2<S>(
    capture: Arc<CaptureCtx>,
    up: Arc<Upstream>,
    meta: Arc<ExchangeMeta>,
    io: S,
) -> io::Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let stopping = capture.shutdown().begun_token();
    let svc = recording_service(capture, up, meta);
    let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => return r.map_err(io::Error::other),
        _ = stopping.cancelled() => conn.as_mut().graceful_shutdown(),
    }
    conn.await.map_err(io::Error::other)
}
