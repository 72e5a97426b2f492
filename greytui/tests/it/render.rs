//! Render snapshots of every view and overlay at 80×24 and 120×40, drawn with ratatui's
//! `TestBackend` from the sample dashboard (fixed clock, so ages and expiries are stable).
//! The `.snap` files live in tests/snapshots; review changes with `cargo insta review`.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use greytui::app::{App, ConnState, Msg, Tag};
use greytui::link::LinkEvent;
use greytui::sample::{demo_app, demo_fleet_app, now};
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
        let mut full = match &app.activity.items[0].item {
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

/// The sample middlewares, as `list_middlewares` answers.
fn middlewares_listed(app: &mut App, list: serde_json::Value) {
    keys(app, "4");
    app.update(Msg::Link(LinkEvent::Reply {
        tag: Tag::Middlewares,
        outcome: Ok(greytui::sample::result_reply(
            serde_json::json!({ "middlewares": list }),
        )),
    }));
}

#[test]
fn middlewares_view() {
    snap("middlewares_empty", |app| {
        middlewares_listed(app, serde_json::json!([]))
    });
    let list = serde_json::to_value(greytui::sample::middlewares()).unwrap();
    snap("middlewares", |app| middlewares_listed(app, list.clone()));
    snap("middlewares_down_selected", |app| {
        middlewares_listed(app, list.clone());
        keys(app, "j");
    });
}

/// Middleware decisions on the sample's transactions: all three kinds on #12, a tag on #11.
fn with_middleware_events(app: &mut App) {
    use greyproxy_protocol::ActivityItem;
    let events = greytui::sample::middleware_events();
    for item in app.activity.items.iter_mut() {
        if let ActivityItem::Transaction(t) = &mut item.item {
            t.middleware_events = match t.id {
                12 => events.clone(),
                _ => events[..1].to_vec(),
            };
        }
    }
}

#[test]
fn middleware_decisions_in_activity_and_detail() {
    snap("activity_middleware_badges", |app| {
        with_middleware_events(app);
        keys(app, "2");
    });
    snap("detail_middleware_events", |app| {
        with_middleware_events(app);
        keys(app, "2\n");
        let full = match &app.activity.items[0].item {
            greyproxy_protocol::ActivityItem::Transaction(t) => serde_json::to_value(t).unwrap(),
            _ => unreachable!(),
        };
        app.update(Msg::Link(LinkEvent::Reply {
            tag: Tag::Transaction(12),
            outcome: Ok(greytui::sample::result_reply(full)),
        }));
    });
}

/// An upgrade's detail with its messages listed, two payloads fetched, the second selected.
fn ws_detail(app: &mut App) {
    use greyproxy_protocol::ActivityItem;
    use greytui::sample::{result_reply, ws_message, ws_upgrade};
    let mut up = ws_upgrade(50);
    up.ws_capture_stopped = Some("tap fell behind".into());
    app.activity
        .items
        .push_front(greytui::app::Hosted::local(ActivityItem::Transaction(up)));
    app.activity.total += 1;
    keys(app, "2g\n");
    let msgs = [
        ws_message(51, 50, 0, true, 1834),
        ws_message(52, 50, 1, false, 212),
        ws_message(53, 50, 2, true, 5 * 1024 * 1024),
    ];
    let items: Vec<ActivityItem> = msgs
        .iter()
        .cloned()
        .map(ActivityItem::Transaction)
        .collect();
    let page = serde_json::json!({"items": items, "total": 3, "next_cursor": null});
    app.update(Msg::Link(LinkEvent::Reply {
        tag: Tag::WsMessages(50),
        outcome: Ok(result_reply(page)),
    }));
    let bodies = [
        (0, "{\"type\":\"response.create\",\"input\":\"hi\"}"),
        (
            1,
            "{\"type\":\"response.done\",\"usage\":{\"total_tokens\":9}}",
        ),
    ];
    for (i, body) in bodies {
        let mut full = serde_json::to_value(&msgs[i]).unwrap();
        full["request_body"] = serde_json::json!(body);
        app.update(Msg::Link(LinkEvent::Reply {
            tag: Tag::WsBody(msgs[i].id),
            outcome: Ok(result_reply(full)),
        }));
    }
    keys(app, "j");
}

#[test]
fn websocket_upgrade_messages() {
    snap("detail_websocket", ws_detail);
    snap("detail_websocket_message", |app| {
        ws_detail(app);
        keys(app, "\n");
        let mut full =
            serde_json::to_value(greytui::sample::ws_message(52, 50, 1, false, 212)).unwrap();
        full["request_body"] =
            serde_json::json!("{\"type\":\"response.done\",\"usage\":{\"total_tokens\":9}}");
        app.update(Msg::Link(LinkEvent::Reply {
            tag: Tag::WsBody(52),
            outcome: Ok(greytui::sample::result_reply(full)),
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
        for k in ["", "?", "2", "3", "3n", "4", "1"] {
            keys(&mut app, k);
            let b = render(&app);
            assert_eq!(b.buffer().area.width, w);
        }
        let _ = demo_app(w, h);
    }
}

/// A fleet of three hosts: pending and rules with their HOST, and the Hosts view.
#[test]
fn fleet_pending_rules_and_hosts() {
    for (w, h) in SIZES {
        let mut app = demo_fleet_app(w, h);
        insta::assert_snapshot!(format!("fleet_pending_{w}x{h}"), render(&app));
        keys(&mut app, "3");
        insta::assert_snapshot!(format!("fleet_rules_{w}x{h}"), render(&app));
        keys(&mut app, "8");
        insta::assert_snapshot!(format!("fleet_hosts_{w}x{h}"), render(&app));
        // The single-host views name the focused host.
        keys(&mut app, "2");
        insta::assert_snapshot!(format!("fleet_activity_{w}x{h}"), render(&app));
    }
}

/// A fleet's conversations: every host's, newest first, each with its HOST.
#[test]
fn fleet_conversations() {
    for (w, h) in SIZES {
        let mut app = greytui::sample_llm::demo_fleet_llm_app(w, h);
        keys(&mut app, "5");
        insta::assert_snapshot!(format!("fleet_conversations_{w}x{h}"), render(&app));
    }
}
