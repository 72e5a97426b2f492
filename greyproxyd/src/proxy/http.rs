//! The HTTP proxy front end: `CONNECT host:port` tunnels and absolute-form plain-HTTP
//! requests, each decided by policy before anything is forwarded.
//!
//! The first request head is read by hand so that the decision (and a hold, which notices a
//! client hanging up) happens before hyper takes over. Allowed plain-HTTP connections are then
//! served by hyper, which forwards each request to its origin and decides follow-up requests
//! on the same keep-alive connection per request.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use greyproxy_protocol::MitmOutcome;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::dispatch;
use super::head::{Head, HeadError, absolute_target, read_head};
use super::tunnel::{ProxyCtx, identity};
use crate::accept::accept_loop;
use crate::capture::exchange::{ExchangeMeta, forward};
use crate::capture::upstream::Upstream;
use crate::http::{Body, text_response};
use crate::mitm::intercept::Tunnel;
use crate::net::{Prefixed, boxed_io, client_gone, connect_upstream, dial_fn};
use crate::policy::tracker::Tracked;
use crate::policy::{ConnRequest, FrontEnd, Verdict};

/// Accepts HTTP-proxy clients until shutdown.
pub(crate) async fn serve(listener: TcpListener, ctx: ProxyCtx) {
    let stop = ctx.shutdown.begun_token();
    accept_loop(listener, stop, "http proxy", |s, peer| {
        ctx.shutdown.track(handle(s, peer, ctx.clone()))
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
        resolved: ctx.dns.resolve_host(&head.host),
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
    let hosts = ctx.mitm.hosts();
    let upstream = match connect_upstream(&hosts, &head.host, head.port, ctx.connect_timeout).await
    {
        // A name that resolved to one of the daemon's own listeners.
        Ok(u) if u.peer_addr().is_ok_and(|a| ctx.policy.is_self_addr(a)) => {
            verdict.log_mitm(MitmOutcome::ConnectFailed);
            let body = format!(
                "greyproxy: connection to {}:{} blocked (self)\n",
                head.host, head.port
            );
            stream
                .write_all(&plain_response(StatusCode::FORBIDDEN, body))
                .await?;
            return Ok(());
        }
        Ok(u) => u,
        Err(e) => {
            verdict.log_mitm(MitmOutcome::ConnectFailed);
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
    dispatch::handle(
        ctx.mitm.clone(),
        stream,
        upstream,
        early,
        tunnel,
        verdict,
        ctx.shutdown.cut_token(),
    )
    .await?;
    Ok(())
}

/// An origin (host, port) and the connection to it.
type Origin = ((String, u16), Arc<Upstream>);

/// Per-connection state of a plain-HTTP proxy connection.
struct PlainConn {
    ctx: ProxyCtx,
    container: String,
    /// The destination decided before hyper took over (with its rule); its first request is not
    /// decided again.
    first: Mutex<Option<(String, u16, Option<u64>)>>,
    /// Keeps rule registrations alive; any revoked rule cuts the whole client connection.
    tracked: Mutex<Vec<Tracked>>,
    /// Cancelled when a tracked rule is revoked, and when the connection ends: each rule's
    /// watcher task waits on it, so none outlives the connection.
    cut: CancellationToken,
    /// One origin connection, reused while requests go to the same origin.
    upstream: tokio::sync::Mutex<Option<Origin>>,
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

    /// The origin connection for `host:port`, dialled lazily on first use.
    async fn upstream(&self, host: &str, port: u16) -> Arc<Upstream> {
        let mut slot = self.upstream.lock().await;
        let key = (host.to_string(), port);
        if let Some((k, u)) = slot.as_ref()
            && *k == key
        {
            return u.clone();
        }
        let (h, timeout) = (host.to_string(), self.ctx.connect_timeout);
        let hosts = self.ctx.mitm.hosts();
        let policy = self.ctx.policy.clone();
        let dial = dial_fn(move || {
            let (h, hosts, policy) = (h.clone(), hosts.clone(), policy.clone());
            async move {
                let tcp = connect_upstream(&hosts, &h, port, timeout).await?;
                // A name that resolved to one of the daemon's own listeners.
                if tcp.peer_addr().is_ok_and(|a| policy.is_self_addr(a)) {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::PermissionDenied,
                        format!("{h}:{port} is the daemon itself (self)"),
                    ));
                }
                Ok(boxed_io(tcp))
            }
        });
        let up = Arc::new(Upstream::lazy(false, dial));
        *slot = Some((key, up.clone()));
        up
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
    let shutdown = ctx.shutdown.cut_token();
    let conn = Arc::new(PlainConn {
        ctx,
        container,
        first: Mutex::new(Some((req.host.clone(), req.port, verdict.rule_id))),
        tracked: Mutex::new(Vec::new()),
        cut: CancellationToken::new(),
        upstream: tokio::sync::Mutex::new(None),
    });
    // Ends every rule watcher `keep` spawned when this function returns, however it returns
    // (a watcher used to live until its rule was revoked: one task per plain-HTTP connection).
    let _watchers = conn.cut.clone().drop_guard();
    conn.keep(verdict.tracked.take());
    let svc_conn = conn.clone();
    let service = service_fn(move |r: Request<Incoming>| {
        let c = svc_conn.clone();
        async move { Ok::<_, hyper::Error>(proxy_request(c, r).await) }
    });
    let io = TokioIo::new(Prefixed::new(buf, stream));
    let serving = hyper::server::conn::http1::Builder::new()
        .preserve_header_case(true)
        .serve_connection(io, service)
        .with_upgrades();
    tokio::pin!(serving);
    let stopping = conn.ctx.shutdown.begun_token();
    tokio::select! {
        r = serving.as_mut() => r?,
        _ = conn.cut.cancelled() => tracing::debug!("plain-http connection cut: rule revoked"),
        _ = shutdown.cancelled() => {}
        _ = stopping.cancelled() => {
            // Shutdown began: finish the request in flight (within the grace period), then
            // close instead of waiting for the next one on an idle keep-alive connection.
            serving.as_mut().graceful_shutdown();
            tokio::select! {
                r = serving => r?,
                _ = conn.cut.cancelled() => {}
                _ = shutdown.cancelled() => {}
            }
        }
    }
    Ok(())
}

/// One absolute-form request: decided by policy (unless it is the first one, already decided),
/// then forwarded and recorded as `http://`.
async fn proxy_request(conn: Arc<PlainConn>, req: Request<Incoming>) -> Response<Body> {
    let uri = req.uri().to_string();
    let (host, port) = match absolute_target(&uri) {
        Ok(t) => t,
        Err(e) => return text_response(StatusCode::BAD_REQUEST, format!("{e}\n")),
    };
    let first = {
        let mut first = conn.first.lock().unwrap_or_else(|p| p.into_inner());
        match first.take() {
            Some((h, p, rule)) if h == host && p == port => Some(rule),
            _ => None,
        }
    };
    let rule_id = match first {
        Some(rule) => rule,
        None => {
            let creq = ConnRequest {
                container: conn.container.clone(),
                host: host.clone(),
                port,
                resolved: conn.ctx.dns.resolve_host(&host),
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
            let rule = verdict.rule_id;
            conn.keep(verdict.tracked.take());
            rule
        }
    };
    let meta = Arc::new(ExchangeMeta {
        container: conn.container.clone(),
        host: host.clone(),
        port,
        scheme: "http",
        rule_id,
        plain_proxy: true,
    });
    let up = conn.upstream(&host, port).await;
    forward(conn.ctx.mitm.capture.clone(), up, meta, req).await
}
