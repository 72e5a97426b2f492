//! The byte relay of a raw TCP tunnel between a client and an origin (spliced, see
//! [`super::splice`]), cut by a rule's revocation or the daemon's shutdown. Its behaviour is
//! tested with real sockets in `splice`'s tests.

use std::io;

use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// Relays bytes both ways until both sides have closed (a half-close is passed on and the
/// other direction keeps running), either fails, the rule is revoked or the daemon stops.
/// `early` are bytes the client sent before the tunnel was up (read while sniffing); they go
/// upstream first, then the rest is relayed with `splice(2)` (zero-copy, see
/// [`super::splice`]), falling back to a user-space copy per direction where splicing is not
/// possible. Returns the bytes relayed client → upstream (including `early`) and upstream →
/// client, also when the tunnel was cut.
pub(crate) async fn relay(
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
