//! The closing table: this run's figures for the targets (docs/performance.md#targets),
//! gathered from the sections that measured them, so one run gives one verdict per target.

use crate::credentials::CredTargets;
use crate::llm::LlmTargets;
use crate::mitm::MitmTargets;

/// The tunnel sections' figures that have targets.
pub struct TunnelTargets {
    /// Median HTTP CONNECT throughput ÷ median direct, %, (download, upload).
    pub connect_pct: (f64, f64),
    /// Allow sent → held client released, ms: (p50, p99).
    pub allow_ms: (f64, f64),
    /// Median HTTP CONNECT throughput ÷ HAProxy's median, [download, upload] (absent: HAProxy
    /// not measured).
    pub vs_haproxy: [Option<f64>; 2],
}

/// `figs` as "1.2× at 16 conn(s), …" and whether every one is at least `min`.
fn ratios(figs: &[(usize, f64)], min: f64) -> (String, bool) {
    let text: Vec<String> = figs
        .iter()
        .map(|(n, x)| format!("{x:.2}× at {n} conn(s)"))
        .collect();
    (text.join(", "), figs.iter().all(|(_, x)| *x >= min))
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**missed**" }
}

/// Prints the table for whatever was measured; nothing when neither section ran.
pub fn print(
    tunnel: Option<&TunnelTargets>,
    mitm: Option<&MitmTargets>,
    llm: Option<&LlmTargets>,
    cred: Option<&CredTargets>,
) {
    if tunnel.is_none() && mitm.is_none() && llm.is_none() && cred.is_none() {
        return;
    }
    println!("## Targets in this run");
    println!();
    println!("| target | this run | verdict |");
    println!("|---|---|---|");
    if let Some(m) = mitm {
        let why = |peer: &str| {
            m.missing
                .iter()
                .find(|(n, _)| n.starts_with(peer))
                .map_or("not measured".to_string(), |(_, e)| e.clone())
        };
        if m.vs_mitmproxy.is_empty() {
            println!(
                "| MITM keep-alive req/s ≥ 10× mitmproxy's | mitmproxy {} | — |",
                why("mitmproxy")
            );
        } else {
            let (figs, met) = ratios(&m.vs_mitmproxy, 10.0);
            println!(
                "| MITM keep-alive req/s ≥ 10× mitmproxy's | {figs} | {} |",
                verdict(met)
            );
        }
        if m.vs_hudsucker.is_empty() {
            println!(
                "| MITM keep-alive req/s, recording, ≥ 1.0× hudsucker's (records nothing) | hudsucker {} | — |",
                why("hudsucker")
            );
        } else {
            let (figs, met) = ratios(&m.vs_hudsucker, 1.0);
            println!(
                "| MITM keep-alive req/s, recording, ≥ 1.0× hudsucker's (records nothing) | {figs} | {} |",
                verdict(met)
            );
        }
        if !m.p99_over_p50.is_empty() {
            let (_, met) = ratios(&m.p99_over_p50, 0.0);
            let figs: Vec<String> = m
                .p99_over_p50
                .iter()
                .map(|(n, x)| format!("{x:.1}× at {n} conn(s)"))
                .collect();
            let met = met && m.p99_over_p50.iter().all(|(_, x)| *x <= 3.0);
            println!(
                "| MITM p99 ≤ 3× p50 | {} | {} |",
                figs.join(", "),
                verdict(met)
            );
        }
    }
    if let Some(t) = tunnel {
        match t.vs_haproxy {
            [Some(down), Some(up)] => println!(
                "| tunnel throughput ≥ HAProxy's (TCP mode, splice; a relay without CONNECT) | download {down:.2}×, upload {up:.2}× (HTTP CONNECT ÷ HAProxy, medians) | {} |",
                verdict(down >= 1.0 && up >= 1.0)
            ),
            _ => println!(
                "| tunnel throughput ≥ HAProxy's (TCP mode, splice) | HAProxy not measured (see the tunnel table) | — |"
            ),
        }
    }
    if let Some(t) = tunnel {
        let (down, up) = t.connect_pct;
        println!(
            "| tunnel throughput ≥ 90 % of direct | download {down:.0} %, upload {up:.0} % (HTTP CONNECT, medians) | {} |",
            verdict(down >= 90.0 && up >= 90.0)
        );
    }
    if let Some(added) = mitm.and_then(|m| m.added_p50_us) {
        println!(
            "| added p50 latency ≤ 1 ms | {added:.0} µs (small MITM request, 1 connection) | {} |",
            verdict(added <= 1000.0)
        );
    }
    if let Some(t) = tunnel {
        println!(
            "| allow → release ≤ 10 ms | p50 {:.2} ms, p99 {:.2} ms | {} |",
            t.allow_ms.0,
            t.allow_ms.1,
            verdict(t.allow_ms.0 <= 10.0)
        );
    }
    if let Some(l) = llm {
        let figs: Vec<String> = l
            .on_vs_off
            .iter()
            .map(|(n, x)| format!("{x:.1} % at {n} conn(s)"))
            .collect();
        println!(
            "| LLM-shaped MITM req/s with the LLM layer on ≥ 95 % of off | {} | {} |",
            figs.join(", "),
            verdict(l.on_vs_off.iter().all(|(_, x)| *x >= 95.0))
        );
    }
    if let Some(c) = cred {
        let figs: Vec<String> = c
            .on_vs_off
            .iter()
            .map(|(n, x)| format!("{x:.1} % at {n} conn(s)"))
            .collect();
        println!(
            "| MITM req/s with substitution on a bound host ≥ 95 % of no credentials | {} | {} |",
            figs.join(", "),
            verdict(c.on_vs_off.iter().all(|(_, x)| *x >= 95.0))
        );
    }
    println!();
    println!(
        "Zero lost decisions after kill -9 is proven by a test, not measured here: `cargo test -p greyproxyd --test it fault_kill`."
    );
    println!();
}
