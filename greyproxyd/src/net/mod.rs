//! Bytes on sockets, below everything else: relays (spliced, or copied where splicing fails),
//! the replay-prefix stream, dialing (and the host map it honours), hang-up detection, the
//! read-chunk size of our WebSocket links and the TLS server-name helper. Nothing here knows
//! about policy or HTTP.

pub(crate) mod dial;
pub(crate) mod hangup;
pub mod hosts;
pub(crate) mod prefixed;
pub(crate) mod relay;
pub(crate) mod splice;

pub(crate) use dial::{Dial, Io, boxed_io, connect_upstream, dial_fn};
pub(crate) use hangup::client_gone;
pub use hosts::HostMap;
pub(crate) use prefixed::Prefixed;
pub(crate) use relay::relay;

use rustls_pki_types::ServerName;

/// Bytes tungstenite reads at a time on our WebSocket links (control clients, middlewares).
/// It zero-fills that much buffer before *every* read, including reads that find nothing, so
/// its 128 KiB default cost a 128 KiB memset per wake-up (1.7 % of the daemon's CPU with a
/// WebSocket middleware, in a profile); our messages are mostly far smaller, and a large one
/// simply takes more reads.
pub(crate) const READ_CHUNK: usize = 16 * 1024;

/// The TLS server name for a host (DNS name or IP literal), `None` when it is neither.
pub(crate) fn server_name(host: &str) -> Option<ServerName<'static>> {
    ServerName::try_from(host.to_string()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names() {
        assert!(matches!(
            server_name("example.com"),
            Some(ServerName::DnsName(_))
        ));
        assert!(matches!(
            server_name("127.0.0.2"),
            Some(ServerName::IpAddress(_))
        ));
        assert!(matches!(server_name("::1"), Some(ServerName::IpAddress(_))));
        assert!(server_name("bad name").is_none());
        assert!(server_name("").is_none());
    }
}
