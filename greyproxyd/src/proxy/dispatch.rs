//! Sniff and dispatch: what happens to an allowed tunnel once the client was told it is
//! connected. Its first bytes decide: TLS is intercepted (`mitm`), plaintext HTTP is served
//! through the recorder, anything else (or a client that waits for the server to speak) is
//! relayed raw. With interception off, everything is relayed raw. The outcome is written on
//! the connection's request_logs row (`mitm`).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use greyproxy_protocol::MitmOutcome;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::capture::exchange::ExchangeMeta;
use crate::capture::serve::serve_h1;
use crate::capture::upstream::Upstream;
use crate::mitm::intercept::{MitmCtx, Tunnel, intercept_tls};
use crate::net::{Prefixed, boxed_io, connect_upstream, dial_fn, relay};
use crate::policy::Verdict;

/// Plaintext HTTP request line starts (and the HTTP/2 preface).
fn looks_like_http(b: &[u8]) -> bool {
    const METHODS: &[&[u8]] = &[
        b"GET ",
        b"POST ",
        b"PUT ",
        b"HEAD ",
        b"DELETE ",
        b"OPTIONS ",
        b"PATCH ",
        b"TRACE ",
        b"PRI * ",
    ];
    METHODS.iter().any(|m| {
        let n = m.len().min(b.len());
        n >= 4 && b[..n] == m[..n]
    })
}

fn looks_like_tls(b: &[u8]) -> bool {
    b.len() >= 3 && b[0] == 0x16 && b[1] == 0x03 && b[2] <= 0x04
}

/// Handles an allowed tunnel after the client was told it is connected.
pub(crate) async fn handle(
    ctx: Arc<MitmCtx>,
    mut client: TcpStream,
    upstream: TcpStream,
    mut early: Vec<u8>,
    tunnel: Tunnel,
    mut verdict: Verdict,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let revoked = verdict.tracked.as_ref().map(|t| t.token.clone());
    if !ctx.enabled {
        verdict.log_mitm(MitmOutcome::MitmDisabled);
        return relay(client, upstream, &early, revoked, shutdown)
            .await
            .map(|_| ());
    }
    if early.is_empty() {
        let mut buf = vec![0u8; 4096];
        match tokio::time::timeout(ctx.sniff_timeout, client.read(&mut buf)).await {
            Err(_) => {
                verdict.log_mitm(MitmOutcome::ServerFirst);
                return relay(client, upstream, &[], revoked, shutdown)
                    .await
                    .map(|_| ());
            }
            Ok(Ok(0)) => {
                verdict.log_mitm(MitmOutcome::ClientClosed);
                return Ok(());
            }
            Ok(Ok(n)) => early.extend_from_slice(&buf[..n]),
            Ok(Err(e)) => return Err(e),
        }
    }
    let rule_id = verdict.rule_id;
    let cut = revoked.clone().unwrap_or_default();
    if looks_like_tls(&early) {
        if ctx.certs.current().is_none() {
            verdict.log_mitm(MitmOutcome::NoCert);
            return relay(client, upstream, &early, revoked, shutdown)
                .await
                .map(|_| ());
        }
        let work = intercept_tls(
            &ctx,
            client,
            upstream,
            early,
            &tunnel,
            rule_id,
            &mut verdict,
        );
        tokio::select! {
            r = work => r,
            _ = cut.cancelled() => Ok(()),
            _ = shutdown.cancelled() => Ok(()),
        }
    } else if looks_like_http(&early) {
        verdict.log_mitm(MitmOutcome::Http);
        let meta = Arc::new(ExchangeMeta {
            container: tunnel.container.clone(),
            host: tunnel.host.clone(),
            port: tunnel.port,
            scheme: "http",
            rule_id,
            plain_proxy: false,
        });
        let (host, port, hosts) = (tunnel.host.clone(), tunnel.port, ctx.hosts());
        let dial = dial_fn(move || {
            let (host, hosts) = (host.clone(), hosts.clone());
            async move {
                Ok(boxed_io(
                    connect_upstream(&hosts, &host, port, Duration::from_secs(10)).await?,
                ))
            }
        });
        let up = Arc::new(Upstream::new(boxed_io(upstream), false, dial).await?);
        let work = serve_h1(ctx.capture.clone(), up, meta, Prefixed::new(early, client));
        tokio::select! {
            r = work => r,
            _ = cut.cancelled() => Ok(()),
            _ = shutdown.cancelled() => Ok(()),
        }
    } else {
        verdict.log_mitm(MitmOutcome::NonTls);
        relay(client, upstream, &early, revoked, shutdown)
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing() {
        assert!(looks_like_tls(&[0x16, 0x03, 0x01, 0x02, 0x00]));
        assert!(!looks_like_tls(b"GET / HTTP/1.1"));
        assert!(looks_like_http(b"GET / HTTP/1.1\r\n"));
        assert!(looks_like_http(b"POST"));
        assert!(looks_like_http(b"PRI * HTTP/2.0"));
        assert!(!looks_like_http(b"SSH-2.0-OpenSSH"));
        assert!(!looks_like_http(b"EHLO x"));
    }
}
