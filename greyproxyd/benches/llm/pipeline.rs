//! Sections 1 and 2 of the LLM benchmark: the golden fixtures through the pipeline (calls per
//! second on one core), and one long synthetic Claude Code session (per-call cost at call 10
//! and at call 10 000).

use std::path::Path;
use std::time::Instant;

use greyproxy_protocol::{HeaderMapJson, Transaction};
use greyproxyd::dissect::bench::{Pipeline, Prepared};
use greyproxyd::endpoints::LlmRule;
use greyproxyd::time::rfc3339_ms;
use serde_json::{Value, json};

use crate::claude::{self, Session};
use crate::sys::{pct, sorted};
use crate::{Cfg, thread_cpu_ns};

/// One golden fixture as the store hands it to the dissection task.
pub struct Fixture {
    pub name: String,
    pub tx: Transaction,
}

/// Every fixture of `tests/fixtures/llm/`, in name order.
pub fn fixtures() -> Vec<Fixture> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/llm");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let v: Value =
                serde_json::from_str(&std::fs::read_to_string(format!("{dir}/{n}")).unwrap())
                    .unwrap();
            let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
            let u = |k: &str| v.get(k).and_then(Value::as_u64);
            let tx = Transaction {
                container_name: s("container_name").unwrap_or_default(),
                url: s("url").unwrap(),
                method: s("method").unwrap_or_else(|| "POST".into()),
                destination_host: s("destination_host").unwrap(),
                destination_port: u("destination_port").unwrap_or(443) as u16,
                request_headers: s("request_headers")
                    .map(|h| serde_json::from_str::<HeaderMapJson>(&h).unwrap()),
                request_content_type: Some("application/json".into()),
                request_body: s("request_body"),
                request_body_encoding: Some("text".into()),
                response_body: s("response_body"),
                response_body_encoding: Some("text".into()),
                response_content_type: s("response_content_type"),
                status_code: u("status_code").map(|c| c as u16).or(Some(200)),
                duration_ms: u("duration_ms").or(Some(2_000)),
                ..Transaction::default()
            };
            Fixture {
                name: n.trim_end_matches(".json").to_owned(),
                tx,
            }
        })
        .collect()
}

/// The rule a user would configure for the fixture on a custom host (LiteLLM).
pub fn rules() -> Vec<LlmRule> {
    vec![
        serde_json::from_value(json!({"host":"litellm-notrack.app.monadical.io",
            "path":"/chat/completions","decoder":"openai-chat"}))
        .unwrap(),
    ]
}

/// Replaces the last 8 characters of every session key in `body` (Claude Code's
/// `_session_<uuid>`, opencode's `ses_…` cache keys) with `round` in hex, so that each round
/// makes new conversations.
fn vary_sessions(body: &str, round: u64) -> String {
    let tag = format!("{round:08x}");
    let mut out = body.to_owned();
    for (marker, len) in [("_session_", 36), ("\"ses_", 26)] {
        let mut from = 0;
        while let Some(i) = out[from..].find(marker) {
            let id = from + i + marker.len();
            let end = id + len;
            let is_id = out
                .get(id..end)
                .is_some_and(|s| s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
            if is_id {
                out.replace_range(end - 8..end, &tag);
            }
            from = id;
        }
    }
    out
}

/// The fixtures of round `round`: fresh ids, times, containers and sessions.
fn round_of(fx: &[Fixture], round: u64, next_id: &mut u64, clock_ms: &mut u64) -> Vec<Transaction> {
    fx.iter()
        .map(|f| {
            let mut t = f.tx.clone();
            *next_id += 1;
            *clock_ms += 1_500;
            t.id = *next_id;
            t.timestamp = rfc3339_ms(*clock_ms - t.duration_ms.unwrap_or(0));
            t.container_name = format!("{}-{round}", t.container_name);
            t.request_body = t.request_body.map(|b| vary_sessions(&b, round));
            t
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    DissectOnly,
    Durable,
    Rebuild,
}

/// Section 1.
pub fn throughput(cfg: &Cfg) {
    let fx = fixtures();
    eprintln!(
        "[llm 1/3] throughput: {} fixtures, {} s per row…",
        fx.len(),
        cfg.secs
    );
    let mut per_fixture = vec![Vec::new(); fx.len()];
    let mut rows = Vec::new();
    for mode in [Mode::DissectOnly, Mode::Durable, Mode::Rebuild] {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Pipeline::open(&dir.path().join("greyproxy.redb"), rules()).unwrap();
        p.set_durable(mode != Mode::Rebuild);
        let (mut calls, mut wall, mut cpu, mut conversations) = (0u64, 0f64, 0u64, 0u64);
        let (mut next_id, mut clock) = (0u64, greyproxyd::time::now_ms() - 86_400_000);
        let mut round = 0;
        while wall < cfg.secs || round == 0 {
            round += 1;
            let txs = round_of(&fx, round, &mut next_id, &mut clock);
            let at: Vec<u64> = txs
                .iter()
                .map(|t| greyproxyd::time::parse_timestamp_ms(&t.timestamp).unwrap())
                .map(|s| s + 1)
                .collect();
            let (c0, t0) = (thread_cpu_ns(), Instant::now());
            for (i, (t, at)) in txs.into_iter().zip(at).enumerate() {
                let one = Instant::now();
                match mode {
                    Mode::DissectOnly => {
                        let prepared: Option<Prepared> = p.dissect(t, at);
                        assert!(prepared.is_some(), "{} not read as a call", fx[i].name);
                    }
                    _ => conversations += u64::from(p.call(t, at).is_some()),
                }
                if mode == Mode::DissectOnly {
                    per_fixture[i].push(one.elapsed().as_secs_f64() * 1e6);
                }
                calls += 1;
            }
            wall += t0.elapsed().as_secs_f64();
            cpu += thread_cpu_ns() - c0;
        }
        if mode != Mode::DissectOnly {
            assert_eq!(p.recorded(), calls, "every fixture makes one call");
        }
        let size = std::fs::metadata(dir.path().join("greyproxy.redb")).map_or(0, |m| m.len());
        rows.push((mode, calls, wall, cpu, conversations, size));
    }
    println!(
        "## Dissection and assembly throughput (the {} golden fixtures replayed, one core)",
        fx.len()
    );
    println!();
    println!(
        "| pipeline | calls | calls/s | CPU µs/call | wall µs/call | calls in a conversation | store file |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (mode, calls, wall, cpu, conv, size) in rows {
        let name = match mode {
            Mode::DissectOnly => "classify + dissect only",
            Mode::Durable => "whole pipeline, durable commits (live traffic)",
            Mode::Rebuild => "whole pipeline, conversation commits non-durable (a rebuild)",
        };
        let conv = if mode == Mode::DissectOnly {
            "—".to_owned()
        } else {
            format!("{:.0} %", 100.0 * conv as f64 / calls as f64)
        };
        let size = if mode == Mode::DissectOnly {
            "—".to_owned()
        } else {
            format!("{:.1} MiB", size as f64 / (1 << 20) as f64)
        };
        println!(
            "| {name} | {calls} | {:.0} | {:.0} | {:.0} | {conv} | {size} |",
            calls as f64 / wall,
            cpu as f64 / 1e3 / calls as f64,
            wall * 1e6 / calls as f64,
        );
    }
    println!();
    println!("Dissection alone, per fixture (median over the rounds):");
    println!();
    println!("| fixture | request KiB | response KiB | µs per call |");
    println!("|---|---:|---:|---:|");
    for (f, times) in fx.iter().zip(&per_fixture) {
        let kib = |b: &Option<String>| b.as_ref().map_or(0.0, |b| b.len() as f64 / 1024.0);
        println!(
            "| {} | {:.1} | {:.1} | {:.0} |",
            f.name,
            kib(&f.tx.request_body),
            kib(&f.tx.response_body),
            pct(&sorted(times), 50.0)
        );
    }
    println!();
}

/// One call of the long session, as timed.
#[derive(Default, Clone, Copy)]
pub struct Timed {
    pub request_bytes: usize,
    pub dissect_us: f64,
    pub drop_us: f64,
    pub record_us: f64,
    pub record_cpu_us: Option<f64>,
}

/// A transaction of the synthetic session: call `k`, body and answer given.
fn session_tx(
    headers: &HeaderMapJson,
    k: u64,
    body: String,
    answer: String,
    end_ms: u64,
) -> Transaction {
    let duration = 3_000;
    Transaction {
        id: k,
        timestamp: rfc3339_ms(end_ms - duration),
        container_name: "claude".into(),
        destination_host: "api.anthropic.com".into(),
        destination_port: 443,
        method: "POST".into(),
        url: "https://api.anthropic.com/v1/messages?beta=true".into(),
        request_headers: Some(headers.clone()),
        request_content_type: Some("application/json".into()),
        request_body_size: Some(body.len() as u64),
        request_body: Some(body),
        request_body_encoding: Some("text".into()),
        status_code: Some(200),
        response_content_type: Some("text/event-stream; charset=utf-8".into()),
        response_body_size: Some(answer.len() as u64),
        response_timeline: vec![[400, 900], [answer.len() as u64, duration]],
        response_body: Some(answer),
        response_body_encoding: Some("text".into()),
        duration_ms: Some(duration),
        ..Transaction::default()
    }
}

/// The fixture's headers as the store keeps them.
pub fn header_map(fixture: &Value) -> HeaderMapJson {
    let mut m = HeaderMapJson::new();
    for (k, v) in claude::headers(fixture) {
        m.entry(k).or_default().push(v);
    }
    m
}

/// Drives `calls` calls of session `n` through `p`, from `start_ms`, one every `gap_ms`;
/// `timed(k)` says which calls to time with their CPU. Returns the per-call figures.
#[allow(clippy::too_many_arguments)] // a benchmark driver: every knob is one run parameter
pub fn drive_session(
    p: &mut Pipeline,
    fixture: &Value,
    n: u64,
    calls: u64,
    start_ms: u64,
    gap_ms: u64,
    container: &str,
    timed: impl Fn(u64) -> bool,
) -> Vec<Timed> {
    let headers = header_map(fixture);
    let mut s = Session::new(fixture, n);
    let mut out = Vec::with_capacity(calls as usize);
    for k in 1..=calls {
        let body = s.request();
        let request_bytes = body.len();
        let mut t = session_tx(&headers, k, body, s.response(k), start_ms + k * gap_ms);
        t.container_name = container.to_owned();
        let at = start_ms + k * gap_ms;
        let with_cpu = timed(k);
        let t0 = Instant::now();
        let prepared = p.dissect(t, at).expect("read as an Anthropic call");
        let t1 = Instant::now();
        let c1 = with_cpu.then(thread_cpu_ns);
        let conv = p.record(&prepared);
        let c2 = with_cpu.then(thread_cpu_ns);
        let t2 = Instant::now();
        drop(prepared);
        let t3 = Instant::now();
        debug_assert!(conv.is_some());
        out.push(Timed {
            request_bytes,
            dissect_us: (t1 - t0).as_secs_f64() * 1e6,
            drop_us: (t3 - t2).as_secs_f64() * 1e6,
            record_us: (t2 - t1).as_secs_f64() * 1e6,
            record_cpu_us: c1.zip(c2).map(|(a, b)| (b - a) as f64 / 1e3),
        });
        s.answered(k);
    }
    out
}

/// The checkpoints reported: 10, 100, 1 000, 10 000… up to `n`, and `n`.
fn checkpoints(n: u64) -> Vec<u64> {
    let mut c: Vec<u64> = std::iter::successors(Some(10u64), |c| Some(c * 10))
        .take_while(|c| *c <= n)
        .collect();
    if c.last() != Some(&n) {
        c.push(n);
    }
    c
}

/// Window of calls reported at a checkpoint: the 10 calls ending there.
const WINDOW: u64 = 10;

/// Section 2.
pub fn session(cfg: &Cfg) {
    let n = cfg.session.max(WINDOW);
    eprintln!("[llm 2/3] one session of {n} calls, each carrying the whole history…");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("greyproxy.redb");
    let mut p = Pipeline::open(&path, rules()).unwrap();
    let fixture = claude::fixture();
    let cps = checkpoints(n);
    let timed = |k: u64| cps.iter().any(|&c| k + WINDOW > c && k <= c);
    let start = greyproxyd::time::now_ms() - n * 10_000;
    let t0 = Instant::now();
    let calls = drive_session(&mut p, &fixture, 1, n, start, 10_000, "claude", timed);
    let total = t0.elapsed().as_secs_f64();
    let sum = |f: fn(&Timed) -> f64| calls.iter().map(f).sum::<f64>() / 1e6;
    report_session(
        &calls,
        &cps,
        total,
        sum(|t| t.dissect_us),
        sum(|t| t.record_us),
        &path,
    );
}

fn report_session(
    calls: &[Timed],
    cps: &[u64],
    total: f64,
    dissect: f64,
    record: f64,
    path: &Path,
) {
    println!(
        "## One Claude Code session, every request carrying the whole history (durable commits)"
    );
    println!();
    println!(
        "Median of the {WINDOW} calls ending at each checkpoint. \"dissect\" reads the request (the whole history) and the answer; \"free\" drops what it read; \"assemble + store\" is everything between: client, thread, price, assembly and its commit, the call row and its commit."
    );
    println!();
    println!(
        "| call | request KiB | dissect µs | free µs | assemble + store µs (wall) | assemble + store CPU µs |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for &c in cps {
        let w = &calls[(c - WINDOW) as usize..c as usize];
        let med =
            |f: &dyn Fn(&Timed) -> f64| pct(&sorted(&w.iter().map(f).collect::<Vec<_>>()), 50.0);
        println!(
            "| {c} | {:.1} | {:.0} | {:.0} | {:.0} | {:.0} |",
            med(&|t| t.request_bytes as f64) / 1024.0,
            med(&|t| t.dissect_us),
            med(&|t| t.drop_us),
            med(&|t| t.record_us),
            med(&|t| t.record_cpu_us.unwrap_or(0.0)),
        );
    }
    let size = std::fs::metadata(path).map_or(0, |m| m.len());
    println!();
    println!(
        "{} calls in {total:.1} s: {dissect:.1} s dissecting (and freeing), {record:.1} s assembling and storing; store file {:.1} MiB.",
        calls.len(),
        size as f64 / (1 << 20) as f64
    );
    println!();
}
