//! The HTTP proxy front end: `CONNECT host:port` tunnels and absolute-form plain-HTTP
//! requests, each decided by policy before anything is forwarded.
//!
//! The first request head is read by hand so that the decision (and a hold, which notices a
//! client hanging up) happens before hyper takes over. Allowed plain-HTTP connections are then
//! served by hyper, which forwards each request to its origin and decides follow-up requests
//! on the same keep-alive connection per request.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::head::{Head, HeadError, absolute_target, read_head};
use super::tunnel::{Prefixed, ProxyCtx, client_gone, connect_upstream, identity};
use crate::accept::accept_loop;
use crate::mitm::intercept::{self, Tunnel};
use crate::policy::tracker::Tracked;
use crate::policy::{ConnRequest, FrontEnd, Verdict};

type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// An origin (host, port) and the HTTP/1.1 connection to it.
type Upstream = (
    (String, u16),
    hyper::client::conn::http1::SendRequest<Incoming>,
);

/// Accepts HTTP-proxy clients until shutdown.
pub async fn serve(listener: TcpListener, ctx: ProxyCtx) {
    let shutdown = ctx.shutdown.clone();
    accept_loop(listener, shutdown, "http proxy", |s, peer| {
        handle(s, peer, ctx.clone())
    })
    .await;
}

fn plain_response(status: StatusCode, body: String) -> Vec<u8> {
    format!(
        "HTTP/1.1 {} {}\r\nProxy-Agent: greyproxy\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len(),
        body
    )
    .into_bytes()
}

fn blocked_text(host: &str, port: u16, verdict: &Verdict) -> String {
    format!(
        "greyproxy: connection to {host}:{port} blocked ({})\n",
        verdict.reason.as_str().replace('_', " ")
    )
}

async fn handle(mut stream: TcpStream, peer: SocketAddr, ctx: ProxyCtx) -> anyhow::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::with_capacity(4096);
    let head =
        match tokio::time::timeout(ctx.handshake_timeout, read_head(&mut stream, &mut buf)).await {
            Err(_) => anyhow::bail!("no request head within {:?}", ctx.handshake_timeout),
            Ok(Err(e @ HeadError::BadTarget(_))) => {
                let _ = stream
                    .write_all(&plain_response(StatusCode::BAD_REQUEST, format!("{e}\n")))
                    .await;
                return Err(e.into());
            }
            Ok(Err(HeadError::TooLarge)) => {
                let _ = stream
                    .write_all(&plain_response(
                        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                        "request head too large\n".into(),
                    ))
                    .await;
                anyhow::bail!("request head too large");
            }
            Ok(Err(e)) => return Err(e.into()),
            Ok(Ok(h)) => h,
        };
    let container = identity(head.username.as_deref(), peer);
    let req = ConnRequest {
        container: container.clone(),
        host: head.host.clone(),
        port: head.port,
        resolved: None,
        front: FrontEnd::Http,
        tunnel: head.method.eq_ignore_ascii_case("CONNECT"),
    };
    let verdict = ctx.policy.decide(&req, client_gone(&stream)).await;
    if !verdict.allowed() {
        stream
            .write_all(&plain_response(
                StatusCode::FORBIDDEN,
                blocked_text(&head.host, head.port, &verdict),
            ))
            .await?;
        let _ = stream.shutdown().await;
        return Ok(());
    }
    if head.method.eq_ignore_ascii_case("CONNECT") {
        connect_tunnel(stream, buf, head, container, verdict, ctx).await
    } else {
        serve_plain(stream, buf, container, req, verdict, ctx).await
    }
}

async fn connect_tunnel(
    mut stream: TcpStream,
    buf: Vec<u8>,
    head: Head,
    container: String,
    mut verdict: Verdict,
    ctx: ProxyCtx,
) -> anyhow::Result<()> {
    let upstream = match connect_upstream(&head.host, head.port, ctx.connect_timeout).await {
        Ok(u) => u,
        Err(e) => {
            verdict.log_mitm("connect_failed");
            let body = format!(
                "greyproxy: cannot connect to {}:{}: {e}\n",
                head.host, head.port
            );
            stream
                .write_all(&plain_response(StatusCode::BAD_GATEWAY, body))
                .await?;
            return Ok(());
        }
    };
    stream
        .write_all(b"HTTP/1.1 200 Connection established\r\nProxy-Agent: greyproxy\r\n\r\n")
        .await?;
    let early = buf[head.len..].to_vec();
    let tunnel = Tunnel {
        container,
        host: head.host.clone(),
        port: head.port,
    };
    intercept::handle(
        ctx.mitm.clone(),
        stream,
        upstream,
        early,
        tunnel,
        verdict,
        ctx.shutdown.clone(),
    )
    .await?;
    Ok(())
}

/// Per-connection state of a plain-HTTP proxy connection.
struct PlainConn {
    ctx: ProxyCtx,
    container: String,
    /// The destination decided before hyper took over; its first request is not decided again.
    first: Mutex<Option<(String, u16)>>,
    /// Keeps rule registrations alive; any revoked rule cuts the whole client connection.
    tracked: Mutex<Vec<Tracked>>,
    cut: CancellationToken,
    /// One upstream connection, reused while requests go to the same origin.
    upstream: tokio::sync::Mutex<Option<Upstream>>,
}

impl PlainConn {
    fn keep(&self, tracked: Option<Tracked>) {
        if let Some(t) = tracked {
            let token = t.token.clone();
            let cut = self.cut.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = token.cancelled() => cut.cancel(),
                    _ = cut.cancelled() => {}
                }
            });
            self.tracked
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(t);
        }
    }
}

async fn serve_plain(
    stream: TcpStream,
    buf: Vec<u8>,
    container: String,
    req: ConnRequest,
    mut verdict: Verdict,
    ctx: ProxyCtx,
) -> anyhow::Result<()> {
    let shutdown = ctx.shutdown.clone();
    let conn = Arc::new(PlainConn {
        ctx,
        container,
        first: Mutex::new(Some((req.host.clone(), req.port))),
        tracked: Mutex::new(Vec::new()),
        cut: CancellationToken::new(),
        upstream: tokio::sync::Mutex::new(None),
    });
    conn.keep(verdict.tracked.take());
    let svc_conn = conn.clone();
    let service = service_fn(move |r: Request<Incoming>| {
        let c = svc_conn.clone();
        async move { Ok::<_, hyper::Error>(forward(c, r).await) }
    });
    let io = TokioIo::new(Prefixed::new(buf, stream));
    let serving = hyper::server::conn::http1::Builder::new()
        .preserve_header_case(true)
        .title_case_headers(false)
        .serve_connection(io, service)
        .with_upgrades();
    tokio::select! {
        r = serving => r?,
        _ = conn.cut.cancelled() => tracing::debug!("plain-http connection cut: rule revoked"),
        _ = shutdown.cancelled() => {}
    }
    Ok(())
}

fn text_response(status: StatusCode, body: String) -> Response<ProxyBody> {
    let mut r = Response::new(Full::new(Bytes::from(body)).map_err(|n| match n {}).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Headers that describe one hop and must not be forwarded (RFC 9110 §7.6.1), plus the
/// proxy's own credentials.
fn strip_hop_headers(h: &mut HeaderMap, keep_upgrade: bool) {
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
        "trailer",
    ] {
        h.remove(name);
    }
    if keep_upgrade {
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        h.remove(header::CONNECTION);
        h.remove(header::UPGRADE);
    }
}

async fn forward(conn: Arc<PlainConn>, mut req: Request<Incoming>) -> Response<ProxyBody> {
    let uri = req.uri().to_string();
    let (host, port) = match absolute_target(&uri) {
        Ok(t) => t,
        Err(e) => return text_response(StatusCode::BAD_REQUEST, format!("{e}\n")),
    };
    let already = {
        let mut first = conn.first.lock().unwrap_or_else(|p| p.into_inner());
        first.take().is_some_and(|f| f == (host.clone(), port))
    };
    if !already {
        let creq = ConnRequest {
            container: conn.container.clone(),
            host: host.clone(),
            port,
            resolved: None,
            front: FrontEnd::Http,
            tunnel: false,
        };
        let mut verdict = conn
            .ctx
            .policy
            .decide(&creq, std::future::pending::<()>())
            .await;
        if !verdict.allowed() {
            return text_response(StatusCode::FORBIDDEN, blocked_text(&host, port, &verdict));
        }
        conn.keep(verdict.tracked.take());
    }
    let wants_upgrade = req.headers().contains_key(header::UPGRADE);
    // Origin-form towards the origin, with a Host header.
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    match path.parse() {
        Ok(p) => *req.uri_mut() = p,
        Err(_) => return text_response(StatusCode::BAD_REQUEST, "bad request path\n".into()),
    }
    if !req.headers().contains_key(header::HOST) {
        let host_hdr = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        let host_hdr = if port == 80 {
            host_hdr
        } else {
            format!("{host_hdr}:{port}")
        };
        if let Ok(v) = HeaderValue::from_str(&host_hdr) {
            req.headers_mut().insert(header::HOST, v);
        }
    }
    strip_hop_headers(req.headers_mut(), wants_upgrade);
    let client_upgrade = wants_upgrade.then(|| hyper::upgrade::on(&mut req));

    let mut slot = conn.upstream.lock().await;
    let key = (host.clone(), port);
    let reuse = matches!(&*slot, Some((k, s)) if *k == key && !s.is_closed());
    if !reuse {
        *slot = None;
        let stream = match connect_upstream(&host, port, conn.ctx.connect_timeout).await {
            Ok(s) => s,
            Err(e) => {
                return text_response(
                    StatusCode::BAD_GATEWAY,
                    format!("greyproxy: cannot connect to {host}:{port}: {e}\n"),
                );
            }
        };
        let (sender, connection) = match hyper::client::conn::http1::Builder::new()
            .preserve_header_case(true)
            .handshake(TokioIo::new(stream))
            .await
        {
            Ok(x) => x,
            Err(e) => {
                return text_response(
                    StatusCode::BAD_GATEWAY,
                    format!("greyproxy: upstream handshake failed: {e}\n"),
                );
            }
        };
        tokio::spawn(async move {
            if let Err(e) = connection.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended");
            }
        });
        *slot = Some((key, sender));
    }
    let Some((_, sender)) = slot.as_mut() else {
        return text_response(StatusCode::BAD_GATEWAY, "no upstream\n".into());
    };
    if sender.ready().await.is_err() {
        *slot = None;
        return text_response(StatusCode::BAD_GATEWAY, "upstream closed\n".into());
    }
    let result = sender.send_request(req).await;
    drop(slot);
    let mut resp = match result {
        Ok(r) => r,
        Err(e) => {
            return text_response(
                StatusCode::BAD_GATEWAY,
                format!("greyproxy: upstream error: {e}\n"),
            );
        }
    };
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(client_up) = client_upgrade {
            let server_up = hyper::upgrade::on(&mut resp);
            let cut = conn.cut.clone();
            tokio::spawn(async move {
                let (Ok(c), Ok(s)) = (client_up.await, server_up.await) else {
                    return;
                };
                let mut c = TokioIo::new(c);
                let mut s = TokioIo::new(s);
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut c, &mut s) => {}
                    _ = cut.cancelled() => {}
                }
            });
        }
        return resp.map(|b| b.boxed());
    }
    strip_hop_headers(resp.headers_mut(), false);
    resp.map(|b| b.boxed())
}
