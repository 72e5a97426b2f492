//! TLS for the interception tests: a throw-away CA that signs origin certificates (its PEM goes
//! to a temp file for the daemon's `--upstream-ca` and nowhere else), self-signed certificates
//! trusted by nobody, and a client that speaks TLS through the proxies' tunnels with a chosen
//! root (usually the daemon's `ca-cert.pem`), plus HTTP/1.1 and HTTP/2 senders over it.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::raw::{SocksTarget, http_connect, socks5_connect};

/// A certificate chain and its key, ready for a rustls server.
#[derive(Debug)]
pub struct CertKey {
    /// Leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's key.
    pub key: PrivateKeyDer<'static>,
}

impl Clone for CertKey {
    fn clone(&self) -> Self {
        CertKey {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

/// A test certificate authority.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate (PEM).
    pub pem: String,
    der: CertificateDer<'static>,
    file: tempfile::NamedTempFile,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa")
            .field("file", &self.file.path())
            .finish()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn.push(DnType::OrganizationName, "greyproxy tests");
    dn
}

fn key_der(key: &KeyPair) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()))
}

fn leaf_params(names: &[&str], cn: &str) -> CertificateParams {
    let mut p =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    p.distinguished_name = dn(cn);
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.use_authority_key_identifier_extension = true;
    p
}

impl TestCa {
    /// A new CA named `cn`; its PEM is written to a temp file ([`TestCa::pem_path`]).
    pub fn new(cn: &str) -> TestCa {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::default();
        p.distinguished_name = dn(cn);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = p.self_signed(&key).unwrap();
        let pem = cert.pem();
        let mut file = tempfile::Builder::new()
            .prefix("test-ca-")
            .suffix(".pem")
            .tempfile()
            .unwrap();
        file.write_all(pem.as_bytes()).unwrap();
        file.flush().unwrap();
        TestCa {
            issuer: Issuer::new(p, key),
            pem,
            der: cert.der().clone(),
            file,
        }
    }

    /// The PEM file (for `--upstream-ca` and `curl --cacert`).
    pub fn pem_path(&self) -> &Path {
        self.file.path()
    }

    /// [`TestCa::pem_path`] as a string.
    pub fn pem_arg(&self) -> String {
        self.pem_path().display().to_string()
    }

    /// A leaf for `names` (IP literals or DNS names) signed by this CA; chain `[leaf, CA]`.
    pub fn leaf(&self, names: &[&str]) -> CertKey {
        let key = KeyPair::generate().unwrap();
        let cert = leaf_params(names, names[0])
            .signed_by(&key, &self.issuer)
            .unwrap();
        CertKey {
            chain: vec![cert.der().clone(), self.der.clone()],
            key: key_der(&key),
        }
    }
}

/// A self-signed certificate for `names` that no store trusts.
pub fn self_signed(names: &[&str]) -> CertKey {
    let key = KeyPair::generate().unwrap();
    let cert = leaf_params(names, "self-signed test origin")
        .self_signed(&key)
        .unwrap();
    CertKey {
        chain: vec![cert.der().clone()],
        key: key_der(&key),
    }
}

/// A server config offering `alpn` (in preference order).
pub fn server_config(ck: &CertKey, alpn: &[&[u8]]) -> Arc<ServerConfig> {
    let mut c = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(ck.chain.clone(), ck.key.clone_key())
        .unwrap();
    c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(c)
}

/// A client config trusting only the certificates in the PEM file `roots`, offering `alpn`.
pub fn client_config(roots: &Path, alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let mut store = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(roots).unwrap() {
        store.add(c.unwrap()).unwrap();
    }
    let mut c = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
    c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(c)
}

/// TLS over an already open byte stream to `name` (an IP literal or DNS name).
pub async fn tls_connect(
    tcp: TcpStream,
    name: &str,
    roots: &Path,
    alpn: &[&[u8]],
) -> std::io::Result<TlsStream<TcpStream>> {
    let server = ServerName::try_from(name.to_string()).unwrap();
    tokio_rustls::TlsConnector::from(client_config(roots, alpn))
        .connect(server, tcp)
        .await
}

/// `CONNECT origin` through the HTTP proxy as `user`, then TLS to the origin's IP trusting
/// `roots`. Panics if the proxy does not answer 200.
pub async fn tls_via_connect(
    proxy: SocketAddr,
    origin: SocketAddr,
    user: Option<&str>,
    roots: &Path,
    alpn: &[&[u8]],
) -> std::io::Result<TlsStream<TcpStream>> {
    let (tcp, reply) = http_connect(proxy, &origin.to_string(), user).await;
    assert_eq!(reply.status, 200, "CONNECT refused: {}", reply.head);
    tls_connect(tcp, &origin.ip().to_string(), roots, alpn).await
}

/// SOCKS5 CONNECT to `origin` (no auth), then TLS trusting `roots`.
pub async fn tls_via_socks(
    proxy: SocketAddr,
    origin: SocketAddr,
    roots: &Path,
    alpn: &[&[u8]],
) -> std::io::Result<TlsStream<TcpStream>> {
    let (tcp, rep) = socks5_connect(proxy, &SocksTarget::Ip(origin), None).await;
    assert_eq!(rep, Some(0), "SOCKS5 CONNECT refused");
    tls_connect(tcp, &origin.ip().to_string(), roots, alpn).await
}

/// Body type of requests sent by [`Sender`].
pub type ReqBody = Full<Bytes>;

/// One HTTP client connection (HTTP/1.1 or HTTP/2 per the stream's ALPN).
pub enum Sender {
    /// HTTP/1.1.
    H1(http1::SendRequest<ReqBody>),
    /// HTTP/2.
    H2(http2::SendRequest<ReqBody>),
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Sender::H1(_) => "Sender::H1",
            Sender::H2(_) => "Sender::H2",
        })
    }
}

/// A client response with its body still streaming.
pub type Resp = http::Response<hyper::body::Incoming>;

impl Sender {
    /// Handshakes HTTP over `tls`: HTTP/2 when ALPN chose `h2`, else HTTP/1.1.
    pub async fn handshake(tls: TlsStream<TcpStream>) -> Sender {
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        let io = TokioIo::new(tls);
        if h2 {
            let (s, conn) = http2::handshake(TokioExecutor::new(), io).await.unwrap();
            tokio::spawn(conn);
            Sender::H2(s)
        } else {
            let (s, conn) = http1::handshake(io).await.unwrap();
            tokio::spawn(conn);
            Sender::H1(s)
        }
    }

    /// Another handle on the same HTTP/2 connection (streams run concurrently); `None` for
    /// HTTP/1.1.
    pub fn h2_clone(&self) -> Option<Sender> {
        match self {
            Sender::H2(s) => Some(Sender::H2(s.clone())),
            Sender::H1(_) => None,
        }
    }

    /// Sends `GET path` to `authority`; the response body is left to the caller.
    pub async fn get(&mut self, authority: &str, path: &str) -> hyper::Result<Resp> {
        self.send(authority, "GET", path, Bytes::new()).await
    }

    /// Sends any request with `body`.
    pub async fn send(
        &mut self,
        authority: &str,
        method: &str,
        path: &str,
        body: Bytes,
    ) -> hyper::Result<Resp> {
        self.send_with(authority, method, path, &[], body).await
    }

    /// Sends any request with extra `headers` and `body`.
    pub async fn send_with(
        &mut self,
        authority: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> hyper::Result<Resp> {
        let mut b = http::Request::builder().method(method);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b = match self {
            Sender::H1(_) => b.uri(path).header("host", authority),
            Sender::H2(_) => b.uri(format!("https://{authority}{path}")),
        };
        let req = b.body(Full::new(body)).unwrap();
        match self {
            Sender::H1(s) => {
                s.ready().await?;
                s.send_request(req).await
            }
            Sender::H2(s) => {
                s.ready().await?;
                s.send_request(req).await
            }
        }
    }
}

/// Reads a whole response body.
pub async fn body_bytes(resp: Resp) -> Bytes {
    resp.into_body().collect().await.unwrap().to_bytes()
}
