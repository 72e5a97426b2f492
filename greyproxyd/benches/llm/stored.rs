//! Section 3 of the LLM benchmark: the daemon over a store holding 100 000 calls. The store is
//! filled in this process through the pipeline (the daemon's dissection task driven on this
//! thread, conversation commits non-durable as a rebuild makes them) with synthetic Claude Code
//! sessions spread over the last 30 days, on tmpfs so that the call rows' fsyncs cost nothing;
//! then the release daemon is started on that state dir and asked over its control WebSocket.

use std::time::{Duration, Instant};

use greyproxy_testkit::DaemonBuilder;
use greyproxyd::daemon::STORE_FILE;
use greyproxyd::dissect::bench::Pipeline;
use serde_json::{Value, json};

use crate::claude;
use crate::pipeline::{drive_session, rules};
use crate::sys::{daemon_pid, mib, rss_kib};
use crate::{Cfg, load_average};

/// Containers the sessions are spread over.
const CONTAINERS: u64 = 8;

/// Section 3.
pub async fn run(cfg: &Cfg) {
    let per = cfg.session_calls;
    let sessions = cfg.stored.div_ceil(per);
    let total = sessions * per;
    eprintln!("[llm 3/3] filling a store with {total} calls ({sessions} sessions of {per})…");
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        tempfile::tempdir_in("/dev/shm").unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    let fill = Instant::now();
    {
        let mut p = Pipeline::open(&dir.path().join(STORE_FILE), rules()).unwrap();
        p.set_durable(false);
        let fixture = claude::fixture();
        let span = 30 * 86_400_000u64;
        let start = greyproxyd::time::now_ms() - span;
        let gap = span / total;
        for s in 0..sessions {
            let container = format!("agent-{}", s % CONTAINERS);
            let from = start + s * per * gap;
            drive_session(&mut p, &fixture, s + 1, per, from, gap, &container, |_| {
                false
            });
        }
        assert_eq!(p.recorded(), total);
    }
    let fill_secs = fill.elapsed().as_secs_f64();
    let size = std::fs::metadata(dir.path().join(STORE_FILE)).map_or(0, |m| m.len());
    eprintln!("          filled in {fill_secs:.1} s; starting the daemon…");

    let d = DaemonBuilder::new(&cfg.daemon)
        .env("RUST_LOG", "info")
        .start_in(dir)
        .await;
    let pid = daemon_pid(d.state_dir());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (start_rss, _) = rss_kib(pid);
    let mut ws = d.client().await;
    let mut rows: Vec<(String, f64, String, u64)> = Vec::new();
    let asks: [(&str, Value); 6] = [
        (
            "list_conversations (default page: 100)",
            json!({"command":"list_conversations"}),
        ),
        (
            "list_conversations, limit 1000",
            json!({"command":"list_conversations","limit":1000}),
        ),
        (
            "usage_summary (by container, everything)",
            json!({"command":"usage_summary"}),
        ),
        (
            "usage_summary by conversation",
            json!({"command":"usage_summary","group_by":"conversation"}),
        ),
        (
            "usage_summary by day, last 7 days",
            json!({"command":"usage_summary","group_by":"day","since":"7d"}),
        ),
        (
            "usage_summary again (warm)",
            json!({"command":"usage_summary"}),
        ),
    ];
    let mut total_calls = None;
    for (name, cmd) in asks {
        let t = Instant::now();
        let data = ws.query(cmd).await;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        let what = if let Some(c) = data["conversations"].as_array() {
            format!("{} conversations", c.len())
        } else {
            let calls = data["total"]["calls"].as_u64().unwrap_or(0);
            if name.starts_with("usage_summary (by container") {
                total_calls = Some(calls);
            }
            format!(
                "{} rows, {calls} calls",
                data["rows"].as_array().map_or(0, Vec::len)
            )
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        rows.push((name.to_owned(), ms, what, rss_kib(pid).0));
    }
    let (end_rss, peak) = rss_kib(pid);
    let _ = d.stop().await;

    println!("## The daemon over {total} stored calls");
    println!();
    println!(
        "Store filled in-process through the pipeline ({sessions} Claude Code sessions of {per} calls, {CONTAINERS} containers, over 30 days; {fill_secs:.0} s), store file {:.0} MiB on tmpfs; then the release daemon started on it. Load average now: {}.",
        size as f64 / (1 << 20) as f64,
        load_average()
    );
    println!();
    println!("| step | took | answer | daemon RSS after |");
    println!("|---|---:|---|---:|");
    println!("| started, 1 s after | — | — | {} |", mib(start_rss));
    for (name, ms, what, rss) in rows {
        println!("| {name} | {ms:.0} ms | {what} | {} |", mib(rss));
    }
    println!("| peak (VmHWM) | — | — | {} |", mib(peak));
    println!();
    if total_calls != Some(total) {
        println!("WARNING: usage_summary counted {total_calls:?} calls, expected {total}");
        println!();
    }
    let _ = end_rss;
}
