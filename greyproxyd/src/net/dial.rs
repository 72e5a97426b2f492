//! Dialing origins: the TCP connect every front end and the recorder use, and the boxed
//! connection type an HTTP client connection runs over.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::hosts::HostMap;

/// Connects to `host:port` (hostname or IP literal) within `timeout`, with Nagle off. A name
/// in `hosts` is dialled at its mapped address instead of being resolved.
pub(crate) async fn connect_upstream(
    hosts: &HostMap,
    host: &str,
    port: u16,
    timeout: Duration,
) -> io::Result<TcpStream> {
    let mapped = hosts.get(host);
    let fut = async {
        match mapped.map_or_else(|| host.parse::<std::net::IpAddr>(), Ok) {
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

/// Any byte stream an HTTP connection can run over.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// Opens a new connection to the origin (TLS included when needed).
pub(crate) type Dial = Arc<dyn Fn() -> BoxFuture<'static, io::Result<Box<dyn Io>>> + Send + Sync>;

/// Boxes a stream as the connection type of a [`Dial`].
pub(crate) fn boxed_io<S: Io>(s: S) -> Box<dyn Io> {
    Box::new(s)
}

/// Turns an async closure into a [`Dial`].
pub(crate) fn dial_fn<F, Fut>(f: F) -> Dial
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = io::Result<Box<dyn Io>>> + Send + 'static,
{
    Arc::new(move || -> BoxFuture<'static, io::Result<Box<dyn Io>>> {
        Box::pin(f()) as Pin<Box<_>>
    })
}
