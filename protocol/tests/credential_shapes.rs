//! Pins the JSON shapes of the credential and session commands, reports and events
//! (docs/protocol.md#credentials) and checks that a secret never shows in `Debug`.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use greyproxy_protocol::credentials::*;
use greyproxy_protocol::*;
use serde_json::{Value, json};

const TS: &str = "2026-04-10T10:30:00Z";

fn decode(v: Value) -> Command {
    ClientMessage::decode(&v.to_string()).unwrap().command
}

#[test]
fn create_credential_reads_the_wire_form_and_hides_the_secret_from_debug() {
    let c = decode(
        json!({"command":"create_credential","label":"OPENAI_API_KEY",
        "secret":"sk-very-secret-value","destinations":["api.openai.com","**.openai.com:443/v1"],
        "containers":["agent-*"],"places":{"json_body":true},"allow_plaintext":false}),
    );
    let Command::CreateCredential(a) = &c else {
        panic!("{c:?}")
    };
    assert_eq!(a.secret.0, "sk-very-secret-value");
    assert_eq!(
        a.places,
        Some(CredentialPlaces {
            headers: true,
            query: true,
            json_body: true,
            form_body: false
        })
    );
    assert_eq!(a.containers, vec!["agent-*".to_string()]);
    let dbg = format!("{c:?}");
    assert!(!dbg.contains("sk-very"), "{dbg}");
    assert!(dbg.contains("<secret>"), "{dbg}");
    // Missing secret: a clear argument error naming the field.
    let (_, e) = ClientMessage::decode(
        &json!({"command":"create_credential","label":"X","destinations":["a.b"]}).to_string(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("secret"), "{e}");
}

#[test]
fn update_credential_distinguishes_absent_and_cleared_expiry() {
    let Command::UpdateCredential(a) = decode(json!({"command":"update_credential","label":"K"}))
    else {
        panic!()
    };
    assert_eq!(a.expires_at, None);
    assert_eq!(a.secret, None);
    let Command::UpdateCredential(a) =
        decode(json!({"command":"update_credential","label":"K","expires_at":null,"secret":"new"}))
    else {
        panic!()
    };
    assert_eq!(a.expires_at, Some(None));
    assert_eq!(a.secret, Some(WireSecret("new".into())));
}

#[test]
fn session_commands_and_decisions() {
    assert_eq!(
        decode(
            json!({"command":"create_session","container":"agent","credentials":["A","B"],
            "ttl_seconds":600,"allow_all":true,"session_id":"gw-0123"})
        ),
        Command::CreateSession(CreateSessionArgs {
            session_id: Some("gw-0123".into()),
            container: "agent".into(),
            credentials: vec!["A".into(), "B".into()],
            ttl_seconds: Some(600),
            allow_all: Some(true),
        })
    );
    assert_eq!(
        decode(json!({"command":"heartbeat_session","session_id":"gw-0123"})),
        Command::HeartbeatSession(SessionIdArgs {
            session_id: "gw-0123".into()
        })
    );
    for (name, d) in [
        ("send_once", CredentialDecision::SendOnce),
        ("bind", CredentialDecision::Bind),
        ("send_unchanged", CredentialDecision::SendUnchanged),
        ("refuse", CredentialDecision::Refuse),
    ] {
        let Command::DecideCredential(a) = decode(json!({"command":"decide_credential",
            "pending_id":9,"decision":name,"scope":"any_port","duration":"1h"}))
        else {
            panic!()
        };
        assert_eq!(a.decision, d);
        assert_eq!(a.scope, Some(command::Scope::AnyPort));
    }
    let (_, e) = ClientMessage::decode(
        &json!({"command":"decide_credential","pending_id":9,"decision":"maybe"}).to_string(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("maybe"), "{e}");
}

fn sample_credential() -> CredentialInfo {
    CredentialInfo {
        id: "cr-0011223344556677".into(),
        label: "OPENAI_API_KEY".into(),
        preview: "sk-p…(51 chars)".into(),
        destinations: vec![
            CredentialDestination {
                pattern: "api.openai.com".into(),
                expires_at: None,
            },
            CredentialDestination {
                pattern: "echo.test:443".into(),
                expires_at: Some(TS.into()),
            },
        ],
        containers: vec!["*".into()],
        places: CredentialPlaces::default(),
        allow_plaintext: false,
        expires_at: None,
        created_at: TS.into(),
        updated_at: TS.into(),
        substitutions: 3,
    }
}

fn sample_session() -> SessionInfo {
    SessionInfo {
        session_id: "gw-0123".into(),
        container: "agent".into(),
        credentials: vec!["OPENAI_API_KEY".into()],
        ttl_seconds: 900,
        created_at: TS.into(),
        last_heartbeat: TS.into(),
        expires_at: "2026-04-10T10:45:00Z".into(),
        remaining_seconds: 900,
        allow_all: false,
        substitutions: BTreeMap::from([("OPENAI_API_KEY".to_string(), 2)]),
    }
}

#[test]
fn reports_have_their_shapes() {
    assert_eq!(
        serde_json::to_value(sample_credential()).unwrap(),
        json!({"id":"cr-0011223344556677","label":"OPENAI_API_KEY","preview":"sk-p…(51 chars)",
            "destinations":[{"pattern":"api.openai.com"},{"pattern":"echo.test:443","expires_at":TS}],
            "containers":["*"],
            "places":{"headers":true,"query":true,"json_body":false,"form_body":false},
            "allow_plaintext":false,"expires_at":null,"created_at":TS,"updated_at":TS,
            "substitutions":3})
    );
    let created = SessionCreated {
        session: sample_session(),
        placeholders: BTreeMap::from([(
            "OPENAI_API_KEY".to_string(),
            "greyproxy:credential:v1:gw-0123:00112233445566778899aabbccddeeff".to_string(),
        )]),
    };
    let v = serde_json::to_value(&created).unwrap();
    assert_eq!(v["session"]["session_id"], "gw-0123");
    assert_eq!(v["session"]["substitutions"]["OPENAI_API_KEY"], 2);
    assert_eq!(
        v["placeholders"]["OPENAI_API_KEY"],
        "greyproxy:credential:v1:gw-0123:00112233445566778899aabbccddeeff"
    );
    assert_eq!(
        serde_json::from_value::<SessionCreated>(v).unwrap(),
        created
    );
}

#[test]
fn events_round_trip() {
    let events = vec![
        Event::CredentialCreated(sample_credential()),
        Event::CredentialUpdated(sample_credential()),
        Event::CredentialDeleted(CredentialDeleted {
            id: "cr-1".into(),
            label: "K".into(),
        }),
        Event::CredentialSubstitutions(SubstitutionCounts {
            counts: vec![SubstitutionCount {
                session_id: "gw-1".into(),
                label: "K".into(),
                total: 5,
                added: 2,
            }],
        }),
        Event::SessionCreated(sample_session()),
        Event::SessionExpired(SessionEnded {
            session_id: "gw-1".into(),
            container: "agent".into(),
        }),
        Event::SessionDeleted(SessionEnded {
            session_id: "gw-1".into(),
            container: "agent".into(),
        }),
    ];
    for e in events {
        let env = EventEnvelope::new(&e, 1, TS.into());
        assert!(event::EVENT_TYPES.contains(&env.event_type.as_str()));
        assert_eq!(env.event(), Some(e));
    }
    let env = EventEnvelope::new(
        &Event::SessionExpired(SessionEnded {
            session_id: "gw-1".into(),
            container: "agent".into(),
        }),
        4,
        TS.into(),
    );
    assert_eq!(
        serde_json::to_value(&env).unwrap(),
        json!({"type":"session.expired","data":{"session_id":"gw-1","container":"agent"},
            "seq":4,"timestamp":TS})
    );
}

#[test]
fn a_credential_pending_request_says_what_and_where() {
    let p = PendingRequest {
        id: 17,
        container_name: "agent".into(),
        container_id: String::new(),
        destination_host: "echo.test".into(),
        destination_port: 443,
        resolved_hostname: None,
        first_seen: TS.into(),
        last_seen: TS.into(),
        attempt_count: 1,
        waiting_count: 1,
        llm_context: None,
        kind: PendingKind::Credential,
        credential: Some(CredentialEgress {
            label: Some("OPENAI_API_KEY".into()),
            session_id: Some("gw-1".into()),
            request: "GET https://echo.test:443/anything".into(),
            found_in: FoundIn::Header,
            name: "authorization".into(),
            reason: "destination_not_bound".into(),
        }),
    };
    let v = serde_json::to_value(&p).unwrap();
    assert_eq!(v["kind"], "credential");
    assert_eq!(
        v["credential"],
        json!({"label":"OPENAI_API_KEY","session_id":"gw-1",
            "request":"GET https://echo.test:443/anything","found_in":"header",
            "name":"authorization","reason":"destination_not_bound"})
    );
    assert_eq!(serde_json::from_value::<PendingRequest>(v).unwrap(), p);
    // A connection pending request keeps greyproxy's shape: no kind, no credential.
    let mut c = p.clone();
    c.kind = PendingKind::Connection;
    c.credential = None;
    let v = serde_json::to_value(&c).unwrap();
    assert!(
        v.get("kind").is_none() && v.get("credential").is_none(),
        "{v}"
    );
}
