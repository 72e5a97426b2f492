//! Byte relays between a client and an origin: raw TCP tunnels (spliced, see
//! [`super::splice`]) and a user-space copy for other streams, both cut by a rule's revocation
//! or the daemon's shutdown.

use std::io;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

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
