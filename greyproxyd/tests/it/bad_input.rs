//! Malformed and misbehaving clients: bad control messages, oversized WebSocket messages,
//! plain HTTP on the control port, garbage on the proxy ports, clients hanging up mid-hold.
//! Each is answered or closed, nothing changes, and the daemon keeps serving everyone else.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::SinkExt;
use greyproxy_testkit::badio::{WsRead, exchange, socks5_connect_ipv4, ws_read};
use greyproxy_testkit::control::open;
use greyproxy_testkit::origin::http_origin;
use greyproxy_testkit::wire::is_rfc3339;
use greyproxy_testkit::{Control, Daemon, DaemonBuilder, curl};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

fn daemon() -> DaemonBuilder {
    DaemonBuilder::new(env!("CARGO_BIN_EXE_greyproxyd"))
}

const WAIT: Duration = Duration::from_secs(10);

fn error_text(r: &Value) -> &str {
    assert_eq!(r["type"], "error", "{r}");
    assert!(is_rfc3339(r["timestamp"].as_str().unwrap()), "{r}");
    r["error"].as_str().unwrap()
}

#[tokio::test]
async fn malformed_json_and_unknown_commands_get_errors_and_the_connection_lives_on() {
    let d = daemon().start().await;
    let mut ws = d.client().await;
    for bad in ["{nope", "[1,2]", "\"just a string\"", "", "null"] {
        ws.send_text(bad).await;
        let r = ws.next(WAIT).await.expect("an answer");
        assert_eq!(error_text(&r), "invalid JSON", "{bad:?}");
        assert!(r.get("request_id").is_none_or(Value::is_null), "{r}");
    }
    let r = ws.cmd(json!({"command":"fly"})).await;
    assert_eq!(error_text(&r), "unknown command: fly");
    let r = ws.cmd(json!({"hello":"world"})).await;
    assert_eq!(error_text(&r), "unknown command: ");
    let r = ws.cmd(json!({"command":7})).await;
    assert_eq!(error_text(&r), "unknown command: ");
    // Still the same working connection.
    assert_eq!(ws.cmd(json!({"command":"ping"})).await["type"], "pong");
    ws.send_text(r#"{"command":"ping","request_id":5}"#).await;
    assert_eq!(ws.next(WAIT).await.unwrap()["request_id"], 5);
}

#[tokio::test]
async fn bad_arguments_are_refused_and_change_nothing() {
    let origin = http_origin("127.0.0.30").await;
    let d = daemon().start().await;
    let mut ws = d.client().await;
    let mut watcher = d.client().await;
    let proxy = d.http_proxy();
    let url = format!("http://{origin}/");
    let held = tokio::spawn(async move { curl(&["-x", &proxy, &url]).await });
    let pending = ws.pending_for("127.0.0.30", origin.port()).await;
    let id = pending["id"].as_u64().unwrap();
    watcher.drain(Duration::from_millis(200)).await;
    let before = ws.query(json!({"command":"status"})).await;

    let r = ws
        .cmd(json!({"command":"allow","pending_id":id.to_string()}))
        .await;
    assert!(
        error_text(&r).starts_with("invalid arguments for allow"),
        "{r}"
    );
    for cmd in ["allow", "deny", "dismiss"] {
        let r = ws.cmd(json!({"command":cmd,"pending_id":987654})).await;
        assert_eq!(error_text(&r), "pending request 987654 not found", "{cmd}");
    }
    for (field, value) in [
        ("scope", "galaxy"),
        ("duration", "forever"),
        ("duration", "500ms"),
    ] {
        for cmd in ["allow", "deny"] {
            let r = ws
                .cmd(json!({"command":cmd,"pending_id":id,field:value}))
                .await;
            assert_eq!(r["type"], "error", "{cmd} {field}={value:?}: {r}");
        }
    }
    let rule = |extra: Value| {
        let mut c = json!({"command":"create_rule","container_pattern":"*","destination_pattern":"ok.example"});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    for extra in [
        json!({"destination_pattern":""}),
        json!({"destination_pattern":"a b.example"}),
        json!({"destination_pattern":"*.*.example"}),
        json!({"destination_pattern":"ex*ample.com"}),
        json!({"destination_pattern":"10.0.0.0/99"}),
        json!({"container_pattern":""}),
        json!({"container_pattern":"[abc"}),
        json!({"port_pattern":"99999"}),
        json!({"port_pattern":"http"}),
        json!({"port_pattern":"90-80"}),
        json!({"action":"maybe"}),
        json!({"duration":"forever"}),
        json!({"expires_at":"tomorrow"}),
        json!({"expires_at":"2030-01-01T00:00:00Z","duration":"1h"}),
    ] {
        let r = ws.cmd(rule(extra.clone())).await;
        assert_eq!(r["type"], "error", "create_rule {extra}: {r}");
    }
    let r = ws
        .cmd(json!({"command":"update_rule","rule_id":987654}))
        .await;
    assert_eq!(error_text(&r), "rule 987654 not found");
    let r = ws
        .cmd(json!({"command":"delete_rule","rule_id":987654}))
        .await;
    assert_eq!(error_text(&r), "rule 987654 not found");
    let r = ws
        .cmd(json!({"command":"update_rule","rule_id":1,"port_pattern":"0"}))
        .await;
    assert_eq!(r["type"], "error", "{r}");

    // Nothing changed: same counts, same rules, the request still held and still pending.
    let after = ws.query(json!({"command":"status"})).await;
    for k in ["rule_count", "pending_count", "held_connections"] {
        assert_eq!(after[k], before[k], "{k}: {before} → {after}");
    }
    assert_eq!(after["held_connections"], 1);
    let rules = ws.query(json!({"command":"list_rules"})).await;
    assert_eq!(rules["total"], 3, "{rules}");
    assert_eq!(rules["items"][2]["port_pattern"], "*", "{rules}");
    let p = ws.query(json!({"command":"list_pending"})).await;
    assert_eq!(p["items"][0]["id"], id, "{p}");
    assert_eq!(p["items"][0]["waiting_count"], 1, "{p}");
    assert!(!held.is_finished());
    let seen = watcher.drain(Duration::from_millis(300)).await;
    assert!(
        seen.iter().all(|m| m.get("seq").is_none()),
        "refused commands publish nothing: {seen:?}"
    );
    let r = ws.cmd(json!({"command":"dismiss","pending_id":id})).await;
    assert_eq!(r["type"], "command_success", "{r}");
    assert_eq!(held.await.unwrap().status, 403);
}

#[tokio::test]
async fn a_websocket_message_over_1_mib_is_closed_with_1009_and_others_carry_on() {
    let d = daemon().start().await;
    let mut bystander = d.client().await;
    let mut ws = open(&d.ws_url(), Some(&d.token)).await.unwrap();
    assert!(matches!(ws_read(&mut ws, WAIT).await, WsRead::Json(g) if g["type"] == "connected"));
    let big = format!(
        r#"{{"command":"ping","pad":"{}"}}"#,
        "x".repeat(1024 * 1024)
    );
    // The daemon may hang up before the whole message is written; that is fine.
    let _ = ws.send(Message::text(big)).await;
    match ws_read(&mut ws, WAIT).await {
        WsRead::Close(code) => assert_eq!(code, Some(1009)),
        other => panic!("expected close 1009, got {other:?}"),
    }
    assert_eq!(
        bystander.cmd(json!({"command":"ping"})).await["type"],
        "pong"
    );
    let mut fresh = d.client().await;
    assert_eq!(fresh.cmd(json!({"command":"ping"})).await["type"], "pong");
    // Just under the limit is fine.
    let pad = "y".repeat(1024 * 1024 - 200);
    let r = fresh.cmd(json!({"command":"ping","pad":pad})).await;
    assert_eq!(r["type"], "pong", "{r}");
}

#[tokio::test]
async fn plain_http_on_the_control_port_gets_404_off_ws() {
    let d = daemon().start().await;
    for path in ["/", "/status", "/api/notifications"] {
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let out = exchange(d.control, req.as_bytes(), false, WAIT).await;
        assert!(out.closed, "{path}: {out:?}");
        assert!(
            out.text().starts_with("HTTP/1.1 404"),
            "{path}: {:?}",
            out.text()
        );
    }
    // A WebSocket upgrade on another path is refused the same way.
    let url = format!("ws://{}/other", d.control);
    let err = open(&url, Some(&d.token)).await.unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");
    // The endpoint itself still works.
    let mut ws = d.client().await;
    assert_eq!(ws.cmd(json!({"command":"ping"})).await["type"], "pong");
}

/// A plain proxied request through each front end succeeds.
async fn proxy_still_serves(d: &Daemon, origin: SocketAddr, after: &str) {
    let url = format!("http://{origin}/after");
    let r = curl(&["-x", &d.http_proxy(), &url]).await;
    assert_eq!(r.status, 200, "HTTP proxy after {after}: {r:?}");
    let r = curl(&["--socks5-hostname", &d.socks_proxy(), &url]).await;
    assert_eq!(r.status, 200, "SOCKS5 after {after}: {r:?}");
}

fn pseudo_random(n: usize) -> Vec<u8> {
    let mut x: u32 = 0x2545_f491;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

fn tls_client_hello() -> Vec<u8> {
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&[7u8; 32]); // random
    body.extend_from_slice(&[0, 0, 2, 0x13, 0x01, 1, 0, 0, 0]); // session, suites, compression, ext
    let mut hs = vec![0x01, 0, 0, body.len() as u8];
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16, 0x03, 0x01, 0, hs.len() as u8];
    rec.extend_from_slice(&hs);
    rec
}

#[tokio::test]
async fn garbage_on_the_http_proxy_port_is_closed_and_the_proxy_keeps_serving() {
    let origin = http_origin("127.0.0.1").await;
    let d = daemon().start().await;
    let http = d.http.unwrap();
    let closed_or_4xx = |what: &str, out: &greyproxy_testkit::badio::Outcome| {
        assert!(out.closed, "{what}: connection left open: {out:?}");
        let t = out.text();
        assert!(t.is_empty() || t.starts_with("HTTP/1.1 4"), "{what}: {t:?}");
    };

    let out = exchange(http, &pseudo_random(3000), false, WAIT).await;
    closed_or_4xx("random bytes", &out);
    proxy_still_serves(&d, origin, "random bytes").await;

    let out = exchange(http, &tls_client_hello(), false, WAIT).await;
    closed_or_4xx("TLS ClientHello", &out);
    proxy_still_serves(&d, origin, "a TLS ClientHello").await;

    // A head of exactly 64 KiB with no end: all of it is read, then 431.
    let mut head = format!("GET http://{origin}/ HTTP/1.1\r\nX-Pad: ").into_bytes();
    head.resize(64 * 1024, b'a');
    let out = exchange(http, &head, false, WAIT).await;
    assert!(out.closed, "{out:?}");
    assert!(out.text().starts_with("HTTP/1.1 431"), "{:?}", out.text());
    // Far over: refused as well (the unread rest may turn the answer into a reset).
    head.resize(300 * 1024, b'a');
    let out = exchange(http, &head, false, WAIT).await;
    closed_or_4xx("a 300 KiB head", &out);
    proxy_still_serves(&d, origin, "over-long heads").await;

    let partial = format!("GET http://{origin}/ HTTP/1.1\r\nHost: {origin}\r\n");
    let out = exchange(http, partial.as_bytes(), true, WAIT).await;
    assert!(
        out.closed && out.reply.is_empty(),
        "truncated head: {out:?}"
    );
    proxy_still_serves(&d, origin, "a truncated head").await;
}

#[tokio::test]
async fn origin_form_and_unsupported_targets_get_400_with_a_hint() {
    let d = daemon().start().await;
    let http = d.http.unwrap();
    let out = exchange(
        http,
        b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
        false,
        WAIT,
    )
    .await;
    let t = out.text();
    assert!(t.starts_with("HTTP/1.1 400"), "{t:?}");
    assert!(
        t.contains("absolute-form") && t.contains("CONNECT"),
        "{t:?}"
    );
    let out = exchange(
        http,
        b"GET https://example.com/ HTTP/1.1\r\n\r\n",
        false,
        WAIT,
    )
    .await;
    assert!(out.text().starts_with("HTTP/1.1 400"), "{:?}", out.text());
    let out = exchange(http, b"CONNECT example.com HTTP/1.1\r\n\r\n", false, WAIT).await;
    let t = out.text();
    assert!(
        t.starts_with("HTTP/1.1 400") && t.contains("host:port"),
        "{t:?}"
    );
}

#[tokio::test]
async fn garbage_on_the_socks5_port_is_answered_and_socks_keeps_serving() {
    let origin = http_origin("127.0.0.1").await;
    let d = daemon().start().await;
    let socks = d.socks.unwrap();
    let refusal = |rep: u8| vec![5, 0, 5, rep, 0, 1, 0, 0, 0, 0, 0, 0];
    let cases: [(&str, Vec<u8>, bool, Vec<u8>); 6] = [
        (
            "SOCKS4 greeting",
            vec![4, 1, 0, 80, 127, 0, 0, 1, 0],
            false,
            vec![],
        ),
        (
            "no acceptable method",
            vec![5, 2, 1, 3],
            false,
            vec![5, 0xFF],
        ),
        ("truncated greeting", vec![5, 2, 0], true, vec![]),
        (
            "BIND",
            vec![5, 1, 0, 5, 2, 0, 1, 127, 0, 0, 1, 0, 80],
            false,
            refusal(7),
        ),
        (
            "UDP ASSOCIATE",
            vec![5, 1, 0, 5, 3, 0, 1, 127, 0, 0, 1, 0, 80],
            false,
            refusal(7),
        ),
        (
            "address type 9",
            vec![5, 1, 0, 5, 1, 0, 9],
            false,
            refusal(8),
        ),
    ];
    for (what, input, close_write, expected) in cases {
        let out = exchange(socks, &input, close_write, WAIT).await;
        assert!(out.closed, "{what}: left open: {out:?}");
        assert_eq!(out.reply, expected, "{what}");
        proxy_still_serves(&d, origin, what).await;
    }
    // A truncated request after a good greeting.
    let mut s = TcpStream::connect(socks).await.unwrap();
    s.write_all(&[5, 1, 0, 5, 1, 0, 1, 127]).await.unwrap();
    s.shutdown().await.unwrap();
    let out = greyproxy_testkit::badio::read_until_close(&mut s, WAIT).await;
    assert!(out.closed && out.reply == [5, 0], "{out:?}");
    proxy_still_serves(&d, origin, "a truncated request").await;
}

async fn hang_up_mid_hold(
    ws: &mut Control,
    client: TcpStream,
    host: &str,
    port: u16,
    method: &str,
) {
    let pending = ws.pending_for(host, port).await;
    let id = pending["id"].clone();
    ws.event_where("waiters.changed", |e| {
        e["pending_id"] == id && e["current_count"] == 1
    })
    .await;
    drop(client);
    let ev = ws
        .event_where("waiters.changed", |e| {
            e["pending_id"] == id && e["current_count"] == 0
        })
        .await;
    assert_eq!(ev["data"]["previous_count"], 1, "{ev}");
    let log = ws
        .event_where("request_log.new", |l| l["destination_host"] == host)
        .await;
    let l = &log["data"];
    assert_eq!(l["result"], "blocked", "{log}");
    assert_eq!(l["reason"], "client_gone", "{log}");
    assert_eq!(l["method"], method, "{log}");
    assert_eq!(l["destination_port"], port, "{log}");
    assert!(l["rule_id"].is_null(), "{log}");
    let p = ws
        .query(json!({"command":"list_pending","destination":host}))
        .await;
    assert_eq!(
        p["items"][0]["waiting_count"], 0,
        "the request stays pending: {p}"
    );
    let act = ws
        .query(json!({"command":"list_activity","destination":host}))
        .await;
    assert_eq!(act["items"][0]["reason"], "client_gone", "{act}");
}

#[tokio::test]
async fn a_client_hanging_up_mid_hold_ends_the_hold_as_client_gone() {
    let o1 = http_origin("127.0.0.31").await;
    let o2 = http_origin("127.0.0.32").await;
    let d = daemon().start().await;
    let mut ws = d.client().await;

    let mut s = TcpStream::connect(d.http.unwrap()).await.unwrap();
    s.write_all(format!("CONNECT {o1} HTTP/1.1\r\nHost: {o1}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    hang_up_mid_hold(&mut ws, s, "127.0.0.31", o1.port(), "HTTP").await;

    let s = socks5_connect_ipv4(d.socks.unwrap(), o2).await;
    hang_up_mid_hold(&mut ws, s, "127.0.0.32", o2.port(), "SOCKS5").await;

    let st = ws.query(json!({"command":"status"})).await;
    assert_eq!(st["held_connections"], 0, "{st}");
    assert_eq!(st["pending_count"], 2, "{st}");
}
