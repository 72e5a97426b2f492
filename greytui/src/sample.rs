//! Sample daemon objects and a populated dashboard at a fixed clock, shared by the state-machine
//! tests, the render snapshots, the documentation captures and the render benchmark.

use std::time::SystemTime;

use greyproxy_protocol::{
    Action, ActivityItem, Decision, PendingRequest, RequestLog, Rule, RuleSource, RuleType,
    Transaction,
};

use crate::app::{App, Hosted, Msg};
use crate::link::LinkEvent;

pub mod credentials;
pub mod usage;

/// The fixed "now" of the samples.
pub const NOW: &str = "2026-11-22T10:00:00Z";

/// [`NOW`] as a time.
pub fn now() -> SystemTime {
    crate::format::parse_time(NOW).unwrap_or(SystemTime::UNIX_EPOCH)
}

/// A pending request first seen `age_s` seconds before [`NOW`].
pub(crate) fn pending(
    id: u64,
    container: &str,
    host: &str,
    port: u16,
    age_s: u64,
) -> PendingRequest {
    let seen = humantime::format_rfc3339_seconds(now() - std::time::Duration::from_secs(age_s));
    PendingRequest {
        id,
        container_name: container.into(),
        container_id: String::new(),
        destination_host: host.into(),
        destination_port: port,
        resolved_hostname: None,
        first_seen: seen.to_string(),
        last_seen: seen.to_string(),
        attempt_count: 1,
        waiting_count: 1,
        llm_context: None,
        kind: greyproxy_protocol::PendingKind::Connection,
        credential: None,
    }
}

/// A global rule.
pub(crate) fn rule(id: u64, container: &str, dest: &str, port: &str, action: Action) -> Rule {
    Rule {
        id,
        container_pattern: container.into(),
        destination_pattern: dest.into(),
        port_pattern: port.into(),
        rule_type: RuleType::Permanent,
        action,
        created_at: "2026-11-21T09:00:00Z".into(),
        expires_at: None,
        last_used_at: None,
        created_by: "admin".into(),
        notes: None,
        is_active: true,
        session_id: None,
        source: RuleSource::Global,
    }
}

/// A connection decision at `HH:MM:SS` of the sample day, as an activity row.
pub(crate) fn connection(
    id: u64,
    time: &str,
    container: &str,
    host: &str,
    port: u16,
    ok: bool,
) -> ActivityItem {
    ActivityItem::Connection(request_log(id, time, container, host, port, ok))
}

/// A connection decision at `HH:MM:SS` of the sample day.
pub(crate) fn request_log(
    id: u64,
    time: &str,
    container: &str,
    host: &str,
    port: u16,
    ok: bool,
) -> RequestLog {
    RequestLog {
        id,
        timestamp: format!("2026-11-22T{time}Z"),
        container_name: container.into(),
        container_id: None,
        destination_host: host.into(),
        destination_port: Some(port),
        resolved_hostname: None,
        method: Some("HTTP".into()),
        result: if ok {
            Decision::Allowed
        } else {
            Decision::Blocked
        },
        rule_id: ok.then_some(4),
        response_time_ms: Some(if ok { 2 } else { 30_001 }),
        reason: Some(if ok { "rule" } else { "hold_timeout" }.into()),
        rule_summary: ok.then(|| format!("{container} → {host}:{port}")),
        mitm: None,
    }
}

/// A recorded HTTP exchange.
pub(crate) fn transaction(
    id: u64,
    time: &str,
    container: &str,
    method: &str,
    url: &str,
    status: u16,
) -> ActivityItem {
    let host = url
        .split("://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or("")
        .to_string();
    ActivityItem::Transaction(Transaction {
        id,
        timestamp: format!("2026-11-22T{time}Z"),
        container_name: container.into(),
        destination_host: host,
        destination_port: 443,
        method: method.into(),
        url: url.into(),
        http_version: Some("HTTP/1.1".into()),
        status_code: Some(status),
        response_content_type: Some("application/json".into()),
        duration_ms: Some(412),
        rule_id: Some(4),
        result: greyproxy_protocol::TransactionResult::Auto,
        ..Transaction::default()
    })
}

/// An event envelope as the daemon sends it.
#[cfg(test)]
pub(crate) fn envelope(
    event: &greyproxy_protocol::Event,
    seq: u64,
) -> greyproxy_protocol::EventEnvelope {
    greyproxy_protocol::EventEnvelope::new(event, seq, NOW.into())
}

/// A connected dashboard of `w`×`h` with a few pending requests, rules and activity rows.
pub fn demo_app(w: u16, h: u16) -> App {
    let mut app = App::new(now(), (w, h), false);
    app.update(Msg::Link(LinkEvent::Connected {
        server_version: "0.1.0".into(),
        url: "ws://127.0.0.1:43080/ws".into(),
    }));
    app.claimed = true;
    app.claims = 1;
    let mut p1 = pending(17, "opencode", "104.16.3.35", 443, 4);
    p1.resolved_hostname = Some("registry.npmjs.org".into());
    p1.attempt_count = 3;
    p1.waiting_count = 2;
    let mut p2 = pending(16, "claude-code", "api.github.com", 443, 95);
    p2.waiting_count = 0;
    let p3 = pending(15, "aider", "pypi.org", 443, 7200);
    app.pending = vec![p1, p2, p3]
        .into_iter()
        .map(Hosted::local)
        .collect::<Vec<_>>()
        .into();
    let mut r1 = rule(7, "opencode", "**.npmjs.org", "*", Action::Allow);
    r1.expires_at = Some("2026-11-22T11:00:00Z".into());
    r1.rule_type = RuleType::Temporary;
    r1.notes = Some("npm installs".into());
    let r2 = rule(6, "*", "169.254.169.254", "*", Action::Deny);
    let mut r3 = rule(1, "*", "127.0.0.1", "*", Action::Allow);
    r3.source = RuleSource::Builtin;
    r3.created_by = "builtin".into();
    app.rules = vec![r1, r2, r3]
        .into_iter()
        .map(Hosted::local)
        .collect::<Vec<_>>()
        .into();
    let items = vec![
        transaction(
            12,
            "09:59:58",
            "opencode",
            "POST",
            "https://api.anthropic.com/v1/messages",
            200,
        ),
        connection(41, "09:59:57", "opencode", "api.anthropic.com", 443, true),
        connection(40, "09:59:31", "aider", "pypi.org", 443, false),
        transaction(
            11,
            "09:58:02",
            "claude-code",
            "GET",
            "https://api.github.com/repos/o/r",
            404,
        ),
        connection(39, "09:58:01", "claude-code", "api.github.com", 443, true),
    ];
    app.activity.loading.clear();
    app.activity.set_first_page(0, items, 5, None);
    app.message = None;
    app.dirty = true;
    app
}

/// The sample dashboard over a fleet of three hosts: `build1` (focused, the sample's
/// requests), `build2` (connected, request 15 and rule 6 are its), `lab` (ssh refused).
pub fn demo_fleet_app(w: u16, h: u16) -> App {
    use std::time::Duration;
    let names = ["build1", "build2", "lab"].map(String::from);
    let mut app = demo_app(w, h).with_hosts(&names);
    app.hosts[0].conn = crate::app::ConnState::Connected;
    app.hosts[0].version = Some("0.1.0".into());
    app.hosts[0].rtt = Some(Duration::from_micros(1800));
    app.hosts[1].conn = crate::app::ConnState::Connected;
    app.hosts[1].version = Some("0.1.0".into());
    app.hosts[1].rtt = Some(Duration::from_micros(23_400));
    app.hosts[2].conn = crate::app::ConnState::Disconnected {
        reason: "ssh lab: ssh authentication refused (batch mode asks for no password: load a key into ssh-agent)".into(),
        unauthorized: true,
        retry_in: Duration::from_secs(5),
    };
    let mut pending = app.pending.to_vec();
    for p in &mut pending {
        if p.id == 15 {
            p.host = 1;
        }
    }
    app.pending = pending.into();
    let mut rules = app.rules.to_vec();
    for r in &mut rules {
        if r.id == 6 {
            r.host = 1;
        }
    }
    rules.sort_by_key(|r| r.host);
    app.rules = rules.into();
    app.url = "ssh build1".into();
    app
}

/// A WebSocket upgrade (101) row, completed at close.
pub fn ws_upgrade(id: u64) -> Transaction {
    Transaction {
        id,
        timestamp: "2026-11-22T10:00:00Z".into(),
        container_name: "codex".into(),
        destination_host: "api.openai.com".into(),
        destination_port: 443,
        method: "GET".into(),
        url: "wss://api.openai.com/v1/responses".into(),
        http_version: Some("HTTP/1.1".into()),
        status_code: Some(101),
        result: greyproxy_protocol::TransactionResult::Auto,
        ws_extensions: Some("permessage-deflate; client_max_window_bits".into()),
        ws_messages: Some(3),
        ws_close_code: Some(1000),
        ws_close_reason: Some("done".into()),
        ..Transaction::default()
    }
}

/// Message `index` of upgrade `upgrade` (`client`: client → server), as listed (no payload).
pub fn ws_message(id: u64, upgrade: u64, index: u64, client: bool, size: u64) -> Transaction {
    Transaction {
        id,
        timestamp: format!("2026-11-22T10:00:0{}Z", index % 10),
        container_name: "codex".into(),
        destination_host: "api.openai.com".into(),
        destination_port: 443,
        method: if client { "WS_REQ" } else { "WS_RESP" }.into(),
        url: "wss://api.openai.com/v1/responses".into(),
        status_code: Some(101),
        result: greyproxy_protocol::TransactionResult::Auto,
        upgrade_id: Some(upgrade),
        opcode: Some("text".into()),
        message_index: Some(index),
        request_body_size: Some(size),
        wire_size: Some(size / 5),
        compressed: true,
        ..Transaction::default()
    }
}

/// A `result` reply carrying `data`, as the daemon answers a query.
pub fn result_reply(data: serde_json::Value) -> greyproxy_protocol::Reply {
    greyproxy_protocol::Reply::Result {
        command: "x".into(),
        request_id: None,
        data,
        timestamp: NOW.into(),
    }
}

/// Two configured middlewares: a ready stdio one and a WebSocket one that is down.
pub fn middlewares() -> Vec<greyproxy_protocol::middleware::MiddlewareStatus> {
    use greyproxy_protocol::middleware::MiddlewareStatus;
    vec![
        MiddlewareStatus {
            url: "stdio:/usr/local/bin/redact".into(),
            kind: "stdio".into(),
            command: vec![
                "/usr/local/bin/redact".into(),
                "--mask".into(),
                "api keys".into(),
            ],
            name: "redactor".into(),
            connected: true,
            ready: true,
            protocol_version: 1,
            hooks: vec!["http-request".into(), "http-response".into()],
            max_body_bytes: 1_048_576,
            timeout_ms: 5000,
            on_disconnect: greyproxy_protocol::middleware::OnDisconnect::Deny,
            connects: 1,
            pid: Some(4242),
            ..MiddlewareStatus::default()
        },
        MiddlewareStatus {
            url: "ws://127.0.0.1:9000/mw".into(),
            kind: "ws".into(),
            timeout_ms: 1500,
            on_disconnect: greyproxy_protocol::middleware::OnDisconnect::Allow,
            last_error: Some("connection refused".into()),
            connects: 3,
            ..MiddlewareStatus::default()
        },
    ]
}

/// Middleware decisions on one exchange: a tag on the request, a rewrite of it, and a block of
/// the response by a nameless stdio middleware after a timeout.
pub fn middleware_events() -> Vec<greyproxy_protocol::middleware::MiddlewareEvent> {
    use greyproxy_protocol::middleware::{EventAction, MiddlewareEvent};
    let mut tags = serde_json::Map::new();
    tags.insert("pii".into(), serde_json::json!(true));
    tags.insert("kind".into(), serde_json::json!("api-key"));
    vec![
        MiddlewareEvent {
            sequence: 0,
            middleware_name: "classifier".into(),
            middleware_url: "ws://127.0.0.1:9000/mw".into(),
            hook: "http-request".into(),
            action: EventAction::TaggedAllow,
            tags,
            duration_ms: 3,
            created_at: "2026-11-22T09:59:58Z".into(),
            ..MiddlewareEvent::default()
        },
        MiddlewareEvent {
            sequence: 1,
            middleware_name: "redactor".into(),
            hook: "http-request".into(),
            action: EventAction::Rewrite,
            headers_changed: vec!["authorization".into(), "x-api-key".into()],
            body_rewritten: true,
            duration_ms: 12,
            created_at: "2026-11-22T09:59:58Z".into(),
            ..MiddlewareEvent::default()
        },
        MiddlewareEvent {
            sequence: 0,
            hook: "http-response".into(),
            action: EventAction::Block,
            status_code: 403,
            duration_ms: 5000,
            fallback: Some("timeout".into()),
            created_at: "2026-11-22T09:59:58Z".into(),
            ..MiddlewareEvent::default()
        },
    ]
}
