//! What the proxy front ends share: their context and the client identity rule.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::policy::Policy;
use crate::shutdown::Shutdown;

/// What the front ends share.
#[derive(Debug, Clone)]
pub(crate) struct ProxyCtx {
    /// The policy engine.
    pub(crate) policy: Arc<Policy>,
    /// Limit for reading a request head / SOCKS handshake.
    pub(crate) handshake_timeout: Duration,
    /// Limit for connecting upstream.
    pub(crate) connect_timeout: Duration,
    /// The daemon's shutdown: its begin stops the listeners, its cut ends open tunnels, and
    /// it tracks every proxied connection so that it can wait for them to finish.
    pub(crate) shutdown: Shutdown,
    /// Interception and recording.
    pub(crate) mitm: Arc<crate::mitm::intercept::MitmCtx>,
    /// IP → hostname learnt by the DNS forwarder: names connections to raw IPs.
    pub(crate) dns: Arc<crate::proxy::dns::DnsCache>,
}

/// Container name for a client: the proxy username unless empty or `proxy`, else
/// `unknown-<ip>` (docs/design.md#identity).
pub(crate) fn identity(username: Option<&str>, peer: SocketAddr) -> String {
    match username.map(str::trim) {
        Some(u) if !u.is_empty() && u != "proxy" => u.to_string(),
        _ => format!("unknown-{}", peer.ip().to_canonical()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
}
