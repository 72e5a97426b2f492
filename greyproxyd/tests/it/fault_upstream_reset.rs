//! Fault: an origin that dies mid-body. It sends a response head announcing a
//! `Content-Length`, part of the body, then resets the TCP connection (`SO_LINGER` 0). Through
//! the plain HTTP proxy and through interception (MITM) alike, the client must see a failed,
//! short transfer at once (not a hang, not a complete-looking response), the daemon must serve
//! the next request to the same origin, and the recorded transaction must say that the body
//! did not complete.

use std::net::SocketAddr;
use std::time::Duration;

use greyproxy_testkit::fetch::fetch;
use greyproxy_testkit::mitm::{MitmEnv, get_tx, tx_event};
use greyproxy_testkit::tls::server_config;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

const BIN: &str = env!("CARGO_BIN_EXE_greyproxyd");
/// Length the head announces.
const ANNOUNCED: usize = 100_000;
/// Bytes sent before the reset.
const SENT: usize = 4_000;
/// A failed transfer is reported well within this.
const PROMPT: Duration = Duration::from_secs(10);

/// Reads one request head; returns its path (`None` at EOF).
async fn read_path<S: AsyncRead + Unpin>(s: &mut S) -> Option<String> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b).await.ok()? == 0 {
            return None;
        }
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    Some(head.split_whitespace().nth(1)?.to_string())
}

/// Serves requests on one connection: `/reset` gets a head, [`SENT`] of [`ANNOUNCED`] bytes
/// and then a reset (the stream is handed back for it); anything else gets `ok`.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S) -> bool {
    while let Some(path) = read_path(s).await {
        if path.ends_with("/reset") {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {ANNOUNCED}\r\n\r\n"
            );
            let _ = s.write_all(head.as_bytes()).await;
            let _ = s.write_all(&vec![b'p'; SENT]).await;
            let _ = s.flush().await;
            // Let the part reach the proxy before the reset.
            tokio::time::sleep(Duration::from_millis(300)).await;
            return true;
        }
        let ok = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok";
        if s.write_all(ok.as_bytes()).await.is_err() {
            break;
        }
    }
    false
}

/// Closes with a reset instead of a FIN.
fn reset(tcp: TcpStream) {
    tcp.set_zero_linger().unwrap();
    drop(tcp);
}

/// The origin, plaintext or TLS (HTTP/1.1).
async fn resetting_origin(ip: &str, tls: Option<TlsAcceptor>) -> SocketAddr {
    let l = TcpListener::bind((ip, 0)).await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = l.accept().await {
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    None => {
                        if serve(&mut tcp).await {
                            reset(tcp);
                        }
                    }
                    Some(acc) => {
                        let Ok(mut s) = acc.accept(tcp).await else {
                            return;
                        };
                        if serve(&mut s).await {
                            reset(s.into_inner().0);
                        }
                    }
                }
            });
        }
    });
    addr
}

/// The recorded transaction of the reset request: a 200 whose body did not complete.
async fn assert_recorded_incomplete(env: &mut MitmEnv, url: &str) -> Value {
    let ev = tx_event(&mut env.ws, url).await;
    let tx = get_tx(&mut env.ws, &ev["id"]).await;
    assert_eq!(tx["status_code"], 200, "{tx}");
    assert_eq!(tx["url"], url, "{tx}");
    let error = tx["error"].as_str().unwrap_or_default();
    assert!(error.contains("did not complete"), "{tx}");
    // What arrived is recorded as it arrived: the part, not the announced length.
    assert_eq!(tx["response_body_size"], SENT, "{tx}");
    assert_eq!(
        tx["response_body"].as_str().map(str::len),
        Some(SENT),
        "{tx}"
    );
    tx
}

/// Fetches `/reset` then `/ok` from `base` through the proxy with `args`, checks what the
/// client saw, and returns the recorded transaction of `/reset`.
async fn reset_then_next(env: &mut MitmEnv, args: &[&str], base: &str) -> Value {
    let reset_url = format!("{base}/reset");
    let r = fetch(args, &[&reset_url]).await;
    assert_ne!(r.exit, 0, "a cut body is a failed transfer: {r:?}");
    assert!(r.elapsed < PROMPT, "no hang: {r:?}");
    let got = r.body().len();
    assert!(
        got < ANNOUNCED && r.body().iter().all(|b| *b == b'p'),
        "a prefix of the body only ({got} bytes): {}",
        r.stderr
    );
    // The next request to the same origin through the same daemon is served.
    let r = fetch(args, &[&format!("{base}/ok")]).await;
    assert_eq!(
        (r.exit, r.status(), r.text()),
        (0, 200, "ok".into()),
        "{r:?}"
    );
    assert_recorded_incomplete(env, &reset_url).await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_origin_reset_mid_body_through_the_plain_proxy_is_a_failed_recorded_transfer() {
    let mut env = MitmEnv::start(BIN, "", &[]).await;
    let origin = resetting_origin("127.0.7.1", None).await;
    let proxy = env.proxy_as_codex();
    let tx = reset_then_next(&mut env, &["-x", &proxy], &format!("http://{origin}")).await;
    assert_eq!(tx["http_version"], "HTTP/1.1", "{tx}");
    // Keep-alive clients too: the cut is not turned into a clean end of a reused connection.
    let reset_url = format!("http://{origin}/reset");
    let ok_url = format!("http://{origin}/ok");
    let r = fetch(&["-x", &proxy], &[&ok_url, &reset_url, &ok_url]).await;
    assert!(r.elapsed < PROMPT, "{r:?}");
    let t = &r.transfers;
    assert_eq!(t.len(), 3, "{r:?}");
    assert_eq!((t[0].status, t[0].body.as_slice()), (200, b"ok".as_slice()));
    assert!(t[1].body.len() < ANNOUNCED, "{} bytes", t[1].body.len());
    assert!(r.stderr.contains("transfer closed"), "{}", r.stderr);
    assert_eq!((t[2].status, t[2].body.as_slice()), (200, b"ok".as_slice()));
    assert_eq!(t[2].num_connects, 1, "a cut connection is not reused");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_origin_reset_mid_body_inside_an_intercepted_tunnel_is_a_failed_recorded_transfer() {
    let mut env = MitmEnv::start(BIN, "", &[]).await;
    let leaf = env.ca.leaf(&["127.0.7.2"]);
    let acc = TlsAcceptor::from(server_config(&leaf, &[b"http/1.1"]));
    let origin = resetting_origin("127.0.7.2", Some(acc)).await;
    let (proxy, ca) = (env.proxy_as_codex(), env.daemon_ca_arg());
    let args = ["-x", proxy.as_str(), "--cacert", ca.as_str()];
    let tx = reset_then_next(&mut env, &args, &format!("https://{origin}")).await;
    assert_eq!(tx["http_version"], "HTTP/1.1", "{tx}");
    // Inside the tunnel the cut origin connection is not reused either.
    let (reset_url, ok_url) = (
        format!("https://{origin}/reset"),
        format!("https://{origin}/ok"),
    );
    let r = fetch(&args, &[&reset_url, &ok_url]).await;
    assert!(r.elapsed < PROMPT, "{r:?}");
    assert_eq!(r.transfers.len(), 2, "{r:?}");
    assert!(r.transfers[0].body.len() < ANNOUNCED, "{r:?}");
    assert_eq!(r.transfers[1].status, 200, "{r:?}");
    assert_eq!(r.transfers[1].body, b"ok", "{r:?}");
}
