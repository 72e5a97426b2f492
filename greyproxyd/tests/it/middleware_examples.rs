//! The example middlewares end to end (cases K of docs/middleware.md#tests), each on both
//! transports, through the daemon with real curl to plain and HTTPS origins: passthrough,
//! secret-scanner, pii-redactor, command-stripper, cost-tracker with audit-log, and the Python
//! helper surviving handler exceptions.

use greyproxy_testkit::fakemw::Transport;
use greyproxy_testkit::fakemw::env::{both, events, tx};
use greyproxy_testkit::fakemw::example::{Example, examples_dir, start_env};
use greyproxy_testkit::fakemw::origin::{Reply, Scripted};
use greyproxy_testkit::fetch::{Fetch, fetch};
use greyproxy_testkit::https_origin::encode;
use greyproxy_testkit::mitm::MitmEnv;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_greyproxyd");

/// A daemon with the examples `names` (in cascade order) on transport `t`.
async fn with_examples(
    t: Transport,
    names: &[&str],
    env: &[(&str, &str)],
) -> (MitmEnv, Vec<Example>) {
    let mut ex = Vec::new();
    let mut args = Vec::new();
    for n in names {
        let e = Example::start(t, n, env).await;
        args.extend(e.args.clone());
        ex.push(e);
    }
    (start_env(BIN, "", &args, env).await, ex)
}

/// curl through the proxy as `codex` (plain URL) or also trusting the daemon CA (https).
async fn via(env: &MitmEnv, url: &str, extra: &[&str]) -> Fetch {
    let (p, dca) = (env.proxy_as_codex(), env.daemon_ca_arg());
    let mut a = vec!["-x", &p, "--cacert", &dca];
    a.extend_from_slice(extra);
    fetch(&a, &[url]).await
}

fn hdr(f: &Fetch, name: &str) -> Vec<String> {
    let head = f.headers.rsplit("HTTP/").next().unwrap_or("");
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_string())
        .collect()
}

const JSON_CT: &str = "application/json";

/// K1: the passthrough example changes nothing, compressed bodies included.
#[tokio::test(flavor = "multi_thread")]
async fn passthrough_example_leaves_traffic_alone() {
    both(|t| async move {
        let (env, _ex) = with_examples(t, &["passthrough"], &[]).await;
        let gz = encode("gzip", br#"{"hello":"world"}"#);
        let routes = || {
            vec![(
                "/gz",
                Reply::new(JSON_CT, gz.clone()).header("content-encoding", "gzip"),
            )]
        };
        let plain = Scripted::start("127.0.0.80", None, routes()).await;
        let tls = Scripted::start("127.0.0.81", Some(&env.ca), routes()).await;
        for o in [&plain, &tls] {
            let r = via(&env, &o.url("/gz"), &[]).await;
            assert_eq!((r.status(), r.body()), (200, &gz[..]), "{t} {}", o.scheme);
            assert_eq!(hdr(&r, "content-encoding"), ["gzip"], "{t}");
            let r = via(&env, &o.url("/echo"), &["--data-binary", "exact\r\nbytes"]).await;
            assert_eq!(r.text(), "exact\r\nbytes", "{t} {}", o.scheme);
            assert_eq!(o.requests().last().unwrap().body, b"exact\r\nbytes");
        }
        if t == Transport::Stdio {
            assert!(env.d.log().contains("mw[python3]"), "{t}: stderr is logged");
        }
    })
    .await;
}

/// K2 (and the acceptance half on both transports): a body with an `sk-` key is denied with
/// the scanner's message (plain and MITM), recorded as its deny event; clean bodies pass.
#[tokio::test(flavor = "multi_thread")]
async fn secret_scanner_example_denies_leaks() {
    both(|t| async move {
        let (mut env, _ex) = with_examples(t, &["secret-scanner"], &[]).await;
        let plain = Scripted::start("127.0.0.82", None, vec![]).await;
        let tls = Scripted::start("127.0.0.83", Some(&env.ca), vec![]).await;
        let leak = r#"{"prompt":"my key is sk-abcdefghijklmnopqrstuvwx"}"#;
        for o in [&plain, &tls] {
            let r = via(&env, &o.url("/echo?k2=leak"), &["--data-binary", leak]).await;
            assert_eq!(r.status(), 403, "{t} {}: {r:?}", o.scheme);
            assert!(
                r.text()
                    .starts_with("Request blocked: detected leaked credentials (sk-api-key)"),
                "{t} {}: {}",
                o.scheme,
                r.text()
            );
            assert!(o.requests().is_empty(), "{t}: nothing leaked upstream");
            let r = via(
                &env,
                &o.url("/echo?k2=clean"),
                &["--data-binary", "{\"prompt\":\"hi\"}"],
            )
            .await;
            assert_eq!(
                (r.status(), r.text().as_str()),
                (200, "{\"prompt\":\"hi\"}"),
                "{t}"
            );
        }
        let ev = events(&tx(&mut env.ws, &plain.url("/echo?k2=leak")).await);
        assert_eq!(ev.len(), 1, "{t}: {ev:?}");
        assert_eq!(ev[0]["action"], "deny");
        assert_eq!(ev[0]["status_code"], 403);
        assert_eq!(ev[0]["middleware_name"], "secret-scanner");
        assert_eq!(ev[0]["hook"], "http-request");
        assert_eq!(
            ev[0]["tags"],
            json!({"secret-scanner.labels":["sk-api-key"]})
        );
    })
    .await;
}

/// K3: the upstream sees placeholders, the client the originals (plain and MITM).
#[tokio::test(flavor = "multi_thread")]
async fn pii_redactor_example_round_trips() {
    both(|t| async move {
        let (mut env, _ex) = with_examples(t, &["pii-redactor"], &[]).await;
        let plain = Scripted::start("127.0.0.84", None, vec![]).await;
        let tls = Scripted::start("127.0.0.85", Some(&env.ca), vec![]).await;
        let doc = json!({"messages":[{"role":"user",
            "content":"Mail John Smith at john.smith@example.com about SSN 123-45-6789"}]});
        let body = doc.to_string();
        for o in [&plain, &tls] {
            let h = [
                "-H",
                "Host: api.openai.com",
                "-H",
                "Content-Type: application/json",
            ];
            let mut a = h.to_vec();
            a.extend(["--data-binary", &body]);
            let r = via(&env, &o.url("/echo?k3=1"), &a).await;
            assert_eq!(r.status(), 200, "{t} {}: {r:?}", o.scheme);
            let upstream = String::from_utf8(o.requests().last().unwrap().body.clone()).unwrap();
            for secret in ["John Smith", "john.smith@example.com", "123-45-6789"] {
                assert!(!upstream.contains(secret), "{t} {}: {upstream}", o.scheme);
            }
            for ph in ["PERSON_", "EMAIL_", "SSN_"] {
                assert!(upstream.contains(ph), "{t} {}: {upstream}", o.scheme);
            }
            let back: Value = serde_json::from_slice(r.body()).unwrap();
            assert_eq!(back, doc, "{t} {}: the client sees the originals", o.scheme);
            assert!(hdr(&r, "content-encoding").is_empty());
        }
        let ev = events(&tx(&mut env.ws, &plain.url("/echo?k3=1")).await);
        let acts: Vec<(&str, &str)> = ev
            .iter()
            .map(|e| (e["hook"].as_str().unwrap(), e["action"].as_str().unwrap()))
            .collect();
        assert_eq!(
            acts,
            [("http-request", "rewrite"), ("http-response", "rewrite")],
            "{t}"
        );
        assert_eq!(ev[0]["tags"]["pii.redacted"], 3, "{t}: {ev:?}");
        assert_eq!(ev[1]["tags"]["pii.restored"], 3, "{t}: {ev:?}");
        assert_eq!(ev[0]["body_rewritten"], true);
    })
    .await;
}

/// K4: dangerous commands in LLM JSON responses are replaced by the marker, gzip included;
/// other paths are not sent to the middleware.
#[tokio::test(flavor = "multi_thread")]
async fn command_stripper_example_strips_dangerous_commands() {
    both(|t| async move {
        let (mut env, _ex) = with_examples(t, &["command-stripper"], &[]).await;
        let doc = json!({"content":[{"type":"text","text":"To clean up run: rm -rf / and relax"}]});
        let raw = doc.to_string();
        let gz = encode("gzip", raw.as_bytes());
        let routes = || {
            vec![
                ("/v1/messages", Reply::new(JSON_CT, raw.clone())),
                (
                    "/gz/v1/messages",
                    Reply::new(JSON_CT, gz.clone()).header("content-encoding", "gzip"),
                ),
                ("/other", Reply::new(JSON_CT, raw.clone())),
            ]
        };
        let plain = Scripted::start("127.0.0.86", None, routes()).await;
        let tls = Scripted::start("127.0.0.87", Some(&env.ca), routes()).await;
        let marker = "[STRIPPED: command removed by middleware -- flagged as: rm -rf /]";
        for o in [&plain, &tls] {
            for path in ["/v1/messages", "/gz/v1/messages"] {
                let r = via(&env, &o.url(path), &[]).await;
                assert_eq!(r.status(), 200, "{t} {path}");
                let text = r.text();
                assert!(text.contains(marker), "{t} {} {path}: {text}", o.scheme);
                assert!(
                    !text.replace(marker, "").contains("rm -rf"),
                    "{t} {path}: {text}"
                );
                assert!(
                    hdr(&r, "content-encoding").is_empty(),
                    "{t} {path}: {}",
                    r.headers
                );
                let _: Value = serde_json::from_str(&text).unwrap();
            }
            let r = via(&env, &o.url("/other"), &[]).await;
            assert_eq!(r.text(), raw, "{t}: /other is not filtered in");
        }
        let ev = events(&tx(&mut env.ws, &plain.url("/v1/messages")).await);
        assert_eq!(ev.len(), 1, "{t}: {ev:?}");
        assert_eq!(ev[0]["action"], "rewrite");
        assert_eq!(
            ev[0]["tags"],
            json!({"command-stripper.flags":["rm -rf /"]})
        );
    })
    .await;
}

/// K5: cost-tracker and audit-log write their files, leave traffic alone; cost-tracker's
/// decision is a tagged-passthrough event.
#[tokio::test(flavor = "multi_thread")]
async fn cost_tracker_and_audit_log_examples_observe() {
    both(|t| async move {
        let dir = tempfile::tempdir().unwrap();
        let costs = dir.path().join("costs.jsonl");
        let audit = dir.path().join("audit.jsonl");
        let (c, a) = (costs.display().to_string(), audit.display().to_string());
        let env_vars = [
            ("COST_TRACKER_FILE", c.as_str()),
            ("AUDIT_LOG_FILE", a.as_str()),
        ];
        let (mut env, _ex) = with_examples(t, &["audit-log", "cost-tracker"], &env_vars).await;
        let answer = json!({"id":"x","model":"gpt-4o-2024-08-06",
            "usage":{"prompt_tokens":1000,"completion_tokens":500}})
        .to_string();
        let o = Scripted::start(
            "127.0.0.88",
            None,
            vec![("/v1/chat/completions", Reply::new(JSON_CT, answer.clone()))],
        )
        .await;
        let url = o.url("/v1/chat/completions");
        let h = [
            "-H",
            "Host: api.openai.com",
            "-H",
            "Content-Type: application/json",
        ];
        let mut args = h.to_vec();
        args.extend(["--data-binary", "{\"model\":\"gpt-4o\"}"]);
        let r = via(&env, &url, &args).await;
        assert_eq!((r.status(), r.text()), (200, answer.clone()), "{t}");
        assert_eq!(o.requests()[0].body, b"{\"model\":\"gpt-4o\"}");

        let lines = |p: &std::path::Path| -> Vec<Value> {
            std::fs::read_to_string(p)
                .unwrap_or_default()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        };
        let cost = lines(&costs);
        assert_eq!(cost.len(), 1, "{t}: {cost:?}");
        assert_eq!(cost[0]["model"], "gpt-4o-2024-08-06");
        assert_eq!(
            (&cost[0]["prompt_tokens"], &cost[0]["completion_tokens"]),
            (&json!(1000), &json!(500))
        );
        assert_eq!(cost[0]["usd"], 0.0075, "{t}");
        assert_eq!(cost[0]["container"], "codex");
        let au = lines(&audit);
        assert_eq!(au.len(), 2, "{t}: {au:?}");
        assert_eq!(au[0]["direction"], "request");
        assert_eq!(au[0]["method"], "POST");
        assert_eq!(au[0]["host"], "api.openai.com");
        assert_eq!(au[0]["tls"], false);
        assert_eq!(au[0]["proto"], "HTTP/1.1");
        assert_eq!(au[0]["body_bytes"], 18);
        assert_eq!(au[1]["direction"], "response");
        assert_eq!(au[1]["status_code"], 200);
        assert_eq!(au[1]["response_body_bytes"], answer.len());

        let ev = events(&tx(&mut env.ws, &url).await);
        assert_eq!(ev.len(), 1, "{t}: only cost-tracker tags: {ev:?}");
        assert_eq!(ev[0]["action"], "tagged-passthrough");
        assert_eq!(ev[0]["middleware_name"], "cost-tracker");
        assert_eq!(ev[0]["tags"]["cost.usd"], 0.0075);
        assert_eq!(ev[0]["tags"]["cost.prompt_tokens"], 1000);
        assert_eq!(ev[0]["sequence"], 1, "audit-log's response step came first");
    })
    .await;
}

const RAISING: &str = r#"
import os, sys
sys.path.insert(0, LIB)
from greyproxy_middleware import run, deny
def on_request(msg):
    if "boom" in msg["uri"]:
        raise RuntimeError("boom in request")
    if "deny" in msg["uri"]:
        return deny(msg["id"], status=451, body=b"helper deny")
    return None
def on_response(msg):
    if "boom" in msg["uri"]:
        raise RuntimeError("boom in response")
run(name="k7", handle_request=on_request, handle_response=on_response)
"#;

/// K7: a handler that raises is answered allow/passthrough and the connection stays up.
#[tokio::test(flavor = "multi_thread")]
async fn helper_survives_handler_exceptions() {
    let dir = tempfile::tempdir().unwrap();
    let lib = examples_dir().join("_lib").display().to_string();
    let script = dir.path().join("raising.py");
    std::fs::write(&script, RAISING.replace("LIB", &format!("{lib:?}"))).unwrap();
    let script = script.display().to_string();
    both(|t| {
        let script = script.clone();
        async move {
            let ex = Example::start_script(t, &script, &[]).await;
            let mut env = start_env(BIN, "", &ex.args, &[]).await;
            let o = Scripted::start("127.0.0.89", None, vec![]).await;
            for i in 0..2 {
                let r = via(&env, &o.url(&format!("/echo?boom={i}")), &["--data", "b"]).await;
                assert_eq!((r.status(), r.text().as_str()), (200, "b"), "{t}: {r:?}");
            }
            let r = via(&env, &o.url("/echo?deny"), &[]).await;
            assert_eq!((r.status(), r.text().as_str()), (451, "helper deny"), "{t}");
            let m = greyproxy_testkit::fakemw::env::middlewares(&mut env.ws).await;
            assert_eq!(m[0]["connects"], 1, "{t}: {m:?}");
            assert_eq!(m[0]["ready"], true);
        }
    })
    .await;
}
