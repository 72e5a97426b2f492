//! Hand-written proxy clients for tests that need the bytes: an HTTP `CONNECT` client, a SOCKS5
//! client (no-auth or username/password; IPv4, IPv6 or domain targets), and helpers to check
//! that a tunnel carries bytes or has been cut.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Answer of the HTTP proxy to a `CONNECT`.
#[derive(Debug)]
pub struct ConnectReply {
    /// Status code of the response head (200 = tunnel up; 0 = closed without an answer).
    pub status: u16,
    /// The whole response head, for messages.
    pub head: String,
}

/// Sends `CONNECT <authority>` (with a Basic `Proxy-Authorization` for `user` when given) and
/// reads the response head byte by byte, so that nothing after it is consumed. Waits as long
/// as the proxy holds the request.
pub async fn http_connect(
    proxy: SocketAddr,
    authority: &str,
    user: Option<&str>,
) -> (TcpStream, ConnectReply) {
    let mut s = http_connect_send(proxy, authority, user).await;
    let reply = read_connect_reply(&mut s).await;
    (s, reply)
}

/// Sends the `CONNECT` request only; the proxy's answer is read later with
/// [`read_connect_reply`] (or never: drop the socket to hang up while held).
pub async fn http_connect_send(
    proxy: SocketAddr,
    authority: &str,
    user: Option<&str>,
) -> TcpStream {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    let auth = user
        .map(|u| {
            format!(
                "Proxy-Authorization: Basic {}\r\n",
                base64(&format!("{u}:pw"))
            )
        })
        .unwrap_or_default();
    let req = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n{auth}\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    s
}

/// Reads a response head; status 0 when the proxy closed first.
pub async fn read_connect_reply(s: &mut TcpStream) -> ConnectReply {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b).await {
            Ok(1) => head.push(b[0]),
            _ => break,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    ConnectReply { status, head }
}

/// Where a SOCKS5 client asks to go.
#[derive(Debug, Clone)]
pub enum SocksTarget {
    /// Numeric address (ATYP 0x01 or 0x04).
    Ip(SocketAddr),
    /// A name sent as ATYP 0x03, resolved (or not) by the proxy.
    Domain(String, u16),
}

/// Sends a SOCKS5 greeting (offering username/password when `user` is given, else no-auth
/// only), the sub-negotiation and the CONNECT request. The reply is read with
/// [`read_socks_reply`].
pub async fn socks5_send(
    proxy: SocketAddr,
    target: &SocksTarget,
    user: Option<(&str, &str)>,
) -> TcpStream {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    match user {
        Some((u, p)) => {
            s.write_all(&[5, 1, 2]).await.unwrap();
            let mut m = [0u8; 2];
            s.read_exact(&mut m).await.unwrap();
            assert_eq!(m, [5, 2], "proxy must pick username/password when offered");
            let mut a = vec![1, u.len() as u8];
            a.extend_from_slice(u.as_bytes());
            a.push(p.len() as u8);
            a.extend_from_slice(p.as_bytes());
            s.write_all(&a).await.unwrap();
            let mut st = [0u8; 2];
            s.read_exact(&mut st).await.unwrap();
            assert_eq!(st, [1, 0], "authentication always succeeds");
        }
        None => {
            s.write_all(&[5, 1, 0]).await.unwrap();
            let mut m = [0u8; 2];
            s.read_exact(&mut m).await.unwrap();
            assert_eq!(m, [5, 0], "proxy must accept no-auth");
        }
    }
    let mut req = vec![5, 1, 0];
    let port = match target {
        SocksTarget::Ip(addr) => {
            match addr.ip() {
                IpAddr::V4(ip) => {
                    req.push(1);
                    req.extend_from_slice(&ip.octets());
                }
                IpAddr::V6(ip) => {
                    req.push(4);
                    req.extend_from_slice(&ip.octets());
                }
            }
            addr.port()
        }
        SocksTarget::Domain(name, port) => {
            req.push(3);
            req.push(name.len() as u8);
            req.extend_from_slice(name.as_bytes());
            *port
        }
    };
    req.extend_from_slice(&port.to_be_bytes());
    s.write_all(&req).await.unwrap();
    s
}

/// Reads the SOCKS5 reply to CONNECT and returns its REP code (0 = tunnel up, 2 = not
/// allowed); `None` if the proxy closed without one.
pub async fn read_socks_reply(s: &mut TcpStream) -> Option<u8> {
    let mut head = [0u8; 4];
    s.read_exact(&mut head).await.ok()?;
    let rest = match head[3] {
        1 => 6,
        4 => 18,
        _ => return None,
    };
    let mut addr = vec![0u8; rest];
    s.read_exact(&mut addr).await.ok()?;
    Some(head[1])
}

/// [`socks5_send`] then [`read_socks_reply`].
pub async fn socks5_connect(
    proxy: SocketAddr,
    target: &SocksTarget,
    user: Option<(&str, &str)>,
) -> (TcpStream, Option<u8>) {
    let mut s = socks5_send(proxy, target, user).await;
    let rep = read_socks_reply(&mut s).await;
    (s, rep)
}

/// Writes `msg` into a tunnel to an echo origin and asserts it comes back within 5 s.
pub async fn echo_roundtrip(s: &mut TcpStream, msg: &[u8]) {
    s.write_all(msg).await.unwrap();
    let mut got = vec![0u8; msg.len()];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut got))
        .await
        .expect("echo within 5 s")
        .expect("tunnel open");
    assert_eq!(got, msg);
}

/// True when the peer closes (EOF or reset) within `within`; bytes read meanwhile are dropped.
pub async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(within, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await
    .is_ok()
}

fn base64(s: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in s.as_bytes().chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(super::base64("opencode:proxy"), "b3BlbmNvZGU6cHJveHk=");
        assert_eq!(super::base64("solo"), "c29sbw==");
        assert_eq!(super::base64("abc"), "YWJj");
    }
}
