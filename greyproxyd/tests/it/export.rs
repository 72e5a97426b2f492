//! Export end to end: LLM calls made with curl through the daemon against the mock API arrive
//! at a test OTLP receiver as GenAI spans (decoded with the same protobuf types), a subagent's
//! call under the span of the tool call that spawned it; a receiver answering 503 twice gets
//! every span in the end; a dead receiver leaves proxying working; an endpoint URL that does
//! not parse is a clear configuration error; HAR pages are HAR 1.2 and mitmproxy reads them.

use std::time::Duration;

use greyproxy_testkit::agent_env::rule;
use greyproxy_testkit::fetch::fetch;
use greyproxy_testkit::llm_mock::{Answer, CLAUDE_MODEL, LlmMock, MockUsage, tool_then_text};
use greyproxy_testkit::origin::http_origin;
use greyproxy_testkit::otlp::{OtlpReceiver, Received};
use greyproxy_testkit::{Control, Daemon, DaemonBuilder, eventually};
use serde_json::{Value, json};

use crate::llm_checks::{Convention, table_cost};

const BIN: &str = env!("CARGO_BIN_EXE_greyproxyd");
const SESSION: &str = "5b0c8f3e-1d2a-4c6b-9e7f-0a1b2c3d4e5f";
const SPAWN: &str = "Research greyhaven.co and summarise it.";
const USAGE: MockUsage = MockUsage {
    input: 12,
    cache_creation: 300,
    cache_read: 1000,
    output: 40,
    reasoning: 0,
};

/// A daemon in front of the mock for `api.anthropic.com`, exporting to `endpoint` with the
/// extra `[export.otlp]` lines.
async fn daemon(mock: &LlmMock, endpoint: &str, extra: &str) -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("greyproxyd.toml");
    std::fs::write(
        &cfg,
        format!("[export.otlp]\nendpoint = \"{endpoint}\"\ninterval = \"200ms\"\n{extra}"),
    )
    .unwrap();
    let ca = mock.ca_pem().display().to_string();
    let map = format!("api.anthropic.com={}", mock.ip());
    let cfg = cfg.display().to_string();
    let d = DaemonBuilder::new(BIN)
        .args(&["--upstream-ca", &ca, "--map-host", &map, "--config", &cfg])
        .start()
        .await;
    // The config file lives as long as the test's temp dir; keep it (the daemon read it).
    std::mem::forget(dir);
    d
}

/// POSTs a Messages call through the daemon as container `dev`.
async fn post(d: &Daemon, mock: &LlmMock, body: &Value) {
    let proxy = format!("http://dev:x@{}", d.http.unwrap());
    let ca = d.state_dir().join("ca-cert.pem").display().to_string();
    let url = format!(
        "https://api.anthropic.com:{}/v1/messages?beta=true",
        mock.port()
    );
    let body = body.to_string();
    let r = fetch(
        &[
            "-x",
            &proxy,
            "--cacert",
            &ca,
            "-H",
            "content-type: application/json",
            "-H",
            "user-agent: claude-cli/2.1.0 (external, cli)",
            "--data-binary",
            &body,
        ],
        &[&url],
    )
    .await;
    assert_eq!(r.status(), 200, "{r:?}\n{}", d.log());
}

/// A Claude Code call: the main thread (long system prompt, the `Agent` tool) or a subagent
/// (shorter system prompt) whose first prompt is `prompt`.
fn claude(prompt: &str, main: bool) -> Value {
    let (system, tools) = if main {
        (
            "You are Claude Code. ".repeat(600),
            json!([{"name":"Agent","input_schema":{}}]),
        )
    } else {
        (
            "You are a subagent. ".repeat(100),
            json!([{"name":"Bash","input_schema":{}}]),
        )
    };
    json!({"model": CLAUDE_MODEL, "stream": true, "max_tokens": 1024,
        "metadata": {"user_id": format!("user_ab12_account_5a3241c6-4cbe-47e2-a7d3-981f6bf69be8_session_{SESSION}")},
        "system": [{"type":"text","text": system}],
        "tools": tools,
        "messages": [{"role":"user","content":prompt}]})
}

fn mock_script() -> greyproxy_testkit::llm_mock::Script {
    tool_then_text(
        Answer::tool("Agent", json!({"description": "research", "prompt": SPAWN}))
            .with_usage(USAGE),
        Answer::text("Greyhaven builds sovereign AI.").with_usage(USAGE),
    )
}

/// Waits until the receiver holds spans for `n` distinct span ids.
pub(crate) async fn distinct_spans(r: &OtlpReceiver, n: usize, d: &Daemon) -> Vec<Received> {
    eventually(
        "spans at the receiver",
        Duration::from_secs(30),
        async || {
            let mut all = r.spans();
            all.sort_by(|a, b| a.span.span_id.cmp(&b.span.span_id));
            all.dedup_by(|a, b| a.span.span_id == b.span.span_id);
            if all.len() >= n {
                Ok(all)
            } else {
                Err(format!("{} of {n}\n{}", all.len(), d.log()))
            }
        },
    )
    .await
}

async fn allow(ws: &mut Control) {
    rule(ws, "dev", "api.anthropic.com", "allow").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_with_a_subagent_is_one_trace_with_genai_attributes() {
    let mock = LlmMock::builder("127.0.0.181")
        .script(mock_script())
        .start()
        .await;
    let rx = OtlpReceiver::start("127.0.0.182", &[]).await;
    let d = daemon(&mock, &rx.endpoint(), "batch_size = 2\n").await;
    let mut ws = d.client().await;
    allow(&mut ws).await;
    post(
        &d,
        &mock,
        &claude("Research greyhaven.co with a subagent", true),
    )
    .await;
    post(&d, &mock, &claude(SPAWN, false)).await;

    // Main call, its Agent tool call, the subagent's call.
    let spans = distinct_spans(&rx, 3, &d).await;
    let main = spans
        .iter()
        .find(|s| s.str("greyproxy.thread") == Some("main"))
        .unwrap_or_else(|| panic!("{spans:#?}"));
    let tool = spans
        .iter()
        .find(|s| s.str("gen_ai.operation.name") == Some("execute_tool"))
        .unwrap_or_else(|| panic!("{spans:#?}"));
    let sub = spans
        .iter()
        .find(|s| s.str("greyproxy.thread") == Some("subagent"))
        .unwrap_or_else(|| panic!("{spans:#?}"));

    // GenAI attributes, usage in OTel semantics (input includes the cached parts), cost.
    assert_eq!(main.span.kind, 3, "CLIENT");
    assert_eq!(main.span.name, format!("chat {CLAUDE_MODEL}"));
    assert_eq!(main.str("gen_ai.provider.name"), Some("anthropic"));
    assert_eq!(main.str("gen_ai.request.model"), Some(CLAUDE_MODEL));
    assert_eq!(main.int("gen_ai.usage.input_tokens"), Some(1312));
    assert_eq!(main.int("gen_ai.usage.cache_read.input_tokens"), Some(1000));
    assert_eq!(
        main.int("gen_ai.usage.cache_creation.input_tokens"),
        Some(300)
    );
    assert_eq!(main.int("gen_ai.usage.output_tokens"), Some(40));
    let conv = format!("claude-code:{SESSION}");
    assert_eq!(main.str("gen_ai.conversation.id"), Some(conv.as_str()));
    assert_eq!(main.str("session.id"), Some(SESSION));
    let cost = table_cost(CLAUDE_MODEL, Convention::Anthropic, USAGE).unwrap();
    let got = main.double("gen_ai.usage.cost").unwrap();
    assert!(
        (got - cost as f64 / 1e6).abs() < 1e-9,
        "{got} vs {cost} µUSD"
    );
    assert_eq!(main.str("greyproxy.container"), Some("dev"));
    assert_eq!(main.str("greyproxy.client"), Some("claude-code"));
    assert!(main.int("greyproxy.rule.id").is_some(), "{main:?}");
    assert!(
        main.str("gen_ai.output.messages").is_none(),
        "content is opt-in"
    );
    assert!(
        main.resource.iter().any(|(k, v)| k == "service.name"
            && *v == greyproxy_testkit::otlp::Value::StringValue("greyproxyd".into())),
        "{:?}",
        main.resource
    );
    assert!(main.resource.iter().any(|(k, _)| k == "host.name"));

    // One trace; the subagent's call hangs under the tool call that spawned it.
    assert_eq!(tool.span.parent_span_id, main.span.span_id);
    assert_eq!(tool.str("gen_ai.tool.name"), Some("Agent"));
    assert_eq!(sub.span.trace_id, main.span.trace_id);
    assert_eq!(sub.span.parent_span_id, tool.span.span_id, "{sub:?}");
    assert!(main.span.parent_span_id.is_empty());

    // The conversation's transactions as HAR: the main thread's one call (the subagent is a
    // conversation of its own).
    let page = ws
        .query(json!({"command":"export","conversation_id":conv}))
        .await;
    let entries = page["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{page}");
    assert!(
        entries[0]["request"]["url"]
            .as_str()
            .is_some_and(|u| u.contains("/v1/messages")),
        "{page}"
    );

    // status.export: caught up, nothing failing (the exporter counts a batch once it has read
    // the receiver's answer, a moment after the receiver has the spans).
    let st = eventually(
        "the exporter's count",
        Duration::from_secs(10),
        async || {
            let st = ws.query(json!({"command":"status"})).await;
            if st["export"]["exported_spans"].as_u64() >= Some(3) {
                Ok(st)
            } else {
                Err(st)
            }
        },
    )
    .await;
    let ex = &st["export"];
    assert_eq!(ex["state"], "ok", "{st}");
    assert_eq!(ex["what"], "llm_calls");
    assert!(ex["exported_spans"].as_u64() >= Some(3), "{ex}");
    assert_eq!(ex["endpoint"], rx.endpoint().as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_answering_503_twice_gets_every_span_and_a_restart_resends_nothing_lost() {
    let mock = LlmMock::builder("127.0.0.183")
        .script(mock_script())
        .start()
        .await;
    let rx = OtlpReceiver::start("127.0.0.184", &[503, 503]).await;
    let d = daemon(
        &mock,
        &rx.endpoint(),
        "what = \"both\"\nheaders = { \"x-team\" = \"alpha\" }\n",
    )
    .await;
    let mut ws = d.client().await;
    allow(&mut ws).await;
    post(&d, &mock, &claude("first", true)).await;
    // Call + tool span + the HTTP transaction's span.
    let spans = distinct_spans(&rx, 3, &d).await;
    assert!(
        spans
            .iter()
            .any(|s| s.str("http.request.method") == Some("POST")
                && s.int("http.response.status_code") == Some(200)),
        "{spans:#?}"
    );
    let reqs = rx.requests();
    assert_eq!(reqs[0].0, 503);
    assert_eq!(reqs[1].0, 503);
    assert!(reqs.iter().any(|(st, _)| *st == 200));
    // Our headers, gzip and protobuf on every request.
    for (_, h) in &reqs {
        let get = |k: &str| h.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("x-team"), Some("alpha"));
        assert_eq!(get("content-encoding"), Some("gzip"));
        assert_eq!(get("content-type"), Some("application/x-protobuf"));
    }
    // The receiver has the spans before the exporter has read its 200: the state follows.
    let st = eventually(
        "the exporter's state back to ok",
        Duration::from_secs(10),
        async || {
            let st = ws.query(json!({"command":"status"})).await;
            if st["export"]["state"] == "ok" {
                Ok(st)
            } else {
                Err(st)
            }
        },
    )
    .await;
    assert!(st["export"]["retries"].as_u64() >= Some(2), "{st}");

    // After a restart the cursor holds: a new call is sent, the old ones are not resent.
    let before = rx.spans().len();
    let d = d.restart().await;
    let mut ws = d.client().await;
    post(&d, &mock, &claude("second", true)).await;
    eventually(
        "the second call's spans",
        Duration::from_secs(30),
        async || {
            let st = ws.query(json!({"command":"status"})).await;
            if st["export"]["exported_spans"].as_u64() >= Some(2) && st["export"]["lag"] == 0 {
                Ok(())
            } else {
                Err(st)
            }
        },
    )
    .await;
    let after = rx.spans();
    let new: Vec<&Received> = after[before..].iter().collect();
    assert!(
        new.iter()
            .all(|s| s.str("gen_ai.operation.name") != Some("chat")
                || s.int("greyproxy.call.id") == Some(2)),
        "{new:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_collector_leaves_proxying_working_and_status_says_so() {
    let origin = http_origin("127.0.0.185").await;
    let dead = greyproxy_testkit::closed_port();
    let mock = LlmMock::builder("127.0.0.186")
        .script(mock_script())
        .start()
        .await;
    let d = daemon(
        &mock,
        &format!("http://127.0.0.1:{dead}/v1/traces"),
        "what = \"transactions\"\ntimeout = \"1s\"\n",
    )
    .await;
    let mut ws = d.client().await;
    rule(&mut ws, "dev", "127.0.0.185", "allow").await;
    let proxy = format!("http://dev:x@{}", d.http.unwrap());
    for i in 0..20 {
        let r = fetch(&["-x", &proxy], &[&format!("http://{origin}/n{i}")]).await;
        assert_eq!(r.status(), 200, "{r:?}");
    }
    let st = eventually("export retrying", Duration::from_secs(20), async || {
        let st = ws.query(json!({"command":"status"})).await;
        if st["export"]["state"] == "retrying" && st["export"]["lag"].as_u64() >= Some(20) {
            Ok(st)
        } else {
            Err(st)
        }
    })
    .await;
    let err = st["export"]["last_error"].as_str().unwrap_or("");
    assert!(err.contains("connect"), "{st}");
    assert_eq!(st["export"]["exported_spans"], 0);
}

#[test]
fn an_endpoint_that_does_not_parse_is_a_clear_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "[export.otlp]\nendpoint = \"localhost:4318\"\n").unwrap();
    let out = std::process::Command::new(BIN)
        .args(["config", "check", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("export.otlp.endpoint") && err.contains("not an http:// or https:// URL"),
        "{err}"
    );
    let out = std::process::Command::new(BIN)
        .args([
            "serve",
            "--state-dir",
            dir.path().to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(err.contains("export.otlp.endpoint"), "{err}");
}
