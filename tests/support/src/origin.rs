//! Real local origins: a tiny HTTP/1.1 server and a TCP echo server, bound to any loopback
//! address (127.0.0.2, 127.0.0.3… are distinct destinations for policy; ::1 for IPv6).

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Starts an HTTP/1.1 origin on `ip:0`. Every request gets `200` with body
/// `hello from <addr> <method> <path>` and keep-alive.
pub async fn http_origin(ip: &str) -> SocketAddr {
    http_origin_at(SocketAddr::new(ip.parse().unwrap(), 0)).await
}

/// [`http_origin`] on a given address (a port another origin uses on another IP, so that one
/// host name can be moved between them).
pub async fn http_origin_at(addr: SocketAddr) -> SocketAddr {
    let l = TcpListener::bind(addr).await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(serve_http(s, addr));
        }
    });
    addr
}

async fn serve_http(mut s: TcpStream, addr: SocketAddr) {
    let mut buf = Vec::new();
    loop {
        let end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end);
        let mut parts = head.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let body = format!("hello from {addr} {method} {path}");
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{}",
            body.len(),
            body
        );
        if s.write_all(resp.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Starts a TCP echo server on `ip:0`.
pub async fn echo_origin(ip: &str) -> SocketAddr {
    let l = TcpListener::bind((ip, 0)).await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}
