//! The middleware cascade across processes (cases F, G7 of docs/middleware.md#tests): order by flag
//! kind then config, each step seeing the previous step's rewrites, a deny stopping the rest,
//! filters evaluated per step on the current request; our differences: a middleware that comes up
//! late is consulted (failing closed until then) and a new hello's hooks change dispatch; the `llm`
//! filter follows the live endpoint registry (config reload).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use greyproxy_testkit::fakemw::env::{both, middlewares, start, wait_log, wait_status};
use greyproxy_testkit::fakemw::{
    FakeMw, Frame, allow, b64, body_text, case, decision_with, hello, python,
};
use greyproxy_testkit::fetch::fetch;
use greyproxy_testkit::https_origin::Origin;
use greyproxy_testkit::{DaemonBuilder, curl};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_greyproxyd");

/// A step that appends `letter` to the request body (and sets `X-Step-<letter>` plus
/// `extra` headers) for cases f1/f3, denies f2 when `deny`, and bumps the response status.
fn stepper(letter: &'static str, deny: bool, extra: Value) -> impl Fn(&Value) -> Vec<Frame> {
    move |m| {
        let c = case(m);
        let d = if m["type"] == "http-request" {
            match c.as_str() {
                "f2" if deny => decision_with(m, "deny", json!({"status_code":451})),
                "f1" | "f3" => {
                    let body = body_text(&m["body"]).unwrap_or_default() + letter;
                    let mut headers = json!({ format!("X-Step-{letter}"): ["1"] });
                    if c == "f1" {
                        headers
                            .as_object_mut()
                            .unwrap()
                            .extend(extra.as_object().unwrap().clone());
                    }
                    decision_with(m, "rewrite", json!({"body": b64(body), "headers": headers}))
                }
                _ => allow(m),
            }
        } else if c == "f1" {
            let status = m["status_code"].as_u64().unwrap() + 1;
            decision_with(m, "rewrite", json!({"status_code": status}))
        } else {
            allow(m)
        };
        vec![Frame::Json(d)]
    }
}

/// F1 (order: CLI ws, CLI cmd, config; each sees the previous rewrite), F2 (deny stops the
/// rest), F3 (a rewritten Content-Type decides the next filter), F4, G8 (null/empty filters).
#[tokio::test(flavor = "multi_thread")]
async fn steps_run_in_order_and_see_earlier_rewrites() {
    let a = FakeMw::ws().await.serve(
        json!({"type":"hello","name":"a","hooks":[{"type":"http-request","filters":null},
            {"type":"http-response","filters":{"method":[],"host":[]}}]}),
        stepper("A", true, json!({})),
    );
    let b = FakeMw::stdio().await.serve(
        hello("b", &["http-request", "http-response"]),
        stepper("B", false, json!({"Content-Type":["application/json"]})),
    );
    let c = FakeMw::ws().await.serve(
        json!({"type":"hello","name":"c","hooks":[
            {"type":"http-request","filters":{"content_type":["application/json"]}},
            {"type":"http-response"}]}),
        stepper("C", false, json!({})),
    );
    let mut args = b.mw.cli_args();
    args.extend(a.mw.cli_args());
    let mut env = start(BIN, &c.mw.toml("name = \"cfg-c\""), &args).await;
    let order: Vec<Value> = middlewares(&mut env.ws)
        .await
        .iter()
        .map(|m| m["url"].clone())
        .collect();
    assert_eq!(
        order,
        [
            json!(a.mw.url()),
            json!(format!("stdio:{}", python())),
            json!(c.mw.url())
        ]
    );

    let origin = Origin::plain("127.0.0.70").await;
    let p = env.proxy_as_codex();
    let post = |c: &str| {
        let url = origin.url(&format!("/echo?case={c}"));
        let p = p.clone();
        async move {
            fetch(
                &[
                    "-x",
                    &p,
                    "-H",
                    "Content-Type: text/plain",
                    "--data-binary",
                    "x",
                ],
                &[&url],
            )
            .await
        }
    };
    let r = post("f1").await;
    assert_eq!((r.status(), r.text().as_str()), (203, "xABC"), "{r:?}");
    let s = origin.requests().pop().unwrap();
    assert_eq!(s.headers["content-type"], "application/json");
    assert_eq!(s.headers["x-step-a"], "1");
    assert_eq!(s.headers["x-step-b"], "1");
    assert_eq!(s.headers["x-step-c"], "1");
    let f1 = |s: &greyproxy_testkit::fakemw::Served, ty: &str| -> Value {
        s.of_type(ty).into_iter().find(|m| case(m) == "f1").unwrap()
    };
    let bm = f1(&b, "http-request");
    assert_eq!(body_text(&bm["body"]).unwrap(), "xA");
    assert_eq!(bm["headers"]["X-Step-A"], json!(["1"]));
    assert_eq!(bm["headers"]["Content-Type"], json!(["text/plain"]));
    let cm = f1(&c, "http-request");
    assert_eq!(body_text(&cm["body"]).unwrap(), "xAB");
    assert_eq!(cm["headers"]["Content-Type"], json!(["application/json"]));
    assert_eq!(f1(&a, "http-response")["status_code"], 200);
    assert_eq!(f1(&b, "http-response")["status_code"], 201);
    assert_eq!(f1(&c, "http-response")["status_code"], 202);

    // F2: a deny at step 1 → steps 2 and 3 never hear of it.
    let r = post("f2").await;
    assert_eq!(r.status(), 451, "{r:?}");
    for s in [&b, &c] {
        assert!(!s.messages().iter().any(|m| case(m) == "f2"));
    }
    // F3/F4: text/plain all along → c's request filter does not match; nothing sent to it.
    let r = post("f3").await;
    assert_eq!(r.text(), "xAB", "{r:?}");
    let c_req: Vec<String> = c.of_type("http-request").iter().map(case).collect();
    assert_eq!(c_req, ["f1"]);
    assert_eq!(
        c.of_type("http-response").len(),
        2,
        "responses still reach c"
    );
}

/// F5 as we do it: a middleware that is not ready at startup fails closed, and is consulted
/// once it comes up; a reconnect whose hello declares other hooks changes dispatch.
#[tokio::test(flavor = "multi_thread")]
async fn late_middleware_is_consulted_and_new_hooks_apply() {
    both(|t| async move {
        let up = Arc::new(AtomicBool::new(false));
        let hellos = Arc::new(AtomicUsize::new(0));
        let (u2, h2) = (up.clone(), hellos.clone());
        let fake = FakeMw::new(t).await.serve_with(
            Box::new(move |_| {
                if !u2.load(Ordering::SeqCst) {
                    return None;
                }
                let hooks: &[&str] = match h2.fetch_add(1, Ordering::SeqCst) {
                    0 => &["http-request"],
                    _ => &["http-response"],
                };
                Some(hello("late", hooks))
            }),
            Box::new(|m| vec![Frame::Json(allow(m))]),
        );
        let mut env = start(BIN, "", &fake.mw.cli_args()).await;
        let origin = Origin::plain("127.0.0.71").await;
        let p = env.proxy_as_codex();
        let r = curl(&["-x", &p, &origin.url("/json?case=early")]).await;
        assert_eq!(r.status, 403, "{t}: not ready yet → fails closed: {r:?}");

        up.store(true, Ordering::SeqCst);
        fake.close_current();
        wait_status(&mut env.ws, 0, Duration::from_secs(8), "ready", |m| {
            m["ready"] == true
        })
        .await;
        let r = curl(&["-x", &p, &origin.url("/json?case=late")]).await;
        assert_eq!(r.status, 200, "{t}: {r:?}");
        let types: Vec<String> = fake
            .messages()
            .iter()
            .map(|m| format!("{} {}", m["type"].as_str().unwrap(), case(m)))
            .collect();
        assert_eq!(types, ["http-request late"], "{t}");

        fake.close_current();
        wait_status(&mut env.ws, 0, Duration::from_secs(8), "re-hello'd", |m| {
            m["ready"] == true && m["hooks"] == json!(["http-response"])
        })
        .await;
        fake.clear();
        let r = curl(&["-x", &p, &origin.url("/json?case=rehello")]).await;
        assert_eq!(r.status, 200, "{t}: {r:?}");
        let types: Vec<String> = fake
            .messages()
            .iter()
            .map(|m| format!("{} {}", m["type"].as_str().unwrap(), case(m)))
            .collect();
        assert_eq!(types, ["http-response rehello"], "{t}");
    })
    .await;
}

fn llm_config(enabled: bool) -> String {
    format!(
        "[[llm_endpoint]]\nhost = \"127.0.0.72\"\npath = \"/v1/chat/completions\"\n\
         decoder = \"openai-chat\"\nenabled = {enabled}\n"
    )
}

/// G7: `llm: true/false` filters follow the live registry: disabling the user rule (config
/// reload on SIGHUP) moves the next request from one middleware to the other.
#[tokio::test(flavor = "multi_thread")]
async fn llm_filter_follows_the_live_registry() {
    let llm = FakeMw::ws()
        .await
        .serve_allow(json!({"type":"hello","hooks":[
        {"type":"http-request","filters":{"llm":true}}]}));
    let not_llm = FakeMw::ws()
        .await
        .serve_allow(json!({"type":"hello","hooks":[
        {"type":"http-request","filters":{"llm":false}}]}));
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("greyproxyd.toml");
    std::fs::write(&cfg, llm_config(true)).unwrap();
    let (u1, u2) = (llm.mw.url(), not_llm.mw.url());
    let d = DaemonBuilder::new(BIN)
        .args(&[
            "--config",
            cfg.to_str().unwrap(),
            "--middleware",
            &u1,
            "--middleware",
            &u2,
        ])
        .start()
        .await;
    let mut ws = d.client().await;
    greyproxy_testkit::mitm::allow_loopback(&mut ws).await;
    let origin = Origin::plain("127.0.0.72").await;
    let url = origin.url("/v1/chat/completions");
    let proxy = d.http_proxy();
    let post = |q: &str| {
        let u = format!("{url}?q={q}");
        let p = proxy.clone();
        async move { curl(&["-x", &p, "--data", "{}", &u]).await }
    };
    let seen = |s: &greyproxy_testkit::fakemw::Served| -> Vec<String> {
        s.messages()
            .iter()
            .map(|m| {
                m["uri"]
                    .as_str()
                    .unwrap()
                    .rsplit('?')
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    assert_eq!(post("on").await.status, 404);
    let get = curl(&["-x", &proxy, &format!("{url}?q=get")]).await;
    assert_eq!(get.status, 404, "{get:?}");
    std::fs::write(&cfg, llm_config(false)).unwrap();
    let rt: Value =
        serde_json::from_str(&std::fs::read_to_string(d.state_dir().join("daemon.json")).unwrap())
            .unwrap();
    let pid = rt["pid"].as_u64().unwrap().to_string();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(hup.success());
    wait_log(|| d.log(), "reloaded", Duration::from_secs(5)).await;
    assert_eq!(post("off").await.status, 404);
    assert_eq!(seen(&llm), ["q=on"]);
    assert_eq!(seen(&not_llm), ["q=get", "q=off"]);
}
