//! The tunnel sections' report (sections 1–4 of `benches/proxy.rs`): bulk throughput per path
//! and direction (greyproxyd's CONNECT and SOCKS5 tunnels, tinyproxy, HAProxy as a TCP relay,
//! direct), allow → release, connection setup, machine load and daemon memory; and the figures
//! the closing summary judges.

use crate::Cfg;
use crate::client::Via;
use crate::measure::{AllowLatency, Setup, Throughput};
use crate::summary::TunnelTargets;
use crate::sys::{mib, pct, sorted};

/// Everything the tunnel sections measured.
pub struct TunnelRun<'a> {
    /// The run's settings.
    pub cfg: &'a Cfg,
    /// Bulk rows, per direction and path.
    pub tp: Vec<Throughput>,
    /// One line per peer: its version and how it was run, or why it is absent.
    pub peers: Vec<String>,
    /// Allow → release.
    pub allow: AllowLatency,
    /// Connection setup per path (direct first).
    pub setup: Vec<Setup>,
    /// CPU seconds of other processes and of steal, and the seconds they were taken over.
    pub load: (f64, f64, f64),
    /// Daemon RSS, KiB: idle, tunnels open, after, peak.
    pub rss: (u64, u64, u64, u64),
}

/// Prints the tables; returns the figures that have targets.
pub fn print(r: &TunnelRun) -> TunnelTargets {
    let TunnelRun {
        cfg,
        tp,
        peers,
        allow,
        setup,
        load: (others, steal, elapsed),
        rss: (idle_rss, open_rss, after_rss, peak_rss),
    } = r;
    let (others, steal, elapsed) = (*others, *steal, *elapsed);
    println!(
        "## Bulk tunnel throughput (MB/s = 10^6 B/s, {} reps)",
        cfg.reps
    );
    println!();
    println!(
        "| direction | path | best MB/s | median MB/s | best / direct | median / direct | CPU s/GB all | CPU s/GB proxy |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    let mut connect_pct = [0.0f64; 2];
    let mut connect_med = [0.0f64; 2];
    let mut haproxy_med = [None::<f64>; 2];
    for (d, dir) in ["download", "upload"].into_iter().enumerate() {
        let rows: Vec<&Throughput> = tp.iter().filter(|t| t.direction == dir).collect();
        let direct = rows.iter().find(|t| t.via == Via::Direct).unwrap();
        let (db, dm) = {
            let s = sorted(&direct.runs);
            (*s.last().unwrap(), pct(&s, 50.0))
        };
        for t in rows {
            let s = sorted(&t.runs);
            let (best, med) = (*s.last().unwrap(), pct(&s, 50.0));
            let all = sorted(&t.cpu.iter().map(|c| c.0).collect::<Vec<_>>());
            let daemon = sorted(&t.cpu.iter().map(|c| c.1).collect::<Vec<_>>());
            if matches!(t.via, Via::Http(_)) {
                connect_pct[d] = 100.0 * med / dm;
                connect_med[d] = med;
            }
            if matches!(t.via, Via::Relay(..)) {
                haproxy_med[d] = Some(med);
            }
            println!(
                "| {dir} | {} | {best:.0} | {med:.0} | {:.1} % | {:.1} % | {:.2} | {:.2} |",
                t.via.name(),
                100.0 * best / db,
                100.0 * med / dm,
                pct(&all, 50.0),
                pct(&daemon, 50.0),
            );
        }
    }
    println!();
    for p in peers {
        println!("- {p}");
    }
    println!();

    let rel = sorted(&allow.release_ms);
    let rep = sorted(&allow.reply_ms);
    println!(
        "## Allow → release ({} held CONNECTs on distinct destinations, allowed one by one)",
        cfg.holds
    );
    println!();
    println!("| measure | p50 ms | p90 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|---:|");
    for (name, v) in [
        (
            "allow sent → client reads `200 Connection established`",
            &rel,
        ),
        ("allow sent → `command_success` received", &rep),
    ] {
        println!(
            "| {name} | {:.2} | {:.2} | {:.2} | {:.2} |",
            pct(v, 50.0),
            pct(v, 90.0),
            pct(v, 99.0),
            v.last().unwrap()
        );
    }
    if allow.early_releases > 0 {
        println!();
        println!(
            "WARNING: {} held clients were released before their own allow",
            allow.early_releases
        );
    }
    println!();

    println!(
        "## Connection setup (connect + handshake + one 32-byte echo round trip, {} sequential per path)",
        cfg.conns
    );
    println!();
    println!("| path | p50 µs | p90 µs | p99 µs | conn/s | added p50 µs | added p99 µs |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let direct = sorted(&setup[0].micros);
    for s in setup.iter() {
        let v = sorted(&s.micros);
        let rate = s.micros.len() as f64 / s.wall.as_secs_f64();
        let (added50, added99) = if s.via == Via::Direct {
            ("—".to_string(), "—".to_string())
        } else {
            (
                format!("{:.0}", pct(&v, 50.0) - pct(&direct, 50.0)),
                format!("{:.0}", pct(&v, 99.0) - pct(&direct, 99.0)),
            )
        };
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {rate:.0} | {added50} | {added99} |",
            s.via.name(),
            pct(&v, 50.0),
            pct(&v, 90.0),
            pct(&v, 99.0),
        );
    }
    if setup.iter().any(|s| matches!(s.via, Via::Relay(..))) {
        println!();
        println!(
            "HAProxy's row has no CONNECT exchange (the client connects to a frontend bound to the target): it is the cost of the second hop alone, which the CONNECT rows pay too."
        );
    }
    println!();

    println!("## Machine load during the run");
    println!();
    println!(
        "Other processes used {:.2} CPUs on average over the {elapsed:.0} s of measurement (of {}); hypervisor steal {:.2} CPUs. Figures taken while this is well above 0 are disturbed.",
        others / elapsed,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        steal / elapsed
    );
    println!();

    println!("## Daemon memory");
    println!();
    println!("| measure | RSS |");
    println!("|---|---:|");
    println!("| idle, 1 s after start | {} |", mib(*idle_rss));
    println!(
        "| {} tunnels open, each has relayed 1 MiB both ways | {} |",
        cfg.tunnels,
        mib(*open_rss)
    );
    println!(
        "| after the benchmarks, 1 s after the last connection closed | {} |",
        mib(*after_rss)
    );
    println!("| peak during the run (VmHWM) | {} |", mib(*peak_rss));
    println!();

    let rel = sorted(&allow.release_ms);
    TunnelTargets {
        connect_pct: (connect_pct[0], connect_pct[1]),
        allow_ms: (pct(&rel, 50.0), pct(&rel, 99.0)),
        vs_haproxy: [0, 1].map(|d| haproxy_med[d].map(|h| connect_med[d] / h)),
    }
}
