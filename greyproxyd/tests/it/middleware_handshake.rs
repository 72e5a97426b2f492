//! Middleware handshake and configuration, across processes (cases A, I of
//! docs/middleware.md#tests): the proxy hello's exact bytes, version ranges, lenient hello decoding
//! and what `list_middlewares` shows; hellos that are refused (bad range, wrong type, none at all,
//! unparseable, a banner before the hello) never make a middleware ready and it reconnects; CLI
//! `http://` URLs dial `ws://`, `auth_header` reaches the upgrade, invalid `[[middleware]]` tables
//! are refused.

use std::time::Duration;

use greyproxy_testkit::curl;
use greyproxy_testkit::fakemw::env::{both, middlewares, settle, start, wait_ready};
use greyproxy_testkit::fakemw::{FakeMw, Frame, PROXY_HELLO, Transport, hello, python};
use greyproxy_testkit::https_origin::Origin;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_greyproxyd");

fn strs(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// A1, A2, A3 (accepted ranges), A7, A10, I4 (non-empty), stdio `pid`/`command`.
#[tokio::test(flavor = "multi_thread")]
async fn hello_bytes_versions_and_status() {
    both(|t| async move {
        let legacy = FakeMw::new(t).await.serve_allow(json!({"type":"hello"}));
        let full = FakeMw::new(t).await.serve_allow(json!({
            "type":"hello","name":"status-mw","min_version":1,"max_version":5,
            "hooks":[{"type":"http-request"},{"type":"http-response"}],
            "max_body_bytes":4096,"version":99}));
        // Go decodes keys case-insensitively and ignores unknown ones.
        let cased = FakeMw::new(t).await.serve_allow(json!({
            "Type":"hello","NAME":"cased","Min_Version":1,"MAX_VERSION":1,
            "Hooks":[{"TYPE":"http-request","Filters":{"Method":["POST"]}}],
            "Max_Body_Bytes":2048,"unknown_key":{"x":1}}));
        let mut args = legacy.mw.cli_args();
        args.extend(full.mw.cli_args());
        args.extend(cased.mw.cli_args());
        let mut env = start(BIN, "", &args).await;
        let all = middlewares(&mut env.ws).await;
        assert_eq!(all.len(), 3, "{t}: {all:?}");
        for (i, s) in [&legacy, &full, &cased].iter().enumerate() {
            let m = &all[i];
            assert_eq!(m["ready"], true, "{t} #{i}: ready right after start: {m}");
            assert_eq!(m["connected"], true, "{t} #{i}: {m}");
            assert_eq!(m["protocol_version"], 1, "{t} #{i}: {m}");
            assert_eq!(m["kind"], t.to_string(), "{t} #{i}: {m}");
            assert_eq!(m["timeout_ms"], 10000, "{t} #{i}: {m}");
            assert_eq!(m["on_disconnect"], "deny", "{t} #{i}: {m}");
            assert_eq!(m["connects"], 1, "{t} #{i}: {m}");
            let c = s.conns();
            assert_eq!(c.len(), 1, "{t} #{i}: one connection");
            // A1: exact bytes (WS: one text frame; stdio: the line and its \n).
            let mut want = PROXY_HELLO.as_bytes().to_vec();
            match t {
                Transport::Ws => {
                    assert_eq!(m["url"], s.mw.url(), "{t} #{i}");
                    assert!(m.get("pid").is_none_or(Value::is_null), "{m}");
                }
                Transport::Stdio => {
                    want.push(b'\n');
                    assert_eq!(m["url"], format!("stdio:{}", python()), "{t} #{i}");
                    assert_eq!(m["command"], json!(s.mw.argv()), "{t} #{i}");
                    let meta = c[0].meta.as_ref().unwrap();
                    assert_eq!(m["pid"], meta["pid"], "{t} #{i}: pid of the child");
                    assert_eq!(meta["pgid"], meta["pid"], "{t} #{i}: own process group");
                }
            }
            assert_eq!(
                String::from_utf8_lossy(&c[0].proxy_hello),
                String::from_utf8_lossy(&want),
                "{t} #{i}: proxy hello bytes"
            );
        }
        assert!(all[0].get("hooks").is_none_or(|h| strs(h).is_empty()));
        assert!(all[0].get("name").is_none_or(|n| n == ""), "{:?}", all[0]);
        assert_eq!(all[1]["name"], "status-mw");
        assert_eq!(all[1]["max_body_bytes"], 4096);
        assert_eq!(strs(&all[1]["hooks"]), ["http-request", "http-response"]);
        assert_eq!(all[2]["name"], "cased", "{t}: case-insensitive keys");
        assert_eq!(all[2]["max_body_bytes"], 2048);
        assert_eq!(strs(&all[2]["hooks"]), ["http-request"]);

        // The case-insensitive filter applies: only the POST reaches `cased`.
        let origin = Origin::plain("127.0.0.2").await;
        let p = env.proxy_as_codex();
        let r = curl(&["-x", &p, &origin.url("/json")]).await;
        assert_eq!(r.status, 200, "{t}: {r:?}");
        let r = curl(&["-x", &p, "--data", "x", &origin.url("/echo")]).await;
        assert_eq!(r.status, 200, "{t}: {r:?}");
        let got: Vec<String> = cased
            .messages()
            .iter()
            .map(|m| m["method"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(got, ["POST"], "{t}");
        assert_eq!(full.of_type("http-request").len(), 2, "{t}");
        assert_eq!(full.of_type("http-response").len(), 2, "{t}");
        assert!(legacy.messages().is_empty(), "{t}: no hooks, no messages");
    })
    .await;
}

/// What a refused handshake looks like from outside: never ready, an error recorded, the
/// daemon keeps reconnecting, and (not failing open) requests get 403.
async fn refused(t: Transport, case: &str, hello: Option<Value>, relay: &[&str]) {
    let fake = FakeMw::new(t).await.relay_args(relay);
    let served = fake.serve_with(
        Box::new(move |_| hello.clone()),
        Box::new(|_| Vec::<Frame>::new()),
    );
    let mut env = start(BIN, "", &served.mw.cli_args()).await;
    // Startup waited for it (at most 5 s), then went on without it.
    let conns = served.wait_conns(2, Duration::from_secs(8)).await;
    assert!(conns.len() >= 2, "{t} {case}: reconnects, got {conns:?}");
    let m = middlewares(&mut env.ws).await.remove(0);
    assert_eq!(m["ready"], false, "{t} {case}: {m}");
    assert!(
        m["last_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{t} {case}: last_error says why: {m}"
    );
    let r = curl(&["-x", &env.proxy_as_codex(), "http://127.0.0.1:9/"]).await;
    assert_eq!(r.status, 403, "{t} {case}: fails closed: {r:?}");
    assert!(
        served.messages().is_empty(),
        "{t} {case}: nothing is sent to a middleware that is not ready"
    );
}

/// A3 (refused ranges), A4, A6 on both transports, A9 on stdio, A5 on both (below).
#[tokio::test(flavor = "multi_thread")]
async fn refused_hellos_never_become_ready_and_reconnect() {
    let h = |extra: Value| {
        let mut v = json!({"type":"hello","hooks":[{"type":"http-request"}]});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        Some(v)
    };
    let ws = Transport::Ws;
    let st = Transport::Stdio;
    settle(vec![
        refused(
            ws,
            "min2max5",
            h(json!({"min_version":2,"max_version":5})),
            &[],
        ),
        refused(
            ws,
            "min0max2",
            h(json!({"min_version":0,"max_version":2})),
            &[],
        ),
        refused(
            st,
            "min1max0",
            h(json!({"min_version":1,"max_version":0})),
            &[],
        ),
        refused(
            st,
            "min3max2",
            h(json!({"min_version":3,"max_version":2})),
            &[],
        ),
        refused(ws, "not-hello", h(json!({"type":"not-hello"})), &[]),
        refused(st, "not-hello", h(json!({"type":"Hello"})), &[]),
        refused(
            ws,
            "host-string",
            h(json!({"hooks":[{"type":"http-request",
            "filters":{"host":"*.openai.com"}}]})),
            &[],
        ),
        refused(
            st,
            "host-string",
            h(json!({"hooks":[{"type":"http-request",
            "filters":{"host":"*.openai.com"}}]})),
            &[],
        ),
        refused(
            st,
            "banner",
            hello("bannered", &["http-request"]).into(),
            &["--banner", "starting up..."],
        ),
    ])
    .await;
}

/// A5: no hello within 5 s → the connection is closed (stdio: the child is gone), the daemon
/// reconnects, the middleware is not ready. That the close comes exactly at 5 s is pinned under
/// paused time in middleware::client's timing tests.
#[tokio::test(flavor = "multi_thread")]
async fn silent_middleware_is_dropped_after_five_seconds() {
    both(|t| async move {
        let fake = FakeMw::new(t).await;
        let args = fake.cli_args();
        let env = tokio::spawn(async move { start(BIN, "", &args).await });
        let mut c = fake.accept().await;
        let raw = c.proxy_hello().await;
        assert_eq!(raw, c.expected_hello(), "{t}");
        assert!(
            c.wait_closed(Duration::from_secs(15)).await,
            "{t}: closed without a hello"
        );
        if let Some(pid) = c.pid() {
            let gone = greyproxy_testkit::fakemw::env::wait_gone(pid, Duration::from_secs(4)).await;
            assert!(gone.is_some(), "{t}: the silent child {pid} is killed");
        }
        let again = fake.accept_within(Duration::from_secs(3)).await;
        assert!(again.is_some(), "{t}: the daemon reconnects");
        let mut env = env.await.unwrap();
        let m = middlewares(&mut env.ws).await.remove(0);
        assert_eq!(m["ready"], false, "{t}: {m}");
    })
    .await;
}

/// I1 (`http://` → `ws://`, `https://` → `wss://`), B6 (`auth_header` on the upgrade, a value
/// without `:` ignored), config entries after CLI ones, names from the config.
#[tokio::test(flavor = "multi_thread")]
async fn cli_urls_are_rewritten_and_auth_header_reaches_the_upgrade() {
    let cli = FakeMw::ws().await.serve_allow(hello("cli", &[]));
    let authed = FakeMw::ws().await.serve_allow(hello("authed", &[]));
    let plain = FakeMw::ws().await.serve_allow(hello("plain", &[]));
    let http_url = cli.mw.url().replacen("ws://", "http://", 1);
    let config = format!(
        "{}{}",
        authed
            .mw
            .toml("auth_header = \"  X-Secret :  s3cret value \"\nname = \"cfg-authed\""),
        plain.mw.toml("auth_header = \"no colon here\"")
    );
    let mut env = start(BIN, &config, &["--middleware".into(), http_url]).await;
    let all = middlewares(&mut env.ws).await;
    let urls: Vec<&str> = all.iter().map(|m| m["url"].as_str().unwrap()).collect();
    assert_eq!(urls, [cli.mw.url(), authed.mw.url(), plain.mw.url()]);
    assert!(all.iter().all(|m| m["ready"] == true), "{all:?}");
    let up = cli.conns()[0].upgrade.clone().unwrap();
    assert_eq!(up.path, "/middleware");
    assert!(up.header("x-secret").is_empty());
    let up = authed.conns()[0].upgrade.clone().unwrap();
    assert_eq!(up.header("x-secret"), ["s3cret value"], "{up:?}");
    let up = plain.conns()[0].upgrade.clone().unwrap();
    assert!(
        !up.headers
            .iter()
            .any(|(k, v)| k.contains("colon") || v.contains("colon")),
        "{up:?}"
    );
    drop(env);

    // `https://` becomes `wss://` (nothing listens there: never ready).
    let mut env = start(
        BIN,
        "",
        &["--middleware".into(), "https://127.0.0.1:9/x".into()],
    )
    .await;
    let m = middlewares(&mut env.ws).await.remove(0);
    assert_eq!(m["url"], "wss://127.0.0.1:9/x");
    assert_eq!(m["ready"], false);
}

/// I4 (empty list), I3 (a table with both `url` and `command`, or neither, is refused with a
/// message naming the problem; greyproxy skipped such entries with a warning).
#[tokio::test(flavor = "multi_thread")]
async fn no_middlewares_and_invalid_tables() {
    let mut env = start(BIN, "", &[]).await;
    assert_eq!(middlewares(&mut env.ws).await, Vec::<Value>::new());
    drop(env);
    for (table, want) in [
        (
            "[[middleware]]\nurl = \"ws://127.0.0.1:9/\"\ncommand = [\"python3\"]\n",
            "both",
        ),
        ("[[middleware]]\nname = \"nothing\"\n", "neither"),
    ] {
        let f = greyproxy_testkit::mitm::config_file(table);
        let out = std::process::Command::new(BIN)
            .args(["config", "check", f.path().to_str().unwrap()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{table}: accepted");
        assert!(err.contains(want), "{table}: {err}");
    }
}

/// A8: an unknown hook type is never dispatched; a hook listed twice is two steps.
#[tokio::test(flavor = "multi_thread")]
async fn unknown_hook_types_ignored_duplicate_hooks_called_twice() {
    both(|t| async move {
        let fake = FakeMw::new(t)
            .await
            .serve_allow(json!({"type":"hello","hooks":[
            {"type":"http-foo"},{"type":"http-request"},{"type":"http-request"}]}));
        let mut env = start(BIN, "", &fake.mw.cli_args()).await;
        wait_ready(&mut env.ws, 0).await;
        let origin = Origin::plain("127.0.0.3").await;
        let r = curl(&["-x", &env.proxy_as_codex(), &origin.url("/json")]).await;
        assert_eq!(r.status, 200, "{t}: {r:?}");
        let m = fake.messages();
        let types: Vec<&str> = m.iter().map(|m| m["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["http-request", "http-request"], "{t}");
        assert_ne!(m[0]["id"], m[1]["id"], "{t}: a fresh id per step");
    })
    .await;
}
