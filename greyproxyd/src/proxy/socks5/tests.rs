//! Unit tests of the parent module.

#![allow(clippy::unwrap_used)]
use super::*;
use tokio::io::duplex;

/// Feeds `input` (then EOF) to `handshake`; returns its result, what the server wrote,
/// and what was left unread on the server side.
async fn run(input: &[u8]) -> (Result<Request, Socks5Error>, Vec<u8>, Vec<u8>) {
    let (mut client, mut server) = duplex(4096);
    client.write_all(input).await.unwrap();
    client.shutdown().await.unwrap();
    let result = handshake(&mut server).await;
    let mut leftover = Vec::new();
    server.read_to_end(&mut leftover).await.unwrap();
    drop(server);
    let mut written = Vec::new();
    client.read_to_end(&mut written).await.unwrap();
    (result, written, leftover)
}

/// Greeting offering only no-auth, then a CONNECT to `atyp`/`addr` (port bytes included).
fn no_auth_input(atyp: u8, addr: &[u8]) -> Vec<u8> {
    [&[5, 1, 0, 5, 1, 0, atyp][..], addr].concat()
}

#[tokio::test]
async fn no_auth_ipv4_domain_ipv6() {
    let (res, out, rest) = run(&no_auth_input(1, &[127, 0, 0, 1, 0x1F, 0x90])).await;
    let req = res.unwrap();
    assert_eq!(req.target, Target::Ip("127.0.0.1:8080".parse().unwrap()));
    assert_eq!(
        (req.target.host().as_str(), req.target.port()),
        ("127.0.0.1", 8080)
    );
    assert_eq!(req.username, None);
    assert_eq!(out, [5, 0]);
    assert!(rest.is_empty());

    let (res, out, _) = run(&no_auth_input(3, b"\x0bexample.com\x01\xbb")).await;
    let target = res.unwrap().target;
    assert_eq!(target, Target::Domain("example.com".into(), 443));
    assert_eq!(target.host(), "example.com");
    assert_eq!(target.to_string(), "example.com:443");
    assert_eq!(out, [5, 0]);

    let v6 = [&Ipv6Addr::LOCALHOST.octets()[..], &[0, 80]].concat();
    let target = run(&no_auth_input(4, &v6)).await.0.unwrap().target;
    assert_eq!((target.host().as_str(), target.port()), ("::1", 80));
    assert_eq!(target.to_string(), "[::1]:80");
}

fn auth_input(user: &[u8], pass: &[u8]) -> Vec<u8> {
    let mut input = vec![5, 2, 0, 2, 1, user.len() as u8];
    input.extend_from_slice(user);
    input.push(pass.len() as u8);
    input.extend_from_slice(pass);
    input.extend_from_slice(&[5, 1, 0, 1, 10, 0, 0, 1, 0, 80]);
    input
}

#[tokio::test]
async fn user_pass_auth() {
    let (res, out, rest) = run(&auth_input(b"web-1", b"secret")).await;
    let req = res.unwrap();
    assert_eq!(req.username.as_deref(), Some("web-1"));
    assert_eq!(req.target, Target::Ip("10.0.0.1:80".parse().unwrap()));
    assert_eq!(out, [5, 2, 1, 0]);
    assert!(rest.is_empty());
}

#[tokio::test]
async fn user_proxy_and_empty_count_as_none() {
    for user in [&b"proxy"[..], b""] {
        let (res, out, _) = run(&auth_input(user, b"")).await;
        assert_eq!(res.unwrap().username, None);
        assert_eq!(out, [5, 2, 1, 0]);
    }
}

#[tokio::test]
async fn only_user_pass_offered() {
    let mut input = auth_input(b"c", b"p");
    input.splice(0..4, [5, 1, 2]);
    let (res, out, _) = run(&input).await;
    assert_eq!(res.unwrap().username.as_deref(), Some("c"));
    assert_eq!(out, [5, 2, 1, 0]);
}

#[tokio::test]
async fn bad_auth_version_fails() {
    let (res, out, _) = run(&[5, 1, 2, 9, 1, b'a', 0]).await;
    assert!(matches!(res, Err(Socks5Error::BadAuthVersion(9))));
    assert_eq!(out, [5, 2, 1, 1]);
}

#[tokio::test]
async fn no_acceptable_method() {
    let (res, out, _) = run(&[5, 2, 1, 3]).await;
    let err = res.unwrap_err();
    assert!(matches!(err, Socks5Error::NoAcceptableMethod(ref m) if m == &[1, 3]));
    assert!(err.to_string().contains("[0x01, 0x03]"), "{err}");
    assert_eq!(out, [5, 0xFF]);
}

#[tokio::test]
async fn wrong_version() {
    let (res, out, _) = run(&[4, 1, 0, 80, 127, 0, 0, 1, 0]).await;
    let err = res.unwrap_err();
    assert!(matches!(err, Socks5Error::BadVersion(4)));
    assert!(err.to_string().contains("0x04"));
    assert!(out.is_empty());
}

#[tokio::test]
async fn request_errors_are_answered() {
    let (res, out, _) = run(&[5, 1, 0, 5, 2, 0, 1, 127, 0, 0, 1, 0, 80]).await;
    let err = res.unwrap_err();
    assert!(matches!(err, Socks5Error::UnsupportedCommand(2)));
    assert!(err.to_string().contains("BIND"), "{err}");
    assert_eq!(out, [5, 0, 5, 7, 0, 1, 0, 0, 0, 0, 0, 0]);

    let (res, out, _) = run(&no_auth_input(9, &[])).await;
    assert!(matches!(res, Err(Socks5Error::BadAddressType(9))));
    assert_eq!(out, [5, 0, 5, 8, 0, 1, 0, 0, 0, 0, 0, 0]);

    for name in [&b""[..], b"a b", b"a\0b", &[0xFF, 0xFE]] {
        let addr = [&[name.len() as u8][..], name, &[0, 80]].concat();
        let (res, out, _) = run(&no_auth_input(3, &addr)).await;
        assert!(matches!(res, Err(Socks5Error::BadDomain(_))), "{name:?}");
        assert_eq!(out, [5, 0, 5, 1, 0, 1, 0, 0, 0, 0, 0, 0]);
    }
}

#[tokio::test]
async fn truncated_greeting() {
    let (res, out, _) = run(&[5, 2, 0]).await;
    let err = res.unwrap_err();
    assert!(matches!(err, Socks5Error::ClientClosed));
    assert_eq!(err.to_string(), "client closed during handshake");
    assert!(out.is_empty());
}

#[tokio::test]
async fn bytes_after_request_stay_unread() {
    let mut input = auth_input(b"web-1", b"pw");
    input.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
    let (res, _, rest) = run(&input).await;
    assert!(res.is_ok());
    assert_eq!(rest, b"GET / HTTP/1.1\r\n\r\n");
}

async fn reply_bytes(rep: u8, bound: Option<SocketAddr>) -> Vec<u8> {
    let mut out = Vec::new();
    send_reply(&mut out, rep, bound).await.unwrap();
    out
}

#[tokio::test]
async fn send_reply_encodings() {
    let none = reply_bytes(REP_SUCCEEDED, None).await;
    assert_eq!(none, [5, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    let v4 = reply_bytes(REP_NOT_ALLOWED, Some("192.168.1.2:4660".parse().unwrap())).await;
    assert_eq!(v4, [5, 2, 0, 1, 192, 168, 1, 2, 0x12, 0x34]);
    let v6 = reply_bytes(REP_SUCCEEDED, Some("[::1]:443".parse().unwrap())).await;
    let expected = [
        &[5, 0, 0, 4][..],
        &Ipv6Addr::LOCALHOST.octets(),
        &[0x01, 0xBB],
    ]
    .concat();
    assert_eq!(v6, expected);
}

#[test]
fn connect_error_mapping() {
    use std::io::{Error, ErrorKind};
    let code = |k: ErrorKind| reply_for_connect_error(&Error::from(k));
    assert_eq!(code(ErrorKind::ConnectionRefused), REP_CONNECTION_REFUSED);
    assert_eq!(code(ErrorKind::HostUnreachable), REP_HOST_UNREACHABLE);
    assert_eq!(code(ErrorKind::NetworkUnreachable), REP_NETWORK_UNREACHABLE);
    assert_eq!(code(ErrorKind::TimedOut), REP_TTL_EXPIRED);
    assert_eq!(code(ErrorKind::NotFound), REP_HOST_UNREACHABLE);
    assert_eq!(code(ErrorKind::PermissionDenied), REP_GENERAL_FAILURE);
}
