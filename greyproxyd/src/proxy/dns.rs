//! The DNS forwarder (`--dns-addr`, UDP and TCP): relays each query unchanged to the upstreams
//! ([`upstream`]) and each answer unchanged to the client, learning IP → hostname from A/AAAA
//! answers on the way ([`cache`]). That is how connections that reach the proxies as raw IPs
//! (greywall's tun2socks on Linux sends DNS here and TCP to SOCKS5) are matched against
//! hostname rules and shown by name (docs/design.md#plain-http-policy, docs/configuration.md#dns).
//! DNS queries themselves are never policy-checked.
//!
//! Work is bounded: at most [`MAX_UDP_INFLIGHT`] UDP queries in flight (more are dropped; DNS
//! clients retry) and [`MAX_TCP_CONNS`] TCP connections (more wait in the kernel's backlog).

pub(crate) mod cache;
pub mod upstream;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

pub(crate) use cache::DnsCache;
pub(crate) use upstream::Forwarder;

use crate::time::now_secs;

/// Default listen address.
pub(crate) const DEFAULT_DNS_ADDR: &str = "127.0.0.1:43053";
/// UDP queries forwarded at once; beyond that new queries are dropped.
pub(crate) const MAX_UDP_INFLIGHT: usize = 256;
/// TCP connections served at once; beyond that accepting pauses.
pub(crate) const MAX_TCP_CONNS: usize = 64;
/// Limit for one upstream attempt.
pub(crate) const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(3);
/// A TCP client idle this long between queries is dropped.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// Largest UDP query read (queries are small; EDNS answers are what can be large).
const MAX_QUERY: usize = 4096;

/// The bound sockets of the forwarder, UDP and TCP on the same port.
#[derive(Debug)]
pub(crate) struct DnsListener {
    udp: UdpSocket,
    tcp: TcpListener,
}

impl DnsListener {
    /// Binds UDP on `addr`, then TCP on the port UDP got (so `:0` yields one port for both;
    /// when that port is taken for TCP, a few other random ports are tried).
    pub(crate) async fn bind(addr: SocketAddr) -> io::Result<DnsListener> {
        let mut last = None;
        for _ in 0..if addr.port() == 0 { 8 } else { 1 } {
            let udp = UdpSocket::bind(addr).await?;
            let port = udp.local_addr()?.port();
            match TcpListener::bind(SocketAddr::new(addr.ip(), port)).await {
                Ok(tcp) => return Ok(DnsListener { udp, tcp }),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("cannot bind the DNS listener")))
    }

    /// The address both sockets listen on.
    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.udp.local_addr()
    }
}

/// Serves UDP and TCP queries until `shutdown`.
pub(crate) async fn serve(
    listener: DnsListener,
    forwarder: Arc<Forwarder>,
    cache: Arc<DnsCache>,
    shutdown: CancellationToken,
) {
    let DnsListener { udp, tcp } = listener;
    tokio::join!(
        serve_udp(
            Arc::new(udp),
            forwarder.clone(),
            cache.clone(),
            shutdown.clone()
        ),
        serve_tcp(tcp, forwarder, cache, shutdown),
    );
}

/// Checks that `bytes` is a DNS query with a question; anything else is dropped.
fn check_query(bytes: &[u8]) -> Result<Message, &'static str> {
    let msg = Message::from_vec(bytes).map_err(|_| "not a DNS message")?;
    if msg.metadata.message_type != MessageType::Query {
        return Err("not a query");
    }
    if msg.queries.is_empty() {
        return Err("no question");
    }
    Ok(msg)
}

/// SERVFAIL for `query` (same id and question), so that a client whose upstreams all failed
/// learns it at once instead of waiting out its own timeout.
fn servfail(query: &Message) -> Option<Vec<u8>> {
    let mut m = Message::error_msg(
        query.metadata.id,
        query.metadata.op_code,
        ResponseCode::ServFail,
    );
    m.metadata.recursion_desired = query.metadata.recursion_desired;
    m.add_queries(query.queries.iter().cloned());
    m.to_vec().ok()
}

/// Forwards one parsed query (`bytes` as received) over UDP or TCP, learns from the answer,
/// and returns what to send back.
async fn answer(
    bytes: &[u8],
    query: &Message,
    tcp: bool,
    forwarder: &Forwarder,
    cache: &DnsCache,
) -> Option<Vec<u8>> {
    let res = if tcp {
        forwarder.tcp(bytes).await
    } else {
        forwarder.udp(bytes).await
    };
    match res {
        Ok(reply) => {
            cache.learn(&reply, now_secs());
            Some(reply)
        }
        Err(e) => {
            tracing::debug!(error = %e, name = %query.queries[0].name(), "DNS query failed");
            servfail(query)
        }
    }
}

async fn serve_udp(
    sock: Arc<UdpSocket>,
    forwarder: Arc<Forwarder>,
    cache: Arc<DnsCache>,
    shutdown: CancellationToken,
) {
    let limit = Arc::new(Semaphore::new(MAX_UDP_INFLIGHT));
    let mut buf = vec![0u8; MAX_QUERY];
    loop {
        let (n, peer) = tokio::select! {
            r = sock.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    // ICMP errors from earlier sends surface here on some systems; keep serving.
                    tracing::debug!(error = %e, "DNS UDP receive error");
                    continue;
                }
            },
            _ = shutdown.cancelled() => return,
        };
        let bytes = buf[..n].to_vec();
        let query = match check_query(&bytes) {
            Ok(q) => q,
            Err(why) => {
                tracing::debug!(%peer, len = n, why, "DNS packet dropped");
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "DNS query dropped: too many in flight");
            continue;
        };
        let (sock, forwarder, cache) = (sock.clone(), forwarder.clone(), cache.clone());
        tokio::spawn(async move {
            let _permit = permit;
            if let Some(reply) = answer(&bytes, &query, false, &forwarder, &cache).await
                && let Err(e) = sock.send_to(&reply, peer).await
            {
                tracing::debug!(%peer, error = %e, "cannot send DNS answer");
            }
        });
    }
}

async fn serve_tcp(
    listener: TcpListener,
    forwarder: Arc<Forwarder>,
    cache: Arc<DnsCache>,
    shutdown: CancellationToken,
) {
    let limit = Arc::new(Semaphore::new(MAX_TCP_CONNS));
    loop {
        // Take a slot first, so that a flood waits in the backlog instead of in memory.
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = shutdown.cancelled() => return,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::debug!(error = %e, "DNS TCP accept failed");
                    // Out of descriptors and the like: do not spin.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => return,
        };
        let (forwarder, cache, stop) = (forwarder.clone(), cache.clone(), shutdown.clone());
        tokio::spawn(async move {
            let _permit = permit;
            tokio::select! {
                r = tcp_conn(stream, &forwarder, &cache) => if let Err(e) = r {
                    tracing::debug!(%peer, error = %e, "DNS TCP connection ended");
                },
                _ = stop.cancelled() => {}
            }
        });
    }
}

/// Serves length-prefixed queries on one connection, one after the other, until the client
/// closes, idles or sends garbage.
async fn tcp_conn(mut s: TcpStream, forwarder: &Forwarder, cache: &DnsCache) -> io::Result<()> {
    let _ = s.set_nodelay(true);
    loop {
        let len = match tokio::time::timeout(TCP_IDLE, s.read_u16()).await {
            Err(_) => return Ok(()),
            Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(r) => r?,
        };
        let mut bytes = vec![0u8; usize::from(len)];
        tokio::time::timeout(TCP_IDLE, s.read_exact(&mut bytes))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "partial query"))??;
        let query = check_query(&bytes).map_err(|why| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("DNS packet dropped: {why}"),
            )
        })?;
        let Some(reply) = answer(&bytes, &query, true, forwarder, cache).await else {
            return Ok(());
        };
        let Ok(n) = u16::try_from(reply.len()) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "answer over 64 KiB",
            ));
        };
        let mut framed = Vec::with_capacity(reply.len() + 2);
        framed.extend_from_slice(&n.to_be_bytes());
        framed.extend_from_slice(&reply);
        s.write_all(&framed).await?;
    }
}

/// The daemon's DNS side at start: the cache loaded from `store` (always, so that names
/// learnt earlier still enrich connections), and when `addr` is set the bound listener with
/// its forwarder (`upstreams`, or else the system's resolvers). Without any usable upstream
/// the forwarder is left off with an error in the log rather than failing the daemon.
pub(crate) async fn start(
    store: Arc<crate::store::Store>,
    addr: Option<SocketAddr>,
    upstreams: &[SocketAddr],
) -> anyhow::Result<(Arc<DnsCache>, Option<(DnsListener, Arc<Forwarder>)>)> {
    use anyhow::Context;
    // Opening reads the table (blocking) and starts the writer (needs the runtime, which the
    // blocking pool provides).
    let cache = tokio::task::spawn_blocking(move || DnsCache::open(store, cache::DEFAULT_CAPACITY))
        .await
        .context("dns cache task")?
        .context("cannot load the DNS cache")?;
    tracing::debug!(entries = cache.len(), "DNS cache loaded");
    let cache = Arc::new(cache);
    let Some(addr) = addr else {
        return Ok((cache, None));
    };
    let listener = DnsListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (DNS, UDP and TCP)"))?;
    let local = listener.local_addr()?;
    let configured = !upstreams.is_empty();
    let mut ups = if configured {
        upstreams.to_vec()
    } else {
        tokio::task::spawn_blocking(upstream::system_upstreams)
            .await
            .context("resolv.conf task")?
    };
    // Forwarding to ourselves would loop every query until it times out.
    ups.retain(|u| *u != local && !(u.ip().is_unspecified() && u.port() == local.port()));
    match Forwarder::new(ups, UPSTREAM_TIMEOUT) {
        Ok(f) => {
            tracing::info!(upstreams = ?f.upstreams(), system = !configured, "DNS upstreams");
            Ok((cache, Some((listener, Arc::new(f)))))
        }
        Err(e) => {
            tracing::error!(error = %e, "DNS forwarder off: set --dns-upstream");
            Ok((cache, None))
        }
    }
}
