//! A routed HTTP origin for the capture tests, over TLS (certificate from a [`TestCa`], or
//! self-signed) or plaintext, speaking HTTP/2 or HTTP/1.1 as ALPN chose; and a TCP server that
//! speaks first (an SMTP-like banner, then echo).
//!
//! Routes: `/json`, `/gzip`, `/br`, `/zstd`, `/gzip-br` (stacked `gzip, br`) — [`JSON_BODY`],
//! compressed with [`encode`]; `/bad-gzip` ([`BAD_GZIP`], labelled gzip but not gzip); `/sse`
//! ([`SSE_EVENTS`] with a 1 s pause after the first); `/big?mb=N` ([`big_body`],
//! `application/octet-stream`); `/echo` (the request body and content type back); `/reflect`
//! (an echo service: the request line, headers and body as text, and `Authorization` in
//! `x-reflect-authorization`); `/status/N` (empty for 204/304); `/chunked` ([`CHUNKS`], no length); `/close` (`Connection: close`);
//! `/trailers` ([`TRAILER_VALUE`]); `/slow?ms=N`; anything else: 404. HEAD gets GET's headers.

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Version, header};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::tls::{CertKey, TestCa, self_signed, server_config};

/// The JSON every JSON route returns (before compression).
pub const JSON_BODY: &str = r#"{"id":"chatcmpl-test","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hello from the origin, hello from the origin, hello from the origin"}}],"usage":{"total_tokens":42}}"#;

/// The events of `/sse`, in order; a 1 s pause follows the first.
pub const SSE_EVENTS: [&str; 3] = [
    "event: message\ndata: {\"n\":1}\n\n",
    "event: message\ndata: {\"n\":2}\n\n",
    "event: done\ndata: [DONE]\n\n",
];

/// What `/bad-gzip` sends, labelled `Content-Encoding: gzip`.
pub const BAD_GZIP: &str = "{\"this is\":\"not gzip\"}";

/// The `x-checksum` trailer of `/trailers` (declared with `Trailer: x-checksum`; the request's
/// `TE` comes back as `x-seen-te`).
pub const TRAILER_VALUE: &str = "abc123";

/// The parts of `/chunked`.
pub const CHUNKS: [&str; 3] = ["first part;", "second part;", "last part"];

/// `data` compressed with a `Content-Encoding` list, applied left to right (`gzip, br` is
/// gzip first, then brotli).
pub fn encode(encodings: &str, data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    for enc in encodings.split(',').map(str::trim) {
        out = match enc {
            "gzip" => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
                e.write_all(&out).unwrap();
                e.finish().unwrap()
            }
            "br" => {
                let mut v = Vec::new();
                {
                    let mut w = brotli::CompressorWriter::new(&mut v, 4096, 9, 22);
                    w.write_all(&out).unwrap();
                }
                v
            }
            "zstd" => zstd::encode_all(&out[..], 3).unwrap(),
            other => panic!("unknown encoding {other}"),
        };
    }
    out
}

/// `len` deterministic, incompressible-looking bytes (xorshift).
pub fn big_body(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// One request as the origin received it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Protocol version.
    pub version: Version,
    /// Headers as received.
    pub headers: HeaderMap,
    /// Request body length.
    pub body_len: usize,
}

/// A running origin.
#[derive(Debug, Clone)]
pub struct Origin {
    /// Where it listens.
    pub addr: SocketAddr,
    /// `https` or `http`.
    pub scheme: &'static str,
    /// Requests received, in order.
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// TCP connections accepted.
    pub connections: Arc<AtomicUsize>,
}

impl Origin {
    /// HTTPS with a leaf from `ca` for `ip` and `localhost`; offers h2 and http/1.1.
    pub async fn https(ip: &str, ca: &TestCa) -> Origin {
        Origin::https_alpn(ip, ca, &[b"h2", b"http/1.1"]).await
    }

    /// HTTPS like [`Origin::https`] offering only `alpn` (e.g. HTTP/1.1 only).
    pub async fn https_alpn(ip: &str, ca: &TestCa, alpn: &[&[u8]]) -> Origin {
        let cert = ca.leaf(&[ip, "localhost"]);
        Origin::start(ip, Some((cert, alpn.iter().map(|p| p.to_vec()).collect()))).await
    }

    /// HTTPS with a self-signed certificate for `ip` (trusted by nobody).
    pub async fn self_signed(ip: &str) -> Origin {
        let alpn = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Origin::start(ip, Some((self_signed(&[ip, "localhost"]), alpn))).await
    }

    /// Plaintext HTTP/1.1.
    pub async fn plain(ip: &str) -> Origin {
        Origin::start(ip, None).await
    }

    async fn start(ip: &str, cert: Option<(CertKey, Vec<Vec<u8>>)>) -> Origin {
        let l = TcpListener::bind((ip, 0)).await.unwrap();
        let o = Origin {
            addr: l.local_addr().unwrap(),
            scheme: if cert.is_some() { "https" } else { "http" },
            seen: Arc::default(),
            connections: Arc::default(),
        };
        let tls = cert.map(|(c, alpn)| {
            let alpn: Vec<&[u8]> = alpn.iter().map(Vec::as_slice).collect();
            tokio_rustls::TlsAcceptor::from(server_config(&c, &alpn))
        });
        let me = o.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = l.accept().await {
                me.connections.fetch_add(1, Ordering::SeqCst);
                let (tls, seen) = (tls.clone(), me.seen.clone());
                tokio::spawn(async move {
                    match tls {
                        Some(acc) => {
                            let Ok(Ok(s)) =
                                tokio::time::timeout(Duration::from_secs(10), acc.accept(tcp))
                                    .await
                            else {
                                return;
                            };
                            let h2 = s.get_ref().1.alpn_protocol() == Some(b"h2");
                            serve(s, h2, seen).await;
                        }
                        None => serve(tcp, false, seen).await,
                    }
                });
            }
        });
        o
    }

    /// `scheme://ip:port{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.addr)
    }

    /// `ip:port`.
    pub fn authority(&self) -> String {
        self.addr.to_string()
    }

    /// The IP as a string.
    pub fn ip(&self) -> String {
        self.addr.ip().to_string()
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn serve<S>(io: S, h2: bool, seen: Arc<Mutex<Vec<Seen>>>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| {
        let seen = seen.clone();
        async move { Ok::<_, Infallible>(route(req, seen).await) }
    });
    let io = TokioIo::new(io);
    if h2 {
        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(io, svc)
            .await;
    } else {
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(io, svc)
            .await;
    }
}

type RBody = BoxBody<Bytes, Infallible>;

fn full(b: impl Into<Bytes>) -> RBody {
    Full::new(b.into()).boxed()
}

/// A body fed through a channel: each message is one frame, sent as it comes.
struct ChanBody(mpsc::Receiver<Bytes>);

impl Body for ChanBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

/// One data frame, then trailers.
struct TrailerBody {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl Body for TrailerBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(d) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(d))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }
}

/// A body whose parts are sent with `pause` between them (after part `pause_after`).
fn paced(parts: Vec<Bytes>, pause_after: usize, pause: Duration) -> RBody {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        for (i, p) in parts.into_iter().enumerate() {
            if tx.send(p).await.is_err() {
                return;
            }
            if i == pause_after {
                tokio::time::sleep(pause).await;
            }
        }
    });
    ChanBody(rx).boxed()
}

fn query_num(path: &str, key: &str) -> Option<u64> {
    let q = path.split_once('?')?.1;
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.parse().ok())
}

async fn route(req: Request<Incoming>, seen: Arc<Mutex<Vec<Seen>>>) -> Response<RBody> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/".to_string(), |p| p.as_str().to_string());
    seen.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        path: path.clone(),
        version: parts.version,
        headers: parts.headers.clone(),
        body_len: body.len(),
    });
    let head = parts.method == Method::HEAD;
    let route = path.split('?').next().unwrap_or("/").to_string();
    let b = Response::builder();
    let resp = match route.as_str() {
        "/json" | "/close" | "/slow" => {
            if let Some(ms) = query_num(&path, "ms") {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            let mut b = b
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::SET_COOKIE, "session=origin-cookie-secret")
                .header("x-origin", "test")
                .header(header::CONTENT_LENGTH, JSON_BODY.len());
            if route == "/close" {
                b = b.header(header::CONNECTION, "close");
            }
            b.body(if head { full("") } else { full(JSON_BODY) })
        }
        "/gzip" | "/br" | "/zstd" | "/gzip-br" => {
            let ce = match route.as_str() {
                "/gzip-br" => "gzip, br",
                r => &r[1..],
            };
            b.header(header::CONTENT_TYPE, "application/json")
                .header(header::CONTENT_ENCODING, ce)
                .body(full(encode(ce, JSON_BODY.as_bytes())))
        }
        "/bad-gzip" => b
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CONTENT_ENCODING, "gzip")
            .body(full(BAD_GZIP)),
        "/trailers" => {
            let te = parts.headers.get(header::TE).cloned();
            let mut b = b
                .header(header::CONTENT_TYPE, "text/plain")
                .header(header::TRAILER, "x-checksum");
            if let Some(te) = te {
                b = b.header("x-seen-te", te);
            }
            let mut t = HeaderMap::new();
            t.insert("x-checksum", TRAILER_VALUE.parse().unwrap());
            b.body(
                TrailerBody {
                    data: Some(Bytes::from_static(b"payload with trailers")),
                    trailers: Some(t),
                }
                .boxed(),
            )
        }
        "/sse" => {
            let parts = SSE_EVENTS.iter().map(|e| Bytes::from_static(e.as_bytes()));
            b.header(header::CONTENT_TYPE, "text/event-stream")
                .header(header::CACHE_CONTROL, "no-cache")
                .body(paced(parts.collect(), 0, Duration::from_secs(1)))
        }
        "/chunked" => {
            let parts = CHUNKS.iter().map(|e| Bytes::from_static(e.as_bytes()));
            b.header(header::CONTENT_TYPE, "text/plain").body(paced(
                parts.collect(),
                0,
                Duration::from_millis(50),
            ))
        }
        "/big" => {
            let len = query_num(&path, "mb").unwrap_or(1) as usize * 1024 * 1024;
            b.header(header::CONTENT_TYPE, "application/octet-stream")
                .header(header::CONTENT_LENGTH, len)
                .body(if head { full("") } else { full(big_body(len)) })
        }
        "/reflect" => {
            // What an echo service (httpbin's /anything) gives back: the request line and
            // every header, in the body and in `x-reflect-authorization`.
            let mut text = format!("{} {path}\n", parts.method);
            for (k, v) in &parts.headers {
                text.push_str(&format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())));
            }
            text.push_str(&String::from_utf8_lossy(&body));
            let mut b = b.header(header::CONTENT_TYPE, "text/plain");
            if let Some(a) = parts.headers.get(header::AUTHORIZATION) {
                b = b.header("x-reflect-authorization", a);
            }
            b.body(full(text))
        }
        "/echo" => {
            let mut b = b;
            if let Some(ct) = parts.headers.get(header::CONTENT_TYPE) {
                b = b.header(header::CONTENT_TYPE, ct);
            }
            b.body(full(body))
        }
        r if r.starts_with("/status/") => {
            let code: u16 = r["/status/".len()..].parse().unwrap_or(500);
            let status = StatusCode::from_u16(code).unwrap();
            match code {
                204 => b.status(status).body(full("")),
                304 => b
                    .status(status)
                    .header(header::ETAG, "\"v1\"")
                    .body(full("")),
                _ => b
                    .status(status)
                    .header(header::CONTENT_TYPE, "text/plain")
                    .body(full(format!("status {code}\n"))),
            }
        }
        _ => b
            .status(StatusCode::NOT_FOUND)
            .header(header::CONTENT_TYPE, "text/plain")
            .body(full("no such route\n")),
    };
    resp.unwrap()
}

/// The banner a [`banner_origin`] sends on accept.
pub const BANNER: &[u8] = b"220 ready\r\n";

/// A TCP server that speaks first: sends [`BANNER`] on accept, then echoes.
pub async fn banner_origin(ip: &str) -> SocketAddr {
    let l = TcpListener::bind((ip, 0)).await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                if s.write_all(BANNER).await.is_err() {
                    return;
                }
                let mut buf = [0u8; 4096];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    #[test]
    fn stacked_encodings_apply_left_to_right() {
        let data = super::JSON_BODY.as_bytes();
        let wire = super::encode("gzip, br", data);
        let mut gz = Vec::new();
        brotli::Decompressor::new(&wire[..], 4096)
            .read_to_end(&mut gz)
            .unwrap();
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(plain, data);
        assert_eq!(super::big_body(1000), super::big_body(1000));
        assert_eq!(super::big_body(1001).len(), 1001);
    }
}
