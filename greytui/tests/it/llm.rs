//! The LLM parts of the dashboard against a real daemon fed by the mock LLM origin: an
//! Anthropic call made with curl through the daemon (container `dev`) whose answer is a `Bash`
//! tool call running curl; then the curl it names, to a destination no rule allows, is held.
//! The dashboard shows the conversation live, today's cost, and the held request with its
//! why; `w` opens the conversation at that tool call; `a` lets the request through.
//! The helpers here also drive the tmux test of the same story.

use crate::common;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use common::{daemon_bin, finish};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use greyproxy_testkit::agent_env::rule;
use greyproxy_testkit::llm_mock::through::{claude_code_body, post};
use greyproxy_testkit::llm_mock::{Answer, LlmMock, MockUsage, tool_then_text};
use greyproxy_testkit::origin::http_origin;
use greyproxy_testkit::{CurlResult, Daemon, DaemonBuilder, curl};
use greytui::app::{App, Effect, Msg, Tag, View};
use greytui::link::{self, LinkEvent, Request};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The container every request of these tests comes from (proxy user name).
pub const CONTAINER: &str = "dev";

/// A mock LLM origin on `ip` whose answer to a call offering `Bash` is a tool call running
/// `curl -s <target>`, a daemon in front of it (with the mock's CA, `api.anthropic.com` mapped
/// to it, `dev` allowed to reach it) and the target: an HTTP origin nobody allowed.
pub async fn llm_setup(ip: &str, target_ip: &str) -> (LlmMock, Daemon, SocketAddr) {
    let target = http_origin(target_ip).await;
    let usage = MockUsage {
        input: 50_000,
        output: 2_000,
        ..MockUsage::default()
    };
    let tool = Answer::tool(
        "Bash",
        json!({"command": format!("curl -s http://{target}/x")}),
    )
    .with_usage(usage);
    let mock = LlmMock::builder(ip)
        .script(tool_then_text(tool, Answer::text("Done.")))
        .start()
        .await;
    let ca = mock.ca_pem().display().to_string();
    let map = format!("api.anthropic.com={}", mock.ip());
    let d = DaemonBuilder::new(daemon_bin())
        .args(&["--upstream-ca", &ca, "--map-host", &map])
        .start()
        .await;
    let mut ws = d.client().await;
    rule(&mut ws, CONTAINER, "api.anthropic.com", "allow").await;
    (mock, d, target)
}

/// The Anthropic call, as Claude Code sends it, through the daemon as `dev`.
pub async fn anthropic_call(d: &Daemon, mock: &LlmMock) {
    let url = "https://api.anthropic.com:443/v1/messages";
    let body = claude_code_body("6b0f7a34-98a5-4c5e-bd0c-8e1f2a3b4c5d", "fetch the x file");
    post(d, mock, url, "claude-cli/2.0.14 (external, cli)", &body).await;
}

/// The curl the tool call names, as `dev`: held until decided.
pub fn held_curl_as_dev(d: &Daemon, target: SocketAddr) -> JoinHandle<CurlResult> {
    let proxy = format!("http://{CONTAINER}:x@{}", d.http.unwrap());
    let url = format!("http://{target}/x");
    tokio::spawn(async move { curl(&["-x", proxy.as_str(), url.as_str()]).await })
}

/// The dashboard's state machine with a real link to a daemon: keys in, screens out.
pub struct Harness {
    pub app: App,
    tx: mpsc::Sender<Request<Tag>>,
    rx: mpsc::Receiver<LinkEvent<Tag>>,
}

impl Harness {
    pub fn new(state_dir: std::path::PathBuf) -> Harness {
        let (tx, rx, _task) = link::spawn(move || {
            greytui::paths::endpoint(None, None, Some(&state_dir), &|_| None)
                .map(|(ep, _)| ep)
                .map_err(|e| e.to_string())
        });
        Harness {
            app: App::new(SystemTime::now(), (120, 40), false),
            tx,
            rx,
        }
    }

    async fn apply(&mut self, fx: Vec<Effect>) {
        for e in fx {
            if let Effect::Send(r) = e {
                self.tx.send(r).await.unwrap();
            }
        }
    }

    pub async fn keys(&mut self, s: &str) {
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

    /// Feeds link events and the clock to the app until `pred` holds (20 s at most).
    pub async fn until(&mut self, what: &str, pred: impl Fn(&App) -> bool) {
        self.until_within(Duration::from_secs(20), what, pred).await;
    }

    /// [`Harness::until`] with its own limit.
    pub async fn until_within(&mut self, limit: Duration, what: &str, pred: impl Fn(&App) -> bool) {
        let deadline = tokio::time::Instant::now() + limit;
        while !pred(&self.app) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}:\n{}",
                self.screen()
            );
            let msg = match tokio::time::timeout(Duration::from_millis(250), self.rx.recv()).await {
                Ok(Some(ev)) => Msg::Link(ev),
                Ok(None) => panic!("the link stopped"),
                // The dashboard's clock: throttled refreshes are due on ticks.
                Err(_) => Msg::Tick(SystemTime::now()),
            };
            let fx = self.app.update(msg);
            self.apply(fx).await;
        }
    }

    pub fn screen(&self) -> String {
        h_screen(&self.app)
    }
}

pub fn has_line(screen: &str, parts: &[&str]) -> bool {
    screen.lines().any(|l| parts.iter().all(|p| l.contains(p)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_request_shows_the_tool_call_that_asked_for_it() {
    let (mock, d, target) = llm_setup("127.0.0.141", "127.0.0.142").await;
    let mut h = Harness::new(d.state_dir().to_path_buf());
    h.until("connected", |a| a.claimed).await;
    h.keys("5").await;
    h.until("the empty list", |a| {
        a.view == View::Conversations && !has_line(&h_screen(a), &["Loading"])
    })
    .await;

    anthropic_call(&d, &mock).await;
    // The conversation appears live, with its tokens and cost; so does today's cost.
    h.until("the conversation, live", |a| {
        has_line(
            &h_screen(a),
            &["dev", "claude-code", "claude-sonnet-4-5", "$"],
        )
    })
    .await;
    // 50 000 tokens in, 2 000 out at $3 and $15 per million.
    h.until("today's cost in the status bar", |a| {
        has_line(&h_screen(a), &["● connected", "$0.18 today"])
    })
    .await;

    let curl = held_curl_as_dev(&d, target);
    h.keys("1").await;
    let host = target.ip().to_string();
    h.until("the held request with its why", |a| {
        a.pending.iter().any(|p| p.llm_context.is_some())
    })
    .await;
    let p = h.app.pending[0].clone();
    assert_eq!(p.destination_host, host);
    let ctx = p.llm_context.clone().unwrap();
    assert_eq!(ctx.tool, "Bash");
    assert_eq!(ctx.summary, format!("curl -s http://{target}/x"));
    assert_eq!(ctx.turn, 1);
    let screen = h.screen();
    assert!(
        has_line(&screen, &["↳ $ Bash: curl -s http://", &host]),
        "{screen}"
    );
    // The picker shows it above the scopes, with the model's last line.
    h.keys("A").await;
    let screen = h.screen();
    assert!(has_line(&screen, &["Why: $ Bash: curl -s"]), "{screen}");
    assert!(has_line(&screen, &["“Let me run that.”"]), "{screen}");
    // w: the conversation at that turn, the tool call selected.
    h.keys("w").await;
    h.until("the conversation opened", |a| {
        has_line(&h_screen(a), &["▌", "$ Bash", &host])
    })
    .await;
    assert!(has_line(&h.screen(), &["Turn 1"]), "{}", h.screen());
    // Back to Pending, and a lets it through.
    h.keys("q").await;
    assert_eq!(h.app.view, View::Pending);
    h.keys("a").await;
    let res = finish(curl).await;
    assert_eq!((res.exit, res.status), (0, 200), "{res:?}");
    h.until("the pending row to go", |a| a.pending.is_empty())
        .await;
    drop(mock);
}

/// What the dashboard would draw now (120×40).
pub fn h_screen(app: &App) -> String {
    let mut t = Terminal::new(TestBackend::new(120, 40)).unwrap();
    t.draw(|f| greytui::ui::draw(f, app)).unwrap();
    format!("{}", t.backend())
}
