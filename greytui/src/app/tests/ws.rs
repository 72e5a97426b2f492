//! The messages of a WebSocket upgrade in its detail: listed by `upgrade_id`, payload previews
//! fetched for the visible rows only, Enter opens one, Esc goes back, live rows are added.

use greyproxy_protocol::{ActivityItem, Transaction};

use super::*;
use crate::app::detail::is_upgrade;
use crate::app::ws::WS_LIMIT;
use crate::sample::{ws_message, ws_upgrade};

fn page(items: Vec<Transaction>) -> Reply {
    let items: Vec<ActivityItem> = items.into_iter().map(ActivityItem::Transaction).collect();
    let n = items.len();
    result(json!({"items": items, "total": n, "next_cursor": null}))
}

fn get(id: u64) -> Command {
    Command::GetTransaction(TransactionIdArgs { transaction_id: id })
}

fn open_upgrade(app: &mut App) -> Vec<Effect> {
    app.activity
        .items
        .push_front(crate::app::Hosted::local(ActivityItem::Transaction(
            ws_upgrade(50),
        )));
    typing(app, "2g\n")
}

#[test]
fn upgrades_are_told_from_messages_and_plain_exchanges() {
    assert!(is_upgrade(&ws_upgrade(1)));
    assert!(!is_upgrade(&ws_message(2, 1, 0, true, 10)));
    let mut t = ws_upgrade(1);
    t.ws_extensions = None;
    t.ws_messages = None;
    assert!(is_upgrade(&t), "status 101 GET is enough");
    t.status_code = Some(200);
    assert!(!is_upgrade(&t));
}

#[test]
fn an_upgrade_lists_its_messages_and_enter_opens_one() {
    let mut app = demo_app(80, 24);
    let fx = open_upgrade(&mut app);
    assert_eq!(
        commands(&fx),
        [
            get(50),
            Command::ListActivity(ListArgs {
                upgrade_id: Some(50),
                kind: Some("transaction".into()),
                limit: Some(WS_LIMIT),
                ..ListArgs::default()
            })
        ]
    );
    assert!(
        app.activity
            .detail
            .as_ref()
            .unwrap()
            .ws
            .as_ref()
            .unwrap()
            .loading
    );
    // Out of order in the page, another upgrade's row mixed in: sorted by message index.
    let fx = reply(
        &mut app,
        Tag::WsMessages(50),
        Ok(page(vec![
            ws_message(53, 50, 2, true, 300),
            ws_message(51, 50, 0, true, 100),
            ws_message(52, 50, 1, false, 200),
            ws_message(99, 7, 0, true, 1),
        ])),
    );
    // Payloads of the visible rows are fetched, once.
    assert_eq!(commands(&fx), [get(51), get(52), get(53)]);
    let ws = app.activity.detail.as_ref().unwrap().ws.clone().unwrap();
    let ids: Vec<u64> = ws.items.iter().map(|m| m.id).collect();
    assert_eq!(ids, [51, 52, 53]);
    let mut body = serde_json::to_value(ws_message(52, 50, 1, false, 200)).unwrap();
    body["request_body"] = json!("{\"type\":\"response.done\"}\nmore");
    reply(&mut app, Tag::WsBody(52), Ok(result(body.clone())));
    let ws = app.activity.detail.as_ref().unwrap().ws.clone().unwrap();
    assert_eq!(ws.previews[&52], "{\"type\":\"response.done\"}");
    assert!(commands(&typing(&mut app, "jk")).is_empty(), "no refetch");
    // Enter opens the selected message, fetching its payload.
    let fx = typing(&mut app, "j\n");
    assert_eq!(commands(&fx), [get(52)]);
    reply(&mut app, Tag::WsBody(52), Ok(result(body.clone())));
    let open = app
        .activity
        .detail
        .as_ref()
        .unwrap()
        .ws
        .as_ref()
        .unwrap()
        .open
        .clone();
    assert_eq!(open.unwrap().full, Some(Ok(body)));
    // h: the upgrade's own headers (scrolling them), h or Esc: back to the messages.
    typing(&mut app, "\x1bhj");
    let d = app.activity.detail.as_ref().unwrap();
    assert!(d.ws.as_ref().unwrap().headers && d.ws.as_ref().unwrap().open.is_none());
    assert_eq!(d.scroll, 1);
    typing(&mut app, "h");
    assert!(
        !app.activity
            .detail
            .as_ref()
            .unwrap()
            .ws
            .as_ref()
            .unwrap()
            .headers
    );
    typing(&mut app, "h\x1bj\n");
    // Esc: back to the list, then to the activity.
    typing(&mut app, "\x1b");
    let d = app.activity.detail.as_ref().unwrap();
    assert!(d.ws.as_ref().unwrap().open.is_none());
    typing(&mut app, "\x1b");
    assert!(app.activity.detail.is_none());
}

#[test]
fn live_messages_of_the_shown_upgrade_are_added() {
    let mut app = demo_app(80, 24);
    open_upgrade(&mut app);
    reply(
        &mut app,
        Tag::WsMessages(50),
        Ok(page(vec![ws_message(51, 50, 0, true, 100)])),
    );
    let new = |t: Transaction| Event::TransactionNew(t);
    let fx = event(&mut app, new(ws_message(52, 50, 1, false, 10)), 100);
    assert_eq!(commands(&fx), [get(52)]);
    event(&mut app, new(ws_message(60, 9, 0, false, 10)), 101);
    event(&mut app, new(ws_message(52, 50, 1, false, 10)), 102);
    let ws = app.activity.detail.as_ref().unwrap().ws.clone().unwrap();
    let ids: Vec<u64> = ws.items.iter().map(|m| m.id).collect();
    assert_eq!(ids, [51, 52]);
    // A failed list is shown, not fatal.
    // (the live messages are rows of the feed too: the upgrade is further down now)
    typing(&mut app, "\x1b");
    let at = app
        .activity
        .items
        .iter()
        .position(|i| lists::item_key(i) == ("transaction", 50));
    app.activity.nav.selected = at.unwrap();
    typing(&mut app, "\n");
    reply(&mut app, Tag::WsMessages(50), Err("boom".into()));
    let ws = app.activity.detail.as_ref().unwrap().ws.clone().unwrap();
    assert_eq!(ws.error.as_deref(), Some("boom"));
}
