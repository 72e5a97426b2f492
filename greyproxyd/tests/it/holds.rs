//! Held connections: what releases them (allow in each scope, create_rule, silent mode), what
//! ends them (dismiss, deny, hold timeout, the client hanging up) and how pending requests
//! count attempts and waiting clients. Real daemon, real curl, raw proxy clients.

use std::time::{Duration, Instant};

use greyproxy_testkit::origin::http_origin;
use greyproxy_testkit::raw::{http_connect, http_connect_send, read_connect_reply};
use greyproxy_testkit::{Control, CurlResult, Daemon, DaemonBuilder, curl};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

fn daemon() -> DaemonBuilder {
    DaemonBuilder::new(env!("CARGO_BIN_EXE_greyproxyd"))
}

/// "At once": generous, but well under the 30 s default hold.
const SOON: Duration = Duration::from_secs(2);

/// curl through the HTTP proxy as a CONNECT tunnel (`-p`), optionally with a proxy username.
fn tunnel_curl(d: &Daemon, url: &str, user: Option<&str>) -> JoinHandle<CurlResult> {
    let proxy = d.http_proxy();
    let url = url.to_string();
    let user = user.map(|u| format!("{u}:x"));
    tokio::spawn(async move {
        let mut args = vec!["-p", "-x", proxy.as_str(), url.as_str()];
        if let Some(u) = &user {
            args.extend(["--proxy-user", u.as_str()]);
        }
        curl(&args).await
    })
}

/// Asserts that a held client has not been answered yet.
async fn still_waiting<T>(h: &JoinHandle<T>, what: &str) {
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!h.is_finished(), "{what} must still be held");
}

/// Awaits a client with a bound; returns its result and how long the wait took.
async fn finish(h: JoinHandle<CurlResult>, within: Duration) -> CurlResult {
    tokio::time::timeout(within, h)
        .await
        .unwrap_or_else(|_| panic!("client not answered within {within:?}"))
        .unwrap()
}

fn assert_ok(res: &CurlResult, origin: std::net::SocketAddr) {
    assert_eq!((res.exit, res.status), (0, 200), "{res:?}");
    assert!(
        res.body.starts_with(&format!("hello from {origin} GET /")),
        "{res:?}"
    );
}

/// curl -p reports a refused CONNECT as exit 56 with the proxy's status on stderr.
fn assert_connect_refused(res: &CurlResult) {
    assert_eq!(res.exit, 56, "{res:?}");
    assert!(res.stderr.contains("403"), "{res:?}");
}

async fn pending_items(ws: &mut Control) -> Vec<Value> {
    let data = ws.query(json!({"command":"list_pending"})).await;
    data["items"].as_array().unwrap().clone()
}

async fn rule_by_id(ws: &mut Control, id: &Value) -> Value {
    let data = ws.query(json!({"command":"list_rules"})).await;
    data["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == *id)
        .unwrap_or_else(|| panic!("rule {id} not listed: {data}"))
        .clone()
}

/// Waits for `waiters.changed` of pending `id` going from `prev` to `cur`.
async fn waiters(ws: &mut Control, id: &Value, prev: u64, cur: u64) -> Value {
    ws.event_where("waiters.changed", |e| {
        e["pending_id"] == *id && e["previous_count"] == prev && e["current_count"] == cur
    })
    .await
}

async fn allow(ws: &mut Control, pending: &Value, scope: &str) -> Value {
    let r = ws
        .cmd(json!({"command":"allow","pending_id":pending["id"],"scope":scope}))
        .await;
    assert_eq!(r["type"], "command_success", "{r}");
    assert_eq!(r["pending_id"], pending["id"], "{r}");
    r["rule_id"].clone()
}

#[tokio::test]
async fn allow_exact_releases_the_connect_for_that_container_host_and_port_only() {
    let a = http_origin("127.0.1.1").await;
    let b = http_origin("127.0.1.1").await;
    let d = daemon().start().await;
    let mut ws = d.client().await;
    let url_a = format!("http://{a}/x");
    let held = tunnel_curl(&d, &url_a, None);
    let pending = ws.pending_for("127.0.1.1", a.port()).await;
    assert_eq!(pending["container_name"], "unknown-127.0.0.1");
    assert_eq!(pending["waiting_count"], 1);
    still_waiting(&held, "CONNECT with no rule").await;

    let rule_id = allow(&mut ws, &pending, "exact").await;
    assert_ok(&finish(held, SOON).await, a);
    let ev = ws
        .event_where("pending_request.allowed", |e| {
            e["pending_id"] == pending["id"]
        })
        .await;
    let rule = &ev["data"]["rule"];
    assert_eq!(rule["id"], rule_id);
    assert_eq!(rule["container_pattern"], "unknown-127.0.0.1");
    assert_eq!(rule["destination_pattern"], "127.0.1.1");
    assert_eq!(rule["port_pattern"], a.port().to_string());
    assert_eq!(
        (&rule["action"], &rule["rule_type"]),
        (&json!("allow"), &json!("permanent"))
    );

    // The same destination again: no prompt.
    let res = curl(&["-p", "-x", &d.http_proxy(), &url_a]).await;
    assert_ok(&res, a);
    // Another port of the host, or another container: held again.
    let other_port = tunnel_curl(&d, &format!("http://{b}/"), None);
    let p2 = ws.pending_for("127.0.1.1", b.port()).await;
    let other_user = tunnel_curl(&d, &url_a, Some("someone-else"));
    let p3 = ws.pending_for("127.0.1.1", a.port()).await;
    assert_eq!(p3["container_name"], "someone-else");
    still_waiting(&other_port, "another port").await;
    assert!(!other_user.is_finished(), "another container must be held");
    for p in [&p2, &p3] {
        ws.cmd(json!({"command":"dismiss","pending_id":p["id"]}))
            .await;
    }
    assert_connect_refused(&finish(other_port, SOON).await);
    assert_connect_refused(&finish(other_user, SOON).await);
}

#[tokio::test]
async fn allow_any_port_lets_every_port_of_the_host_through() {
    let a = http_origin("127.0.1.2").await;
    let b = http_origin("127.0.1.2").await;
    let d = daemon().start().await;
    let mut ws = d.client().await;
    let held = tunnel_curl(&d, &format!("http://{a}/"), None);
    let pending = ws.pending_for("127.0.1.2", a.port()).await;
    let rule_id = allow(&mut ws, &pending, "any_port").await;
    assert_ok(&finish(held, SOON).await, a);
    let rule = rule_by_id(&mut ws, &rule_id).await;
    assert_eq!(rule["destination_pattern"], "127.0.1.2");
    assert_eq!(rule["port_pattern"], "*");

    let res = curl(&["-p", "-x", &d.http_proxy(), &format!("http://{b}/")]).await;
    assert_ok(&res, b);
    assert!(res.elapsed < SOON, "{res:?}");
    assert!(pending_items(&mut ws).await.is_empty());
}

#[tokio::test]
async fn allow_subdomain_wildcard_on_an_ip_keeps_the_ip_with_any_port() {
    let a = http_origin("127.0.1.3").await;
    let b = http_origin("127.0.1.3").await;
    let d = daemon().start().await;
    let mut ws = d.client().await;
    let held = tunnel_curl(&d, &format!("http://{a}/"), None);
    let pending = ws.pending_for("127.0.1.3", a.port()).await;
    let rule_id = allow(&mut ws, &pending, "subdomain_wildcard").await;
    assert_ok(&finish(held, SOON).await, a);
    let rule = rule_by_id(&mut ws, &rule_id).await;
    assert_eq!(rule["container_pattern"], "unknown-127.0.0.1");
    // "Subdomains of an IP" means nothing: the IP stays exact, the port becomes `*`.
    assert_eq!(rule["destination_pattern"], "127.0.1.3");
    assert_eq!(rule["port_pattern"], "*");
    let res = curl(&["-p", "-x", &d.http_proxy(), &format!("http://{b}/")]).await;
    assert_ok(&res, b);
    assert!(pending_items(&mut ws).await.is_empty());
}

#[tokio::test]
async fn allow_all_containers_lets_other_identities_through() {
    let a = http_origin("127.0.1.4").await;
    let d = daemon().start().await;
    let mut ws = d.client().await;
    let url = format!("http://{a}/");
    let held = tunnel_curl(&d, &url, Some("agent-a"));
    let pending = ws.pending_for("127.0.1.4", a.port()).await;
    assert_eq!(pending["container_name"], "agent-a");
    let rule_id = allow(&mut ws, &pending, "all_containers").await;
    assert_ok(&finish(held, SOON).await, a);
    let rule = rule_by_id(&mut ws, &rule_id).await;
    assert_eq!(rule["container_pattern"], "*");
    assert_eq!(rule["port_pattern"], a.port().to_string());

    let proxy = d.http_proxy();
    let other = curl(&["-p", "-x", &proxy, "--proxy-user", "other:x", &url]).await;
    assert_ok(&other, a);
    let anonymous = curl(&["-p", "-x", &proxy, &url]).await;
    assert_ok(&anonymous, a);
    assert!(pending_items(&mut ws).await.is_empty());
}

#[tokio::test]
async fn create_rule_releases_a_held_connect() {
    let a = http_origin("127.0.1.5").await;
    let d = daemon().start().await;
    let mut ws = d.client().await;
    let held = tunnel_curl(&d, &format!("http://{a}/"), None);
    let pending = ws.pending_for("127.0.1.5", a.port()).await;
    still_waiting(&held, "CONNECT with no rule").await;
    let r = ws
        .cmd(json!({"command":"create_rule","container_pattern":"*",
            "destination_pattern":"127.0.1.5","port_pattern":a.port().to_string()}))
        .await;
    assert_eq!(r["type"], "command_success", "{r}");
    let t = Instant::now();
    assert_ok(&finish(held, SOON).await, a);
    assert!(t.elapsed() < SOON);
    let ev = ws
        .event_where("pending_request.allowed", |e| {
            e["pending_id"] == pending["id"]
        })
        .await;
    assert_eq!(ev["data"]["rule"]["id"], r["rule_id"]);
    assert!(pending_items(&mut ws).await.is_empty());
}

#[tokio::test]
async fn set_allow_all_releases_held_connections() {
    let a = http_origin("127.0.1.6").await;
    let b = http_origin("127.0.1.7").await;
    let d = daemon().start().await;
    let mut ws = d.client().await;
    let held_a = tunnel_curl(&d, &format!("http://{a}/"), None);
    let held_b = tunnel_curl(&d, &format!("http://{b}/"), Some("agent-b"));
    ws.pending_for("127.0.1.6", a.port()).await;
    ws.pending_for("127.0.1.7", b.port()).await;
    still_waiting(&held_a, "CONNECT with no rule").await;
    let status = ws
        .query(json!({"command":"set_allow_all","mode":"allow","duration":"5m"}))
        .await;
    assert_eq!(
        (&status["active"], &status["mode"]),
        (&json!(true), &json!("allow"))
    );
    assert_ok(&finish(held_a, SOON).await, a);
    assert_ok(&finish(held_b, SOON).await, b);
    // Silent mode is no rule: nothing was created.
    let rules = ws.query(json!({"command":"list_rules"})).await;
    assert!(
        rules["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["source"] == "builtin"),
        "{rules}"
    );
}

/// Two held destinations; `end` (dismiss or deny) the first: only it is answered 403.
async fn ending_one_hold_leaves_the_other(command: &str, ip_a: &str, ip_b: &str) {
    let a = http_origin(ip_a).await;
    let b = http_origin(ip_b).await;
    let d = daemon().start().await;
    let mut ws = d.client().await;
    let url_a = format!("http://{a}/");
    let held_a = tunnel_curl(&d, &url_a, None);
    let pa = ws.pending_for(ip_a, a.port()).await;
    let held_b = tunnel_curl(&d, &format!("http://{b}/"), None);
    let pb = ws.pending_for(ip_b, b.port()).await;

    let t = Instant::now();
    let r = ws
        .cmd(json!({"command":command,"pending_id":pa["id"]}))
        .await;
    assert_eq!(r["type"], "command_success", "{r}");
    let res = finish(held_a, SOON).await;
    assert_connect_refused(&res);
    assert!(t.elapsed() < SOON, "{:?}", t.elapsed());
    let ev = ws
        .event_where("pending_request.dismissed", |e| e["pending_id"] == pa["id"])
        .await;

    still_waiting(&held_b, "the other destination").await;
    let items = pending_items(&mut ws).await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(
        (&items[0]["id"], &items[0]["waiting_count"]),
        (&pb["id"], &json!(1))
    );

    allow(&mut ws, &pb, "exact").await;
    assert_ok(&finish(held_b, SOON).await, b);

    // What the next attempt at the first destination sees.
    if command == "deny" {
        assert_eq!(ev["data"]["rule"]["action"], "deny", "{ev}");
        assert_eq!(ev["data"]["rule"]["id"], r["rule_id"], "{ev}");
        let again = curl(&["-p", "-x", &d.http_proxy(), &url_a]).await;
        assert_connect_refused(&again);
        assert!(
            again.elapsed < SOON,
            "a deny rule answers at once: {again:?}"
        );
        assert!(pending_items(&mut ws).await.is_empty());
    } else {
        assert!(ev["data"].get("rule").is_none(), "{ev}");
        let again = tunnel_curl(&d, &url_a, None);
        let p = ws.pending_for(ip_a, a.port()).await;
        assert_ne!(p["id"], pa["id"], "a dismissed destination prompts anew");
        still_waiting(&again, "a dismissed destination").await;
        ws.cmd(json!({"command":"dismiss","pending_id":p["id"]}))
            .await;
        assert_connect_refused(&finish(again, SOON).await);
    }
}

#[tokio::test]
async fn dismiss_ends_only_its_own_hold() {
    ending_one_hold_leaves_the_other("dismiss", "127.0.1.8", "127.0.1.9").await;
}

#[tokio::test]
async fn deny_ends_only_its_own_hold() {
    ending_one_hold_leaves_the_other("deny", "127.0.1.10", "127.0.1.11").await;
}

#[tokio::test]
async fn hold_timeout_answers_403_and_keeps_the_pending_request() {
    let a = http_origin("127.0.1.12").await;
    let d = daemon().args(&["--hold-timeout", "2"]).start().await;
    let mut ws = d.client().await;
    let url = format!("http://{a}/t");
    let proxy = d.http_proxy();
    let held = tokio::spawn(async move { curl(&["-x", &proxy, &url]).await });
    let pending = ws.pending_for("127.0.1.12", a.port()).await;
    let res = finish(held, Duration::from_secs(15)).await;
    assert_eq!(res.status, 403, "{res:?}");
    assert!(res.body.contains("hold timeout"), "{res:?}");
    assert!(res.elapsed >= Duration::from_millis(1500), "{res:?}");
    waiters(&mut ws, &pending["id"], 1, 0).await;
    let items = pending_items(&mut ws).await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["id"], pending["id"]);
    assert_eq!(items[0]["attempt_count"], 1);
    assert_eq!(items[0]["waiting_count"], 0);
    let status = ws.query(json!({"command":"status"})).await;
    assert_eq!(status["hold_timeout_seconds"], 2, "{status}");
}

#[tokio::test]
async fn waiting_count_follows_held_curls_and_drops_when_one_is_killed() {
    let a = http_origin("127.0.1.13").await;
    let d = daemon().start().await;
    let mut ws = d.client().await;
    let url = format!("http://{a}/");
    let first = tunnel_curl(&d, &url, None);
    let pending = ws.pending_for("127.0.1.13", a.port()).await;
    let second = tunnel_curl(&d, &url, None);
    let id = pending["id"].clone();
    waiters(&mut ws, &id, 1, 2).await;
    let items = pending_items(&mut ws).await;
    assert_eq!(items.len(), 1, "one pending for both clients: {items:?}");
    assert_eq!(
        (&items[0]["waiting_count"], &items[0]["attempt_count"]),
        (&json!(2), &json!(2))
    );

    // Killing curl (the task owns the child, killed on drop) hangs up its connection.
    second.abort();
    let ev = waiters(&mut ws, &id, 2, 1).await;
    assert_eq!(ev["data"]["host"], "127.0.1.13");
    assert_eq!(pending_items(&mut ws).await[0]["waiting_count"], 1);
    let status = ws.query(json!({"command":"status"})).await;
    assert_eq!(status["held_connections"], 1, "{status}");

    allow(&mut ws, &pending, "exact").await;
    assert_ok(&finish(first, SOON).await, a);
}

#[tokio::test]
async fn a_raw_client_hanging_up_mid_hold_is_no_longer_counted() {
    let a = http_origin("127.0.1.14").await;
    let d = daemon().start().await;
    let mut ws = d.client().await;
    let target = a.to_string();
    let proxy = d.http.unwrap();
    let kept = http_connect_send(proxy, &target, None).await;
    let pending = ws.pending_for("127.0.1.14", a.port()).await;
    let id = pending["id"].clone();
    let dropped = http_connect_send(proxy, &target, None).await;
    waiters(&mut ws, &id, 1, 2).await;
    drop(dropped);
    waiters(&mut ws, &id, 2, 1).await;
    assert_eq!(pending_items(&mut ws).await[0]["waiting_count"], 1);
    drop(kept);
    waiters(&mut ws, &id, 1, 0).await;
    let items = pending_items(&mut ws).await;
    assert_eq!(
        (&items[0]["waiting_count"], &items[0]["attempt_count"]),
        (&json!(0), &json!(2))
    );
}

#[tokio::test]
async fn repeated_attempts_bump_attempt_count_instead_of_new_pendings() {
    let a = http_origin("127.0.1.15").await;
    let d = daemon().start().await;
    let mut ws = d.client().await;
    let target = a.to_string();
    let proxy = d.http.unwrap();
    let first = http_connect_send(proxy, &target, None).await;
    let pending = ws.pending_for("127.0.1.15", a.port()).await;
    assert_eq!(pending["attempt_count"], 1);
    let id = pending["id"].clone();
    drop(first);
    waiters(&mut ws, &id, 1, 0).await;
    let mut clients = Vec::new();
    for n in 2..=3 {
        clients.push(http_connect_send(proxy, &target, None).await);
        let ev = ws
            .event_where("pending_request.updated", |e| e["attempt_count"] == n)
            .await;
        assert_eq!(ev["data"]["id"], id, "{ev}");
        assert_eq!(ev["data"]["waiting_count"], n - 1, "{ev}");
    }
    let items = pending_items(&mut ws).await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["attempt_count"], 3);
    let created = ws
        .drain(Duration::from_millis(100))
        .await
        .into_iter()
        .filter(|m| m["type"] == "pending_request.created")
        .count();
    assert_eq!(created, 0, "no second pending_request.created");

    allow(&mut ws, &pending, "exact").await;
    for mut c in clients {
        let reply = tokio::time::timeout(SOON, read_connect_reply(&mut c))
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "{reply:?}");
    }
    // And once allowed, a fresh CONNECT is answered straight away.
    let (_s, reply) = http_connect(proxy, &target, None).await;
    assert_eq!(reply.status, 200, "{reply:?}");
}
