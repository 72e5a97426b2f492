//! The LLM layer's benchmark (docs/performance.md#llm, docs/bench-log/llm.md):
//! `cargo bench -p greyproxyd --bench llm`. Everything runs through the daemon's own
//! dissection task (`greyproxyd::dissect::bench::Pipeline`, the task driven on this thread)
//! over real redb files.
//!
//! 1. **Throughput** (`llm/pipeline.rs`): the golden fixtures of `tests/fixtures/llm/` replayed
//!    round after round (each round with fresh sessions and containers) through classification
//!    and dissection alone, then through the whole pipeline (client, thread, price, assembly,
//!    the call stored) with durable commits as live traffic makes them, and with the
//!    conversation commits non-durable as a rebuild makes them. Calls per second on one core,
//!    and CPU per call.
//! 2. **One long session** (`llm/pipeline.rs`): a synthetic Claude Code session
//!    (`llm/claude.rs`) whose every request carries the whole history; per-call time of the
//!    dissection (grows with the history: it reads the whole request) and of the rest
//!    (assembly and store: must not grow) at calls 10, 100, 1 000 and 10 000.
//! 3. **A daemon over 100 000 stored calls** (`llm/stored.rs`): a store filled through the
//!    pipeline (non-durable, on tmpfs) with synthetic sessions, then the real daemon started on
//!    it: RSS after start and after `list_conversations` and `usage_summary`, and how long those
//!    take.
//!
//! Knobs: `LLM_BENCH_ONLY` (`throughput`, `session`, `stored`, a comma list; default all),
//! `LLM_BENCH_SECS` (seconds per throughput row, default 5), `LLM_BENCH_SESSION` (calls in the
//! long session, default 10 000), `LLM_BENCH_STORED` (calls stored for section 3, default
//! 100 000), `LLM_BENCH_SESSION_CALLS` (calls per session of the store, default 100),
//! `BENCH_DAEMON` (another daemon binary). Without `--bench` (as `cargo test --benches` runs
//! it) it is a smoke run with tiny sizes.
#![allow(clippy::unwrap_used)]

#[path = "llm/claude.rs"]
mod claude;
#[path = "proxy/daemon_bin.rs"]
mod daemon_bin;
#[path = "llm/pipeline.rs"]
mod pipeline;
#[path = "llm/stored.rs"]
mod stored;
// Only some of its helpers are used here.
#[allow(dead_code)]
#[path = "proxy/sys.rs"]
mod sys;

/// What to run, from the environment.
pub struct Cfg {
    /// A full run (`--bench`), else a smoke run.
    pub full: bool,
    /// Seconds per throughput row.
    pub secs: f64,
    /// Calls in the long session.
    pub session: u64,
    /// Calls stored for the daemon section.
    pub stored: u64,
    /// Calls per session in the store.
    pub session_calls: u64,
    /// The daemon binary (section 3).
    pub daemon: String,
}

fn env_num(key: &str, default: f64) -> f64 {
    match std::env::var(key) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{key}={v:?} is not a number")),
        Err(_) => default,
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let only = std::env::var("LLM_BENCH_ONLY").unwrap_or_default();
    let sections: Vec<&str> = only
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let known = ["throughput", "session", "stored"];
    if let Some(bad) = sections.iter().find(|s| !known.contains(s)) {
        panic!("LLM_BENCH_ONLY={bad:?}: expected a comma list of {known:?}");
    }
    let on = |s: &str| sections.is_empty() || sections.contains(&s);
    let cfg = Cfg {
        full,
        secs: env_num("LLM_BENCH_SECS", if full { 5.0 } else { 0.2 }),
        session: env_num("LLM_BENCH_SESSION", if full { 10_000.0 } else { 120.0 }) as u64,
        stored: env_num("LLM_BENCH_STORED", if full { 100_000.0 } else { 600.0 }) as u64,
        session_calls: env_num("LLM_BENCH_SESSION_CALLS", if full { 100.0 } else { 30.0 }).max(1.0)
            as u64,
        daemon: if on("stored") {
            std::env::var("BENCH_DAEMON").unwrap_or_else(|_| daemon_bin::production_daemon(full))
        } else {
            String::new()
        },
    };
    println!("# greyproxyd LLM layer benchmark");
    println!();
    for (k, v) in sys::machine() {
        println!("- {k}: {v}");
    }
    println!("- load average at start: {}", load_average());
    if on("stored") {
        println!("- daemon: {}", cfg.daemon);
    }
    println!();
    if on("throughput") {
        pipeline::throughput(&cfg);
    }
    if on("session") {
        pipeline::session(&cfg);
    }
    if on("stored") {
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(stored::run(&cfg));
    }
    println!("- load average at the end: {}", load_average());
}

/// `/proc/loadavg`'s first three fields.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// CPU time this thread has used, ns (`CLOCK_THREAD_CPUTIME_ID`: exact, unlike the
/// per-tick counters of `/proc`).
pub fn thread_cpu_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}
