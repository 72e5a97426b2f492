//! Plain `ws://` capture (an absolute-form upgrade on the HTTP proxy, and plain HTTP inside a
//! CONNECT tunnel), and what happens when capture cannot follow a connection: a server that
//! sends invalid frames after a correct 101 still reaches the client byte for byte, and the
//! upgrade row says why capture stopped.

use greyproxy_testkit::mitm::{MitmEnv, mitm_of, transactions_for};
use greyproxy_testkit::wsprobe::{
    WsOrigin, assert_messages, chat_messages, closed_connection, compressed, echo, run_client,
};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_greyproxyd");

/// A three-message chat over plain `ws://` through the HTTP proxy, `via` `absolute` (the
/// upgrade request sent to the proxy with the full URL) or `http` (CONNECT, then plain HTTP).
async fn plain_chat(ip: &str, via: &str) -> MitmEnv {
    let mut env = MitmEnv::start(BIN, "", &[]).await;
    let mut origin = WsOrigin::start(ip, None, &[]).await;
    let url = origin.url("ws", "/plain?room=7");
    let sent = chat_messages(3);
    let mut actions: Vec<Value> = sent
        .iter()
        .flat_map(|m| [json!({"send": m}), json!({"recv": 1})])
        .collect();
    actions.push(json!({"ping": "x"}));
    actions.push(json!({"close": {"code": 1001, "reason": "going away"}}));
    let out = run_client(&json!({
        "url": url, "via": via, "proxy": env.d.http.unwrap().to_string(), "user": "codex",
        "actions": actions,
    }))
    .await;
    let echoed: Vec<Value> = sent.iter().map(|m| json!(echo(m))).collect();
    assert_eq!(out["received"], json!(echoed));
    let server = origin.closed().await;
    assert_eq!(server["received"], json!(sent));
    assert_eq!(server["path"], "/plain?room=7");

    let rows = closed_connection(&mut env.ws, ip, 6).await;
    let sent: Vec<Value> = sent.iter().map(|m| json!(m)).collect();
    assert_messages(&rows, &url, &sent, &echoed, 2 * 1024 * 1024);
    assert!(url.starts_with(&format!("ws://{ip}:")));
    let port = origin.addr.port();
    let up = &rows.upgrade;
    assert_eq!(
        up["url"],
        format!("http://{ip}:{port}/plain?room=7"),
        "{up}"
    );
    assert_eq!(up["status_code"], 101);
    assert_eq!(up["destination_port"], port);
    assert_eq!(up["container_name"], "codex");
    assert!(
        up["ws_extensions"]
            .as_str()
            .unwrap()
            .contains("permessage-deflate")
    );
    for m in &rows.messages {
        assert!(compressed(m), "{m}");
    }
    assert_eq!(up["ws_messages"], 6);
    assert_eq!(up["ws_close_code"], 1001);
    assert_eq!(up["ws_close_reason"], "going away");
    env
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_ws_through_the_http_proxy_in_absolute_form() {
    let env = plain_chat("127.0.0.88", "absolute").await;
    drop(env);
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_ws_inside_a_connect_tunnel() {
    let mut env = plain_chat("127.0.0.89", "http").await;
    let port = transactions_for(&mut env.ws, "127.0.0.89").await[0]["destination_port"]
        .as_u64()
        .unwrap();
    assert_eq!(
        mitm_of(&mut env.ws, "127.0.0.89", port as u16).await,
        "http"
    );
}

/// An unmasked single-frame server message.
fn frame(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mut f = vec![first_byte, payload.len() as u8];
    f.extend_from_slice(payload);
    f
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `server.py --mode bad-*` over TLS: 101 + "before-bad" in one write, then after the client's
/// first frame an invalid frame and "after-bad", then after the client's second frame its echo
/// and a close. The client (raw frames through CONNECT) must get every byte; capture records
/// what came before the bad frame, stops for that direction with the reason, and the client's
/// direction goes on being recorded.
async fn invalid_frame(ip: &str, mode: &str, bad: Vec<u8>, reason: &str) {
    let mut env = MitmEnv::start(BIN, "", &[]).await;
    let mut origin = WsOrigin::start(ip, Some(&env.ca), &["--mode", mode]).await;
    let url = origin.url("wss", "/bad");
    let out = run_client(&json!({
        "mode": "raw", "url": url, "via": "http", "proxy": env.d.http.unwrap().to_string(),
        "user": "codex", "cafile": env.daemon_ca_arg(),
        "actions": [{"send_frame": "hello"}, {"read_until": "after-bad"},
                    {"send_frame": "still relayed"}, {"read_eof": true}],
    }))
    .await;
    assert_eq!(out["status"], 101);
    let mut want = frame(0x81, b"before-bad");
    want.extend(bad);
    want.extend(frame(0x81, b"after-bad"));
    want.extend(frame(0x81, b"echo:still relayed"));
    want.extend(frame(0x88, b"\x03\xe8bye"));
    assert_eq!(
        out["received_hex"],
        hex(&want),
        "the client got the server's bytes untouched"
    );
    let server = origin.closed().await;
    assert_eq!(server["received"], json!(["hello", "still relayed"]));

    let rows = closed_connection(&mut env.ws, ip, 3).await;
    let sent = [json!("hello"), json!("still relayed")];
    assert_messages(&rows, &url, &sent, &[json!("before-bad")], 1024);
    assert_eq!(
        rows.messages[0]["method"], "WS_RESP",
        "sent with the 101: message 0"
    );
    let up = &rows.upgrade;
    let stopped = up["ws_capture_stopped"]
        .as_str()
        .unwrap_or_else(|| panic!("{up}"));
    assert!(
        stopped.contains("ServerToClient") && stopped.contains(reason),
        "{stopped}"
    );
    assert_eq!(up["ws_messages"], 3, "{up}");
    assert!(up.get("ws_extensions").is_none(), "{up}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_compressed_frame_without_the_extension_stops_capture_not_the_relay() {
    let bad = frame(0xC1, b"not really deflated");
    invalid_frame("127.0.0.90", "bad-rsv1", bad, "RSV1").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reserved_opcode_stops_capture_not_the_relay() {
    let bad = frame(0x83, b"reserved opcode");
    invalid_frame("127.0.0.91", "bad-opcode", bad, "reserved opcode").await;
}
