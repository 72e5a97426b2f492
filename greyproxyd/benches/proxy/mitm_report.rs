//! The MITM section's report (`mitm.rs` measures): the request-rate table with every path and
//! its ratios to direct, mitmproxy and hudsucker, the added latency over direct, the bulk
//! download table, and the figures the closing summary judges.

use crate::mitm::{Bulk, MitmCfg, MitmTargets, Route};
use crate::mitm_load::{JSON, Rate};
use crate::sys::{human_bytes, mib, pct, sorted};

/// The path names of a run and the peers it is missing.
pub struct Peers<'a> {
    /// The peers: mitmproxy, hudsucker.
    pub names: [&'static str; 2],
    /// Direct, no proxy.
    pub direct: &'static str,
    /// greyproxyd intercepting.
    pub mitm: &'static str,
    /// Peers that are not in the run, with why.
    pub missing: &'a [(&'static str, String)],
}

type Rates = [(usize, &'static str, Result<Rate, String>)];

pub fn find<'a>(
    rates: &'a [(usize, &str, Result<Rate, String>)],
    n: usize,
    name: &str,
) -> Option<&'a Rate> {
    rates
        .iter()
        .find(|(c, p, _)| *c == n && *p == name)
        .and_then(|(_, _, r)| r.as_ref().ok())
}

pub fn req_s(r: &Rate) -> f64 {
    r.requests as f64 / r.window.as_secs_f64()
}

/// The request-rate table and the added-latency table.
pub fn rates(cfg: &MitmCfg, rates: &Rates, p: &Peers) {
    let [mitmproxy, hudsucker] = p.names;
    println!(
        "## MITM request rate (HTTP/1.1 keep-alive, GET of a {}-byte JSON, {} s per row after {} s warm-up)",
        JSON.len(),
        cfg.window.as_secs_f64(),
        cfg.warm.as_secs_f64()
    );
    println!();
    println!(
        "| conns | path | req/s | p50 µs | p99 µs | ÷ direct | ÷ mitmproxy | ÷ hudsucker | proxy CPU s | proxy CPU µs/req | proxy peak RSS | client+origin CPU s | softirq CPUs | other CPUs |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &n in &cfg.conns {
        let direct = find(rates, n, p.direct).map(req_s);
        let mp = find(rates, n, mitmproxy).map(req_s);
        let hs = find(rates, n, hudsucker).map(req_s);
        for (c, name, r) in rates.iter().filter(|(c, _, _)| *c == n) {
            let r = match r {
                Ok(r) => r,
                Err(e) => {
                    println!("| {c} | {name}: failed ({e}) | | | | | | | | | | | | |");
                    continue;
                }
            };
            let v = sorted(&r.micros);
            let rs = req_s(r);
            let ratio =
                |base: Option<f64>| base.map_or("—".into(), |b| format!("{:.2}×", rs / b));
            let (me, proxy, others, irq) = r.cpu;
            let secs = r.window.as_secs_f64();
            let proxy_cols = if *name == p.direct {
                ("—".to_string(), "—".to_string(), "—".to_string())
            } else {
                (
                    format!("{proxy:.2}"),
                    format!("{:.0}", proxy * 1e6 / r.requests.max(1) as f64),
                    r.peak_kib.map_or("—".into(), mib),
                )
            };
            println!(
                "| {c} | {name} | {rs:.0} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {} | {me:.2} | {:.2} | {:.2} |",
                pct(&v, 50.0),
                pct(&v, 99.0),
                ratio(direct),
                ratio(mp),
                ratio(hs),
                proxy_cols.0,
                proxy_cols.1,
                proxy_cols.2,
                irq / secs,
                others / secs
            );
        }
        for (name, why) in p.missing {
            println!("| {n} | {name}: {why} | | | | | | | | | | | | |");
        }
    }
    println!();
    let base = cfg.conns.iter().find(|&&n| n == 1).copied();
    if let Some(n) = base
        && let Some(d) = find(rates, n, p.direct)
    {
        let dv = sorted(&d.micros);
        println!("## Added latency over direct (1 connection, difference of the percentiles)");
        println!();
        println!("| path | p50 µs | p99 µs | added p50 µs | added p99 µs |");
        println!("|---|---:|---:|---:|---:|");
        // Every path of the 1-connection rows, in the order they ran.
        for name in rates.iter().filter(|r| r.0 == n).map(|r| r.1) {
            let Some(r) = find(rates, n, name) else {
                continue;
            };
            let v = sorted(&r.micros);
            let (p50, p99) = (pct(&v, 50.0), pct(&v, 99.0));
            let added = |x: f64| {
                if name == p.direct {
                    "—".to_string()
                } else {
                    format!("{x:.0}")
                }
            };
            println!(
                "| {name} | {p50:.0} | {p99:.0} | {} | {} |",
                added(p50 - pct(&dv, 50.0)),
                added(p99 - pct(&dv, 99.0))
            );
        }
        println!();
    }
}

/// The bulk download table.
pub fn bulk(cfg: &MitmCfg, routes: &[Route], bulks: &[Bulk], p: &Peers) {
    println!(
        "## MITM bulk download ({} HTTPS body per transfer, {} reps, MB/s = 10^6 B/s)",
        human_bytes(cfg.bytes),
        cfg.reps
    );
    println!();
    println!(
        "| path | best MB/s | median MB/s | median ÷ direct | proxy CPU s/GB | client+origin CPU s/GB | proxy peak RSS |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let direct = bulks[0].mbs.clone();
    let dmed = (!direct.is_empty()).then(|| pct(&sorted(&direct), 50.0));
    for (r, b) in routes.iter().zip(bulks) {
        if let Some(e) = &b.error {
            println!("| {}: failed ({e}) | | | | | | |", r.name);
            continue;
        }
        let s = sorted(&b.mbs);
        let med = pct(&s, 50.0);
        let me = pct(
            &sorted(&b.cpu.iter().map(|c| c.0).collect::<Vec<_>>()),
            50.0,
        );
        let proxy = pct(
            &sorted(&b.cpu.iter().map(|c| c.1).collect::<Vec<_>>()),
            50.0,
        );
        let is_direct = r.pid.is_none();
        println!(
            "| {} | {:.0} | {med:.0} | {} | {} | {me:.2} | {} |",
            r.name,
            s.last().unwrap(),
            dmed.map_or("—".into(), |d| format!("{:.1} %", 100.0 * med / d)),
            if is_direct {
                "—".into()
            } else {
                format!("{proxy:.2}")
            },
            if is_direct {
                "—".into()
            } else {
                b.peak_kib.map_or("—".into(), mib)
            },
        );
    }
    for (name, why) in p.missing {
        println!("| {name}: {why} | | | | | | |");
    }
    println!();
}

/// The figures the closing summary (`summary.rs`) judges against the targets.
pub fn targets(rates: &Rates, p: &Peers) -> MitmTargets {
    let [mitmproxy, hudsucker] = p.names;
    let mut conns: Vec<usize> = rates.iter().map(|r| r.0).collect();
    conns.dedup();
    let vs = |peer: &str| -> Vec<(usize, f64)> {
        conns
            .iter()
            .filter_map(|&n| {
                let (g, m) = (find(rates, n, p.mitm)?, find(rates, n, peer)?);
                Some((n, req_s(g) / req_s(m)))
            })
            .collect()
    };
    MitmTargets {
        vs_mitmproxy: vs(mitmproxy),
        vs_hudsucker: vs(hudsucker),
        p99_over_p50: conns
            .iter()
            .filter_map(|&n| {
                let v = sorted(&find(rates, n, p.mitm)?.micros);
                Some((n, pct(&v, 99.0) / pct(&v, 50.0)))
            })
            .collect(),
        added_p50_us: find(rates, 1, p.mitm)
            .zip(find(rates, 1, p.direct))
            .map(|(g, d)| pct(&sorted(&g.micros), 50.0) - pct(&sorted(&d.micros), 50.0)),
        missing: p.missing.to_vec(),
    }
}
