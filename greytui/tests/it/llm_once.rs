//! The LLM layer from greytui against a real greyproxyd fed by the mock LLM origin (curl makes
//! the calls through the proxy, as an agent would): `--once conversations`, `conversation`,
//! `calls` and `usage` in tables and JSON, the usage table's total equal to `--json`'s, model
//! output escaped, the Usage view's board through the real link equal to `--once usage --json`
//! and refreshed by `llm_call.new`, and a daemon whose LLM layer is off.

use std::time::{Duration, SystemTime};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use greyproxy_testkit::agent_env::rule;
use greyproxy_testkit::llm_mock::through::{claude_code_body, post};
use greyproxy_testkit::llm_mock::{
    Answer, CLAUDE_MODEL, LlmMock, MockUsage, UNKNOWN_MODEL, always,
};
use greyproxy_testkit::{Daemon, DaemonBuilder};
use greytui::app::{App, Effect, Msg, Tag};
use greytui::link::{self, LinkEvent, Request};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::common::{daemon_bin, once};

const SESSION: &str = "5f0c8c1e-2b7a-4d38-9a61-0c4e2d9b7a55";
const USAGE: MockUsage = MockUsage {
    input: 120,
    cache_creation: 3_000,
    cache_read: 10_000,
    output: 400,
    reasoning: 0,
};

/// A daemon dialling the mock for `api.anthropic.com` and `api.openai.com`, `extra` flags
/// added, with container `dev` allowed to reach both.
async fn llm_daemon(mock: &LlmMock, extra: &[&str]) -> Daemon {
    let ip = mock.ip();
    let maps: Vec<String> = ["api.anthropic.com", "api.openai.com"]
        .iter()
        .map(|h| format!("{h}={ip}"))
        .collect();
    let ca = mock.ca_pem().display().to_string();
    let mut args = vec!["--upstream-ca", &ca];
    for m in &maps {
        args.extend(["--map-host", m.as_str()]);
    }
    args.extend(extra);
    let d = DaemonBuilder::new(daemon_bin()).args(&args).start().await;
    let mut ws = d.client().await;
    for h in ["api.anthropic.com", "api.openai.com"] {
        rule(&mut ws, "dev", h, "allow").await;
    }
    ws.close().await;
    d
}

/// A Claude Code call of the test's session with `prompt` as its latest user message.
async fn claude(d: &Daemon, mock: &LlmMock, prompt: &str) {
    let body = claude_code_body(SESSION, prompt);
    let url = "https://api.anthropic.com:443/v1/messages?beta=true";
    post(d, mock, url, "claude-cli/2.1.0 (external, cli)", &body).await;
}

/// An opencode call to a model no price table has.
async fn opencode(d: &Daemon, mock: &LlmMock) {
    let body = json!({"model": UNKNOWN_MODEL, "stream": true,
        "stream_options": {"include_usage": true},
        "messages": [{"role":"user","content":"hello"}]});
    let url = "https://api.openai.com:443/v1/chat/completions";
    post(d, mock, url, "opencode/1.0", &body).await;
}

/// Waits until the daemon has dissected `n` calls.
async fn calls_stored(d: &Daemon, n: usize) {
    let mut ws = d.client().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let data = ws.query(json!({"command":"list_llm_calls"})).await;
        let got = data["calls"].as_array().map_or(0, Vec::len);
        if got >= n {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{got} of {n} calls\n{}",
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ws.close().await;
}

fn json_of(r: &crate::common::Run) -> Value {
    assert_eq!(r.code, 0, "{r:?}");
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r:?}"))
}

/// The cells of a `--once` table line (columns are two or more spaces apart).
fn cells(line: &str) -> Vec<String> {
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

fn number(cell: &str) -> u64 {
    cell.replace(',', "")
        .parse()
        .unwrap_or_else(|e| panic!("{cell:?}: {e}"))
}

/// `$0.0222` → hundredths of a cent.
fn cost_units(cell: &str) -> u64 {
    number(&cell.trim_start_matches('$').replace('.', ""))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_llm_commands_print_the_daemons_calls_and_the_usage_total_matches_json() {
    let answer = Answer::text("Sure.\u{1b}[2J\u{7} done").with_usage(USAGE);
    let mock = LlmMock::builder("127.0.0.141")
        .script(always(answer))
        .start()
        .await;
    let d = llm_daemon(&mock, &[]).await;
    claude(&d, &mock, "first").await;
    claude(&d, &mock, "second").await;
    opencode(&d, &mock).await;
    calls_stored(&d, 3).await;

    // usage: the table's TOTAL row is the JSON total, exactly.
    let v = json_of(&once(&d, &["usage", "--json"]).await);
    assert_eq!(v["group_by"], "container");
    let total = &v["total"];
    assert_eq!(total["calls"], 3, "{v}");
    let r = once(&d, &["usage"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(
        cells(lines[0]),
        [
            "CONTAINER",
            "CALLS",
            "INPUT",
            "CACHED",
            "OUTPUT",
            "COST",
            "UNPRICED",
            "CACHE HIT",
            "TTFT P50"
        ]
    );
    assert_eq!(cells(lines[1])[0], "dev");
    let t = cells(lines.last().unwrap());
    assert_eq!(t[0], "TOTAL");
    assert_eq!(number(&t[1]), total["calls"].as_u64().unwrap());
    assert_eq!(
        number(&t[2]),
        total["usage"]["input_tokens"].as_u64().unwrap()
    );
    assert_eq!(
        number(&t[3]),
        total["usage"]["cache_read_tokens"].as_u64().unwrap()
    );
    assert_eq!(
        number(&t[4]),
        total["usage"]["output_tokens"].as_u64().unwrap()
    );
    let micro = total["cost_micro_usd"].as_u64().unwrap();
    assert!(micro > 0, "{v}");
    assert_eq!(cost_units(&t[5]), (micro + 50) / 100);
    assert_eq!(number(&t[6]), 1, "the unknown model's call");

    // By model over the last hour: the unpriced model apart.
    let v = json_of(&once(&d, &["usage", "--by", "model", "--since", "1h", "--json"]).await);
    let unknown = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == UNKNOWN_MODEL)
        .unwrap_or_else(|| panic!("{v}"));
    assert_eq!(
        (&unknown["calls"], &unknown["unpriced_calls"]),
        (&json!(1), &json!(1))
    );
    assert_eq!(once(&d, &["usage", "--by", "galaxy"]).await.code, 2);
    let r = once(&d, &["usage", "--since", "yesterday-ish"]).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.starts_with("greytui: invalid since"), "{r:?}");

    // conversations: the Claude Code session and opencode's.
    let convs = json_of(&once(&d, &["conversations", "--json"]).await);
    let convs = convs.as_array().unwrap();
    assert_eq!(convs.len(), 2, "{convs:?}");
    let id = format!("claude-code:{SESSION}");
    let c = convs.iter().find(|c| c["id"] == id.as_str()).unwrap();
    assert_eq!(
        (&c["turn_count"], &c["totals"]["calls"]),
        (&json!(2), &json!(2))
    );
    let only = json_of(&once(&d, &["conversations", "--container", "nobody", "--json"]).await);
    assert_eq!(only, json!([]));
    let r = once(&d, &["conversations"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        cells(r.stdout.lines().next().unwrap())[..3],
        ["ID", "STATUS", "CONTAINER"]
    );
    let row = r.stdout.lines().find(|l| l.starts_with(&id)).unwrap();
    assert_eq!(
        cells(row)[1..5],
        ["answered", "dev", "claude-code", CLAUDE_MODEL]
    );
    assert!(row.ends_with("first"), "{row}");

    // conversation: turn by turn, the model's escape sequences written out, never sent.
    let r = once(&d, &["conversation", &id]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        !r.stdout.contains('\u{1b}') && !r.stdout.contains('\u{7}'),
        "{r:?}"
    );
    assert!(
        r.stdout.starts_with(&format!("conversation   {id}\n")),
        "{r:?}"
    );
    for want in [
        "\nTurn 1 · ",
        "\n  user        first\n",
        "\n  assistant   Sure.\\x1b[2J\\x07 done\n",
        "\nTurn 2 · ",
        "\n  user        second\n",
    ] {
        assert!(r.stdout.contains(want), "{want:?} in\n{}", r.stdout);
    }
    let v = json_of(&once(&d, &["conversation", &id, "--json"]).await);
    assert_eq!(v["turns"].as_array().map(Vec::len), Some(2), "{v}");
    let r = once(&d, &["conversation", "claude-code:nope"]).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(
        r.stderr,
        "greytui: conversation claude-code:nope not found\n"
    );

    // calls: newest first, per conversation, limited.
    let all = json_of(&once(&d, &["calls", "--json"]).await);
    assert_eq!(all.as_array().map(Vec::len), Some(3));
    let mine = json_of(&once(&d, &["calls", "--conversation", &id, "--json"]).await);
    let ids: Vec<u64> = mine
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids[0] > ids[1], "newest first: {ids:?}");
    let one = json_of(&once(&d, &["calls", "--limit", "1", "--json"]).await);
    assert_eq!(one.as_array().unwrap()[0]["id"], all[0]["id"]);
    assert_eq!(one.as_array().map(Vec::len), Some(1));
    let r = once(&d, &["calls"]).await;
    assert_eq!(r.stdout.lines().count(), 4, "{r:?}");
    let unpriced = r
        .stdout
        .lines()
        .find(|l| l.contains(UNKNOWN_MODEL))
        .unwrap();
    assert!(
        cells(unpriced).contains(&"unpriced".to_string()),
        "{unpriced}"
    );
}

/// The dashboard's state machine over the real link, without a terminal.
struct Board {
    app: App,
    tx: mpsc::Sender<Request<Tag>>,
    rx: mpsc::Receiver<LinkEvent<Tag>>,
}

impl Board {
    fn new(d: &Daemon) -> Board {
        let dir = d.state_dir().to_path_buf();
        let (tx, rx, _task) = link::spawn(move || {
            greytui::paths::endpoint(None, None, Some(&dir), &|_| None)
                .map(|(ep, _)| ep)
                .map_err(|e| e.to_string())
        });
        Board {
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

    /// Feeds link events, and the clock every 200 ms, until `pred` holds.
    async fn until(&mut self, what: &str, pred: impl Fn(&App) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !pred(&self.app) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            let fx = match tokio::time::timeout(Duration::from_millis(200), self.rx.recv()).await {
                Ok(Some(ev)) => self.app.update(Msg::Link(ev)),
                Ok(None) => panic!("link gone"),
                Err(_) => self.app.update(Msg::Tick(SystemTime::now())),
            };
            self.apply(fx).await;
        }
    }

    async fn key(&mut self, c: char) {
        let fx = self.app.update(Msg::Key(KeyEvent::new(
            KeyCode::Char(c),
            KeyModifiers::NONE,
        )));
        self.apply(fx).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_usage_board_follows_calls_and_its_totals_match_once_usage_json() {
    let mock = LlmMock::builder("127.0.0.142")
        .script(always(Answer::text("Sure.").with_usage(USAGE)))
        .start()
        .await;
    let d = llm_daemon(&mock, &[]).await;
    let mut b = Board::new(&d);
    b.until("connected", |a| a.claimed).await;
    b.key('6').await;
    b.until("an empty board", |a| a.usage.total.is_some()).await;
    assert_eq!(b.app.usage.total.as_ref().unwrap().totals.calls, 0);

    // Calls made while the board is shown: llm_call.new refreshes it.
    claude(&d, &mock, "first").await;
    opencode(&d, &mock).await;
    b.until("both calls on the board", |a| {
        a.usage.total.as_ref().is_some_and(|t| t.totals.calls == 2)
    })
    .await;
    b.until("the live rate", |a| {
        a.usage.rate(None, a.now).tokens_per_min > 0.0
    })
    .await;
    let v = json_of(&once(&d, &["usage", "--since", "today", "--json"]).await);
    let board = b.app.usage.total.clone().unwrap();
    assert_eq!(
        serde_json::to_value(&board.totals).unwrap()["usage"],
        v["total"]["usage"]
    );
    assert_eq!(
        board.totals.cost_micro_usd,
        v["total"]["cost_micro_usd"].as_u64().unwrap()
    );
    assert_eq!(board.totals.unpriced_calls, 1);
    let rows: Vec<&str> = b.app.usage.rows().iter().map(|r| r.key.as_str()).collect();
    assert_eq!(rows, ["dev"]);

    // By model: the grouping key asks again.
    b.key('b').await;
    b.key('b').await;
    b.until("rows by model", |a| a.usage.rows().len() == 2)
        .await;
    let mut models: Vec<&str> = b.app.usage.rows().iter().map(|r| r.key.as_str()).collect();
    models.sort();
    assert_eq!(models, [CLAUDE_MODEL, UNKNOWN_MODEL]);
}

#[tokio::test]
async fn a_daemon_with_the_llm_layer_off_is_said_so() {
    let cfg = tempfile::tempdir().unwrap();
    let off = cfg.path().join("off.toml");
    std::fs::write(&off, "[llm]\nenabled = false\n").unwrap();
    let off = off.display().to_string();
    let d = DaemonBuilder::new(daemon_bin())
        .args(&["--config", &off])
        .start()
        .await;
    for args in [
        &["usage"][..],
        &["conversations", "--json"],
        &["calls"],
        &["conversation", "x"],
    ] {
        let r = once(&d, args).await;
        assert_eq!(r.code, 1, "{args:?}: {r:?}");
        assert_eq!(
            r.stderr,
            "greytui: the LLM layer is off (llm.enabled = false)\n"
        );
        assert_eq!(r.stdout, "");
    }
    let mut b = Board::new(&d);
    b.until("connected", |a| a.claimed).await;
    b.key('6').await;
    b.until("the board to say so", |a| a.usage.unavailable().is_some())
        .await;
    let mut term = ratatui::Terminal::new(ratatui::backend::TestBackend::new(120, 40)).unwrap();
    term.draw(|f| greytui::ui::draw(f, &b.app)).unwrap();
    let screen: String = term
        .backend()
        .buffer()
        .content()
        .iter()
        .map(|c| c.symbol())
        .collect();
    assert!(screen.contains("The daemon's LLM layer is off"), "{screen}");
}
