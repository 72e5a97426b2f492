//! The dashboard's state machine and daemon link against a real greyproxyd, without a
//! terminal: keys are injected into `App::update`, its commands go through the real link, and
//! real curl requests are held and released. Covers approval from the keyboard, the
//! subdomain / 1 h picker, reconnection with resync after a daemon restart, a wrong token, and
//! the export keys (`E` writes the Activity filter as HAR, `y` copies a request as curl).

use crate::common;

use std::time::{Duration, SystemTime};

use common::{daemon, daemon_bin, finish, held_curl};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use greyproxy_testkit::DaemonBuilder;
use greyproxy_testkit::origin::http_origin;
use greytui::app::{App, ConnState, Effect, Msg, Tag};
use greytui::client::Endpoint;
use greytui::link::{self, LinkEvent, Request};
use serde_json::json;
use tokio::sync::mpsc;

struct Harness {
    app: App,
    tx: mpsc::Sender<Request<Tag>>,
    rx: mpsc::Receiver<LinkEvent<Tag>>,
    bells: usize,
    /// Files the app asked to write (path, contents), not written.
    files: Vec<(String, String)>,
    /// Texts the app put on the clipboard.
    clipboard: Vec<String>,
}

impl Harness {
    /// A dashboard finding the daemon through `state_dir` (daemon.json and control.token), as
    /// `greytui --state-dir` does, re-resolved on every reconnection.
    fn new(state_dir: std::path::PathBuf) -> Harness {
        Harness::with(move || {
            greytui::paths::endpoint(None, None, Some(&state_dir), &|_| None)
                .map(|(ep, _)| ep)
                .map_err(|e| e.to_string())
        })
    }

    fn with(resolve: impl Fn() -> Result<Endpoint, String> + Send + 'static) -> Harness {
        let (tx, rx, _task) = link::spawn(resolve);
        Harness {
            app: App::new(SystemTime::now(), (120, 40), false),
            tx,
            rx,
            bells: 0,
            files: Vec::new(),
            clipboard: Vec::new(),
        }
    }

    async fn apply(&mut self, fx: Vec<Effect>) {
        for e in fx {
            match e {
                // One daemon: every command goes to it.
                Effect::Send(r) | Effect::SendTo(_, r) => self.tx.send(r).await.unwrap(),
                Effect::Bell => self.bells += 1,
                Effect::Notify { .. } | Effect::Quit => {}
                Effect::WriteFile { path, contents } => {
                    self.files.push((path.clone(), contents));
                    self.app.update(Msg::Wrote {
                        path,
                        result: Ok(()),
                    });
                }
                Effect::Clipboard(text) => self.clipboard.push(text),
            }
        }
    }

    async fn keys(&mut self, s: &str) {
        for c in s.chars() {
            let code = match c {
                '\n' => KeyCode::Enter,
                c => KeyCode::Char(c),
            };
            let fx = self
                .app
                .update(Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)));
            self.apply(fx).await;
        }
    }

    /// Feeds link events to the app until `pred` holds.
    async fn until(&mut self, what: &str, pred: impl Fn(&App) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while !pred(&self.app) {
            let ev = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!("timed out waiting for {what}; app: {:#?}", self.app.conn)
                })
                .unwrap();
            let fx = self.app.update(Msg::Link(ev));
            self.apply(fx).await;
        }
    }

    /// Lets in-flight replies land.
    async fn settle(&mut self) {
        while let Ok(Some(ev)) =
            tokio::time::timeout(Duration::from_millis(300), self.rx.recv()).await
        {
            let fx = self.app.update(Msg::Link(ev));
            self.apply(fx).await;
        }
    }
}

#[tokio::test]
async fn a_held_request_appears_with_a_bell_and_a_lets_it_through() {
    let d = daemon().await;
    let mut h = Harness::new(d.state_dir().to_path_buf());
    h.until("connected and loaded", |a| {
        a.claimed && !a.activity.is_loading()
    })
    .await;
    assert_eq!(
        h.app.server_version.as_deref(),
        Some(env!("CARGO_PKG_VERSION"))
    );
    let origin = http_origin("127.0.0.2").await;
    let curl = held_curl(&d, &format!("http://{origin}/"));
    h.until("the pending request", |a| !a.pending.is_empty())
        .await;
    assert_eq!(h.bells, 1);
    let p = h.app.pending[0].clone();
    assert_eq!(
        (p.destination_host.as_str(), p.destination_port),
        ("127.0.0.2", origin.port())
    );
    h.until("its waiter", |a| a.pending[0].waiting_count == 1)
        .await;

    h.keys("a").await;
    let res = finish(curl).await;
    assert_eq!((res.exit, res.status), (0, 200), "{res:?}");
    h.until("the pending row to leave", |a| a.pending.is_empty())
        .await;
    h.until("the result message", |a| a.message.is_some()).await;
    let m = h.app.message.clone().unwrap();
    assert!(
        !m.error && m.text.starts_with(&format!("allowed #{} ", p.id)),
        "{m:?}"
    );
    h.until("the new rule", |a| {
        a.rules.iter().any(|r| r.destination_pattern == "127.0.0.2")
    })
    .await;
    h.until("the allowed connection in the activity feed", |a| {
        a.activity.items.iter().any(|i| matches!(&i.item,
            greyproxy_protocol::ActivityItem::Connection(r)
                if r.destination_host == "127.0.0.2" && r.result == greyproxy_protocol::Decision::Allowed))
    })
    .await;
    // A refused command is a message; the dashboard goes on.
    h.keys("a").await;
    assert_eq!(h.app.message.as_ref().unwrap().text, "nothing selected");
}

#[tokio::test]
async fn picker_subdomain_for_one_hour_creates_a_wildcard_rule_expiring_in_an_hour() {
    let d = daemon().await;
    let mut h = Harness::new(d.state_dir().to_path_buf());
    h.until("connected", |a| a.claimed).await;
    // A client that gives up before the decision: the pending request stays, and allowing it
    // later makes no connection (so no name is ever resolved outside this machine).
    let proxy = d.http_proxy();
    let res = greyproxy_testkit::curl(&[
        "--max-time",
        "1",
        "-x",
        &proxy,
        "http://api.build.example.test:8080/",
    ])
    .await;
    assert_ne!(res.status, 200);
    h.until("the pending request", |a| {
        a.pending
            .iter()
            .any(|p| p.destination_host == "api.build.example.test")
    })
    .await;
    h.until("no waiter", |a| {
        a.pending.iter().all(|p| p.waiting_count == 0)
    })
    .await;

    h.keys("A32").await; // subdomain, 1h
    h.until("the wildcard rule", |a| {
        a.rules
            .iter()
            .any(|r| r.destination_pattern.starts_with("**."))
    })
    .await;
    let r = h
        .app
        .rules
        .iter()
        .find(|r| r.destination_pattern.starts_with("**."))
        .unwrap()
        .clone();
    assert_eq!(r.destination_pattern, "**.example.test");
    assert_eq!(r.port_pattern, "*");
    assert_eq!(r.action, greyproxy_protocol::Action::Allow);
    let expires = greytui::format::parse_time(r.expires_at.as_deref().unwrap()).unwrap();
    let left = expires.duration_since(SystemTime::now()).unwrap();
    assert!(
        left > Duration::from_secs(3500) && left <= Duration::from_secs(3600),
        "{left:?}"
    );
    h.until("the pending request to go", |a| a.pending.is_empty())
        .await;
}

#[tokio::test]
async fn a_daemon_restart_is_survived_with_reconnect_and_resync() {
    let d = daemon().await;
    let dir_path = d.state_dir().to_path_buf();
    let mut h = Harness::new(dir_path.clone());
    h.until("connected", |a| a.claimed && !a.activity.is_loading())
        .await;
    h.keys("3n").await;
    h.keys("restart.example\n").await;
    h.until("the new rule", |a| {
        a.rules
            .iter()
            .any(|r| r.destination_pattern == "restart.example")
    })
    .await;
    let resyncs = h.app.resyncs;

    let dir = d.stop().await;
    h.until("the disconnection", |a| {
        matches!(a.conn, ConnState::Disconnected { .. })
    })
    .await;
    assert!(!h.app.claimed);
    // Commands while the daemon is away fail at once, with a message.
    h.keys("1R").await;
    h.until("a not-connected message", |a| {
        a.message
            .as_ref()
            .is_some_and(|m| m.error && m.text.contains("not connected"))
    })
    .await;

    // The restarted daemon listens on new ports: found again through daemon.json.
    let d2 = DaemonBuilder::new(daemon_bin()).start_in(dir).await;
    h.until("reconnected and claimed", |a| {
        a.conn == ConnState::Connected && a.claimed
    })
    .await;
    h.settle().await;
    assert!(h.app.resyncs > resyncs);
    assert!(h.app.url.contains(&d2.control.to_string()), "{}", h.app.url);
    assert!(
        h.app
            .rules
            .iter()
            .any(|r| r.destination_pattern == "restart.example")
    );
    // And it is live again: a new hold shows up.
    let origin = http_origin("127.0.0.2").await;
    let curl = held_curl(&d2, &format!("http://{origin}/"));
    h.until("the pending request after restart", |a| {
        !a.pending.is_empty()
    })
    .await;
    h.keys("d").await;
    let res = finish(curl).await;
    assert_eq!(res.status, 403, "{res:?}");
    let mut ws = d2.client().await;
    let claims = ws.query(json!({"command": "status"})).await["active_claims"].clone();
    assert_eq!(claims, 1);
}

#[tokio::test]
async fn a_wrong_token_is_reported_and_retried() {
    let d = daemon().await;
    let url = d.ws_url();
    let mut h = Harness::with(move || {
        Ok(Endpoint {
            url: url.clone(),
            token: Some("wrong".into()),
        })
    });
    h.until("the refusal", |a| {
        matches!(
            a.conn,
            ConnState::Disconnected {
                unauthorized: true,
                ..
            }
        )
    })
    .await;
    // Retried with a growing delay (the token may be rotated back meanwhile).
    h.until("a retry", |a| {
        matches!(a.conn, ConnState::Disconnected { unauthorized: true, retry_in, .. } if retry_in > link::MIN_BACKOFF)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e_exports_the_activity_filter_as_har_and_y_copies_a_curl_command() {
    let d = daemon().await;
    let origin = http_origin("127.0.0.189").await;
    let mut ws = d.client().await;
    greyproxy_testkit::agent_env::rule(&mut ws, "dev", "127.0.0.189", "allow").await;
    let proxy = format!("http://dev:x@{}", d.http.unwrap());
    for i in 0..2 {
        let r =
            greyproxy_testkit::fetch::fetch(&["-x", &proxy], &[&format!("http://{origin}/e{i}")])
                .await;
        assert_eq!(r.status(), 200, "{r:?}");
    }
    let mut h = Harness::new(d.state_dir().to_path_buf());
    h.until("connected and loaded", |a| {
        a.claimed && !a.activity.is_loading()
    })
    .await;
    h.keys("2").await;
    let is_tx = |i: &greyproxy_protocol::ActivityItem| {
        matches!(i, greyproxy_protocol::ActivityItem::Transaction(_))
    };
    h.until("two transactions listed", |a| {
        a.activity.items.iter().filter(|i| is_tx(&i.item)).count() >= 2
    })
    .await;
    h.keys("E").await;
    h.settle().await;
    assert_eq!(h.files.len(), 1, "{:?}", h.app.message);
    let (path, contents) = &h.files[0];
    assert!(
        path.starts_with("greyproxy-") && path.ends_with(".har"),
        "{path}"
    );
    let har: serde_json::Value = serde_json::from_str(contents).unwrap();
    assert_eq!(har["log"]["version"], "1.2");
    let urls: Vec<&str> = har["log"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["request"]["url"].as_str())
        .collect();
    assert_eq!(
        urls,
        [format!("http://{origin}/e1"), format!("http://{origin}/e0")]
    );
    assert_eq!(
        h.app.message.as_ref().unwrap().text,
        format!("wrote {path}")
    );

    // The newest transaction's detail, then `y`.
    let at = h
        .app
        .activity
        .items
        .iter()
        .position(|i| is_tx(&i.item))
        .unwrap();
    for _ in 0..at {
        h.keys("j").await;
    }
    h.keys("\n").await;
    h.settle().await;
    h.keys("y").await;
    assert_eq!(h.clipboard.len(), 1, "{:?}", h.app.message);
    let c = &h.clipboard[0];
    assert!(c.starts_with("curl -H 'Accept: */*'"), "{c}");
    assert!(c.ends_with(&format!(" 'http://{origin}/e1'")), "{c}");
    assert!(
        !c.contains("Proxy-Authorization"),
        "the proxy's own credentials are left out: {c}"
    );
}
