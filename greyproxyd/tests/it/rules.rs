//! Rules as users see them: deny rules answer at once, precedence (layer, specificity,
//! deny-wins ties), revocation of live tunnels when a rule is deleted or turned into a deny, and
//! the rule/pending events.

use std::net::SocketAddr;
use std::time::Duration;

use greyproxy_testkit::origin::{echo_origin, http_origin};
use greyproxy_testkit::raw::{
    SocksTarget, closed_within, echo_roundtrip, http_connect, http_connect_send,
    read_connect_reply, socks5_connect,
};
use greyproxy_testkit::{Control, CurlResult, DaemonBuilder, curl};
use serde_json::{Value, json};

fn daemon() -> DaemonBuilder {
    DaemonBuilder::new(env!("CARGO_BIN_EXE_greyproxyd"))
}

/// "At once": generous, but well under the 30 s default hold.
const SOON: Duration = Duration::from_secs(2);

/// `create_rule`; asserts success and returns the rule id.
async fn create_rule(
    ws: &mut Control,
    container: &str,
    dest: &str,
    port: &str,
    action: &str,
) -> Value {
    let r = ws
        .cmd(
            json!({"command":"create_rule","container_pattern":container,
            "destination_pattern":dest,"port_pattern":port,"action":action}),
        )
        .await;
    assert_eq!(r["type"], "command_success", "{r}");
    r["rule_id"].clone()
}

fn assert_ok(res: &CurlResult, origin: SocketAddr) {
    assert_eq!((res.exit, res.status), (0, 200), "{res:?}");
    assert!(
        res.body.starts_with(&format!("hello from {origin}")),
        "{res:?}"
    );
}

fn assert_blocked_by_rule(res: &CurlResult) {
    assert_eq!(res.status, 403, "{res:?}");
    assert!(res.body.contains("blocked (rule)"), "{res:?}");
    assert!(res.elapsed < SOON, "a deny rule answers at once: {res:?}");
}

async fn pending_total(ws: &mut Control) -> Value {
    ws.query(json!({"command":"list_pending"})).await["total"].clone()
}

#[tokio::test]
async fn a_deny_rule_blocks_at_once_without_a_pending_request() {
    let a = http_origin("127.0.2.1").await;
    let d = daemon().start().await;
    let mut ws = d.client().await;
    create_rule(&mut ws, "*", "127.0.2.1", "*", "deny").await;
    let url = format!("http://{a}/");
    assert_blocked_by_rule(&curl(&["-x", &d.http_proxy(), &url]).await);
    let tunnel = curl(&["-p", "-x", &d.http_proxy(), &url]).await;
    assert_eq!(tunnel.exit, 56, "{tunnel:?}");
    assert!(tunnel.stderr.contains("403"), "{tunnel:?}");
    let socks = curl(&["--socks5-hostname", &d.socks_proxy(), &url]).await;
    assert_eq!(socks.exit, 97, "{socks:?}");
    assert!(socks.elapsed < SOON, "{socks:?}");
    let (_, reply) = http_connect(d.http.unwrap(), &a.to_string(), Some("named")).await;
    assert_eq!(reply.status, 403, "{reply:?}");

    assert_eq!(pending_total(&mut ws).await, 0);
    let seen = ws.drain(Duration::from_millis(200)).await;
    assert!(
        seen.iter().all(|m| m["type"] != "pending_request.created"),
        "{seen:?}"
    );
}

#[tokio::test]
async fn a_new_deny_rule_ends_a_held_request_with_a_dismissed_event() {
    let a = http_origin("127.0.2.2").await;
    let d = daemon().start().await;
    let mut ws = d.client().await;
    let (proxy, url) = (d.http_proxy(), format!("http://{a}/"));
    let held = tokio::spawn(async move { curl(&["-x", &proxy, &url]).await });
    let p = ws.pending_for("127.0.2.2", a.port()).await;
    let rule_id = create_rule(&mut ws, "*", "127.0.2.0/24", "*", "deny").await;
    let res = tokio::time::timeout(SOON, held).await.unwrap().unwrap();
    assert_eq!(res.status, 403, "{res:?}");
    let ev = ws
        .event_where("pending_request.dismissed", |e| e["pending_id"] == p["id"])
        .await;
    assert_eq!(ev["data"]["rule"]["id"], rule_id, "{ev}");
    assert_eq!(ev["data"]["rule"]["action"], "deny", "{ev}");
    assert_eq!(pending_total(&mut ws).await, 0);
}

#[tokio::test]
async fn deny_beats_an_allow_of_equal_specificity_whatever_the_order() {
    let a = http_origin("127.0.2.3").await;
    let b = http_origin("127.0.2.4").await;
    let d = daemon().start().await;
    let mut ws = d.client().await;
    let proxy = d.http_proxy();
    let (pa, pb) = (a.port().to_string(), b.port().to_string());
    // Allow first, then deny…
    create_rule(&mut ws, "*", "127.0.2.3", &pa, "allow").await;
    assert_ok(&curl(&["-x", &proxy, &format!("http://{a}/")]).await, a);
    let deny_a = create_rule(&mut ws, "*", "127.0.2.3", &pa, "deny").await;
    assert_blocked_by_rule(&curl(&["-x", &proxy, &format!("http://{a}/")]).await);
    // …or deny first, then allow.
    let deny_b = create_rule(&mut ws, "*", "127.0.2.4", &pb, "deny").await;
    create_rule(&mut ws, "*", "127.0.2.4", &pb, "allow").await;
    assert_blocked_by_rule(&curl(&["-x", &proxy, &format!("http://{b}/")]).await);

    // Without the deny, the allow decides.
    for id in [deny_a, deny_b] {
        let r = ws.cmd(json!({"command":"delete_rule","rule_id":id})).await;
        assert_eq!(r["type"], "command_success", "{r}");
    }
    assert_ok(&curl(&["-x", &proxy, &format!("http://{a}/")]).await, a);
    assert_ok(&curl(&["-x", &proxy, &format!("http://{b}/")]).await, b);
}

#[tokio::test]
async fn specificity_then_layer_decide_between_wildcards_and_exact_rules() {
    let a = http_origin("127.0.2.5").await;
    let b = http_origin("127.0.2.5").await;
    let c = http_origin("127.0.2.6").await;
    let local = http_origin("127.0.0.1").await;
    let d = daemon().start().await;
    let mut ws = d.client().await;
    let proxy = d.http_proxy();
    let get = |o: SocketAddr| {
        let proxy = proxy.clone();
        async move { curl(&["-x", &proxy, &format!("http://{o}/")]).await }
    };
    // A global allow-everything loses to an exact deny (specificity 221 against 0)…
    let allow_all = create_rule(&mut ws, "*", "*", "*", "allow").await;
    create_rule(
        &mut ws,
        "unknown-127.0.0.1",
        "127.0.2.5",
        &a.port().to_string(),
        "deny",
    )
    .await;
    assert_blocked_by_rule(&get(a).await);
    // …but still decides everything else: another port, another host, no prompt.
    assert_ok(&get(b).await, b);
    assert_ok(&get(c).await, c);

    // A global deny-everything beats the built-in loopback allow (layer before specificity)…
    let r = ws
        .cmd(json!({"command":"delete_rule","rule_id":allow_all}))
        .await;
    assert_eq!(r["type"], "command_success", "{r}");
    create_rule(&mut ws, "*", "*", "*", "deny").await;
    assert_blocked_by_rule(&get(local).await);
    // …and loses to a more specific global allow.
    create_rule(&mut ws, "*", "127.0.2.6", "*", "allow").await;
    assert_ok(&get(c).await, c);
    assert_blocked_by_rule(&get(b).await);
    assert_eq!(pending_total(&mut ws).await, 0);
}

#[tokio::test]
async fn deleting_a_rule_cuts_the_tunnels_it_allowed_and_only_those() {
    let e1 = echo_origin("127.0.2.7").await;
    let e2 = echo_origin("127.0.2.8").await;
    let d = daemon().start().await;
    let mut ws = d.client().await;
    let r1 = create_rule(&mut ws, "*", "127.0.2.7", "*", "allow").await;
    create_rule(&mut ws, "*", "127.0.2.8", "*", "allow").await;
    let (mut t1, reply) = http_connect(d.http.unwrap(), &e1.to_string(), None).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let (mut t2, rep) = socks5_connect(d.socks.unwrap(), &SocksTarget::Ip(e1), None).await;
    assert_eq!(rep, Some(0));
    let (mut other, reply) = http_connect(d.http.unwrap(), &e2.to_string(), None).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    echo_roundtrip(&mut t1, b"before, http").await;
    echo_roundtrip(&mut t2, b"before, socks").await;
    echo_roundtrip(&mut other, b"before, other").await;

    let r = ws.cmd(json!({"command":"delete_rule","rule_id":r1})).await;
    assert_eq!(r["type"], "command_success", "{r}");
    assert!(closed_within(&mut t1, SOON).await, "HTTP tunnel still open");
    assert!(
        closed_within(&mut t2, SOON).await,
        "SOCKS tunnel still open"
    );
    echo_roundtrip(&mut other, b"after, other").await;
    let ev = ws.event("rule.deleted").await;
    assert_eq!(ev["data"], json!({"rule_id": r1}));

    // Without its rule the destination prompts again.
    let _held = http_connect_send(d.http.unwrap(), &e1.to_string(), None).await;
    ws.pending_for("127.0.2.7", e1.port()).await;
}

#[tokio::test]
async fn deleting_a_rule_cuts_a_plain_http_keep_alive_connection_it_allowed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let origin = http_origin("127.0.2.10").await;
    let d = daemon().start().await;
    let mut ws = d.client().await;
    let rule = create_rule(&mut ws, "*", "127.0.2.10", "*", "allow").await;
    let mut s = tokio::net::TcpStream::connect(d.http.unwrap())
        .await
        .unwrap();
    // Two requests on one keep-alive connection: it stays open between them.
    for path in ["/one", "/two"] {
        s.write_all(
            format!("GET http://{origin}{path} HTTP/1.1\r\nHost: {origin}\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let want = format!("hello from {origin} GET {path}");
        let mut got = Vec::new();
        while !String::from_utf8_lossy(&got).contains(&want) {
            let mut buf = [0u8; 1024];
            let n = tokio::time::timeout(SOON, s.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "closed before the answer to {path}");
            got.extend_from_slice(&buf[..n]);
        }
    }
    let r = ws
        .cmd(json!({"command":"delete_rule","rule_id":rule}))
        .await;
    assert_eq!(r["type"], "command_success", "{r}");
    assert!(
        closed_within(&mut s, SOON).await,
        "the keep-alive connection outlived its rule"
    );
}

#[tokio::test]
async fn turning_a_rule_into_a_deny_cuts_its_tunnels() {
    let e = echo_origin("127.0.2.9").await;
    let d = daemon().start().await;
    let mut ws = d.client().await;
    let id = create_rule(&mut ws, "*", "127.0.2.9", "*", "allow").await;
    let (mut t, reply) = http_connect(d.http.unwrap(), &e.to_string(), None).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    echo_roundtrip(&mut t, b"one").await;

    // Other edits leave live connections alone.
    let r = ws
        .cmd(json!({"command":"update_rule","rule_id":id,"notes":"still allowed"}))
        .await;
    assert_eq!(r["type"], "command_success", "{r}");
    assert!(!closed_within(&mut t, Duration::from_millis(300)).await);
    echo_roundtrip(&mut t, b"two").await;

    let r = ws
        .cmd(json!({"command":"update_rule","rule_id":id,"action":"deny"}))
        .await;
    assert_eq!(r["type"], "command_success", "{r}");
    assert!(closed_within(&mut t, SOON).await, "tunnel still open");
    let (_, reply) = http_connect(d.http.unwrap(), &e.to_string(), None).await;
    assert_eq!(reply.status, 403, "{reply:?}");
}

#[tokio::test]
async fn rule_changes_publish_rule_events() {
    let d = daemon().start().await;
    let mut ws = d.client().await;
    let r = ws
        .cmd(
            json!({"command":"create_rule","container_pattern":"agent-*",
            "destination_pattern":"*.Example.COM","port_pattern":"443","notes":"first"}),
        )
        .await;
    assert_eq!(r["type"], "command_success", "{r}");
    let id = r["rule_id"].clone();
    let created = ws.event("rule.created").await["data"].clone();
    assert_eq!(created["id"], id);
    assert_eq!(created["container_pattern"], "agent-*");
    assert_eq!(created["destination_pattern"], "*.example.com");
    assert_eq!(created["port_pattern"], "443");
    assert_eq!(created["action"], "allow");
    assert_eq!(created["source"], "global");
    assert_eq!(created["notes"], "first");

    let r = ws
        .cmd(json!({"command":"update_rule","rule_id":id,"port_pattern":"80,443","notes":"second"}))
        .await;
    assert_eq!(r["type"], "command_success", "{r}");
    let updated = ws.event("rule.updated").await["data"].clone();
    assert_eq!(updated["id"], id);
    assert_eq!(updated["port_pattern"], "80,443");
    assert_eq!(updated["notes"], "second");
    assert_eq!(updated["created_at"], created["created_at"]);

    let r = ws.cmd(json!({"command":"delete_rule","rule_id":id})).await;
    assert_eq!(r["type"], "command_success", "{r}");
    assert_eq!(
        ws.event("rule.deleted").await["data"],
        json!({"rule_id": id})
    );
    let rules = ws.query(json!({"command":"list_rules"})).await;
    assert!(
        rules["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["id"] != id)
    );
}

#[tokio::test]
async fn a_rule_that_decides_a_pending_request_removes_it_with_an_allowed_event() {
    let a = http_origin("127.0.2.10").await;
    let d = daemon().start().await;
    let mut ws = d.client().await;
    // A pending request nobody waits on any more.
    let client = http_connect_send(d.http.unwrap(), &a.to_string(), Some("agent-x")).await;
    let p = ws.pending_for("127.0.2.10", a.port()).await;
    drop(client);
    ws.event_where("waiters.changed", |e| {
        e["pending_id"] == p["id"] && e["current_count"] == 0
    })
    .await;
    // An unrelated rule leaves it alone.
    create_rule(&mut ws, "agent-y", "127.0.2.10", "*", "allow").await;
    assert_eq!(pending_total(&mut ws).await, 1);

    let id = create_rule(&mut ws, "agent-*", "127.0.2.10", "*", "allow").await;
    let created = ws.event_where("rule.created", |r| r["id"] == id).await;
    let ev = ws
        .event_where("pending_request.allowed", |e| e["pending_id"] == p["id"])
        .await;
    assert_eq!(ev["data"]["rule"]["id"], id, "{ev}");
    assert_eq!(ev["data"]["rule"]["container_pattern"], "agent-*", "{ev}");
    assert!(created["seq"].as_u64() < ev["seq"].as_u64());
    assert_eq!(pending_total(&mut ws).await, 0);

    // `allow` carries the same payload: exactly {pending_id, rule}.
    let mut client = http_connect_send(d.http.unwrap(), &a.to_string(), Some("other")).await;
    let p = ws.pending_for("127.0.2.10", a.port()).await;
    assert_eq!(p["container_name"], "other");
    let r = ws
        .cmd(json!({"command":"allow","pending_id":p["id"],"notes":"ok by me"}))
        .await;
    assert_eq!(r["type"], "command_success", "{r}");
    let ev = ws
        .event_where("pending_request.allowed", |e| e["pending_id"] == p["id"])
        .await;
    let keys: Vec<&String> = ev["data"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["pending_id", "rule"], "{ev}");
    let rule = &ev["data"]["rule"];
    assert_eq!(rule["id"], r["rule_id"]);
    assert_eq!(rule["notes"], "ok by me");
    assert_eq!(rule["container_pattern"], "other");
    let reply = tokio::time::timeout(SOON, read_connect_reply(&mut client))
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
}
