//! Middleware failure handling across processes (cases H, J3 of docs/middleware.md#tests):
//! per-message timeouts and `on_disconnect`, a connection lost with a response in flight, requests
//! while the middleware is down, never-ready middlewares failing closed (or open), the reconnect
//! backoff and its reset, stdio children that ignore EOF (and their grandchildren) killed as a
//! process group, a child exiting after its hello, the default timeout.

use std::time::{Duration, Instant};

use greyproxy_testkit::fakemw::env::{
    alive, both, events, middlewares, settle, start, tx, wait_gone, wait_ready, wait_status,
};
use greyproxy_testkit::fakemw::{FakeMw, Frame, allow, case, hello};
use greyproxy_testkit::https_origin::Origin;
use greyproxy_testkit::{curl, within_sync};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_greyproxyd");

/// H1 (timeout → 403 / allow, 502 / passthrough), H4 (`"Allow"` is deny), H8 (default
/// timeout for unset, 0, negative), J3 (fallback deny recorded with 403, reason, no tags).
#[tokio::test(flavor = "multi_thread")]
async fn timeouts_fall_back_per_on_disconnect() {
    both(|t| async move {
        let hooks = &["http-request", "http-response"];
        let mk = |who: &'static str| {
            move |m: &Value| {
                let c = case(m);
                let kind = if m["type"] == "http-request" {
                    "req"
                } else {
                    "resp"
                };
                if c == format!("{who}-{kind}") {
                    vec![]
                } else {
                    vec![Frame::Json(allow(m))]
                }
            }
        };
        let open = FakeMw::new(t).await.serve(hello("open", hooks), mk("open"));
        let cased = FakeMw::new(t)
            .await
            .serve(hello("cased", hooks), mk("cased"));
        let closed = FakeMw::new(t)
            .await
            .serve(hello("closed", hooks), mk("closed"));
        let zero = FakeMw::new(t).await.serve_allow(hello("zero", &[]));
        let neg = FakeMw::new(t).await.serve_allow(hello("neg", &[]));
        let config = [
            open.mw.toml("timeout_ms = 150\non_disconnect = \"allow\""),
            cased.mw.toml("timeout_ms = 150\non_disconnect = \"Allow\""),
            closed.mw.toml("timeout_ms = 150"),
            zero.mw.toml("timeout_ms = 0"),
            neg.mw.toml("timeout_ms = -5"),
        ]
        .concat();
        let mut env = start(BIN, &config, &[]).await;
        let all = middlewares(&mut env.ws).await;
        let timeouts: Vec<&Value> = all.iter().map(|m| &m["timeout_ms"]).collect();
        assert_eq!(timeouts, [150, 150, 150, 10000, 10000], "{t}: H8");
        let policies: Vec<&Value> = all.iter().map(|m| &m["on_disconnect"]).collect();
        assert_eq!(
            policies,
            ["allow", "deny", "deny", "deny", "deny"],
            "{t}: H4"
        );

        let origin = Origin::plain("127.0.0.20").await;
        let tls = Origin::https("127.0.0.23", &env.ca).await;
        let (p, dca) = (env.proxy_as_codex(), env.daemon_ca_arg());
        for (o, c, want) in [
            (&origin, "open-req", 200),
            (&origin, "open-resp", 200),
            (&origin, "cased-req", 403),
            (&origin, "closed-req", 403),
            (&origin, "closed-resp", 502),
            (&tls, "open-req", 200),
            (&tls, "closed-req", 403),
            (&tls, "closed-resp", 502),
        ] {
            let t0 = Instant::now();
            let url = o.url(&format!("/json?case={c}&{}", o.scheme));
            let r = curl(&["-x", &p, "--cacert", &dca, &url]).await;
            assert_eq!(r.status, want, "{t} {url}: {r:?}");
            // The configured timeout, not the 10 s default; that the fallback comes exactly
            // after it is pinned under paused time in middleware::client's timing tests.
            let took = t0.elapsed();
            assert!(
                took < Duration::from_secs(5),
                "{t} {c}: fell back on the 150 ms timeout, took {took:?}"
            );
            if want == 200 {
                assert!(r.body.contains("chat.completion"), "{t} {c}: {r:?}");
            }
        }
        // The deny fallback stopped the exchange: no response message for that request.
        assert!(
            !closed
                .of_type("http-response")
                .iter()
                .any(|m| case(m) == "closed-req"),
            "{t}"
        );
        let tr = tx(&mut env.ws, "case=closed-req&http").await;
        let ev = events(&tr);
        let deny: Vec<&Value> = ev.iter().filter(|e| e["action"] == "deny").collect();
        assert_eq!(deny.len(), 1, "{t}: J3 {ev:?}");
        assert_eq!(deny[0]["status_code"], 403, "{t}: {ev:?}");
        assert_eq!(deny[0]["fallback"], "timeout", "{t}: {ev:?}");
        assert!(
            deny[0]
                .get("tags")
                .is_none_or(|g| g.as_object().unwrap().is_empty())
        );
        assert_eq!(deny[0]["middleware_name"], "closed", "{t}");
        let tr = tx(&mut env.ws, "case=closed-resp&http").await;
        let ev = events(&tr);
        assert!(
            ev.iter().any(|e| e["action"] == "block"
                && e["status_code"] == 502
                && e["fallback"] == "timeout"),
            "{t}: {ev:?}"
        );
    })
    .await;
}

/// H3 (while down: 403 at once, no timeout wait), J3 with reason `disconnected`, recovery,
/// then H2 (the connection drops with a response in flight → 502 at once).
#[tokio::test(flavor = "multi_thread")]
async fn dropped_and_down_middlewares_fail_at_once() {
    both(|t| async move {
        let fake =
            FakeMw::new(t)
                .await
                .serve(hello("flaky", &["http-request", "http-response"]), |m| {
                    if m["type"] == "http-response" && case(m) == "drop" {
                        vec![Frame::Close]
                    } else {
                        vec![Frame::Json(allow(m))]
                    }
                });
        let mut env = start(BIN, "", &fake.mw.cli_args()).await;
        let origin = Origin::plain("127.0.0.21").await;
        let p = env.proxy_as_codex();
        fake.set_down(true);
        wait_status(&mut env.ws, 0, Duration::from_secs(5), "down", |m| {
            m["ready"] == false
        })
        .await;
        for i in 0..3 {
            let r = curl(&["-x", &p, &origin.url(&format!("/json?case=down{i}"))]).await;
            assert_eq!(r.status, 403, "{t}: H3: {r:?}");
            assert!(r.elapsed < Duration::from_secs(2), "{t}: H3 no wait: {r:?}");
        }
        let tr = tx(&mut env.ws, "case=down0").await;
        let ev = events(&tr);
        assert!(
            ev.iter().any(|e| e["action"] == "deny"
                && e["status_code"] == 403
                && e["fallback"] == "disconnected"),
            "{t}: {ev:?}"
        );

        fake.set_down(false);
        wait_ready(&mut env.ws, 0).await;
        let r = curl(&["-x", &p, &origin.url("/json?case=back")]).await;
        assert_eq!(r.status, 200, "{t}: {r:?}");

        let r = curl(&["-x", &p, &origin.url("/json?case=drop")]).await;
        assert_eq!(r.status, 502, "{t}: H2 block, not deny: {r:?}");
        assert!(r.elapsed < Duration::from_secs(3), "{t}: H2 at once: {r:?}");
        let ev = events(&tx(&mut env.ws, "case=drop").await);
        assert!(
            ev.iter().any(|e| e["action"] == "block"
                && e["status_code"] == 502
                && e["fallback"] == "disconnected"),
            "{t}: {ev:?}"
        );
    })
    .await;
}

/// A middleware that never becomes ready fails closed (403) unless `on_disconnect = "allow"`.
#[tokio::test(flavor = "multi_thread")]
async fn never_ready_fails_closed_unless_allowed() {
    let origin = Origin::plain("127.0.0.22").await;
    let run = |policy: &'static str, want: u16| {
        let url = origin.url("/json");
        async move {
            let config = format!(
                "[[middleware]]\nurl = \"ws://127.0.0.1:9/nothing\"\non_disconnect = \"{policy}\"\n"
            );
            let env = start(BIN, &config, &[]).await;
            let r = curl(&["-x", &env.proxy_as_codex(), &url]).await;
            assert_eq!(r.status, want, "{policy}: {r:?}");
            assert!(
                r.elapsed < Duration::from_secs(2),
                "{policy}: at once: {r:?}"
            );
        }
    };
    settle(vec![run("deny", 403), run("allow", 200)]).await;
}

/// H5 end to end: a refused middleware is retried again and again, less and less often, and a
/// connection that lived ≥ 5 s starts the backoff over. The schedule itself (100 ms doubling to
/// 2 s, ±20 % jitter, the reset rule) is pinned to the millisecond under paused time in
/// middleware::client's timing tests; here only attempts are counted, with wide margins.
#[tokio::test(flavor = "multi_thread")]
async fn reconnect_backoff_doubles_to_two_seconds_and_resets() {
    both(|t| async move {
        let fake = FakeMw::new(t).await.serve_allow(hello("backoff", &[]));
        fake.set_down(true);
        let accepts = fake.mw.accepts.clone();
        let env = start(BIN, "", &fake.mw.cli_args()).await;
        // Seven attempts: six waits, nominally 100 ms … 2 s (5.1 s in all).
        let at = within_sync(Duration::from_secs(30), Duration::from_millis(50), || {
            let at = accepts.lock().unwrap().clone();
            if at.len() >= 7 { Ok(at) } else { Err(at) }
        })
        .await
        .unwrap_or_else(|at| at);
        assert!(at.len() >= 7, "{t}: retried only {} times", at.len());
        let gaps: Vec<Duration> = at.windows(2).map(|w| w[1] - w[0]).collect();
        // The sixth wait (2 s − 20 % at least) outlasts the first (100 ms + 20 % at most, plus
        // one failed attempt), however slow the machine.
        assert!(gaps[5] > gaps[0], "{t}: the waits grow: {gaps:?}");

        // Up longer than 5 s, then down: the waits start over at 100 ms, 200 ms. Without the
        // reset the first would be ≥ 1.6 s and the second ≥ 3.2 s after the drop.
        fake.set_down(false);
        let mut ws = env.ws;
        wait_status(&mut ws, 0, Duration::from_secs(5), "ready", |m| {
            m["ready"] == true
        })
        .await;
        tokio::time::sleep(Duration::from_millis(5300)).await;
        let before = accepts.lock().unwrap().len();
        let dropped = Instant::now();
        fake.set_down(true);
        tokio::time::sleep(Duration::from_secs(3)).await;
        let after: Vec<Duration> = accepts.lock().unwrap()[before..]
            .iter()
            .map(|a| a.saturating_duration_since(dropped))
            .take_while(|a| *a < Duration::from_secs(3))
            .collect();
        assert!(
            after.len() >= 2,
            "{t}: reconnects within 3 s of the drop: {after:?}"
        );
    })
    .await;
}

/// H6 (a child ignoring stdin EOF is killed ~2 s after close, with its grandchild; the port
/// the grandchild held is free), H7 (a child exiting after its hello is respawned), and the
/// same clean-up when the daemon stops.
#[tokio::test(flavor = "multi_thread")]
async fn stdio_children_are_killed_as_a_group() {
    let fake = FakeMw::stdio()
        .await
        .relay_args(&["--grandchild", "--ignore-eof"]);
    let args = fake.cli_args();
    let env = tokio::spawn(async move { start(BIN, "", &args).await });

    // First child: a bad hello → the daemon closes it; it ignores EOF.
    let mut c1 = fake.accept().await;
    let meta = c1.meta.clone().unwrap();
    let (pid, gpid) = (
        meta["pid"].as_u64().unwrap() as u32,
        meta["grandchild_pid"].as_u64().unwrap() as u32,
    );
    let port = meta["grandchild_port"].as_u64().unwrap() as u16;
    assert_eq!(meta["pgid"], meta["pid"], "own process group");
    c1.proxy_hello().await;
    c1.send_text("not a hello").await;
    assert!(c1.wait_closed(Duration::from_secs(5)).await, "stdin closed");
    let closed = Instant::now();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(alive(pid), "the child gets a grace period after EOF");
    let gone = wait_gone(pid, Duration::from_secs(4)).await;
    assert!(gone.is_some(), "child {pid} killed");
    assert!(
        wait_gone(gpid, Duration::from_secs(1)).await.is_some(),
        "grandchild killed"
    );
    let took = closed.elapsed();
    assert!(
        took < Duration::from_millis(3500),
        "killed {took:?} after EOF"
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the grandchild's port is released"
    );

    // Second child: hello, then it exits → respawned (H7).
    let mut c2 = fake.accept().await;
    c2.hello(&hello("quitter", &[])).await;
    let pid2 = c2.pid().unwrap();
    c2.close().await;
    assert!(wait_gone(pid2, Duration::from_secs(4)).await.is_some());
    let mut c3 = fake
        .accept_within(Duration::from_secs(5))
        .await
        .expect("H7 respawn");
    c3.hello(&hello("stayer", &[])).await;
    let meta3 = c3.meta.clone().unwrap();
    let (pid3, gpid3) = (
        meta3["pid"].as_u64().unwrap() as u32,
        meta3["grandchild_pid"].as_u64().unwrap() as u32,
    );
    let mut env = env.await.unwrap();
    let m = wait_ready(&mut env.ws, 0).await;
    assert_eq!(m["pid"], pid3);
    assert_eq!(m["name"], "stayer");
    assert!(m["connects"].as_u64().unwrap() >= 2, "{m}");

    // Daemon shutdown: the EOF-ignoring child and its grandchild are gone too.
    let _dir = env.d.stop().await;
    for p in [pid3, gpid3] {
        assert!(
            wait_gone(p, Duration::from_secs(3)).await.is_some(),
            "{p} left behind"
        );
    }
}
