//! Clients that reach a target directly, through the HTTP proxy (CONNECT) or through SOCKS5.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream as StdStream};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::haproxy::Relay;

/// How a client reaches its target.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Direct,
    Http(SocketAddr),
    Socks(SocketAddr),
    /// HTTP CONNECT through another proxy (a peer such as tinyproxy), named in the report.
    Peer(SocketAddr, &'static str),
    /// A plain TCP relay with one frontend per target (HAProxy), named in the report: no
    /// CONNECT, the client connects to the frontend that stands for its target.
    Relay(&'static Relay, &'static str),
}

impl Via {
    /// Name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Via::Direct => "direct",
            Via::Http(_) => "HTTP CONNECT",
            Via::Socks(_) => "SOCKS5",
            Via::Peer(_, name) | Via::Relay(_, name) => name,
        }
    }
}

/// The CONNECT request head for `target`.
pub fn connect_request(target: SocketAddr) -> String {
    format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n")
}

fn socks_request(target: SocketAddr) -> Vec<u8> {
    let SocketAddr::V4(v4) = target else {
        panic!("IPv4 targets only")
    };
    let mut r = vec![5, 1, 0, 1];
    r.extend_from_slice(&v4.ip().octets());
    r.extend_from_slice(&v4.port().to_be_bytes());
    r
}

fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// Panics unless `head` is a `200` answer to CONNECT.
pub fn check_established(head: &[u8]) {
    assert!(
        // tinyproxy answers in HTTP/1.0.
        head.starts_with(b"HTTP/1.1 200 ") || head.starts_with(b"HTTP/1.0 200 "),
        "CONNECT refused: {}",
        String::from_utf8_lossy(head)
    );
}

/// Blocking client: opens a tunnel to `target`; returns the stream and any tunnel bytes that
/// arrived together with the proxy's reply.
pub fn open_blocking(via: Via, target: SocketAddr) -> (StdStream, Vec<u8>) {
    match via {
        Via::Direct => (StdStream::connect(target).unwrap(), Vec::new()),
        Via::Relay(r, _) => (StdStream::connect(r.front(target)).unwrap(), Vec::new()),
        Via::Http(proxy) | Via::Peer(proxy, _) => {
            let mut s = StdStream::connect(proxy).unwrap();
            s.write_all(connect_request(target).as_bytes()).unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let end = loop {
                if let Some(e) = head_end(&buf) {
                    break e;
                }
                let n = s.read(&mut chunk).unwrap();
                assert!(n > 0, "proxy closed during CONNECT");
                buf.extend_from_slice(&chunk[..n]);
            };
            check_established(&buf[..end]);
            let rest = buf.split_off(end);
            (s, rest)
        }
        Via::Socks(proxy) => {
            let mut s = StdStream::connect(proxy).unwrap();
            s.write_all(&[5, 1, 0]).unwrap();
            let mut m = [0u8; 2];
            s.read_exact(&mut m).unwrap();
            assert_eq!(m, [5, 0], "SOCKS5 method refused");
            s.write_all(&socks_request(target)).unwrap();
            let mut r = [0u8; 4];
            s.read_exact(&mut r).unwrap();
            assert_eq!(r[1], 0, "SOCKS5 connect refused: reply {}", r[1]);
            let skip = match r[3] {
                1 => 6,
                4 => 18,
                _ => panic!("unexpected SOCKS5 ATYP {}", r[3]),
            };
            let mut b = vec![0u8; skip];
            s.read_exact(&mut b).unwrap();
            (s, Vec::new())
        }
    }
}

/// Async client: opens a tunnel to `target` (the target must not speak first).
pub async fn open_async(via: Via, target: SocketAddr) -> TcpStream {
    match via {
        Via::Direct | Via::Relay(..) => {
            let to = match via {
                Via::Relay(r, _) => r.front(target),
                _ => target,
            };
            let s = TcpStream::connect(to).await.unwrap();
            s.set_nodelay(true).unwrap();
            s
        }
        Via::Http(proxy) | Via::Peer(proxy, _) => {
            let mut s = TcpStream::connect(proxy).await.unwrap();
            s.set_nodelay(true).unwrap();
            s.write_all(connect_request(target).as_bytes())
                .await
                .unwrap();
            let head = read_head(&mut s).await;
            check_established(&head);
            s
        }
        Via::Socks(proxy) => {
            let mut s = TcpStream::connect(proxy).await.unwrap();
            s.set_nodelay(true).unwrap();
            // Method selection and request in one write: the daemon reads exact lengths.
            let mut hello = vec![5, 1, 0];
            hello.extend_from_slice(&socks_request(target));
            s.write_all(&hello).await.unwrap();
            let mut r = [0u8; 2 + 10];
            s.read_exact(&mut r).await.unwrap();
            assert_eq!(&r[..2], &[5, 0], "SOCKS5 method refused");
            assert_eq!(r[3], 0, "SOCKS5 connect refused: reply {}", r[3]);
            assert_eq!(r[5], 1, "expected an IPv4 bound address");
            s
        }
    }
}

/// Reads a response head byte-chunk-wise (the peer sends nothing after it until we speak).
pub async fn read_head<S: AsyncRead + Unpin>(s: &mut S) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        if head_end(&buf).is_some() {
            return buf;
        }
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0, "proxy closed before the response head");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Opens `n` concurrent tunnels to the echo `target`, pushes `each` bytes through every one of
/// them both ways (so that relay buffers are really used), and returns them still open.
pub async fn open_tunnels(n: usize, each: usize, via: Via, target: SocketAddr) -> Vec<TcpStream> {
    let mut tasks = Vec::new();
    for _ in 0..n {
        tasks.push(tokio::spawn(async move {
            let s = open_async(via, target).await;
            let (mut r, mut w) = s.into_split();
            let send = async {
                let block = vec![7u8; 64 * 1024];
                let mut left = each;
                while left > 0 {
                    let k = left.min(block.len());
                    w.write_all(&block[..k]).await.unwrap();
                    left -= k;
                }
            };
            let recv = async {
                let mut buf = vec![0u8; 64 * 1024];
                let mut got = 0;
                while got < each {
                    let k = r.read(&mut buf).await.unwrap();
                    assert!(k > 0, "tunnel closed early");
                    got += k;
                }
            };
            tokio::join!(send, recv);
            r.reunite(w).unwrap()
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}
