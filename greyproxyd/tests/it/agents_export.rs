//! Issue 18's acceptance with the real Claude Code CLI: its conversation through the daemon
//! (against the mock API, its Bash tool's curl held and allowed) arrives at an OTLP receiver
//! as one trace: a CLIENT `chat` span per LLM call with the tokens the mock reported (OTel
//! semantics: input includes the cached parts) and the cost the price table implies, and the
//! `execute_tool Bash` span of the tool call between them. Skipped (with a message) where npm
//! is missing, failed under `CI=true`.

use greyproxy_testkit::agent_env::{AgentEnv, show};
use greyproxy_testkit::agents::agents;
use greyproxy_testkit::llm_mock::{CLAUDE_MODEL, LlmMock};
use greyproxy_testkit::otlp::OtlpReceiver;
use serde_json::json;

use crate::agents::{STEP1, STEP2, one_tool_round, target};
use crate::export::distinct_spans;
use crate::llm_checks::{Convention, table_cost};

const BIN: &str = env!("CARGO_BIN_EXE_greyproxyd");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claude_code_conversation_is_one_otlp_trace_with_its_tokens_and_cost() {
    let Some(bins) = agents() else { return };
    let t = target().await;
    let cmd = format!("curl -s http://{t}/x");
    let mock = LlmMock::builder("127.0.0.112")
        .script(one_tool_round(
            "Bash",
            json!({"command": cmd, "description": "Fetch page x"}),
            "The page greets us.",
        ))
        .start()
        .await;
    let rx = OtlpReceiver::start("127.0.0.113", &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("greyproxyd.toml");
    std::fs::write(
        &cfg,
        format!(
            "[export.otlp]\nendpoint = \"{}\"\ninterval = \"200ms\"\n",
            rx.endpoint()
        ),
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
    drop(dir);
}
