//! State-machine tests of the Middlewares view: when `list_middlewares` is sent, what its reply
//! does to the view.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use super::*;
use crate::app::middlewares::MIDDLEWARE_REFRESH;

fn names(fx: &[Effect]) -> Vec<&'static str> {
    commands(fx).iter().map(|c| c.name()).collect()
}

fn listed(app: &mut App) {
    let data = json!({ "middlewares": sample::middlewares() });
    reply(app, Tag::Middlewares, Ok(result(data)));
}

fn tick(app: &mut App, after: Duration) -> Vec<Effect> {
    let now = app.now + after;
    app.update(Msg::Tick(now))
}

#[test]
fn opening_the_view_lists_the_middlewares_with_4_and_tab() {
    let mut app = demo_app(80, 24);
    let fx = typing(&mut app, "4");
    assert_eq!(app.view, View::Middlewares);
    assert_eq!(commands(&fx), [Command::ListMiddlewares]);
    assert!(app.middlewares.in_flight);
    // Pressed again while shown, or while the answer is awaited: nothing more is sent.
    assert!(typing(&mut app, "4").is_empty());
    listed(&mut app);
    assert!(app.middlewares.loaded && !app.middlewares.in_flight);
    assert_eq!(app.middlewares.list.len(), 2);
    // Tab order: Rules → Middlewares → Conversations → Usage → Credentials → Pending.
    typing(&mut app, "3");
    let fx = typing(&mut app, "\t");
    assert_eq!(app.view, View::Middlewares);
    assert_eq!(names(&fx), ["list_middlewares"]);
    listed(&mut app);
    typing(&mut app, "\t");
    assert_eq!(app.view, View::Conversations);
    typing(&mut app, "\t");
    assert_eq!(app.view, View::Usage);
    typing(&mut app, "\t");
    assert_eq!(app.view, View::Credentials);
    typing(&mut app, "\t");
    assert_eq!(app.view, View::Pending);
}

#[test]
fn the_list_is_refreshed_every_2s_while_shown_only() {
    let mut app = demo_app(80, 24);
    typing(&mut app, "4");
    listed(&mut app);
    assert!(tick(&mut app, Duration::from_secs(1)).is_empty());
    let fx = tick(&mut app, Duration::from_secs(1));
    assert_eq!(names(&fx), ["list_middlewares"]);
    // Still awaiting the answer: the next tick does not pile up another one.
    assert!(tick(&mut app, MIDDLEWARE_REFRESH).is_empty());
    listed(&mut app);
    // A tick slightly early (clock jitter) still refreshes.
    let fx = tick(&mut app, MIDDLEWARE_REFRESH - Duration::from_millis(100));
    assert_eq!(names(&fx), ["list_middlewares"]);
    listed(&mut app);
    // Another view: no refresh, however long.
    typing(&mut app, "1");
    assert!(tick(&mut app, Duration::from_secs(60)).is_empty());
}

#[test]
fn r_refreshes_now_and_resync_includes_the_list_when_shown() {
    let mut app = demo_app(80, 24);
    typing(&mut app, "4");
    listed(&mut app);
    assert_eq!(names(&typing(&mut app, "r")), ["list_middlewares"]);
    listed(&mut app);
    let fx = typing(&mut app, "R");
    assert_eq!(names(&fx).last(), Some(&"list_middlewares"));
    // Elsewhere `r` means nothing and a resync does not ask for middlewares.
    listed(&mut app);
    typing(&mut app, "1");
    assert!(typing(&mut app, "r").is_empty());
    assert!(!names(&typing(&mut app, "R")).contains(&"list_middlewares"));
}

#[test]
fn while_disconnected_nothing_is_sent_and_connecting_asks_again() {
    let mut app = demo_app(80, 24);
    typing(&mut app, "4");
    app.update(Msg::Link(LinkEvent::Disconnected {
        reason: "gone".into(),
        unauthorized: false,
        retry_in: Duration::from_secs(1),
    }));
    assert!(
        !app.middlewares.in_flight,
        "the lost request no longer blocks"
    );
    assert!(tick(&mut app, Duration::from_secs(5)).is_empty());
    assert!(typing(&mut app, "r").is_empty());
    assert!(app.message.as_ref().unwrap().error);
    let fx = app.update(Msg::Link(LinkEvent::Connected {
        server_version: "0.1.0".into(),
        url: "ws://x/ws".into(),
    }));
    assert!(names(&fx).contains(&"list_middlewares"));
}

#[test]
fn replies_keep_the_selection_and_errors_keep_the_last_list() {
    let mut app = demo_app(80, 24);
    typing(&mut app, "4");
    listed(&mut app);
    typing(&mut app, "j");
    assert_eq!(
        app.middlewares.list.selected().unwrap().url,
        "ws://127.0.0.1:9000/mw"
    );
    // The order changed: the same middleware stays selected.
    let mut list = sample::middlewares();
    list.reverse();
    app.middlewares.in_flight = true;
    reply(
        &mut app,
        Tag::Middlewares,
        Ok(result(json!({ "middlewares": list }))),
    );
    assert_eq!(app.middlewares.list.nav.selected, 0);
    // A failed refresh keeps what is shown and says why.
    reply(
        &mut app,
        Tag::Middlewares,
        Err("unknown command \"list_middlewares\"".into()),
    );
    assert_eq!(app.middlewares.list.len(), 2);
    assert!(
        app.middlewares
            .error
            .as_deref()
            .unwrap()
            .contains("unknown")
    );
    // An empty list.
    reply(
        &mut app,
        Tag::Middlewares,
        Ok(result(json!({ "middlewares": [] }))),
    );
    assert!(app.middlewares.list.is_empty() && app.middlewares.error.is_none());
    assert_eq!(app.middlewares.list.nav.selected, 0);
}
