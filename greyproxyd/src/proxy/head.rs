//! Reading and parsing the first request head on the HTTP proxy port: enough to decide policy
//! before anything is forwarded (CONNECT target, absolute-form URI, proxy credentials).

use std::io;

use base64::Engine;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Largest request head accepted.
pub const MAX_HEAD: usize = 64 * 1024;

/// What the proxy needs from a request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Request method.
    pub method: String,
    /// Destination host (no brackets around IPv6).
    pub host: String,
    /// Destination port.
    pub port: u16,
    /// Proxy username from `Proxy-Authorization: Basic`.
    pub username: Option<String>,
    /// Length of the head in the buffer (bytes after it belong to the body or tunnel).
    pub len: usize,
}

/// Why a head could not be used.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    /// The client closed before a full head arrived.
    #[error("client closed before sending a full request head")]
    Closed,
    /// Over [`MAX_HEAD`].
    #[error("request head larger than {MAX_HEAD} bytes")]
    TooLarge,
    /// Not HTTP.
    #[error("malformed request head: {0}")]
    Malformed(String),
    /// Origin-form or an unsupported target.
    #[error("{0}")]
    BadTarget(String),
    /// Socket error.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Reads from `stream` into `buf` until a complete head is there; returns the parsed head.
pub async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
) -> Result<Head, HeadError> {
    loop {
        if let Some(head) = parse_head(buf)? {
            return Ok(head);
        }
        if buf.len() >= MAX_HEAD {
            return Err(HeadError::TooLarge);
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(HeadError::Closed);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Parses a head if `buf` holds a complete one (`Ok(None)` = need more bytes).
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(HeadError::Malformed(e.to_string())),
    };
    let method = req.method.unwrap_or_default().to_string();
    let target = req.path.unwrap_or_default();
    let username = req
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("proxy-authorization"))
        .and_then(|h| basic_username(h.value));
    let (host, port) = if method.eq_ignore_ascii_case("CONNECT") {
        split_authority(target, None)?
    } else {
        absolute_target(target)?
    };
    Ok(Some(Head {
        method,
        host,
        port,
        username,
        len,
    }))
}

/// Username of a `Basic` credential; `None` for other schemes or garbage.
pub fn basic_username(value: &[u8]) -> Option<String> {
    let v = std::str::from_utf8(value).ok()?.trim();
    let (scheme, cred) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(cred.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let user = text.split_once(':').map_or(text.as_str(), |(u, _)| u);
    Some(user.to_string())
}

/// `host:port` or `[v6]:port` → (host, port); `default_port` when the port is absent.
pub fn split_authority(auth: &str, default_port: Option<u16>) -> Result<(String, u16), HeadError> {
    let bad = || HeadError::BadTarget(format!("invalid target {auth:?}: expected host:port"));
    let (host, port) = if let Some(rest) = auth.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or_else(bad)?;
        match after.strip_prefix(':') {
            Some(p) => (h, Some(p)),
            None if after.is_empty() => (h, None),
            None => return Err(bad()),
        }
    } else {
        match auth.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            Some(_) => return Err(bad()),
            None => (auth, None),
        }
    };
    let port = match port {
        Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad)?,
        None => default_port.ok_or_else(bad)?,
    };
    if host.is_empty() || host.contains(['/', ' ', '@']) {
        return Err(bad());
    }
    Ok((host.to_ascii_lowercase(), port))
}

/// Destination of an absolute-form request target (`http://host[:port]/path`).
pub fn absolute_target(target: &str) -> Result<(String, u16), HeadError> {
    let rest = target.strip_prefix("http://").or_else(|| {
        target
            .get(..7)
            .filter(|p| p.eq_ignore_ascii_case("http://"))
            .map(|_| &target[7..])
    });
    let Some(rest) = rest else {
        return Err(HeadError::BadTarget(if target.starts_with('/') {
            "this is a proxy: send absolute-form requests (http://host/path) or CONNECT".into()
        } else {
            format!("unsupported request target {target:?}: only http:// URLs and CONNECT")
        }));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    // Userinfo in the URL is not a destination.
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    split_authority(authority, Some(80))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn connect_heads() {
        let h = parse_head(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\nxx")
            .unwrap()
            .unwrap();
        assert_eq!((h.host.as_str(), h.port, h.len), ("example.com", 443, 59));
        let h = parse_head(b"CONNECT [::1]:8443 HTTP/1.1\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!((h.host.as_str(), h.port), ("::1", 8443));
        assert!(parse_head(b"CONNECT example.com HTTP/1.1\r\n\r\n").is_err());
        assert!(parse_head(b"CONNECT a:0 HTTP/1.1\r\n\r\n").is_err());
        assert!(parse_head(b"CONNECT a:99999 HTTP/1.1\r\n\r\n").is_err());
        assert!(parse_head(b"CONNECT ::1:80 HTTP/1.1\r\n\r\n").is_err());
        assert_eq!(parse_head(b"CONNECT a:1 HTTP/1.1\r\n").unwrap(), None);
    }

    #[test]
    fn absolute_form_heads() {
        let h = parse_head(b"GET http://Example.com/x?y HTTP/1.1\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!((h.host.as_str(), h.port), ("example.com", 80));
        let h = parse_head(b"GET http://u:p@[::1]:8080/ HTTP/1.1\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!((h.host.as_str(), h.port), ("::1", 8080));
        let e = parse_head(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap_err();
        assert!(e.to_string().contains("absolute-form"));
        assert!(parse_head(b"GET https://x/ HTTP/1.1\r\n\r\n").is_err());
        assert!(parse_head(b"\x16\x03\x01\x02\x00garbage\r\n\r\n").is_err());
    }

    #[test]
    fn proxy_authorization_username() {
        // "opencode:proxy"
        let h = parse_head(
            b"CONNECT a:1 HTTP/1.1\r\nProxy-Authorization: Basic b3BlbmNvZGU6cHJveHk=\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.username.as_deref(), Some("opencode"));
        assert_eq!(basic_username(b"Bearer xyz"), None);
        assert_eq!(basic_username(b"Basic !!!"), None);
        // "solo" without a colon
        assert_eq!(basic_username(b"basic c29sbw==").as_deref(), Some("solo"));
    }

    #[tokio::test]
    async fn read_head_limits() {
        let mut buf = Vec::new();
        let mut s: &[u8] = b"CONNECT a:1 HTTP/1.1\r\n";
        assert!(matches!(
            read_head(&mut s, &mut buf).await,
            Err(HeadError::Closed)
        ));
        let big = vec![b'a'; MAX_HEAD + 10];
        let mut s: &[u8] = &big;
        let mut buf = Vec::new();
        assert!(matches!(
            read_head(&mut s, &mut buf).await,
            Err(HeadError::Malformed(_)) | Err(HeadError::TooLarge)
        ));
    }
}
