//! The exporter's HTTP client: one POST at a time over HTTP/1.1, a fresh connection per
//! request (a request every few seconds at most does not need a pool), TLS through rustls with
//! the daemon's origin trust (`--upstream-ca` for private CAs and tests), certificates always
//! verified.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;

use crate::net::HostMap;

/// The most of a collector's answer read (its body is only shown in errors).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Why an endpoint URL is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EndpointError {
    /// Not `http://HOST[:PORT]/PATH` or `https://…`.
    #[error(
        "{0:?} is not an http:// or https:// URL (expected e.g. http://127.0.0.1:4318/v1/traces)"
    )]
    NotHttp(String),
    /// No host.
    #[error("{0:?} has no host")]
    NoHost(String),
    /// A port that is not a number in 1–65535.
    #[error("{0:?} has an invalid port")]
    BadPort(String),
}

/// A parsed collector URL. Its `Debug` leaves the credentials out.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    https: bool,
    host: String,
    port: u16,
    /// Path and query, from `/`.
    path: String,
    /// `Basic` credentials from the URL's user info, sent as `authorization`.
    basic: Option<String>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Endpoint({})", self.display())
    }
}

impl Endpoint {
    /// Parses `http(s)://[user:pass@]host[:port][/path]`; a missing path is `/v1/traces`.
    pub fn parse(s: &str) -> Result<Endpoint, EndpointError> {
        let t = s.trim();
        let (https, rest) = if let Some(r) = t.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = t.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(EndpointError::NotHttp(s.to_owned()));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/v1/traces"),
        };
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (host, port) = if let Some(r) = hostport.strip_prefix('[') {
            let (h, after) = r
                .split_once(']')
                .ok_or_else(|| EndpointError::NoHost(s.to_owned()))?;
            (h, after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(EndpointError::NoHost(s.to_owned()));
        }
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| EndpointError::BadPort(s.to_owned()))?,
            None if https => 443,
            None => 80,
        };
        if path.contains(char::is_whitespace) {
            return Err(EndpointError::NotHttp(s.to_owned()));
        }
        use base64::Engine as _;
        Ok(Endpoint {
            https,
            host: host.to_owned(),
            port,
            path: path.to_owned(),
            basic: userinfo.map(|u| base64::engine::general_purpose::STANDARD.encode(u)),
        })
    }

    /// The URL as status and logs show it: no credentials, no query.
    pub fn display(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let path = self.path.split('?').next().unwrap_or("/");
        format!("{scheme}://{host}:{}{path}", self.port)
    }
}

/// What the collector answered.
#[derive(Debug)]
pub(crate) struct Answer {
    /// HTTP status.
    pub(crate) status: u16,
    /// `Retry-After` in seconds, when sent as a number.
    pub(crate) retry_after: Option<Duration>,
    /// The start of the body (for errors).
    pub(crate) body: String,
}

/// Extra request headers; `Debug` shows their names only (values usually carry credentials).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers(pub(crate) Vec<(String, String)>);

impl std::fmt::Debug for Headers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(k, _)| format!("{k}: …")))
            .finish()
    }
}

/// Posts OTLP requests to one endpoint.
#[derive(Debug, Clone)]
pub(crate) struct OtlpClient {
    endpoint: Endpoint,
    headers: Headers,
    timeout: Duration,
    tls: Arc<rustls::ClientConfig>,
    hosts: HostMap,
}

impl OtlpClient {
    pub(crate) fn new(
        endpoint: Endpoint,
        headers: Headers,
        timeout: Duration,
        tls: Arc<rustls::ClientConfig>,
        hosts: HostMap,
    ) -> OtlpClient {
        OtlpClient {
            endpoint,
            headers,
            timeout,
            tls,
            hosts,
        }
    }

    /// POSTs a gzipped protobuf body; `Err` is a transport failure (connect, TLS, timeout, a
    /// connection closed mid-request), worded for `status.export.last_error`.
    pub(crate) async fn post(&self, gzipped: Bytes) -> Result<Answer, String> {
        match tokio::time::timeout(self.timeout, self.exchange(gzipped)).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {:?}", self.timeout)),
        }
    }

    async fn exchange(&self, body: Bytes) -> Result<Answer, String> {
        let ep = &self.endpoint;
        let tcp = crate::net::dial::connect_upstream(&self.hosts, &ep.host, ep.port, self.timeout)
            .await
            .map_err(|e| format!("connect {}:{}: {e}", ep.host, ep.port))?;
        let req = self.request(body)?;
        if ep.https {
            let name = ServerName::try_from(ep.host.clone())
                .map_err(|e| format!("TLS name {}: {e}", ep.host))?;
            let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS with {}: {e}", ep.host))?;
            send(TokioIo::new(tls), req).await
        } else {
            send(TokioIo::new(tcp), req).await
        }
    }

    fn request(&self, body: Bytes) -> Result<http::Request<Full<Bytes>>, String> {
        let ep = &self.endpoint;
        let host = if ep.port == 80 || ep.port == 443 {
            ep.host.clone()
        } else {
            format!("{}:{}", ep.host, ep.port)
        };
        let mut b = http::Request::post(ep.path.as_str())
            .header(http::header::HOST, host)
            .header(http::header::CONTENT_TYPE, "application/x-protobuf")
            .header(http::header::CONTENT_ENCODING, "gzip")
            .header(
                http::header::USER_AGENT,
                concat!("greyproxyd/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(basic) = &ep.basic {
            b = b.header(http::header::AUTHORIZATION, format!("Basic {basic}"));
        }
        for (k, v) in &self.headers.0 {
            b = b.header(k.as_str(), v.as_str());
        }
        b.body(Full::new(body))
            .map_err(|e| format!("cannot build the request: {e}"))
    }
}

async fn send<I>(io: I, req: http::Request<Full<Bytes>>) -> Result<Answer, String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let result = async {
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = match Limited::new(resp.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
        {
            Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
            Err(_) => String::new(),
        };
        Ok(Answer {
            status,
            retry_after,
            body,
        })
    }
    .await;
    driver.abort();
    result
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_with_defaults_and_hide_credentials() {
        let e = Endpoint::parse("http://127.0.0.1:4318/v1/traces").unwrap();
        assert_eq!(e.display(), "http://127.0.0.1:4318/v1/traces");
        let e = Endpoint::parse("https://pk:sk@cloud.langfuse.com/api/public/otel/v1/traces?x=1")
            .unwrap();
        assert_eq!(e.port, 443);
        assert_eq!(e.basic.as_deref(), Some("cGs6c2s="));
        assert_eq!(
            e.display(),
            "https://cloud.langfuse.com:443/api/public/otel/v1/traces"
        );
        assert_eq!(
            Endpoint::parse("http://[::1]:4318").unwrap().path,
            "/v1/traces"
        );
        // Neither the URL's password nor a header value shows in debug output.
        let h = Headers(vec![("authorization".into(), "Basic c2s=".into())]);
        let dbg = format!("{e:?} {h:?}");
        assert!(!dbg.contains("sk") && !dbg.contains("c2s="), "{dbg}");
        for bad in [
            "",
            "localhost:4318",
            "ftp://h/x",
            "http://",
            "http://h:0/",
            "http://h:x/",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    fn client(addr: std::net::SocketAddr, timeout: Duration) -> OtlpClient {
        let tls = crate::mitm::upstream::UpstreamTls::new(&[])
            .unwrap()
            .config(vec![b"http/1.1".to_vec()]);
        OtlpClient::new(
            Endpoint::parse(&format!("http://{addr}/v1/traces")).unwrap(),
            Headers::default(),
            timeout,
            tls,
            HostMap::new(),
        )
    }

    #[tokio::test]
    async fn a_collector_closing_mid_request_or_never_answering_is_a_clear_error() {
        use tokio::io::AsyncReadExt;
        // Closes as soon as the request has started to arrive.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let mut b = [0u8; 16];
                let _ = s.read(&mut b).await;
            }
        });
        let e = client(addr, Duration::from_secs(5))
            .post(Bytes::from_static(b"x"))
            .await
            .unwrap_err();
        assert!(e.starts_with("request failed"), "{e}");
        // Reads everything and never answers.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                held.push(s);
            }
        });
        let e = client(addr, Duration::from_millis(200))
            .post(Bytes::from_static(b"x"))
            .await
            .unwrap_err();
        assert!(e.starts_with("no answer within"), "{e}");
    }
}
