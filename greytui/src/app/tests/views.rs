//! State-machine tests of the rules and activity views, forms and overlays.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::format::allow_all_label;

#[test]
fn views_switch_with_tab_digits_and_shift_tab() {
    let mut app = demo_app(80, 24);
    typing(&mut app, "\t");
    assert_eq!(app.view, View::Activity);
    typing(&mut app, "3");
    assert_eq!(app.view, View::Rules);
    app.update(Msg::Key(KeyEvent::new(
        KeyCode::BackTab,
        KeyModifiers::SHIFT,
    )));
    assert_eq!(app.view, View::Activity);
    typing(&mut app, "1");
    assert_eq!(app.view, View::Pending);
}

#[test]
fn rules_create_validate_edit_and_delete_with_confirmation() {
    let mut app = demo_app(80, 24);
    typing(&mut app, "3n");
    // Empty destination: the form stays open with an error.
    assert!(typing(&mut app, "\n").is_empty());
    let Some(Modal::Form(f)) = &app.modal else {
        panic!()
    };
    assert!(f.error.is_some());
    let fx = typing(&mut app, "**.example.com\t\t \tci\t1h\n");
    assert_eq!(
        commands(&fx),
        [Command::CreateRule(CreateRuleArgs {
            container_pattern: "*".into(),
            destination_pattern: "**.example.com".into(),
            port_pattern: Some("*".into()),
            action: Some(RuleAction::Deny),
            notes: Some("ci".into()),
            expires_at: None,
            duration: Some("1h".into()),
        })]
    );
    // Edit rule 7: clear the notes, make it permanent; unchanged fields are not sent.
    let fx = typing(&mut app, "e");
    assert!(fx.is_empty());
    app.update(Msg::Key(KeyEvent::new(KeyCode::Up, KeyModifiers::NONE)));
    app.update(Msg::Key(KeyEvent::new(KeyCode::Up, KeyModifiers::NONE)));
    app.update(Msg::Key(KeyEvent::new(
        KeyCode::Char('u'),
        KeyModifiers::CONTROL,
    )));
    let fx = typing(&mut app, "\tpermanent\n");
    assert_eq!(
        commands(&fx),
        [Command::UpdateRule(UpdateRuleArgs {
            rule_id: 7,
            notes: Some(None),
            duration: Some("permanent".into()),
            ..UpdateRuleArgs::default()
        })]
    );
    assert!(typing(&mut app, "dn").is_empty());
    assert!(app.modal.is_none());
    let fx = typing(&mut app, "jdy");
    assert_eq!(
        commands(&fx),
        [Command::DeleteRule(RuleIdArgs { rule_id: 6 })]
    );
}

#[test]
fn rule_events_keep_the_list_current() {
    let mut app = demo_app(80, 24);
    event(
        &mut app,
        Event::RuleCreated(rule(9, "x", "y", "*", RuleAction::Allow)),
        1,
    );
    assert_eq!(app.rules[0].id, 9);
    let mut r = rule(9, "x", "z", "*", RuleAction::Deny);
    r.notes = Some("n".into());
    event(&mut app, Event::RuleUpdated(r.clone()), 2);
    assert_eq!(app.rules[0], r);
    event(&mut app, Event::RuleDeleted(RuleDeleted { rule_id: 9 }), 3);
    assert_eq!(
        app.rules.iter().map(|r| r.id).collect::<Vec<_>>(),
        [7, 6, 1]
    );
}

fn log_event(id: u64, container: &str, ok: bool) -> Event {
    Event::RequestLogNew(sample::request_log(
        id,
        "10:00:00",
        container,
        "h.example",
        443,
        ok,
    ))
}

#[test]
fn activity_follows_new_rows_or_keeps_the_selected_one() {
    let mut app = demo_app(80, 24);
    typing(&mut app, "2");
    event(&mut app, log_event(50, "opencode", true), 1);
    assert_eq!(app.activity.nav.selected, 0);
    assert_eq!(app.activity.items.len(), 6);
    typing(&mut app, "jj"); // leaves follow mode
    assert!(!app.activity.follow);
    event(&mut app, log_event(51, "opencode", true), 2);
    assert_eq!(app.activity.nav.selected, 3);
    assert_eq!(app.activity.unseen, 1);
    typing(&mut app, "F");
    assert!(app.activity.follow);
    assert_eq!(app.activity.nav.selected, 0);
}

#[test]
fn activity_filter_queries_the_daemon_and_ignores_stale_answers() {
    let mut app = demo_app(80, 24);
    typing(&mut app, "2/");
    let old = app.activity.generation;
    let fx = typing(&mut app, "open\t\t  \n");
    assert_eq!(
        commands(&fx),
        [Command::ListActivity(ListArgs {
            container: Some("open".into()),
            result: Some("blocked".into()),
            limit: Some(ACTIVITY_PAGE),
            ..ListArgs::default()
        })]
    );
    assert_eq!(app.activity.filter.result, Some(Decision::Blocked));
    let stale = json!({"items": [], "total": 0, "next_cursor": null});
    reply(
        &mut app,
        Tag::Activity {
            generation: old,
            more: None,
        },
        Ok(result(stale)),
    );
    assert!(
        app.activity.is_loading(),
        "an answer for the old filter is ignored"
    );
    // Live rows that do not match the filter stay out.
    event(&mut app, log_event(60, "aider", false), 1);
    event(&mut app, log_event(61, "opencode", true), 2);
    let page = json!({"items": [], "total": 0, "next_cursor": null});
    let generation = app.activity.generation;
    reply(
        &mut app,
        Tag::Activity {
            generation,
            more: None,
        },
        Ok(result(page)),
    );
    event(&mut app, log_event(62, "aider", false), 3);
    event(&mut app, log_event(63, "opencode", false), 4);
    let ids: Vec<_> = app
        .activity
        .items
        .iter()
        .map(|i| lists::item_key(i))
        .collect();
    assert_eq!(ids, [("connection", 63)]);
}

#[test]
fn scrolling_near_the_end_fetches_the_next_page() {
    let mut app = demo_app(80, 24);
    let next = lists::NextPage {
        cursor: Some("c39_t11".into()),
        until: None,
    };
    app.activity.next = [(0, next.clone())].into();
    let fx = typing(&mut app, "2j");
    assert_eq!(
        commands(&fx),
        [Command::ListActivity(ListArgs {
            limit: Some(ACTIVITY_PAGE),
            cursor: Some("c39_t11".into()),
            ..ListArgs::default()
        })]
    );
    assert!(
        typing(&mut app, "j").is_empty(),
        "one page request at a time"
    );
    let more = json!({"items": [serde_json::to_value(connection(38, "09:00:00", "c", "h", 1, true)).unwrap()], "total": 6, "next_cursor": null});
    let generation = app.activity.generation;
    reply(
        &mut app,
        Tag::Activity {
            generation,
            more: Some(next),
        },
        Ok(result(more)),
    );
    assert_eq!(app.activity.items.len(), 6);
    assert!(app.activity.loading_more.is_empty());
}

#[test]
fn enter_opens_details_fetching_transactions_and_q_goes_back_then_quits() {
    let mut app = demo_app(80, 24);
    let fx = typing(&mut app, "2\n");
    assert_eq!(
        commands(&fx),
        [Command::GetTransaction(TransactionIdArgs {
            transaction_id: 12
        })]
    );
    assert_eq!(app.ctx(), crate::keymap::Ctx::Detail);
    reply(
        &mut app,
        Tag::Transaction(12),
        Ok(result(json!({"id": 12}))),
    );
    assert_eq!(
        app.activity.detail.as_ref().unwrap().full,
        Some(Ok(json!({"id": 12})))
    );
    assert!(typing(&mut app, "q").is_empty());
    assert!(app.activity.detail.is_none());
    // A connection row needs no fetch.
    assert!(commands(&typing(&mut app, "j\n")).is_empty());
    assert!(app.activity.detail.is_some());
    typing(&mut app, "\x1b");
    assert_eq!(typing(&mut app, "q"), [Effect::Quit]);
    assert!(app.quit);
}

#[test]
fn silent_mode_asks_then_switches_on_and_off() {
    let mut app = demo_app(80, 24);
    let fx = typing(&mut app, "S30m\n");
    assert_eq!(
        commands(&fx),
        [Command::SetAllowAll(SetAllowAllArgs {
            mode: Some(AllowAllMode::Allow),
            duration: Some("30m".into()),
        })]
    );
    let on = AllowAllStatus {
        active: true,
        mode: Some(AllowAllMode::Allow),
        expires_at: Some("2026-11-22T10:30:00Z".into()),
        remaining_seconds: Some(1800),
    };
    event(&mut app, Event::AllowAllChanged(on), 1);
    assert_eq!(allow_all_label(&app.allow_all), "allow all (30m left)");
    assert_eq!(commands(&typing(&mut app, "S")), [Command::ClearAllowAll]);
}

#[test]
fn help_and_forms_keep_their_keys_and_ctrl_c_always_quits() {
    let mut app = demo_app(80, 24);
    typing(&mut app, "?");
    assert!(
        typing(&mut app, "ad1").is_empty(),
        "help swallows view keys"
    );
    assert_eq!(app.view, View::Pending);
    typing(&mut app, "\x1b");
    assert!(app.modal.is_none());
    typing(&mut app, "3n");
    assert!(
        typing(&mut app, "q1").is_empty(),
        "q and 1 type into the form"
    );
    let Some(Modal::Form(f)) = &app.modal else {
        panic!()
    };
    assert_eq!(f.text(1), "q1");
    let fx = app.update(Msg::Key(KeyEvent::new(
        KeyCode::Char('c'),
        KeyModifiers::CONTROL,
    )));
    assert_eq!(fx, [Effect::Quit]);
}

#[test]
fn nothing_selected_is_a_message_not_a_command() {
    let mut app = App::new(sample::now(), (80, 24), false);
    assert!(typing(&mut app, "aAdD").is_empty());
    assert_eq!(app.message.as_ref().unwrap().text, "nothing selected");
}

#[test]
fn messages_expire_and_resizes_keep_the_selection_visible() {
    let mut app = demo_app(80, 24);
    typing(&mut app, "a");
    reply(
        &mut app,
        Tag::Decide {
            done: "allowed",
            what: "x".into(),
        },
        Ok(success(None)),
    );
    assert!(app.message.is_some());
    app.update(Msg::Tick(sample::now() + MESSAGE_TTL));
    assert!(app.message.is_none());
    for i in 0..40 {
        event(
            &mut app,
            Event::PendingCreated(pending(100 + i, "c", "h", 1, 0)),
            i + 1,
        );
    }
    typing(&mut app, "G");
    app.update(Msg::Resize(80, 10));
    let rows = app.list_rows();
    let n = app.pending.nav;
    assert!(
        n.selected >= n.offset && n.selected < n.offset + rows,
        "{n:?}"
    );
}

#[test]
fn transaction_updates_replace_the_row_and_refresh_an_open_detail() {
    let mut app = demo_app(80, 24);
    typing(&mut app, "2\n");
    let greyproxy_protocol::ActivityItem::Transaction(mut t) = app.activity.items[0].item.clone()
    else {
        panic!()
    };
    t.status_code = Some(101);
    let fx = event(&mut app, Event::TransactionUpdated(t.clone()), 1);
    assert_eq!(
        commands(&fx),
        [Command::GetTransaction(TransactionIdArgs {
            transaction_id: t.id
        })]
    );
    let row = greyproxy_protocol::ActivityItem::Transaction(t);
    assert_eq!(app.activity.items[0], row);
    assert_eq!(app.activity.detail.as_ref().unwrap().item, row);
    // An update for a row not in the window changes nothing.
    let other = greyproxy_protocol::Transaction {
        id: 999,
        ..Default::default()
    };
    assert!(event(&mut app, Event::TransactionUpdated(other), 2).is_empty());
    assert_eq!(app.activity.items.len(), 5);
}

#[test]
fn the_activity_window_stays_bounded_and_reloads_its_top_when_needed() {
    use super::lists::MAX_ACTIVITY;
    let mut app = demo_app(80, 24);
    typing(&mut app, "2");
    // Deep in a full window, not following: new rows are not added above, the top goes stale.
    let rows: Vec<_> = (0..MAX_ACTIVITY as u64)
        .map(|i| connection(1000 - i.min(999), "09:00:00", "c", "h", 1, true))
        .collect();
    app.activity
        .set_first_page(0, rows, MAX_ACTIVITY as u64, None);
    app.activity.follow = false;
    app.activity
        .nav
        .go(MAX_ACTIVITY - 10, MAX_ACTIVITY, app.list_rows());
    let selected = app.activity.items[app.activity.nav.selected].clone();
    event(&mut app, log_event(5000, "c", true), 1);
    assert_eq!(app.activity.items.len(), MAX_ACTIVITY);
    assert_eq!(app.activity.items[app.activity.nav.selected], selected);
    assert!(app.activity.stale_top);
    // Going back to the top (or following again) reloads the newest rows.
    let fx = typing(&mut app, "g");
    assert_eq!(commands(&fx).len(), 1);
    assert!(app.activity.is_loading());
    let page = json!({"items": [], "total": 0, "next_cursor": null});
    let generation = app.activity.generation;
    reply(
        &mut app,
        Tag::Activity {
            generation,
            more: None,
        },
        Ok(result(page)),
    );
    assert!(!app.activity.stale_top);
}
