//! The policy's timing under tokio's paused time: holds time out, timed rules expire and timed
//! silent mode ends exactly when they should, with one [`Clock`] moved by
//! `tokio::time::advance` (no wall-clock sleeps), against a real store in a temporary directory.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use greyproxy_protocol::{AllowAllMode, AllowAllStatus, Decision, Event};
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::TryRecvError;

use super::clock::Clock;
use super::engine::{ConnRequest, Eval, FrontEnd, Policy, Reason};
use crate::events::{EventBus, Published};
use crate::live::{Live, LiveCell};
use crate::store::{Store, spawn_log_writer};

/// 2027-01-15T08:00:00Z: any fixed instant will do, the clock only moves when told to.
const EPOCH: u64 = 1_800_000_000;

struct Fixture {
    _dir: tempfile::TempDir,
    policy: Arc<Policy>,
    events: Arc<EventBus>,
    live: Arc<LiveCell>,
}

fn fixture(hold_timeout: Duration) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("s.redb")).unwrap());
    let logs = spawn_log_writer(store.clone(), 16, 1000, Box::new(|_| {}));
    let events = Arc::new(EventBus::new());
    let live = LiveCell::new(Live::new(vec![], vec![], vec![], hold_timeout).unwrap());
    let clock = Clock::following_tokio(EPOCH);
    let policy = Policy::with_clock(store, events.clone(), logs, live.clone(), clock).unwrap();
    Fixture {
        _dir: dir,
        policy,
        events,
        live,
    }
}

fn request(host: &str) -> ConnRequest {
    ConnRequest {
        container: "c".into(),
        host: host.into(),
        port: 443,
        resolved: None,
        front: FrontEnd::Http,
        tunnel: false,
    }
}

/// Lets every task that is ready run (paused time never advances while tasks are ready).
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

/// The next event; fails (rather than hangs) when none comes: paused time jumps to the
/// timeout as soon as nothing else can run.
async fn next_event(rx: &mut Receiver<Arc<Published>>) -> Event {
    let got = tokio::time::timeout(Duration::from_secs(1), rx.recv()).await;
    got.expect("no event came").unwrap().event.clone()
}

#[tokio::test(start_paused = true)]
async fn a_hold_times_out_exactly_at_the_hold_timeout() {
    let f = fixture(Duration::from_secs(30));
    let mut rx = f.events.subscribe();
    let p = f.policy.clone();
    let held = tokio::spawn(async move {
        p.decide(&request("held.example"), std::future::pending::<()>())
            .await
    });
    assert!(matches!(
        next_event(&mut rx).await,
        Event::PendingCreated(_)
    ));

    tokio::time::advance(Duration::from_secs(29)).await;
    settle().await;
    assert!(!held.is_finished(), "decided before the hold timeout");
    assert_eq!(f.policy.held_connections(), 1);

    tokio::time::advance(Duration::from_secs(1)).await;
    settle().await;
    assert!(held.is_finished(), "still held after the hold timeout");
    let verdict = held.await.unwrap();
    assert_eq!(verdict.decision, Decision::Blocked);
    assert_eq!(verdict.reason, Reason::HoldTimeout);
    assert_eq!(f.policy.held_connections(), 0);
    // The pending request stays for a human to decide later.
    assert_eq!(f.policy.pending_count(), 1);
}

/// A reload applies to the holds that start after it; a hold keeps the timeout it began with.
#[tokio::test(start_paused = true)]
async fn each_hold_keeps_the_hold_timeout_it_started_with() {
    let f = fixture(Duration::from_secs(30));
    let mut rx = f.events.subscribe();
    let hold = |host: &'static str| {
        let p = f.policy.clone();
        tokio::spawn(async move { p.decide(&request(host), std::future::pending::<()>()).await })
    };
    let early = hold("early.example");
    assert!(matches!(
        next_event(&mut rx).await,
        Event::PendingCreated(_)
    ));
    f.live
        .store(Live::new(vec![], vec![], vec![], Duration::from_secs(10)).unwrap());
    let late = hold("late.example");
    assert!(matches!(
        next_event(&mut rx).await,
        Event::WaitersChanged(_)
    ));
    assert!(matches!(
        next_event(&mut rx).await,
        Event::PendingCreated(_)
    ));

    tokio::time::advance(Duration::from_secs(10)).await;
    settle().await;
    assert!(late.is_finished() && !early.is_finished());
    assert_eq!(late.await.unwrap().reason, Reason::HoldTimeout);
    tokio::time::advance(Duration::from_secs(20)).await;
    settle().await;
    assert!(early.is_finished());
    assert_eq!(early.await.unwrap().reason, Reason::HoldTimeout);
}

#[tokio::test(start_paused = true)]
async fn a_timed_rule_matches_until_it_expires() {
    let f = fixture(Duration::from_secs(30));
    let args = serde_json::from_value(serde_json::json!({
        "container_pattern": "*", "destination_pattern": "timed.example", "duration": "1h"}))
    .unwrap();
    let rule = f.policy.create_rule(&args).await.unwrap();
    assert_eq!(rule.expires_at, Some(EPOCH + 3_600));
    let req = request("timed.example");
    let decided = |e: Eval| match e {
        Eval::Decided(d, id, why) => {
            (d, id, why) == (Decision::Allowed, Some(rule.id), Reason::Rule)
        }
        Eval::Undecided => false,
    };

    assert!(decided(f.policy.evaluate(&req)));
    tokio::time::advance(Duration::from_secs(3_599)).await;
    assert!(decided(f.policy.evaluate(&req)));
    assert!(f.policy.rule(rule.id).unwrap().is_active);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(matches!(f.policy.evaluate(&req), Eval::Undecided));
    assert!(!f.policy.rule(rule.id).unwrap().is_active);
}

#[tokio::test(start_paused = true)]
async fn silent_mode_ends_at_its_expiry_and_says_so() {
    let f = fixture(Duration::from_secs(30));
    let t0 = tokio::time::Instant::now();
    let mut rx = f.events.subscribe();
    let on = f
        .policy
        .set_allow_all(AllowAllMode::Deny, Some(Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(on.active);
    assert_eq!(on.remaining_seconds, Some(60));
    assert_eq!(next_event(&mut rx).await, Event::AllowAllChanged(on));
    let req = request("anywhere.example");
    assert!(matches!(
        f.policy.evaluate(&req),
        Eval::Decided(Decision::Blocked, None, Reason::AllowAll)
    ));

    tokio::time::advance(Duration::from_secs(59)).await;
    settle().await;
    assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
    assert_eq!(f.policy.allow_all_status().remaining_seconds, Some(1));

    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(
        next_event(&mut rx).await,
        Event::AllowAllChanged(AllowAllStatus::default())
    );
    assert_eq!(t0.elapsed(), Duration::from_secs(60), "ended late");
    assert_eq!(f.policy.allow_all_status(), AllowAllStatus::default());
    assert!(matches!(f.policy.evaluate(&req), Eval::Undecided));
}

#[tokio::test(start_paused = true)]
async fn a_stale_expiry_timer_leaves_a_newer_silent_mode_alone() {
    let f = fixture(Duration::from_secs(30));
    let policy = &f.policy;
    policy
        .set_allow_all(AllowAllMode::Deny, Some(Duration::from_secs(60)))
        .await
        .unwrap();
    let newer = policy
        .set_allow_all(AllowAllMode::Allow, Some(Duration::from_secs(600)))
        .await
        .unwrap();
    let mut rx = f.events.subscribe();
    tokio::time::advance(Duration::from_secs(60)).await;
    settle().await;
    assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
    let now = policy.allow_all_status();
    assert_eq!(now.mode, newer.mode);
    assert_eq!(now.remaining_seconds, Some(540));
}
