//! Fleet benchmark (not a test): greytui over 10 local daemons.
//!
//! (1) Latency: the real links and `App` over 10 daemons (one link per host, as `tui.rs`
//! runs them), frames rendered into a sink at 120×40 with the dashboard's rule (events drained
//! in batches, a frame at most every 33 ms). A held CONNECT is sent to one daemon after the
//! other (about 20 a second); measured is the time from writing the request to the end of the
//! first frame whose pending list holds it: p50, p99, max.
//!
//! (2) Cost: the real `greytui` binary in tmux over the same 10 daemons (`--url`s with their
//! token files) while every daemon streams activity (allowed keep-alive requests to a local
//! origin, `RATE` per daemon per second, default 50): its CPU (utime + stime over 10 s, from
//! /proc) and its resident set (VmRSS at the end, VmHWM).
//!
//! Run: `cargo build --release -p greyproxyd -p greytui && cargo bench -p greytui --bench fleet`
//! (`GREYPROXYD=…` another daemon binary). Without `--bench` it is a quick smoke run.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use greyproxy_testkit::{Daemon, DaemonBuilder};
use greytui::app::{App, Effect, Msg, Tag};
use greytui::link::{self, LinkEvent, Request};
use ratatui::backend::CrosstermBackend;
use ratatui::layout::Rect;
use ratatui::{Terminal, TerminalOptions, Viewport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

const HOSTS: usize = 10;
const FRAME: Duration = Duration::from_millis(33);

fn target_bin(name: &str, env: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env) {
        return p.into();
    }
    let exe = std::env::current_exe().unwrap();
    let target = exe.parent().unwrap().parent().unwrap().parent().unwrap();
    for profile in ["release", "debug"] {
        let p = target.join(profile).join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("no {name} binary: run `cargo build --release -p greyproxyd -p greytui` first");
}

/// A CONNECT that the daemon holds (nothing allows `NAME.invalid`); the socket stays open.
async fn held_connect(proxy: SocketAddr, name: &str) -> tokio::net::TcpStream {
    let mut s = tokio::net::TcpStream::connect(proxy).await.unwrap();
    let req = format!("CONNECT {name}:443 HTTP/1.1\r\nHost: {name}:443\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    s
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn latency(daemons: &[Daemon], samples: usize) {
    let (tx, mut rx) = mpsc::channel::<(usize, LinkEvent<Tag>)>(4096);
    let mut senders: Vec<mpsc::Sender<Request<Tag>>> = Vec::new();
    for (i, d) in daemons.iter().enumerate() {
        let dir = d.state_dir().to_path_buf();
        let (req_tx, mut ev_rx, _task) = link::spawn(move || {
            greytui::paths::endpoint(None, None, Some(&dir), &|_| None)
                .map(|(ep, _)| ep)
                .map_err(|e| e.to_string())
        });
        senders.push(req_tx);
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Some(ev) = ev_rx.recv().await {
                if tx.send((i, ev)).await.is_err() {
                    return;
                }
            }
        });
    }
    let names: Vec<String> = (0..HOSTS).map(|i| format!("host{i}")).collect();
    let mut app = App::new(SystemTime::now(), (120, 40), false).with_hosts(&names);
    let opts = TerminalOptions {
        viewport: Viewport::Fixed(Rect::new(0, 0, 120, 40)),
    };
    let mut term = Terminal::with_options(CrosstermBackend::new(std::io::sink()), opts).unwrap();
    let apply = |fx: Vec<Effect>, senders: &[mpsc::Sender<Request<Tag>>]| {
        for e in fx {
            match e {
                Effect::SendTo(h, r) => senders[h].try_send(r).unwrap(),
                Effect::Send(r) => senders[0].try_send(r).unwrap(),
                _ => {}
            }
        }
    };
    // Wait until every host is connected and loaded.
    while app.hosts.iter().any(|h| h.version.is_none()) {
        let (h, ev) = rx.recv().await.unwrap();
        let fx = app.update(Msg::Host(h, ev));
        apply(fx, &senders);
    }
    let mut sent: Vec<(String, Instant)> = Vec::new();
    let mut seen: Vec<Duration> = Vec::new();
    let mut held = Vec::new();
    let mut last_frame = Instant::now();
    let mut next_send = Instant::now();
    let mut k = 0usize;
    while seen.len() < samples {
        if k < samples && Instant::now() >= next_send {
            let name = format!("fleet-{k}.invalid");
            let proxy = daemons[k % HOSTS].http.unwrap();
            sent.push((name.clone(), Instant::now()));
            held.push(held_connect(proxy, &name).await);
            k += 1;
            next_send += Duration::from_millis(50);
        }
        let deadline = (last_frame + FRAME).min(next_send);
        if let Ok(Some((h, ev))) = tokio::time::timeout_at(deadline.into(), rx.recv()).await {
            let fx = app.update(Msg::Host(h, ev));
            apply(fx, &senders);
            while let Ok((h, ev)) = rx.try_recv() {
                let fx = app.update(Msg::Host(h, ev));
                apply(fx, &senders);
            }
        }
        if app.dirty && Instant::now() >= last_frame + FRAME {
            term.draw(|f| greytui::ui::draw(f, &app)).unwrap();
            app.dirty = false;
            last_frame = Instant::now();
            sent.retain(|(name, t0)| {
                let shown = app.pending.iter().any(|p| &p.destination_host == name);
                if shown {
                    seen.push(last_frame - *t0);
                }
                !shown
            });
        }
    }
    seen.sort();
    println!(
        "pending request → row drawn, {samples} requests over {HOSTS} daemons: p50 {:.1?}  p99 {:.1?}  max {:.1?}",
        percentile(&seen, 0.5),
        percentile(&seen, 0.99),
        seen[seen.len() - 1]
    );
}

/// Allowed keep-alive GETs through `proxy` to `origin`, `rate` a second, until `stop`.
async fn stream(proxy: SocketAddr, origin: SocketAddr, rate: u64, stop: Instant) -> u64 {
    let mut s = tokio::net::TcpStream::connect(proxy).await.unwrap();
    let req = format!("GET http://{origin}/fleet HTTP/1.1\r\nHost: {origin}\r\n\r\n");
    let mut buf = vec![0u8; 4096];
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate.max(1)));
    let mut n = 0;
    while Instant::now() < stop {
        tick.tick().await;
        if s.write_all(req.as_bytes()).await.is_err() {
            break;
        }
        // The origin's answer is one short read.
        if s.read(&mut buf).await.unwrap_or(0) == 0 {
            break;
        }
        n += 1;
    }
    n
}

fn proc_field(pid: u32, file: &str, key: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

async fn cost(daemons: &[Daemon], secs: u64, rate: u64) {
    let gt = target_bin("greytui", "GREYTUI");
    let mut args = vec![gt.display().to_string()];
    for d in daemons {
        args.push(format!(
            "--url {} --token-file {}",
            d.ws_url(),
            d.state_dir().join("control.token").display()
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("tmux.sock").display().to_string();
    let tmux = |a: &[&str]| {
        Command::new("tmux")
            .env_remove("TMUX")
            .args(["-S", &sock])
            .args(a)
            .output()
            .unwrap()
    };
    let script = format!("{}; sleep 60", args.join(" "));
    tmux(&[
        "-f",
        "/dev/null",
        "new-session",
        "-d",
        "-s",
        "b",
        "-x",
        "120",
        "-y",
        "40",
        &script,
    ]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sh =
        String::from_utf8_lossy(&tmux(&["display-message", "-p", "-t", "b", "#{pane_pid}"]).stdout)
            .trim()
            .to_string();
    let children =
        std::fs::read_to_string(format!("/proc/{sh}/task/{sh}/children")).unwrap_or_default();
    let pid: u32 = children
        .split_whitespace()
        .next()
        .expect("greytui runs")
        .parse()
        .unwrap();
    let origin = greyproxy_testkit::origin::http_origin("127.0.0.1").await;
    let stop = Instant::now() + Duration::from_secs(secs);
    let t0 = (Instant::now(), cpu_ticks(pid));
    let loads: Vec<_> = daemons
        .iter()
        .map(|d| tokio::spawn(stream(d.http.unwrap(), origin, rate, stop)))
        .collect();
    let mut requests = 0;
    for l in loads {
        requests += l.await.unwrap();
    }
    let ticks = cpu_ticks(pid) - t0.1;
    let wall = t0.0.elapsed().as_secs_f64();
    let hz = 100.0; // USER_HZ on Linux
    println!(
        "greytui while {HOSTS} daemons stream {:.0} requests/s in all: CPU {:.1} % of a core, VmRSS {} KiB (peak {} KiB)",
        requests as f64 / wall,
        ticks as f64 / hz / wall * 100.0,
        proc_field(pid, "status", "VmRSS:"),
        proc_field(pid, "status", "VmHWM:")
    );
    tmux(&["kill-server"]);
}

#[tokio::main]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    if !full {
        println!("smoke run (no --bench): figures mean nothing");
    }
    let bin = target_bin("greyproxyd", "GREYPROXYD");
    println!("daemon: {}", bin.display());
    let mut daemons = Vec::new();
    for _ in 0..HOSTS {
        daemons.push(
            DaemonBuilder::new(&bin)
                .env("RUST_LOG", "warn")
                .start()
                .await,
        );
    }
    latency(&daemons, if full { 400 } else { 20 }).await;
    let rate = std::env::var("RATE")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(50);
    if Command::new("tmux").arg("-V").output().is_ok() {
        cost(&daemons, if full { 10 } else { 2 }, rate).await;
    } else {
        println!("no tmux: the CPU and RSS part did not run");
    }
}
