//! Where queries go: the configured upstreams (`--dns-upstream`) or the system's resolvers
//! from `/etc/resolv.conf` (systemd-resolved's real upstreams when that file only names its
//! local stub), and the forwarding itself over UDP and TCP. Query bytes are sent unchanged
//! (the client's id included) and the first matching answer is returned unchanged.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// Default DNS port of an upstream given as a bare IP.
pub(crate) const DNS_PORT: u16 = 53;

/// The resolver file most systems have.
pub(crate) const RESOLV_CONF: &str = "/etc/resolv.conf";
/// systemd-resolved's list of the real upstream servers (what its stub forwards to).
pub(crate) const RESOLVED_UPSTREAMS: &str = "/run/systemd/resolve/resolv.conf";

/// Errors of upstream configuration and forwarding.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// A `--dns-upstream` value that is not `IP` or `IP:port`.
    #[error(
        "invalid DNS upstream {0:?}: expected IP or IP:PORT like 1.1.1.1 or [2606:4700::1111]:53"
    )]
    BadAddress(String),
    /// No upstream is configured and none was found in the system's files.
    #[error("no DNS upstream: none configured and none found in {RESOLV_CONF}")]
    NoUpstream,
    /// Every upstream failed or timed out; the last error.
    #[error("every DNS upstream failed, last: {0}")]
    AllFailed(io::Error),
}

/// Parses an upstream: `IP` (port 53) or `IP:PORT`, IPv6 bracketed with a port.
pub fn parse_upstream(s: &str) -> Result<SocketAddr, UpstreamError> {
    let s = s.trim();
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    s.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, DNS_PORT))
        .map_err(|_| UpstreamError::BadAddress(s.to_string()))
}

/// The `nameserver` addresses of a resolv.conf text, port 53, in order. Comments, other
/// options and unparsable addresses (including link-local ones with a `%zone`, which a
/// socket address cannot carry here) are skipped.
pub(crate) fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let line = line.split(['#', ';']).next().unwrap_or_default();
            let mut words = line.split_whitespace();
            if words.next() != Some("nameserver") {
                return None;
            }
            let ip: IpAddr = words.next()?.parse().ok()?;
            Some(SocketAddr::new(ip, DNS_PORT))
        })
        .collect()
}

/// True for systemd-resolved's local stub addresses (127.0.0.53, and 127.0.0.54 of its
/// "proxy" stub), which are useless as upstreams when the daemon runs in another namespace.
fn is_resolved_stub(addr: &SocketAddr) -> bool {
    matches!(addr.ip(), IpAddr::V4(ip) if ip == Ipv4Addr::new(127, 0, 0, 53) || ip == Ipv4Addr::new(127, 0, 0, 54))
}

/// Chooses the system upstreams from the texts of [`RESOLV_CONF`] and [`RESOLVED_UPSTREAMS`]
/// (either may be missing): the former's servers, unless they are only systemd-resolved's
/// stub and the latter names real ones.
pub(crate) fn choose_system_upstreams(
    etc: Option<&str>,
    resolved: Option<&str>,
) -> Vec<SocketAddr> {
    let main = etc.map(parse_resolv_conf).unwrap_or_default();
    if main.iter().all(is_resolved_stub) {
        let real: Vec<_> = resolved
            .map(parse_resolv_conf)
            .unwrap_or_default()
            .into_iter()
            .filter(|a| !is_resolved_stub(a))
            .collect();
        if !real.is_empty() {
            return real;
        }
    }
    main
}

/// The system's upstreams, read now (blocking file reads, done once at start).
pub(crate) fn system_upstreams() -> Vec<SocketAddr> {
    let etc = std::fs::read_to_string(RESOLV_CONF).ok();
    let resolved = std::fs::read_to_string(RESOLVED_UPSTREAMS).ok();
    choose_system_upstreams(etc.as_deref(), resolved.as_deref())
}

/// Sends queries to the upstreams in order, moving to the next on error or timeout.
#[derive(Debug, Clone)]
pub(crate) struct Forwarder {
    upstreams: Vec<SocketAddr>,
    timeout: Duration,
}

/// Largest UDP answer accepted from an upstream (EDNS allows up to 64 KiB).
const MAX_UDP: usize = 65_535;

impl Forwarder {
    /// A forwarder over `upstreams` (tried in order), each attempt limited to `timeout`.
    pub(crate) fn new(
        upstreams: Vec<SocketAddr>,
        timeout: Duration,
    ) -> Result<Forwarder, UpstreamError> {
        if upstreams.is_empty() {
            return Err(UpstreamError::NoUpstream);
        }
        Ok(Forwarder { upstreams, timeout })
    }

    /// The upstreams, in the order tried.
    pub(crate) fn upstreams(&self) -> &[SocketAddr] {
        &self.upstreams
    }

    /// Forwards a UDP query; returns the first answer with the query's id (a truncated answer
    /// included: the client retries over TCP itself).
    pub(crate) async fn udp(&self, query: &[u8]) -> Result<Vec<u8>, UpstreamError> {
        self.each(|up| async move {
            tokio::time::timeout(self.timeout, udp_once(up, query))
                .await
                .unwrap_or_else(|_| Err(timed_out(up)))
        })
        .await
    }

    /// Forwards a query over TCP (2-byte length framing); returns the answer's bytes.
    pub(crate) async fn tcp(&self, query: &[u8]) -> Result<Vec<u8>, UpstreamError> {
        self.each(|up| async move {
            tokio::time::timeout(self.timeout, tcp_once(up, query))
                .await
                .unwrap_or_else(|_| Err(timed_out(up)))
        })
        .await
    }

    async fn each<'a, F, Fut>(&'a self, attempt: F) -> Result<Vec<u8>, UpstreamError>
    where
        F: Fn(SocketAddr) -> Fut,
        Fut: Future<Output = io::Result<Vec<u8>>> + 'a,
    {
        let mut last = io::Error::other("no upstream tried");
        for &up in &self.upstreams {
            match attempt(up).await {
                Ok(answer) => return Ok(answer),
                Err(e) => {
                    tracing::debug!(upstream = %up, error = %e, "DNS upstream failed");
                    last = e;
                }
            }
        }
        Err(UpstreamError::AllFailed(last))
    }
}

fn timed_out(up: SocketAddr) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("{up} did not answer in time"),
    )
}

/// The query's id (first two bytes).
fn id_of(msg: &[u8]) -> Option<[u8; 2]> {
    Some([*msg.first()?, *msg.get(1)?])
}

/// One UDP exchange on a fresh socket: a new random source port per query, and a connected
/// socket so the kernel drops datagrams from anyone but the upstream (off-path spoofing).
async fn udp_once(up: SocketAddr, query: &[u8]) -> io::Result<Vec<u8>> {
    let local: SocketAddr = match up {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let sock = UdpSocket::bind(local).await?;
    sock.connect(up).await?;
    sock.send(query).await?;
    let want = id_of(query);
    let mut buf = vec![0u8; MAX_UDP];
    loop {
        let n = sock.recv(&mut buf).await?;
        // Late answers to an earlier query cannot reach this fresh socket; anything else
        // without our id is noise.
        if n >= 12 && id_of(&buf[..n]) == want {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

/// One TCP exchange: length-prefixed query, length-prefixed answer.
async fn tcp_once(up: SocketAddr, query: &[u8]) -> io::Result<Vec<u8>> {
    let len = u16::try_from(query.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "query over 64 KiB"))?;
    let mut s = TcpStream::connect(up).await?;
    let _ = s.set_nodelay(true);
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(query);
    s.write_all(&framed).await?;
    let n = s.read_u16().await?;
    let mut answer = vec![0u8; usize::from(n)];
    s.read_exact(&mut answer).await?;
    if answer.len() < 12 || id_of(&answer) != id_of(query) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "answer does not match the query",
        ));
    }
    Ok(answer)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn upstream_addresses() {
        assert_eq!(parse_upstream("1.1.1.1").unwrap(), a("1.1.1.1:53"));
        assert_eq!(
            parse_upstream(" 127.0.0.1:5353 ").unwrap(),
            a("127.0.0.1:5353")
        );
        assert_eq!(
            parse_upstream("2606:4700::1111").unwrap(),
            a("[2606:4700::1111]:53")
        );
        assert_eq!(parse_upstream("[::1]").unwrap(), a("[::1]:53"));
        assert_eq!(parse_upstream("[::1]:5300").unwrap(), a("[::1]:5300"));
        let e = parse_upstream("dns.google").unwrap_err().to_string();
        assert!(e.contains("dns.google"), "{e}");
    }

    #[test]
    fn resolv_conf_nameservers() {
        let text = "# generated\nsearch lan\nnameserver 192.168.1.1 # router\n\
                    options edns0\nnameserver\tfe80::1%eth0\n  nameserver 2001:db8::53\n\
                    ;nameserver 9.9.9.9\nnameserver bogus\n";
        assert_eq!(
            parse_resolv_conf(text),
            vec![a("192.168.1.1:53"), a("[2001:db8::53]:53")]
        );
        assert!(parse_resolv_conf("").is_empty());
    }

    #[test]
    fn systemd_resolved_stub_is_replaced_by_its_real_upstreams() {
        let stub = "nameserver 127.0.0.53\noptions edns0 trust-ad\n";
        let real = "nameserver 10.0.0.1\nnameserver 10.0.0.2\n";
        assert_eq!(
            choose_system_upstreams(Some(stub), Some(real)),
            vec![a("10.0.0.1:53"), a("10.0.0.2:53")]
        );
        // Without the real list the stub is still better than nothing.
        assert_eq!(
            choose_system_upstreams(Some(stub), None),
            vec![a("127.0.0.53:53")]
        );
        // A plain resolv.conf is used as is.
        assert_eq!(
            choose_system_upstreams(Some("nameserver 1.1.1.1\n"), Some(real)),
            vec![a("1.1.1.1:53")]
        );
        assert_eq!(choose_system_upstreams(None, Some(real)).len(), 2);
        assert!(choose_system_upstreams(None, None).is_empty());
        assert!(Forwarder::new(Vec::new(), Duration::from_secs(1)).is_err());
    }
}
