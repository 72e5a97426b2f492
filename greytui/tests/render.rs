//! Render snapshots of every view and overlay at 80×24 and 120×40, drawn with ratatui's
//! `TestBackend` from the sample dashboard (fixed clock, so ages and expiries are stable).
//! The `.snap` files live in tests/snapshots; review changes with `cargo insta review`.
#![allow(clippy::unwrap_used)]

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use greytui::app::{App, ConnState, Msg, Tag};
use greytui::link::LinkEvent;
use greytui::sample::{demo_app, now};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const SIZES: [(u16, u16); 2] = [(80, 24), (120, 40)];

fn keys(app: &mut App, s: &str) {
    for c in s.chars() {
        let code = match c {
            '\n' => KeyCode::Enter,
            c => KeyCode::Char(c),
        };
        app.update(Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)));
    }
}

fn render(app: &App) -> TestBackend {
    let mut t = Terminal::new(TestBackend::new(app.size.0, app.size.1)).unwrap();
    t.draw(|f| greytui::ui::draw(f, app)).unwrap();
    t.backend().clone()
}

/// Snapshots `setup` applied to the sample dashboard, at both sizes.
fn snap(name: &str, setup: impl Fn(&mut App)) {
    for (w, h) in SIZES {
        let mut app = demo_app(w, h);
        setup(&mut app);
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), render(&app));
    }
}

#[test]
fn pending_view() {
    snap("pending", |_| {});
}

#[test]
fn pending_view_empty_and_reconnecting() {
    snap("pending_empty_reconnecting", |app| {
        app.pending.clear();
        app.update(Msg::Link(LinkEvent::Disconnected {
            reason: "cannot reach the daemon at ws://127.0.0.1:43080/ws: Connection refused".into(),
            unauthorized: false,
            retry_in: std::time::Duration::from_secs(2),
        }));
    });
}

#[test]
fn pending_with_a_command_result() {
    snap("pending_result", |app| {
        keys(app, "a");
        app.update(Msg::Link(LinkEvent::Reply {
            tag: Tag::Decide {
                done: "allowed",
                what: "#17 opencode → registry.npmjs.org:443".into(),
            },
            outcome: Err("pending request 17 not found".into()),
        }));
    });
}

#[test]
fn picker_scope_and_duration() {
    snap("picker_scope", |app| keys(app, "A"));
    snap("picker_duration", |app| keys(app, "Ajj\n"));
}

#[test]
fn activity_view() {
    snap("activity", |app| keys(app, "2"));
}

#[test]
fn activity_details() {
    snap("detail_connection", |app| keys(app, "2j\n"));
    snap("detail_transaction", |app| {
        keys(app, "2\n");
        let mut full = match &app.activity.items[0] {
            greyproxy_protocol::ActivityItem::Transaction(t) => serde_json::to_value(t).unwrap(),
            _ => unreachable!(),
        };
        full["request_headers"] =
            serde_json::json!({"content-type": ["application/json"], "x-api-key": ["[REDACTED]"]});
        full["request_body"] = serde_json::json!("{\"model\":\"claude\",\"max_tokens\":64}");
        full["response_headers"] = serde_json::json!({"content-type": ["application/json"]});
        full["response_body"] = serde_json::json!(
            "{\"id\":\"msg_1\",\"content\":[{\"type\":\"text\",\"text\":\"hi\"}]}"
        );
        app.update(Msg::Link(LinkEvent::Reply {
            tag: Tag::Transaction(12),
            outcome: Ok(greyproxy_protocol::Reply::Result {
                command: "get_transaction".into(),
                request_id: None,
                data: full,
                timestamp: greytui::sample::NOW.into(),
            }),
        }));
    });
}

#[test]
fn activity_filter_form() {
    snap("activity_filter", |app| keys(app, "2/open"));
}

#[test]
fn rules_view_and_editor() {
    snap("rules", |app| keys(app, "3"));
    snap("rule_edit", |app| keys(app, "3e"));
    snap("rule_delete", |app| keys(app, "3jd"));
}

#[test]
fn help_overlay() {
    snap("help", |app| keys(app, "?"));
}

#[test]
fn silent_mode_on_and_unauthorized() {
    snap("silent_unauthorized", |app| {
        app.allow_all = greyproxy_protocol::AllowAllStatus {
            active: true,
            mode: Some(greyproxy_protocol::AllowAllMode::Allow),
            expires_at: None,
            remaining_seconds: Some(1740),
        };
        app.conn = ConnState::Disconnected {
            reason: "unauthorized: the daemon refused the control token".into(),
            unauthorized: true,
            retry_in: std::time::Duration::from_secs(5),
        };
    });
}

#[test]
fn sizes_are_respected_and_tiny_terminals_do_not_panic() {
    for (w, h) in [(20, 5), (1, 1), (80, 24), (300, 100)] {
        let mut app = App::new(now(), (w, h), false);
        for k in ["", "?", "2", "3", "3n", "1"] {
            keys(&mut app, k);
            let b = render(&app);
            assert_eq!(b.buffer().area.width, w);
        }
        let _ = demo_app(w, h);
    }
}
