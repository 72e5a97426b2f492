//! OpenAI answers: the Responses event sequence (SSE events, or one WebSocket message each)
//! and final response object, and Chat Completions as JSON or SSE chunks.

use serde_json::{Value, json};

use super::script::{Answer, Call, MockUsage};
use super::{Event, pieces};

fn responses_usage(u: &MockUsage) -> Value {
    json!({
        "input_tokens": u.openai_input(),
        "input_tokens_details": {"cached_tokens": u.cache_read},
        "output_tokens": u.output,
        "output_tokens_details": {"reasoning_tokens": u.reasoning},
        "total_tokens": u.openai_input() + u.output,
    })
}

fn chat_usage(u: &MockUsage) -> Value {
    json!({
        "prompt_tokens": u.openai_input(),
        "prompt_tokens_details": {"cached_tokens": u.cache_read},
        "completion_tokens": u.output,
        "completion_tokens_details": {"reasoning_tokens": u.reasoning},
        "total_tokens": u.openai_input() + u.output,
    })
}

/// The complete output items of a Responses answer.
fn output_items(a: &Answer, seq: u64) -> Vec<Value> {
    let mut out = Vec::new();
    if let Some(t) = &a.thinking {
        out.push(json!({"id":format!("rs_mock_{seq}"),"type":"reasoning",
                        "summary":[{"type":"summary_text","text":t}]}));
    }
    if !a.text.is_empty() {
        out.push(
            json!({"id":format!("msg_mock_{seq}"),"type":"message","status":"completed",
                        "role":"assistant","content":[{"type":"output_text","text":a.text,
                        "annotations":[]}]}),
        );
    }
    if let Some(tc) = &a.tool_call {
        out.push(json!({"id":format!("fc_mock_{seq}"),"type":"function_call",
                        "status":"completed","name":tc.name,
                        "call_id":format!("call_mock_{seq}"),
                        "arguments":tc.input.to_string()}));
    }
    out
}

fn response_object(
    call: &Call,
    a: &Answer,
    seq: u64,
    status: &str,
    output: Vec<Value>,
    usage: Value,
) -> Value {
    json!({
        "id": format!("resp_mock_{seq}"),
        "object": "response",
        "created_at": 1_767_225_600u64 + seq,
        "status": status,
        "model": a.model_for(call),
        "output": output,
        "usage": usage,
    })
}

/// The final response object (the JSON body of a non-streamed `POST /v1/responses`).
pub(super) fn response_json(call: &Call, a: &Answer, seq: u64) -> Value {
    response_object(
        call,
        a,
        seq,
        "completed",
        output_items(a, seq),
        responses_usage(&a.usage),
    )
}

/// The answer to a `generate: false` warm-up: created, then completed with no output and no
/// tokens.
pub(super) fn warmup_events(call: &Call, seq: u64) -> Vec<Event> {
    let a = Answer::text("");
    let empty = MockUsage::default();
    vec![
        ev(
            0,
            "response.created",
            json!({"response":response_object(call, &a, seq, "in_progress", vec![], Value::Null)}),
        ),
        ev(
            1,
            "response.completed",
            json!({"response":response_object(call, &a, seq, "completed", vec![],
                                               responses_usage(&empty))}),
        ),
    ]
}

fn ev(n: u64, name: &'static str, mut data: Value) -> Event {
    data["type"] = json!(name);
    data["sequence_number"] = json!(n);
    Event {
        name: Some(name),
        data,
    }
}

/// The streamed events: `response.created`, per item `output_item.added`, its deltas and
/// `output_item.done`, then `response.completed` with the usage.
pub(super) fn response_events(call: &Call, a: &Answer, seq: u64) -> Vec<Event> {
    let mut out = Vec::new();
    let mut n = 0;
    let mut push = |name: &'static str, data: Value| {
        out.push(ev(n, name, data));
        n += 1;
    };
    push(
        "response.created",
        json!({"response":response_object(call, a, seq, "in_progress", vec![], Value::Null)}),
    );
    for (index, item) in output_items(a, seq).into_iter().enumerate() {
        let id = item["id"].clone();
        let mut open = item.clone();
        open["status"] = json!("in_progress");
        match item["type"].as_str() {
            Some("reasoning") => {
                open["summary"] = json!([]);
                push(
                    "response.output_item.added",
                    json!({"output_index":index,"item":open}),
                );
                let text = item["summary"][0]["text"].as_str().unwrap_or("");
                for p in pieces(text, 2) {
                    push(
                        "response.reasoning_summary_text.delta",
                        json!({"item_id":id,"output_index":index,"summary_index":0,"delta":p}),
                    );
                }
            }
            Some("message") => {
                open["content"] = json!([]);
                push(
                    "response.output_item.added",
                    json!({"output_index":index,"item":open}),
                );
                push(
                    "response.content_part.added",
                    json!({"item_id":id,"output_index":index,"content_index":0,
                           "part":{"type":"output_text","text":"","annotations":[]}}),
                );
                let text = a.text.as_str();
                for p in pieces(text, 3) {
                    push(
                        "response.output_text.delta",
                        json!({"item_id":id,"output_index":index,"content_index":0,"delta":p}),
                    );
                }
                push(
                    "response.output_text.done",
                    json!({"item_id":id,"output_index":index,"content_index":0,"text":text}),
                );
                push(
                    "response.content_part.done",
                    json!({"item_id":id,"output_index":index,"content_index":0,
                           "part":item["content"][0]}),
                );
            }
            _ => {
                open["arguments"] = json!("");
                push(
                    "response.output_item.added",
                    json!({"output_index":index,"item":open}),
                );
                let args = item["arguments"].as_str().unwrap_or("");
                for p in pieces(args, 3) {
                    push(
                        "response.function_call_arguments.delta",
                        json!({"item_id":id,"output_index":index,"delta":p}),
                    );
                }
                push(
                    "response.function_call_arguments.done",
                    json!({"item_id":id,"output_index":index,"arguments":args}),
                );
            }
        }
        push(
            "response.output_item.done",
            json!({"output_index":index,"item":item}),
        );
    }
    push(
        "response.completed",
        json!({"response":response_json(call, a, seq)}),
    );
    out
}

fn finish_reason(a: &Answer) -> &'static str {
    if a.tool_call.is_some() {
        "tool_calls"
    } else {
        "stop"
    }
}

fn tool_calls(a: &Answer, seq: u64) -> Option<Value> {
    a.tool_call.as_ref().map(|tc| {
        json!([{"id":format!("call_mock_{seq}"),"type":"function",
                "function":{"name":tc.name,"arguments":tc.input.to_string()}}])
    })
}

/// A Chat Completions JSON body.
pub(super) fn chat_json(call: &Call, a: &Answer, seq: u64) -> Value {
    let mut message = json!({"role":"assistant","content":a.text});
    if let Some(tc) = tool_calls(a, seq) {
        message["tool_calls"] = tc;
    }
    if let Some(t) = &a.thinking {
        message["reasoning_content"] = json!(t);
    }
    json!({
        "id": format!("chatcmpl-mock-{seq}"),
        "object": "chat.completion",
        "created": 1_767_225_600u64 + seq,
        "model": a.model_for(call),
        "choices": [{"index":0,"message":message,"finish_reason":finish_reason(a)}],
        "usage": chat_usage(&a.usage),
    })
}

/// Chat Completions chunks (`data:` lines only, `[DONE]` is added by the caller): the role,
/// reasoning and text deltas, tool-call deltas, the finish reason, and — when the request
/// set `stream_options.include_usage` — a last chunk with empty `choices` and the usage.
pub(super) fn chat_chunks(call: &Call, a: &Answer, seq: u64) -> Vec<Event> {
    let model = a.model_for(call).to_string();
    let chunk = |delta: Value, finish: Value| Event {
        name: None,
        data: json!({"id":format!("chatcmpl-mock-{seq}"),"object":"chat.completion.chunk",
                     "created":1_767_225_600u64 + seq,"model":model,
                     "choices":[{"index":0,"delta":delta,"finish_reason":finish}]}),
    };
    let mut out = vec![chunk(json!({"role":"assistant","content":""}), Value::Null)];
    if let Some(t) = &a.thinking {
        for p in pieces(t, 2) {
            out.push(chunk(json!({"reasoning_content":p}), Value::Null));
        }
    }
    for p in pieces(&a.text, 3) {
        out.push(chunk(json!({"content":p}), Value::Null));
    }
    if let Some(tc) = &a.tool_call {
        out.push(chunk(
            json!({"tool_calls":[{"index":0,"id":format!("call_mock_{seq}"),"type":"function",
                                  "function":{"name":tc.name,"arguments":""}}]}),
            Value::Null,
        ));
        for p in pieces(&tc.input.to_string(), 3) {
            out.push(chunk(
                json!({"tool_calls":[{"index":0,"function":{"arguments":p}}]}),
                Value::Null,
            ));
        }
    }
    out.push(chunk(json!({}), json!(finish_reason(a))));
    if call.body["stream_options"]["include_usage"].as_bool() == Some(true) {
        out.push(Event {
            name: None,
            data: json!({"id":format!("chatcmpl-mock-{seq}"),"object":"chat.completion.chunk",
                         "created":1_767_225_600u64 + seq,"model":model,"choices":[],
                         "usage":chat_usage(&a.usage)}),
        });
    }
    out
}
