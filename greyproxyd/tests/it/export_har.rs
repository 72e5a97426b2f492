//! The control `export` command's HAR entries for a WebSocket: the upgrade (101) entry carries
//! every message of the connection in `_webSocketMessages`, in order, as Chrome writes them,
//! and the message rows are not entries of their own.

use greyproxy_testkit::mitm::MitmEnv;
use greyproxy_testkit::wsprobe::{
    WsOrigin, chat_messages, closed_connection, echo, run_client, send_and_recv,
};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_greyproxyd");

#[tokio::test(flavor = "multi_thread")]
async fn a_websocket_upgrade_entry_carries_its_messages() {
    let mut env = MitmEnv::start(BIN, "", &[]).await;
    let ip = "127.0.0.190";
    let mut origin = WsOrigin::start(ip, Some(&env.ca), &[]).await;
    let url = origin.url("wss", "/har");
    let sent = chat_messages(3);
    let mut actions = send_and_recv(&sent);
    actions.push(json!({"close": {"code": 1000, "reason": "done"}}));
    let client = run_client(&json!({
        "url": url, "via": "http", "proxy": env.d.http.unwrap().to_string(), "user": "codex",
        "cafile": env.daemon_ca_arg(), "actions": actions,
    }))
    .await;
    assert_eq!(client["close_code"], 1000, "{client}");
    origin.closed().await;
    closed_connection(&mut env.ws, ip, 6).await;

    let page = env
        .ws
        .query(json!({"command":"export","destination":ip}))
        .await;
    let entries = page["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "only the upgrade is an entry: {page}");
    let e = &entries[0];
    assert_eq!(e["response"]["status"], 101);
    assert_eq!(e["request"]["method"], "GET");
    let msgs = e["_webSocketMessages"].as_array().unwrap();
    let got: Vec<(String, String)> = msgs
        .iter()
        .map(|m| {
            assert_eq!(m["opcode"], 1, "{m}");
            assert!(m["time"].as_f64().is_some_and(|t| t > 1.0e9), "{m}");
            (
                m["type"].as_str().unwrap().to_owned(),
                m["data"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = sent
        .iter()
        .flat_map(|m| {
            [
                ("send".to_owned(), m.clone()),
                ("receive".to_owned(), echo(m)),
            ]
        })
        .collect();
    let data = |v: &[(String, String)]| -> Vec<(String, Value)> {
        v.iter()
            .map(|(t, d)| (t.clone(), serde_json::from_str(d).unwrap_or(json!(d))))
            .collect()
    };
    assert_eq!(data(&got), data(&want));
    assert!(page.get("next_before_id").is_none(), "{page}");
}
