//! Shared pieces of the proxy front ends: identity, upstream connect, the byte tunnel with
//! revocation, hang-up detection during holds, and a stream that replays bytes already read.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::policy::Policy;

/// What the front ends share.
#[derive(Debug, Clone)]
pub struct ProxyCtx {
    /// The policy engine.
    pub policy: Arc<Policy>,
    /// Limit for reading a request head / SOCKS handshake.
    pub handshake_timeout: Duration,
    /// Limit for connecting upstream.
    pub connect_timeout: Duration,
    /// Cancelled when the shutdown grace period is over: open tunnels are cut.
    pub shutdown: CancellationToken,
    /// Cancelled when shutdown begins: the listeners stop accepting.
    pub stop_accepting: CancellationToken,
    /// Every proxied connection, so that shutdown can wait for them to finish.
    pub conns: tokio_util::task::TaskTracker,
    /// Interception and recording.
    pub mitm: Arc<crate::mitm::intercept::MitmCtx>,
    /// IP → hostname learnt by the DNS forwarder: names connections to raw IPs.
    pub dns: Arc<crate::proxy::dns::DnsCache>,
}

/// Container name for a client: the proxy username unless empty or `proxy`, else
/// `unknown-<ip>` (docs/design.md#identity).
pub fn identity(username: Option<&str>, peer: SocketAddr) -> String {
    match username.map(str::trim) {
        Some(u) if !u.is_empty() && u != "proxy" => u.to_string(),
        _ => format!("unknown-{}", peer.ip().to_canonical()),
    }
}

/// Connects to `host:port` (hostname or IP literal) within `timeout`, with Nagle off.
pub async fn connect_upstream(host: &str, port: u16, timeout: Duration) -> io::Result<TcpStream> {
    let fut = async {
        match host.parse::<std::net::IpAddr>() {
            Ok(ip) => TcpStream::connect((ip, port)).await,
            Err(_) => {
                // Resolve separately so that a name that does not resolve is reported as such
                // (SOCKS5 "host unreachable", HTTP 502 "cannot resolve") rather than as a
                // generic failure.
                let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
                    .await
                    .map_err(|e| {
                        io::Error::new(
                            io::ErrorKind::NotFound,
                            format!("cannot resolve {host}: {e}"),
                        )
                    })?
                    .collect();
                if addrs.is_empty() {
                    return Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("cannot resolve {host}: no addresses"),
                    ));
                }
                TcpStream::connect(&addrs[..]).await
            }
        }
    };
    let stream = tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Completes when the client hangs up while it is held. A client that sends bytes before the
/// decision cannot be watched this way (the bytes stay queued for the tunnel); then this
/// future never completes and the hold ends by decision or timeout.
pub async fn client_gone(stream: &TcpStream) {
    let mut b = [0u8; 1];
    loop {
        match stream.peek(&mut b).await {
            Ok(0) | Err(_) => return,
            Ok(_) => std::future::pending::<()>().await,
        }
    }
}

/// Buffer size of each direction of the user-space copy relay ([`relay_streams`]).
const TUNNEL_BUF: usize = 64 * 1024;

/// Relays bytes both ways until both sides have closed (a half-close is passed on and the
/// other direction keeps running), either fails, the rule is revoked or the daemon stops.
/// `early` are bytes the client sent before the tunnel was up (read while sniffing); they go
/// upstream first, then the rest is relayed with `splice(2)` (zero-copy, see
/// [`super::splice`]), falling back to a user-space copy per direction where splicing is not
/// possible. Returns the bytes relayed client → upstream (including `early`) and upstream →
/// client, also when the tunnel was cut.
pub async fn relay(
    client: TcpStream,
    upstream: TcpStream,
    early: &[u8],
    revoked: Option<CancellationToken>,
    shutdown: CancellationToken,
) -> io::Result<(u64, u64)> {
    let (mut up, mut down) = (0u64, 0u64);
    let revoked = revoked.unwrap_or_default();
    let work = async {
        super::splice::write_all(&upstream, early, &mut up).await?;
        super::splice::relay(&client, &upstream, &mut up, &mut down).await
    };
    let r = tokio::select! {
        r = work => r,
        _ = revoked.cancelled() => {
            tracing::debug!("tunnel cut: its rule was revoked");
            Ok(())
        }
        _ = shutdown.cancelled() => Ok(()),
    };
    r.map(|()| (up, down))
}

/// [`relay`] for streams that are not plain TCP sockets (no `splice(2)`): copies through two
/// user-space buffers of `TUNNEL_BUF` bytes. Returns the bytes relayed `a` → `b` (including
/// `early`, written to `b` first) and `b` → `a`; `(0, 0)` when cut.
pub async fn relay_streams<A, B>(
    a: &mut A,
    b: &mut B,
    early: &[u8],
    revoked: Option<CancellationToken>,
    shutdown: CancellationToken,
) -> io::Result<(u64, u64)>
where
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    if !early.is_empty() {
        b.write_all(early).await?;
    }
    let revoked = revoked.unwrap_or_default();
    tokio::select! {
        r = tokio::io::copy_bidirectional_with_sizes(a, b, TUNNEL_BUF, TUNNEL_BUF) => {
            r.map(|(ab, ba)| (ab + early.len() as u64, ba))
        }
        _ = revoked.cancelled() => {
            tracing::debug!("tunnel cut: its rule was revoked");
            Ok((0, 0))
        }
        _ = shutdown.cancelled() => Ok((0, 0)),
    }
}

/// A stream that first yields `prefix` (bytes already read while parsing) and then reads from
/// the inner stream; writes go straight through.
#[derive(Debug)]
pub struct Prefixed<S> {
    prefix: Vec<u8>,
    pos: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    /// Wraps `inner`, replaying `prefix` first.
    pub fn new(prefix: Vec<u8>, inner: S) -> Prefixed<S> {
        Prefixed {
            prefix,
            pos: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.pos < self.prefix.len() {
            let n = (self.prefix.len() - self.pos).min(buf.remaining());
            let start = self.pos;
            buf.put_slice(&self.prefix[start..start + n]);
            self.pos += n;
            if self.pos == self.prefix.len() {
                self.prefix = Vec::new();
                self.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[test]
    fn identity_rules() {
        let peer: SocketAddr = "10.1.2.3:5555".parse().unwrap();
        assert_eq!(identity(Some("opencode"), peer), "opencode");
        assert_eq!(identity(Some("proxy"), peer), "unknown-10.1.2.3");
        assert_eq!(identity(Some(""), peer), "unknown-10.1.2.3");
        assert_eq!(identity(None, peer), "unknown-10.1.2.3");
        let v6: SocketAddr = "[::ffff:127.0.0.1]:1".parse().unwrap();
        assert_eq!(identity(None, v6), "unknown-127.0.0.1");
    }

    #[tokio::test]
    async fn prefixed_replays_then_reads_inner() {
        let (mut a, b) = tokio::io::duplex(64);
        a.write_all(b" world").await.unwrap();
        drop(a);
        let mut p = Prefixed::new(b"hello".to_vec(), b);
        let mut s = String::new();
        p.read_to_string(&mut s).await.unwrap();
        assert_eq!(s, "hello world");
    }

    #[tokio::test]
    async fn copy_relay_for_other_streams() {
        let (mut a_outer, mut a) = tokio::io::duplex(1024);
        let (mut b, mut b_outer) = tokio::io::duplex(1024);
        let relay = tokio::spawn(async move {
            relay_streams(&mut a, &mut b, b"early ", None, CancellationToken::new()).await
        });
        a_outer.write_all(b"up").await.unwrap();
        a_outer.shutdown().await.unwrap();
        let mut got = Vec::new();
        b_outer.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"early up");
        b_outer.write_all(b"down").await.unwrap();
        drop(b_outer);
        let mut back = Vec::new();
        a_outer.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"down");
        assert_eq!(relay.await.unwrap().unwrap(), (8, 4));
    }
}
