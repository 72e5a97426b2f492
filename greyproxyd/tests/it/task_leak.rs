//! Nothing a connection starts outlives it: after a burst of mixed traffic — plain HTTP through
//! the proxy, intercepted HTTPS on HTTP/1.1 and HTTP/2 over the HTTP proxy and SOCKS5, raw
//! `CONNECT` tunnels, a held request whose client hangs up, and a client that sends half a
//! request head and vanishes — the daemon's runtime tasks (`status.alive_tasks`) and its open
//! file descriptors return to what they were before. The soak benchmark checks the same over
//! 30 minutes; this is the CI-sized version.

use std::time::Duration;

use greyproxy_testkit::fetch::fetch;
use greyproxy_testkit::https_origin::Origin;
use greyproxy_testkit::mitm::MitmEnv;
use greyproxy_testkit::origin::{echo_origin, http_origin};
use greyproxy_testkit::raw::{echo_roundtrip, http_connect, http_connect_send};
use greyproxy_testkit::{Control, within};
use serde_json::json;
use tokio::io::AsyncWriteExt;

const BIN: &str = env!("CARGO_BIN_EXE_greyproxyd");

async fn alive_tasks(ws: &mut Control) -> u64 {
    let st = ws.query(json!({"command": "status"})).await;
    st["alive_tasks"].as_u64().expect("status.alive_tasks")
}

fn open_fds(env: &MitmEnv) -> usize {
    let info = std::fs::read_to_string(env.d.state_dir().join("daemon.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&info).unwrap();
    let pid = v["pid"].as_u64().unwrap();
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Waits up to 10 s for the daemon to settle back to `tasks` tasks and `fds` descriptors;
/// returns what it last saw.
async fn settle(env: &mut MitmEnv, tasks: u64, fds: usize) -> (u64, usize) {
    within(
        Duration::from_secs(10),
        Duration::from_millis(100),
        async || {
            let now = (alive_tasks(&mut env.ws).await, open_fds(env));
            if now.0 <= tasks && now.1 <= fds {
                Ok(now)
            } else {
                Err(now)
            }
        },
    )
    .await
    .unwrap_or_else(|now| now)
}

#[tokio::test]
async fn tasks_and_descriptors_return_to_baseline_after_mixed_traffic() {
    let mut env = MitmEnv::start(BIN, "", &[]).await;
    let origin = Origin::https("127.0.0.61", &env.ca).await;
    let plain = http_origin("127.0.0.62").await;
    let echo = echo_origin("127.0.0.63").await;
    // Let start-up work (first flushes, the CA) finish before taking the baseline.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (base_tasks, base_fds) = (alive_tasks(&mut env.ws).await, open_fds(&env));
    assert!(base_tasks > 0, "status reports the runtime's tasks");

    let proxy = env.proxy_as_codex();
    let socks = env.d.socks_proxy();
    let dca = env.daemon_ca_arg();
    let url = origin.url("/json");
    for _ in 0..3 {
        for args in [
            vec!["-x", &proxy, "--cacert", &dca, "--http1.1"],
            vec!["-x", &proxy, "--cacert", &dca, "--http2"],
            vec!["--socks5-hostname", &socks, "--cacert", &dca, "--http2"],
        ] {
            let r = fetch(&args, &[&url, &url]).await;
            assert_eq!(r.exit, 0, "{r:?}");
        }
        let r = fetch(&["-x", &proxy], &[&format!("http://{plain}/x")]).await;
        assert_eq!(r.status(), 200, "{r:?}");
        let http = env.d.http.unwrap();
        let (mut t, reply) = http_connect(http, &echo.to_string(), Some("codex")).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        echo_roundtrip(&mut t, b"ping through a raw tunnel").await;
        drop(t);
    }
    // A request held for a decision (no rule covers the name), then abandoned by its client.
    let held = http_connect_send(env.d.http.unwrap(), "held.invalid:443", Some("codex")).await;
    env.ws.pending_for("held.invalid", 443).await;
    assert!(
        alive_tasks(&mut env.ws).await > base_tasks,
        "the hold is a live task"
    );
    drop(held);
    // Half a request head, then gone.
    let mut half = tokio::net::TcpStream::connect(env.d.http.unwrap())
        .await
        .unwrap();
    half.write_all(b"GET http://127.0.0.62/ HTTP/1.1\r\nHost: 127.0")
        .await
        .unwrap();
    drop(half);

    let (tasks, fds) = settle(&mut env, base_tasks, base_fds).await;
    assert!(
        tasks <= base_tasks,
        "runtime tasks back to baseline: {base_tasks} before, {tasks} after\n{}",
        env.d.log()
    );
    assert!(
        fds <= base_fds,
        "descriptors back to baseline: {base_fds} before, {fds} after"
    );
}
