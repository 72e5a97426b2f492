//! The human output of the LLM `--once` commands from sample data: exact numbers, dollars, the
//! total row, turns and steps, and model output escaped.
#![allow(clippy::unwrap_used)]

use greyproxy_protocol::llm::{StepToolCall, ToolCallInfo};
use serde_json::json;

use super::*;
use crate::sample::usage::{call, summary};

fn text(f: impl FnOnce(&mut Vec<u8>) -> Result<(), Failure>) -> String {
    let mut out = Vec::new();
    f(&mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn usage_table_counts_exactly_and_ends_with_the_total() {
    let s: UsageSummary = serde_json::from_value(summary("container")).unwrap();
    assert_eq!(
        text(|o| print_usage(o, UsageBy::Container, &s)),
        "\
CONTAINER    CALLS  INPUT      CACHED     OUTPUT  COST     UNPRICED  CACHE HIT  TTFT P50
claude-code  42     1,234,567  1,002,003  34,210  $3.2150  0         81%        612ms
codex        9      88,000     70,400     9,100   $0.0955  0         80%        410ms
opencode     17     240,500    120,000    12,034  $0.0000  17        50%        1.2s
aider        2      3,100      0          820     $0.0000  2         0%         —
TOTAL        70     1,566,167  1,192,403  56,164  $3.3105  19        76%        600ms
"
    );
    let s: UsageSummary = serde_json::from_value(summary("model")).unwrap();
    let t = text(|o| print_usage(o, UsageBy::Model, &s));
    assert!(t.starts_with("MODEL  "), "{t}");
    assert!(t.contains("\nevil\\x1b[2J-model  "), "escaped: {t}");
    let empty = UsageSummary {
        since: String::new(),
        rows: Vec::new(),
        total: s.total.clone(),
    };
    assert_eq!(
        text(|o| print_usage(o, UsageBy::Day, &empty)),
        "no LLM calls\n"
    );
}

#[test]
fn usage_by_day_is_in_date_order() {
    let mut v = summary("container");
    v["rows"][0]["key"] = json!("2026-11-22");
    v["rows"][1]["key"] = json!("2026-11-20");
    v["rows"][2]["key"] = json!("2026-11-21");
    v["rows"].as_array_mut().unwrap().truncate(3);
    let s: UsageSummary = serde_json::from_value(v).unwrap();
    let t = text(|o| print_usage(o, UsageBy::Day, &s));
    let days: Vec<&str> = t.lines().skip(1).map(|l| &l[..10]).collect();
    assert_eq!(
        days,
        ["2026-11-20", "2026-11-21", "2026-11-22", "TOTAL     "]
    );
}

#[test]
fn calls_table_shows_cost_state_stop_and_tools() {
    let mut a = call("dev", "claude-sonnet-4-5", 5_336, 148, 22_233);
    a.id = 57;
    a.stop_reason = Some("tool_use".into());
    a.tool_calls = vec![ToolCallInfo {
        id: "toolu_1".into(),
        name: "Bash".into(),
        summary: "npm install left-pad\u{1b}[31m".into(),
        input_preview: String::new(),
    }];
    let mut b = call("dev", "mock-frontier-9-preview", 12, 7, 0);
    b.id = 56;
    b.ttft_ms = None;
    b.error = Some("stream ended early".into());
    let t = text(|o| print_calls(o, &[a, b]));
    assert_eq!(
        t,
        "\
ID  TIME                 CONTAINER  CLIENT       MODEL                    INPUT  CACHED  OUTPUT  COST      TTFT   DURATION  STOP
57  2026-11-22 10:00:00  dev        claude-code  claude-sonnet-4-5        5,336  1,778   148     $0.0222   600ms  2.4s      tool_use · Bash: npm install left-pad\\x1b[31m
56  2026-11-22 10:00:00  dev        opencode     mock-frontier-9-preview  12     4       7       unpriced  —      2.4s      error: stream ended early
"
    );
    assert_eq!(text(|o| print_calls(o, &[])), "no LLM calls\n");
}

fn conversation() -> Conversation {
    let summary: ConversationSummary = serde_json::from_value(json!({
        "id": "claude-code:33a9", "session_id": "33a9", "session_source": "wire",
        "thread": "main", "container_name": "dev", "client": "claude-code",
        "provider": "anthropic", "models": ["claude-sonnet-4-5-20250929"],
        "status": "answered", "started_at": "2026-11-22T09:58:00.000Z",
        "last_activity": "2026-11-22T10:00:00.000Z", "turn_count": 1,
        "title": "install left-pad\u{7}",
        "totals": {"calls": 2, "usage": {"input_tokens": 10_672, "cache_read_tokens": 5_000,
            "cache_write_tokens": 5_333, "output_tokens": 300, "reasoning_tokens": 20},
            "cost_micro_usd": 44_466, "unpriced_calls": 1, "duration_ms": 4_800},
        "context_tokens": 5_336, "context_window": 200_000
    }))
    .unwrap();
    let tool = |name: &str, summary: &str| ToolCallInfo {
        id: "toolu_1".into(),
        name: name.into(),
        summary: summary.into(),
        input_preview: String::new(),
    };
    Conversation {
        summary,
        system_prompt_preview: String::new(),
        subagents: vec!["claude-code:33a9/agent-1".into()],
        turns: vec![Turn {
            number: 1,
            user_prompt: "please\r\ninstall \u{1b}]0;pwned\u{7}left-pad".into(),
            call_ids: vec![57, 58],
            started_at: "2026-11-22T09:58:00.000Z".into(),
            ended_at: "2026-11-22T10:00:00.000Z".into(),
            steps: vec![
                Step {
                    call_id: 57,
                    text: "Let me install it.".into(),
                    thinking_preview: "The user wants\nleft-pad.".into(),
                    tool_calls: vec![
                        StepToolCall {
                            call: tool("Bash", "npm install left-pad"),
                            result_preview: Some("npm ERR! 404".into()),
                            is_error: true,
                            linked_conversation_id: None,
                        },
                        StepToolCall {
                            call: tool("Task", "find a mirror"),
                            result_preview: Some("use the cache".into()),
                            is_error: false,
                            linked_conversation_id: Some("claude-code:33a9/agent-1".into()),
                        },
                    ],
                },
                Step {
                    call_id: 58,
                    text: "Done.".into(),
                    thinking_preview: String::new(),
                    tool_calls: Vec::new(),
                },
            ],
        }],
    }
}

#[test]
fn a_conversation_turn_by_turn_with_its_tools_and_escapes() {
    let t = text(|o| print_conversation(o, &conversation()));
    assert_eq!(
        t,
        "\
conversation   claude-code:33a9
title          install left-pad\\x07
status         answered
container      dev
client         claude-code · anthropic · session 33a9 (from the wire) · main thread
models         claude-sonnet-4-5-20250929
time           2026-11-22 09:58:00 → 2026-11-22 10:00:00
turns          1 · calls 2
tokens         input 10,672 (cache reads 5,000, writes 5,333) · output 300 (reasoning 20)
cost           $0.0445 +1 unpriced
context        5,336 of 200,000 tokens (3%)
subagents      claude-code:33a9/agent-1

Turn 1 · 2026-11-22 09:58:00 → 10:00:00 · calls 57, 58
  user        please
              install \\x1b]0;pwned\\x07left-pad
  thinking    The user wants
              left-pad.
  assistant   Let me install it.
  tool        Bash: npm install left-pad
              ✗ error: npm ERR! 404
  tool        Task: find a mirror
              ✓ use the cache
              ↳ subagent claude-code:33a9/agent-1
  assistant   Done.
"
    );
}

#[test]
fn empty_conversation_list_says_so() {
    assert_eq!(
        text(|o| print_conversations(o, &[], SystemTime::now())),
        "no conversations\n"
    );
    let c = conversation().summary;
    let now = crate::format::parse_time("2026-11-22T10:05:00Z").unwrap();
    let t = text(|o| print_conversations(o, &[c], now));
    assert_eq!(
        t.lines().nth(1).unwrap(),
        "claude-code:33a9  answered  dev        claude-code  claude-sonnet-4-5-20250929  1      2      10,672  300     $0.0445 +1 unpriced  5m    install left-pad\\x07"
    );
}

#[test]
fn a_conversation_decodes_as_the_daemon_serialises_it() {
    let c = conversation();
    let wire = serde_json::to_value(&c).unwrap();
    assert!(wire["turns"].is_array());
    assert_eq!(wire["turn_count"], c.summary.turns);
    assert_eq!(serde_json::from_value::<Conversation>(wire).unwrap(), c);
}
