//! Sample LLM calls and usage summaries at the samples' fixed clock: the Usage view's
//! state-machine tests, render snapshots and documentation captures, and the LLM benchmark.

use std::time::Duration;

use greyproxy_protocol::llm::{
    Cost, LlmCall, LlmClient, LlmThread, PriceState, SessionSource, Usage,
};
use serde_json::{Value, json};

use super::{now, result_reply};
use crate::app::usage_live::Live;
use crate::app::{App, Msg, Tag};
use crate::link::LinkEvent;

/// An answered call from `container` to `model` with `input` (a third of it from the cache)
/// and `output` tokens; `micro_usd` 0 makes it unpriced. The client follows the model's name:
/// `claude…` Claude Code, `gpt…` codex, anything else opencode.
pub fn call(container: &str, model: &str, input: u64, output: u64, micro_usd: u64) -> LlmCall {
    let client = if model.starts_with("claude") {
        LlmClient::ClaudeCode
    } else if model.starts_with("gpt") {
        LlmClient::Codex
    } else {
        LlmClient::Opencode
    };
    LlmCall {
        id: 1,
        transaction_id: 1,
        response_transaction_ids: Vec::new(),
        upgrade_id: None,
        timestamp: super::NOW.into(),
        container_name: container.into(),
        client,
        provider: "anthropic".into(),
        operation: "chat".into(),
        decoder: "anthropic".into(),
        host: "api.anthropic.com".into(),
        model_requested: Some(model.into()),
        model_answered: Some(model.into()),
        response_id: None,
        session_id: Some("s1".into()),
        session_source: SessionSource::Wire,
        thread: LlmThread::Main,
        conversation_id: Some(format!("{}:s1", client.as_str())),
        turn: Some(1),
        stream: true,
        stop_reason: Some("end_turn".into()),
        status_code: Some(200),
        duration_ms: Some(2_400),
        ttft_ms: Some(600),
        tool_calls: Vec::new(),
        last_text: None,
        error: None,
        usage: Some(Usage {
            input_tokens: input,
            cache_read_tokens: input / 3,
            output_tokens: output,
            ..Usage::default()
        }),
        usage_raw: None,
        cost: Cost {
            state: if micro_usd > 0 {
                PriceState::Priced
            } else {
                PriceState::Unpriced
            },
            micro_usd: (micro_usd > 0).then_some(micro_usd),
            price_model: None,
            table_version: "sample".into(),
            provider_micro_usd: None,
        },
    }
}

/// One `usage_summary` row.
fn row(key: &str, c: [u64; 6], ttft: Option<u64>) -> Value {
    let [calls, input, cached, output, micro, unpriced] = c;
    let ratio = if input == 0 {
        0.0
    } else {
        cached as f64 / input as f64
    };
    let mut v = json!({
        "key": key, "calls": calls,
        "usage": {"input_tokens": input, "cache_read_tokens": cached, "cache_write_tokens": 0,
                  "output_tokens": output, "reasoning_tokens": 0},
        "cost_micro_usd": micro, "unpriced_calls": unpriced, "duration_ms": calls * 2_400,
        "cache_hit_ratio": ratio,
    });
    if let Some(t) = ttft {
        v["ttft_p50_ms"] = json!(t);
    }
    v
}

/// The sample's `usage_summary` data grouped by `group_by` (`container`, `client`, `model`)
/// over today: one agent per container, a model without a price behind opencode, and (by
/// model) a model name carrying an escape sequence.
pub fn summary(group_by: &str) -> Value {
    let rows = match group_by {
        "client" => vec![
            row(
                "claude-code",
                [42, 1_234_567, 1_002_003, 34_210, 3_214_999, 0],
                Some(612),
            ),
            row(
                "opencode",
                [19, 243_600, 120_000, 12_854, 0, 19],
                Some(1_250),
            ),
            row("codex", [9, 88_000, 70_400, 9_100, 95_500, 0], Some(410)),
        ],
        "model" => vec![
            row(
                "claude-sonnet-4-5-20250929",
                [40, 1_230_000, 1_000_000, 33_000, 3_200_000, 0],
                Some(612),
            ),
            row(
                "gpt-5-codex",
                [9, 88_000, 70_400, 9_100, 95_500, 0],
                Some(410),
            ),
            row(
                "claude-haiku-4-5",
                [2, 4_567, 2_003, 1_210, 14_999, 0],
                Some(380),
            ),
            row(
                "mock-frontier-9-preview",
                [17, 240_500, 120_000, 12_034, 0, 17],
                Some(1_250),
            ),
            row("evil\u{1b}[2J-model", [2, 3_100, 0, 820, 0, 2], None),
        ],
        _ => vec![
            row(
                "claude-code",
                [42, 1_234_567, 1_002_003, 34_210, 3_214_999, 0],
                Some(612),
            ),
            row("codex", [9, 88_000, 70_400, 9_100, 95_500, 0], Some(410)),
            row(
                "opencode",
                [17, 240_500, 120_000, 12_034, 0, 17],
                Some(1_250),
            ),
            row("aider", [2, 3_100, 0, 820, 0, 2], None),
        ],
    };
    let total = row(
        "total",
        [70, 1_566_167, 1_192_403, 56_164, 3_310_499, 19],
        Some(600),
    );
    json!({"group_by": group_by, "since": "2026-11-22T00:00:00.000Z", "until": null,
           "rows": rows, "total": total})
}

/// Answers the board's pending `usage_summary` with the sample for its grouping.
pub fn answer(app: &mut App) {
    let group = app.usage.group.wire();
    let generation = app.usage.generation;
    app.update(Msg::Link(LinkEvent::Reply {
        tag: Tag::Usage { generation },
        outcome: Ok(result_reply(summary(group))),
    }));
}

/// Ten minutes of calls seen live before [`super::NOW`]: Claude Code busy and growing,
/// codex now and then, opencode (unpriced) in bursts.
pub fn live_calls(app: &mut App) {
    let start = now() - Duration::from_secs(540);
    app.usage.live = Live::new(start - Duration::from_secs(60));
    for m in 0..10u64 {
        let at = start + Duration::from_secs(m * 60);
        for i in 0..(m / 2 + 1) {
            let c = call(
                "claude-code",
                "claude-sonnet-4-5-20250929",
                40_000 + i * 3_000,
                800,
                31_000,
            );
            app.usage.live.add(&c, at);
        }
        if m % 3 == 0 {
            app.usage
                .live
                .add(&call("codex", "gpt-5-codex", 9_000, 900, 9_500), at);
        }
        if m >= 6 {
            app.usage.live.add(
                &call("opencode", "mock-frontier-9-preview", 14_000, 700, 0),
                at,
            );
        }
    }
}

/// The sample dashboard on the Usage view, today by container, with live calls.
pub fn usage_app(w: u16, h: u16) -> App {
    let mut app = super::demo_app(w, h);
    live_calls(&mut app);
    app.update(Msg::Key(crossterm::event::KeyEvent::new(
        crossterm::event::KeyCode::Char('6'),
        crossterm::event::KeyModifiers::NONE,
    )));
    answer(&mut app);
    app
}
