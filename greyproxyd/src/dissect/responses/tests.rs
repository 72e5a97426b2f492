//! Request items, response events and JSON bodies of the Responses API, written inline for the
//! shapes the fixtures do not cover (codex items, parallel argument deltas, failures).

#![allow(clippy::unwrap_used)]

use greyproxy_protocol::Transaction;
use greyproxy_protocol::llm::{LlmClient, Usage};
use serde_json::{Value, json};

use super::super::model::{Block, Dissected, Role};
use super::dissect;
use super::events::{Accumulator, MAX_ARGS, MAX_ARGS_TOTAL};
use super::request::{child_session, parse_request};

fn http(request: &Value, content_type: &str, response: &str) -> Dissected {
    dissect(&Transaction {
        method: "POST".to_owned(),
        status_code: Some(200),
        request_body: Some(request.to_string()),
        response_body: Some(response.to_owned()),
        response_content_type: Some(content_type.to_owned()),
        ..Transaction::default()
    })
}

/// An SSE body of these events (each `data` names its own `type`).
fn sse(events: &[Value]) -> String {
    events
        .iter()
        .map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap()))
        .collect()
}

fn completed(output: Value, usage: Value) -> Value {
    json!({"type": "response.completed", "response": {
        "id": "resp_1", "model": "gpt-5.1-codex", "status": "completed",
        "output": output, "usage": usage}})
}

#[test]
fn codex_request_items() {
    let body = json!({
        "model": "gpt-5.1-codex",
        "instructions": "You are Codex.",
        "stream": true,
        "prompt_cache_key": "019a-session",
        "previous_response_id": "resp_prev",
        "client_metadata": {"session_id": "sess-meta", "thread_id": "thr_1", "turn_id": "t1",
            "x-codex-turn-metadata": "{\"turn_id\":\"t1\"}"},
        "tools": [{"type": "web_search"}, {"type": "function", "name": "shell"}],
        "input": [
            {"type": "additional_tools", "tools": [
                {"type": "namespace", "name": "mcp", "tools": [{"type": "function", "name": "read_mcp"}]},
                {"type": "custom", "name": "apply_patch"},
                {"type": "function", "name": "shell"}]},
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Sandbox: read-only."}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "fix the bug"}, {"type": "input_image", "image_url": "data:"}]},
            {"type": "reasoning", "summary": [{"type": "summary_text", "text": "Look at the code"}], "encrypted_content": "gAAA"},
            {"type": "function_call", "call_id": "call_a", "name": "shell", "arguments": "{\"command\":[\"bash\",\"-lc\",\"cargo test\"]}"},
            {"type": "custom_tool_call", "call_id": "call_b", "name": "apply_patch", "input": "*** Begin Patch\n*** Update File: src/lib.rs\n@@\n"},
            {"type": "local_shell_call", "call_id": "call_c", "action": {"type": "exec", "command": ["ls", "-la"]}},
            {"type": "function_call_output", "call_id": "call_a", "output": "ok"},
            {"type": "custom_tool_call_output", "call_id": "call_b", "output": [{"type": "input_text", "text": "Done!"}]},
            {"type": "local_shell_call_output", "call_id": "call_c", "output": "total 0"},
            {"type": "web_search_call", "id": "ws_1", "status": "completed"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Fixed."}]},
            {"type": "compaction_summary", "encrypted_content": "x"}
        ]
    });
    let f = parse_request(body.to_string().as_bytes(), false);
    assert_eq!(f.model.as_deref(), Some("gpt-5.1-codex"));
    assert!(f.stream);
    assert!(f.generate);
    // prompt_cache_key wins over client_metadata.session_id.
    assert_eq!(f.session_id.as_deref(), Some("019a-session"));
    assert_eq!(f.thread_id.as_deref(), Some("thr_1"));
    assert_eq!(f.client_hint, Some(LlmClient::Codex));
    assert_eq!(f.previous_response_id.as_deref(), Some("resp_prev"));
    assert_eq!(f.tools, ["web_search", "shell", "read_mcp", "apply_patch"]);
    assert_eq!(f.system_preview, "You are Codex.\n\nSandbox: read-only.");
    assert_eq!(f.system_len, 35);
    assert_eq!(f.error, None);

    let roles: Vec<Role> = f.messages.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        [
            Role::System,
            Role::User,
            Role::Assistant,
            Role::User,
            Role::Assistant
        ]
    );
    assert_eq!(
        f.messages[1].blocks,
        [Block::Text("fix the bug".to_owned())]
    );
    let assistant = &f.messages[2].blocks;
    assert_eq!(assistant[0], Block::Thinking("Look at the code".to_owned()));
    let summaries: Vec<(&str, &str, &str)> = assistant[1..]
        .iter()
        .map(|b| match b {
            Block::ToolUse(t) => (
                t.info.id.as_str(),
                t.info.name.as_str(),
                t.info.summary.as_str(),
            ),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        summaries,
        [
            ("call_a", "shell", "cargo test"),
            ("call_b", "apply_patch", "lib.rs"),
            ("call_c", "local_shell", "ls -la"),
        ]
    );
    // The three results answer together in one user message.
    let results: Vec<(&str, &str)> = f.messages[3]
        .blocks
        .iter()
        .map(|b| match b {
            Block::ToolResult(r) => (r.tool_use_id.as_str(), r.preview.as_str()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        results,
        [("call_a", "ok"), ("call_b", "Done!"), ("call_c", "total 0")]
    );
    assert_eq!(f.messages[4].blocks, [Block::Text("Fixed.".to_owned())]);
}

#[test]
fn session_fallbacks_and_warm_up() {
    let f = parse_request(
        json!({"type": "response.create", "model": "gpt-5", "generate": false,
            "client_metadata": {"session_id": "s-1", "thread_id": "t-1"}, "input": "hi"})
        .to_string()
        .as_bytes(),
        false,
    );
    assert!(!f.generate);
    assert_eq!(f.session_id.as_deref(), Some("s-1"));
    assert_eq!(f.thread_id.as_deref(), Some("t-1"));
    // No `x-codex-…` key: no client hint.
    assert_eq!(f.client_hint, None);
    assert_eq!(f.messages.len(), 1);
    assert_eq!(f.messages[0].blocks, [Block::Text("hi".to_owned())]);
}

#[test]
fn opencode_task_result_names_the_child_session() {
    let out = "task_id: ses_2fd479e84ffeWtEMMxa6aH6Smi (for resuming to continue this task)\n\n\
               <task_result>Greyhaven is…</task_result>";
    let body = json!({"model": "gpt-5.1", "input": [
        {"type": "function_call", "call_id": "call_t", "name": "task", "arguments": "{\"description\":\"Research\",\"prompt\":\"Find Greyhaven\"}"},
        {"type": "function_call_output", "call_id": "call_t", "output": out}]});
    let f = parse_request(body.to_string().as_bytes(), false);
    let Block::ToolUse(call) = &f.messages[0].blocks[0] else {
        panic!()
    };
    assert_eq!(call.spawn_prompt.as_deref(), Some("Find Greyhaven"));
    let Block::ToolResult(r) = &f.messages[1].blocks[0] else {
        panic!()
    };
    assert_eq!(
        r.child_session.as_deref(),
        Some("ses_2fd479e84ffeWtEMMxa6aH6Smi")
    );
    assert_eq!(child_session("task_id: none"), None);
    assert_eq!(child_session("no id here"), None);
    assert_eq!(child_session("task_id:ses_"), None);
}

#[test]
fn tool_results_are_cut_at_500_characters() {
    let long = "é".repeat(600);
    let body = json!({"model": "m", "input": [
        {"type": "function_call_output", "call_id": "c", "output": long}]});
    let f = parse_request(body.to_string().as_bytes(), false);
    let Block::ToolResult(r) = &f.messages[0].blocks[0] else {
        panic!()
    };
    assert_eq!(r.preview, format!("{}...", "é".repeat(500)));
}

#[test]
fn unreadable_request_bodies() {
    let cut = br#"{"model":"gpt-5.1","prompt_cache_key":"ses_abc","input":[{"role":"user","content":"hel"#;
    let f = parse_request(cut, true);
    assert_eq!(
        f.error.as_deref(),
        Some("request body cut at the capture cap")
    );
    assert_eq!(f.model.as_deref(), Some("gpt-5.1"));
    assert_eq!(f.session_id.as_deref(), Some("ses_abc"));
    assert!(f.generate);
    assert!(f.messages.is_empty());

    let f = parse_request(b"not json", false);
    assert!(
        f.error
            .unwrap()
            .starts_with("request body is not valid JSON")
    );
    assert_eq!(f.model, None);
    let f = parse_request(b"[1]", false);
    assert_eq!(
        f.error.as_deref(),
        Some("request body is not a JSON object")
    );
}

#[test]
fn interleaved_argument_deltas_stay_with_their_item() {
    let added = |id: &str, call: &str, i: u64| {
        json!({"type": "response.output_item.added", "output_index": i,
            "item": {"type": "function_call", "id": id, "call_id": call, "name": "read", "arguments": ""}})
    };
    let delta = |id: &str, i: u64, d: &str| json!({"type": "response.function_call_arguments.delta", "item_id": id, "output_index": i, "delta": d});
    let body = sse(&[
        json!({"type": "response.created", "response": {"id": "resp_1", "model": "gpt-5.1", "status": "in_progress"}}),
        added("fc_1", "call_1", 0),
        added("fc_2", "call_2", 1),
        delta("fc_1", 0, "{\"file_path\":\"/a/"),
        delta("fc_2", 1, "{\"file_path\":\"/b/"),
        delta("fc_2", 1, "two.rs\"}"),
        delta("fc_1", 0, "one.rs\"}"),
        json!({"type": "response.function_call_arguments.done", "item_id": "fc_1", "output_index": 0, "arguments": "{\"file_path\":\"/a/one.rs\"}"}),
        // The final object carries no output: what streamed stands.
        completed(json!([]), json!({"input_tokens": 10, "output_tokens": 4})),
    ]);
    let d = http(&json!({"model": "gpt-5.1"}), "text/event-stream", &body);
    let calls: Vec<(&str, &str)> = d
        .response
        .tool_calls
        .iter()
        .map(|c| (c.info.id.as_str(), c.info.summary.as_str()))
        .collect();
    assert_eq!(calls, [("call_1", "a/one.rs"), ("call_2", "b/two.rs")]);
    assert_eq!(d.response.stop_reason.as_deref(), Some("tool_calls"));
}

#[test]
fn thinking_text_and_stop_reasons() {
    let body = sse(&[
        json!({"type": "response.reasoning_summary_text.delta", "item_id": "rs_1", "summary_index": 0, "delta": "Plan"}),
        json!({"type": "response.reasoning_summary_text.delta", "item_id": "rs_1", "summary_index": 1, "delta": "Act"}),
        json!({"type": "response.output_text.delta", "item_id": "msg_1", "delta": "Hello"}),
        json!({"type": "response.output_text.delta", "item_id": "msg_1", "delta": " world"}),
        json!({"type": "response.incomplete", "response": {"status": "incomplete",
            "incomplete_details": {"reason": "max_output_tokens"},
            "output": [{"type": "message", "content": [{"type": "output_text", "text": "ignored: deltas came"}]}],
            "usage": {"input_tokens": 100, "input_tokens_details": {"cached_tokens": 64},
                      "output_tokens": 50, "output_tokens_details": {"reasoning_tokens": 30}}}}),
    ]);
    let d = http(&json!({"model": "o3"}), "text/event-stream", &body);
    let r = &d.response;
    assert_eq!(r.thinking, "Plan\n\nAct");
    assert_eq!(r.text, "Hello world");
    assert_eq!(r.stop_reason.as_deref(), Some("max_output_tokens"));
    assert!(r.complete);
    assert_eq!(r.error, None);
    assert_eq!(
        r.usage,
        Some(Usage {
            input_tokens: 100,
            cache_read_tokens: 64,
            output_tokens: 50,
            reasoning_tokens: 30,
            ..Usage::default()
        })
    );
    // The first event carried thinking: content starts there.
    assert_eq!(r.first_content_end, Some(body.find("\n\n").unwrap() + 2));
}

#[test]
fn thinking_is_cut_at_500_characters() {
    let events: Vec<Value> = (0..100)
        .map(|_| json!({"type": "response.reasoning_text.delta", "item_id": "rs", "delta": "0123456789"}))
        .collect();
    let d = http(&json!({}), "text/event-stream", &sse(&events));
    assert_eq!(d.response.thinking.chars().count(), 500);
    assert_eq!(
        d.response.error.as_deref(),
        Some("event stream ended before the response completed")
    );
    assert!(!d.response.complete);
}

#[test]
fn failed_response_and_error_event() {
    let body = sse(&[
        json!({"type": "response.failed", "response": {"status": "failed",
        "error": {"code": "server_error", "message": "The model crashed"}}}),
    ]);
    let d = http(&json!({}), "text/event-stream", &body);
    assert_eq!(
        d.response.error.as_deref(),
        Some("server_error: The model crashed")
    );
    assert_eq!(d.response.stop_reason.as_deref(), Some("failed"));
    assert_eq!(d.response.usage, None);

    let body = sse(&[
        json!({"type": "response.output_text.delta", "delta": "Hi"}),
        json!({"type": "error", "code": "rate_limit_exceeded", "message": "Slow down", "param": null}),
        completed(json!([]), json!({"input_tokens": 1, "output_tokens": 1})),
    ]);
    let d = http(&json!({}), "text/event-stream", &body);
    assert_eq!(
        d.response.error.as_deref(),
        Some("rate_limit_exceeded: Slow down")
    );
    assert_eq!(d.response.text, "Hi");
    // Nothing after the error is read.
    assert_eq!(d.response.usage, None);
    assert!(!d.response.complete);
}

#[test]
fn json_response_object() {
    let body = json!({"id": "resp_9", "object": "response", "model": "gpt-4.1-2025-04-14",
        "status": "completed",
        "output": [
            {"type": "reasoning", "summary": [{"type": "summary_text", "text": "Think"}]},
            {"type": "message", "role": "assistant", "content": [
                {"type": "output_text", "text": "Let me look."}]},
            {"type": "function_call", "id": "fc_9", "call_id": "call_9", "name": "bash",
             "arguments": "{\"command\":\"ls\"}"}],
        "usage": {"input_tokens": 20, "input_tokens_details": {"cached_tokens": 5},
                  "output_tokens": 7, "output_tokens_details": {"reasoning_tokens": 2}}});
    let d = http(
        &json!({"model": "gpt-4.1", "stream": false}),
        "application/json",
        &format!("  {body}\n"),
    );
    let r = &d.response;
    assert!(!r.streamed);
    assert!(r.complete);
    assert_eq!(r.first_content_end, None);
    assert_eq!(r.model.as_deref(), Some("gpt-4.1-2025-04-14"));
    assert_eq!(r.text, "Let me look.");
    assert_eq!(r.thinking, "Think");
    assert_eq!(r.tool_calls[0].info.id, "call_9");
    assert_eq!(r.tool_calls[0].info.summary, "ls");
    assert_eq!(r.stop_reason.as_deref(), Some("tool_calls"));
    assert_eq!(r.usage.unwrap().cache_read_tokens, 5);
    assert!(!d.request.stream);
}

#[test]
fn json_api_error_and_http_status() {
    let mut t = Transaction {
        method: "POST".to_owned(),
        status_code: Some(429),
        request_body: Some(json!({"model": "gpt-5"}).to_string()),
        response_body: Some(
            json!({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}})
                .to_string(),
        ),
        response_content_type: Some("application/json".to_owned()),
        ..Transaction::default()
    };
    let d = dissect(&t);
    assert_eq!(
        d.response.error.as_deref(),
        Some("rate_limit_exceeded: Rate limit reached")
    );
    assert!(!d.response.complete);

    t.response_body = Some(String::new());
    t.status_code = Some(502);
    let d = dissect(&t);
    assert!(
        d.response
            .error
            .unwrap()
            .starts_with("response body is not valid JSON")
    );

    t.response_body = None;
    t.request_body = None;
    let d = dissect(&t);
    assert_eq!(
        d.response.error.as_deref(),
        Some("no response body recorded")
    );
    assert_eq!(d.request.error.as_deref(), Some("no request body recorded"));
}

#[test]
fn huge_arguments_are_capped() {
    let chunk = "x".repeat(64 * 1024);
    let mut events = vec![
        json!({"type": "response.output_item.added", "output_index": 0,
        "item": {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "write"}}),
    ];
    for _ in 0..20 {
        events.push(json!({"type": "response.function_call_arguments.delta", "item_id": "fc_1", "delta": chunk}));
    }
    let d = http(&json!({}), "text/event-stream", &sse(&events));
    let call = &d.response.tool_calls[0];
    assert_eq!(call.info.id, "call_1");
    assert_eq!(call.info.input_preview, format!("{}...", &chunk[..300]));

    // What is kept: 1 MiB for the call, 8 MiB over all calls.
    let mut acc = Accumulator::new();
    for i in 0..12 {
        let id = format!("fc_{i}");
        for _ in 0..20 {
            acc.on_event(&json!({"type": "response.function_call_arguments.delta", "item_id": id, "delta": chunk}), "");
        }
    }
    let kept = acc.args_lens();
    assert_eq!(kept.len(), 12);
    assert!(kept[..8].iter().all(|n| *n == MAX_ARGS));
    assert!(kept[8..].iter().all(|n| *n == 0));
    assert_eq!(kept.iter().sum::<usize>(), MAX_ARGS_TOTAL);
}

#[test]
fn sse_without_content_type_and_cut_events() {
    let body = sse(&[json!({"type": "response.output_text.delta", "delta": "Hi"})]);
    let cut = format!("{body}event: response.completed\ndata: {{\"type\":\"resp");
    let d = http(&json!({}), "application/octet-stream", &cut);
    assert!(d.response.streamed);
    assert_eq!(d.response.text, "Hi");
    assert_eq!(
        d.response.error.as_deref(),
        Some("event stream cut inside an event")
    );
}
