//! The binding decision: one test per reason, the echo attack's shape among them.

#![allow(clippy::unwrap_used)]

use super::bind::{Binding, EgressReason, Target, Transport, decide};
use super::scan::PlaceKind;
use super::session::Session;
use super::table::Tables;
use super::tests::new_cred;
use super::{create, vault::Vault};

const NOW: u64 = 10_000;

/// One credential bound to `api.openai.com/v1`, one session for `sandbox-a`: the tables and
/// the placeholder.
fn setup(edit: impl FnOnce(&mut super::NewCredential)) -> (Tables, String) {
    let vault = Vault::from_key(&[1; 32]).unwrap();
    let mut new = new_cred("OPENAI_API_KEY", &["api.openai.com/v1"]);
    new.containers = vec!["sandbox-*".into()];
    edit(&mut new);
    let c = create(&vault, &Tables::default(), &new, NOW).unwrap();
    let s = Session::new("gw-1", "sandbox-a", Some(900), &[&c], false, NOW).unwrap();
    let p = s.placeholders[&c.id].clone();
    (Tables::new(vec![c], vec![s]), p)
}

fn target() -> Target<'static> {
    Target {
        host: "api.openai.com",
        port: 443,
        path: "/v1/chat/completions",
        method: "POST",
        container: "sandbox-a",
        transport: Transport::InterceptedTls,
    }
}

fn reason(b: Binding) -> EgressReason {
    match b {
        Binding::Egress { reason, .. } => reason,
        other => panic!("substituted: {other:?}"),
    }
}

#[test]
fn a_bound_request_is_substituted() {
    let (t, p) = setup(|_| {});
    let b = decide(&t, &p, PlaceKind::Header, &target(), NOW + 899);
    let cred = t.credential_by_label("OPENAI_API_KEY").unwrap().id.clone();
    assert_eq!(
        b,
        Binding::Substitute {
            credential: cred,
            session: "gw-1".into(),
            place: PlaceKind::Header
        }
    );
    assert!(matches!(
        decide(&t, &p, PlaceKind::Query, &target(), NOW),
        Binding::Substitute { .. }
    ));
}

#[test]
fn the_echo_attack_an_allowed_but_unbound_host_is_egress() {
    let (t, p) = setup(|_| {});
    let echo = Target {
        host: "echo.example.net",
        path: "/anything",
        ..target()
    };
    let b = decide(&t, &p, PlaceKind::Header, &echo, NOW);
    assert_eq!(
        b,
        Binding::Egress {
            reason: EgressReason::DestinationNotBound,
            label: Some("OPENAI_API_KEY".into()),
            session: Some("gw-1".into()),
        }
    );
    let outside = Target {
        path: "/dashboard",
        ..target()
    };
    assert_eq!(
        reason(decide(&t, &p, PlaceKind::Header, &outside, NOW)),
        EgressReason::DestinationNotBound
    );
}

#[test]
fn an_unknown_placeholder_is_egress_without_a_label() {
    let (t, _) = setup(|_| {});
    let forged = "greyproxy:credential:v1:gw-1:0123456789abcdef0123456789abcdef";
    assert_eq!(
        decide(&t, forged, PlaceKind::Header, &target(), NOW),
        Binding::Egress {
            reason: EgressReason::UnknownPlaceholder,
            label: None,
            session: None
        }
    );
}

#[test]
fn an_expired_or_deleted_session_refuses_its_placeholders() {
    let (mut t, p) = setup(|_| {});
    assert_eq!(
        reason(decide(&t, &p, PlaceKind::Header, &target(), NOW + 900)),
        EgressReason::SessionExpired
    );
    t.remove_session("gw-1");
    assert_eq!(
        reason(decide(&t, &p, PlaceKind::Header, &target(), NOW)),
        EgressReason::UnknownPlaceholder
    );
}

#[test]
fn a_deleted_credential_is_named_as_such() {
    let (mut t, p) = setup(|_| {});
    let id = t.credential_by_label("OPENAI_API_KEY").unwrap().id.clone();
    t.remove_credential(&id);
    assert_eq!(
        decide(&t, &p, PlaceKind::Header, &target(), NOW),
        Binding::Egress {
            reason: EgressReason::DeletedCredential,
            label: None,
            session: Some("gw-1".into())
        }
    );
}

#[test]
fn an_expired_credential_is_egress() {
    let (t, p) = setup(|n| n.expires_at = Some(NOW + 10));
    assert!(matches!(
        decide(&t, &p, PlaceKind::Header, &target(), NOW + 9),
        Binding::Substitute { .. }
    ));
    assert_eq!(
        reason(decide(&t, &p, PlaceKind::Header, &target(), NOW + 10)),
        EgressReason::CredentialExpired
    );
}

#[test]
fn another_container_cannot_use_the_sessions_placeholder() {
    let (t, p) = setup(|_| {});
    // Allowed by the credential's glob, but not the session's container.
    let other = Target {
        container: "sandbox-b",
        ..target()
    };
    assert_eq!(
        reason(decide(&t, &p, PlaceKind::Header, &other, NOW)),
        EgressReason::WrongContainer
    );
    // The session's container, but the credential does not allow it.
    let (t, p) = setup(|n| n.containers = vec!["ci-*".into()]);
    assert_eq!(
        reason(decide(&t, &p, PlaceKind::Header, &target(), NOW)),
        EgressReason::WrongContainer
    );
}

#[test]
fn plain_http_needs_the_credentials_consent() {
    let plain = Target {
        port: 80,
        transport: Transport::PlainHttp,
        ..target()
    };
    let (t, p) = setup(|_| {});
    assert_eq!(
        reason(decide(&t, &p, PlaceKind::Header, &plain, NOW)),
        EgressReason::PlaintextNotAllowed
    );
    let (t, p) = setup(|n| n.allow_plaintext = true);
    assert!(matches!(
        decide(&t, &p, PlaceKind::Header, &plain, NOW),
        Binding::Substitute { .. }
    ));
}

#[test]
fn trace_is_never_substituted() {
    let (t, p) = setup(|_| {});
    let trace = Target {
        method: "trace",
        ..target()
    };
    assert_eq!(
        reason(decide(&t, &p, PlaceKind::Header, &trace, NOW)),
        EgressReason::EchoMethod
    );
}

#[test]
fn bodies_are_substituted_only_when_enabled() {
    let (t, p) = setup(|_| {});
    assert_eq!(
        reason(decide(&t, &p, PlaceKind::JsonBody, &target(), NOW)),
        EgressReason::PlaceNotEnabled
    );
    let (t, p) = setup(|n| n.places.json_body = true);
    assert!(t.any_body_places());
    assert!(matches!(
        decide(&t, &p, PlaceKind::JsonBody, &target(), NOW),
        Binding::Substitute { .. }
    ));
    assert_eq!(
        reason(decide(&t, &p, PlaceKind::FormBody, &target(), NOW)),
        EgressReason::PlaceNotEnabled
    );
    assert_eq!(EgressReason::PlaceNotEnabled.as_str(), "place_not_enabled");
}
