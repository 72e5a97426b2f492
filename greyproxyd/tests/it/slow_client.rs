//! A control client that stops reading must slow nobody down: while its socket is full the
//! proxy and the other clients carry on, and when it reads again it is told how many events it
//! missed (`lagged`) and the stream continues after the gap.

use std::time::{Duration, Instant};

use futures_util::SinkExt;
use greyproxy_testkit::badio::{WsRead, ws_read, ws_small_rcvbuf};
use greyproxy_testkit::origin::http_origin;
use greyproxy_testkit::{Control, DaemonBuilder, curl};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

/// Size of each large event that fills the stalled client's socket buffers.
const BIG_NOTES: usize = 768 * 1024;
/// Small events afterwards, well over the bus ring of 4096.
const CLAIM_PAIRS: usize = 4000;

/// How many large events surely overflow the socket buffers: the client's receive buffer is
/// pinned small, the server's send buffer autotunes up to `tcp_wmem`'s maximum (4 MiB by
/// default); take that plus 2 MiB. (Measured here: about 2.5 MiB is absorbed.)
fn big_events() -> usize {
    let wmem_max = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|t| t.split_whitespace().nth(2)?.parse::<usize>().ok())
        .unwrap_or(4 << 20);
    (wmem_max + (2 << 20)).div_ceil(BIG_NOTES)
}

/// Sends `pairs` claim/release pairs pipelined in batches; each pair publishes two events.
async fn claim_release_burst(w: &mut Control, pairs: usize) {
    let mut sent = 0;
    while sent < pairs {
        let batch = (pairs - sent).min(250);
        for i in 0..batch {
            let n = sent + i;
            w.send_text(
                &json!({"command":"claim_notifications","request_id":format!("c{n}")}).to_string(),
            )
            .await;
            w.send_text(
                &json!({"command":"release_notifications","request_id":format!("r{n}")})
                    .to_string(),
            )
            .await;
        }
        sent += batch;
        let r = w.reply_for(&format!("r{}", sent - 1)).await;
        assert_eq!(r["type"], "command_success", "{r}");
        w.drain(Duration::ZERO).await; // drop the earlier replies
    }
}

#[tokio::test]
async fn a_client_that_never_reads_slows_nobody_and_later_learns_how_much_it_missed() {
    let origin = http_origin("127.0.0.1").await;
    let d = DaemonBuilder::new(env!("CARGO_BIN_EXE_greyproxyd"))
        .start()
        .await;
    // Connected, greeting unread, and then not read at all for a while.
    let mut slow = ws_small_rcvbuf(&d.ws_url(), &d.token, d.control, 4096).await;
    let mut w = d.client().await;
    let r = w
        .cmd(json!({"command":"subscribe","event_type":"maintenance.progress"}))
        .await;
    assert_eq!(r["type"], "subscribed", "{r}");
    let started = Instant::now();

    let notes = "n".repeat(BIG_NOTES);
    let big = big_events();
    for i in 0..big {
        let r = w
            .cmd(json!({"command":"create_rule","container_pattern":"*","destination_pattern":format!("big-{i}.example"),"notes":notes}))
            .await;
        assert_eq!(r["type"], "command_success", "{r}");
    }
    claim_release_burst(&mut w, CLAIM_PAIRS).await;

    // The proxy and other clients are not held up by the stalled one.
    let t = Instant::now();
    let r = curl(&["-x", &d.http_proxy(), &format!("http://{origin}/")]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let mut other = d.client().await;
    assert_eq!(other.cmd(json!({"command":"ping"})).await["type"], "pong");
    let st = other.query(json!({"command":"status"})).await;
    let last_seq = st["last_seq"].as_u64().unwrap();
    assert!(last_seq >= (big + 2 * CLAIM_PAIRS) as u64, "{st}");
    // The daemon drops a client whose writes stall for 10 s; read well before that.
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "producing took {:?}; too slow for this test to be meaningful",
        started.elapsed()
    );

    // Now read: greeting, the events that fitted in the buffers, one `lagged`, then the
    // stream resumes right after the gap.
    let mut prev_seq = None;
    let mut lagged = None;
    loop {
        let m = match ws_read(&mut slow, Duration::from_secs(10)).await {
            WsRead::Json(m) => m,
            other => panic!("stream ended before `lagged` (last seq {prev_seq:?}): {other:?}"),
        };
        if m["type"] == "lagged" {
            let missed = m["data"]["missed"].as_u64().expect("missed count");
            assert!(missed > 0, "{m}");
            lagged = Some(missed);
            continue;
        }
        let Some(seq) = m.get("seq").and_then(|s| s.as_u64()) else {
            assert_eq!(m["type"], "connected", "{m}");
            continue;
        };
        if let Some(missed) = lagged {
            let before = prev_seq.expect("events before the gap");
            assert_eq!(
                seq,
                before + missed + 1,
                "the gap is exactly `missed` events"
            );
            break;
        }
        if let Some(p) = prev_seq {
            assert_eq!(seq, p + 1, "no gap without a `lagged` message");
        }
        prev_seq = Some(seq);
    }
    // The lagged client is still connected and served.
    let ping = json!({"command":"ping","request_id":"after-lag"}).to_string();
    slow.send(Message::text(ping)).await.unwrap();
    loop {
        match ws_read(&mut slow, Duration::from_secs(10)).await {
            WsRead::Json(m) if m["type"] == "pong" => {
                assert_eq!(m["request_id"], "after-lag", "{m}");
                break;
            }
            WsRead::Json(_) => continue,
            other => panic!("no pong after the lag: {other:?}"),
        }
    }
}
