//! What middleware decisions do to real traffic (cases E of docs/middleware.md#tests):
//! allow/passthrough leave bytes untouched; deny and block replace the exchange (also on the MITM
//! path, with the middleware's status and body); request and response rewrites of bodies, headers
//! and status with the header denylist, header removal, Content-Encoding handling, `""` versus
//! absent bodies; wrong action for the hook and unknown actions continue.

use greyproxy_testkit::fakemw::env::{both, start, wait_log};
use greyproxy_testkit::fakemw::{FakeMw, Frame, allow, b64, case, decision, decision_with, hello};
use greyproxy_testkit::fetch::{Fetch, fetch};
use greyproxy_testkit::https_origin::{JSON_BODY, Origin, Seen, encode};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_greyproxyd");

/// Values of a response header in curl's `-D` output (last response head).
fn hdr(f: &Fetch, name: &str) -> Vec<String> {
    let head = f.headers.rsplit("HTTP/").next().unwrap_or("");
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_string())
        .collect()
}

/// The request the origin saw for `case`.
fn seen(origin: &Origin, c: &str) -> Seen {
    origin
        .requests()
        .into_iter()
        .rev()
        .find(|s| s.path.contains(&format!("case={c}")))
        .unwrap_or_else(|| panic!("origin never saw case {c}"))
}

fn seen_hdr(s: &Seen, name: &str) -> Vec<String> {
    s.headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

fn request_decision(m: &Value) -> Value {
    let deny = |status: Value, body: &str| {
        let mut extra = json!({"body": b64(body)});
        if !status.is_null() {
            extra["status_code"] = status;
        }
        decision_with(m, "deny", extra)
    };
    let rewrite = |extra: Value| decision_with(m, "rewrite", extra);
    match case(m).as_str() {
        "e2" => deny(json!(451), "denied by fake"),
        "e2b" => deny(Value::Null, "no status given"),
        "e5" => rewrite(json!({"body": b64("rewritten body!")})),
        "e6" => rewrite(json!({"headers":{"x-new":["1"],"X-Existing":["new"]}})),
        "e7" => rewrite(json!({"body": b64("e7 body"), "headers":{
            "Authorization":["evil"],"authorization":["evil2"],"Host":["evil.example"],
            "Cookie":["c=evil"],"Set-Cookie":["s=evil"],"Proxy-Authorization":["Basic evil"],
            "Connection":["evil"],"Transfer-Encoding":["evil"],"Keep-Alive":["evil"],
            "Te":["evil"],"Trailer":["evil"],"Upgrade":["evil"],"Proxy-Authenticate":["evil"],
            "X-Allowed":["yes"]}})),
        "e8" => rewrite(json!({"headers":{"X-Remove":[]}})),
        "e11a" => rewrite(json!({"body": ""})),
        "e11b" => rewrite(json!({"headers":{"X-Only":["h"]}})),
        "e12b" => decision_with(m, "block", json!({"status_code":502,"body":b64("no")})),
        "e13" => decision(m, "ALLOW"),
        _ => allow(m),
    }
}

fn response_decision(m: &Value) -> Value {
    let rewrite = |extra: Value| decision_with(m, "rewrite", extra);
    match case(m).as_str() {
        "e4" => decision_with(
            m,
            "block",
            json!({"status_code":502,"body":b64("blocked by fake")}),
        ),
        "e9a" => rewrite(json!({"body": b64("plain now")})),
        "e9b" => rewrite(json!({"body": b64(encode("gzip", b"zipped again")),
            "headers":{"Content-Encoding":["gzip"]}})),
        "e10" => rewrite(json!({"status_code": 299})),
        "e11c" => rewrite(json!({"body": ""})),
        "e12a" => decision_with(m, "deny", json!({"status_code":403,"body":b64("no")})),
        "e13" => decision(m, "ALLOW"),
        _ => allow(m),
    }
}

/// E1–E13 on both transports, plain proxy path (and E3 through MITM).
#[tokio::test(flavor = "multi_thread")]
async fn decisions_shape_the_exchange() {
    both(|t| async move {
        let main =
            FakeMw::new(t)
                .await
                .serve(hello("decider", &["http-request", "http-response"]), |m| {
                    vec![Frame::Json(if m["type"] == "http-request" {
                        request_decision(m)
                    } else {
                        response_decision(m)
                    })]
                });
        let later = FakeMw::new(t)
            .await
            .serve_allow(hello("later", &["http-request", "http-response"]));
        let mut args = main.mw.cli_args();
        args.extend(later.mw.cli_args());
        let env = start(BIN, "", &args).await;
        let origin = Origin::plain("127.0.0.30").await;
        let tls_origin = Origin::https("127.0.0.31", &env.ca).await;
        let p = env.proxy_as_codex();
        let dca = env.daemon_ca_arg();
        let get = |c: &str, path: &str, extra: &[&str]| {
            let url = origin.url(&format!("{path}?case={c}"));
            let mut a = vec!["-x".to_string(), p.clone()];
            a.extend(extra.iter().map(|s| s.to_string()));
            async move {
                let a: Vec<&str> = a.iter().map(String::as_str).collect();
                fetch(&a, &[&url]).await
            }
        };
        let gz = encode("gzip", JSON_BODY.as_bytes());

        // E1: untouched, byte for byte (compressed stays compressed).
        let r = get("e1", "/gzip", &[]).await;
        assert_eq!((r.status(), r.body()), (200, &gz[..]), "{t} E1");
        assert_eq!(hdr(&r, "content-encoding"), ["gzip"], "{t} E1");
        let r = get("e1", "/echo", &["--data-binary", "exact\r\nbytes"]).await;
        assert_eq!(r.text(), "exact\r\nbytes", "{t} E1");
        assert_eq!(seen(&origin, "e1").body_len, 12);

        // E2/E3: deny with status and body; no status → 403.
        let r = get("e2", "/json", &[]).await;
        assert_eq!(
            (r.status(), r.text().as_str()),
            (451, "denied by fake"),
            "{t} E2"
        );
        let r = get("e2b", "/json", &[]).await;
        assert_eq!(r.status(), 403, "{t} E2 {r:?}");
        let r = fetch(
            &["-x", &p, "--cacert", &dca],
            &[&tls_origin.url("/json?case=e2")],
        )
        .await;
        assert_eq!(
            (r.status(), r.text().as_str()),
            (451, "denied by fake"),
            "{t} E3"
        );
        assert!(!origin.requests().iter().any(|s| s.path.contains("case=e2")));
        assert!(
            !tls_origin
                .requests()
                .iter()
                .any(|s| s.path.contains("case=e2"))
        );

        // E4: block replaces the response; the later middleware is not asked.
        let r = get("e4", "/json", &[]).await;
        assert_eq!(
            (r.status(), r.text().as_str()),
            (502, "blocked by fake"),
            "{t} E4"
        );
        let later_resp: Vec<String> = later.of_type("http-response").iter().map(case).collect();
        assert!(
            !later_resp.contains(&"e4".to_string()),
            "{t} E4: {later_resp:?}"
        );
        assert!(
            later_resp.contains(&"e1".to_string()),
            "{t}: {later_resp:?}"
        );

        // E5: new request body with its length.
        let r = get("e5", "/echo", &["--data-binary", "original"]).await;
        assert_eq!(r.text(), "rewritten body!", "{t} E5");
        let s = seen(&origin, "e5");
        assert_eq!(s.body_len, 15);
        assert_eq!(seen_hdr(&s, "content-length"), ["15"], "{t} E5");

        // E6: set and replace headers, others untouched.
        let h = ["-H", "X-Existing: old", "-H", "X-Keep: k"];
        assert_eq!(get("e6", "/json", &h).await.status(), 200);
        let s = seen(&origin, "e6");
        assert_eq!(seen_hdr(&s, "x-new"), ["1"], "{t} E6");
        assert_eq!(seen_hdr(&s, "x-existing"), ["new"], "{t} E6");
        assert_eq!(seen_hdr(&s, "x-keep"), ["k"], "{t} E6");

        // E7: the denylist; the rest of the rewrite applies.
        let h = [
            "-H",
            "Authorization: Bearer orig",
            "-H",
            "Cookie: c=orig",
            "--data-binary",
            "x",
        ];
        assert_eq!(get("e7", "/echo", &h).await.text(), "e7 body", "{t} E7");
        let s = seen(&origin, "e7");
        assert_eq!(seen_hdr(&s, "authorization"), ["Bearer orig"], "{t} E7");
        assert_eq!(seen_hdr(&s, "cookie"), ["c=orig"], "{t} E7");
        assert_eq!(seen_hdr(&s, "x-allowed"), ["yes"], "{t} E7");
        assert_eq!(seen_hdr(&s, "host"), [origin.authority()], "{t} E7");
        for (k, v) in &s.headers {
            assert!(
                !v.to_str().unwrap().contains("evil"),
                "{t} E7: {k} reached the origin"
            );
        }
        wait_log(
            || env.d.log(),
            "rejected header rewrite",
            std::time::Duration::from_secs(2),
        )
        .await;

        // E8: an empty list removes the header.
        assert_eq!(
            get("e8", "/json", &["-H", "X-Remove: bye"]).await.status(),
            200
        );
        assert!(
            seen_hdr(&seen(&origin, "e8"), "x-remove").is_empty(),
            "{t} E8"
        );

        // E9: a response body rewrite drops Content-Encoding unless the decision sets it.
        let r = get("e9a", "/gzip", &[]).await;
        assert_eq!(
            (r.status(), r.text().as_str()),
            (200, "plain now"),
            "{t} E9"
        );
        assert!(
            hdr(&r, "content-encoding").is_empty(),
            "{t} E9: {}",
            r.headers
        );
        let len = hdr(&r, "content-length");
        assert!(len.is_empty() || len == ["9"], "{t} E9: {}", r.headers);
        let r = get("e9b", "/gzip", &[]).await;
        assert_eq!(r.body(), &encode("gzip", b"zipped again")[..], "{t} E9");
        assert_eq!(hdr(&r, "content-encoding"), ["gzip"], "{t} E9");

        // E10: status only; body and encoding untouched.
        let r = get("e10", "/gzip", &[]).await;
        assert_eq!((r.status(), r.body()), (299, &gz[..]), "{t} E10");
        assert_eq!(hdr(&r, "content-encoding"), ["gzip"], "{t} E10");

        // E11: `""` empties, absent keeps.
        assert_eq!(
            get("e11a", "/echo", &["--data-binary", "data"])
                .await
                .text(),
            ""
        );
        assert_eq!(seen(&origin, "e11a").body_len, 0, "{t} E11");
        assert_eq!(
            get("e11b", "/echo", &["--data-binary", "data"])
                .await
                .text(),
            "data"
        );
        assert_eq!(seen_hdr(&seen(&origin, "e11b"), "x-only"), ["h"]);
        let r = get("e11c", "/json", &[]).await;
        assert_eq!((r.status(), r.body().len()), (200, 0), "{t} E11");

        // E12: deny on a response / block on a request is no-op; E13 unknown action too.
        for c in ["e12a", "e12b", "e13"] {
            let r = get(c, "/json", &[]).await;
            assert_eq!((r.status(), r.text().as_str()), (200, JSON_BODY), "{t} {c}");
        }
        wait_log(
            || env.d.log(),
            "unknown action \"ALLOW\"",
            std::time::Duration::from_secs(2),
        )
        .await;
    })
    .await;
}

/// The same decisions inside intercepted tunnels, HTTP/1.1 and HTTP/2 (E2–E11 on MITM).
#[tokio::test(flavor = "multi_thread")]
async fn decisions_apply_inside_mitm_http1_and_h2() {
    let fake =
        FakeMw::ws()
            .await
            .serve(hello("decider", &["http-request", "http-response"]), |m| {
                vec![Frame::Json(if m["type"] == "http-request" {
                    request_decision(m)
                } else {
                    response_decision(m)
                })]
            });
    let env = start(BIN, "", &fake.mw.cli_args()).await;
    let origin = Origin::https("127.0.0.32", &env.ca).await;
    let (p, dca) = (env.proxy_as_codex(), env.daemon_ca_arg());
    let gz = encode("gzip", JSON_BODY.as_bytes());
    for v in ["--http1.1", "--http2"] {
        let get = |c: &str, path: &str, extra: &[&str]| {
            let url = origin.url(&format!("{path}?case={c}"));
            let mut a: Vec<String> = [v, "-x", &p, "--cacert", &dca]
                .iter()
                .map(|s| s.to_string())
                .collect();
            a.extend(extra.iter().map(|s| s.to_string()));
            async move {
                let a: Vec<&str> = a.iter().map(String::as_str).collect();
                fetch(&a, &[&url]).await
            }
        };
        let r = get("e2", "/json", &[]).await;
        assert_eq!(
            (r.status(), r.text().as_str()),
            (451, "denied by fake"),
            "{v}"
        );
        let r = get("e4", "/json", &[]).await;
        assert_eq!(
            (r.status(), r.text().as_str()),
            (502, "blocked by fake"),
            "{v}"
        );
        let r = get("e5", "/echo", &["--data-binary", "original"]).await;
        assert_eq!(r.text(), "rewritten body!", "{v}");
        assert_eq!(seen(&origin, "e5").body_len, 15, "{v}");
        let h = ["-H", "X-Existing: old", "-H", "Authorization: Bearer orig"];
        assert_eq!(get("e6", "/json", &h).await.status(), 200);
        let s = seen(&origin, "e6");
        assert_eq!(seen_hdr(&s, "x-new"), ["1"], "{v}");
        assert_eq!(seen_hdr(&s, "x-existing"), ["new"], "{v}");
        assert_eq!(get("e7", "/echo", &h).await.text(), "e7 body", "{v}");
        let s = seen(&origin, "e7");
        assert_eq!(seen_hdr(&s, "authorization"), ["Bearer orig"], "{v}");
        assert_eq!(seen_hdr(&s, "x-allowed"), ["yes"], "{v}");
        for (k, val) in &s.headers {
            assert!(
                !val.to_str().unwrap().contains("evil"),
                "{v}: {k} reached the origin"
            );
        }
        let r = get("e9a", "/gzip", &[]).await;
        assert_eq!((r.status(), r.text().as_str()), (200, "plain now"), "{v}");
        assert!(hdr(&r, "content-encoding").is_empty(), "{v}: {}", r.headers);
        let r = get("e9b", "/gzip", &[]).await;
        assert_eq!(r.body(), &encode("gzip", b"zipped again")[..], "{v}");
        assert_eq!(hdr(&r, "content-encoding"), ["gzip"], "{v}");
        let r = get("e10", "/gzip", &[]).await;
        assert_eq!((r.status(), r.body()), (299, &gz[..]), "{v}");
        assert_eq!(
            get("e11a", "/echo", &["--data-binary", "data"])
                .await
                .text(),
            ""
        );
        let r = get("e11c", "/json", &[]).await;
        assert_eq!((r.status(), r.body().len()), (200, 0), "{v}");
        let r = get("e1", "/gzip", &[]).await;
        assert_eq!((r.status(), r.body()), (200, &gz[..]), "{v}");
    }
}
