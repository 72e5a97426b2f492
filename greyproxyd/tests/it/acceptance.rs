//! The acceptance scenario end to end: real daemon, real curl, real WebSocket client.

use std::time::Duration;

use greyproxy_testkit::control::{expect_close, open};
use greyproxy_testkit::origin::http_origin;
use greyproxy_testkit::{DaemonBuilder, curl};
use serde_json::json;

fn daemon() -> DaemonBuilder {
    DaemonBuilder::new(env!("CARGO_BIN_EXE_greyproxyd"))
}

#[tokio::test]
async fn held_request_allowed_over_ws_then_durable_across_restart() {
    let origin = http_origin("127.0.0.2").await;
    let d = daemon().start().await;
    let mut ws = d.client().await;
    assert_eq!(ws.greeting["protocol_version"], 1);

    let url = format!("http://{origin}/hello");
    let proxy = d.http_proxy();
    let held = tokio::spawn({
        let (p, u) = (proxy.clone(), url.clone());
        async move { curl(&["-x", &p, &u]).await }
    });
    let pending = ws.pending_for("127.0.0.2", origin.port()).await;
    assert_eq!(pending["waiting_count"], 1, "{pending}");
    assert_eq!(pending["container_name"], "unknown-127.0.0.1");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!held.is_finished(), "the request must wait for a decision");

    let r = ws
        .cmd(json!({"command":"allow","pending_id":pending["id"]}))
        .await;
    assert_eq!(r["type"], "command_success", "{r}");
    assert_eq!(r["command"], "allow");
    assert!(r["rule_id"].as_u64().is_some());
    let res = held.await.unwrap();
    assert_eq!(res.status, 200, "{res:?}");
    assert!(res.body.starts_with("hello from"), "{res:?}");

    // After a restart the rule is still there: no prompt.
    let d = d.restart().await;
    let res = curl(&["-x", &d.http_proxy(), &url]).await;
    assert_eq!(res.status, 200, "{res:?}\n{}", d.log());
    assert!(res.elapsed < Duration::from_secs(5));
}

#[tokio::test]
async fn socks5_hostname_held_then_allowed_with_identity_from_username() {
    let origin = http_origin("127.0.0.3").await;
    let d = daemon().start().await;
    let mut ws = d.client().await;
    let url = format!("http://{origin}/s");
    let socks = d.socks_proxy();
    let held = tokio::spawn({
        let u = url.clone();
        async move {
            curl(&[
                "--socks5-hostname",
                &socks,
                "--proxy-user",
                "opencode:proxy",
                &u,
            ])
            .await
        }
    });
    let pending = ws.pending_for("127.0.0.3", origin.port()).await;
    assert_eq!(pending["container_name"], "opencode");
    let r = ws
        .cmd(json!({"command":"allow","pending_id":pending["id"]}))
        .await;
    assert_eq!(r["type"], "command_success", "{r}");
    let res = held.await.unwrap();
    assert_eq!(res.status, 200, "{res:?}");
}

#[tokio::test]
async fn dismiss_ends_a_waiting_curl_with_403_within_a_second() {
    let origin = http_origin("127.0.0.4").await;
    let d = daemon().start().await;
    let mut ws = d.client().await;
    let url = format!("http://{origin}/");
    let proxy = d.http_proxy();
    let held = tokio::spawn(async move { curl(&["-x", &proxy, &url]).await });
    let pending = ws.pending_for("127.0.0.4", origin.port()).await;
    let t = std::time::Instant::now();
    let r = ws
        .cmd(json!({"command":"dismiss","pending_id":pending["id"]}))
        .await;
    assert_eq!(r["type"], "command_success", "{r}");
    let res = held.await.unwrap();
    assert_eq!(res.status, 403, "{res:?}");
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert!(res.body.contains("dismissed"), "{res:?}");
}

#[tokio::test]
async fn wrong_or_missing_token_is_closed_with_4001() {
    let d = daemon().start().await;
    for token in [Some("not-the-token"), None] {
        let mut ws = open(&d.ws_url(), token).await.unwrap();
        let frame = expect_close(&mut ws).await.expect("close frame");
        assert_eq!(u16::from(frame.code), 4001);
        assert_eq!(frame.reason.as_str(), "unauthorized");
    }
    // ?token= works as well as the header.
    let url = format!("{}?token={}", d.ws_url(), d.token);
    greyproxy_testkit::Control::connect(&url, None)
        .await
        .unwrap();
}
