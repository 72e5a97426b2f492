//! The LLM layer end to end with curl as the client (the real agents are in `agents`): calls
//! and conversations survive a restart and `rebuild_conversations` reproduces them; traffic
//! stored while the layer was off is read when it is turned on; an unknown host that receives a
//! chat call is proposed, and recognised once a rule is created over `/ws`.

use greyproxy_testkit::agent_env::rule;
use greyproxy_testkit::llm_mock::through::{claude_code_body, post};
use greyproxy_testkit::llm_mock::{
    Answer, CLAUDE_MODEL, LlmMock, MockUsage, UNKNOWN_MODEL, always,
};
use greyproxy_testkit::{Control, Daemon, DaemonBuilder};
use serde_json::{Value, json};

use crate::llm_checks::{Convention, calls, conversations, normalised, table_cost};

const BIN: &str = env!("CARGO_BIN_EXE_greyproxyd");
const SESSION: &str = "0d6b1b39-3a6f-4b4e-9e51-8a1c2f0e7d11";
const USAGE: MockUsage = MockUsage {
    input: 12,
    cache_creation: 300,
    cache_read: 1000,
    output: 40,
    reasoning: 0,
};

/// A daemon in front of the mock for `api.anthropic.com`, `api.openai.com` and
/// `llm.internal.test`, with extra `args`.
async fn daemon(mock: &LlmMock, args: &[&str], dir: Option<tempfile::TempDir>) -> Daemon {
    let ip = mock.ip();
    let maps: Vec<String> = ["api.anthropic.com", "api.openai.com", "llm.internal.test"]
        .iter()
        .map(|h| format!("{h}={ip}"))
        .collect();
    let ca = mock.ca_pem().display().to_string();
    let mut all = vec!["--upstream-ca", &ca];
    for m in &maps {
        all.extend(["--map-host", m.as_str()]);
    }
    all.extend(args);
    let b = DaemonBuilder::new(BIN).args(&all);
    match dir {
        Some(d) => b.start_in(d).await,
        None => b.start().await,
    }
}

async fn allow_apis(ws: &mut Control) {
    for h in ["api.anthropic.com", "api.openai.com", "llm.internal.test"] {
        rule(ws, "dev", h, "allow").await;
    }
}

fn anthropic_body(prompt: &str) -> Value {
    claude_code_body(SESSION, prompt)
}

fn chat_body(model: &str) -> Value {
    json!({"model": model, "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role":"user","content":"hello"}]})
}

/// Calls as comparable facts (ids aside): request row, conversation, turn, usage, cost.
fn facts(calls: &[Value]) -> Vec<Value> {
    let mut v: Vec<Value> = calls
        .iter()
        .map(|c| {
            json!([
                c["transaction_id"],
                c["conversation_id"],
                c["turn"],
                c["usage"],
                c["cost"],
                c["client"],
                c["thread"]
            ])
        })
        .collect();
    v.sort_by_key(|f| f[0].as_u64());
    v
}

fn conv_facts(convs: &[Value]) -> Vec<Value> {
    let mut v: Vec<Value> = convs
        .iter()
        .map(|c| {
            json!([
                c["id"],
                c["turn_count"],
                c["totals"],
                c["status"],
                c["client"]
            ])
        })
        .collect();
    v.sort_by_key(|f| f[0].as_str().map(str::to_owned));
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_and_conversations_survive_a_restart_and_a_rebuild_reproduces_them() {
    let mock = LlmMock::builder("127.0.0.121")
        .script(always(Answer::text("Sure.").with_usage(USAGE)))
        .start()
        .await;
    let d = daemon(&mock, &[], None).await;
    let mut ws = d.client().await;
    allow_apis(&mut ws).await;
    let messages = "https://api.anthropic.com:443/v1/messages?beta=true";
    post(
        &d,
        &mock,
        messages,
        "claude-cli/2.1.0 (external, cli)",
        &anthropic_body("first"),
    )
    .await;
    post(
        &d,
        &mock,
        messages,
        "claude-cli/2.1.0 (external, cli)",
        &anthropic_body("second"),
    )
    .await;
    let chat = "https://api.openai.com:443/v1/chat/completions";
    post(&d, &mock, chat, "opencode/1.0", &chat_body(UNKNOWN_MODEL)).await;

    let before = calls(&mut ws, "dev", 3).await;
    assert_eq!(before.len(), 3, "{before:?}\n{}", d.log());
    let (claude, other): (Vec<&Value>, Vec<&Value>) =
        before.iter().partition(|c| c["provider"] == "anthropic");
    assert_eq!(claude.len(), 2);
    for c in &claude {
        assert_eq!(c["client"], "claude-code", "{c}");
        assert_eq!(c["session_id"], SESSION, "{c}");
        assert_eq!(
            c["conversation_id"],
            format!("claude-code:{SESSION}"),
            "{c}"
        );
        assert_eq!(c["usage"], normalised(Convention::Anthropic, USAGE), "{c}");
        let want = table_cost(CLAUDE_MODEL, Convention::Anthropic, USAGE).unwrap();
        assert_eq!(c["cost"]["micro_usd"], want, "{c}");
    }
    // The second prompt is a second turn.
    let turns: Vec<&Value> = claude.iter().map(|c| &c["turn"]).collect();
    assert!(
        turns.contains(&&json!(1)) && turns.contains(&&json!(2)),
        "{turns:?}"
    );
    let chat_call = other[0];
    assert_eq!(chat_call["client"], "opencode", "{chat_call}");
    assert_eq!(chat_call["decoder"], "openai-chat");
    assert_eq!(
        chat_call["usage"],
        normalised(Convention::OpenAi, USAGE),
        "{chat_call}"
    );
    assert_eq!(chat_call["cost"]["state"], "unpriced", "{chat_call}");

    let convs_before = conversations(&mut ws, "dev", 2).await;
    let claude_conv = convs_before
        .iter()
        .find(|c| c["client"] == "claude-code")
        .unwrap_or_else(|| panic!("{convs_before:?}"));
    assert_eq!(claude_conv["turn_count"], 2, "{claude_conv}");
    assert_eq!(claude_conv["title"], "first", "{claude_conv}");
    assert_eq!(claude_conv["context_window"], 200_000, "{claude_conv}");

    // A restart keeps everything.
    ws.close().await;
    let d = d.restart().await;
    let mut ws = d.client().await;
    let after = calls(&mut ws, "dev", 3).await;
    assert_eq!(facts(&after), facts(&before));
    let convs_after = conversations(&mut ws, "dev", 2).await;
    assert_eq!(conv_facts(&convs_after), conv_facts(&convs_before));

    // A rebuild reads the stored transactions again and arrives at the same place.
    let r = ws.query(json!({"command":"rebuild_conversations"})).await;
    assert_eq!(r["calls"], 3, "{r}");
    let done = ws
        .event_where("maintenance.progress", |d| d["finished"] == true)
        .await;
    assert_eq!(done["data"]["calls"], 3, "{done}");
    assert_eq!(done["data"]["done"], r["transactions"], "{done}");
    let rebuilt = calls(&mut ws, "dev", 3).await;
    assert_eq!(facts(&rebuilt), facts(&before));
    let convs_rebuilt = conversations(&mut ws, "dev", 2).await;
    assert_eq!(conv_facts(&convs_rebuilt), conv_facts(&convs_before));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_stored_while_the_layer_was_off_is_read_when_it_comes_on() {
    let mock = LlmMock::builder("127.0.0.122")
        .script(always(Answer::text("Sure.").with_usage(USAGE)))
        .start()
        .await;
    let cfg_dir = tempfile::tempdir().unwrap();
    let off = cfg_dir.path().join("off.toml");
    std::fs::write(&off, "[llm]\nenabled = false\n").unwrap();
    let off = off.display().to_string();
    let d = daemon(&mock, &["--config", &off], None).await;
    let mut ws = d.client().await;
    allow_apis(&mut ws).await;
    let messages = "https://api.anthropic.com:443/v1/messages";
    post(
        &d,
        &mock,
        messages,
        "claude-cli/2.1.0",
        &anthropic_body("while off"),
    )
    .await;
    let r = ws.cmd(json!({"command":"list_llm_calls"})).await;
    assert_eq!(r["type"], "error", "{r}");
    assert!(
        r["error"].as_str().unwrap().contains("LLM layer is off"),
        "{r}"
    );
    ws.close().await;
    let dir = d.stop().await;

    let d = daemon(&mock, &[], Some(dir)).await;
    let mut ws = d.client().await;
    let found = calls(&mut ws, "dev", 1).await;
    assert_eq!(found.len(), 1, "{found:?}\n{}", d.log());
    assert_eq!(found[0]["usage"], normalised(Convention::Anthropic, USAGE));
    // Only once: a further restart does not read them again.
    ws.close().await;
    let d = d.restart().await;
    let mut ws = d.client().await;
    post(
        &d,
        &mock,
        messages,
        "claude-cli/2.1.0",
        &anthropic_body("after"),
    )
    .await;
    let all = calls(&mut ws, "dev", 2).await;
    assert_eq!(all.len(), 2, "{all:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_chat_host_is_proposed_and_recognised_once_a_rule_exists() {
    let mock = LlmMock::builder("127.0.0.123")
        .names(&["llm.internal.test"])
        .script(always(Answer::text("Sure.").with_usage(USAGE)))
        .start()
        .await;
    let d = daemon(&mock, &[], None).await;
    let mut ws = d.client().await;
    allow_apis(&mut ws).await;
    let url = "https://llm.internal.test:443/v1/chat/completions";
    post(&d, &mock, url, "my-agent/1", &chat_body("local-model")).await;
    let p = ws.event("endpoint_rule.proposed").await;
    assert_eq!(p["data"]["host"], "llm.internal.test", "{p}");
    assert_eq!(p["data"]["path"], "/v1/chat/completions", "{p}");
    assert_eq!(p["data"]["decoder"], "openai-chat", "{p}");
    let listed = ws.query(json!({"command":"list_endpoint_rules"})).await;
    assert_eq!(listed["proposals"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(
        listed["rules"].as_array().unwrap().len(),
        7,
        "nothing created by itself"
    );
    let none = ws.query(json!({"command":"list_llm_calls"})).await;
    assert_eq!(none["calls"], json!([]), "{none}");

    let created = ws
        .query(
            json!({"command":"create_endpoint_rule","host":"llm.internal.test",
                      "path":"/v1/chat/completions","decoder":"openai-chat"}),
        )
        .await;
    assert_eq!(created["id"], 100, "{created}");
    let listed = ws.query(json!({"command":"list_endpoint_rules"})).await;
    assert_eq!(listed["proposals"], json!([]), "{listed}");
    post(&d, &mock, url, "my-agent/1", &chat_body("local-model")).await;
    let found = calls(&mut ws, "dev", 1).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["host"], "llm.internal.test");
    assert_eq!(found[0]["client"], "other");
    assert_eq!(found[0]["session_source"], "inferred", "{}", found[0]);
    assert_eq!(found[0]["cost"]["state"], "unpriced");

    // Bad rules are refused with a reason; built-ins cannot be deleted.
    let r = ws
        .cmd(json!({"command":"create_endpoint_rule","host":"x","path":"/v1","decoder":"klingon"}))
        .await;
    assert!(
        r["error"].as_str().unwrap().contains("unknown decoder"),
        "{r}"
    );
    let r = ws
        .cmd(json!({"command":"delete_endpoint_rule","rule_id":1}))
        .await;
    assert!(r["error"].as_str().unwrap().contains("built in"), "{r}");
    // The rule survives a restart.
    ws.close().await;
    let d = d.restart().await;
    let mut ws = d.client().await;
    let listed = ws.query(json!({"command":"list_endpoint_rules"})).await;
    assert_eq!(listed["rules"].as_array().unwrap().len(), 8, "{listed}");
}
