//! The mock's answers as a client sees them, straight over TLS (no daemon): the event order
//! and usage of each API, tool-call arguments reassembled from their chunks, JSON answers, and
//! a refused upgrade.

use bytes::Bytes;
use serde_json::{Value, json};

use super::*;
use crate::tls::{Sender, body_bytes, tls_connect};

const USAGE: MockUsage = MockUsage {
    input: 3,
    cache_creation: 5333,
    cache_read: 7,
    output: 148,
    reasoning: 20,
};

async fn mock(ip: &str, ws: bool) -> LlmMock {
    let answer = Answer::tool("Bash", json!({"command":"ls -la","description":"list"}))
        .with_thinking("think first")
        .with_usage(USAGE);
    LlmMock::builder(ip)
        .websocket(ws)
        .script(always(answer))
        .start()
        .await
}

/// POSTs `body` to `path` on `host`; returns the status and the body text.
async fn post(m: &LlmMock, host: &str, path: &str, body: Value) -> (u16, String) {
    let tcp = tokio::net::TcpStream::connect(m.addr).await.unwrap();
    let tls = tls_connect(tcp, host, m.ca_pem(), &[b"http/1.1"])
        .await
        .unwrap();
    let mut s = Sender::handshake(tls).await;
    let r = s
        .send_with(
            host,
            "POST",
            path,
            &[("content-type", "application/json")],
            Bytes::from(body.to_string()),
        )
        .await
        .unwrap();
    let status = r.status().as_u16();
    (
        status,
        String::from_utf8(body_bytes(r).await.to_vec()).unwrap(),
    )
}

/// The `(event, data)` pairs of an SSE body.
fn events(sse: &str) -> Vec<(String, Value)> {
    sse.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut name = String::new();
            let mut data = Value::Null;
            for l in e.lines() {
                if let Some(n) = l.strip_prefix("event: ") {
                    name = n.to_string();
                } else if let Some(d) = l.strip_prefix("data: ") {
                    data = serde_json::from_str(d).unwrap_or(Value::String(d.into()));
                }
            }
            (name, data)
        })
        .collect()
}

#[tokio::test]
async fn anthropic_stream_and_json() {
    let m = mock("127.0.0.120", true).await;
    let req = json!({"model":CLAUDE_MODEL,"stream":true,"messages":[]});
    let (status, sse) = post(&m, "api.anthropic.com", "/v1/messages?beta=true", req).await;
    assert_eq!(status, 200);
    let ev = events(&sse);
    let names: Vec<&str> = ev.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[..2], ["message_start", "ping"]);
    assert_eq!(names[names.len() - 2..], ["message_delta", "message_stop"]);
    let start = &ev[0].1["message"];
    assert_eq!(start["model"], CLAUDE_MODEL);
    assert_eq!(start["usage"]["cache_creation_input_tokens"], 5333);
    assert_eq!(start["usage"]["output_tokens"], 1);
    let kinds: Vec<&Value> = ev
        .iter()
        .filter(|(n, _)| n == "content_block_start")
        .map(|(_, d)| &d["content_block"]["type"])
        .collect();
    assert_eq!(kinds, ["thinking", "text", "tool_use"]);
    let args: String = ev
        .iter()
        .filter(|(_, d)| d["delta"]["type"] == "input_json_delta")
        .map(|(_, d)| d["delta"]["partial_json"].as_str().unwrap())
        .collect();
    let input: Value = serde_json::from_str(&args).unwrap();
    assert_eq!(input["command"], "ls -la");
    let delta = &ev[names.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert_eq!(delta["usage"]["output_tokens"], 148);
    assert_eq!(delta["usage"]["cache_read_input_tokens"], 7);

    let req = json!({"model":UNKNOWN_MODEL,"messages":[]});
    let (_, body) = post(&m, "api.anthropic.com", "/v1/messages", req).await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["model"], UNKNOWN_MODEL);
    assert_eq!(v["content"][2]["input"]["command"], "ls -la");
    assert_eq!(v["usage"]["input_tokens"], 3);
    assert_eq!(m.answered().len(), 2);
    assert_eq!(m.requests()[0].path, "/v1/messages?beta=true");
}

#[tokio::test]
async fn responses_and_chat_report_openai_usage() {
    let m = mock("127.0.0.121", false).await;
    let req = json!({"model":OPENAI_MODEL,"stream":true,"input":[]});
    let (_, sse) = post(&m, "api.openai.com", "/v1/responses", req).await;
    let ev = events(&sse);
    assert_eq!(ev[0].0, "response.created");
    let (last, done) = ev.last().unwrap();
    assert_eq!(last, "response.completed");
    let usage = &done["response"]["usage"];
    assert_eq!(usage["input_tokens"], 3 + 5333 + 7);
    assert_eq!(usage["input_tokens_details"]["cached_tokens"], 7);
    assert_eq!(usage["output_tokens_details"]["reasoning_tokens"], 20);
    let seq: Vec<u64> = ev
        .iter()
        .map(|(_, d)| d["sequence_number"].as_u64().unwrap())
        .collect();
    assert_eq!(seq, (0..ev.len() as u64).collect::<Vec<_>>());
    let call = &done["response"]["output"][2];
    assert_eq!(call["type"], "function_call");
    assert_eq!(call["name"], "Bash");

    let req = json!({"model":OPENAI_MODEL,"messages":[]});
    let (_, body) = post(&m, "openrouter.ai", "/api/v1/chat/completions", req).await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 7);

    // WebSocket off: the upgrade is refused and recorded.
    let tcp = tokio::net::TcpStream::connect(m.addr).await.unwrap();
    let tls = tls_connect(tcp, "api.openai.com", m.ca_pem(), &[b"http/1.1"])
        .await
        .unwrap();
    let mut s = Sender::handshake(tls).await;
    let hs = [
        ("connection", "upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    let r = s
        .send_with("api.openai.com", "GET", "/v1/responses", &hs, Bytes::new())
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 426);
    assert_eq!(m.requests().last().unwrap().method, "GET");
}

#[test]
fn pieces_cut_on_char_boundaries() {
    assert_eq!(pieces("héllo wörld", 3), ["héll", "o wö", "rld"]);
    assert!(pieces("", 3).is_empty());
    assert_eq!(pieces("ab", 5), ["a", "b"]);
}
