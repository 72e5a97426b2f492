//! Pins the exact JSON shapes of greyproxy's control WebSocket (docs/protocol.md) and of our
//! additions.
#![allow(clippy::unwrap_used)]

use greyproxy_protocol::event::{ClaimsChanged, PendingDecided, WaitersChanged};
use greyproxy_protocol::*;
use serde_json::{Value, json};

const TS: &str = "2026-04-10T10:30:00Z";

fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("serialize")
}

/// Serialises, compares with `expected` (key order irrelevant), and decodes back.
fn pin_reply(reply: Reply, expected: Value) {
    assert_eq!(to_json(&reply), expected);
    let back = ServerMessage::decode(&expected.to_string()).expect("decode");
    assert_eq!(back, ServerMessage::Reply(reply));
}

#[test]
fn connected_greeting() {
    pin_reply(
        Reply::Connected {
            message: "Connected to proxy event stream".into(),
            timestamp: TS.into(),
            protocol_version: 1,
            server_version: "0.1.0".into(),
        },
        json!({"type":"connected","message":"Connected to proxy event stream","timestamp":TS,
               "protocol_version":1,"server_version":"0.1.0"}),
    );
}

#[test]
fn pong_with_and_without_request_id() {
    pin_reply(
        Reply::Pong {
            timestamp: TS.into(),
            request_id: None,
        },
        json!({"type":"pong","timestamp":TS}),
    );
    pin_reply(
        Reply::Pong {
            timestamp: TS.into(),
            request_id: Some(RequestId::Str("a".into())),
        },
        json!({"type":"pong","timestamp":TS,"request_id":"a"}),
    );
}

#[test]
fn command_success_for_allow_and_dismiss() {
    pin_reply(
        Reply::CommandSuccess {
            command: "allow".into(),
            pending_id: Some(123),
            rule_id: Some(456),
            active_claims: None,
            timestamp: TS.into(),
            request_id: None,
        },
        json!({"type":"command_success","command":"allow","pending_id":123,"rule_id":456,"timestamp":TS}),
    );
    pin_reply(
        Reply::CommandSuccess {
            command: "dismiss".into(),
            pending_id: Some(17),
            rule_id: None,
            active_claims: None,
            timestamp: TS.into(),
            request_id: Some(RequestId::Num(4)),
        },
        json!({"type":"command_success","command":"dismiss","pending_id":17,"timestamp":TS,"request_id":4}),
    );
}

#[test]
fn error_and_claim_and_subscribe_replies() {
    pin_reply(
        Reply::Error {
            error: "unknown command: fly".into(),
            timestamp: TS.into(),
            request_id: None,
        },
        json!({"type":"error","error":"unknown command: fly","timestamp":TS}),
    );
    pin_reply(
        Reply::NotificationClaimed {
            active_claims: 1,
            timestamp: TS.into(),
            request_id: None,
        },
        json!({"type":"notification_claimed","active_claims":1,"timestamp":TS}),
    );
    pin_reply(
        Reply::Subscribed {
            event_type: "pending_request.created".into(),
            timestamp: TS.into(),
            request_id: None,
        },
        json!({"type":"subscribed","event_type":"pending_request.created","timestamp":TS}),
    );
    pin_reply(
        Reply::Lagged {
            data: reply::Lagged { missed: 12 },
        },
        json!({"type":"lagged","data":{"missed":12}}),
    );
    pin_reply(
        Reply::Result {
            command: "status".into(),
            request_id: None,
            data: json!({"x":1}),
            timestamp: TS.into(),
        },
        json!({"type":"result","command":"status","request_id":null,"data":{"x":1},"timestamp":TS}),
    );
}

fn sample_rule() -> Rule {
    Rule {
        id: 42,
        container_pattern: "opencode".into(),
        destination_pattern: "*.npmjs.org".into(),
        port_pattern: "443".into(),
        rule_type: RuleType::Temporary,
        action: Action::Allow,
        created_at: "2026-04-22T10:00:00Z".into(),
        expires_at: Some("2026-04-23T10:00:00Z".into()),
        last_used_at: None,
        created_by: "admin".into(),
        notes: None,
        is_active: true,
        session_id: None,
        source: RuleSource::Global,
    }
}

#[test]
fn rule_json_matches_reference_rulejson() {
    let v = to_json(&sample_rule());
    assert_eq!(
        v,
        json!({"id":42,"container_pattern":"opencode","destination_pattern":"*.npmjs.org",
               "port_pattern":"443","rule_type":"temporary","action":"allow",
               "created_at":"2026-04-22T10:00:00Z","expires_at":"2026-04-23T10:00:00Z",
               "last_used_at":null,"created_by":"admin","notes":null,"is_active":true,
               "source":"global"})
    );
    assert_eq!(serde_json::from_value::<Rule>(v).unwrap(), sample_rule());
}

#[test]
fn event_envelopes() {
    let pending = PendingRequest {
        id: 17,
        container_name: "opencode".into(),
        container_id: String::new(),
        destination_host: "104.16.3.35".into(),
        destination_port: 443,
        resolved_hostname: Some("registry.npmjs.org".into()),
        first_seen: "2026-04-22T10:00:00Z".into(),
        last_seen: "2026-04-22T10:03:12Z".into(),
        attempt_count: 4,
        waiting_count: 1,
        llm_context: None,
        kind: PendingKind::Connection,
        credential: None,
    };
    let env = EventEnvelope::new(&Event::PendingCreated(pending.clone()), 5, TS.into());
    assert_eq!(
        to_json(&env),
        json!({"type":"pending_request.created","seq":5,"timestamp":TS,"data":{
            "id":17,"container_name":"opencode","container_id":"","destination_host":"104.16.3.35",
            "destination_port":443,"resolved_hostname":"registry.npmjs.org",
            "first_seen":"2026-04-22T10:00:00Z","last_seen":"2026-04-22T10:03:12Z",
            "attempt_count":4,"waiting_count":1}})
    );
    assert_eq!(env.event(), Some(Event::PendingCreated(pending)));

    let claims = EventEnvelope::new(
        &Event::ClaimsChanged(ClaimsChanged { active_claims: 0 }),
        6,
        TS.into(),
    );
    assert_eq!(
        to_json(&claims),
        json!({"type":"notification.claims_changed","data":{"active_claims":0},"seq":6,"timestamp":TS})
    );

    let allowed = Event::PendingAllowed(PendingDecided {
        pending_id: 17,
        rule: Some(sample_rule()),
    });
    let env = EventEnvelope::new(&allowed, 7, TS.into());
    assert_eq!(env.data["pending_id"], 17);
    assert_eq!(env.data["rule"]["id"], 42);
    let dismissed = EventEnvelope::new(
        &Event::PendingDismissed(PendingDecided {
            pending_id: 17,
            rule: None,
        }),
        8,
        TS.into(),
    );
    assert_eq!(dismissed.data, json!({"pending_id":17}));

    let waiters = EventEnvelope::new(
        &Event::WaitersChanged(WaitersChanged {
            container_name: "opencode".into(),
            host: "104.16.3.35".into(),
            port: 443,
            previous_count: 0,
            current_count: 1,
            pending_id: None,
        }),
        9,
        TS.into(),
    );
    assert_eq!(
        waiters.data,
        json!({"container_name":"opencode","host":"104.16.3.35","port":443,"previous_count":0,"current_count":1})
    );

    // An event type this crate does not know still decodes as a raw envelope.
    let text =
        r#"{"type":"transaction.new","data":{"id":1},"seq":10,"timestamp":"2026-04-10T10:30:00Z"}"#;
    let ServerMessage::Event(raw) = ServerMessage::decode(text).unwrap() else {
        panic!()
    };
    assert_eq!(raw.event_type, "transaction.new");
    assert_eq!(raw.event(), None);
}

#[test]
fn allow_all_status_shapes() {
    assert_eq!(to_json(&AllowAllStatus::default()), json!({"active":false}));
    let s = AllowAllStatus {
        active: true,
        mode: Some(AllowAllMode::Allow),
        expires_at: Some(TS.into()),
        remaining_seconds: Some(1799),
    };
    assert_eq!(
        to_json(&s),
        json!({"active":true,"mode":"allow","expires_at":TS,"remaining_seconds":1799})
    );
}

/// Each closed set's names exactly as they were when the fields were plain strings: decoding
/// the string gives the variant, encoding the variant gives the string.
fn pin_names<T>(pairs: &[(T, &str)], all: &[T])
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug + Copy,
{
    assert_eq!(pairs.len(), all.len(), "every variant is pinned");
    for (v, name) in pairs {
        assert_eq!(serde_json::to_string(v).unwrap(), format!("\"{name}\""));
        assert_eq!(
            serde_json::from_str::<T>(&format!("\"{name}\"")).unwrap(),
            *v
        );
    }
}

#[test]
fn closed_sets_keep_their_string_names() {
    use greyproxy_protocol::middleware::{EventAction, OnDisconnect};
    pin_names(
        &[
            (TransactionResult::Auto, "auto"),
            (TransactionResult::Denied, "denied"),
            (TransactionResult::Error, "error"),
        ],
        TransactionResult::ALL,
    );
    pin_names(
        &[
            (MitmOutcome::Intercepted, "intercepted"),
            (MitmOutcome::Http, "http"),
            (MitmOutcome::MitmDisabled, "mitm_disabled"),
            (MitmOutcome::MitmBypass, "mitm_bypass"),
            (MitmOutcome::NoCert, "no_cert"),
            (MitmOutcome::NonTls, "non_tls"),
            (MitmOutcome::NonHttp, "non_http"),
            (MitmOutcome::ServerFirst, "server_first"),
            (MitmOutcome::ClientClosed, "client_closed"),
            (MitmOutcome::MitmError, "mitm_error"),
            (MitmOutcome::UpstreamTlsError, "upstream_tls_error"),
            (MitmOutcome::ConnectFailed, "connect_failed"),
        ],
        MitmOutcome::ALL,
    );
    pin_names(
        &[
            (EventAction::Deny, "deny"),
            (EventAction::Block, "block"),
            (EventAction::Rewrite, "rewrite"),
            (EventAction::TaggedAllow, "tagged-allow"),
            (EventAction::TaggedPassthrough, "tagged-passthrough"),
        ],
        EventAction::ALL,
    );
    pin_names(
        &[(OnDisconnect::Allow, "allow"), (OnDisconnect::Deny, "deny")],
        OnDisconnect::ALL,
    );
    let e = serde_json::from_str::<TransactionResult>("\"allowed\"").unwrap_err();
    assert!(
        e.to_string()
            .contains(r#"invalid transaction result "allowed": use auto, denied or error"#),
        "{e}"
    );
}

#[test]
fn transaction_and_connection_rows_with_typed_fields() {
    use greyproxy_protocol::middleware::{EventAction, MiddlewareEvent};
    let t = Transaction {
        id: 7,
        timestamp: TS.into(),
        container_name: "codex".into(),
        destination_host: "api.openai.com".into(),
        destination_port: 443,
        method: "POST".into(),
        url: "https://api.openai.com/v1/responses".into(),
        status_code: Some(403),
        result: TransactionResult::Denied,
        middleware_events: vec![MiddlewareEvent {
            hook: "mitm-request".into(),
            action: EventAction::Deny,
            status_code: 403,
            created_at: TS.into(),
            ..MiddlewareEvent::default()
        }],
        ..Transaction::default()
    };
    let text = r#"{"id":7,"timestamp":"2026-04-10T10:30:00Z","container_name":"codex","destination_host":"api.openai.com","destination_port":443,"method":"POST","url":"https://api.openai.com/v1/responses","status_code":403,"result":"denied","middleware_events":[{"sequence":0,"middleware_url":"","hook":"mitm-request","action":"deny","status_code":403,"created_at":"2026-04-10T10:30:00Z"}]}"#;
    assert_eq!(serde_json::to_string(&t).unwrap(), text);
    assert_eq!(serde_json::from_str::<Transaction>(text).unwrap(), t);

    let log: RequestLog = serde_json::from_value(json!({"id":1,"timestamp":TS,
        "container_name":"c","container_id":null,"destination_host":"h","destination_port":443,
        "resolved_hostname":null,"method":"HTTP","result":"allowed","rule_id":null,
        "response_time_ms":0,"mitm":"upstream_tls_error"}))
    .unwrap();
    assert_eq!(log.mitm, Some(MitmOutcome::UpstreamTlsError));
    assert_eq!(to_json(&log)["mitm"], "upstream_tls_error");
}

#[test]
fn llm_shapes() {
    use greyproxy_protocol::llm::*;
    let call = LlmCall {
        id: 57,
        transaction_id: 5012,
        response_transaction_ids: vec![],
        upgrade_id: None,
        timestamp: "2026-04-10T10:30:00.120Z".into(),
        container_name: "claude".into(),
        client: LlmClient::ClaudeCode,
        provider: "anthropic".into(),
        operation: "chat".into(),
        decoder: "anthropic".into(),
        host: "api.anthropic.com".into(),
        model_requested: Some("claude-sonnet-4-5".into()),
        model_answered: None,
        response_id: None,
        session_id: Some("s1".into()),
        session_source: SessionSource::Wire,
        thread: LlmThread::Main,
        conversation_id: Some("claude-code:s1".into()),
        turn: Some(2),
        stream: true,
        stop_reason: Some("tool_use".into()),
        status_code: Some(200),
        duration_ms: Some(2410),
        ttft_ms: Some(612),
        tool_calls: vec![ToolCallInfo {
            id: "toolu_1".into(),
            name: "Bash".into(),
            summary: "npm install left-pad".into(),
            input_preview: String::new(),
        }],
        last_text: None,
        error: None,
        usage: Some(Usage {
            input_tokens: 5336,
            cache_read_tokens: 0,
            cache_write_tokens: 5333,
            cache_write_5m_tokens: Some(5333),
            cache_write_1h_tokens: None,
            output_tokens: 148,
            reasoning_tokens: 0,
        }),
        usage_raw: None,
        cost: Cost {
            state: PriceState::Unpriced,
            micro_usd: None,
            price_model: None,
            table_version: "t".into(),
            provider_micro_usd: None,
        },
    };
    let v = json!({"id":57,"transaction_id":5012,"timestamp":"2026-04-10T10:30:00.120Z",
        "container_name":"claude","client":"claude-code","provider":"anthropic","operation":"chat",
        "decoder":"anthropic","host":"api.anthropic.com","model_requested":"claude-sonnet-4-5",
        "session_id":"s1","session_source":"wire","thread":"main",
        "conversation_id":"claude-code:s1","turn":2,"stream":true,"stop_reason":"tool_use",
        "status_code":200,"duration_ms":2410,"ttft_ms":612,
        "tool_calls":[{"id":"toolu_1","name":"Bash","summary":"npm install left-pad"}],
        "usage":{"input_tokens":5336,"cache_read_tokens":0,"cache_write_tokens":5333,
                 "cache_write_5m_tokens":5333,"output_tokens":148,"reasoning_tokens":0},
        "cost":{"state":"unpriced","table_version":"t"}});
    assert_eq!(to_json(&call), v);
    assert_eq!(serde_json::from_value::<LlmCall>(v).unwrap(), call);
    let env = EventEnvelope::new(&Event::LlmCallNew(call), 9, TS.into());
    assert_eq!(to_json(&env)["type"], "llm_call.new");

    let ctx = LlmContext {
        conversation_id: "claude-code:s1".into(),
        turn: 2,
        call_id: 57,
        tool: "Bash".into(),
        summary: "curl -s https://x.example".into(),
        last_text: None,
        age_secs: 1,
    };
    assert_eq!(
        to_json(&ctx),
        json!({"conversation_id":"claude-code:s1","turn":2,"call_id":57,"tool":"Bash",
               "summary":"curl -s https://x.example","age_secs":1})
    );
    let bad = serde_json::from_value::<LlmCall>(json!({"client":"vim"}));
    assert!(bad.is_err());
    assert_eq!(
        "gemini-cli".parse::<LlmClient>().unwrap(),
        LlmClient::GeminiCli
    );
    assert_eq!(
        to_json(&ConversationStatus::InProgress),
        json!("in_progress")
    );
}

#[test]
fn conversation_updated_keeps_greyproxys_conversation_id() {
    use greyproxy_protocol::event::ConversationUpdated;
    use greyproxy_protocol::llm::*;
    let summary = ConversationSummary {
        id: "codex:s1".into(),
        session_id: "s1".into(),
        session_source: SessionSource::Wire,
        thread: LlmThread::Main,
        parent_id: None,
        parent_tool_call_id: None,
        container_name: "codex".into(),
        client: LlmClient::Codex,
        provider: "openai".into(),
        models: vec!["gpt-5-mini".into()],
        status: ConversationStatus::Answered,
        started_at: TS.into(),
        last_activity: TS.into(),
        turns: 1,
        title: String::new(),
        totals: LlmTotals::default(),
        context_tokens: 10,
        context_window: None,
    };
    let env = EventEnvelope::new(
        &Event::ConversationUpdated(ConversationUpdated::from(summary.clone())),
        3,
        TS.into(),
    );
    let v = to_json(&env);
    assert_eq!(v["type"], "conversation.updated");
    assert_eq!(v["data"]["conversation_id"], "codex:s1");
    assert_eq!(v["data"]["id"], "codex:s1");
    assert_eq!(v["data"]["totals"]["calls"], 0);
    let Some(Event::ConversationUpdated(back)) = env.event() else {
        panic!("{v}")
    };
    assert_eq!(back.summary, summary);
}

#[test]
fn a_conversation_round_trips_with_its_turn_count_and_turns() {
    use greyproxy_protocol::llm::*;
    let v = json!({"id":"claude-code:s","session_id":"s","session_source":"wire","thread":"main",
        "container_name":"claude","client":"claude-code","provider":"anthropic",
        "models":["claude-sonnet-4-5"],"status":"answered","started_at":TS,"last_activity":TS,
        "turn_count":1,"totals":{"calls":1,"usage":{"input_tokens":5,"cache_read_tokens":0,
        "cache_write_tokens":0,"output_tokens":2,"reasoning_tokens":0},"cost_micro_usd":7,
        "unpriced_calls":0,"duration_ms":10},"context_tokens":5,
        "turns":[{"number":1,"user_prompt":"hi","steps":[{"call_id":3,"text":"hello",
            "tool_calls":[{"id":"t1","name":"Bash","summary":"ls","result_preview":"a",
                           "is_error":true,"linked_conversation_id":"claude-code:s/agent-1"}]}],
            "call_ids":[3],"started_at":TS,"ended_at":TS}]});
    let c: Conversation = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(c.summary.turns, 1);
    assert_eq!(c.turns.len(), 1);
    assert!(c.turns[0].steps[0].tool_calls[0].is_error);
    assert_eq!(to_json(&c), v);
}
