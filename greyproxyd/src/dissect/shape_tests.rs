//! Wire shapes the captured fixtures do not show: tool calls and results in Chat
//! Completions and Gemini histories, parallel streamed tool calls, non-streamed Anthropic
//! messages, Gemini's JSON-array stream and visible thoughts.
#![allow(clippy::unwrap_used)]

use greyproxy_protocol::Transaction;
use greyproxy_protocol::llm::Usage;
use serde_json::json;

use super::model::{Block, Role};
use super::{anthropic, chat, gemini};

fn tx(url: &str, request: &serde_json::Value, response: &str, content_type: &str) -> Transaction {
    Transaction {
        url: url.to_owned(),
        destination_host: url.split('/').nth(2).unwrap_or_default().to_owned(),
        request_body: Some(request.to_string()),
        response_body: Some(response.to_owned()),
        response_content_type: Some(content_type.to_owned()),
        ..Transaction::default()
    }
}

fn tool_uses(blocks: &[Block]) -> Vec<(&str, &str, &str)> {
    blocks
        .iter()
        .filter_map(|b| match b {
            Block::ToolUse(u) => Some((
                u.info.id.as_str(),
                u.info.name.as_str(),
                u.info.summary.as_str(),
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn chat_history_with_tool_calls_and_results() {
    let request = json!({"model": "gpt-4.1", "stream": true, "prompt_cache_key": "ses_1",
    "tools": [{"type": "function", "function": {"name": "bash"}}],
    "messages": [
        {"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
        {"role": "user", "content": "list files"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "bash", "arguments": "{\"command\":\"ls -la\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "a.txt\nb.txt"}
    ]});
    let body = "data: {\"id\":\"c1\",\"model\":\"gpt-4.1-2025\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[\
        {\"index\":0,\"id\":\"call_2\",\"function\":{\"name\":\"read\",\"arguments\":\"{\\\"file_path\\\":\"}},\
        {\"index\":1,\"id\":\"call_3\",\"function\":{\"name\":\"grep\",\"arguments\":\"{\\\"pattern\\\":\\\"fn main\\\"}\"}}]}}]}\n\n\
        data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"/src/lib.rs\\\"}\"}}]},\"finish_reason\":\"tool_calls\"}]}\n\n\
        data: {\"choices\":[],\"usage\":{\"prompt_tokens\":100,\"completion_tokens\":20,\"prompt_tokens_details\":{\"cached_tokens\":64}}}\n\n\
        data: [DONE]\n\n";
    let d = chat::dissect(&tx(
        "https://api.openai.com/v1/chat/completions",
        &request,
        body,
        "text/event-stream",
    ));
    let req = &d.request;
    assert_eq!(req.session_id.as_deref(), Some("ses_1"));
    assert_eq!(req.tools, ["bash"]);
    assert_eq!(req.system_preview, "Be brief.");
    let roles: Vec<_> = req.messages.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        [Role::System, Role::User, Role::Assistant, Role::User]
    );
    assert_eq!(
        tool_uses(&req.messages[2].blocks),
        [("call_1", "bash", "ls -la")]
    );
    assert!(matches!(&req.messages[3].blocks[..], [Block::ToolResult(r)]
        if r.tool_use_id == "call_1" && r.preview == "a.txt\nb.txt"));
    let r = &d.response;
    assert!(r.complete);
    let calls: Vec<_> = r
        .tool_calls
        .iter()
        .map(|c| (c.info.id.as_str(), c.info.summary.as_str()))
        .collect();
    assert_eq!(
        calls,
        [("call_2", "src/lib.rs"), ("call_3", "pattern: fn main")]
    );
    assert_eq!(
        r.usage,
        Some(Usage {
            input_tokens: 100,
            cache_read_tokens: 64,
            output_tokens: 20,
            ..Usage::default()
        })
    );
    assert_eq!(r.model.as_deref(), Some("gpt-4.1-2025"));
}

#[test]
fn anthropic_json_response_and_string_system() {
    let request = json!({"model": "claude-haiku-4-5", "system": "Summarise.", "messages": [
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t0",
            "content": [{"type": "text", "text": "line 1"}, {"type": "text", "text": "line 2"}], "is_error": true}]}]});
    let body = json!({"id": "msg_9", "model": "claude-haiku-4-5-20251001", "type": "message",
        "content": [{"type": "thinking", "thinking": "hmm"}, {"type": "text", "text": "Reading."},
            {"type": "tool_use", "id": "toolu_9", "name": "Read", "input": {"file_path": "/repo/src/main.rs"}}],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 12, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 0, "output_tokens": 30}});
    let d = anthropic::dissect(&tx(
        "https://api.anthropic.com/v1/messages",
        &request,
        &body.to_string(),
        "application/json",
    ));
    assert_eq!(
        (d.request.system_len, d.request.system_preview.as_str()),
        (10, "Summarise.")
    );
    assert!(
        matches!(&d.request.messages[0].blocks[..], [Block::ToolResult(r)]
        if r.preview == "line 1\nline 2" && r.is_error)
    );
    let r = &d.response;
    assert!(r.complete && !r.streamed && r.error.is_none());
    assert_eq!((r.text.as_str(), r.thinking.as_str()), ("Reading.", "hmm"));
    assert_eq!(r.tool_calls[0].info.summary, "src/main.rs");
    assert_eq!(r.stop_reason.as_deref(), Some("tool_use"));
    // No TTL split sent: none invented.
    assert_eq!(
        r.usage,
        Some(Usage {
            input_tokens: 112,
            cache_read_tokens: 100,
            output_tokens: 30,
            ..Usage::default()
        })
    );
}

#[test]
fn gemini_function_calls_thoughts_and_json_array_stream() {
    let request = json!({
    "systemInstruction": {"parts": [{"text": "You are a CLI."}, {"text": "Be safe."}]},
    "tools": [{"functionDeclarations": [{"name": "run_shell_command"}, {"name": "read_file"}]}, {"googleSearch": {}}],
    "contents": [
        {"role": "user", "parts": [{"text": "build it"}]},
        {"role": "model", "parts": [{"text": "planning", "thought": true},
            {"functionCall": {"name": "run_shell_command", "args": {"command": "cargo build"}}},
            {"text": "", "thoughtSignature": "opaque"}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "run_shell_command", "response": {"output": "ok"}}}]}
    ]});
    let body = json!([
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "thinking hard", "thought": true}]}}],
         "usageMetadata": {"promptTokenCount": 50, "cachedContentTokenCount": 40, "thoughtsTokenCount": 5}},
        {"candidates": [{"content": {"role": "model", "parts": [{"functionCall": {"name": "read_file", "args": {"file_path": "/a/Cargo.toml"}}}]},
            "finishReason": "STOP"}],
         "usageMetadata": {"promptTokenCount": 50, "cachedContentTokenCount": 40, "candidatesTokenCount": 7, "thoughtsTokenCount": 5},
         "modelVersion": "gemini-2.5-pro", "responseId": "r1"}
    ]);
    let url = "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-pro:streamGenerateContent";
    let d = gemini::dissect(&tx(url, &request, &body.to_string(), "application/json"));
    let req = &d.request;
    assert_eq!(req.model.as_deref(), Some("gemini-2.5-pro"));
    assert!(req.stream);
    assert_eq!(req.system_preview, "You are a CLI.\nBe safe.");
    assert_eq!(req.tools, ["run_shell_command", "read_file"]);
    let model = &req.messages[1];
    assert_eq!(model.role, Role::Assistant);
    assert!(matches!(&model.blocks[0], Block::Thinking(t) if t == "planning"));
    assert_eq!(
        tool_uses(&model.blocks),
        [("", "run_shell_command", "cargo build")]
    );
    assert_eq!(model.blocks.len(), 2);
    assert!(matches!(&req.messages[2].blocks[..], [Block::ToolResult(r)]
        if r.tool_use_id == "run_shell_command" && r.preview == "{\"output\":\"ok\"}"));
    let r = &d.response;
    assert!(r.streamed && r.complete);
    assert_eq!(r.thinking, "thinking hard");
    assert!(r.text.is_empty());
    assert_eq!(r.tool_calls[0].info.summary, "a/Cargo.toml");
    assert_eq!(
        r.usage,
        Some(Usage {
            input_tokens: 50,
            cache_read_tokens: 40,
            output_tokens: 12,
            reasoning_tokens: 5,
            ..Usage::default()
        })
    );
    assert_eq!(
        (r.model.as_deref(), r.id.as_deref()),
        (Some("gemini-2.5-pro"), Some("r1"))
    );
}

#[test]
fn gemini_model_from_the_url() {
    let m = |u: &str| gemini::model_of_url(u);
    assert_eq!(
        m("https://h/v1beta/models/gemini-3-flash-preview:streamGenerateContent?alt=sse")
            .as_deref(),
        Some("gemini-3-flash-preview")
    );
    assert_eq!(
        m("https://h/v1beta/models/gemini-2.5-flash-lite?key=x").as_deref(),
        Some("gemini-2.5-flash-lite")
    );
    assert_eq!(m("https://h/v1beta/models/:generateContent"), None);
    assert_eq!(m("https://h/v1beta/tunedModels"), None);
}
