//! The service: a request's plan follows the live tables (substitute, then egress once the
//! credential is deleted or the session swept), timed bindings lapse, the counters are
//! published only when they changed, and an unavailable vault holds every placeholder.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use greyproxy_protocol::Event;

use super::bind::{Target, Transport};
use super::model::Destination;
use super::scan::Scan;
use super::service::Service;
use super::tests::{SECRET, new_cred};
use crate::events::EventBus;
use crate::store::Store;

fn open(dir: &std::path::Path) -> (Arc<Service>, Arc<EventBus>) {
    let store = Arc::new(Store::open(&dir.join("s.redb")).unwrap());
    let events = Arc::new(EventBus::new());
    (Arc::new(Service::open(store, events.clone(), dir)), events)
}

fn target<'a>(host: &'a str) -> Target<'a> {
    Target {
        host,
        port: 443,
        path: "/v1/x",
        method: "GET",
        container: "codex",
        transport: Transport::InterceptedTls,
    }
}

fn scan_of(ph: &str) -> Scan {
    let mut h = http::HeaderMap::new();
    h.insert("authorization", format!("Bearer {ph}").parse().unwrap());
    let mut s = Scan::default();
    s.headers(&h);
    s
}

fn now() -> u64 {
    crate::time::now_secs()
}

#[tokio::test]
async fn the_plan_follows_the_tables() {
    let dir = tempfile::tempdir().unwrap();
    let (svc, _) = open(dir.path());
    svc.create_credential(new_cred("K", &["api.test"]))
        .await
        .unwrap();
    let s = svc
        .create_session(None, "codex", &["K".to_string()], None, false)
        .await
        .unwrap();
    let ph = s.placeholders["K"].clone();
    let plan = svc.plan(&scan_of(&ph), &target("api.test"), now());
    assert_eq!(plan.subs.len(), 1);
    assert_eq!(plan.subs[0].secret.expose(), SECRET);
    assert!(plan.egress.is_empty());

    let plan = svc.plan(&scan_of(&ph), &target("echo.test"), now());
    assert_eq!(plan.egress[0].reason, "destination_not_bound");
    assert_eq!(plan.egress[0].label.as_deref(), Some("K"));

    // A timed binding counts until its end.
    let id = plan.egress[0].credential.clone().unwrap();
    let mut d = Destination::parse("echo.test").unwrap();
    d.expires_at = Some(now() + 100);
    svc.bind(&id, d).await.unwrap();
    assert_eq!(
        svc.plan(&scan_of(&ph), &target("echo.test"), now())
            .subs
            .len(),
        1
    );
    let later = svc.plan(&scan_of(&ph), &target("echo.test"), now() + 200);
    assert_eq!(later.egress[0].reason, "destination_not_bound");

    // send_once forces what is held.
    let mut plan = svc.plan(&scan_of(&ph), &target("other.test"), now());
    svc.force(&mut plan);
    assert!(plan.egress.is_empty() && plan.subs.len() == 1);

    svc.delete_credential("K").await.unwrap();
    let plan = svc.plan(&scan_of(&ph), &target("api.test"), now());
    assert_eq!(plan.egress[0].reason, "deleted_credential");
    let mut plan = plan;
    svc.force(&mut plan);
    assert!(plan.subs.is_empty(), "no secret left to send");
}

#[tokio::test]
async fn sessions_are_swept_and_announced_and_counters_batched() {
    let dir = tempfile::tempdir().unwrap();
    let (svc, events) = open(dir.path());
    let mut rx = events.subscribe();
    svc.create_credential(new_cred("K", &["api.test"]))
        .await
        .unwrap();
    let s = svc
        .create_session(
            Some("gw-1".into()),
            "codex",
            &["K".to_string()],
            Some(1),
            false,
        )
        .await
        .unwrap();
    let cid = svc.list_credentials().credentials[0].id.clone();
    svc.count("gw-1", &cid);
    svc.count("gw-1", &cid);
    svc.publish_counts();
    svc.publish_counts(); // nothing changed: no second event
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    svc.sweep().await;
    let mut seen = Vec::new();
    while let Ok(p) = rx.try_recv() {
        seen.push(p.event.clone());
    }
    let counts: Vec<_> = seen
        .iter()
        .filter_map(|e| match e {
            Event::CredentialSubstitutions(c) => Some(c.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(counts.len(), 1, "{seen:?}");
    assert_eq!(counts[0].counts[0].total, 2);
    assert_eq!(counts[0].counts[0].added, 2);
    assert_eq!(counts[0].counts[0].label, "K");
    assert!(
        seen.iter()
            .any(|e| matches!(e, Event::SessionExpired(x) if x.session_id == "gw-1")),
        "{seen:?}"
    );
    assert!(svc.list_sessions().sessions.is_empty());
    // The session's counter lines are gone; the credential's total stays.
    assert_eq!(svc.list_credentials().credentials[0].substitutions, 2);
    let ph = s.placeholders["K"].clone();
    let plan = svc.plan(&scan_of(&ph), &target("api.test"), now());
    assert_eq!(plan.egress[0].reason, "unknown_placeholder");
    assert!(svc.heartbeat_session("gw-1").await.is_err());
}

#[tokio::test]
async fn an_unavailable_vault_refuses_creation_and_holds_every_placeholder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("credentials.key"), [0u8; 7]).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.path().join("credentials.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let (svc, _) = open(dir.path());
    let why = svc.unavailable().unwrap().to_string();
    assert!(why.contains("7 bytes"), "{why}");
    let e = svc
        .create_credential(new_cred("K", &["api.test"]))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("credentials are unavailable"), "{e}");
    let ph = "greyproxy:credential:v1:s1:00112233445566778899aabbccddeeff";
    let plan = svc.plan(&scan_of(ph), &target("api.test"), now());
    assert_eq!(plan.egress[0].reason, "credentials_unavailable");
}
