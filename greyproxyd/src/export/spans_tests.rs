//! Span building from stored calls and transactions: attribute names and values, derived ids.
#![allow(clippy::unwrap_used)]

use greyproxy_protocol::llm::{PriceState, ToolCallInfo, Usage};
use greyproxy_protocol::{Transaction, TransactionResult};

use super::*;
use crate::store::test_call;

fn attr<'a>(s: &'a Span, key: &str) -> Option<&'a Value> {
    s.attributes
        .iter()
        .find(|k| k.key == key)
        .and_then(|k| k.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

#[test]
fn a_call_is_a_genai_client_span_with_usage_cost_and_its_tool_calls() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.redb")).unwrap();
    let mut c = test_call(7, 1_700_000_000_000, "dev", Some("claude-code:s1"));
    c.model_requested = Some("claude-sonnet-4-5".into());
    c.duration_ms = Some(1500);
    c.ttft_ms = Some(250);
    c.stop_reason = Some("tool_use".into());
    c.usage = Some(Usage {
        input_tokens: 1312,
        cache_read_tokens: 1000,
        cache_write_tokens: 300,
        output_tokens: 40,
        ..Default::default()
    });
    c.cost.state = PriceState::Priced;
    c.cost.micro_usd = Some(2_500);
    c.tool_calls = vec![ToolCallInfo {
        id: "toolu_1".into(),
        name: "Bash".into(),
        summary: "ls".into(),
        input_preview: "{\"command\":\"ls\"}".into(),
    }];
    let mut b = SpanBuilder::new("h1".into(), false);
    let spans = b.call_spans(&store, &c, Some(3)).unwrap();
    assert_eq!(spans.len(), 2);
    let (call, tool) = (&spans[0], &spans[1]);
    assert_eq!(call.name, format!("{} claude-sonnet-4-5", c.operation));
    assert_eq!(call.kind, SpanKind::Client as i32);
    assert_eq!(call.trace_id, trace_id("claude-code:s1"));
    assert!(call.parent_span_id.is_empty());
    assert_eq!(
        call.end_time_unix_nano - call.start_time_unix_nano,
        1_500_000_000
    );
    let int = |s, k| match attr(s, k) {
        Some(Value::IntValue(v)) => *v,
        other => panic!("{k}: {other:?}"),
    };
    assert_eq!(int(call, "gen_ai.usage.input_tokens"), 1312);
    assert_eq!(int(call, "gen_ai.usage.cache_read.input_tokens"), 1000);
    assert_eq!(int(call, "gen_ai.usage.cache_creation.input_tokens"), 300);
    assert_eq!(int(call, "gen_ai.usage.output_tokens"), 40);
    assert_eq!(int(call, "greyproxy.rule.id"), 3);
    assert_eq!(
        attr(call, "gen_ai.usage.cost"),
        Some(&Value::DoubleValue(0.0025))
    );
    assert_eq!(
        attr(call, "gen_ai.response.time_to_first_chunk"),
        Some(&Value::DoubleValue(0.25))
    );
    assert_eq!(
        attr(call, "gen_ai.conversation.id"),
        Some(&Value::StringValue("claude-code:s1".into()))
    );
    assert!(
        attr(call, "gen_ai.output.messages").is_none(),
        "content is opt-in"
    );
    // The tool call hangs under its call, with the id a subagent's calls name as parent.
    assert_eq!(tool.parent_span_id, call.span_id);
    assert_eq!(tool.span_id, tool_span_id("claude-code:s1", "toolu_1"));
    assert_eq!(tool.name, "execute_tool Bash");
    // Same call, same ids: a resend is recognisable.
    let again = SpanBuilder::new("h1".into(), true)
        .call_spans(&store, &c, Some(3))
        .unwrap();
    assert_eq!(again[0].span_id, call.span_id);
    assert!(attr(&again[0], "gen_ai.output.messages").is_some());
}

#[test]
fn a_transaction_is_an_http_client_span_and_errors_are_marked() {
    let b = SpanBuilder::new("h1".into(), false);
    let t = Transaction {
        id: 9,
        timestamp: "2026-01-01T00:00:00Z".into(),
        container_name: "dev".into(),
        destination_host: "example.com".into(),
        destination_port: 443,
        method: "GET".into(),
        url: "https://example.com/x".into(),
        http_version: Some("HTTP/1.1".into()),
        status_code: Some(503),
        duration_ms: Some(20),
        result: TransactionResult::default(),
        ..Default::default()
    };
    let s = b.transaction_span(&t);
    assert_eq!(s.name, "GET");
    assert_eq!(s.kind, SpanKind::Client as i32);
    assert_eq!(
        attr(&s, "url.full"),
        Some(&Value::StringValue("https://example.com/x".into()))
    );
    assert_eq!(
        attr(&s, "http.response.status_code"),
        Some(&Value::IntValue(503))
    );
    assert_eq!(
        attr(&s, "error.type"),
        Some(&Value::StringValue("503".into()))
    );
    assert_eq!(s.status.unwrap().code, StatusCode::Error as i32);
    let r = b.request(vec![]);
    let res = r.resource_spans[0].resource.as_ref().unwrap();
    assert!(res.attributes.iter().any(|k| k.key == "service.name"));
}
