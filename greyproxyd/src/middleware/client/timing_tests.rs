//! The connection loop's timing under paused tokio time, against an in-process transport
//! (an injected [`Dial`] handing each link's other end to the test) and fixed jitter bits: the
//! reconnect schedule and its reset, the hello timeout, the startup wait and the per-message
//! timeout with its `on_disconnect` fallbacks, all to the millisecond.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use greyproxy_protocol::middleware::ProxyHello;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::super::link::{IN_QUEUE, Inbound, Link, OUT_QUEUE};
use super::super::{MiddlewareEntry, STARTUP_WAIT, build_configs};
use super::{
    BACKOFF_MIN, Client, ClientConfig, DEFAULT_TIMEOUT_MS, Dial, HEALTHY, HELLO_TIMEOUT, Outcome,
    Rand,
};

/// The middleware's end of an in-process link.
struct Peer {
    /// What the client sent (the proxy hello first).
    rx: mpsc::Receiver<String>,
    /// Frames to the client; dropping it ends the transport.
    tx: mpsc::Sender<Inbound>,
    /// When the client closed the link.
    closed: oneshot::Receiver<Instant>,
}

impl Peer {
    /// Reads the proxy hello and answers with a hello declaring a request hook.
    async fn hello(&mut self) {
        let h = self.rx.recv().await.unwrap();
        assert!(h.contains("\"hello\""), "{h}");
        let hello = br#"{"type":"hello","name":"fake","hooks":[{"type":"http-request"}]}"#;
        self.tx.send(Ok(hello.to_vec())).await.unwrap();
    }

    /// Answers the next message with a decision for its id.
    async fn decide(&mut self, action: &str) {
        let m: serde_json::Value = serde_json::from_str(&self.rx.recv().await.unwrap()).unwrap();
        let d = serde_json::json!({"type": "decision", "id": m["id"], "action": action});
        self.tx.send(Ok(d.to_string().into_bytes())).await.unwrap();
    }
}

fn fake_link() -> (Link, Peer) {
    let (out_tx, out_rx) = mpsc::channel(OUT_QUEUE);
    let (in_tx, in_rx) = mpsc::channel(IN_QUEUE);
    let close = CancellationToken::new();
    let (closed_tx, closed_rx) = oneshot::channel();
    let c = close.clone();
    let reaper = tokio::spawn(async move {
        c.cancelled().await;
        let _ = closed_tx.send(Instant::now());
    });
    let link = Link::new(out_tx, in_rx, None, close, reaper);
    let peer = Peer {
        rx: out_rx,
        tx: in_tx,
        closed: closed_rx,
    };
    (link, peer)
}

/// A client whose dials are in-process: dial `n` (from 0) is refused when `refuse(n)`,
/// otherwise its peer is handed to the test. Every dial's instant is recorded.
struct Fake {
    client: Arc<Client>,
    dials: Arc<Mutex<Vec<Instant>>>,
    peers: mpsc::UnboundedReceiver<Peer>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Fake {
    fn start(
        config: ClientConfig,
        refuse: impl Fn(usize) -> bool + Send + Sync + 'static,
        rand: Rand,
    ) -> Fake {
        let dials: Arc<Mutex<Vec<Instant>>> = Arc::default();
        let (peer_tx, peers) = mpsc::unbounded_channel();
        let d = dials.clone();
        let dial: Dial = Arc::new(move || {
            let n = {
                let mut d = d.lock().unwrap();
                d.push(Instant::now());
                d.len() - 1
            };
            let out = if refuse(n) {
                Err("refused".to_string())
            } else {
                let (link, peer) = fake_link();
                let _ = peer_tx.send(peer);
                Ok(link)
            };
            Box::pin(std::future::ready(out))
        });
        let client = Client::with_transport(config, dial, rand);
        let stop = CancellationToken::new();
        let task = tokio::spawn(client.clone().run(stop.clone()));
        Fake {
            client,
            dials,
            peers,
            stop,
            task,
        }
    }

    fn dials(&self) -> Vec<Instant> {
        self.dials.lock().unwrap().clone()
    }

    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap();
    }
}

fn config(timeout_ms: i64, on_disconnect: &str) -> ClientConfig {
    let entry = MiddlewareEntry {
        url: Some("ws://fake".into()),
        timeout_ms: Some(timeout_ms),
        on_disconnect: Some(on_disconnect.into()),
        ..Default::default()
    };
    build_configs(&[], &[], &[entry]).unwrap().remove(0)
}

/// Whether `c` is ready without any time passing (once the client task has run).
async fn ready_now(c: &Client) -> bool {
    let t0 = Instant::now();
    c.wait_ready(HELLO_TIMEOUT).await && t0.elapsed().is_zero()
}

fn no_jitter() -> u64 {
    0
}

fn gaps(at: &[Instant]) -> Vec<u128> {
    at.windows(2).map(|w| (w[1] - w[0]).as_millis()).collect()
}

#[tokio::test(start_paused = true)]
async fn refused_dials_are_retried_after_100_ms_doubling_to_2_s() {
    let fake = Fake::start(config(1000, "deny"), |_| true, no_jitter);
    tokio::time::sleep(Duration::from_millis(9500)).await;
    let at = fake.dials();
    assert_eq!(gaps(&at), [100, 200, 400, 800, 1600, 2000, 2000, 2000]);
    let st = fake.client.status();
    assert_eq!(st.last_error.as_deref(), Some("refused"));
    assert!(!st.connected && !st.ready);
    fake.stop().await;
}

#[tokio::test(start_paused = true)]
async fn the_injected_random_bits_set_the_jitter() {
    // Lowest bit clear: minus; 19 ms off every wait (a fifth of the shortest is 20 ms).
    let fake = Fake::start(config(1000, "deny"), |_| true, || 19 << 1);
    tokio::time::sleep(Duration::from_millis(5500)).await;
    let at = fake.dials();
    assert_eq!(gaps(&at), [81, 181, 381, 781, 1581, 1981]);
    fake.stop().await;
}

/// Dials 0-2 are refused (waits 100, 200, 400 ms), dial 3 connects and says hello, stays up
/// `up`, then drops; dial 4 is refused. Returns the wait between the drop and dial 4.
async fn wait_after_a_connection_up_for(up: Duration) -> Duration {
    let mut fake = Fake::start(config(1000, "deny"), |n| n != 3, no_jitter);
    let mut peer = fake.peers.recv().await.unwrap();
    peer.hello().await;
    assert!(ready_now(&fake.client).await);
    let connected = fake.dials()[3];
    tokio::time::sleep_until(connected + up).await;
    drop(peer);
    let dropped = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let at = fake.dials();
    assert_eq!(gaps(&at[..4]), [100, 200, 400]);
    let st = fake.client.status();
    assert_eq!(st.connects, 1);
    assert!(!st.ready);
    fake.stop().await;
    at[4] - dropped
}

#[tokio::test(start_paused = true)]
async fn a_connection_up_5_s_resets_the_backoff() {
    let wait = wait_after_a_connection_up_for(HEALTHY).await;
    assert_eq!(wait, BACKOFF_MIN);
}

#[tokio::test(start_paused = true)]
async fn a_connection_up_less_than_5_s_does_not_reset_the_backoff() {
    let wait = wait_after_a_connection_up_for(HEALTHY - Duration::from_millis(1)).await;
    assert_eq!(wait, Duration::from_millis(800));
}

#[tokio::test(start_paused = true)]
async fn no_hello_closes_the_link_after_exactly_5_s_and_reconnects() {
    let mut fake = Fake::start(config(1000, "deny"), |_| false, no_jitter);
    let mut silent = fake.peers.recv().await.unwrap();
    let hello = silent.rx.recv().await.unwrap();
    assert_eq!(
        hello,
        serde_json::to_string(&ProxyHello::default()).unwrap()
    );
    let t0 = fake.dials()[0];
    let closed = (&mut silent.closed).await.unwrap();
    assert_eq!(closed - t0, HELLO_TIMEOUT);
    let st = fake.client.status();
    assert_eq!(st.last_error.as_deref(), Some("no hello within 5 s"));
    assert!(!st.ready && st.connects == 0);
    // The next attempt answers one millisecond before the limit: accepted.
    let mut late = fake.peers.recv().await.unwrap();
    assert_eq!(fake.dials()[1] - closed, BACKOFF_MIN);
    tokio::time::sleep(HELLO_TIMEOUT - Duration::from_millis(1)).await;
    late.hello().await;
    assert!(ready_now(&fake.client).await);
    assert_eq!(fake.client.status().connects, 1);
    fake.stop().await;
}

#[tokio::test(start_paused = true)]
async fn startup_waits_exactly_5_s_for_a_hello_that_never_comes() {
    let mut fake = Fake::start(config(1000, "deny"), |_| false, no_jitter);
    let t0 = Instant::now();
    let _silent = fake.peers.recv().await.unwrap();
    assert!(!fake.client.wait_ready(STARTUP_WAIT).await);
    assert_eq!(t0.elapsed(), STARTUP_WAIT);
    fake.stop().await;
}

#[tokio::test(start_paused = true)]
async fn startup_goes_on_as_soon_as_the_hello_arrives() {
    let mut fake = Fake::start(config(1000, "deny"), |_| false, no_jitter);
    let t0 = Instant::now();
    let mut peer = fake.peers.recv().await.unwrap();
    let answer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        peer.hello().await;
        peer
    });
    assert!(fake.client.wait_ready(STARTUP_WAIT).await);
    assert_eq!(t0.elapsed(), Duration::from_millis(1200));
    let _peer = answer.await.unwrap();
    fake.stop().await;
}

/// Sends one request (or response) message and reports the outcome and how long it took.
async fn timed_send(c: &Client, response: bool) -> (Outcome, Duration) {
    let t0 = Instant::now();
    let o = c.send("m1", r#"{"id":"m1"}"#.into(), response).await;
    (o, t0.elapsed())
}

#[tokio::test(start_paused = true)]
async fn an_unanswered_message_falls_back_after_exactly_its_timeout() {
    for (policy, response, status) in [
        ("deny", false, 403),
        ("deny", true, 502),
        ("Allow", false, 403),
        ("allow", false, 0),
        ("allow", true, 0),
    ] {
        let mut fake = Fake::start(config(150, policy), |_| false, no_jitter);
        let mut peer = fake.peers.recv().await.unwrap();
        peer.hello().await;
        assert!(ready_now(&fake.client).await);
        let (o, took) = timed_send(&fake.client, response).await;
        let case = format!("{policy} response={response}");
        assert_eq!(took, Duration::from_millis(150), "{case}");
        assert_eq!(o.fallback, Some("timeout"), "{case}");
        assert_eq!(o.decision.status_code, status, "{case}");
        assert_eq!(o.decision.id, "m1", "{case}");
        // The message did go out; the connection stays up.
        assert!(peer.rx.recv().await.unwrap().contains("m1"), "{case}");
        assert!(fake.client.status().ready, "{case}");
        fake.stop().await;
    }
}

#[tokio::test(start_paused = true)]
async fn the_default_timeout_is_10_s() {
    let mut fake = Fake::start(config(0, "deny"), |_| false, no_jitter);
    let mut peer = fake.peers.recv().await.unwrap();
    peer.hello().await;
    assert!(ready_now(&fake.client).await);
    let (o, took) = timed_send(&fake.client, false).await;
    assert_eq!(took, Duration::from_millis(DEFAULT_TIMEOUT_MS));
    assert_eq!(o.fallback, Some("timeout"));
    fake.stop().await;
}

#[tokio::test(start_paused = true)]
async fn answers_lost_connections_and_down_middlewares_take_no_time() {
    let mut fake = Fake::start(config(150, "deny"), |n| n == 1, no_jitter);
    let mut peer = fake.peers.recv().await.unwrap();
    peer.hello().await;
    assert!(ready_now(&fake.client).await);
    // Answered: the middleware's own decision, at once.
    let ((o, took), ()) = tokio::join!(timed_send(&fake.client, false), peer.decide("allow"));
    assert_eq!((o.fallback, took), (None, Duration::ZERO));
    assert_eq!(o.decision.id, "m1");
    // The connection drops with the message in flight: `disconnected` at once.
    let drop_it = async {
        peer.rx.recv().await.unwrap();
        drop(peer);
    };
    let ((o, took), ()) = tokio::join!(timed_send(&fake.client, true), drop_it);
    assert_eq!((o.fallback, took), (Some("disconnected"), Duration::ZERO));
    assert_eq!(o.decision.status_code, 502);
    // While it is down (its next dial is refused): `disconnected` at once too.
    let (o, took) = timed_send(&fake.client, false).await;
    assert_eq!((o.fallback, took), (Some("disconnected"), Duration::ZERO));
    assert_eq!(o.decision.status_code, 403);
    fake.stop().await;
}
