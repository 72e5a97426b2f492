//! The soak run (`BENCH_ONLY=soak`): mixed traffic (`soak_target.rs`) against one intercepting
//! daemon for `BENCH_SOAK_SECS` (default 1800 with `--bench`, 120 otherwise), sampling its RSS,
//! open file descriptors, threads and runtime tasks every `BENCH_SOAK_SAMPLE` seconds (default
//! 10), then its idle RSS for `BENCH_SOAK_IDLE` seconds (default 60) after the traffic stops.
//! Passes when RSS stays flat after warm-up (capture caps bound the store; no queue grows),
//! stays ≤ 64 MiB, returns to ≤ 30 MiB idle within the idle window, and the descriptors and
//! tasks return to their idle baseline.
//!
//! `BENCH_SOAK_COMPARE` runs other builds side by side in the same soak, each with the same
//! traffic of its own: a comma list of `glibc`, `jemalloc`, `mimalloc` (the daemon built by the
//! bench with that allocator, `daemon_bin::variant`) or `label=/path/to/greyproxyd`; `none` for
//! none. Default: `glibc` with `--bench` (RSS with and without the shipped allocator in one
//! run), none otherwise.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::soak_target::{Origins, Sample, Target, fds, tasks_alone};
use crate::sys::{mib, rss_kib};

/// Soak settings from the environment.
pub struct SoakCfg {
    duration: Duration,
    sample: Duration,
    idle: Duration,
    /// (label, binary), the measured daemon first.
    daemons: Vec<(String, String)>,
}

/// The soak's bounds (docs/performance.md#targets).
const PLATEAU_MAX_KIB: u64 = 64 * 1024;
const IDLE_MAX_KIB: u64 = 30 * 1024;

impl SoakCfg {
    /// `BENCH_SOAK_SECS`, `BENCH_SOAK_SAMPLE`, `BENCH_SOAK_IDLE`, `BENCH_SOAK_COMPARE`.
    pub fn from_env(full: bool, daemon: &str) -> SoakCfg {
        let secs = |k: &str, d: u64| {
            std::env::var(k)
                .ok()
                .map(|v| {
                    v.trim()
                        .parse::<u64>()
                        .unwrap_or_else(|_| panic!("{k}={v:?}"))
                })
                .unwrap_or(d)
        };
        let compare = std::env::var("BENCH_SOAK_COMPARE")
            .unwrap_or_else(|_| if full { "glibc" } else { "none" }.into());
        let mut daemons = vec![("greyproxyd".to_string(), daemon.to_string())];
        for item in compare.split(',').map(str::trim) {
            match item {
                "" | "none" => {}
                "glibc" | "jemalloc" | "mimalloc" => {
                    daemons.push((format!("{item} build"), crate::daemon_bin::variant(item)))
                }
                other => {
                    let (label, path) = other.split_once('=').unwrap_or_else(|| {
                        panic!("BENCH_SOAK_COMPARE={compare:?}: expected glibc, jemalloc, mimalloc or label=/path")
                    });
                    daemons.push((label.to_string(), path.to_string()));
                }
            }
        }
        SoakCfg {
            duration: Duration::from_secs(secs("BENCH_SOAK_SECS", if full { 1800 } else { 120 })),
            sample: Duration::from_secs(secs("BENCH_SOAK_SAMPLE", 10).max(1)),
            idle: Duration::from_secs(secs("BENCH_SOAK_IDLE", 60)),
            daemons,
        }
    }
}

/// Runs the soak and prints its tables and verdicts.
pub async fn run(cfg: &SoakCfg) {
    eprintln!(
        "[soak] {} s of mixed traffic against {}…",
        cfg.duration.as_secs(),
        cfg.daemons
            .iter()
            .map(|(l, _)| l.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let origins = Origins::start().await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut targets = Vec::new();
    for (label, bin) in &cfg.daemons {
        targets.push(Target::start(label, bin, &origins, &stop).await);
    }
    let started = Instant::now();
    let (mut next_sample, mut next_hold, mut next_list) = (started, started, started);
    while started.elapsed() < cfg.duration {
        let now = Instant::now();
        if now >= next_sample {
            for t in &mut targets {
                t.sample(started.elapsed()).await;
            }
            next_sample += cfg.sample;
        }
        if now >= next_hold {
            for t in &mut targets {
                t.hold().await;
            }
            next_hold += Duration::from_secs(2);
        }
        if now >= next_list {
            for t in &mut targets {
                t.list().await;
            }
            next_list += Duration::from_secs(5);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in &mut targets {
        t.quiesce().await;
    }
    // Idle RSS after the traffic, every second for `cfg.idle` (at least the 3 s the
    // descriptor and task checks wait).
    let stopped = Instant::now();
    let idle_secs = cfg.idle.as_secs().max(3);
    let mut idle_rss: Vec<Vec<u64>> = vec![Vec::new(); targets.len()];
    let mut ends = Vec::new();
    for s in 1..=idle_secs {
        tokio::time::sleep_until((stopped + Duration::from_secs(s)).into()).await;
        for (t, v) in targets.iter().zip(&mut idle_rss) {
            v.push(rss_kib(t.pid).0);
        }
        if s == 3 {
            for t in &targets {
                ends.push((fds(t.pid), tasks_alone(&t.d).await, rss_kib(t.pid)));
            }
        }
    }
    rss_table(cfg, &targets);
    idle_table(&targets, &idle_rss);
    for ((t, end), idle) in targets.iter().zip(&ends).zip(&idle_rss) {
        report(cfg, t, *end, idle);
    }
    for t in targets {
        let _ = t.d.stop().await;
    }
}

/// RSS over time, one column per daemon (a row per sample, at most about 15).
fn rss_table(cfg: &SoakCfg, targets: &[Target]) {
    println!(
        "## Soak: RSS over time ({} s of mixed traffic per daemon, all at once, sampled every {} s)",
        cfg.duration.as_secs(),
        cfg.sample.as_secs()
    );
    println!();
    let head: Vec<&str> = targets.iter().map(|t| t.label.as_str()).collect();
    println!("| t (s) | {} |", head.join(" | "));
    println!("|---:|{}", "---:|".repeat(targets.len()));
    let n = targets.iter().map(|t| t.samples.len()).min().unwrap_or(0);
    let step = (n / 15).max(1);
    for i in (0..n).filter(|i| i % step == 0 || i + 1 == n) {
        let cells: Vec<String> = targets.iter().map(|t| mib(t.samples[i].rss_kib)).collect();
        println!(
            "| {} | {} |",
            targets[0].samples[i].at.as_secs(),
            cells.join(" | ")
        );
    }
    println!();
}

/// Idle RSS after the traffic stopped, per daemon.
fn idle_table(targets: &[Target], idle: &[Vec<u64>]) {
    println!("## Soak: idle RSS after the traffic stopped");
    println!();
    let head: Vec<&str> = targets.iter().map(|t| t.label.as_str()).collect();
    println!("| after | {} |", head.join(" | "));
    println!("|---:|{}", "---:|".repeat(targets.len()));
    let n = idle.iter().map(Vec::len).min().unwrap_or(0);
    for s in [1usize, 3, 5, 10, 20, 30, 45, 60, 90, 120]
        .into_iter()
        .filter(|&s| s <= n)
    {
        let cells: Vec<String> = idle.iter().map(|v| mib(v[s - 1])).collect();
        println!("| {s} s | {} |", cells.join(" | "));
    }
    println!();
}

/// One daemon's samples and verdicts; `end` is (descriptors, tasks, (RSS, peak)) 3 s after the
/// traffic, `idle` its RSS each second after the traffic.
fn report(cfg: &SoakCfg, t: &Target, end: (usize, u64, (u64, u64)), idle: &[u64]) {
    let (end_fds, end_tasks, (end_rss, peak_rss)) = end;
    let (idle_rss, idle_fds, idle_tasks) = t.idle;
    let samples: &[Sample] = &t.samples;
    println!("### Soak: {} (`{}`)", t.label, t.d.state_dir().display());
    println!();
    println!("| t (s) | RSS | open fds | threads | runtime tasks | MITM requests so far |");
    println!("|---:|---:|---:|---:|---:|---:|");
    let step = (samples.len() / 12).max(1);
    for (i, s) in samples.iter().enumerate() {
        if i % step == 0 || i + 1 == samples.len() {
            println!(
                "| {} | {} | {} | {} | {} | {} |",
                s.at.as_secs(),
                mib(s.rss_kib),
                s.fds,
                s.threads,
                s.tasks,
                s.requests
            );
        }
    }
    println!();
    // Flat = the mean RSS of the last quarter exceeds the third quarter's by less than 10 % or
    // 8 MiB, whichever is larger. Quarter means, not two samples: RSS oscillates by tens of
    // MiB as the writer's queue fills and drains, and a heavy mix takes a third of the run to
    // reach its plateau (new blocking threads bring new allocator arenas).
    let mean = |from: f64, to: f64| {
        let v: Vec<u64> = samples
            .iter()
            .filter(|s| {
                let f = s.at.as_secs_f64() / cfg.duration.as_secs_f64();
                f >= from && f < to
            })
            .map(|s| s.rss_kib)
            .collect();
        (!v.is_empty()).then(|| v.iter().sum::<u64>() / v.len() as u64)
    };
    let last = samples.last();
    let warm = samples.iter().find(|s| s.at >= cfg.duration / 4);
    let from_warm = match (warm, last) {
        (Some(w), Some(l)) => l.rss_kib as i64 - w.rss_kib as i64,
        _ => 0,
    };
    let (q3, q4) = (mean(0.5, 0.75), mean(0.75, 1.01));
    let (flat, growth) = match (q3, q4) {
        (Some(q3), Some(q4)) => (
            q4 as i64 - q3 as i64 <= (q3 as i64 / 10).max(8 * 1024),
            q4 as i64 - q3 as i64,
        ),
        _ => (false, 0),
    };
    let plateau_max = samples
        .iter()
        .filter(|s| s.at >= cfg.duration / 4)
        .map(|s| s.rss_kib)
        .max()
        .unwrap_or(0);
    let c = &t.counts;
    let total = last.map_or(0, |l| l.requests);
    println!(
        "- idle before traffic: {} RSS, {idle_fds} fds, {idle_tasks} runtime tasks",
        mib(idle_rss)
    );
    println!(
        "- after traffic (+3 s): {} RSS (peak {}), {end_fds} fds — fds {}",
        mib(end_rss),
        mib(peak_rss),
        if end_fds <= idle_fds + 2 {
            "back to baseline"
        } else {
            "NOT back to baseline"
        }
    );
    println!(
        "- runtime tasks after traffic (+3 s): {end_tasks} — {}",
        if end_tasks <= idle_tasks + 2 {
            "back to baseline (no task leak)"
        } else {
            "NOT back to baseline"
        }
    );
    println!(
        "- RSS, mean of the last quarter against the third: {:+.1} MiB — {} (from the end of the first quarter to the last sample: {:+.1} MiB)",
        growth as f64 / 1024.0,
        if flat { "flat" } else { "GROWING" },
        from_warm as f64 / 1024.0
    );
    println!(
        "- plateau (highest sample after the first quarter): {} — {} (≤ 64 MiB); last-quarter mean {}",
        mib(plateau_max),
        if plateau_max <= PLATEAU_MAX_KIB {
            "met"
        } else {
            "**missed**"
        },
        q4.map_or("—".into(), mib)
    );
    let back = idle.iter().position(|&r| r <= IDLE_MAX_KIB);
    println!(
        "- idle RSS after the traffic: {} at +{} s — {}",
        idle.last().map_or("—".into(), |&r| mib(r)),
        idle.len(),
        match back {
            Some(i) => format!("≤ 30 MiB after {} s: met", i + 1),
            None => format!("not ≤ 30 MiB within {} s: **missed**", idle.len()),
        }
    );
    println!(
        "- traffic: {total} MITM requests, {} held-then-allowed connections, {} client-side errors; {} HTTP/2 requests, {} SSE events, {} WebSocket round trips through the MITM; {} plain-HTTP requests",
        t.holds,
        c.errors.load(Ordering::Relaxed),
        c.h2.load(Ordering::Relaxed),
        c.sse.load(Ordering::Relaxed),
        c.ws.load(Ordering::Relaxed),
        c.plain.load(Ordering::Relaxed)
    );
    let log = t.d.log();
    let bad: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" ERROR ") || l.contains(" WARN "))
        .collect();
    println!("- daemon warnings and errors: {}", bad.len());
    for l in bad.iter().take(5) {
        println!("  - `{l}`");
    }
    println!();
}
