//! Sample credentials, launcher sessions and a secret-egress pending request at the samples'
//! fixed clock, for the Credentials view's state-machine tests, render snapshots and docs.

use std::collections::BTreeMap;

use greyproxy_protocol::credentials::{
    CredentialDestination, CredentialEgress, CredentialInfo, CredentialList, CredentialPlaces,
    FoundIn, SessionInfo, SessionList,
};
use greyproxy_protocol::{PendingKind, PendingRequest};
use serde_json::Value;

use super::pending;
use crate::app::hosted::Hosted;
use crate::app::{App, Msg, Tag};
use crate::link::LinkEvent;

fn credential(id: &str, label: &str, preview: &str, dest: &[&str]) -> CredentialInfo {
    CredentialInfo {
        id: id.into(),
        label: label.into(),
        preview: preview.into(),
        destinations: dest
            .iter()
            .map(|d| CredentialDestination {
                pattern: d.to_string(),
                expires_at: None,
            })
            .collect(),
        containers: Vec::new(),
        places: CredentialPlaces::default(),
        allow_plaintext: false,
        expires_at: None,
        created_at: "2026-11-21T09:00:00Z".into(),
        updated_at: "2026-11-21T09:00:00Z".into(),
        substitutions: 0,
    }
}

/// Two credentials: Anthropic's key for any container, a GitHub token for `ci-*` only, in
/// headers and JSON bodies, bound to a second host for a day.
pub fn credentials() -> CredentialList {
    let mut a = credential(
        "cr-1a2b3c4d5e6f7a8b",
        "ANTHROPIC_API_KEY",
        "sk-a…(108 chars)",
        &["api.anthropic.com"],
    );
    a.substitutions = 42;
    let mut g = credential(
        "cr-9f8e7d6c5b4a3928",
        "GITHUB_TOKEN",
        "ghp_…(40 chars)",
        &["api.github.com", "uploads.github.com/repos/acme/"],
    );
    g.destinations[1].expires_at = Some("2026-11-23T10:00:00Z".into());
    g.containers = vec!["ci-*".into()];
    g.places.json_body = true;
    g.expires_at = Some("2026-12-22T10:00:00Z".into());
    g.substitutions = 3;
    CredentialList {
        credentials: vec![a, g],
        available: true,
        unavailable_reason: None,
    }
}

/// One live session of container `claude` with both credentials, 11 minutes left of 15.
pub fn sessions() -> SessionList {
    let mut subs = BTreeMap::new();
    subs.insert("ANTHROPIC_API_KEY".to_string(), 42);
    SessionList {
        sessions: vec![SessionInfo {
            session_id: "gw-5f0c8c1e2b7a4d38".into(),
            container: "claude".into(),
            credentials: vec!["ANTHROPIC_API_KEY".into(), "GITHUB_TOKEN".into()],
            ttl_seconds: 900,
            created_at: "2026-11-22T09:30:00Z".into(),
            last_heartbeat: "2026-11-22T09:56:00Z".into(),
            expires_at: "2026-11-22T10:11:00Z".into(),
            remaining_seconds: 660,
            allow_all: false,
            substitutions: subs,
        }],
    }
}

/// Claude's Anthropic key on its way to an echo service: held as secret egress.
pub fn egress_pending(id: u64) -> PendingRequest {
    let mut p = pending(id, "claude", "echo.example.net", 443, 3);
    p.kind = PendingKind::Credential;
    p.credential = Some(CredentialEgress {
        label: Some("ANTHROPIC_API_KEY".into()),
        session_id: Some("gw-5f0c8c1e2b7a4d38".into()),
        request: "POST https://echo.example.net:443/anything".into(),
        found_in: FoundIn::Header,
        name: "x-api-key".into(),
        reason: "destination_not_bound".into(),
    });
    p
}

fn answer(app: &mut App, tag: Tag, data: Value) {
    let outcome = Ok(super::result_reply(data));
    app.update(Msg::Link(LinkEvent::Reply { tag, outcome }));
}

/// The demo dashboard on the Credentials view with the samples listed, and the egress
/// request first in Pending.
pub fn credentials_app(w: u16, h: u16) -> App {
    let mut app = super::demo_app(w, h);
    let mut pending: Vec<Hosted<PendingRequest>> = app.pending.to_vec();
    pending.insert(0, Hosted::local(egress_pending(18)));
    app.pending = pending.into();
    app.update(Msg::Key(crossterm::event::KeyEvent::new(
        crossterm::event::KeyCode::Char('7'),
        crossterm::event::KeyModifiers::NONE,
    )));
    answer(
        &mut app,
        Tag::Credentials,
        serde_json::to_value(credentials()).unwrap_or_default(),
    );
    answer(
        &mut app,
        Tag::Sessions,
        serde_json::to_value(sessions()).unwrap_or_default(),
    );
    app.message = None;
    app
}
