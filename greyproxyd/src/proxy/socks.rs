//! The SOCKS5 front end: handshake ([`super::socks5`]), policy decision (a hold notices the
//! client hanging up), upstream connect, reply, tunnel.

use std::net::SocketAddr;

use greyproxy_protocol::MitmOutcome;
use tokio::net::{TcpListener, TcpStream};

use super::dispatch;
use super::socks5::{self, REP_NOT_ALLOWED, REP_SUCCEEDED, reply_for_connect_error, send_reply};
use super::tunnel::{ProxyCtx, identity};
use crate::accept::accept_loop;
use crate::mitm::intercept::Tunnel;
use crate::net::{client_gone, connect_upstream};
use crate::policy::{ConnRequest, FrontEnd};

/// Accepts SOCKS5 clients until shutdown.
pub(crate) async fn serve(listener: TcpListener, ctx: ProxyCtx) {
    let stop = ctx.shutdown.begun_token();
    accept_loop(listener, stop, "socks5", |s, peer| {
        ctx.shutdown.track(handle(s, peer, ctx.clone()))
    })
    .await;
}

async fn handle(mut stream: TcpStream, peer: SocketAddr, ctx: ProxyCtx) -> anyhow::Result<()> {
    let _ = stream.set_nodelay(true);
    let request = tokio::time::timeout(ctx.handshake_timeout, socks5::handshake(&mut stream))
        .await
        .map_err(|_| anyhow::anyhow!("no socks5 handshake within {:?}", ctx.handshake_timeout))??;
    let host = request.target.host();
    let port = request.target.port();
    let req = ConnRequest {
        container: identity(request.username.as_deref(), peer),
        host: host.clone(),
        port,
        resolved: ctx.dns.resolve_host(&host),
        front: FrontEnd::Socks5,
        tunnel: true,
    };
    let mut verdict = ctx.policy.decide(&req, client_gone(&stream)).await;
    if !verdict.allowed() {
        send_reply(&mut stream, REP_NOT_ALLOWED, None).await?;
        return Ok(());
    }
    let hosts = ctx.mitm.hosts();
    let upstream = match connect_upstream(&hosts, &host, port, ctx.connect_timeout).await {
        // A name that resolved to one of the daemon's own listeners.
        Ok(u) if u.peer_addr().is_ok_and(|a| ctx.policy.is_self_addr(a)) => {
            verdict.log_mitm(MitmOutcome::ConnectFailed);
            send_reply(&mut stream, REP_NOT_ALLOWED, None).await?;
            return Ok(());
        }
        Ok(u) => u,
        Err(e) => {
            verdict.log_mitm(MitmOutcome::ConnectFailed);
            tracing::debug!(%host, port, error = %e, "socks5 upstream connect failed");
            send_reply(&mut stream, reply_for_connect_error(&e), None).await?;
            return Ok(());
        }
    };
    send_reply(&mut stream, REP_SUCCEEDED, upstream.local_addr().ok()).await?;
    let tunnel = Tunnel {
        container: req.container.clone(),
        host,
        port,
    };
    dispatch::handle(
        ctx.mitm.clone(),
        stream,
        upstream,
        Vec::new(),
        tunnel,
        verdict,
        ctx.shutdown.cut_token(),
    )
    .await?;
    Ok(())
}
