//! The real Claude Code CLI (installed from npm by the test kit, `greyproxy_testkit::agents`)
//! through a real daemon against the mock LLM origin, watched and decided in the dashboard: its
//! conversation appears live while its tool's request is still held; the held request shows the
//! tool call behind it; `a` in the dashboard lets it through and the agent finishes with the
//! answer built on what the tool fetched; the conversation then shows both steps. Skipped (with
//! a message) where npm is missing, failed under `CI=true`.

use std::time::Duration;

use crate::common::daemon_bin;
use crate::llm::{Harness, h_screen, has_line};

use greyproxy_testkit::agent_env::{AGENT_WAIT, AgentEnv, show};
use greyproxy_testkit::agents::agents;
use greyproxy_testkit::llm_mock::{Answer, CLAUDE_MODEL, LlmMock, MockUsage, tool_then_text};
use greyproxy_testkit::origin::http_origin;
use greytui::app::View;
use serde_json::json;

/// The usage the mock reports for the tool-call step and the final one.
const STEP1: MockUsage = MockUsage {
    input: 3,
    cache_creation: 5333,
    cache_read: 0,
    output: 148,
    reasoning: 0,
};
const STEP2: MockUsage = MockUsage {
    input: 10,
    cache_creation: 0,
    cache_read: 5333,
    output: 42,
    reasoning: 0,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_code_live_in_the_dashboard_and_its_held_request_decided_there() {
    let Some(bins) = agents() else { return };
    let target = http_origin("127.0.0.151").await;
    let command = format!("curl -s http://{target}/x");
    let mock = LlmMock::builder("127.0.0.150")
        .script(tool_then_text(
            Answer::tool(
                "Bash",
                json!({"command": command, "description": "Fetch page x"}),
            )
            .with_usage(STEP1),
            Answer::text("The page greets us.").with_usage(STEP2),
        ))
        .start()
        .await;
    let bin = daemon_bin().display().to_string();
    let env = AgentEnv::start(&bin, mock, "claude", &["api.anthropic.com"], &[]).await;

    // The dashboard, on the Conversations view, before the agent starts.
    let mut h = Harness::new(env.d.state_dir().to_path_buf());
    h.until_within(AGENT_WAIT, "connected", |a| a.claimed).await;
    h.keys("5").await;
    h.until_within(AGENT_WAIT, "the empty conversation list", |a| {
        a.view == View::Conversations && !has_line(&h_screen(a), &["Loading"])
    })
    .await;

    let agent = env
        .claude(
            &bins.claude,
            "Fetch the page x with curl and tell me what it says.",
            CLAUDE_MODEL,
            &["--allowedTools", "Bash(curl:*)"],
        )
        .spawn()
        .expect("claude starts");
    let mut run = tokio::spawn(async move {
        tokio::time::timeout(AGENT_WAIT, agent.wait_with_output())
            .await
            .expect("the agent finishes")
            .unwrap()
    });

    // Live: the first call's conversation is on screen while the tool's request is held (the
    // agent cannot go on before the human decides).
    h.until_within(AGENT_WAIT, "Claude Code's conversation, live", |a| {
        has_line(&h_screen(a), &["claude", "claude-code", CLAUDE_MODEL, "$"])
    })
    .await;
    assert!(!run.is_finished(), "the agent waits for the held request");

    // Pending: the held request, with the tool call that asked for it.
    h.keys("1").await;
    let host = target.ip().to_string();
    h.until_within(
        Duration::from_secs(30),
        "the held request with its why",
        |a| {
            a.pending
                .iter()
                .any(|p| p.destination_host == host && p.llm_context.is_some())
        },
    )
    .await;
    let p = h.app.pending[0].clone();
    assert_eq!(p.container_name, "claude");
    let ctx = p.llm_context.clone().unwrap();
    assert_eq!(ctx.tool, "Bash");
    assert_eq!(ctx.summary, command);
    let screen = h.screen();
    assert!(
        has_line(&screen, &["↳ $ Bash: curl -s http://", &host]),
        "{screen}"
    );
    assert!(!run.is_finished(), "the agent still waits");

    // `a` in the dashboard lets it through; the agent finishes with the tool's output.
    h.keys("a").await;
    let out = tokio::select! {
        out = &mut run => out.unwrap(),
        () = async {
            // Keep the dashboard's link drained while the agent runs.
            h.until_within(AGENT_WAIT, "the agent to finish", |_| false).await;
        } => unreachable!(),
    };
    assert!(out.status.success(), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("The page greets us."), "{}", show(&out));
    h.until_within(AGENT_WAIT, "the pending row to go", |a| {
        a.pending.is_empty()
    })
    .await;

    // The conversation now has both calls: 148 + 42 output tokens.
    h.keys("5").await;
    h.until_within(AGENT_WAIT, "the conversation with both calls", |a| {
        has_line(
            &h_screen(a),
            &["claude", "claude-code", CLAUDE_MODEL, "190"],
        )
    })
    .await;
    // Today's cost in the status bar catches up with the conversation's.
    let row = h.screen();
    let cost = row
        .lines()
        .find(|l| l.contains("claude-code"))
        .and_then(|l| l.split_whitespace().find(|w| w.starts_with('$')))
        .map(str::to_string)
        .unwrap();
    let today = format!("{cost} today");
    h.until_within(AGENT_WAIT, "today's cost in the status bar", |a| {
        has_line(&h_screen(a), &["● connected", &today])
    })
    .await;
}
