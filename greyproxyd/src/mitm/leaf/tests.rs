//! Leaf issuance, caching and real TLS handshakes (in memory) against a client that trusts
//! only our CA.
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::*;
use crate::mitm::ca;

fn issuer() -> (tempfile::TempDir, LeafIssuer) {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca::generate(dir.path(), false).unwrap();
    (dir, LeafIssuer::new(Arc::new(ca), 16).unwrap())
}

fn client_config(ca: &Ca, alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.cert_der().clone()).unwrap();
    let mut cfg = ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    Arc::new(cfg)
}

/// What the client saw of a handshake.
#[derive(Debug)]
struct Seen {
    alpn: Option<Vec<u8>>,
    chain: Vec<CertificateDer<'static>>,
    kind: Option<rustls::HandshakeKind>,
}

/// Handshakes over an in-memory pipe, exchanges one message each way, and reports what the
/// client saw.
async fn handshake(
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    name: &str,
) -> Result<Seen, std::io::Error> {
    let (c, s) = tokio::io::duplex(64 * 1024);
    let srv = tokio::spawn(async move {
        let mut tls = TlsAcceptor::from(server).accept(s).await?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await?;
        tls.write_all(b"pong").await?;
        tls.shutdown().await?;
        Ok::<_, std::io::Error>(buf)
    });
    let sn = ServerName::try_from(name.to_string()).unwrap();
    let mut tls = TlsConnector::from(client).connect(sn, c).await?;
    tls.write_all(b"ping").await?;
    let mut buf = Vec::new();
    tls.read_to_end(&mut buf).await?;
    assert_eq!(buf, b"pong");
    assert_eq!(&srv.await.unwrap()?, b"ping");
    let (_, conn) = tls.get_ref();
    let chain = conn.peer_certificates().unwrap().to_vec();
    Ok(Seen {
        alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
        chain,
        kind: conn.handshake_kind(),
    })
}

use rustls_pki_types::CertificateDer;

#[tokio::test]
async fn dns_leaf_verifies_and_negotiates_alpn() {
    let (_dir, iss) = issuer();
    let t = Instant::now();
    let cfg = iss
        .server_config("Example.COM.", &[b"h2".to_vec()])
        .unwrap();
    let first = t.elapsed();
    let client = client_config(iss.ca(), &[b"h2", b"http/1.1"]);
    let t = Instant::now();
    let Seen { alpn, chain, kind } = handshake(cfg, client.clone(), "example.com").await.unwrap();
    eprintln!("issue+config: {first:?}, full handshake: {:?}", t.elapsed());
    assert_eq!(kind, Some(rustls::HandshakeKind::Full));
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(chain.len(), 2, "chain is [leaf, CA]");
    assert_eq!(&chain[1], iss.ca().cert_der());

    // The leaf: CN and SAN = name, serverAuth, ≤ 30 days, not the CA key.
    let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
    assert_eq!(leaf.subject().to_string(), "CN=example.com");
    assert_eq!(leaf.issuer().to_string(), iss.ca().subject());
    let eku = leaf.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth);
    let san = leaf.subject_alternative_name().unwrap().unwrap().value;
    assert_eq!(
        format!("{:?}", san.general_names),
        r#"[DNSName("example.com")]"#
    );
    let v = leaf.validity();
    let days = (v.not_after.timestamp() - v.not_before.timestamp()) / 86_400;
    assert_eq!(days, 30, "30 days + the hour of back-dating");
    let (_, cax) = x509_parser::parse_x509_certificate(iss.ca().cert_der()).unwrap();
    assert_ne!(leaf.public_key().raw, cax.public_key().raw);
    assert_eq!(iss.issued(), 1);

    // Same name and ALPN again: nothing issued, same config; resumption makes it cheaper.
    let cfg2 = iss.server_config("example.com", &[b"h2".to_vec()]).unwrap();
    let t = Instant::now();
    let seen = handshake(cfg2, client, "example.com").await.unwrap();
    eprintln!("repeat (resumed) handshake: {:?}", t.elapsed());
    assert_eq!(seen.kind, Some(rustls::HandshakeKind::Resumed));
    assert_eq!(iss.issued(), 1);
}

#[tokio::test]
async fn ip_leaf_verifies_with_http11() {
    let (_dir, iss) = issuer();
    let cfg = iss
        .server_config("127.0.0.1", &[b"http/1.1".to_vec()])
        .unwrap();
    let client = client_config(iss.ca(), &[b"h2", b"http/1.1"]);
    let Seen { alpn, chain, .. } = handshake(cfg, client, "127.0.0.1").await.unwrap();
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
    assert_eq!(leaf.subject().to_string(), "", "no CN for IP leaves");
    let san = leaf.subject_alternative_name().unwrap().unwrap().value;
    assert_eq!(
        format!("{:?}", san.general_names),
        "[IPAddress([127, 0, 0, 1])]"
    );

    // IPv6, bracketed or not, is one cache entry.
    iss.certified_key("[::1]").unwrap();
    iss.certified_key("::1").unwrap();
    assert_eq!(iss.issued(), 2);
}

#[tokio::test]
async fn wrong_name_and_foreign_ca_are_rejected() {
    let (_dir, iss) = issuer();
    let cfg = iss.server_config("example.com", &[]).unwrap();
    let client = client_config(iss.ca(), &[]);
    let err = handshake(cfg.clone(), client, "other.example")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not valid for name"), "{err}");

    let (_dir2, other) = issuer();
    let client = client_config(other.ca(), &[]);
    let err = handshake(cfg, client, "example.com").await.unwrap_err();
    assert!(err.to_string().to_lowercase().contains("unknown"), "{err}");
}

#[test]
fn cache_is_keyed_by_lowercase_name_and_bounded() {
    let (_dir, iss) = issuer();
    let a = iss.certified_key("API.example.com").unwrap();
    let b = iss.certified_key("api.example.com").unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!(iss.issued(), 1);

    // Different ALPN lists share the leaf but get their own config.
    let c1 = iss
        .server_config("api.example.com", &[b"h2".to_vec()])
        .unwrap();
    let c2 = iss.server_config("api.example.com", &[]).unwrap();
    let c3 = iss
        .server_config("api.example.com", &[b"h2".to_vec()])
        .unwrap();
    assert!(!Arc::ptr_eq(&c1, &c2));
    assert!(Arc::ptr_eq(&c1, &c3));
    assert_eq!(iss.issued(), 1);

    // Capacity 16: the 17th name evicts the least recently used.
    for i in 0..16 {
        iss.certified_key(&format!("h{i}.example")).unwrap();
    }
    assert_eq!(iss.issued(), 17);
    iss.certified_key("api.example.com").unwrap();
    assert_eq!(iss.issued(), 18);
}

#[test]
fn old_entries_are_reissued() {
    let (_dir, iss) = issuer();
    let iss = iss.with_reissue_after(Duration::ZERO);
    let a = iss.certified_key("example.com").unwrap();
    let b = iss.certified_key("example.com").unwrap();
    assert!(!Arc::ptr_eq(&a, &b));
    assert_ne!(a.cert[0], b.cert[0], "distinct serials");
    assert_eq!(iss.issued(), 2);
}

#[test]
fn leaf_never_outlives_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::default();
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let soon = SystemTime::now() + Duration::from_secs(5 * 86_400);
    p.not_before = (SystemTime::now() - Duration::from_secs(86_400)).into();
    p.not_after = soon.into();
    let cert = p.self_signed(&key).unwrap();
    let (c, k) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    let ca = Ca::from_pem(
        cert.pem().as_bytes(),
        key.serialize_pem().as_bytes(),
        &c,
        &k,
    )
    .unwrap();
    let iss = LeafIssuer::new(Arc::new(ca), 4).unwrap();
    let ck = iss.certified_key("example.com").unwrap();
    let (_, leaf) = x509_parser::parse_x509_certificate(&ck.cert[0]).unwrap();
    let (_, cax) = x509_parser::parse_x509_certificate(&cert.der()[..]).unwrap();
    assert_eq!(
        leaf.validity().not_after.timestamp(),
        cax.validity().not_after.timestamp()
    );
}

#[test]
fn bad_names_are_refused() {
    let (_dir, iss) = issuer();
    for bad in [
        "",
        "a..b",
        "exa mple.com",
        "host:443",
        "ex\u{e4}mple.com",
        "-",
        &"a".repeat(64),
    ] {
        let err = iss.certified_key(bad).unwrap_err();
        assert!(matches!(err, CaError::InvalidName { .. }), "{bad:?}: {err}");
    }
    assert_eq!(iss.issued(), 0);
}

#[test]
#[ignore = "timing report, run with --ignored --nocapture"]
fn issuance_timing() {
    let (_dir, iss) = issuer();
    let n = 500;
    let t = Instant::now();
    for i in 0..n {
        iss.certified_key(&format!("h{i}.example")).unwrap();
    }
    let per_issue = t.elapsed() / n;
    let t = Instant::now();
    for _ in 0..10_000 {
        iss.server_config("h499.example", &[b"h2".to_vec()])
            .unwrap();
    }
    eprintln!(
        "issue: {per_issue:?}/leaf, cached config: {:?}/lookup",
        t.elapsed() / 10_000
    );
}

#[test]
fn shareable_across_tasks() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<LeafIssuer>();
    send_sync::<Ca>();
    send_sync::<crate::mitm::reload::MitmCerts>();
}
