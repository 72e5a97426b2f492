//! Bodies and streaming with middlewares (docs/design.md#middleware: filters decided from the head
//! before any buffering; bodies over the limit go to middlewares as `null` and stream on intact):
//! large uploads and downloads over `max_body_bytes` reach their peer byte for byte, a rewrite
//! still replaces an over-limit body, and an SSE stream no step can match is not held back.

use std::time::{Duration, Instant};

use greyproxy_testkit::fakemw::env::{both, start};
use greyproxy_testkit::fakemw::{FakeMw, Frame, allow, b64, decision_with};
use greyproxy_testkit::fetch::fetch;
use greyproxy_testkit::https_origin::{Origin, SSE_EVENTS, big_body};
use greyproxy_testkit::tls::{Sender, tls_via_connect};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_greyproxyd");

/// Over `max_body_bytes`: `null` for the middleware, the whole body for the peer; a rewrite
/// with a body replaces even an over-limit body.
#[tokio::test(flavor = "multi_thread")]
async fn over_limit_bodies_stream_on_intact() {
    let dir = tempfile::tempdir().unwrap();
    let upload = dir.path().join("upload.bin");
    let data = big_body(4 << 20);
    std::fs::write(&upload, &data).unwrap();
    let upload = format!("@{}", upload.display());
    both(|t| {
        let (upload, data) = (upload.clone(), data.clone());
        async move {
            let fake = FakeMw::new(t).await.serve(
                json!({"type":"hello","max_body_bytes":1024,
                    "hooks":[{"type":"http-request"},{"type":"http-response"}]}),
                |m| {
                    let uri = m["uri"].as_str().unwrap();
                    let req = m["type"] == "http-request";
                    vec![Frame::Json(if req && uri.ends_with("rw=1") {
                        decision_with(m, "rewrite", json!({"body": b64("small")}))
                    } else if req && uri.ends_with("deny=1") {
                        decision_with(m, "deny", json!({"status_code":451,"body":b64("too big")}))
                    } else {
                        allow(m)
                    })]
                },
            );
            let env = start(BIN, "", &fake.mw.cli_args()).await;
            let plain = Origin::plain("127.0.0.100").await;
            let tls = Origin::https("127.0.0.101", &env.ca).await;
            let (p, dca) = (env.proxy_as_codex(), env.daemon_ca_arg());
            for (o, v) in [
                (&plain, "--http1.1"),
                (&tls, "--http1.1"),
                (&tls, "--http2"),
            ] {
                let what = format!("{t} {} {v}", o.scheme);
                let r = fetch(
                    &[v, "-x", &p, "--cacert", &dca, "--data-binary", &upload],
                    &[&o.url("/echo")],
                )
                .await;
                assert_eq!(r.status(), 200, "{what}: {r:?}");
                assert!(r.body() == &data[..], "{what}: upload echoed intact");
                assert_eq!(o.requests().last().unwrap().body_len, data.len());
                let r = fetch(
                    &[v, "-x", &p, "--cacert", &dca, "--data-binary", &upload],
                    &[&o.url("/echo?rw=1")],
                )
                .await;
                assert_eq!(o.requests().last().unwrap().body_len, 5, "{what}");
                assert_eq!(
                    (r.status(), r.text().as_str()),
                    (200, "small"),
                    "{what}: a rewritten over-limit upload: {r:?}"
                );
                let r = fetch(
                    &[v, "-x", &p, "--cacert", &dca, "--data-binary", &upload],
                    &[&o.url("/echo?deny=1")],
                )
                .await;
                assert_eq!(
                    (r.status(), r.text().as_str()),
                    (451, "too big"),
                    "{what}: a denied over-limit upload: {r:?}"
                );
                let r = fetch(&[v, "-x", &p, "--cacert", &dca], &[&o.url("/big?mb=2")]).await;
                assert!(r.body() == &big_body(2 << 20)[..], "{what}: download");
            }
            let msgs = fake.messages();
            for m in &msgs {
                let uri = m["uri"].as_str().unwrap();
                let (field, want) = match (m["type"].as_str().unwrap(), uri) {
                    ("http-request", u) if u.contains("/big") => ("body", json!("")),
                    ("http-request", _) => ("body", Value::Null),
                    (_, u) if u.ends_with("rw=1") => ("response_body", json!(b64("small"))),
                    _ => ("response_body", Value::Null),
                };
                assert_eq!(m[field], want, "{t} {uri} {field}");
            }
            assert_eq!(msgs.len(), 21, "{t}: {msgs:?}");
        }
    })
    .await;
}

/// Reads an SSE response from a stream of chunks: (time of the first event, total time).
async fn time_sse(mut next: impl AsyncFnMut() -> Option<Vec<u8>>) -> (Duration, Duration, String) {
    let start = Instant::now();
    let mut first = None;
    let mut got = Vec::new();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(10), next())
        .await
        .expect("stream goes on")
    {
        got.extend_from_slice(&chunk);
        if first.is_none() && String::from_utf8_lossy(&got).contains("\"n\":1") {
            first = Some(start.elapsed());
        }
    }
    (
        first.unwrap(),
        start.elapsed(),
        String::from_utf8_lossy(&got).into_owned(),
    )
}

/// SSE that no step can match (filters on content type and method) streams event by event
/// on the plain path and through MITM; the middleware hears nothing of it.
#[tokio::test(flavor = "multi_thread")]
async fn unmatched_sse_is_not_buffered() {
    let fake = FakeMw::ws()
        .await
        .serve_allow(json!({"type":"hello","hooks":[
        {"type":"http-request","filters":{"method":["POST"]}},
        {"type":"http-response","filters":{"content_type":["application/json"]}}]}));
    let env = start(BIN, "", &fake.mw.cli_args()).await;
    let plain = Origin::plain("127.0.0.102").await;
    let tls = Origin::https("127.0.0.103", &env.ca).await;

    // Plain path, absolute-form over a raw connection.
    let mut s = tokio::net::TcpStream::connect(env.d.http.unwrap())
        .await
        .unwrap();
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        plain.url("/sse"),
        plain.authority()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let (first, total, text) = time_sse(async || {
        let mut buf = vec![0u8; 4096];
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => None,
            Ok(n) => Some(buf[..n].to_vec()),
        }
    })
    .await;
    assert!(text.contains(SSE_EVENTS[2]), "{text}");
    assert!(
        total.saturating_sub(first) >= Duration::from_millis(800),
        "plain: first event at {first:?}, end at {total:?}"
    );

    // MITM, HTTP/2 and HTTP/1.1.
    for alpn in [b"h2".as_slice(), b"http/1.1".as_slice()] {
        let conn = tls_via_connect(
            env.d.http.unwrap(),
            tls.addr,
            None,
            &env.daemon_ca(),
            &[alpn],
        )
        .await
        .unwrap();
        let mut sender = Sender::handshake(conn).await;
        let resp = sender.get(&tls.authority(), "/sse").await.unwrap();
        assert_eq!(resp.status(), 200);
        let mut body = resp.into_body();
        let (first, total, text) = time_sse(async || {
            loop {
                match body.frame().await {
                    None => return None,
                    Some(Err(_)) => return None,
                    Some(Ok(f)) => {
                        if let Ok(d) = f.into_data() {
                            return Some(d.to_vec());
                        }
                    }
                }
            }
        })
        .await;
        assert_eq!(text, SSE_EVENTS.concat());
        assert!(
            total.saturating_sub(first) >= Duration::from_millis(800),
            "{alpn:?}: first event at {first:?}, end at {total:?}"
        );
    }
    assert!(fake.messages().is_empty(), "{:?}", fake.messages());
}
