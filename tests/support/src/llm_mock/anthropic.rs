//! Anthropic Messages answers: the SSE event sequence of a streamed reply and the JSON body of
//! a non-streamed one, built from an [`Answer`].

use serde_json::{Value, json};

use super::script::{Answer, Call, MockUsage};
use super::{Event, pieces};

fn usage(u: &MockUsage, output: u64) -> Value {
    json!({
        "input_tokens": u.input,
        "cache_creation_input_tokens": u.cache_creation,
        "cache_read_input_tokens": u.cache_read,
        "cache_creation": {
            "ephemeral_5m_input_tokens": u.cache_creation,
            "ephemeral_1h_input_tokens": 0
        },
        "output_tokens": output,
        "service_tier": "standard"
    })
}

fn stop_reason(a: &Answer) -> &'static str {
    if a.tool_call.is_some() {
        "tool_use"
    } else {
        "end_turn"
    }
}

/// The content blocks of the answer, complete.
fn blocks(a: &Answer, seq: u64) -> Vec<Value> {
    let mut out = Vec::new();
    if let Some(t) = &a.thinking {
        out.push(json!({"type":"thinking","thinking":t,"signature":"mock-signature"}));
    }
    if !a.text.is_empty() {
        out.push(json!({"type":"text","text":a.text}));
    }
    if let Some(tc) = &a.tool_call {
        out.push(
            json!({"type":"tool_use","id":format!("toolu_mock_{seq}"),"name":tc.name,
                        "input":tc.input}),
        );
    }
    out
}

/// The JSON body of a non-streamed reply.
pub(super) fn json_body(call: &Call, a: &Answer, seq: u64) -> Value {
    json!({
        "id": format!("msg_mock_{seq}"),
        "type": "message",
        "role": "assistant",
        "model": a.model_for(call),
        "content": blocks(a, seq),
        "stop_reason": stop_reason(a),
        "stop_sequence": null,
        "usage": usage(&a.usage, a.usage.output),
    })
}

/// The SSE events of a streamed reply: `message_start` (usage with 1 output token), a ping,
/// each block as start / deltas / stop (`input_json_delta` chunks for a tool call),
/// `message_delta` with the stop reason and the cumulative usage, `message_stop`.
pub(super) fn sse_events(call: &Call, a: &Answer, seq: u64) -> Vec<Event> {
    let ev = |name: &'static str, data: Value| Event {
        name: Some(name),
        data,
    };
    let mut out = vec![
        ev(
            "message_start",
            json!({"type":"message_start","message":{
                "id": format!("msg_mock_{seq}"), "type":"message", "role":"assistant",
                "model": a.model_for(call), "content": [], "stop_reason": null,
                "stop_sequence": null, "usage": usage(&a.usage, 1)}}),
        ),
        ev("ping", json!({"type":"ping"})),
    ];
    for (index, block) in blocks(a, seq).into_iter().enumerate() {
        let start = match block["type"].as_str() {
            Some("thinking") => json!({"type":"thinking","thinking":"","signature":""}),
            Some("text") => json!({"type":"text","text":""}),
            _ => {
                json!({"type":"tool_use","id":block["id"],"name":block["name"],"input":{}})
            }
        };
        out.push(ev(
            "content_block_start",
            json!({"type":"content_block_start","index":index,"content_block":start}),
        ));
        let delta = |d: Value| {
            ev(
                "content_block_delta",
                json!({"type":"content_block_delta","index":index,"delta":d}),
            )
        };
        match block["type"].as_str() {
            Some("thinking") => {
                for p in pieces(block["thinking"].as_str().unwrap_or(""), 2) {
                    out.push(delta(json!({"type":"thinking_delta","thinking":p})));
                }
                out.push(delta(
                    json!({"type":"signature_delta","signature":"mock-signature"}),
                ));
            }
            Some("text") => {
                for p in pieces(block["text"].as_str().unwrap_or(""), 3) {
                    out.push(delta(json!({"type":"text_delta","text":p})));
                }
            }
            _ => {
                out.push(delta(json!({"type":"input_json_delta","partial_json":""})));
                for p in pieces(&block["input"].to_string(), 3) {
                    out.push(delta(json!({"type":"input_json_delta","partial_json":p})));
                }
            }
        }
        out.push(ev(
            "content_block_stop",
            json!({"type":"content_block_stop","index":index}),
        ));
    }
    let mut end = usage(&a.usage, a.usage.output);
    if let Some(o) = end.as_object_mut() {
        o.remove("cache_creation");
        o.remove("service_tier");
    }
    out.push(ev(
        "message_delta",
        json!({"type":"message_delta","delta":{"stop_reason":stop_reason(a),
               "stop_sequence":null},"usage":end}),
    ));
    out.push(ev("message_stop", json!({"type":"message_stop"})));
    out
}
