//! What the daemon tells middlewares (cases D, G6, G8 of docs/middleware.md#tests): every key of
//! request and response messages, canonical header maps with duplicates and no `Host`, `""` versus
//! `null` bodies, the smallest positive `max_body_bytes` of all middlewares, decompressed response
//! views decided on the compressed size, plain-proxy (absolute-form, `tls:false`) versus MITM
//! (origin-form, `tls:true`) messages and the `tls` filter, the pre-rewrite `request_body` of
//! response messages.

use std::collections::BTreeSet;

use greyproxy_testkit::fakemw::env::{both, start};
use greyproxy_testkit::fakemw::{FakeMw, Frame, allow, b64, body_text, decision_with, hello};
use greyproxy_testkit::fetch::fetch;
use greyproxy_testkit::https_origin::{JSON_BODY, Origin, encode};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_greyproxyd");

fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

fn find<'a>(msgs: &'a [Value], ty: &str, needle: &str) -> Vec<&'a Value> {
    msgs.iter()
        .filter(|m| m["type"] == ty && m["uri"].as_str().unwrap().contains(needle))
        .collect()
}

/// D1, D2, D3, D7, G6, G8: message keys and values on the plain and the MITM path.
#[tokio::test(flavor = "multi_thread")]
async fn messages_carry_every_key_plain_and_mitm() {
    both(|t| async move {
        let fake = FakeMw::new(t)
            .await
            .serve_allow(json!({"type":"hello","name":"content",
            "max_body_bytes": 64,
            "hooks":[{"type":"http-request","filters":null},
                     {"type":"http-response","filters":{"host":[],"method":[],"path":[]}},
                     {"type":"http-request","filters":{"tls":true}},
                     {"type":"http-response","filters":{"tls":false}}]}));
        let env = start(BIN, "", &fake.mw.cli_args()).await;
        let origin = Origin::plain("127.0.0.40").await;
        let tls_origin = Origin::https("127.0.0.41", &env.ca).await;
        let p = env.proxy_as_codex();
        let hdrs = ["-H", "X-Dup: 1", "-H", "X-Dup: 2", "-H", "x-lower-case: v"];
        let mut a = vec!["-x", &p, "--data-binary", ""];
        a.extend(hdrs);
        let r = fetch(&a, &[&origin.url("/echo?q=d1")]).await;
        assert_eq!(r.status(), 200, "{t}: {r:?}");
        let big = "B".repeat(100);
        let r = fetch(
            &["-x", &p, "--data-binary", &big],
            &[&origin.url("/echo?q=d3")],
        )
        .await;
        assert_eq!(r.text(), big, "{t}");
        let dca = env.daemon_ca_arg();
        let mut a = vec![
            "--http1.1",
            "-x",
            &p,
            "--cacert",
            &dca,
            "--data-binary",
            "tls!",
        ];
        a.extend(hdrs);
        let r = fetch(&a, &[&tls_origin.url("/echo?q=d7")]).await;
        assert_eq!(r.text(), "tls!", "{t}: {r:?}");
        let r = fetch(
            &[
                "--http2",
                "-x",
                &p,
                "--cacert",
                &dca,
                "--data-binary",
                "h2!",
            ],
            &[&tls_origin.url("/echo?q=h2")],
        )
        .await;
        assert_eq!((r.text().as_str(), r.version()), ("h2!", "2"), "{t}: {r:?}");

        let msgs = fake.messages();
        let req_keys = [
            "body",
            "container",
            "headers",
            "host",
            "id",
            "method",
            "proto",
            "tls",
            "type",
            "uri",
        ];
        let resp_keys = [
            "container",
            "duration_ms",
            "host",
            "id",
            "method",
            "request_body",
            "request_headers",
            "response_body",
            "response_headers",
            "status_code",
            "type",
            "uri",
        ];

        // Plain path: one request step, two response steps (G6 `tls:false`, G8 empty filters).
        let req = find(&msgs, "http-request", "q=d1");
        assert_eq!(req.len(), 1, "{t}: {msgs:?}");
        let m = req[0];
        assert_eq!(keys(m), BTreeSet::from(req_keys), "{t} D1");
        assert_eq!(m["host"], origin.authority(), "{t}");
        assert_eq!(m["method"], "POST");
        assert_eq!(m["uri"], origin.url("/echo?q=d1"), "{t} D7 absolute-form");
        assert_eq!(m["proto"], "HTTP/1.1");
        assert_eq!(m["tls"], false, "{t} D7");
        assert_eq!(m["container"], "codex");
        assert_eq!(m["body"], "", "{t} D3: empty is \"\"");
        let h = m["headers"].as_object().unwrap();
        assert_eq!(h["X-Dup"], json!(["1", "2"]), "{t} D2");
        assert_eq!(h["X-Lower-Case"], json!(["v"]), "{t} D2 canonical names");
        assert!(
            !h.keys().any(|k| k.eq_ignore_ascii_case("host")),
            "{t} D2: {h:?}"
        );
        let resp = find(&msgs, "http-response", "q=d1");
        assert_eq!(resp.len(), 2, "{t}: {msgs:?}");
        let m = resp[0];
        assert_eq!(keys(m), BTreeSet::from(resp_keys), "{t} D1");
        assert_eq!(m["status_code"], 200);
        assert_eq!(m["uri"], origin.url("/echo?q=d1"));
        assert_eq!(m["request_body"], "", "{t}");
        assert_eq!(m["response_body"], "", "{t}");
        assert_eq!(m["container"], "codex");
        assert!(m["duration_ms"].as_i64().is_some_and(|d| d >= 0), "{t}");
        assert_eq!(m["request_headers"]["X-Dup"], json!(["1", "2"]), "{t}");
        assert!(
            m["response_headers"]
                .as_object()
                .unwrap()
                .contains_key("Content-Length")
        );
        assert_ne!(resp[0]["id"], resp[1]["id"], "{t}");
        assert_ne!(resp[0]["id"], req[0]["id"], "{t}");

        // D3: over the 64-byte limit → null everywhere.
        let m = find(&msgs, "http-request", "q=d3")[0];
        assert_eq!(m["body"], Value::Null, "{t} D3");
        let m = find(&msgs, "http-response", "q=d3")[0];
        assert_eq!(
            (&m["request_body"], &m["response_body"]),
            (&Value::Null, &Value::Null)
        );

        // MITM path: two request steps (G6 `tls:true`), one response step.
        let req = find(&msgs, "http-request", "q=d7");
        assert_eq!(req.len(), 2, "{t}: {msgs:?}");
        let m = req[0];
        assert_eq!(keys(m), BTreeSet::from(req_keys), "{t} D1");
        assert_eq!(m["uri"], "/echo?q=d7", "{t} D7 origin-form");
        assert_eq!(m["tls"], true, "{t} D7");
        assert_eq!(m["host"], tls_origin.authority(), "{t}");
        assert_eq!(body_text(&m["body"]).unwrap(), "tls!");
        assert_eq!(m["headers"]["X-Dup"], json!(["1", "2"]), "{t}");
        let resp = find(&msgs, "http-response", "q=d7");
        assert_eq!(resp.len(), 1, "{t}: {msgs:?}");
        assert_eq!(keys(resp[0]), BTreeSet::from(resp_keys), "{t} D1");
        assert_eq!(body_text(&resp[0]["response_body"]).unwrap(), "tls!");
        assert_eq!(body_text(&resp[0]["request_body"]).unwrap(), "tls!");
        let h2 = find(&msgs, "http-request", "q=h2");
        assert_eq!(h2.len(), 2, "{t}: {msgs:?}");
        assert_eq!(h2[0]["proto"], "HTTP/2.0", "{t}");
        assert_eq!(h2[0]["uri"], "/echo?q=h2", "{t}");
        assert_eq!(h2[0]["host"], tls_origin.authority(), "{t}: :authority");
        assert!(
            !h2[0]["headers"]
                .as_object()
                .unwrap()
                .keys()
                .any(|k| k.starts_with(':'))
        );
    })
    .await;
}

/// D4 (the smallest positive `max_body_bytes` of all middlewares applies to all of them).
#[tokio::test(flavor = "multi_thread")]
async fn body_limit_is_the_smallest_positive_of_all() {
    both(|t| async move {
        let unlimited = FakeMw::new(t).await.serve_allow(json!({"type":"hello",
            "max_body_bytes":0,"hooks":[{"type":"http-request"}]}));
        let ten = FakeMw::new(t).await.serve_allow(json!({"type":"hello",
            "max_body_bytes":10,"hooks":[{"type":"http-request"}]}));
        let negative = FakeMw::new(t).await.serve_allow(json!({"type":"hello",
            "max_body_bytes":-1,"hooks":[]}));
        let mut args = unlimited.mw.cli_args();
        args.extend(ten.mw.cli_args());
        args.extend(negative.mw.cli_args());
        let env = start(BIN, "", &args).await;
        let origin = Origin::plain("127.0.0.42").await;
        let p = env.proxy_as_codex();
        for body in ["0123456789", "0123456789A"] {
            let r = fetch(&["-x", &p, "--data-binary", body], &[&origin.url("/echo")]).await;
            assert_eq!(r.text(), body, "{t}");
        }
        for s in [&unlimited, &ten] {
            let got: Vec<Value> = s.messages().iter().map(|m| m["body"].clone()).collect();
            assert_eq!(got, [json!(b64("0123456789")), Value::Null], "{t}");
        }
    })
    .await;
}

/// D5 (decompressed view, `Content-Encoding` still listed), D6 (limit on compressed size).
#[tokio::test(flavor = "multi_thread")]
async fn response_views_are_decompressed_and_limited_on_wire_size() {
    let gz = encode("gzip", JSON_BODY.as_bytes()).len();
    let zst = encode("zstd", JSON_BODY.as_bytes()).len();
    assert!(
        gz.max(zst) < JSON_BODY.len(),
        "test premise: compression helps"
    );
    let limit = gz.max(zst);
    both(|t| async move {
        let fake = FakeMw::new(t).await.serve_allow(json!({"type":"hello",
            "max_body_bytes":limit,"hooks":[{"type":"http-response"}]}));
        let env = start(BIN, "", &fake.mw.cli_args()).await;
        let origin = Origin::plain("127.0.0.43").await;
        let tls_origin = Origin::https("127.0.0.44", &env.ca).await;
        let p = env.proxy_as_codex();
        let dca = env.daemon_ca_arg();
        for (url, ce) in [
            (origin.url("/gzip"), Some("gzip")),
            (origin.url("/zstd"), Some("zstd")),
            (tls_origin.url("/gzip"), Some("gzip")),
            (origin.url("/json"), None),
        ] {
            fake.clear();
            let r = fetch(&["-x", &p, "--cacert", &dca], &[&url]).await;
            assert_eq!(r.status(), 200, "{t} {url}");
            let m = fake
                .wait_messages(1, std::time::Duration::from_secs(2))
                .await;
            let m = &m[0];
            match ce {
                Some(ce) => {
                    assert_eq!(
                        body_text(&m["response_body"]).unwrap(),
                        JSON_BODY,
                        "{t} {url}"
                    );
                    assert_eq!(
                        m["response_headers"]["Content-Encoding"],
                        json!([ce]),
                        "{t}"
                    );
                    assert_eq!(r.body(), &encode(ce, JSON_BODY.as_bytes())[..], "{t} {url}");
                }
                None => assert_eq!(m["response_body"], Value::Null, "{t} over the limit"),
            }
        }
    })
    .await;
}

/// D8 as we do it: a plain-path response message carries the request body from before the
/// request cascade rewrote it; `null` when no request hook exists.
#[tokio::test(flavor = "multi_thread")]
async fn response_message_request_body_is_pre_rewrite() {
    both(|t| async move {
        let rewriter = FakeMw::new(t).await.serve(
            hello("rewriter", &["http-request", "http-response"]),
            |m| {
                vec![Frame::Json(if m["type"] == "http-request" {
                    decision_with(m, "rewrite", json!({"body": b64("after")}))
                } else {
                    allow(m)
                })]
            },
        );
        let env = start(BIN, "", &rewriter.mw.cli_args()).await;
        let origin = Origin::plain("127.0.0.45").await;
        let p = env.proxy_as_codex();
        let r = fetch(
            &["-x", &p, "--data-binary", "before"],
            &[&origin.url("/echo")],
        )
        .await;
        assert_eq!(r.text(), "after", "{t}");
        let m = &rewriter.of_type("http-response")[0];
        assert_eq!(body_text(&m["request_body"]).unwrap(), "before", "{t}");
        assert_eq!(body_text(&m["response_body"]).unwrap(), "after", "{t}");
        drop(env);

        let only_resp = FakeMw::new(t)
            .await
            .serve_allow(hello("resp-only", &["http-response"]));
        let env = start(BIN, "", &only_resp.mw.cli_args()).await;
        let r = fetch(
            &["-x", &env.proxy_as_codex(), "--data-binary", "before"],
            &[&origin.url("/echo")],
        )
        .await;
        assert_eq!(r.text(), "before", "{t}");
        let m = &only_resp.of_type("http-response")[0];
        assert_eq!(m["request_body"], Value::Null, "{t}: no request hooks");
    })
    .await;
}

/// Without any `max_body_bytes`, a 2 MiB body reaches the middleware whole (a 2.7 MiB base64
/// line on stdio, one WebSocket frame), and the origin gets it unchanged.
#[tokio::test(flavor = "multi_thread")]
async fn large_bodies_within_the_limit_reach_middlewares_whole() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body.bin");
    let data = greyproxy_testkit::https_origin::big_body(2 << 20);
    std::fs::write(&file, &data).unwrap();
    let upload = format!("@{}", file.display());
    both(|t| {
        let (upload, data) = (upload.clone(), data.clone());
        async move {
            let fake = FakeMw::new(t)
                .await
                .serve_allow(hello("big", &["http-request"]));
            let env = start(BIN, "", &fake.mw.cli_args()).await;
            let origin = Origin::plain("127.0.0.46").await;
            let r = fetch(
                &["-x", &env.proxy_as_codex(), "--data-binary", &upload],
                &[&origin.url("/echo")],
            )
            .await;
            assert!(r.status() == 200 && r.body() == &data[..], "{t}");
            let m = &fake.messages()[0];
            let got = greyproxy_testkit::fakemw::unb64(&m["body"]).expect("whole body");
            assert!(got == data, "{t}: {} bytes", got.len());
        }
    })
    .await;
}
