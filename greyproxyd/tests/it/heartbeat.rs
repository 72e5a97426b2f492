//! Server heartbeat on the control WebSocket: a client that never answers pings is closed; one
//! that does stays connected. Intervals come from the config file's `[control]` table.

use std::time::Duration;

use greyproxy_testkit::DaemonBuilder;
use greyproxy_testkit::control::{expect_close, open};
use serde_json::json;

#[tokio::test]
async fn silent_client_is_closed_and_answering_client_stays() {
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = cfg_dir.path().join("greyproxy.toml");
    std::fs::write(&cfg, "[control]\nping_interval = 1\npong_timeout = 1\n").unwrap();
    let d = DaemonBuilder::new(env!("CARGO_BIN_EXE_greyproxyd"))
        .args(&["--config", cfg.to_str().unwrap()])
        .start()
        .await;

    // A live client: its library answers pings while it waits for replies.
    let mut live = d.client().await;
    // A silent one: upgraded, then never polled, so its pongs are never sent.
    let mut silent = open(&d.ws_url(), Some(&d.token)).await.unwrap();
    // Keep reading on the live client (that is when its library sends pongs).
    let until = std::time::Instant::now() + Duration::from_millis(3500);
    while std::time::Instant::now() < until {
        live.drain(Duration::from_millis(200)).await;
    }

    let frame = expect_close(&mut silent).await.expect("close frame");
    assert_eq!(u16::from(frame.code), 1001, "{frame:?}");
    assert_eq!(frame.reason.as_str(), "heartbeat timeout");

    // The live client keeps working across several ping rounds.
    for _ in 0..3 {
        let r = live.cmd(json!({"command":"ping"})).await;
        assert_eq!(r["type"], "pong");
        live.drain(Duration::from_millis(800)).await;
    }
    assert!(live.closed.is_none());
}
