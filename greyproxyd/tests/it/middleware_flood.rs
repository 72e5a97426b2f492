//! A middleware that floods its connection with non-decisions (a fault the daemon must survive):
//! tens of thousands of junk frames around every real decision. Requests still get their decisions
//! at once, the connection stays up, the control socket stays responsive, and the daemon's log does
//! not flood with it (the first few are warnings, the rest counted).

use std::time::{Duration, Instant};

use greyproxy_testkit::curl;
use greyproxy_testkit::fakemw::env::{both, middlewares, start};
use greyproxy_testkit::fakemw::{FakeMw, Frame, Transport, b64, decision_with, hello};
use greyproxy_testkit::https_origin::Origin;
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_greyproxyd");

/// Junk frames sent before each decision.
fn junk(t: Transport, n: usize) -> Vec<Frame> {
    match t {
        // One write of many lines: the daemon reads them as separate frames.
        Transport::Stdio => vec![Frame::Raw("not a decision {\n".repeat(n).into_bytes())],
        Transport::Ws => (0..n).map(|i| Frame::Text(format!("junk {i}"))).collect(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flooding_middleware_neither_stalls_traffic_nor_floods_the_log() {
    both(|t| async move {
        let per_request = match t {
            Transport::Stdio => 20_000,
            Transport::Ws => 2_000,
        };
        let fake = FakeMw::new(t)
            .await
            .serve(hello("flood", &["http-request"]), move |m| {
                let mut frames = junk(t, per_request);
                frames.push(Frame::Json(decision_with(
                    m,
                    "deny",
                    json!({"status_code": 451, "body": b64("flooded")}),
                )));
                frames
            });
        let mut env = start(BIN, "", &fake.mw.cli_args()).await;
        let origin = Origin::plain("127.0.0.5").await;
        let p = env.proxy_as_codex();
        for i in 0..5 {
            let r = curl(&["-x", &p, &origin.url(&format!("/json?i={i}"))]).await;
            assert_eq!((r.status, r.body.as_str()), (451, "flooded"), "{t}: {r:?}");
            assert!(r.elapsed < Duration::from_secs(5), "{t}: no timeout: {r:?}");
            // The control socket answers while the middleware floods.
            let started = Instant::now();
            let s = env.ws.query(json!({"command": "status"})).await;
            assert_eq!(s["service"], "greyproxy", "{t}: {s}");
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{t}: status was slow"
            );
        }
        let m = middlewares(&mut env.ws).await;
        assert_eq!(m[0]["connects"], 1, "{t}: the connection stayed up: {m:?}");
        assert_eq!(fake.conns().len(), 1, "{t}");
        let log = env.d.log();
        // The test kit runs the daemon at debug level: count the warnings only.
        let warned = log
            .lines()
            .filter(|l| l.contains(" WARN ") && l.contains("malformed frame"))
            .count();
        assert!(
            (5..=20).contains(&warned),
            "{t}: {warned} malformed-frame warnings for {} junk frames",
            5 * per_request
        );
        assert!(
            log.contains("further malformed frames are logged at debug"),
            "{t}: the rate limit is announced"
        );
    })
    .await;
}
