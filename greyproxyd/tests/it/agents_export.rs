//! Issue 18's acceptance with the real Claude Code CLI: its conversation through the daemon
//! (against the mock API, its Bash tool's curl held and allowed) arrives at an OTLP receiver
//! as one trace: a CLIENT `chat` span per LLM call with the tokens the mock reported (OTel
//! semantics: input includes the cached parts) and the cost the price table implies, and the
//! `execute_tool Bash` span of the tool call between them. Skipped (with a message) where npm
//! is missing, failed under `CI=true`.

use greyproxy_testkit::agent_env::{AgentEnv, show};
use greyproxy_testkit::agents::agents;
use greyproxy_testkit::eventually;
use greyproxy_testkit::fetch::fetch;
use greyproxy_testkit::llm_mock::{CLAUDE_MODEL, LlmMock};
use greyproxy_testkit::otlp::OtlpReceiver;
use serde_json::json;

use crate::agents::{STEP1, STEP2, one_tool_round, target};
use crate::export::distinct_spans;
use crate::llm_checks::{Convention, table_cost};

const BIN: &str = env!("CARGO_BIN_EXE_greyproxyd");

/// Runs Claude Code through a daemon exporting to `endpoint`: one tool round, its tool's curl
/// held and allowed. Returns the environment (the daemon lives as long as it does).
async fn claude_exporting_to(endpoint: &str, mock_ip: &str) -> Option<AgentEnv> {
    let bins = agents()?;
    let t = target().await;
    let cmd = format!("curl -s http://{t}/x");
    let mock = LlmMock::builder(mock_ip)
        .script(one_tool_round(
            "Bash",
            json!({"command": cmd, "description": "Fetch page x"}),
            "The page greets us.",
        ))
        .start()
        .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("greyproxyd.toml");
    std::fs::write(
        &cfg,
        format!("[export.otlp]\nendpoint = \"{endpoint}\"\ninterval = \"200ms\"\n"),
    )
    .unwrap();
    let cfg = cfg.display().to_string();
    let mut env = AgentEnv::start_with(
        BIN,
        mock,
        "claude",
        &["api.anthropic.com"],
        &[],
        &["--config", &cfg],
    )
    .await;
    let cmd = env.claude(
        &bins.claude,
        "Fetch the page x with curl and tell me what it says.",
        CLAUDE_MODEL,
        &["--allowedTools", "Bash(curl:*)"],
    );
    let (_, out) = env.run_allowing(cmd, t).await;
    assert!(out.status.success(), "{}", show(&out));
    // The config file was read at start.
    drop(dir);
    Some(env)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claude_code_conversation_is_one_otlp_trace_with_its_tokens_and_cost() {
    let rx = OtlpReceiver::start("127.0.0.113", &[]).await;
    let Some(env) = claude_exporting_to(&rx.endpoint(), "127.0.0.112").await else {
        return;
    };

    // Two calls and the tool call between them.
    let spans = distinct_spans(&rx, 3, &env.d).await;
    let mut chats: Vec<_> = spans
        .iter()
        .filter(|s| s.str("gen_ai.operation.name") == Some("chat"))
        .collect();
    chats.sort_by_key(|s| s.span.start_time_unix_nano);
    assert_eq!(chats.len(), 2, "{spans:#?}");
    let tool = spans
        .iter()
        .find(|s| s.str("gen_ai.operation.name") == Some("execute_tool"))
        .unwrap_or_else(|| panic!("{spans:#?}"));
    assert_eq!(tool.str("gen_ai.tool.name"), Some("Bash"));

    // One trace: every span shares the first call's trace id.
    let trace = &chats[0].span.trace_id;
    assert!(
        spans.iter().all(|s| &s.span.trace_id == trace),
        "{spans:#?}"
    );
    let conv = chats[0].str("gen_ai.conversation.id").unwrap().to_string();
    assert!(conv.starts_with("claude-code:"), "{conv}");
    for (c, u) in chats.iter().zip([STEP1, STEP2]) {
        assert_eq!(c.span.kind, 3, "CLIENT");
        assert_eq!(c.str("gen_ai.conversation.id"), Some(conv.as_str()));
        assert_eq!(c.str("greyproxy.client"), Some("claude-code"));
        assert_eq!(c.str("greyproxy.container"), Some("claude"));
        assert_eq!(c.str("gen_ai.provider.name"), Some("anthropic"));
        let input = u.input + u.cache_creation + u.cache_read;
        assert_eq!(
            c.int("gen_ai.usage.input_tokens"),
            Some(input as i64),
            "{c:?}"
        );
        assert_eq!(c.int("gen_ai.usage.output_tokens"), Some(u.output as i64));
        let cost = table_cost(CLAUDE_MODEL, Convention::Anthropic, u).unwrap();
        let got = c.double("gen_ai.usage.cost").unwrap();
        assert!(
            (got - cost as f64 / 1e6).abs() < 1e-9,
            "{got} vs {cost} µUSD"
        );
    }
}

/// The same conversation into a real Phoenix, read back from its REST API. By hand:
/// `phoenix serve` (pip install arize-phoenix), then
/// `GREYPROXY_PHOENIX=http://127.0.0.1:6006 cargo test -p greyproxyd --test it
/// agents_export -- --ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running Phoenix: GREYPROXY_PHOENIX=http://127.0.0.1:6006"]
async fn a_claude_code_conversation_shows_in_phoenix_as_one_trace() {
    let base = std::env::var("GREYPROXY_PHOENIX").expect("GREYPROXY_PHOENIX=http://host:port");
    let endpoint = format!("{base}/v1/traces");
    let Some(env) = claude_exporting_to(&endpoint, "127.0.0.114").await else {
        return;
    };
    let url = format!("{base}/v1/projects/default/spans?limit=1000");
    let chats = eventually(
        "the calls in Phoenix",
        std::time::Duration::from_secs(60),
        async || {
            let r = fetch(&[], &[&url]).await;
            let body = r
                .transfers
                .first()
                .map(|t| t.body.clone())
                .unwrap_or_default();
            let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
            let chats: Vec<serde_json::Value> = v["data"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|s| s["attributes"]["greyproxy.container"] == "claude")
                .filter(|s| s["attributes"]["gen_ai.operation.name"] == "chat")
                .collect();
            if chats.len() >= 2 {
                Ok(chats)
            } else {
                Err(format!("{} chat spans: {v}", chats.len()))
            }
        },
    )
    .await;
    let trace = &chats[0]["context"]["trace_id"];
    assert!(
        chats.iter().all(|c| &c["context"]["trace_id"] == trace),
        "{chats:#?}"
    );
    let input: i64 = chats
        .iter()
        .filter_map(|c| c["attributes"]["gen_ai.usage.input_tokens"].as_i64())
        .sum();
    let want: i64 = [STEP1, STEP2]
        .iter()
        .map(|u| (u.input + u.cache_creation + u.cache_read) as i64)
        .sum();
    assert!(
        input >= want,
        "{input} tokens in Phoenix, {want} sent: {chats:#?}"
    );
    drop(env);
}
