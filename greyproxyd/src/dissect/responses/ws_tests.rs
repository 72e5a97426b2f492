//! The Responses API over WebSocket: codex message sequences written inline (a warm-up, then
//! turns whose `response.create` carries only the new input items), pairing per connection,
//! and every way a call can end early.

#![allow(clippy::unwrap_used)]

use greyproxy_protocol::llm::{LlmClient, Usage};
use serde_json::{Value, json};

use super::super::model::{Block, Decoder, Role};
use super::ws::MAX_RESPONSE_ROWS;
use super::{WsCall, WsConn};

fn bytes(v: &Value) -> Vec<u8> {
    v.to_string().into_bytes()
}

fn create(extra: Value) -> Value {
    let mut v = json!({
        "type": "response.create",
        "model": "gpt-5.1-codex",
        "instructions": "You are Codex, based on GPT-5.",
        "tools": [],
        "tool_choice": "auto",
        "parallel_tool_calls": false,
        "store": false,
        "stream": true,
        "prompt_cache_key": "019a7c1e-5a7b-7b40-9d3e-3c1f6c0e0d11",
        "client_metadata": {
            "session_id": "019a7c1e-5a7b-7b40-9d3e-3c1f6c0e0d11",
            "thread_id": "019a7c1e-5a7b-7b40-9d3e-3c1f6c0e0d11",
            "turn_id": "turn-1",
            "x-codex-turn-metadata": "{\"turn_id\":\"turn-1\",\"sandbox\":\"read-only\"}"
        }
    });
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

fn created(id: &str) -> Value {
    json!({"type": "response.created", "sequence_number": 0,
        "response": {"id": id, "object": "response", "model": "gpt-5.1-codex", "status": "in_progress", "output": []}})
}

fn text_delta(d: &str) -> Value {
    json!({"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": d})
}

fn completed(id: &str, output: Value, usage: Value) -> Value {
    json!({"type": "response.completed",
        "response": {"id": id, "object": "response", "model": "gpt-5.1-codex", "status": "completed",
            "output": output, "usage": usage}})
}

/// Feeds `(row, at_ms, client?, message)` in order; returns the calls as they finish.
fn run(conn: &mut WsConn, messages: &[(u64, u64, bool, Value)]) -> Vec<WsCall> {
    let mut out = Vec::new();
    for (row, at, client, m) in messages {
        let call = if *client {
            conn.on_request(*row, *at, &bytes(m))
        } else {
            conn.on_response(*row, *at, &bytes(m))
        };
        out.extend(call);
    }
    out
}

#[test]
fn codex_warm_up_then_two_turns() {
    let usage1 = json!({"input_tokens": 4096, "input_tokens_details": {"cached_tokens": 3072},
        "output_tokens": 120, "output_tokens_details": {"reasoning_tokens": 64}, "total_tokens": 4216});
    let usage2 = json!({"input_tokens": 4300, "input_tokens_details": {"cached_tokens": 4096},
        "output_tokens": 12, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 4312});
    let call_item = json!({"type": "function_call", "id": "fc_1", "call_id": "call_ls",
        "name": "shell", "arguments": "{\"command\":[\"bash\",\"-lc\",\"ls\"]}", "status": "completed"});
    let mut conn = WsConn::new();
    let calls = run(
        &mut conn,
        &[
            // Warm-up: no input, no reply to count.
            (
                101,
                1_000,
                true,
                create(json!({"generate": false, "input": []})),
            ),
            (102, 1_040, false, created("resp_w")),
            (
                103,
                1_050,
                false,
                completed(
                    "resp_w",
                    json!([]),
                    json!({"input_tokens": 0, "output_tokens": 0}),
                ),
            ),
            // Turn 1: the environment and the prompt; tools as an input item.
            (
                104,
                2_000,
                true,
                create(json!({"previous_response_id": "resp_w", "input": [
                    {"type": "additional_tools", "tools": [{"type": "function", "name": "shell"},
                        {"type": "custom", "name": "apply_patch"}]},
                    {"type": "message", "role": "user", "content": [{"type": "input_text",
                        "text": "<environment_context>\n  <cwd>/repo</cwd>\n</environment_context>"}]},
                    {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "list the files"}]}
                ]})),
            ),
            (105, 2_300, false, created("resp_1")),
            (
                106,
                2_400,
                false,
                json!({"type": "response.output_item.added", "output_index": 0,
                "item": {"type": "reasoning", "id": "rs_1", "summary": []}}),
            ),
            (
                107,
                2_450,
                false,
                json!({"type": "response.reasoning_summary_text.delta", "item_id": "rs_1",
                "output_index": 0, "summary_index": 0, "delta": "**Listing files**"}),
            ),
            (
                108,
                2_500,
                false,
                json!({"type": "response.output_item.added", "output_index": 1,
                "item": {"type": "function_call", "id": "fc_1", "call_id": "call_ls", "name": "shell", "arguments": ""}}),
            ),
            (
                109,
                2_510,
                false,
                json!({"type": "response.function_call_arguments.delta", "item_id": "fc_1", "output_index": 1, "delta": "{\"command\":[\"bash\","}),
            ),
            (
                110,
                2_520,
                false,
                json!({"type": "response.function_call_arguments.delta", "item_id": "fc_1", "output_index": 1, "delta": "\"-lc\",\"ls\"]}"}),
            ),
            (
                111,
                2_530,
                false,
                json!({"type": "response.output_item.done", "output_index": 1, "item": call_item}),
            ),
            (
                112,
                2_600,
                false,
                completed(
                    "resp_1",
                    json!([{"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "**Listing files**"}]}, call_item]),
                    usage1,
                ),
            ),
            // Turn 1, second step: only the tool's output is new.
            (
                113,
                3_000,
                true,
                create(json!({"previous_response_id": "resp_1", "input": [
                    {"type": "function_call_output", "call_id": "call_ls", "output": "Cargo.toml\nsrc\nREADME.md"}
                ]})),
            ),
            (114, 3_200, false, created("resp_2")),
            (115, 3_300, false, text_delta("There are")),
            (116, 3_310, false, text_delta(" 3 entries.")),
            (
                117,
                3_400,
                false,
                completed(
                    "resp_2",
                    json!([{"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "There are 3 entries."}]}]),
                    usage2,
                ),
            ),
        ],
    );
    assert_eq!(calls.len(), 3);

    let warm = &calls[0];
    assert_eq!(warm.dissected.decoder, Decoder::OpenAiWs);
    assert!(!warm.dissected.request.generate);
    assert_eq!(warm.request_row, 101);
    assert_eq!(warm.response_rows, [102, 103]);
    assert_eq!((warm.started_ms, warm.ended_ms), (1_000, 1_050));
    assert_eq!(warm.first_content_ms, None);
    assert_eq!(warm.dissected.response.id.as_deref(), Some("resp_w"));

    let t1 = &calls[1];
    let req = &t1.dissected.request;
    assert!(req.generate);
    assert_eq!(req.client_hint, Some(LlmClient::Codex));
    assert_eq!(
        req.session_id.as_deref(),
        Some("019a7c1e-5a7b-7b40-9d3e-3c1f6c0e0d11")
    );
    assert_eq!(req.previous_response_id.as_deref(), Some("resp_w"));
    assert_eq!(req.tools, ["shell", "apply_patch"]);
    assert_eq!(req.system_preview, "You are Codex, based on GPT-5.");
    assert_eq!(req.messages.len(), 2);
    assert_eq!(
        req.messages[1].blocks,
        [Block::Text("list the files".to_owned())]
    );
    assert_eq!(t1.request_row, 104);
    assert_eq!(t1.response_rows, (105..=112).collect::<Vec<u64>>());
    // The reasoning summary is the first content.
    assert_eq!(t1.first_content_ms, Some(2_450));
    assert_eq!(t1.ended_ms, 2_600);
    let resp = &t1.dissected.response;
    assert!(resp.streamed && resp.complete);
    assert_eq!(resp.thinking, "**Listing files**");
    assert_eq!(resp.tool_calls.len(), 1);
    assert_eq!(resp.tool_calls[0].info.id, "call_ls");
    assert_eq!(resp.tool_calls[0].info.summary, "ls");
    assert_eq!(resp.stop_reason.as_deref(), Some("tool_calls"));
    assert_eq!(
        resp.usage,
        Some(Usage {
            input_tokens: 4096,
            cache_read_tokens: 3072,
            output_tokens: 120,
            reasoning_tokens: 64,
            ..Usage::default()
        })
    );

    let t2 = &calls[2];
    assert_eq!(t2.dissected.request.messages.len(), 1);
    assert_eq!(t2.dissected.request.messages[0].role, Role::User);
    let Block::ToolResult(r) = &t2.dissected.request.messages[0].blocks[0] else {
        panic!()
    };
    assert_eq!(r.tool_use_id, "call_ls");
    assert_eq!(r.preview, "Cargo.toml\nsrc\nREADME.md");
    let resp = &t2.dissected.response;
    // Deltas win; the final output does not double the text.
    assert_eq!(resp.text, "There are 3 entries.");
    assert_eq!(resp.stop_reason.as_deref(), Some("completed"));
    assert_eq!(resp.usage.unwrap().cache_read_tokens, 4096);
    assert_eq!(t2.first_content_ms, Some(3_300));
    // Nothing left pending.
    assert_eq!(conn.on_close(4_000), None);
}

#[test]
fn two_connections_interleaved_pair_per_connection() {
    let (mut a, mut b) = (WsConn::new(), WsConn::new());
    let req = |s: &str| bytes(&create(json!({"input": s})));
    assert!(a.on_request(1, 10, &req("question A")).is_none());
    assert!(b.on_request(2, 11, &req("question B")).is_none());
    assert!(
        a.on_response(3, 12, &bytes(&text_delta("answer A")))
            .is_none()
    );
    assert!(
        b.on_response(4, 13, &bytes(&text_delta("answer B")))
            .is_none()
    );
    let done = |id| {
        bytes(&completed(
            id,
            json!([]),
            json!({"input_tokens": 5, "output_tokens": 2}),
        ))
    };
    let call_b = b.on_response(5, 14, &done("resp_b")).unwrap();
    let call_a = a.on_response(6, 15, &done("resp_a")).unwrap();
    for (call, who, row, rows) in [(&call_a, "A", 1, [3, 6]), (&call_b, "B", 2, [4, 5])] {
        assert_eq!(call.request_row, row);
        assert_eq!(call.response_rows, rows);
        assert_eq!(call.dissected.response.text, format!("answer {who}"));
        assert_eq!(
            call.dissected.request.messages[0].blocks,
            [Block::Text(format!("question {who}"))]
        );
    }
}

#[test]
fn close_mid_response() {
    let mut conn = WsConn::new();
    let calls = run(
        &mut conn,
        &[
            (1, 100, true, create(json!({"input": "go"}))),
            (2, 150, false, created("resp_1")),
            (3, 160, false, text_delta("Partial")),
        ],
    );
    assert!(calls.is_empty());
    let call = conn.on_close(900).unwrap();
    let r = &call.dissected.response;
    assert_eq!(
        r.error.as_deref(),
        Some("connection closed before the response completed")
    );
    assert!(!r.complete);
    assert_eq!(r.text, "Partial");
    assert_eq!(r.usage, None);
    assert_eq!(call.response_rows, [2, 3]);
    assert_eq!((call.first_content_ms, call.ended_ms), (Some(160), 900));
    assert_eq!(conn.on_close(901), None);
}

#[test]
fn failures_end_the_call() {
    let mut conn = WsConn::new();
    let calls = run(
        &mut conn,
        &[
            (1, 0, true, create(json!({"input": "a"}))),
            (
                2,
                5,
                false,
                json!({"type": "response.failed", "response": {"id": "resp_f", "status": "failed",
                "error": {"code": "server_error", "message": "An error occurred"},
                "usage": {"input_tokens": 9, "output_tokens": 0}}}),
            ),
            (3, 10, true, create(json!({"input": "b"}))),
            // codex's shape of a transport error: status plus a nested error.
            (
                4,
                12,
                false,
                json!({"type": "error", "status": 429,
                "error": {"type": "usage_limit_reached", "message": "The usage limit has been reached"}}),
            ),
        ],
    );
    assert_eq!(calls.len(), 2);
    let failed = &calls[0].dissected.response;
    assert_eq!(
        failed.error.as_deref(),
        Some("server_error: An error occurred")
    );
    assert_eq!(failed.stop_reason.as_deref(), Some("failed"));
    assert_eq!(failed.usage.unwrap().input_tokens, 9);
    let limited = &calls[1];
    assert_eq!(
        limited.dissected.response.error.as_deref(),
        Some("usage_limit_reached: The usage limit has been reached")
    );
    assert!(!limited.dissected.response.complete);
    assert_eq!((limited.request_row, limited.ended_ms), (3, 12));
}

#[test]
fn superseded_request() {
    let mut conn = WsConn::new();
    assert!(
        conn.on_request(1, 0, &bytes(&create(json!({"input": "a"}))))
            .is_none()
    );
    assert!(conn.on_response(2, 1, &bytes(&created("resp_1"))).is_none());
    let old = conn
        .on_request(3, 7, &bytes(&create(json!({"input": "b"}))))
        .unwrap();
    assert_eq!(old.request_row, 1);
    assert_eq!(old.ended_ms, 7);
    assert!(
        old.dissected
            .response
            .error
            .unwrap()
            .starts_with("superseded")
    );
    let done = completed(
        "resp_2",
        json!([]),
        json!({"input_tokens": 1, "output_tokens": 1}),
    );
    let new = conn.on_response(4, 9, &bytes(&done)).unwrap();
    assert_eq!(
        (new.request_row, new.response_rows.as_slice()),
        (3, &[4][..])
    );
    assert_eq!(new.dissected.response.error, None);
}

#[test]
fn invalid_and_foreign_messages() {
    let mut conn = WsConn::new();
    // Not a create, not JSON: ignored.
    assert!(
        conn.on_request(1, 0, br#"{"type":"response.cancel"}"#)
            .is_none()
    );
    assert!(conn.on_request(2, 0, b"\xff\xfe garbage").is_none());
    // A server message that is no response event, with nothing pending: ignored.
    assert!(
        conn.on_response(3, 0, br#"{"type":"codex.rate_limits","primary":{}}"#)
            .is_none()
    );
    assert!(conn.on_response(4, 0, b"{").is_none());
    assert_eq!(conn.on_close(1), None);

    // A create cut at the capture cap still opens a call; a cut event is counted.
    let cut = br#"{"type":"response.create","model":"gpt-5.1-codex","input":[{"type":"message","#;
    assert!(conn.on_request(5, 10, cut).is_none());
    assert!(
        conn.on_response(6, 11, b"{\"type\":\"response.output_text.del")
            .is_none()
    );
    let call = conn.on_close(20).unwrap();
    assert_eq!(
        call.dissected.request.error.as_deref(),
        Some("request body cut at the capture cap")
    );
    assert_eq!(
        call.dissected.request.model.as_deref(),
        Some("gpt-5.1-codex")
    );
    assert_eq!(call.response_rows, [6]);
    assert_eq!(
        call.dissected.response.error.as_deref(),
        Some("connection closed before the response completed (1 messages not valid JSON)")
    );
}

#[test]
fn response_without_a_request() {
    let mut conn = WsConn::new();
    assert!(
        conn.on_response(7, 50, &bytes(&created("resp_o")))
            .is_none()
    );
    assert!(
        conn.on_response(8, 60, &bytes(&text_delta("orphan")))
            .is_none()
    );
    let done = completed(
        "resp_o",
        json!([]),
        json!({"input_tokens": 3, "output_tokens": 1}),
    );
    let call = conn.on_response(9, 70, &bytes(&done)).unwrap();
    assert_eq!(call.request_row, 7);
    assert_eq!(call.response_rows, [7, 8, 9]);
    assert_eq!(call.started_ms, 50);
    assert_eq!(
        call.dissected.request.error.as_deref(),
        Some("response without a request seen")
    );
    assert!(call.dissected.request.generate);
    assert_eq!(call.dissected.response.text, "orphan");
    assert_eq!(call.dissected.response.usage.unwrap().input_tokens, 3);
}

#[test]
fn huge_arguments_and_endless_responses_stay_bounded() {
    let mut conn = WsConn::new();
    assert!(
        conn.on_request(0, 0, &bytes(&create(json!({"input": "write"}))))
            .is_none()
    );
    let added = json!({"type": "response.output_item.added", "output_index": 0,
        "item": {"type": "function_call", "id": "fc_1", "call_id": "call_w", "name": "write"}});
    assert!(conn.on_response(1, 1, &bytes(&added)).is_none());
    let chunk = "y".repeat(64 * 1024);
    let delta = bytes(
        &json!({"type": "response.function_call_arguments.delta", "item_id": "fc_1", "delta": chunk}),
    );
    let small = bytes(&json!({"type": "response.output_text.delta", "delta": "z"}));
    let mut row = 2;
    for _ in 0..20 {
        assert!(conn.on_response(row, row, &delta).is_none());
        row += 1;
    }
    while row < MAX_RESPONSE_ROWS as u64 + 50 {
        assert!(conn.on_response(row, row, &small).is_none());
        row += 1;
    }
    let call = conn.on_close(row).unwrap();
    assert_eq!(call.response_rows.len(), MAX_RESPONSE_ROWS);
    assert_eq!(call.response_rows_omitted, 49);
    assert_eq!(call.response_rows[..3], [1, 2, 3]);
    let tool = &call.dissected.response.tool_calls[0];
    assert_eq!(tool.info.id, "call_w");
    assert_eq!(tool.info.input_preview, format!("{}...", &chunk[..300]));
    assert_eq!(
        call.dissected.response.text.len(),
        MAX_RESPONSE_ROWS + 49 - 21
    );
}
