//! A scripted HTTP/1.1 origin (plain, or TLS with a [`TestCa`] leaf) for the middleware tests:
//! fixed replies per path, `/echo` (request body and content type back), and every request
//! recorded with its body.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::tls::{TestCa, server_config};

/// A fixed reply.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status.
    pub status: u16,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body bytes as sent.
    pub body: Vec<u8>,
}

impl Reply {
    /// 200 with `content_type` and `body`.
    pub fn new(content_type: &str, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status: 200,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.into(),
        }
    }

    /// Adds a header.
    pub fn header(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.into(), v.into()));
        self
    }
}

/// One request as the origin got it.
#[derive(Debug, Clone)]
pub struct Got {
    /// Method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Vec<u8>,
}

/// A running scripted origin.
#[derive(Debug, Clone)]
pub struct Scripted {
    /// Where it listens.
    pub addr: SocketAddr,
    /// `http` or `https`.
    pub scheme: &'static str,
    seen: Arc<Mutex<Vec<Got>>>,
}

impl Scripted {
    /// Starts on `ip:0`; HTTPS (HTTP/1.1 only) with a leaf from `ca` when given.
    pub async fn start(ip: &str, ca: Option<&TestCa>, routes: Vec<(&str, Reply)>) -> Scripted {
        let l = TcpListener::bind((ip, 0)).await.unwrap();
        let routes: Arc<HashMap<String, Reply>> = Arc::new(
            routes
                .into_iter()
                .map(|(p, r)| (p.to_string(), r))
                .collect(),
        );
        let tls = ca.map(|ca| {
            tokio_rustls::TlsAcceptor::from(server_config(
                &ca.leaf(&[ip, "localhost"]),
                &[b"http/1.1"],
            ))
        });
        let o = Scripted {
            addr: l.local_addr().unwrap(),
            scheme: if tls.is_some() { "https" } else { "http" },
            seen: Arc::default(),
        };
        let seen = o.seen.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = l.accept().await {
                let (tls, seen, routes) = (tls.clone(), seen.clone(), routes.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let (seen, routes) = (seen.clone(), routes.clone());
                        async move { Ok::<_, Infallible>(route(req, &seen, &routes).await) }
                    });
                    let b = hyper::server::conn::http1::Builder::new();
                    match tls {
                        Some(acc) => {
                            if let Ok(s) = acc.accept(tcp).await {
                                let _ = b.serve_connection(TokioIo::new(s), svc).await;
                            }
                        }
                        None => {
                            let _ = b.serve_connection(TokioIo::new(tcp), svc).await;
                        }
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

    /// Requests so far.
    pub fn requests(&self) -> Vec<Got> {
        self.seen.lock().unwrap().clone()
    }
}

async fn route(
    req: Request<Incoming>,
    seen: &Mutex<Vec<Got>>,
    routes: &HashMap<String, Reply>,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/".to_string(), |p| p.as_str().to_string());
    seen.lock().unwrap().push(Got {
        method: parts.method.to_string(),
        path: path.clone(),
        headers: parts.headers.clone(),
        body: body.clone(),
    });
    let bare = path.split('?').next().unwrap_or("/");
    let mut b = Response::builder();
    if let Some(r) = routes.get(bare) {
        b = b.status(r.status);
        for (k, v) in &r.headers {
            b = b.header(k, v);
        }
        return b.body(Full::new(Bytes::from(r.body.clone()))).unwrap();
    }
    if bare == "/echo" {
        if let Some(ct) = parts.headers.get(header::CONTENT_TYPE) {
            b = b.header(header::CONTENT_TYPE, ct);
        }
        return b.body(Full::new(Bytes::from(body))).unwrap();
    }
    b.status(StatusCode::NOT_FOUND)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Full::new(Bytes::from_static(b"no such route\n")))
        .unwrap()
}
