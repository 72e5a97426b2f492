//! The daemon's own listening addresses (control, HTTP, SOCKS5, DNS), which no connection
//! through its proxies may reach, whatever the rules say: an agent must not drive the control
//! plane (approving its own requests, reading tokens) or loop the proxy into itself.
//!
//! A listener on a wildcard address (`0.0.0.0`, `::`) is reachable at every address of the
//! machine: for its port, any local address counts. "Local" is decided by asking the kernel
//! (binding a UDP socket to the address succeeds only for an address of this machine), so no
//! interface list has to be kept up to date.

use std::net::{IpAddr, SocketAddr, UdpSocket};

/// See the module documentation.
#[derive(Debug, Clone, Default)]
pub(crate) struct SelfAddrs {
    /// Exact listening addresses (IPs canonical).
    exact: Vec<SocketAddr>,
    /// Ports of wildcard listeners.
    wildcard_ports: Vec<u16>,
}

impl SelfAddrs {
    /// The set for these bound addresses.
    pub(crate) fn new(bound: &[SocketAddr]) -> SelfAddrs {
        let mut s = SelfAddrs::default();
        for a in bound {
            let ip = a.ip().to_canonical();
            if ip.is_unspecified() {
                s.wildcard_ports.push(a.port());
            } else {
                s.exact.push(SocketAddr::new(ip, a.port()));
            }
        }
        s
    }

    /// True when a connection to `ip`:`port` would reach one of the listeners.
    pub(crate) fn contains(&self, ip: IpAddr, port: u16) -> bool {
        let ip = ip.to_canonical();
        if self.exact.iter().any(|a| a.port() == port && a.ip() == ip) {
            return true;
        }
        // `0.0.0.0` as a destination is this machine too.
        if ip.is_unspecified() && self.exact.iter().any(|a| a.port() == port) {
            return true;
        }
        self.wildcard_ports.contains(&port) && is_local(ip)
    }

    /// The same for a destination as asked: an IP literal, or `localhost` (and its
    /// subdomains, which resolvers answer with loopback). Other names are checked once
    /// connected, against the address actually reached ([`SelfAddrs::contains`]).
    pub(crate) fn contains_host(&self, host: &str, port: u16) -> bool {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return self.contains(ip, port);
        }
        let lower = bare.trim_end_matches('.').to_ascii_lowercase();
        if lower == "localhost" || lower.ends_with(".localhost") {
            return [
                IpAddr::from([127, 0, 0, 1]),
                IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
            ]
            .into_iter()
            .any(|ip| self.contains(ip, port));
        }
        false
    }
}

/// An address of this machine (loopback, unspecified, or one the kernel lets us bind).
fn is_local(ip: IpAddr) -> bool {
    ip.is_loopback() || ip.is_unspecified() || UdpSocket::bind((ip, 0)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    #[test]
    fn exact_and_wildcard_listeners_are_self() {
        let s = SelfAddrs::new(&[sa("127.0.0.5:43080"), sa("0.0.0.0:43051")]);
        assert!(s.contains_host("127.0.0.5", 43080));
        assert!(!s.contains_host("127.0.0.6", 43080));
        assert!(!s.contains_host("127.0.0.5", 80));
        // Wildcard: every local address on that port, loopback or not, v4 or mapped v6.
        assert!(s.contains_host("127.0.0.9", 43051));
        assert!(s.contains_host("[::ffff:127.0.0.1]", 43051));
        assert!(s.contains_host("localhost", 43051));
        assert!(s.contains_host("0.0.0.0", 43080));
        // Not this machine.
        assert!(!s.contains_host("192.0.2.1", 43051));
        assert!(!s.contains_host("example.com", 43051));
    }
}
