//! WebSocket capture end to end with real Python `websockets` peers (tests/it/ws/*.py): a TLS
//! origin with permessage-deflate, a client through the HTTP proxy (CONNECT) or SOCKS5 that
//! chats 20 similar JSON messages, pings and closes. The client and the server see exactly
//! what the other sent, and `list_activity` shows the 101 plus one decoded row per message,
//! with context takeover, with `*_no_context_takeover`, and without compression.

use greyproxy_testkit::mitm::{MitmEnv, mitm_of};
use greyproxy_testkit::wsprobe::{
    WsOrigin, WsRows, assert_messages, chat_messages, closed_connection, compressed, echo,
    run_client, send_and_recv, wire,
};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_greyproxyd");
const PATH: &str = "/v1/realtime";
const REASON: &str = "conversation over";
const CAP: usize = 2 * 1024 * 1024;

fn json_strings(v: &[String]) -> Vec<Value> {
    v.iter().map(|s| json!(s)).collect()
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Via {
    Http,
    Socks,
}

/// What the chat negotiates: `server.py --compression` and the client's `compression`.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Deflate {
    /// Both on with their defaults: context takeover both ways.
    Takeover,
    /// The server answers with `server_no_context_takeover; client_no_context_takeover`.
    ServerNoTakeover,
    /// The client asks for both `*_no_context_takeover`.
    ClientNoTakeover,
    /// The client offers no compression.
    ClientOffersNone,
}

struct Chat {
    rows: WsRows,
    client: Value,
    server: Value,
    url: String,
}

/// The whole conversation through `via`, with everything common to all variants asserted.
async fn chat(ip: &str, via: Via, deflate: Deflate) -> Chat {
    let mut env = MitmEnv::start(BIN, "", &[]).await;
    let server_comp = match deflate {
        Deflate::ServerNoTakeover => "no-context-takeover",
        _ => "default",
    };
    let client_comp = match deflate {
        Deflate::ClientNoTakeover => "client-no-context-takeover",
        Deflate::ClientOffersNone => "none",
        _ => "default",
    };
    let mut origin = WsOrigin::start(ip, Some(&env.ca), &["--compression", server_comp]).await;
    let url = origin.url("wss", PATH);
    let sent = chat_messages(20);
    let echoed: Vec<String> = sent.iter().map(|m| echo(m)).collect();
    let mut actions = send_and_recv(&sent);
    actions.push(json!({"ping": "still there?"}));
    actions.push(json!({"close": {"code": 1000, "reason": REASON}}));
    let (via_name, proxy) = match via {
        Via::Http => ("http", env.d.http.unwrap().to_string()),
        Via::Socks => ("socks", env.d.socks_proxy()),
    };
    let client = run_client(&json!({
        "url": url, "via": via_name, "proxy": proxy, "user": "codex",
        "cafile": env.daemon_ca_arg(), "compression": client_comp, "actions": actions,
    }))
    .await;

    // The peers saw exactly what the other sent.
    assert_eq!(client["received"], json!(echoed), "echoes on the client");
    assert_eq!(
        client["pongs"], 1,
        "the ping was answered through the relay"
    );
    assert_eq!(client["close_code"], 1000, "{client}");
    let server = origin.closed().await;
    assert_eq!(server["received"], json!(sent), "messages on the server");
    assert_eq!(server["path"], PATH);
    assert_eq!(server["close_code"], 1000, "{server}");
    assert_eq!(server["close_reason"], REASON, "{server}");
    assert_eq!(
        client["extensions"], server["extensions"],
        "the 101 reached the client as the server sent it"
    );

    // 20 WS_REQ + 20 WS_RESP rows, nothing for the ping, the pong or the close frames.
    let rows = closed_connection(&mut env.ws, ip, 40).await;
    assert_eq!(rows.dir("WS_REQ").len(), 20);
    assert_eq!(rows.dir("WS_RESP").len(), 20);
    assert_messages(
        &rows,
        &url,
        &json_strings(&sent),
        &json_strings(&echoed),
        CAP,
    );
    // Each message waits for the previous echo: the indexes follow the conversation.
    let order: Vec<&Value> = rows.messages.iter().map(|m| &m["method"]).collect();
    let want: Vec<Value> = (0..20)
        .flat_map(|_| [json!("WS_REQ"), json!("WS_RESP")])
        .collect();
    assert_eq!(
        order,
        want.iter().collect::<Vec<_>>(),
        "rows in conversation order"
    );

    let up = &rows.upgrade;
    let port = origin.addr.port();
    assert_eq!(up["method"], "GET");
    assert_eq!(up["status_code"], 101);
    assert_eq!(up["url"], format!("https://{ip}:{port}{PATH}"), "{up}");
    assert_eq!(up["destination_host"], ip);
    assert_eq!(up["destination_port"], port);
    assert_eq!(up["container_name"], "codex");
    assert_eq!(up["ws_messages"], 40, "{up}");
    assert_eq!(up["ws_close_code"], 1000, "{up}");
    assert_eq!(up["ws_close_reason"], REASON, "{up}");
    assert!(up.get("ws_capture_stopped").is_none(), "{up}");
    assert_eq!(up["ws_extensions"], server["extensions"], "{up}");
    assert_eq!(mitm_of(&mut env.ws, ip, port).await, "intercepted");
    // The messages of one WebSocket, as a dashboard lists them under its upgrade row.
    let mine = env
        .ws
        .query(json!({"command":"list_activity","upgrade_id":up["id"],"limit":1000}))
        .await;
    assert_eq!(mine["total"], 40, "{mine}");
    assert!(
        mine["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["upgrade_id"] == up["id"] && t["kind"] == "transaction"),
        "{mine}"
    );
    origin.stop().await;
    Chat {
        rows,
        client,
        server,
        url,
    }
}

/// With context takeover the second and later of similar messages are a fraction of the first
/// on the wire; the rows show it.
fn assert_context_takeover(c: &Chat) {
    for dir in ["WS_REQ", "WS_RESP"] {
        let rows = c.rows.dir(dir);
        let first = wire(rows[0]);
        for m in &rows[1..] {
            assert!(compressed(m), "{m}");
            let decoded = m["request_body_size"].as_u64().unwrap();
            assert!(
                wire(m) * 3 < decoded && wire(m) * 2 < first,
                "{dir}: a later similar message refers back into the previous ones \
                 (wire {} / decoded {decoded} / first message {first})",
                wire(m)
            );
        }
    }
}

/// Without context takeover each message is compressed on its own: none gains much from the
/// previous one.
fn assert_no_context_takeover(c: &Chat) {
    let ext = c.rows.upgrade["ws_extensions"].as_str().unwrap();
    assert!(ext.contains("server_no_context_takeover"), "{ext}");
    assert!(ext.contains("client_no_context_takeover"), "{ext}");
    for dir in ["WS_REQ", "WS_RESP"] {
        let rows = c.rows.dir(dir);
        let first = wire(rows[0]);
        for m in &rows {
            assert!(compressed(m), "{m}");
            assert!(
                wire(m) * 4 > first * 3,
                "{dir}: each message compressed alone ({} vs first {first})",
                wire(m)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn deflate_with_context_takeover_through_the_http_proxy() {
    let c = chat("127.0.0.80", Via::Http, Deflate::Takeover).await;
    let ext = c.rows.upgrade["ws_extensions"].as_str().unwrap();
    assert!(ext.starts_with("permessage-deflate"), "{ext}");
    assert!(!ext.contains("no_context_takeover"), "{ext}");
    assert_context_takeover(&c);
    assert!(c.url.starts_with("wss://127.0.0.80:"));
    assert_eq!(
        c.client["close_reason"], REASON,
        "the server echoed the close"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn deflate_with_context_takeover_through_socks5() {
    let c = chat("127.0.0.81", Via::Socks, Deflate::Takeover).await;
    assert!(
        c.rows.upgrade["ws_extensions"]
            .as_str()
            .unwrap()
            .contains("permessage-deflate")
    );
    assert_context_takeover(&c);
}

#[tokio::test(flavor = "multi_thread")]
async fn no_context_takeover_answered_by_the_server() {
    let c = chat("127.0.0.82", Via::Http, Deflate::ServerNoTakeover).await;
    assert_no_context_takeover(&c);
}

#[tokio::test(flavor = "multi_thread")]
async fn no_context_takeover_asked_by_the_client() {
    let c = chat("127.0.0.83", Via::Socks, Deflate::ClientNoTakeover).await;
    assert_no_context_takeover(&c);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_offering_no_compression_gets_uncompressed_rows() {
    let c = chat("127.0.0.84", Via::Http, Deflate::ClientOffersNone).await;
    assert!(c.server["extensions"].is_null(), "{}", c.server);
    assert!(
        c.rows.upgrade.get("ws_extensions").is_none(),
        "{}",
        c.rows.upgrade
    );
    for m in &c.rows.messages {
        assert!(!compressed(m), "{m}");
        assert_eq!(
            wire(m),
            m["request_body_size"].as_u64().unwrap(),
            "uncompressed: wire size = decoded size: {m}"
        );
    }
}
