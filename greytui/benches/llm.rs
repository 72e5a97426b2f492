//! Dashboard benchmark of the LLM layer's load (not a test): the real `App` and ratatui
//! rendering (crossterm backend into a sink, 120×40, as `render.rs`) driven by a simulated
//! daemon that holds 10 000 conversations, one of them 1 000 turns long. Replies and events are
//! JSON text decoded as the link decodes them (`ServerMessage::decode`), so the UI thread's
//! whole share is measured; the daemon's own work is not (see `render.rs` for a real one).
//!
//! Measures (1) time to first frame: from a fresh `App` through connect, the resync's replies
//! and the first frame; (2) for every view reachable with a number key, the key → its first
//! frame, then the per-frame render time (p50 / p99) while `llm_call.new` and
//! `conversation.updated` each arrive at 100/s, with the loop of `tui.rs` (a frame at most every
//! 33 ms, only when something changed), and the time to apply one event (decode + update); the
//! Usage view's throttled `usage_summary` refreshes are answered as they are asked;
//! (3) decoding the `get_conversation` reply of the 1 000-turn conversation. A view whose
//! `Debug` name is `Conversations` also gets `Enter` on its first row (the long conversation).
//!
//! Run: `cargo bench -p greytui --bench llm` (`SECS=3` shortens each live phase from 10 s).
//! Without `--bench` (`cargo test -p greytui --benches`) it is a quick smoke run.
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use greyproxy_protocol::llm::{
    Conversation, ConversationStatus, ConversationSummary, LlmClient, LlmThread, LlmTotals,
    SessionSource, Step, StepToolCall, ToolCallInfo, Turn, Usage,
};
use greyproxy_protocol::{
    ActivityItem, Command, Decision, Event, EventEnvelope, Reply, RequestLog, ServerMessage,
};
use greytui::app::{App, Effect, Msg, Tag};
use greytui::link::{LinkEvent, Request};
use greytui::sample::usage::call;
use ratatui::backend::CrosstermBackend;
use ratatui::layout::Rect;
use ratatui::{Terminal, TerminalOptions, Viewport};
use serde_json::{Value, json};

const W: u16 = 120;
const H: u16 = 40;
const FRAME: Duration = Duration::from_millis(33);
const CONVERSATIONS: usize = 10_000;
const LONG_TURNS: u32 = 1_000;
/// Each event type arrives every 10 ms: 100/s.
const EVENT_EVERY: Duration = Duration::from_millis(10);
const CONTAINERS: [&str; 7] = [
    "claude-main",
    "claude-review",
    "codex-ci",
    "opencode-a",
    "opencode-b",
    "aider",
    "gemini",
];
const MODELS: [&str; 3] = [
    "claude-sonnet-4-5-20250929",
    "gpt-5-codex",
    "mock-frontier-9",
];

fn ts(ms: u64) -> String {
    humantime::format_rfc3339_millis(SystemTime::UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// Conversation `i`: the lower the index, the more recent.
fn summary(i: usize, turns: u32) -> ConversationSummary {
    let last = 1_795_000_000_000 - i as u64 * 60_000;
    let model = MODELS[i % MODELS.len()];
    ConversationSummary {
        id: format!("claude-code:session-{i:05}"),
        session_id: format!("session-{i:05}"),
        session_source: SessionSource::Wire,
        thread: LlmThread::Main,
        parent_id: None,
        parent_tool_call_id: None,
        container_name: CONTAINERS[i % CONTAINERS.len()].into(),
        client: LlmClient::ClaudeCode,
        provider: "anthropic".into(),
        models: vec![model.into()],
        status: ConversationStatus::Answered,
        started_at: ts(last - 3_600_000),
        last_activity: ts(last),
        turns,
        title: format!("fix the flaky test number {i} in the integration suite"),
        totals: LlmTotals {
            calls: turns as u64 * 3,
            usage: Usage {
                input_tokens: 40_000 * turns as u64,
                cache_read_tokens: 30_000 * turns as u64,
                output_tokens: 900 * turns as u64,
                ..Usage::default()
            },
            cost_micro_usd: 30_000 * turns as u64,
            unpriced_calls: 0,
            duration_ms: 7_000 * turns as u64,
        },
        context_tokens: 80_000,
        context_window: Some(200_000),
    }
}

/// The 1 000-turn conversation: three steps a turn, tool calls with result previews.
fn long_conversation() -> Conversation {
    let tool = |n: u32, name: &str| StepToolCall {
        call: ToolCallInfo {
            id: format!("toolu_{n}"),
            name: name.into(),
            summary: format!("cargo test -p crate{n} -- --nocapture"),
            input_preview: format!("{{\"command\":\"cargo test -p crate{n}\"}}"),
        },
        result_preview: Some("test result: ok. 42 passed; 0 failed\n".repeat(12)),
        is_error: n.is_multiple_of(7),
        linked_conversation_id: None,
    };
    let turns = (1..=LONG_TURNS)
        .map(|n| Turn {
            number: n,
            user_prompt: format!("Turn {n}: the build fails on CI again, please look. ").repeat(4),
            steps: (0..3)
                .map(|s| Step {
                    call_id: n as u64 * 3 + s,
                    text: "I will run the tests to see what fails, then fix it. ".repeat(5),
                    thinking_preview: "The failure is probably a race in the setup. ".repeat(8),
                    tool_calls: vec![tool(n, "Bash"), tool(n + 1, "Read")],
                })
                .collect(),
            call_ids: vec![n as u64 * 3, n as u64 * 3 + 1, n as u64 * 3 + 2],
            started_at: ts(1_795_000_000_000 - (LONG_TURNS - n) as u64 * 60_000),
            ended_at: ts(1_795_000_000_000 - (LONG_TURNS - n) as u64 * 60_000 + 30_000),
        })
        .collect();
    Conversation {
        summary: summary(0, LONG_TURNS),
        system_prompt_preview: "You are Claude Code. ".repeat(95),
        turns,
        subagents: Vec::new(),
    }
}

/// The simulated daemon: every command answered from memory, as JSON text.
struct Fake {
    /// Summaries as sent, latest activity first.
    conversations: Vec<Value>,
    long: String,
}

impl Fake {
    fn new() -> Fake {
        let conversations = (0..CONVERSATIONS)
            .map(|i| {
                let turns = if i == 0 {
                    LONG_TURNS
                } else {
                    1 + (i % 40) as u32
                };
                serde_json::to_value(summary(i, turns)).unwrap()
            })
            .collect();
        let long = serde_json::to_string(&json!({"type":"result","command":"get_conversation",
            "data": long_conversation(), "timestamp": ts(0)}))
        .unwrap();
        Fake {
            conversations,
            long,
        }
    }

    fn result(command: &str, data: Value) -> String {
        json!({"type":"result","command":command,"data":data,"timestamp":ts(0)}).to_string()
    }

    fn answer(&self, c: &Command) -> String {
        let name = c.name();
        let data = match c {
            Command::ClaimNotifications => {
                return json!({"type":"notification_claimed","active_claims":1,"timestamp":ts(0)})
                    .to_string();
            }
            Command::Status => json!({"service":"greyproxy","version":"bench","protocol_version":1,
                "uptime_seconds":3600,"listeners":{"control":"127.0.0.1:1"},"pending_count":0,
                "held_connections":0,"rule_count":3,"allow_all":{"active":false},
                "active_claims":1,"hold_timeout_seconds":30,"state_dir":"/bench","last_seq":0}),
            Command::ListPending(_) | Command::ListRules(_) => {
                json!({"items": [], "total": 0, "next_cursor": null})
            }
            Command::ListActivity(_) => {
                let items: Vec<ActivityItem> = (0..500).map(activity).collect();
                json!({"items": items, "total": 100_000, "next_cursor": "500"})
            }
            Command::ListMiddlewares => json!({"middlewares": []}),
            Command::UsageSummary(a) => usage(a.group_by.as_deref().unwrap_or("container")),
            Command::ListConversations(a) => {
                let before = a.before.clone().unwrap_or_else(|| "9999".into());
                let limit = a.limit.unwrap_or(100).min(1000);
                let page: Vec<&Value> = self
                    .conversations
                    .iter()
                    .filter(|c| c["last_activity"].as_str().unwrap() < before.as_str())
                    .take(limit + 1)
                    .collect();
                let more = page.len() > limit;
                let page = &page[..page.len().min(limit)];
                let next = page.last().map(|c| c["last_activity"].clone());
                json!({"conversations": page, "has_more": more,
                       "next_before": if more { next } else { None }})
            }
            Command::GetConversation(_) => return self.long.clone(),
            Command::ListLlmCalls(_) => json!({"calls": [], "has_more": false}),
            _ => {
                return json!({"type":"error","command":name,"error":"not simulated",
                    "timestamp":ts(0)})
                .to_string();
            }
        };
        Fake::result(name, data)
    }
}

fn activity(i: u64) -> ActivityItem {
    ActivityItem::Connection(RequestLog {
        id: 100_000 - i,
        timestamp: ts(1_795_000_000_000 - i * 1_000),
        container_name: CONTAINERS[i as usize % CONTAINERS.len()].into(),
        container_id: None,
        destination_host: "api.anthropic.com".into(),
        destination_port: Some(443),
        resolved_hostname: None,
        method: Some("CONNECT".into()),
        result: Decision::Allowed,
        rule_id: Some(4),
        response_time_ms: Some(1),
        reason: Some("rule".into()),
        rule_summary: None,
        mitm: None,
    })
}

/// A usage summary with a row per container, client or model.
fn usage(group: &str) -> Value {
    let keys: Vec<&str> = match group {
        "model" => MODELS.to_vec(),
        "client" => vec!["claude-code", "codex", "opencode", "aider", "gemini-cli"],
        _ => CONTAINERS.to_vec(),
    };
    let row = |k: &str, i: u64| {
        json!({"key": k, "calls": 100 * i, "usage": {"input_tokens": 4_000_000 * i,
            "cache_read_tokens": 3_000_000 * i, "cache_write_tokens": 0,
            "output_tokens": 90_000 * i, "reasoning_tokens": 0},
            "cost_micro_usd": 3_000_000 * i, "unpriced_calls": 0, "duration_ms": 1,
            "cache_hit_ratio": 0.75, "ttft_p50_ms": 600 + i})
    };
    let rows: Vec<Value> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| row(k, i as u64 + 1))
        .collect();
    json!({"group_by": group, "since": ts(0), "until": null, "rows": rows,
           "total": row("total", 30)})
}

struct Ui {
    app: App,
    term: Terminal<CrosstermBackend<std::io::Sink>>,
    fake: Fake,
    queue: VecDeque<Request<Tag>>,
    frames: Vec<Duration>,
    updates: Vec<Duration>,
    seq: u64,
    answered: u64,
}

impl Ui {
    fn new(fake: Fake) -> Ui {
        let opts = TerminalOptions {
            viewport: Viewport::Fixed(Rect::new(0, 0, W, H)),
        };
        Ui {
            app: App::new(SystemTime::now(), (W, H), false),
            term: Terminal::with_options(CrosstermBackend::new(std::io::sink()), opts).unwrap(),
            fake,
            queue: VecDeque::new(),
            frames: Vec::new(),
            updates: Vec::new(),
            seq: 0,
            answered: 0,
        }
    }

    fn apply(&mut self, fx: Vec<Effect>) {
        for e in fx {
            if let Effect::Send(r) = e {
                self.queue.push_back(r);
            }
        }
    }

    /// Answers every command sent, as the link delivers replies.
    fn serve(&mut self) {
        while let Some(r) = self.queue.pop_front() {
            let text = self.fake.answer(&r.command);
            let outcome = match ServerMessage::decode(&text).unwrap() {
                ServerMessage::Reply(Reply::Error { error, .. }) => Err(error),
                ServerMessage::Reply(reply) => Ok(reply),
                other => panic!("not a reply: {other:?}"),
            };
            self.answered += 1;
            let fx = self.app.update(Msg::Link(LinkEvent::Reply {
                tag: r.tag,
                outcome,
            }));
            self.apply(fx);
        }
    }

    fn key(&mut self, code: KeyCode) {
        let fx = self
            .app
            .update(Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)));
        self.apply(fx);
        self.serve();
    }

    fn draw(&mut self) {
        let t = Instant::now();
        let app = &self.app;
        self.term.draw(|f| greytui::ui::draw(f, app)).unwrap();
        self.frames.push(t.elapsed());
        self.app.dirty = false;
    }

    /// One event as the daemon would send it: decoded and applied (timed together).
    fn event(&mut self, ev: &Event) {
        self.seq += 1;
        let text = serde_json::to_string(&EventEnvelope::new(ev, self.seq, ts(0))).unwrap();
        let t = Instant::now();
        let ServerMessage::Event(env) = ServerMessage::decode(&text).unwrap() else {
            unreachable!()
        };
        let fx = self.app.update(Msg::Link(LinkEvent::Event(env)));
        self.updates.push(t.elapsed());
        self.apply(fx);
        self.serve();
    }

    /// `secs` of live traffic: both event types every 10 ms, the clock every second, a frame
    /// when something changed and the last one is 33 ms old.
    fn live(&mut self, secs: u64) {
        let start = Instant::now();
        let (mut next_event, mut next_tick, mut last_frame) = (start, start, start - FRAME);
        let mut i = 0usize;
        while start.elapsed() < Duration::from_secs(secs) {
            let now = Instant::now();
            if now >= next_event {
                i += 1;
                let c = i % CONVERSATIONS;
                let container = CONTAINERS[c % CONTAINERS.len()];
                let model = MODELS[i % MODELS.len()];
                let micro = if i.is_multiple_of(5) { 0 } else { 21_000 };
                let mut llm = call(
                    container,
                    model,
                    40_000 + (i as u64 % 9) * 1_000,
                    800,
                    micro,
                );
                llm.id = i as u64;
                self.event(&Event::LlmCallNew(llm));
                let mut s = summary(c, 1 + (c % 40) as u32);
                s.last_activity = ts(1_795_000_000_000 + i as u64);
                self.event(&Event::ConversationUpdated(s.into()));
                next_event += EVENT_EVERY;
            }
            if now >= next_tick {
                let fx = self.app.update(Msg::Tick(SystemTime::now()));
                self.apply(fx);
                self.serve();
                next_tick += Duration::from_secs(1);
            }
            if self.app.dirty && now >= last_frame + FRAME {
                self.draw();
                last_frame = Instant::now();
            }
            let wake = next_event.min(next_tick).min(last_frame + FRAME);
            if let Some(d) = wake.checked_duration_since(Instant::now()) {
                std::thread::sleep(d);
            }
        }
    }
}

fn stats(name: &str, v: &mut [Duration]) {
    if v.is_empty() {
        println!("{name}: no samples");
        return;
    }
    v.sort();
    let pct = |p: f64| v[((v.len() as f64 - 1.0) * p) as usize];
    println!(
        "{name}: {} samples, p50 {:?}, p95 {:?}, p99 {:?}, max {:?}",
        v.len(),
        pct(0.5),
        pct(0.95),
        pct(0.99),
        v[v.len() - 1]
    );
}

fn main() {
    // `cargo bench` passes --bench; without it (`cargo test --benches`) this is a smoke run.
    let full = std::env::args().any(|a| a == "--bench");
    let secs: u64 = std::env::var("SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if full { 10 } else { 1 });
    if !full {
        println!("smoke run (no --bench): figures mean nothing");
    }
    let t = Instant::now();
    let fake = Fake::new();
    println!(
        "simulated daemon: {CONVERSATIONS} conversations, one of {LONG_TURNS} turns ({:.1} MiB as JSON), built in {:.1?}",
        fake.long.len() as f64 / 1_048_576.0,
        t.elapsed()
    );

    // (3) The long conversation's reply, decoded as the link does.
    let mut decode = Vec::new();
    for _ in 0..if full { 10 } else { 2 } {
        let t = Instant::now();
        let m = ServerMessage::decode(&fake.long).unwrap();
        decode.push(t.elapsed());
        drop(m);
    }
    stats("get_conversation reply of 1 000 turns decoded", &mut decode);

    // (1) Time to first frame.
    let start = Instant::now();
    let mut ui = Ui::new(fake);
    let fx = ui.app.update(Msg::Link(LinkEvent::Connected {
        server_version: "bench".into(),
        url: "ws://bench/ws".into(),
    }));
    ui.apply(fx);
    ui.serve();
    ui.draw();
    println!(
        "time to first frame (connect, {} replies, first frame): {:.2?}",
        ui.answered,
        start.elapsed()
    );

    // (2) Every view reachable with a number key: key → first frame, then live traffic.
    let mut seen = Vec::new();
    for k in '1'..='9' {
        ui.key(KeyCode::Char(k));
        let name = format!("{:?}", ui.app.view);
        if seen.contains(&name) {
            continue;
        }
        seen.push(name.clone());
        let mut views = vec![name.clone()];
        if name == "Conversations" {
            views.push("Conversations, the 1 000-turn conversation open".into());
        }
        for (n, label) in views.iter().enumerate() {
            let t = Instant::now();
            if n == 1 {
                ui.key(KeyCode::Enter);
            }
            ui.draw();
            println!("{label}: key → first frame {:.2?}", t.elapsed());
            ui.frames.clear();
            ui.updates.clear();
            let before = ui.answered;
            ui.live(secs);
            println!(
                "{label}: {} events in {secs} s, {} replies answered (usage_summary refreshes and others)",
                ui.updates.len(),
                ui.answered - before
            );
            stats(
                &format!("{label}: render while events arrive"),
                &mut ui.frames,
            );
            stats(
                &format!("{label}: one event decoded and applied"),
                &mut ui.updates,
            );
        }
    }
}
