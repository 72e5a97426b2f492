//! Dashboard benchmark (not a test): a real greyproxyd holding 100 000 activity rows, the real
//! link and `App`, frames rendered through ratatui's crossterm backend into a sink at 120×40.
//!
//! Measures (1) time to first frame: from starting the link until the first frame that shows
//! the activity feed's first page; (2) per-frame render time while decisions arrive at about
//! 1 000/s (paced CONNECTs through the proxy), with the dashboard loop of `tui.rs`: events
//! drained in batches, a frame at most every 33 ms; (3) scrolling 20 000 rows down, pages
//! fetched from the daemon on demand.
//!
//! Run: `cargo build --release -p greyproxyd && cargo bench -p greytui --bench render`
//! (`GREYPROXYD=/path/to/greyproxyd` picks another daemon; `ROWS=20000` a smaller feed).
//! Without `--bench` (`cargo test -p greytui --benches`) it is a quick smoke run.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use greyproxy_testkit::DaemonBuilder;
use greytui::app::{App, Effect, Msg, Tag, View};
use greytui::link::{self, LinkEvent, Request};
use ratatui::backend::CrosstermBackend;
use ratatui::layout::Rect;
use ratatui::{Terminal, TerminalOptions, Viewport};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

const W: u16 = 120;
const H: u16 = 40;
const FRAME: Duration = Duration::from_millis(33);

fn daemon_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("GREYPROXYD") {
        return p.into();
    }
    let exe = std::env::current_exe().unwrap();
    let target = exe.parent().unwrap().parent().unwrap().parent().unwrap();
    for profile in ["release", "debug"] {
        let p = target.join(profile).join("greyproxyd");
        if p.is_file() {
            return p;
        }
    }
    panic!("no greyproxyd binary: run `cargo build --release -p greyproxyd` first");
}

/// One CONNECT through the proxy from source address 127.0.0.`src` as container `user`;
/// returns once the proxy answered (the decision is logged by then).
async fn connect_once(proxy: SocketAddr, src: u8, user: &str, authority: &str) {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    // Spreading sources over 127.0.0.0/8 keeps 100 000 short connections clear of the
    // ephemeral-port limit of one source address.
    sock.bind(SocketAddr::from(([127, 0, 0, src], 0))).unwrap();
    let Ok(mut s) = sock.connect(proxy).await else {
        return;
    };
    let auth = base64(&format!("{user}:x"));
    let req = format!(
        "CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\nProxy-Authorization: Basic {auth}\r\n\r\n"
    );
    // Bytes after the head: an allowed tunnel whose client stays silent is held open while
    // the daemon waits to see whether TLS follows (for interception); plain text settles it.
    let req = format!("{req}ping\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return;
    }
    let mut buf = [0u8; 256];
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
}

fn base64(s: &str) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The i-th generated decision: three blocked (deny rule on 127.0.0.3) for one allowed.
fn authority(i: u64, echo: SocketAddr) -> String {
    if i.is_multiple_of(4) {
        echo.to_string()
    } else {
        format!("127.0.0.3:{}", 1000 + i % 5000)
    }
}

async fn fill(proxy: SocketAddr, echo: SocketAddr, rows: u64) {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for t in 0..48u8 {
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= rows {
                    break;
                }
                let user = format!("agent-{}", i % 7);
                connect_once(proxy, 10 + t, &user, &authority(i, echo)).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

struct Ui {
    app: App,
    term: Terminal<CrosstermBackend<std::io::Sink>>,
    tx: mpsc::Sender<Request<Tag>>,
    rx: mpsc::Receiver<LinkEvent<Tag>>,
    frames: Vec<Duration>,
    events: u64,
}

impl Ui {
    /// A dashboard (link started now) finding the daemon through its state dir.
    fn start(dir: PathBuf) -> Ui {
        let (tx, rx, _task) = link::spawn(move || {
            greytui::paths::endpoint(None, None, Some(&dir), &|_| None)
                .map(|(ep, _)| ep)
                .map_err(|e| e.to_string())
        });
        let backend = CrosstermBackend::new(std::io::sink());
        let opts = TerminalOptions {
            viewport: Viewport::Fixed(Rect::new(0, 0, W, H)),
        };
        Ui {
            app: App::new(SystemTime::now(), (W, H), false),
            term: Terminal::with_options(backend, opts).unwrap(),
            tx,
            rx,
            frames: Vec::new(),
            events: 0,
        }
    }

    fn apply(&mut self, fx: Vec<Effect>) {
        for e in fx {
            if let Effect::Send(r) = e {
                self.tx.try_send(r).unwrap();
            }
        }
    }

    fn draw(&mut self) {
        let t = Instant::now();
        let app = &self.app;
        self.term.draw(|f| greytui::ui::draw(f, app)).unwrap();
        self.frames.push(t.elapsed());
        self.app.dirty = false;
    }

    /// Applies every link event that is ready (at most a batch), as the dashboard loop does.
    fn drain(&mut self) {
        for _ in 0..2048 {
            match self.rx.try_recv() {
                Ok(ev) => {
                    if matches!(ev, LinkEvent::Event(_)) {
                        self.events += 1;
                    }
                    let fx = self.app.update(Msg::Link(ev));
                    self.apply(fx);
                }
                Err(_) => break,
            }
        }
    }

    /// One loop turn: wait for an event or the frame deadline, then draw if something changed.
    async fn turn(&mut self, last: &mut Instant) {
        let deadline = *last + FRAME;
        if let Ok(Some(ev)) = tokio::time::timeout_at(deadline.into(), self.rx.recv()).await {
            if matches!(ev, LinkEvent::Event(_)) {
                self.events += 1;
            }
            let fx = self.app.update(Msg::Link(ev));
            self.apply(fx);
            self.drain();
        }
        if self.app.dirty && Instant::now() >= deadline {
            self.draw();
            *last = Instant::now();
        }
    }
}

fn stats(name: &str, v: &mut [Duration]) {
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

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // `cargo bench` passes --bench; without it (`cargo test --benches`) this is a quick smoke
    // run whose figures mean nothing.
    let full = std::env::args().any(|a| a == "--bench");
    let rows: u64 = std::env::var("ROWS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(if full { 100_000 } else { 2_000 });
    let live_secs: u64 = if full { 10 } else { 2 };
    if !full {
        println!("smoke run (no --bench): figures mean nothing");
    }
    let bin = daemon_bin();
    println!("daemon: {}", bin.display());
    let d = DaemonBuilder::new(&bin).start().await;
    let proxy = d.http.unwrap();
    // Load generator and echo origin run on their own runtime thread, so that the measured
    // loop below neither slows them nor is slowed by them (the dashboard is a separate
    // process in real life).
    let load_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let echo = load_rt
        .spawn(greyproxy_testkit::origin::echo_origin("127.0.0.1"))
        .await
        .unwrap();
    let mut admin = d.client().await;
    let r = admin
        .cmd(json!({"command":"create_rule","container_pattern":"*","destination_pattern":"127.0.0.3","action":"deny"}))
        .await;
    assert_eq!(r["type"], "command_success", "{r}");
    admin.close().await;

    let t = Instant::now();
    load_rt.spawn(fill(proxy, echo, rows)).await.unwrap();
    println!("fill connections done in {:.1?}", t.elapsed());
    // A fresh control client, filtered to an event type that never comes, for the row count
    // (an idle client would have been disconnected for not reading the fill's events).
    let mut ws = d.client().await;
    ws.cmd(json!({"command":"subscribe","event_type":"maintenance.progress"}))
        .await;
    let total = loop {
        let page = ws.query(json!({"command":"list_activity","limit":1})).await;
        let total = page["total"].as_u64().unwrap();
        if total >= rows || t.elapsed() > Duration::from_secs(600) {
            break total;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!("filled {total} activity rows in {:.1?}", t.elapsed());

    // (0) A new held request: from the client's CONNECT to the frame showing its row, with
    // the 100 000-row feed in the daemon; then `d` dismisses it.
    let dir = d.state_dir().to_path_buf();
    let mut ui = Ui::start(dir.clone());
    let mut last = Instant::now();
    while !ui.app.claimed || ui.app.activity.is_loading() {
        ui.turn(&mut last).await;
    }
    let mut seen = Vec::new();
    for i in 0..20u16 {
        let t = Instant::now();
        let dest = format!("127.0.0.2:{}", 2000 + i);
        let held = load_rt.spawn(async move { connect_once(proxy, 200, "waiting", &dest).await });
        while ui.app.pending.is_empty() {
            ui.turn(&mut last).await;
        }
        ui.draw();
        seen.push(t.elapsed());
        let fx = ui.app.update(Msg::Key(KeyEvent::new(
            KeyCode::Char('d'),
            KeyModifiers::NONE,
        )));
        ui.apply(fx);
        while !ui.app.pending.is_empty() {
            ui.turn(&mut last).await;
        }
        held.await.unwrap();
    }
    stats("held request → its row drawn", &mut seen);
    drop(ui);

    // (1) Time to first frame.
    let start = Instant::now();
    let mut ui = Ui::start(dir);
    ui.app.view = View::Activity;
    ui.draw();
    let first_blank = start.elapsed();
    let mut last = Instant::now();
    while ui.app.activity.is_loading() || ui.app.activity.items.is_empty() {
        ui.turn(&mut last).await;
    }
    ui.draw();
    let first_frame = start.elapsed();
    println!(
        "time to first frame: {first_blank:.2?} (empty), {first_frame:.1?} with the first page of {} rows (total {})",
        ui.app.activity.items.len(),
        ui.app.activity.total
    );

    // (1b) A filter is applied by the daemon over the whole feed: time to its first frame.
    let t = Instant::now();
    let fx = ui.app.update(Msg::Key(KeyEvent::new(
        KeyCode::Char('/'),
        KeyModifiers::NONE,
    )));
    ui.apply(fx);
    for c in "agent-3\t\t ".chars() {
        let code = match c {
            '\t' => KeyCode::Tab,
            c => KeyCode::Char(c),
        };
        let fx = ui
            .app
            .update(Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)));
        ui.apply(fx);
    }
    let fx = ui
        .app
        .update(Msg::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)));
    ui.apply(fx);
    let mut last = Instant::now();
    while ui.app.activity.is_loading() {
        ui.turn(&mut last).await;
    }
    ui.draw();
    println!(
        "filter container~agent-3 result=allowed: first frame after {:.1?} ({} matching rows)",
        t.elapsed(),
        ui.app.activity.total
    );
    // Back to the unfiltered feed.
    ui.app.update(Msg::Key(KeyEvent::new(
        KeyCode::Char('/'),
        KeyModifiers::NONE,
    )));
    for code in [
        KeyCode::Char('u'),
        KeyCode::Tab,
        KeyCode::Tab,
        KeyCode::Left,
        KeyCode::Enter,
    ] {
        let mods = if code == KeyCode::Char('u') {
            KeyModifiers::CONTROL
        } else {
            KeyModifiers::NONE
        };
        let fx = ui.app.update(Msg::Key(KeyEvent::new(code, mods)));
        ui.apply(fx);
    }
    while ui.app.activity.is_loading() {
        ui.turn(&mut last).await;
    }
    assert!(
        !ui.app.activity.filter.is_active(),
        "{:?}",
        ui.app.activity.filter
    );

    // (2) Frames while decisions arrive at 1 000/s for 10 s.
    ui.frames.clear();
    ui.events = 0;
    let load = load_rt.spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        let mut set = tokio::task::JoinSet::new();
        for i in 0..live_secs * 1000 {
            tick.tick().await;
            let a = authority(i, echo);
            set.spawn(async move {
                connect_once(proxy, 100 + (i % 100) as u8, "live", &a).await;
            });
        }
        while set.join_next().await.is_some() {}
    });
    let t = Instant::now();
    let mut last = Instant::now();
    while t.elapsed() < Duration::from_secs(live_secs + 1) {
        ui.turn(&mut last).await;
    }
    load.await.unwrap();
    let rate = ui.events as f64 / t.elapsed().as_secs_f64();
    println!(
        "live: {} events applied in {:.1?} ({rate:.0}/s), {} rows in the window",
        ui.events,
        t.elapsed(),
        ui.app.activity.items.len()
    );
    stats("render while events arrive at ~1000/s", &mut ui.frames);

    // (3) Scroll up to 20 000 rows down, one half page per frame, pages fetched on demand.
    ui.app.update(Msg::Key(KeyEvent::new(
        KeyCode::Char('g'),
        KeyModifiers::NONE,
    )));
    ui.frames.clear();
    let t = Instant::now();
    let target = (rows as usize / 2).min(20_000);
    // The selection index is bounded by the window (rows far above it are dropped), so the
    // distance is counted in key presses of half a page each.
    let half = (ui.app.list_rows() / 2).max(1);
    let mut scrolled = 0;
    while scrolled < target {
        scrolled += half;
        let fx = ui.app.update(Msg::Key(KeyEvent::new(
            KeyCode::PageDown,
            KeyModifiers::NONE,
        )));
        ui.apply(fx);
        ui.drain();
        if !ui.app.activity.loading_more.is_empty() {
            // Wait for the page like the operator would (the loop keeps drawing meanwhile).
            while !ui.app.activity.loading_more.is_empty() {
                let mut l = Instant::now() - FRAME;
                ui.turn(&mut l).await;
            }
        }
        ui.draw();
        if t.elapsed() > Duration::from_secs(120)
            || ui.app.activity.nav.selected + 1 >= ui.app.activity.items.len()
                && ui.app.activity.next.is_empty()
        {
            let a = &ui.app.activity;
            panic!(
                "scrolling stalled at row {} of {} loaded (cursor {:?}, last row {:?}, loading {:?} {:?}, resyncs {}, msg {:?})",
                a.nav.selected,
                a.items.len(),
                a.next,
                a.items.back().map(|i| greytui::app::lists::item_key(i)),
                a.loading,
                a.loading_more,
                ui.app.resyncs,
                ui.app.message
            );
        }
    }
    println!(
        "scrolled {scrolled} rows in {:.2?} ({} rows in the window)",
        t.elapsed(),
        ui.app.activity.items.len()
    );
    stats("render while scrolling", &mut ui.frames);
    load_rt.shutdown_background();
}
