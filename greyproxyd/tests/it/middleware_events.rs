//! Middleware decisions recorded on transactions (cases J of docs/middleware.md#tests): which
//! decisions make events and with which action, status, changed header names, body flag and tags;
//! sequences per cascade counting only matched steps; hook labels for the plain path and MITM;
//! stdio events without URL and with the hello's name.

use greyproxy_testkit::fakemw::env::{events, start, tx};
use greyproxy_testkit::fakemw::{FakeMw, Frame, Transport, allow, b64, case, decision_with};
use greyproxy_testkit::fetch::fetch;
use greyproxy_testkit::https_origin::Origin;
use greyproxy_testkit::wire::is_rfc3339;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_greyproxyd");

fn tags(who: &str) -> Value {
    json!({ format!("{who}.seen"): true, "n": 1 })
}

/// The first middleware (ws): decides by case; tags its steps where asked.
fn first(m: &Value) -> Vec<Frame> {
    let req = m["type"] == "http-request";
    let d = match (case(m).as_str(), req) {
        ("j1a", _) => allow(m),
        ("j1b", true) => decision_with(m, "allow", json!({"tags": tags("ws")})),
        ("j1c", false) => decision_with(m, "passthrough", json!({"tags": tags("ws")})),
        ("j1d", false) => decision_with(m, "ALLOW", json!({"tags": tags("ws")})),
        ("j1e", true) => decision_with(m, "block", json!({"tags": tags("ws")})),
        ("j2deny", true) => decision_with(
            m,
            "deny",
            json!({"status_code":451,
            "body":b64("no"),"tags":{"why":"test"}}),
        ),
        ("j2block", false) => decision_with(
            m,
            "block",
            json!({"status_code":502,
            "body":b64("blocked")}),
        ),
        ("j2rw", true) => decision_with(
            m,
            "rewrite",
            json!({"body":b64("new body"),
            "headers":{"x-added":["1"],"X-Gone":[],"Authorization":["no"]}}),
        ),
        ("j2same", true) => decision_with(m, "rewrite", json!({"body":b64("same")})),
        ("j2empty", true) => decision_with(m, "rewrite", json!({"body":""})),
        ("j2status", false) => decision_with(m, "rewrite", json!({"status_code":299})),
        _ => allow(m),
    };
    vec![Frame::Json(d)]
}

/// The second middleware (stdio): tags everything it sees (request steps only for PUT).
fn second(m: &Value) -> Vec<Frame> {
    let d = if m["type"] == "http-request" {
        decision_with(m, "allow", json!({"tags": tags("stdio")}))
    } else {
        decision_with(m, "passthrough", json!({"tags": tags("stdio")}))
    };
    vec![Frame::Json(d)]
}

fn of<'a>(ev: &'a [Value], url: &str) -> Vec<&'a Value> {
    ev.iter().filter(|e| e["middleware_url"] == url).collect()
}

/// J1–J5 and hook labels, with a WebSocket and a stdio middleware in one cascade.
#[tokio::test(flavor = "multi_thread")]
async fn decisions_become_events() {
    let ws = FakeMw::new(Transport::Ws).await.serve(
        // Never-matching steps first: they must not take sequence numbers.
        json!({"type":"hello","name":"ws-mw","hooks":[
            {"type":"http-request","filters":{"method":["DELETE"]}},{"type":"http-request"},
            {"type":"http-response","filters":{"method":["DELETE"]}},{"type":"http-response"}]}),
        first,
    );
    let st = FakeMw::new(Transport::Stdio).await.serve(
        json!({"type":"hello","name":"stdio-mw","hooks":[
            {"type":"http-request","filters":{"method":["PUT"]}},{"type":"http-response"}]}),
        second,
    );
    let mut args = ws.mw.cli_args();
    args.extend(st.mw.cli_args());
    let mut env = start(BIN, "", &args).await;
    let origin = Origin::plain("127.0.0.60").await;
    let tls_origin = Origin::https("127.0.0.61", &env.ca).await;
    let p = env.proxy_as_codex();
    let wsu = ws.mw.url();
    let go = |c: &str, extra: &[&str]| {
        let url = origin.url(&format!("/echo?case={c}"));
        let mut a = vec!["-x".to_string(), p.clone()];
        a.extend(extra.iter().map(|s| s.to_string()));
        async move {
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            fetch(&a, &[&url]).await
        }
    };
    for c in [
        "j1a", "j1b", "j1c", "j1d", "j1e", "j2deny", "j2block", "j2status",
    ] {
        go(c, &[]).await;
    }
    let body = [
        "--data-binary",
        "same",
        "-H",
        "X-Gone: x",
        "-H",
        "Authorization: Bearer a",
    ];
    for c in ["j2rw", "j2same", "j2empty"] {
        go(c, &body).await;
    }
    go("j4", &["-X", "PUT", "--data-binary", "put"]).await;

    // J1: no tags, no row (only the stdio middleware's tagged response step).
    let ev = events(&tx(&mut env.ws, "case=j1a").await);
    assert!(of(&ev, &wsu).is_empty(), "{ev:?}");
    // J5: the stdio middleware's events have no URL and the hello's name.
    let s = of(&ev, "");
    assert_eq!(s.len(), 1, "{ev:?}");
    assert_eq!(s[0]["middleware_name"], "stdio-mw");
    assert_eq!(s[0]["action"], "tagged-passthrough");
    assert_eq!(s[0]["hook"], "http-response");
    assert_eq!(
        s[0]["sequence"], 1,
        "the ws response step came first: {ev:?}"
    );
    assert_eq!(s[0]["tags"], tags("stdio"));
    assert!(is_rfc3339(s[0]["created_at"].as_str().unwrap()), "{ev:?}");

    for (c, hook, action) in [
        ("j1b", "http-request", "tagged-allow"),
        ("j1c", "http-response", "tagged-passthrough"),
        ("j1d", "http-response", "tagged-allow"),
        ("j1e", "http-request", "tagged-allow"),
    ] {
        let ev = events(&tx(&mut env.ws, &format!("case={c}")).await);
        let w = of(&ev, &wsu);
        assert_eq!(w.len(), 1, "{c}: {ev:?}");
        assert_eq!(
            (w[0]["hook"].as_str(), w[0]["action"].as_str()),
            (Some(hook), Some(action))
        );
        assert_eq!(w[0]["middleware_name"], "ws-mw", "{c}");
        assert_eq!(w[0]["tags"], tags("ws"), "{c}");
        assert_eq!(w[0]["sequence"], 0, "{c}: {ev:?}");
        assert!(
            w[0].get("status_code").is_none_or(|s| *s == 0),
            "{c}: {ev:?}"
        );
    }

    // J2: deny / block / rewrite rows.
    let ev = events(&tx(&mut env.ws, "case=j2deny").await);
    let w = of(&ev, &wsu);
    assert_eq!(w.len(), 1, "{ev:?}");
    assert_eq!(
        (&w[0]["action"], &w[0]["status_code"]),
        (&json!("deny"), &json!(451))
    );
    assert_eq!(w[0]["tags"], json!({"why":"test"}));
    assert!(w[0].get("fallback").is_none_or(Value::is_null), "{ev:?}");
    assert!(of(&ev, "").is_empty(), "nothing after a deny: {ev:?}");

    let ev = events(&tx(&mut env.ws, "case=j2block").await);
    let w = of(&ev, &wsu);
    assert_eq!(
        (&w[0]["action"], &w[0]["status_code"]),
        (&json!("block"), &json!(502))
    );
    assert_eq!(w[0]["hook"], "http-response");
    assert!(of(&ev, "").is_empty(), "nothing after a block: {ev:?}");

    let ev = events(&tx(&mut env.ws, "case=j2rw").await);
    let w = of(&ev, &wsu);
    assert_eq!(w[0]["action"], "rewrite", "{ev:?}");
    let mut changed: Vec<&str> = w[0]["headers_changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap())
        .collect();
    changed.sort_unstable();
    assert_eq!(
        changed,
        ["X-Added", "X-Gone"],
        "names only, refused ones left out: {ev:?}"
    );
    assert_eq!(w[0]["body_rewritten"], true);
    let ev = events(&tx(&mut env.ws, "case=j2same").await);
    let w = of(&ev, &wsu);
    assert_eq!(w[0]["action"], "rewrite");
    assert!(
        w[0].get("body_rewritten").is_none_or(|b| *b == false),
        "{ev:?}"
    );
    let ev = events(&tx(&mut env.ws, "case=j2empty").await);
    assert_eq!(of(&ev, &wsu)[0]["body_rewritten"], true, "{ev:?}");
    let ev = events(&tx(&mut env.ws, "case=j2status").await);
    let w = of(&ev, &wsu);
    assert_eq!(
        (&w[0]["action"], &w[0]["status_code"]),
        (&json!("rewrite"), &json!(299))
    );

    // J4: sequences per cascade; unmatched steps do not count.
    let ev = events(&tx(&mut env.ws, "case=j4").await);
    let s: Vec<(String, u64)> = of(&ev, "")
        .iter()
        .map(|e| {
            (
                e["hook"].as_str().unwrap().into(),
                e["sequence"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        s,
        [("http-request".into(), 1), ("http-response".into(), 1)],
        "{ev:?}"
    );

    // MITM hook labels.
    let dca = env.daemon_ca_arg();
    let r = fetch(
        &["-x", &p, "--cacert", &dca],
        &[&tls_origin.url("/json?case=mitm")],
    )
    .await;
    assert_eq!(r.status(), 200, "{r:?}");
    let ev = events(&tx(&mut env.ws, "case=mitm").await);
    let hooks: Vec<&str> = of(&ev, "")
        .iter()
        .map(|e| e["hook"].as_str().unwrap())
        .collect();
    assert_eq!(hooks, ["mitm-response"], "{ev:?}");

    // Through a SOCKS5 tunnel too.
    let socks = format!("socks5h://codex:x@{}", env.d.socks_proxy());
    let r = fetch(
        &["--proxy", &socks, "--cacert", &dca],
        &[&tls_origin.url("/json?case=socks")],
    )
    .await;
    assert_eq!(r.status(), 200, "{r:?}");
    let ev = events(&tx(&mut env.ws, "case=socks").await);
    let hooks: Vec<&str> = of(&ev, "")
        .iter()
        .map(|e| e["hook"].as_str().unwrap())
        .collect();
    assert_eq!(hooks, ["mitm-response"], "{ev:?}");
    let seen: Vec<(String, bool)> = ws
        .of_type("http-request")
        .iter()
        .filter(|m| case(m) == "socks")
        .map(|m| (m["uri"].as_str().unwrap().to_string(), m["tls"] == true))
        .collect();
    assert_eq!(seen, [("/json?case=socks".to_string(), true)]);
}
