//! Normalising a message for the next hop: hop-by-hop headers stripped, and a client request
//! rewritten for the origin connection's protocol (HTTP/1.1 or HTTP/2).

use http::{HeaderMap, HeaderValue, Request, Uri, Version, header};

/// Where an exchange goes, as the client addressed it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Origin<'a> {
    /// `https` (intercepted TLS) or `http`.
    pub(crate) scheme: &'a str,
    /// Host name or IP literal (an IPv6 literal without brackets).
    pub(crate) host: &'a str,
    /// Port.
    pub(crate) port: u16,
}

impl Origin<'_> {
    /// `host[:port]`, the port left out when it is the scheme's default, an IPv6 literal in
    /// brackets.
    pub(crate) fn authority(&self) -> String {
        let default = if self.scheme == "https" { 443 } else { 80 };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.to_string()
        };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// `scheme://authority/path?query` for a request URI of this origin.
    pub(crate) fn url(&self, uri: &Uri) -> String {
        let pq = uri.path_and_query().map_or("/", |p| p.as_str());
        format!("{}://{}{pq}", self.scheme, self.authority())
    }
}

/// Removes hop-by-hop headers (RFC 9110 §7.6.1: `Connection` and every header it lists,
/// `Keep-Alive`, `TE`, `Proxy-Connection`) and the proxy's own `Proxy-Authorization`;
/// `Upgrade` stays when asked. `TE: trailers` is kept (the only `TE` HTTP/2 allows; gRPC
/// requires it), and so is `Trailer`, which is end to end: without it hyper's HTTP/1.1 side
/// drops the trailers.
pub(crate) fn strip_hop_headers(h: &mut HeaderMap, keep_upgrade: bool) {
    let te_trailers = h.get_all(header::TE).iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',').any(|t| {
                t.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .eq_ignore_ascii_case("trailers")
            })
        })
    });
    let listed: Vec<String> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    for name in listed {
        if keep_upgrade && name == "upgrade" {
            continue;
        }
        h.remove(name.as_str());
    }
    for name in [
        "proxy-authorization",
        "proxy-connection",
        "keep-alive",
        "te",
    ] {
        h.remove(name);
    }
    if te_trailers {
        h.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    if keep_upgrade {
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        h.remove(header::CONNECTION);
        h.remove(header::UPGRADE);
    }
}

/// Rewrites a client request for the origin connection's protocol: hop-by-hop headers
/// stripped (`Upgrade` kept when `upgrade`), then for HTTP/2 an absolute URI carrying the
/// authority and no `Host` or `Transfer-Encoding`; for HTTP/1.1 an origin-form URI, a `Host`
/// header (the authority the client used, else the origin's) and the cookie fields an HTTP/2
/// client may split joined into one.
pub(crate) fn prepare_request<B>(
    req: &mut Request<B>,
    origin: Origin<'_>,
    h2: bool,
    upgrade: bool,
) {
    // The authority the client used (h2 `:authority`, or the Host header), else the target.
    let authority = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_else(|| origin.authority());
    let pq = req
        .uri()
        .path_and_query()
        .map_or("/".to_string(), |p| p.as_str().to_string());
    strip_hop_headers(req.headers_mut(), upgrade);
    if h2 {
        req.headers_mut().remove(header::HOST);
        req.headers_mut().remove(header::TRANSFER_ENCODING);
        if let Ok(uri) = format!("{}://{authority}{pq}", origin.scheme).parse() {
            *req.uri_mut() = uri;
        }
        *req.version_mut() = Version::HTTP_2;
    } else {
        if let Ok(uri) = pq.parse() {
            *req.uri_mut() = uri;
        }
        if !req.headers().contains_key(header::HOST)
            && let Ok(v) = HeaderValue::from_str(&authority)
        {
            req.headers_mut().insert(header::HOST, v);
        }
        // HTTP/2 clients may send several cookie fields; HTTP/1.1 wants one.
        let cookies: Vec<String> = req
            .headers()
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect();
        if cookies.len() > 1
            && let Ok(v) = HeaderValue::from_str(&cookies.join("; "))
        {
            req.headers_mut().insert(header::COOKIE, v);
        }
        *req.version_mut() = Version::HTTP_11;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn names(h: &HeaderMap) -> Vec<String> {
        let mut n: Vec<String> = h.keys().map(|k| k.as_str().to_string()).collect();
        n.sort();
        n
    }

    #[test]
    fn headers_listed_in_connection_are_stripped() {
        let mut h = headers(&[
            ("connection", "close, X-Secret-Hop"),
            ("connection", "x-other"),
            ("x-secret-hop", "1"),
            ("x-other", "2"),
            ("x-end-to-end", "3"),
        ]);
        strip_hop_headers(&mut h, false);
        assert_eq!(names(&h), ["x-end-to-end"]);
    }

    #[test]
    fn fixed_hop_headers_and_proxy_credentials_are_stripped() {
        let mut h = headers(&[
            ("proxy-authorization", "Basic b3BlbmNvZGU6eA=="),
            ("proxy-connection", "keep-alive"),
            ("keep-alive", "timeout=5"),
            ("te", "gzip"),
            ("upgrade", "websocket"),
            ("trailer", "x-checksum"),
            ("authorization", "Bearer end-to-end"),
        ]);
        strip_hop_headers(&mut h, false);
        assert_eq!(names(&h), ["authorization", "trailer"]);
    }

    #[test]
    fn te_trailers_survives_alone() {
        let mut h = headers(&[("te", "gzip;q=0.5, Trailers ;q=1")]);
        strip_hop_headers(&mut h, false);
        assert_eq!(h.get_all(header::TE).iter().count(), 1);
        assert_eq!(h[header::TE], "trailers");
    }

    #[test]
    fn upgrade_is_kept_when_asked() {
        let mut h = headers(&[
            ("connection", "Upgrade, x-hop"),
            ("upgrade", "websocket"),
            ("x-hop", "1"),
        ]);
        strip_hop_headers(&mut h, true);
        assert_eq!(names(&h), ["connection", "upgrade"]);
        assert_eq!(h[header::CONNECTION], "upgrade");
        assert_eq!(h[header::UPGRADE], "websocket");
    }

    #[test]
    fn authority_and_url() {
        let o = Origin {
            scheme: "https",
            host: "api.example.com",
            port: 443,
        };
        assert_eq!(o.authority(), "api.example.com");
        let uri: Uri = "/v1/messages?beta=true".parse().unwrap();
        assert_eq!(o.url(&uri), "https://api.example.com/v1/messages?beta=true");
        let o = Origin {
            scheme: "http",
            host: "::1",
            port: 8080,
        };
        assert_eq!(o.authority(), "[::1]:8080");
        assert_eq!(o.url(&Uri::from_static("/a")), "http://[::1]:8080/a");
        let o = Origin {
            scheme: "http",
            host: "h",
            port: 443,
        };
        assert_eq!(o.authority(), "h:443");
    }

    fn request(version: Version, uri: &str, hdrs: &[(&str, &str)]) -> Request<()> {
        let mut r = Request::builder()
            .version(version)
            .uri(uri)
            .body(())
            .unwrap();
        *r.headers_mut() = headers(hdrs);
        r
    }

    const ORIGIN: Origin<'static> = Origin {
        scheme: "https",
        host: "origin.test",
        port: 8443,
    };

    #[test]
    fn h2_client_to_h1_origin() {
        let mut r = request(
            Version::HTTP_2,
            "https://api.example.com/v1/x?q=1",
            &[("cookie", "a=1"), ("cookie", "b=2"), ("te", "trailers")],
        );
        prepare_request(&mut r, ORIGIN, false, false);
        assert_eq!(r.version(), Version::HTTP_11);
        assert_eq!(r.uri(), "/v1/x?q=1");
        assert_eq!(r.headers()[header::HOST], "api.example.com");
        assert_eq!(r.headers().get_all(header::COOKIE).iter().count(), 1);
        assert_eq!(r.headers()[header::COOKIE], "a=1; b=2");
        assert_eq!(r.headers()[header::TE], "trailers");
    }

    #[test]
    fn h1_client_to_h2_origin() {
        let mut r = request(
            Version::HTTP_11,
            "/path",
            &[
                ("host", "api.example.com"),
                ("transfer-encoding", "chunked"),
                ("connection", "keep-alive"),
            ],
        );
        prepare_request(&mut r, ORIGIN, true, false);
        assert_eq!(r.version(), Version::HTTP_2);
        assert_eq!(r.uri(), "https://api.example.com/path");
        assert!(r.headers().is_empty(), "{:?}", r.headers());
    }

    #[test]
    fn without_host_the_origin_is_the_authority() {
        let mut r = request(Version::HTTP_10, "/", &[]);
        prepare_request(&mut r, ORIGIN, false, false);
        assert_eq!(r.headers()[header::HOST], "origin.test:8443");
        let mut r = request(
            Version::HTTP_11,
            "/ws",
            &[("connection", "upgrade"), ("upgrade", "websocket")],
        );
        prepare_request(&mut r, ORIGIN, false, true);
        assert_eq!(r.headers()[header::UPGRADE], "websocket");
        assert_eq!(r.headers()[header::CONNECTION], "upgrade");
    }
}
