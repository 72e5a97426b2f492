//! How long rules live (`once`, humantime spans), arguments that are refused without changing
//! anything, and what survives a daemon restart.

use std::time::Duration;

use greyproxy_testkit::origin::http_origin;
use greyproxy_testkit::raw::{http_connect, http_connect_send, read_connect_reply};
use greyproxy_testkit::{Control, DaemonBuilder};
use greyproxyd::time::{now_secs, parse_timestamp};
use serde_json::{Value, json};

fn daemon() -> DaemonBuilder {
    DaemonBuilder::new(env!("CARGO_BIN_EXE_greyproxyd"))
}

const SOON: Duration = Duration::from_secs(2);

async fn rules(ws: &mut Control) -> Vec<Value> {
    let data = ws.query(json!({"command":"list_rules"})).await;
    data["items"].as_array().unwrap().clone()
}

async fn rule(ws: &mut Control, id: &Value) -> Value {
    rules(ws)
        .await
        .into_iter()
        .find(|r| r["id"] == *id)
        .unwrap_or_else(|| panic!("rule {id} not listed"))
}

async fn pendings(ws: &mut Control) -> Vec<Value> {
    let data = ws.query(json!({"command":"list_pending"})).await;
    data["items"].as_array().unwrap().clone()
}

/// Seconds between a rule's creation and its expiry (None = never expires).
fn lifetime(rule: &Value) -> Option<u64> {
    let created = parse_timestamp(rule["created_at"].as_str().unwrap()).unwrap();
    let expires = rule["expires_at"].as_str()?;
    Some(parse_timestamp(expires).unwrap() - created)
}

async fn ok(ws: &mut Control, cmd: Value) -> Value {
    let r = ws.cmd(cmd).await;
    assert_eq!(r["type"], "command_success", "{r}");
    r
}

#[tokio::test]
async fn once_and_humantime_durations_make_temporary_rules() {
    let a = http_origin("127.0.2.20").await;
    let d = daemon().start().await;
    let mut ws = d.client().await;
    let mut held = http_connect_send(d.http.unwrap(), &a.to_string(), None).await;
    let p = ws.pending_for("127.0.2.20", a.port()).await;
    let r = ok(
        &mut ws,
        json!({"command":"allow","pending_id":p["id"],"duration":"once"}),
    )
    .await;
    let reply = tokio::time::timeout(SOON, read_connect_reply(&mut held))
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    let once = rule(&mut ws, &r["rule_id"]).await;
    assert_eq!(once["rule_type"], "temporary", "{once}");
    assert_eq!(once["is_active"], true, "{once}");
    assert_eq!(lifetime(&once), Some(30), "{once}");
    let expires = parse_timestamp(once["expires_at"].as_str().unwrap()).unwrap();
    assert!(expires.abs_diff(now_secs() + 30) <= 3, "{once}");

    let r = ok(
        &mut ws,
        json!({"command":"create_rule","container_pattern":"*","destination_pattern":"example.org",
            "duration":"2h30m"}),
    )
    .await;
    let span = rule(&mut ws, &r["rule_id"]).await;
    assert_eq!(span["rule_type"], "temporary", "{span}");
    assert_eq!(lifetime(&span), Some(9_000), "{span}");

    // The same span through `deny`, and the named ones.
    let b = http_origin("127.0.2.21").await;
    let _held = http_connect_send(d.http.unwrap(), &b.to_string(), None).await;
    let p = ws.pending_for("127.0.2.21", b.port()).await;
    let r = ok(
        &mut ws,
        json!({"command":"deny","pending_id":p["id"],"duration":"2h30m"}),
    )
    .await;
    let denied = rule(&mut ws, &r["rule_id"]).await;
    assert_eq!(
        (lifetime(&denied), &denied["action"]),
        (Some(9_000), &json!("deny"))
    );
    for (duration, secs) in [("7d", Some(604_800)), ("permanent", None)] {
        let r = ok(
            &mut ws,
            json!({"command":"create_rule","container_pattern":"c","destination_pattern":duration,
                "duration":duration}),
        )
        .await;
        let x = rule(&mut ws, &r["rule_id"]).await;
        assert_eq!(lifetime(&x), secs, "{x}");
        let kind = if secs.is_some() {
            "temporary"
        } else {
            "permanent"
        };
        assert_eq!(x["rule_type"], kind, "{x}");
    }
}

#[tokio::test]
async fn invalid_arguments_are_errors_and_change_nothing() {
    let a = http_origin("127.0.2.22").await;
    let d = daemon().start().await;
    let mut ws = d.client().await;
    let r = ok(
        &mut ws,
        json!({"command":"create_rule","container_pattern":"web","destination_pattern":"example.com"}),
    )
    .await;
    let id = r["rule_id"].clone();
    let mut held = http_connect_send(d.http.unwrap(), &a.to_string(), None).await;
    let p = ws.pending_for("127.0.2.22", a.port()).await;
    let pid = p["id"].clone();
    let rules_before = rules(&mut ws).await;
    let pending_before = pendings(&mut ws).await;
    // Forget the events so far: only what the refused commands cause matters below.
    ws.drain(Duration::from_millis(100)).await;

    let create = |extra: Value| {
        let mut c = json!({"command":"create_rule","container_pattern":"*",
            "destination_pattern":"example.net"});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let cases = [
        (
            json!({"command":"allow","pending_id":pid,"duration":"forever"}),
            "forever",
        ),
        (
            json!({"command":"deny","pending_id":pid,"duration":"forever"}),
            "forever",
        ),
        (
            json!({"command":"allow","pending_id":pid,"scope":"everything"}),
            "everything",
        ),
        (create(json!({"duration":"forever"})), "forever"),
        (create(json!({"destination_pattern":"foo*bar"})), "foo*bar"),
        (create(json!({"destination_pattern":"api.*"})), "api.*"),
        (create(json!({"port_pattern":"70000"})), "70000"),
        (create(json!({"port_pattern":"90-80"})), "90-80"),
        (create(json!({"container_pattern":"[web"})), "[web"),
        (create(json!({"action":"maybe"})), "maybe"),
        (
            json!({"command":"update_rule","rule_id":id,"port_pattern":"70000"}),
            "70000",
        ),
        (
            json!({"command":"update_rule","rule_id":id,"duration":"forever"}),
            "forever",
        ),
        (
            json!({"command":"update_rule","rule_id":id,"destination_pattern":"foo*bar"}),
            "foo*bar",
        ),
    ];
    for (cmd, mentions) in cases {
        let r = ws.cmd(cmd.clone()).await;
        assert_eq!(r["type"], "error", "{cmd} -> {r}");
        let msg = r["error"].as_str().unwrap();
        assert!(msg.contains(mentions), "{cmd} -> {msg}");
    }

    assert_eq!(rules(&mut ws).await, rules_before);
    assert_eq!(pendings(&mut ws).await, pending_before);
    assert_eq!(pending_before[0]["waiting_count"], 1);
    let seen = ws.drain(Duration::from_millis(200)).await;
    assert!(
        seen.iter()
            .all(|m| !m["type"].as_str().unwrap().starts_with("rule.")
                && m["type"] != "pending_request.allowed"
                && m["type"] != "pending_request.dismissed"),
        "{seen:?}"
    );
    // The client is still held, and a valid decision still works.
    ok(&mut ws, json!({"command":"allow","pending_id":pid})).await;
    let reply = tokio::time::timeout(SOON, read_connect_reply(&mut held))
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
}

#[tokio::test]
async fn restart_keeps_rules_and_pending_requests_and_never_reuses_ids() {
    let a = http_origin("127.0.2.23").await;
    let b = http_origin("127.0.2.24").await;
    let denied = http_origin("127.0.2.25").await;
    let d = daemon().start().await;
    let mut ws = d.client().await;
    let create = |dest: &str, action: &str| {
        json!({"command":"create_rule","container_pattern":"*","destination_pattern":dest,
            "action":action,"notes":format!("{action} {dest}")})
    };
    ok(&mut ws, create("127.0.2.25", "deny")).await;
    ok(&mut ws, create("kept.example", "allow")).await;
    let last_rule = ok(&mut ws, create("gone.example", "allow")).await["rule_id"].clone();
    ok(
        &mut ws,
        json!({"command":"delete_rule","rule_id":last_rule}),
    )
    .await;

    // A pending request with two attempts, and a newer one dismissed.
    let http = d.http.unwrap();
    let c1 = http_connect_send(http, &a.to_string(), Some("web")).await;
    let pa = ws.pending_for("127.0.2.23", a.port()).await;
    let c2 = http_connect_send(http, &a.to_string(), Some("web")).await;
    ws.event_where("pending_request.updated", |e| e["attempt_count"] == 2)
        .await;
    let c3 = http_connect_send(http, &b.to_string(), Some("web")).await;
    let pb = ws.pending_for("127.0.2.24", b.port()).await;
    ok(&mut ws, json!({"command":"dismiss","pending_id":pb["id"]})).await;
    drop((c1, c2, c3));
    ws.event_where("waiters.changed", |e| {
        e["pending_id"] == pa["id"] && e["current_count"] == 0
    })
    .await;

    let rules_before = rules(&mut ws).await;
    let pending_before = pendings(&mut ws).await;
    assert_eq!(pending_before.len(), 1);
    assert_eq!(pending_before[0]["attempt_count"], 2);
    ws.close().await;

    let d = d.restart().await;
    let mut ws = d.client().await;
    let strip = |mut v: Vec<Value>| {
        for r in &mut v {
            r.as_object_mut().unwrap().remove("last_used_at");
        }
        v
    };
    assert_eq!(strip(rules(&mut ws).await), strip(rules_before.clone()));
    assert_eq!(pendings(&mut ws).await, pending_before);

    // The kept rules still decide…
    let (_, reply) = http_connect(d.http.unwrap(), &denied.to_string(), None).await;
    assert_eq!(reply.status, 403, "{reply:?}");
    // …the kept pending request is still the one an allow decides…
    let mut again = http_connect_send(d.http.unwrap(), &a.to_string(), Some("web")).await;
    let ev = ws.event("pending_request.updated").await;
    assert_eq!(
        (&ev["data"]["id"], &ev["data"]["attempt_count"]),
        (&pa["id"], &json!(3))
    );
    let allowed = ok(&mut ws, json!({"command":"allow","pending_id":pa["id"]})).await;
    let reply = tokio::time::timeout(SOON, read_connect_reply(&mut again))
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    // …and new ids are above every id handed out before, deleted ones included.
    assert!(
        allowed["rule_id"].as_u64() > last_rule.as_u64(),
        "{allowed} reuses an id <= {last_rule}"
    );
    let _c = http_connect_send(d.http.unwrap(), &b.to_string(), Some("web")).await;
    let p = ws.pending_for("127.0.2.24", b.port()).await;
    assert!(
        p["id"].as_u64() > pb["id"].as_u64(),
        "{p} reuses an id <= {}",
        pb["id"]
    );
}
