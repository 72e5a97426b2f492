//! State-machine tests: keys → commands, daemon events → state, without terminal or daemon.
//! This file: connection, pending requests, resyncs; `views.rs`: rules, activity, overlays.
#![allow(clippy::unwrap_used)]

mod conversations;
mod credentials;
mod fleet;
mod middlewares;
mod usage;
mod views;
mod why;
mod ws;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use greyproxy_protocol::command::{
    CreateRuleArgs, DecideArgs, ListArgs, PendingIdArgs, RuleIdArgs, Scope, SetAllowAllArgs,
    TransactionIdArgs, UpdateRuleArgs,
};
use greyproxy_protocol::event::{PendingDecided, RuleDeleted, WaitersChanged};
use greyproxy_protocol::{
    Action as RuleAction, AllowAllMode, AllowAllStatus, Command, Decision, Event, Reply,
};
use serde_json::json;

use super::lists::ACTIVITY_PAGE;
use super::*;
use crate::sample::{self, connection, demo_app, envelope, pending, rule};

fn key(code: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

/// Types `s` key by key (`\n` = Enter, `\x1b` = Esc, `\t` = Tab) and collects the effects.
fn typing(app: &mut App, s: &str) -> Vec<Effect> {
    let mut fx = Vec::new();
    for c in s.chars() {
        let code = match c {
            '\n' => KeyCode::Enter,
            '\x1b' => KeyCode::Esc,
            '\t' => KeyCode::Tab,
            '\x08' => KeyCode::Backspace,
            c => KeyCode::Char(c),
        };
        fx.extend(app.update(key(code)));
    }
    fx
}

fn commands(fx: &[Effect]) -> Vec<Command> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Send(r) => Some(r.command.clone()),
            _ => None,
        })
        .collect()
}

fn event(app: &mut App, ev: Event, seq: u64) -> Vec<Effect> {
    app.update(Msg::Link(LinkEvent::Event(envelope(&ev, seq))))
}

fn reply(app: &mut App, tag: Tag, outcome: Result<Reply, String>) -> Vec<Effect> {
    app.update(Msg::Link(LinkEvent::Reply { tag, outcome }))
}

fn result(data: serde_json::Value) -> Reply {
    Reply::Result {
        command: "x".into(),
        request_id: None,
        data,
        timestamp: sample::NOW.into(),
    }
}

fn success(rule_id: Option<u64>) -> Reply {
    Reply::CommandSuccess {
        command: "x".into(),
        pending_id: None,
        rule_id,
        active_claims: None,
        timestamp: sample::NOW.into(),
        request_id: None,
    }
}

fn decide(pending_id: u64, scope: Scope, duration: &str) -> DecideArgs {
    DecideArgs {
        pending_id,
        scope: Some(scope),
        duration: Some(duration.into()),
        notes: None,
    }
}

#[test]
fn connecting_claims_notifications_and_loads_every_list() {
    let mut app = App::new(sample::now(), (80, 24), false);
    let fx = app.update(Msg::Link(LinkEvent::Connected {
        server_version: "0.1.0".into(),
        url: "ws://x/ws".into(),
    }));
    let names: Vec<&str> = commands(&fx).iter().map(|c| c.name()).collect();
    assert_eq!(
        names,
        [
            "claim_notifications",
            "status",
            "list_pending",
            "list_rules",
            "list_activity",
            "usage_summary"
        ]
    );
    assert_eq!(app.conn, ConnState::Connected);
    assert!(app.activity.is_loading());
    let fx = reply(
        &mut app,
        Tag::Claim,
        Ok(Reply::NotificationClaimed {
            active_claims: 1,
            timestamp: sample::NOW.into(),
            request_id: None,
        }),
    );
    assert!(fx.is_empty());
    assert!(app.claimed);
    assert_eq!(app.claims, 1);
}

#[test]
fn a_new_pending_request_rings_once_and_notifies_when_a_desktop_exists() {
    let mut app = App::new(sample::now(), (80, 24), true);
    let p = pending(3, "opencode", "example.com", 443, 0);
    let fx = event(&mut app, Event::PendingCreated(p.clone()), 1);
    assert_eq!(fx.first(), Some(&Effect::Bell));
    assert!(matches!(&fx[1], Effect::Notify { body, .. } if body.contains("example.com:443")));
    assert_eq!(app.pending.to_vec(), vec![p.clone()]);
    // Another attempt for the same request is an update, not a new alert.
    let fx = event(&mut app, Event::PendingCreated(p), 2);
    assert!(fx.is_empty());
    assert_eq!(app.pending.len(), 1);
}

#[test]
fn a_allows_the_selected_request_exactly_and_permanently() {
    let mut app = demo_app(80, 24);
    let fx = typing(&mut app, "ja");
    assert_eq!(
        commands(&fx),
        [Command::Allow(decide(16, Scope::Exact, "permanent"))]
    );
    let Effect::Send(r) = &fx[0] else { panic!() };
    reply(&mut app, r.tag.clone(), Ok(success(Some(42))));
    let m = app.message.clone().unwrap();
    assert!(!m.error);
    assert_eq!(
        m.text,
        "allowed #16 claude-code → api.github.com:443 (rule 42)"
    );
}

#[test]
fn picker_subdomain_one_hour() {
    let mut app = demo_app(80, 24);
    // A, two down to "subdomain", enter, then up five from "permanent" to "1h", enter.
    assert!(typing(&mut app, "Ajj\n").is_empty());
    assert!(matches!(app.modal, Some(Modal::Picker(_))));
    let fx = typing(&mut app, "kkkkk\n");
    assert_eq!(
        commands(&fx),
        [Command::Allow(decide(17, Scope::SubdomainWildcard, "1h"))]
    );
    assert!(app.modal.is_none());
    // Digits choose directly: A 3 2 is the same decision.
    let fx = typing(&mut app, "A32");
    assert_eq!(
        commands(&fx),
        [Command::Allow(decide(17, Scope::SubdomainWildcard, "1h"))]
    );
}

#[test]
fn deny_picker_with_a_typed_duration_and_esc_steps_back() {
    let mut app = demo_app(80, 24);
    typing(&mut app, "D2\x1b");
    let Some(Modal::Picker(p)) = &app.modal else {
        panic!("picker must stay open one step back")
    };
    assert_eq!(p.step, modal::PickerStep::Scope);
    let fx = typing(&mut app, "\n8");
    assert!(fx.is_empty());
    let fx = typing(&mut app, "45mx\x08\n");
    assert_eq!(
        commands(&fx),
        [Command::Deny(decide(17, Scope::AnyPort, "45m"))]
    );
    typing(&mut app, "D\x1b");
    assert!(app.modal.is_none());
}

#[test]
fn d_dismisses_and_a_refusal_is_shown_without_stopping() {
    let mut app = demo_app(80, 24);
    let fx = typing(&mut app, "Gd");
    assert_eq!(
        commands(&fx),
        [Command::Dismiss(PendingIdArgs { pending_id: 15 })]
    );
    let Effect::Send(r) = &fx[0] else { panic!() };
    reply(
        &mut app,
        r.tag.clone(),
        Err("pending request 15 not found".into()),
    );
    let m = app.message.clone().unwrap();
    assert!(m.error);
    assert_eq!(
        m.text,
        "dismiss #15 aider → pypi.org:443 failed: pending request 15 not found"
    );
    assert!(!app.quit);
}

#[test]
fn decided_requests_leave_and_the_selection_stays_on_its_row() {
    let mut app = demo_app(80, 24);
    typing(&mut app, "j"); // #16
    let gone = Event::PendingAllowed(PendingDecided {
        pending_id: 17,
        rule: None,
    });
    event(&mut app, gone, 1);
    assert_eq!(app.pending.selected().unwrap().id, 16);
    let w = WaitersChanged {
        container_name: "claude-code".into(),
        host: "api.github.com".into(),
        port: 443,
        previous_count: 0,
        current_count: 3,
        pending_id: Some(16),
    };
    event(&mut app, Event::WaitersChanged(w), 2);
    assert_eq!(app.pending.selected().unwrap().waiting_count, 3);
    let gone = Event::PendingDismissed(PendingDecided {
        pending_id: 16,
        rule: None,
    });
    event(&mut app, gone, 3);
    assert_eq!(app.pending.len(), 1);
    assert_eq!(app.pending.selected().unwrap().id, 15);
}

#[test]
fn seq_gaps_and_lagged_resync() {
    let mut app = demo_app(80, 24);
    let before = app.resyncs;
    let p = |id| Event::PendingUpdated(pending(id, "c", "h", 1, 0));
    assert!(commands(&event(&mut app, p(17), 10)).is_empty());
    assert!(commands(&event(&mut app, p(17), 11)).is_empty());
    let fx = event(&mut app, p(17), 13);
    assert!(commands(&fx).iter().any(|c| c.name() == "list_pending"));
    assert_eq!(app.resyncs, before + 1);
    let fx = app.update(Msg::Link(LinkEvent::Lagged(50)));
    assert!(commands(&fx).iter().any(|c| c.name() == "list_activity"));
    assert_eq!(app.resyncs, before + 2);
    assert!(app.message.as_ref().unwrap().text.contains("missed 50"));
}

#[test]
fn disconnects_show_and_reconnects_resync() {
    let mut app = demo_app(80, 24);
    app.update(Msg::Link(LinkEvent::Disconnected {
        reason: "connection closed".into(),
        unauthorized: false,
        retry_in: std::time::Duration::from_millis(400),
    }));
    assert!(matches!(app.conn, ConnState::Disconnected { .. }));
    assert!(!app.claimed);
    // Stale data stays visible while reconnecting.
    assert_eq!(app.pending.len(), 3);
    let fx = app.update(Msg::Link(LinkEvent::Connected {
        server_version: "0.1.1".into(),
        url: "ws://x/ws".into(),
    }));
    assert_eq!(commands(&fx).len(), 6);
    let page = json!({"items": [serde_json::to_value(pending(20, "n", "h", 1, 0)).unwrap()], "total": 1, "next_cursor": null});
    reply(&mut app, Tag::Pending { append: false }, Ok(result(page)));
    assert_eq!(app.pending.iter().map(|p| p.id).collect::<Vec<_>>(), [20]);
}

#[test]
fn long_lists_are_fetched_page_by_page() {
    let mut app = demo_app(80, 24);
    let page = json!({"items": [serde_json::to_value(rule(9, "a", "b", "*", RuleAction::Allow)).unwrap()], "total": 2, "next_cursor": "1"});
    let fx = reply(&mut app, Tag::Rules { append: false }, Ok(result(page)));
    assert_eq!(
        commands(&fx),
        [Command::ListRules(ListArgs {
            limit: Some(1000),
            cursor: Some("1".into()),
            ..ListArgs::default()
        })]
    );
    let page = json!({"items": [serde_json::to_value(rule(8, "a", "c", "*", RuleAction::Allow)).unwrap()], "total": 2, "next_cursor": null});
    reply(&mut app, Tag::Rules { append: true }, Ok(result(page)));
    assert_eq!(app.rules.iter().map(|r| r.id).collect::<Vec<_>>(), [9, 8]);
}
