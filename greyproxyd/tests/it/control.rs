//! The control WebSocket as a client sees it: greeting, ping, notification claims, subscription
//! filters, event sequence numbers. Query commands are in `control_queries.rs`.

use std::collections::BTreeSet;
use std::time::Duration;

use greyproxy_testkit::origin::http_origin;
use greyproxy_testkit::wire::is_rfc3339;
use greyproxy_testkit::{CurlResult, DaemonBuilder, curl};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

fn daemon() -> DaemonBuilder {
    DaemonBuilder::new(env!("CARGO_BIN_EXE_greyproxyd"))
}

/// A curl through the HTTP proxy, running in the background (it may be held).
fn spawn_curl(proxy: &str, url: String) -> JoinHandle<CurlResult> {
    let proxy = proxy.to_string();
    tokio::spawn(async move { curl(&["-x", &proxy, &url]).await })
}

#[tokio::test]
async fn greeting_has_the_documented_shape() {
    let d = daemon().start().await;
    let mut ws = d.client().await;
    let g = ws.greeting.clone();
    assert_eq!(g["type"], "connected", "{g}");
    assert_eq!(g["message"], "Connected to proxy event stream");
    assert!(is_rfc3339(g["timestamp"].as_str().unwrap()), "{g}");
    assert_eq!(g["protocol_version"], 1);
    let v = g["server_version"].as_str().unwrap();
    assert!(!v.is_empty());
    let st = ws.query(json!({"command":"status"})).await;
    assert_eq!(st["version"], v, "status and greeting agree on the version");
}

#[tokio::test]
async fn ping_answers_pong_echoing_string_and_number_request_ids() {
    let d = daemon().start().await;
    let mut ws = d.client().await;
    for (id, sent) in [
        (json!("abc-1"), true),
        (json!(42), true),
        (Value::Null, false),
    ] {
        let mut cmd = json!({"command":"ping"});
        if sent {
            cmd["request_id"] = id.clone();
        }
        ws.send_text(&cmd.to_string()).await;
        let r = ws.next(Duration::from_secs(10)).await.expect("a reply");
        assert_eq!(r["type"], "pong", "{r}");
        assert!(is_rfc3339(r["timestamp"].as_str().unwrap()), "{r}");
        if sent {
            assert_eq!(r["request_id"], id, "{r}");
        } else {
            assert!(r.get("request_id").is_none_or(Value::is_null), "{r}");
        }
    }
}

fn claims_changed_to(n: u64) -> impl Fn(&Value) -> bool {
    move |d: &Value| d["active_claims"] == n
}

#[tokio::test]
async fn notification_claims_are_broadcast_and_released_however_a_client_leaves() {
    let d = daemon().start().await;
    let mut a = d.client().await;
    let mut b = d.client().await;

    let r = a.cmd(json!({"command":"claim_notifications"})).await;
    assert_eq!(r["type"], "notification_claimed", "{r}");
    assert_eq!(r["active_claims"], 1);
    b.event_where("notification.claims_changed", claims_changed_to(1))
        .await;

    let r = a.cmd(json!({"command":"claim_notifications"})).await;
    assert_eq!(r["type"], "error", "{r}");
    assert_eq!(
        r["error"],
        "notifications already claimed by this connection"
    );
    assert_eq!(
        b.query(json!({"command":"status"})).await["active_claims"],
        1
    );

    // Explicit release.
    let r = a.cmd(json!({"command":"release_notifications"})).await;
    assert_eq!(r["type"], "command_success", "{r}");
    assert_eq!(r["active_claims"], 0);
    b.event_where("notification.claims_changed", claims_changed_to(0))
        .await;
    let r = a.cmd(json!({"command":"release_notifications"})).await;
    assert_eq!(r["type"], "error", "releasing twice: {r}");

    // Dropped without a close frame.
    let r = a.cmd(json!({"command":"claim_notifications"})).await;
    assert_eq!(r["active_claims"], 1, "{r}");
    b.event_where("notification.claims_changed", claims_changed_to(1))
        .await;
    drop(a);
    b.event_where("notification.claims_changed", claims_changed_to(0))
        .await;
    assert_eq!(
        b.query(json!({"command":"status"})).await["active_claims"],
        0
    );

    // Closed politely; two claims at once count up and down.
    let mut c = d.client().await;
    let mut e = d.client().await;
    assert_eq!(
        c.cmd(json!({"command":"claim_notifications"})).await["active_claims"],
        1
    );
    assert_eq!(
        e.cmd(json!({"command":"claim_notifications"})).await["active_claims"],
        2
    );
    b.event_where("notification.claims_changed", claims_changed_to(2))
        .await;
    b.drain(Duration::from_millis(50)).await; // the stale 0 → 1 of c's claim
    c.close().await;
    b.event_where("notification.claims_changed", claims_changed_to(1))
        .await;
    assert_eq!(
        b.query(json!({"command":"status"})).await["active_claims"],
        1
    );
    e.close().await;
    b.event_where("notification.claims_changed", claims_changed_to(0))
        .await;
    assert_eq!(
        b.query(json!({"command":"status"})).await["active_claims"],
        0
    );
}

fn types(msgs: &[Value]) -> Vec<String> {
    msgs.iter()
        .filter(|m| m.get("seq").is_some())
        .map(|m| m["type"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn subscribe_filters_events_and_unsubscribing_everything_silences_the_client() {
    let o1 = http_origin("127.0.0.20").await;
    let o2 = http_origin("127.0.0.21").await;
    let d = daemon().start().await;
    let mut w = d.client().await; // the client under test
    let mut c = d.client().await; // an unfiltered observer
    let proxy = d.http_proxy();

    // No filter yet: everything arrives.
    let h1 = spawn_curl(&proxy, format!("http://{o1}/"));
    let p1 = w.pending_for("127.0.0.20", o1.port()).await;
    w.event_where("waiters.changed", |e| e["current_count"] == 1)
        .await;

    let r = w
        .cmd(json!({"command":"subscribe","event_type":"pending_request.created"}))
        .await;
    assert_eq!(r["type"], "subscribed", "{r}");
    assert_eq!(r["event_type"], "pending_request.created");
    w.drain(Duration::from_millis(100)).await;

    // Dismiss (dismissed, waiters, request_log) and a new hold (created, waiters).
    let r = c
        .cmd(json!({"command":"dismiss","pending_id":p1["id"]}))
        .await;
    assert_eq!(r["type"], "command_success", "{r}");
    assert_eq!(h1.await.unwrap().status, 403);
    let h2 = spawn_curl(&proxy, format!("http://{o2}/"));
    c.pending_for("127.0.0.21", o2.port()).await;
    c.event_where("waiters.changed", |e| {
        e["current_count"] == 1 && e["host"] == "127.0.0.21"
    })
    .await;
    let seen = w.drain(Duration::from_millis(500)).await;
    assert_eq!(types(&seen), ["pending_request.created"], "{seen:?}");
    assert_eq!(seen[0]["data"]["destination_host"], "127.0.0.21");

    // A second type is added to the filter.
    let r = w
        .cmd(json!({"command":"subscribe","event_type":"rule.created"}))
        .await;
    assert_eq!(r["type"], "subscribed", "{r}");

    // Unsubscribing everything: an empty filter, not "all again".
    for t in ["pending_request.created", "rule.created"] {
        let r = w.cmd(json!({"command":"unsubscribe","event_type":t})).await;
        assert_eq!(r["type"], "unsubscribed", "{r}");
        assert_eq!(r["event_type"], t);
    }
    let r = c
        .cmd(json!({"command":"create_rule","container_pattern":"*","destination_pattern":"127.0.0.21"}))
        .await;
    assert_eq!(r["type"], "command_success", "{r}");
    assert_eq!(h2.await.unwrap().status, 200);
    c.event("rule.created").await;
    c.event("pending_request.allowed").await;
    let seen = w.drain(Duration::from_millis(500)).await;
    assert!(
        types(&seen).is_empty(),
        "an empty filter receives nothing: {seen:?}"
    );
    // Replies are never filtered.
    assert_eq!(w.cmd(json!({"command":"ping"})).await["type"], "pong");
}

#[tokio::test]
async fn subscribe_and_unsubscribe_refuse_bad_event_types() {
    let d = daemon().start().await;
    let mut w = d.client().await;
    let r = w
        .cmd(json!({"command":"subscribe","event_type":"rule.exploded"}))
        .await;
    assert_eq!(r["type"], "error", "{r}");
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .starts_with("unknown event type: rule.exploded"),
        "{r}"
    );
    let r = w.cmd(json!({"command":"subscribe"})).await;
    assert_eq!(r["error"], "event_type is required for subscribe", "{r}");
    let r = w.cmd(json!({"command":"subscribe","event_type":""})).await;
    assert_eq!(r["error"], "event_type is required for subscribe", "{r}");
    let r = w.cmd(json!({"command":"unsubscribe"})).await;
    assert_eq!(r["error"], "event_type is required for unsubscribe", "{r}");
    // The refused subscribe did not switch the client to filtered mode.
    let mut c = d.client().await;
    let r = c.cmd(json!({"command":"claim_notifications"})).await;
    assert_eq!(r["type"], "notification_claimed", "{r}");
    w.event_where("notification.claims_changed", claims_changed_to(1))
        .await;
}

#[tokio::test]
async fn seq_grows_by_one_across_every_event_of_a_burst() {
    let o1 = http_origin("127.0.0.22").await;
    let o2 = http_origin("127.0.0.23").await;
    let d = daemon().start().await;
    let mut a = d.client().await; // unfiltered observer
    let mut b = d.client().await; // does the work
    let proxy = d.http_proxy();

    let held = [
        spawn_curl(&proxy, format!("http://{o1}/x")),
        spawn_curl(&proxy, format!("http://{o2}/y")),
    ];
    for n in 0..10 {
        let r = b
            .cmd(json!({"command":"create_rule","container_pattern":"*","destination_pattern":format!("burst-{n}.example"),"port_pattern":"443"}))
            .await;
        assert_eq!(r["type"], "command_success", "{r}");
        let r = b
            .cmd(json!({"command":"delete_rule","rule_id":r["rule_id"]}))
            .await;
        assert_eq!(r["type"], "command_success", "{r}");
    }
    b.pending_for("127.0.0.22", o1.port()).await;
    b.pending_for("127.0.0.23", o2.port()).await;
    for h in ["127.0.0.22", "127.0.0.23"] {
        let r = b
            .cmd(json!({"command":"create_rule","container_pattern":"*","destination_pattern":h}))
            .await;
        assert_eq!(r["type"], "command_success", "{r}");
    }
    for h in held {
        assert_eq!(h.await.unwrap().status, 200);
    }
    // Two allowed decisions → two request_log.new events; wait for them, then for last_seq.
    for _ in 0..2 {
        b.event_where("request_log.new", |l| l["result"] == "allowed")
            .await;
    }
    let last = b.query(json!({"command":"status"})).await["last_seq"]
        .as_u64()
        .unwrap();

    let mut seqs = Vec::new();
    let mut kinds = BTreeSet::new();
    while seqs.last().is_none_or(|s| *s < last) {
        let m = a
            .next(Duration::from_secs(10))
            .await
            .expect("events up to last_seq");
        if let Some(s) = m.get("seq") {
            assert!(is_rfc3339(m["timestamp"].as_str().unwrap()), "{m}");
            kinds.insert(m["type"].as_str().unwrap().to_string());
            seqs.push(s.as_u64().unwrap());
        }
    }
    for w in seqs.windows(2) {
        assert_eq!(w[1], w[0] + 1, "seq must grow by exactly one: {seqs:?}");
    }
    assert_eq!(*seqs.last().unwrap(), last);
    assert!(seqs.len() >= 30, "{} events: {kinds:?}", seqs.len());
    for k in [
        "rule.created",
        "rule.deleted",
        "pending_request.created",
        "waiters.changed",
        "pending_request.allowed",
        "request_log.new",
    ] {
        assert!(kinds.contains(k), "{k} missing from {kinds:?}");
    }
}
