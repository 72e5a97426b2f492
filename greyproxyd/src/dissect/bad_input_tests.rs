//! What the Anthropic, Chat Completions and Gemini dissectors make of damaged input: streams
//! cut mid-event, bodies cut at the capture cap, invalid JSON, bytes that are not UTF-8,
//! usage counts of the wrong type, huge tool arguments, provider errors. Never a panic; what
//! could be read is kept and the error says what could not.
#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use greyproxy_protocol::Transaction;
use greyproxy_protocol::llm::Usage;

use super::model::Block;
use super::{anthropic, chat, gemini};

fn tx(url: &str, request: &str, response: &str, content_type: &str) -> Transaction {
    let host = url.split('/').nth(2).unwrap_or_default().to_owned();
    Transaction {
        url: url.to_owned(),
        destination_host: host,
        method: "POST".to_owned(),
        request_body: Some(request.to_owned()),
        request_body_encoding: Some("text".to_owned()),
        response_body: Some(response.to_owned()),
        response_body_encoding: Some("text".to_owned()),
        response_content_type: Some(content_type.to_owned()),
        status_code: Some(200),
        ..Transaction::default()
    }
}

const MESSAGES: &str = "https://api.anthropic.com/v1/messages";
const CHAT: &str = "https://api.openai.com/v1/chat/completions";
const GEMINI: &str = "https://generativelanguage.googleapis.com/v1beta/models/gemini-3-flash:streamGenerateContent?alt=sse";
const SSE: &str = "text/event-stream";
const JSON: &str = "application/json";

fn fixture_body(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/llm/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["response_body"].as_str().unwrap().to_owned()
}

#[test]
fn anthropic_stream_cut_mid_event_keeps_what_was_read() {
    let body = fixture_body("383");
    // Cut inside the message_delta event: its usage never arrived.
    let cut = &body[..body.find("\"type\":\"message_delta\"").unwrap() + 10];
    let d = anthropic::dissect(&tx(MESSAGES, "{}", cut, SSE));
    let r = &d.response;
    assert!(!r.complete);
    assert_eq!(r.error.as_deref(), Some("stream cut inside an event"));
    assert_eq!(r.stop_reason, None);
    // Usage as message_start said: input 3 + 5333 written, output 14 so far.
    assert_eq!(r.usage.unwrap().input_tokens, 5336);
    assert_eq!(r.usage.unwrap().output_tokens, 14);
    assert_eq!(r.tool_calls[0].info.summary, "select:Agent,WebSearch,Read");

    // Cut inside the tool call's arguments: the call is kept, summarised from the raw prefix.
    let cut = &body[..body.find("\"partial_json\":\"WebSearch,").unwrap() + 10];
    let d = anthropic::dissect(&tx(MESSAGES, "{}", cut, SSE));
    let r = &d.response;
    assert!(!r.complete && r.error.is_some());
    assert_eq!(r.tool_calls.len(), 1);
    let call = &r.tool_calls[0].info;
    assert_eq!(call.name, "ToolSearch");
    assert_eq!(call.input_preview, "{\"query\": \"select:Agent,");
    assert_eq!(call.summary, "{\"query\": \"select:Agent,");
    assert!(r.usage.is_some());

    // Whole events but no message_stop: not complete either.
    let cut = &body[..body.find("event: message_stop").unwrap()];
    let r = anthropic::dissect(&tx(MESSAGES, "{}", cut, SSE)).response;
    assert_eq!(r.error.as_deref(), Some("stream ended before message_stop"));
    assert_eq!(r.usage.unwrap().output_tokens, 148);
}

#[test]
fn body_cut_at_the_capture_cap_is_an_error_even_when_it_parses() {
    let mut t = tx(MESSAGES, "{}", &fixture_body("383"), SSE);
    t.response_body_truncated = true;
    let r = anthropic::dissect(&t).response;
    assert!(!r.complete);
    assert_eq!(
        r.error.as_deref(),
        Some("response body truncated at the capture cap")
    );
}

#[test]
fn chat_and_gemini_streams_cut_mid_event() {
    let body = fixture_body("opencode_openrouter_2469");
    let cut = &body[..body.find("\"content\":\" fix\"").unwrap() + 12];
    let r = chat::dissect(&tx(CHAT, "{}", cut, SSE)).response;
    assert!(!r.complete && r.usage.is_none());
    assert_eq!(r.error.as_deref(), Some("stream cut inside an event"));
    assert_eq!(r.text, "Hey! What can I help you build or");

    let body = fixture_body("gemini_main_2571");
    let cut = &body[..body.find("How can I help").unwrap()];
    let r = gemini::dissect(&tx(GEMINI, "{}", cut, SSE)).response;
    assert!(!r.complete);
    assert_eq!(r.error.as_deref(), Some("stream cut inside an event"));
    assert_eq!(r.stop_reason, None);
    // The second chunk's cumulative usage: 11934 + 36 + 111.
    assert_eq!(r.usage.unwrap().output_tokens, 147);
}

#[test]
fn invalid_json_request_and_response() {
    let gemini_json = GEMINI.replace(":streamGenerateContent?alt=sse", ":generateContent");
    for (dissect, url) in [
        (anthropic::dissect as fn(&Transaction) -> _, MESSAGES),
        (chat::dissect, CHAT),
        (gemini::dissect, gemini_json.as_str()),
    ] {
        let d = dissect(&tx(url, "{\"model\": nope", "{\"id\": ", JSON));
        assert!(
            d.request
                .error
                .as_deref()
                .unwrap()
                .starts_with("invalid JSON")
        );
        assert!(d.request.messages.is_empty());
        assert!(!d.response.complete);
        assert!(
            d.response
                .error
                .as_deref()
                .unwrap()
                .starts_with("invalid JSON")
        );
    }
}

#[test]
fn anthropic_request_cut_at_the_cap_still_names_session_and_model() {
    let body = r#"{"model":"claude-sonnet-4-5","metadata":{"user_id":"user_ab12_account_5a3241c6-4cbe-47e2-a7d3-981f6bf69be8_session_33a9d683-ef38-4571-92b9-1ae2bf7a6be3"},"messages":[{"role":"user","content":"Rea"#;
    let mut t = tx(MESSAGES, body, "", JSON);
    t.request_body_truncated = true;
    let req = anthropic::dissect(&t).request;
    assert_eq!(
        req.error.as_deref(),
        Some("request body truncated at the capture cap")
    );
    assert_eq!(req.model.as_deref(), Some("claude-sonnet-4-5"));
    assert_eq!(
        req.session_id.as_deref(),
        Some("33a9d683-ef38-4571-92b9-1ae2bf7a6be3")
    );
}

#[test]
fn anthropic_user_id_as_json_string_and_object() {
    let as_string = r#"{"metadata":{"user_id":"{\"device_id\":\"d1\",\"account_uuid\":\"a1\",\"session_id\":\"9f1c2f3e-0000-4000-8000-000000000001\"}"}}"#;
    let req = anthropic::dissect(&tx(MESSAGES, as_string, "", JSON)).request;
    assert_eq!(
        req.session_id.as_deref(),
        Some("9f1c2f3e-0000-4000-8000-000000000001")
    );
    let as_object = r#"{"metadata":{"user_id":{"session_id":"s-42"}}}"#;
    let req = anthropic::dissect(&tx(MESSAGES, as_object, "", JSON)).request;
    assert_eq!(req.session_id.as_deref(), Some("s-42"));
    let neither = r#"{"metadata":{"user_id":17}}"#;
    assert_eq!(
        anthropic::dissect(&tx(MESSAGES, neither, "", JSON))
            .request
            .session_id,
        None
    );
}

#[test]
fn non_utf8_bodies_are_read_with_replacement() {
    let mut request = br#"{"model":"claude-x","system":"caf"#.to_vec();
    request.extend_from_slice(&[0xff, 0xfe]);
    request.extend_from_slice(br#"","messages":[{"role":"user","content":"hi"}]}"#);
    let mut response = b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"a".to_vec();
    response.push(0xc3);
    response
        .extend_from_slice(b"b\"}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let mut t = tx(MESSAGES, "", "", SSE);
    t.request_body = Some(b64(&request));
    t.request_body_encoding = Some("base64".to_owned());
    t.response_body = Some(b64(&response));
    t.response_body_encoding = Some("base64".to_owned());
    let d = anthropic::dissect(&t);
    assert_eq!(d.request.error, None);
    assert_eq!(d.request.model.as_deref(), Some("claude-x"));
    assert_eq!(d.request.system_preview, "caf\u{fffd}\u{fffd}");
    assert_eq!(d.response.text, "a\u{fffd}b");
    assert!(d.response.complete);
}

#[test]
fn usage_counts_of_the_wrong_type_are_ignored() {
    let u = serde_json::json!({
        "input_tokens": "5", "output_tokens": -3, "cache_read_input_tokens": 1.5,
        "cache_creation_input_tokens": 7, "cache_creation": {"ephemeral_5m_input_tokens": "7"}
    });
    assert_eq!(
        anthropic::usage(&u),
        Some(Usage {
            input_tokens: 7,
            cache_write_tokens: 7,
            ..Usage::default()
        })
    );
    assert_eq!(
        anthropic::usage(&serde_json::json!({"input_tokens": null})),
        None
    );

    let body = r#"{"choices":[{"index":0,"message":{"content":"ok"},"finish_reason":"stop"}],
        "usage":{"prompt_tokens":"10","completion_tokens":4,"cost":"0.5",
        "prompt_tokens_details":{"cached_tokens":-1},"completion_tokens_details":[]}}"#;
    let r = chat::dissect(&tx(CHAT, "{}", body, JSON)).response;
    assert_eq!(
        r.usage,
        Some(Usage {
            output_tokens: 4,
            ..Usage::default()
        })
    );
    assert_eq!(r.provider_cost_usd, None);
    assert!(r.complete);

    let u = serde_json::json!({"promptTokenCount": 1e3, "candidatesTokenCount": 2,
        "thoughtsTokenCount": [1], "cachedContentTokenCount": {}});
    assert_eq!(
        gemini::usage(&u),
        Some(Usage {
            output_tokens: 2,
            ..Usage::default()
        })
    );
}

/// An Anthropic stream whose one tool call's arguments arrive in `n` deltas of `chunk`.
fn huge_tool_stream(n: usize, chunk: &str) -> String {
    let mut s = String::from(
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"Bash\",\"input\":{}}}\n\n",
    );
    let delta = |p: &str| {
        format!(
            "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"input_json_delta\",\"partial_json\":{}}}}}\n\n",
            serde_json::to_string(p).unwrap()
        )
    };
    s += &delta("{\"command\": \"");
    for _ in 0..n {
        s += &delta(chunk);
    }
    s += &delta("\"}");
    s + "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
}

#[test]
fn huge_tool_arguments_give_bounded_previews() {
    // 3 MiB of arguments: past the 1 MiB accumulation cap, so the JSON is cut and summarised
    // from its raw prefix.
    let body = huge_tool_stream(3 * 1024, &"x".repeat(1024));
    let r = anthropic::dissect(&tx(MESSAGES, "{}", &body, SSE)).response;
    assert!(r.complete);
    let call = &r.tool_calls[0].info;
    assert_eq!((call.id.as_str(), call.name.as_str()), ("toolu_1", "Bash"));
    assert_eq!(call.input_preview.chars().count(), 303);
    assert!(call.summary.chars().count() <= 83);

    // Under the cap the arguments parse and the command is the summary, cut.
    let body = huge_tool_stream(64, "echo hi ");
    let r = anthropic::dissect(&tx(MESSAGES, "{}", &body, SSE)).response;
    assert!(r.tool_calls[0].info.summary.starts_with("echo hi echo hi"));
    assert!(r.tool_calls[0].info.summary.ends_with("..."));

    // Chat Completions: the same through streamed tool_calls deltas.
    let mut body = String::from(
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"function\":{\"name\":\"read\",\"arguments\":\"\"}}]}}]}\n\n",
    );
    let piece = format!(
        "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"tool_calls\":[{{\"index\":0,\"function\":{{\"arguments\":\"{}\"}}}}]}}}}]}}\n\n",
        "y".repeat(4096)
    );
    for _ in 0..600 {
        body += &piece;
    }
    body += "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\ndata: [DONE]\n\n";
    let r = chat::dissect(&tx(CHAT, "{}", &body, SSE)).response;
    assert!(r.complete);
    assert_eq!(r.stop_reason.as_deref(), Some("tool_calls"));
    let call = &r.tool_calls[0].info;
    assert_eq!((call.id.as_str(), call.name.as_str()), ("call_1", "read"));
    assert_eq!(call.input_preview.chars().count(), 303);
    assert!(call.summary.chars().count() <= 83);

    // Request side: a huge input in the history.
    let big = "z".repeat(2 * 1024 * 1024);
    let request = serde_json::json!({"messages": [{"role": "assistant", "content": [
        {"type": "tool_use", "id": "t", "name": "Write", "input": {"file_path": "/a/b/c.rs", "content": big}},
        {"type": "thinking", "thinking": big}
    ]}, {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": big, "is_error": true}]}]});
    let req = anthropic::dissect(&tx(MESSAGES, &request.to_string(), "", JSON)).request;
    let Block::ToolUse(u) = &req.messages[0].blocks[0] else {
        panic!()
    };
    assert_eq!(u.info.summary, "b/c.rs");
    assert_eq!(u.info.input_preview.chars().count(), 303);
    assert!(matches!(&req.messages[0].blocks[1], Block::Thinking(t) if t.chars().count() == 503));
    assert!(
        matches!(&req.messages[1].blocks[0], Block::ToolResult(r) if r.is_error && r.preview.chars().count() == 503)
    );
}

#[test]
fn provider_error_events_and_error_bodies() {
    let body = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude-x\",\"usage\":{\"input_tokens\":10,\"output_tokens\":1}}}\n\nevent: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
    let r = anthropic::dissect(&tx(MESSAGES, "{}", body, SSE)).response;
    assert!(!r.complete);
    assert_eq!(r.error.as_deref(), Some("overloaded_error: Overloaded"));
    assert_eq!(r.usage.unwrap().input_tokens, 10);

    let mut t = tx(
        MESSAGES,
        "{}",
        r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long"}}"#,
        JSON,
    );
    t.status_code = Some(400);
    let r = anthropic::dissect(&t).response;
    assert_eq!(
        r.error.as_deref(),
        Some("invalid_request_error: prompt is too long")
    );
    assert!(!r.complete && r.usage.is_none());

    let mut t = tx(
        CHAT,
        "{}",
        r#"{"error":{"message":"Rate limit reached","code":429}}"#,
        JSON,
    );
    t.status_code = Some(429);
    let r = chat::dissect(&t).response;
    assert_eq!(r.error.as_deref(), Some("429: Rate limit reached"));

    let chunk = "data: {\"error\":{\"message\":\"upstream failed\",\"code\":502}}\n\n";
    let r = chat::dissect(&tx(CHAT, "{}", chunk, SSE)).response;
    assert_eq!(r.error.as_deref(), Some("502: upstream failed"));

    // Asked for SSE, answered with a JSON error: the content type decides.
    let body =
        r#"{"error":{"code":400,"message":"API key not valid","status":"INVALID_ARGUMENT"}}"#;
    let r = gemini::dissect(&tx(GEMINI, "{}", body, JSON)).response;
    assert_eq!(
        r.error.as_deref(),
        Some("INVALID_ARGUMENT: API key not valid")
    );

    // An error status with a body that says nothing more.
    let mut t = tx(CHAT, "{}", "<html>bad gateway</html>", "text/html");
    t.status_code = Some(502);
    let r = chat::dissect(&t).response;
    assert!(r.error.is_some() && !r.complete);
}

#[test]
fn missing_bodies() {
    let mut t = tx(MESSAGES, "", "", JSON);
    t.request_body = None;
    t.response_body = None;
    let d = anthropic::dissect(&t);
    assert_eq!(d.request.error.as_deref(), Some("no request body"));
    assert_eq!(d.response.error.as_deref(), Some("no response body"));
}
