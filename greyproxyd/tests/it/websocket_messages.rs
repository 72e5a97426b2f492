//! WebSocket messages that are not one small frame, end to end with real Python `websockets`
//! peers through the HTTP proxy (TLS intercepted, permessage-deflate with context takeover):
//! fragmented messages (text and binary, compressed), a 5 MiB message each way (delivered
//! intact, stored capped, the next message still decodes), a server that speaks right after
//! the 101, and an application close code.

use greyproxy_testkit::mitm::MitmEnv;
use greyproxy_testkit::wsprobe::{
    WsOrigin, assert_messages, chat_messages, closed_connection, compressed, echo, run_client, wire,
};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_greyproxyd");
const MIB: usize = 1024 * 1024;
const TAIL: &str = "end of the upload; the next message quotes these words ";

/// Runs `actions` through the HTTP proxy of `env` against `origin`; checks the client saw no
/// error and returns its report.
async fn client(env: &MitmEnv, url: &str, actions: Vec<Value>) -> Value {
    run_client(&json!({
        "url": url, "via": "http", "proxy": env.d.http.unwrap().to_string(), "user": "codex",
        "cafile": env.daemon_ca_arg(), "actions": actions,
    }))
    .await
}

/// `len` bytes of JSON text that deflate compresses only so much (pseudo-random words).
fn big_json(len: usize) -> String {
    let words = [
        "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
        "juliet", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo",
    ];
    let mut s = String::from("{\"blob\":\"");
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while s.len() < len - 2 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push_str(words[(x % words.len() as u64) as usize]);
        s.push_str(if x.is_multiple_of(7) { "\\n" } else { " " });
    }
    // The last bytes repeat TAIL, so that a message quoting it refers back into this one.
    s.truncate(len - 2 - 300);
    if s.ends_with('\\') {
        s.pop();
        s.push(' ');
    }
    s.push_str(&TAIL.repeat(300 / TAIL.len() + 1)[..300]);
    s.push_str("\"}");
    assert_eq!(s.len(), len);
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn fragmented_messages_are_one_row_each() {
    // A small cap, to see that it applies to WebSocket messages too.
    let env = MitmEnv::start(BIN, "[capture]\nmax_body_bytes = 1024\n", &[]).await;
    let mut env = env;
    let ip = "127.0.0.85";
    let mut origin = WsOrigin::start(ip, Some(&env.ca), &["--fragment-replies", "3"]).await;
    let url = origin.url("wss", "/frag");
    let parts = [
        vec!["{\"part\":1,", "\"text\":\"sent in ", "three fragments\"}"],
        vec![
            "{\"part\":2,",
            "\"text\":\"sent in ",
            "three fragments too\"}",
        ],
    ];
    let long: Vec<String> = (0..6).map(|i| format!("{i}:{}", "x".repeat(500))).collect();
    let binary = json!({"b64": "AAECA//+/WJpbmFyeYA=", "len": 14});
    let binary_echo = json!({"b64": "ZWNobzoAAQID//79YmluYXJ5gA==", "len": 19});
    let single = chat_messages(1).pop().unwrap();
    let actions = vec![
        json!({"send_fragments": parts[0]}),
        json!({"recv": 1}),
        json!({"send_fragments": parts[1]}),
        json!({"recv": 1}),
        json!({"send_fragments": long}),
        json!({"recv": 1}),
        json!({"send_binary": binary["b64"]}),
        json!({"recv": 1}),
        json!({"send": single}),
        json!({"recv": 1}),
        json!({"close": {"code": 1000, "reason": "fragments done"}}),
    ];
    let out = client(&env, &url, actions).await;
    let mut sent: Vec<Value> = parts.iter().map(|p| json!(p.concat())).collect();
    sent.push(json!(long.concat()));
    sent.push(binary.clone());
    sent.push(json!(single));
    let received: Vec<Value> = sent
        .iter()
        .map(|m| match m.as_str() {
            Some(t) => json!(echo(t)),
            None => binary_echo.clone(),
        })
        .collect();
    assert_eq!(
        out["received"],
        json!(received),
        "the client got every echo"
    );
    let server = origin.closed().await;
    let want_server: Vec<Value> = sent
        .iter()
        .map(|m| match m.as_str() {
            Some(t) if t.len() > 4096 => json!({"len": t.len()}),
            Some(t) => json!(t),
            None => json!({"b64": m["b64"]}),
        })
        .collect();
    assert_eq!(
        server["received"],
        json!(want_server),
        "the server got every message"
    );

    let rows = closed_connection(&mut env.ws, ip, 10).await;
    assert_messages(&rows, &url, &sent, &received, 1024);
    for m in &rows.messages {
        assert!(
            compressed(m),
            "every message, fragmented or not, is compressed: {m}"
        );
    }
    let long_row = rows.dir("WS_REQ")[2];
    assert_eq!(long_row["request_body_size"], 3012);
    assert_eq!(long_row["request_body_truncated"], true);
    assert_eq!(rows.upgrade["ws_messages"], 10);
    assert_eq!(rows.upgrade["ws_close_reason"], "fragments done");
    assert!(rows.upgrade.get("ws_capture_stopped").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_5_mib_message_is_relayed_whole_and_stored_capped() {
    let mut env = MitmEnv::start(BIN, "", &[]).await;
    let ip = "127.0.0.86";
    let mut origin = WsOrigin::start(ip, Some(&env.ca), &[]).await;
    let url = origin.url("wss", "/upload");
    let big = big_json(5 * MIB);
    let next = [
        chat_messages(1).pop().unwrap(),
        json!({"after": TAIL}).to_string(),
    ];
    let actions = vec![
        json!({"send": next[0]}),
        json!({"recv": 1}),
        json!({"send": big}),
        json!({"recv": 1}),
        json!({"send": next[1]}),
        json!({"recv": 1}),
        json!({"close": {"code": 1000, "reason": "uploaded"}}),
    ];
    let out = client(&env, &url, actions).await;
    let sent = [json!(next[0]), json!(big), json!(next[1])];
    let received: Vec<Value> = sent
        .iter()
        .map(|m| json!(echo(m.as_str().unwrap())))
        .collect();
    let got = out["received"].as_array().unwrap();
    assert_eq!(got.len(), 3);
    assert!(got[1] == received[1], "the 5 MiB echo arrived intact");
    assert_eq!(out["received"], json!(received));
    let server = origin.closed().await;
    assert_eq!(server["received"][1], json!({"len": 5 * MIB}), "{server}");

    let rows = closed_connection(&mut env.ws, ip, 6).await;
    assert_messages(&rows, &url, &sent, &received, 2 * MIB);
    for dir in ["WS_REQ", "WS_RESP"] {
        let m = rows.dir(dir)[1];
        assert!(m["request_body_size"].as_u64().unwrap() >= 5 * MIB as u64);
        assert_eq!(m["request_body_truncated"], true, "{dir}");
        assert!(compressed(m), "{dir}");
        assert!(
            wire(m) < m["request_body_size"].as_u64().unwrap(),
            "{dir}: wire size is the compressed size"
        );
    }
    // The message after the big one refers back into its end (context takeover) and still
    // decodes: the inflater followed the whole 5 MiB although only 2 MiB were kept.
    for dir in ["WS_REQ", "WS_RESP"] {
        let after = rows.dir(dir)[2];
        assert!(
            wire(after) * 3 < after["request_body_size"].as_u64().unwrap(),
            "{dir}: {after}"
        );
    }
    assert_eq!(rows.upgrade["ws_close_reason"], "uploaded");
    assert!(rows.upgrade.get("ws_capture_stopped").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_the_server_sends_right_after_the_101_is_message_0() {
    let mut env = MitmEnv::start(BIN, "", &[]).await;
    let ip = "127.0.0.87";
    let mut origin = WsOrigin::start(ip, Some(&env.ca), &["--mode", "hello"]).await;
    let url = origin.url("wss", "/events");
    let hello = r#"{"hello":"from the server","before":"the client says anything"}"#;
    let m = chat_messages(1).pop().unwrap();
    let actions = vec![
        json!({"recv": 1}),
        json!({"sleep": 0.2}),
        json!({"send": m}),
        json!({"recv": 1}),
        json!({"ping": "anyone?"}),
        json!({"close": {"code": 4001, "reason": "custom close"}}),
    ];
    let out = client(&env, &url, actions).await;
    assert_eq!(out["received"], json!([hello, echo(&m)]));
    assert_eq!(out["pongs"], 1);
    let server = origin.closed().await;
    assert_eq!(server["received"], json!([m]));
    assert_eq!(server["close_code"], 4001);

    let rows = closed_connection(&mut env.ws, ip, 3).await;
    assert_messages(
        &rows,
        &url,
        &[json!(m)],
        &[json!(hello), json!(echo(&m))],
        2 * MIB,
    );
    let methods: Vec<&Value> = rows.messages.iter().map(|m| &m["method"]).collect();
    assert_eq!(
        methods,
        [&json!("WS_RESP"), &json!("WS_REQ"), &json!("WS_RESP")]
    );
    let up = &rows.upgrade;
    assert_eq!(
        up["ws_messages"], 3,
        "pings and pongs are not messages: {up}"
    );
    assert_eq!(up["ws_close_code"], 4001, "{up}");
    assert_eq!(up["ws_close_reason"], "custom close", "{up}");
}
