//! The real agent CLIs (installed from npm by the kit, `greyproxy_testkit::agents`) through the
//! daemon against the mock LLM origin (`greyproxy_testkit::llm_mock`): the daemon maps
//! `api.anthropic.com` and `api.openai.com` to the mock (`--map-host`), intercepts TLS and
//! records every exchange; each agent's tool runs `curl` to a destination no rule covers, which
//! is held as a pending request until the test allows it. Skipped (with a message) where npm
//! is missing, failed under `CI=true`.
//!
//! What the pinned releases do (Claude Code 2.1.332, codex 0.171.0; measured here):
//!
//! * **Claude Code** (`claude -p`, native binary, runs as root with `--allowedTools
//!   "Bash(curl:*)"`). Env: `ANTHROPIC_API_KEY`, `HTTPS_PROXY`, `NODE_EXTRA_CA_CERTS`,
//!   `CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1`, a throwaway `HOME`; its Bash tool inherits
//!   the environment, and curl needs `http_proxy` in lower case. Calls, all on
//!   `api.anthropic.com`: `GET /api/claude_code/settings` and `GET /api/claude_code/policy_limits`
//!   (UA `claude-code/<v>`, no session header; a 404 is fine, a 200 `{}` makes it poll
//!   `policy_limits` again and again), then one `POST /v1/messages?beta=true` per step (UA
//!   `claude-cli/2.1.332 (external, sdk-cli)`, `x-claude-code-session-id`,
//!   `x-claude-code-request-class: main`, `anthropic-beta` list, `stream: true`, `thinking`
//!   enabled, `metadata.user_id` a JSON string `{"device_id","account_uuid":"","session_id"}`,
//!   `diagnostics.previous_message_id` naming the previous answer's id). `-p` makes no title
//!   or other utility call, and nothing reaches other hosts, even with nonessential traffic on.
//!   With `ANTHROPIC_BASE_URL` set it skips the `/api/claude_code/*` calls. It warns on stderr
//!   that Sonnet 4.5 is retired and goes on.
//! * **codex** (`codex exec --skip-git-repo-check`, Node launcher of a native binary). Env:
//!   `OPENAI_API_KEY`, `CODEX_HOME` (must exist), `SSL_CERT_FILE`, `HTTPS_PROXY`. WebSocket
//!   first: `GET /v1/responses` upgrade (`openai-beta: responses_websockets=2026-02-06`,
//!   offers permessage-deflate, `originator: codex_exec`, `session-id`, `thread-id`,
//!   `x-codex-window-id`, `x-codex-turn-metadata` JSON with `request_kind: prewarm`), then a
//!   `response.create` with `generate: false` (warm-up, full instructions and tools), then one
//!   `response.create` per step with `previous_response_id` and only the new input items (the
//!   second: just the `function_call_output`), `prompt_cache_key` = session id,
//!   `client_metadata`. Its shell tool is `exec_command` with `{"cmd": "…"}`; `exec
//!   --dangerously-bypass-approvals-and-sandbox` runs it outside the sandbox (the default
//!   read-only sandbox has no network). A refused upgrade (426) makes it fall back to `POST
//!   /v1/responses` (SSE) at once, logging one ERROR line; every step then resends the whole
//!   input. It also dials `github.com` at start (denied here; it does not wait for it) and,
//!   unless `[analytics] enabled = false`, `ab.chatgpt.com` at the end, waiting ~10 s for it.
//!   `gpt-5-mini` and unknown models get a "model metadata not found" warning and work.
//!   `OPENAI_BASE_URL` is ignored (config `openai_base_url` works); against an origin that
//!   refuses connections it retries for minutes.
//!
//! The tests check what the daemon recorded, and what the LLM layer made of it: one call per
//! step with the usage the mock reported (normalised) and the cost the price table implies, a
//! conversation with the right client, session and turns, `usage_summary` agreeing with the
//! calls, and the held request naming the tool call that caused it (`llm_context`).

use std::net::SocketAddr;

use greyproxy_testkit::agent_env::{AgentEnv, show};
use greyproxy_testkit::agents::{CLAUDE_CODE_VERSION, CODEX_VERSION, agents};
use greyproxy_testkit::llm_mock::{
    Answer, Api, CLAUDE_MODEL, LlmMock, MockUsage, OPENAI_MODEL, Transport, UNKNOWN_MODEL,
    tool_then_text,
};
use greyproxy_testkit::origin::http_origin;
use serde_json::{Value, json};

use crate::llm_checks::{
    Convention, assert_usage_summary, calls as llm_calls, conversations, normalised, table_cost,
};

const BIN: &str = env!("CARGO_BIN_EXE_greyproxyd");

/// The destination the agents' tools fetch: a plain HTTP origin no rule covers.
pub(crate) async fn target() -> SocketAddr {
    http_origin("127.0.0.9").await
}

/// What the origin answers to `GET /x`, which the second step must carry back.
fn target_body(t: SocketAddr) -> String {
    format!("hello from {t} GET /x")
}

/// Usage of the tool-call step (the numbers of Anthropic fixture 383) and of the final step.
pub(crate) const STEP1: MockUsage = MockUsage {
    input: 3,
    cache_creation: 5333,
    cache_read: 0,
    output: 148,
    reasoning: 0,
};
pub(crate) const STEP2: MockUsage = MockUsage {
    input: 10,
    cache_creation: 0,
    cache_read: 5333,
    output: 42,
    reasoning: 11,
};

/// Step 1 calls `tool` with `input`; step 2 (carrying the tool result) ends with `text`.
pub(crate) fn one_tool_round(
    tool: &str,
    input: Value,
    text: &str,
) -> greyproxy_testkit::llm_mock::Script {
    tool_then_text(
        Answer::tool(tool, input)
            .with_thinking("The user wants the page; curl it.")
            .with_usage(STEP1),
        Answer::text(text).with_usage(STEP2),
    )
}

/// Asserts the mock answered two calls of `api` on `transport`: a tool call, then the final
/// text after a request carrying the target's body as the tool result.
fn assert_two_steps(mock: &LlmMock, api: Api, transport: Transport, t: SocketAddr) {
    let calls: Vec<_> = mock
        .answered()
        .into_iter()
        .filter(|(c, _)| c.api == api)
        .collect();
    let summary: Vec<_> = calls
        .iter()
        .map(|(c, a)| (c.transport, c.tool_results(), a.tool_call.is_some()))
        .collect();
    assert_eq!(calls.len(), 2, "{summary:?}");
    assert!(
        calls.iter().all(|(c, _)| c.transport == transport),
        "{summary:?}"
    );
    assert!(calls[0].1.tool_call.is_some() && calls[0].0.tool_results().is_empty());
    let results = calls[1].0.tool_results();
    assert!(
        results.iter().any(|r| r.contains(&target_body(t))),
        "the second step carries the tool's output: {results:?}"
    );
}

/// Asserts the tool's own request went through the proxy once allowed.
async fn assert_tool_fetch(env: &mut AgentEnv, pending: &Value, t: SocketAddr) {
    assert_eq!(pending["container_name"], env.container.as_str());
    assert_eq!(pending["destination_host"], "127.0.0.9");
    let rows = env.transactions("127.0.0.9", 1).await;
    let want = format!("http://{t}/x");
    let row = rows.iter().find(|r| r["url"] == want.as_str());
    let row = row.unwrap_or_else(|| panic!("no transaction for {want}: {rows:?}"));
    assert_eq!(row["status_code"], 200, "{row}");
    assert_eq!(row["container_name"], env.container.as_str(), "{row}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_code_tool_call_is_held_and_every_call_recorded() {
    let Some(bins) = agents() else { return };
    let t = target().await;
    let cmd = format!("curl -s http://{t}/x");
    let mock = LlmMock::builder("127.0.0.110")
        .script(one_tool_round(
            "Bash",
            json!({"command": cmd, "description": "Fetch page x"}),
            "The page greets us.",
        ))
        .start()
        .await;
    let mut env = AgentEnv::start(BIN, mock, "claude", &["api.anthropic.com"], &[]).await;
    let cmd = env.claude(
        &bins.claude,
        "Fetch the page x with curl and tell me what it says.",
        CLAUDE_MODEL,
        &["--allowedTools", "Bash(curl:*)"],
    );
    let (pending, out) = env.run_allowing(cmd, t).await;
    assert!(out.status.success(), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("The page greets us."), "{}", show(&out));
    assert_two_steps(&env.mock, Api::AnthropicMessages, Transport::Http, t);
    assert_tool_fetch(&mut env, &pending, t).await;

    // The daemon recorded both model calls with the request and the streamed answer.
    let rows = env.transactions("api.anthropic.com", 2).await;
    let calls: Vec<&Value> = rows
        .iter()
        .filter(|r| r["method"] == "POST")
        .filter(|r| r["url"] == "https://api.anthropic.com/v1/messages?beta=true")
        .collect();
    assert_eq!(calls.len(), 2, "{rows:?}");
    for c in &calls {
        assert_eq!(c["status_code"], 200, "{c}");
        assert_eq!(c["container_name"], "claude", "{c}");
    }
    let first = env.transaction(&calls[0]["id"]).await;
    let ua = format!("claude-cli/{CLAUDE_CODE_VERSION}");
    let headers = first["request_headers"].to_string();
    assert!(headers.contains(&ua), "{headers}");
    assert!(headers.contains("X-Claude-Code-Session-Id"), "{headers}");
    let req: Value = serde_json::from_str(first["request_body"].as_str().unwrap()).unwrap();
    assert_eq!(req["model"], CLAUDE_MODEL);
    assert_eq!(req["stream"], true);
    let resp = first["response_body"].as_str().unwrap();
    for part in [
        "message_start",
        "input_json_delta",
        "\"stop_reason\":\"tool_use\"",
        "message_stop",
    ] {
        assert!(resp.contains(part), "{part} in {resp}");
    }
    // The side calls are recorded too (the mock answers them 404).
    let side: Vec<&Value> = rows
        .iter()
        .filter(|r| {
            r["url"]
                .as_str()
                .is_some_and(|u| u.contains("/api/claude_code/"))
        })
        .collect();
    assert!(!side.is_empty(), "{rows:?}");
    assert!(side.iter().all(|r| r["status_code"] == 404), "{side:?}");

    // The LLM layer: two calls, one conversation, the cost the table implies.
    let session = first["request_headers"]["X-Claude-Code-Session-Id"][0]
        .as_str()
        .or_else(|| first["request_headers"]["x-claude-code-session-id"][0].as_str())
        .unwrap_or_else(|| panic!("no session header: {headers}"))
        .to_string();
    let cs = llm_calls(&mut env.ws, "claude", 2).await;
    assert_eq!(cs.len(), 2, "{cs:?}");
    for (c, u) in cs.iter().zip([STEP1, STEP2]) {
        assert_eq!(c["client"], "claude-code", "{c}");
        assert_eq!(c["provider"], "anthropic", "{c}");
        assert_eq!(c["thread"], "main", "{c}");
        assert_eq!(c["session_id"], session.as_str(), "{c}");
        assert_eq!(c["model_requested"], CLAUDE_MODEL, "{c}");
        assert_eq!(c["usage"], normalised(Convention::Anthropic, u), "{c}");
        assert_eq!(c["cost"]["state"], "priced", "{c}");
        let want = table_cost(CLAUDE_MODEL, Convention::Anthropic, u).unwrap();
        assert_eq!(c["cost"]["micro_usd"], want, "{c}");
        assert!(c["ttft_ms"].as_u64().is_some(), "time to first token: {c}");
    }
    assert_eq!(cs[0]["stop_reason"], "tool_use");
    assert_eq!(cs[0]["tool_calls"][0]["name"], "Bash");
    assert_eq!(
        cs[0]["tool_calls"][0]["summary"],
        format!("curl -s http://{t}/x")
    );
    assert_eq!(cs[1]["stop_reason"], "end_turn");

    // The held request named the tool call behind it.
    let ctx = &pending["llm_context"];
    assert_eq!(ctx["tool"], "Bash", "{pending}");
    assert_eq!(ctx["summary"], format!("curl -s http://{t}/x"), "{pending}");
    assert_eq!(ctx["call_id"], cs[0]["id"], "{pending}");
    assert_eq!(
        ctx["conversation_id"], cs[0]["conversation_id"],
        "{pending}"
    );

    let convs = conversations(&mut env.ws, "claude", 2).await;
    assert_eq!(convs.len(), 1, "{convs:?}");
    let conv = &convs[0];
    assert_eq!(conv["id"], format!("claude-code:{session}"), "{conv}");
    assert_eq!(conv["client"], "claude-code");
    assert_eq!(conv["session_source"], "wire");
    assert_eq!(conv["status"], "answered", "{conv}");
    assert_eq!(conv["turn_count"], 1, "{conv}");
    assert_eq!(conv["totals"]["calls"], 2, "{conv}");
    let usages: Vec<Value> = cs.iter().map(|c| c["usage"].clone()).collect();
    assert_eq!(
        conv["totals"]["usage"],
        crate::llm_checks::sum_usage(&usages),
        "{conv}"
    );
    let cost: u64 = cs
        .iter()
        .map(|c| c["cost"]["micro_usd"].as_u64().unwrap())
        .sum();
    assert_eq!(conv["totals"]["cost_micro_usd"], cost, "{conv}");
    let full = env
        .ws
        .query(json!({"command":"get_conversation","conversation_id":conv["id"]}))
        .await;
    let turn = &full["turns"][0];
    assert!(
        turn["user_prompt"]
            .as_str()
            .unwrap_or("")
            .contains("Fetch the page x"),
        "{turn}"
    );
    let steps = turn["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "{turn}");
    let tool = &steps[0]["tool_calls"][0];
    assert_eq!(tool["name"], "Bash", "{turn}");
    assert!(
        tool["result_preview"]
            .as_str()
            .unwrap_or("")
            .contains(&target_body(t)),
        "the tool's result is attached to its call: {turn}"
    );
    assert!(
        steps[1]["text"]
            .as_str()
            .unwrap_or("")
            .contains("The page greets us.")
    );
    assert_usage_summary(&mut env.ws, "claude", &cs).await;
}

/// One codex run with a tool round; `websocket` says whether the mock accepts the upgrade.
async fn codex_run(ip: &str, websocket: bool, model: &str) -> AgentEnv {
    let Some(bins) = agents() else {
        panic!("checked by the caller")
    };
    let t = target().await;
    let mock = LlmMock::builder(ip)
        .websocket(websocket)
        .script(one_tool_round(
            "exec_command",
            // codex hands the model a command's output after `yield_time_ms` (10 s unless
            // asked, 30 s at most) whether or not it finished: the held curl must be allowed
            // within that, which a loaded machine can miss by 10 s.
            json!({"cmd": format!("curl -s http://{t}/x"), "yield_time_ms": 30000}),
            "The page greets us.",
        ))
        .start()
        .await;
    let mut env = AgentEnv::start(
        BIN,
        mock,
        "codex",
        &["api.openai.com"],
        &["github.com", "**.chatgpt.com"],
    )
    .await;
    let cmd = env.codex(
        &bins.codex,
        "Fetch the page x with curl and tell me what it says.",
        model,
        &["--dangerously-bypass-approvals-and-sandbox"],
    );
    let (pending, out) = env.run_allowing(cmd, t).await;
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("The page greets us."),
        "{}",
        show(&out)
    );
    let transport = if websocket {
        Transport::WebSocket
    } else {
        Transport::Http
    };
    assert_two_steps(&env.mock, Api::OpenAiResponses, transport, t);
    assert_tool_fetch(&mut env, &pending, t).await;
    assert_codex_llm(&mut env, &pending, model, websocket, t).await;
    env
}

/// The LLM layer's view of a codex run: two generating calls (plus the warm-up over the
/// WebSocket) with the mock's usage, one conversation of one turn, the tool call named by the
/// held request; a model the table lacks is unpriced.
async fn assert_codex_llm(
    env: &mut AgentEnv,
    pending: &Value,
    model: &str,
    websocket: bool,
    t: SocketAddr,
) {
    let n = if websocket { 3 } else { 2 };
    let all = llm_calls(&mut env.ws, "codex", n).await;
    let cs: Vec<Value> = all
        .iter()
        .filter(|c| c["usage"]["output_tokens"].as_u64().unwrap_or(0) > 0)
        .cloned()
        .collect();
    assert_eq!(cs.len(), 2, "{all:?}");
    let decoder = if websocket { "openai-ws" } else { "openai" };
    for (c, u) in cs.iter().zip([STEP1, STEP2]) {
        assert_eq!(c["client"], "codex", "{c}");
        assert_eq!(c["decoder"], decoder, "{c}");
        assert_eq!(c["usage"], normalised(Convention::OpenAi, u), "{c}");
        match table_cost(model, Convention::OpenAi, u) {
            Some(want) => {
                assert_eq!(c["cost"]["state"], "priced", "{c}");
                assert_eq!(c["cost"]["micro_usd"], want, "{c}");
            }
            None => {
                assert_eq!(c["cost"]["state"], "unpriced", "{c}");
                assert!(c["cost"].get("micro_usd").is_none(), "{c}");
            }
        }
        if websocket {
            assert!(c["upgrade_id"].as_u64().is_some(), "{c}");
        }
    }
    assert_eq!(cs[0]["tool_calls"][0]["name"], "exec_command", "{}", cs[0]);
    assert_eq!(
        cs[0]["tool_calls"][0]["summary"],
        format!("curl -s http://{t}/x")
    );
    let ctx = &pending["llm_context"];
    assert_eq!(ctx["tool"], "exec_command", "{pending}");
    assert_eq!(ctx["call_id"], cs[0]["id"], "{pending}");

    let convs = conversations(&mut env.ws, "codex", all.len() as u64).await;
    let main: Vec<&Value> = convs.iter().filter(|c| c["thread"] == "main").collect();
    assert_eq!(main.len(), 1, "{convs:?}");
    let conv = main[0];
    assert_eq!(conv["client"], "codex", "{conv}");
    assert_eq!(conv["turn_count"], 1, "{conv}");
    assert_eq!(conv["status"], "answered", "{conv}");
    let sum: u64 = all
        .iter()
        .map(|c| c["usage"]["input_tokens"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(conv["totals"]["usage"]["input_tokens"], sum, "{conv}");
    if table_cost(model, Convention::OpenAi, STEP1).is_none() {
        assert!(
            conv["totals"]["unpriced_calls"].as_u64() >= Some(2),
            "{conv}"
        );
    }
    assert_usage_summary(&mut env.ws, "codex", &all).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_over_the_websocket_is_recorded_message_by_message() {
    if agents().is_none() {
        return;
    }
    let mut env = codex_run("127.0.0.111", true, OPENAI_MODEL).await;
    // The mock saw the warm-up and two steps on one connection.
    let sent: Vec<Value> = env
        .mock
        .requests()
        .iter()
        .filter(|r| r.transport == Transport::WebSocket)
        .map(|r| r.json())
        .collect();
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert_eq!(sent[0]["generate"], false);
    assert_eq!(
        sent[2]["previous_response_id"], "resp_mock_2",
        "{}",
        sent[2]
    );

    let rows = env.transactions("api.openai.com", 4).await;
    let upgrade = rows
        .iter()
        .find(|r| r["method"] == "GET" && r["status_code"] == 101)
        .unwrap_or_else(|| panic!("no upgrade row: {rows:?}"));
    let up = env.transaction(&upgrade["id"]).await;
    let ua = format!("codex_exec/{CODEX_VERSION}");
    let headers = up["request_headers"].to_string();
    assert!(
        headers.contains(&ua) && headers.contains("responses_websockets"),
        "{headers}"
    );
    let messages: Vec<&Value> = rows
        .iter()
        .filter(|r| r["upgrade_id"] == upgrade["id"])
        .collect();
    let reqs: Vec<&&Value> = messages
        .iter()
        .filter(|m| m["method"] == "WS_REQ")
        .collect();
    assert_eq!(reqs.len(), 3, "{messages:?}");
    assert!(
        messages
            .iter()
            .all(|m| m["url"] == "wss://api.openai.com/v1/responses")
    );
    // The answer's last event, with the usage, is one WS_RESP row.
    let mut completed = 0;
    for m in messages.iter().filter(|m| m["method"] == "WS_RESP") {
        let full = env.transaction(&m["id"]).await;
        let body: Value = serde_json::from_str(full["request_body"].as_str().unwrap()).unwrap();
        if body["type"] == "response.completed" && body["response"]["usage"]["output_tokens"] != 0 {
            completed += 1;
        }
    }
    assert_eq!(completed, 2, "two generating steps completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_falls_back_to_https_sse_when_the_upgrade_is_refused() {
    if agents().is_none() {
        return;
    }
    let mut env = codex_run("127.0.0.112", false, UNKNOWN_MODEL).await;
    let refused = |rows: &[Value]| {
        rows.iter()
            .filter(|r| r["method"] == "GET" && r["status_code"] == 426)
            .count()
    };
    let posts = |rows: &[Value]| -> Vec<Value> {
        rows.iter()
            .filter(|r| r["method"] == "POST" && r["url"] == "https://api.openai.com/v1/responses")
            .cloned()
            .collect()
    };
    let rows = env
        .transactions_until("api.openai.com", |rows| {
            refused(rows) >= 1 && posts(rows).len() >= 2
        })
        .await;
    assert!(
        refused(&rows) >= 1,
        "the WebSocket attempt is recorded: {rows:?}"
    );
    let posts = posts(&rows);
    assert_eq!(posts.len(), 2, "{rows:?}");
    let last = env.transaction(&posts[1]["id"]).await;
    assert_eq!(last["response_content_type"], "text/event-stream", "{last}");
    let req: Value = serde_json::from_str(last["request_body"].as_str().unwrap()).unwrap();
    assert_eq!(req["model"], UNKNOWN_MODEL);
    let resp = last["response_body"].as_str().unwrap();
    assert!(resp.contains("event: response.completed"), "{resp}");
    assert!(resp.contains("\"cached_tokens\":5333"), "{resp}");
}
