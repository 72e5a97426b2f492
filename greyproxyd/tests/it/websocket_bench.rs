//! Benchmark, not a test (ignored unless asked for): WebSocket messages/s and MB/s for ~1 KiB
//! similar JSON messages, compressed (permessage-deflate, context takeover), echoed by a TLS
//! origin (`tests/it/ws/server.py`), pipelined by `tests/it/ws/client.py`, on three paths:
//! direct, through a `--no-mitm` daemon (raw CONNECT tunnel) and through a capturing daemon
//! (TLS intercepted, every message decoded and recorded). Run it with:
//!
//! ```sh
//! cargo test --release -p greyproxyd --test it websocket_bench -- --ignored --nocapture
//! ```
//!
//! Knobs: `WS_BENCH_MESSAGES` (20000), `WS_BENCH_SIZE` (1024), `WS_BENCH_REPS` (3).

use std::time::{Duration, Instant};

use greyproxy_testkit::DaemonBuilder;
use greyproxy_testkit::daemon::Daemon;
use greyproxy_testkit::mitm::{allow_loopback, config_file};
use greyproxy_testkit::tls::TestCa;
use greyproxy_testkit::wsprobe::{WsOrigin, run_client_for};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_greyproxyd");
const IP: &str = "127.0.0.95";

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// utime + stime of a process, in seconds.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let f: Vec<u64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    (f.get(10).copied().unwrap_or(0) + f.get(11).copied().unwrap_or(0)) as f64 / 100.0
}

/// CPU seconds the whole machine has been busy (user + nice + system + irq + softirq).
fn machine_busy_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let at = |i: usize| f.get(i).copied().unwrap_or(0);
    (at(0) + at(1) + at(2) + at(5) + at(6)) as f64 / 100.0
}

fn daemon_pid(d: &Daemon) -> u32 {
    let text = std::fs::read_to_string(d.state_dir().join("daemon.json")).unwrap();
    serde_json::from_str::<Value>(&text).unwrap()["pid"]
        .as_u64()
        .unwrap() as u32
}

async fn daemon(ca: &TestCa, extra: &[&str]) -> Daemon {
    let cfg = config_file("[capture]\nmax_transactions = 1000000\n");
    let (ca_arg, cfg_arg) = (ca.pem_arg(), cfg.path().display().to_string());
    let mut args = vec![
        "--upstream-ca",
        ca_arg.as_str(),
        "--config",
        cfg_arg.as_str(),
    ];
    args.extend_from_slice(extra);
    let d = DaemonBuilder::new(BIN)
        .args(&args)
        .env("RUST_LOG", "greyproxyd=info")
        .start()
        .await;
    let mut ws = d.client().await;
    allow_loopback(&mut ws).await;
    d
}

#[derive(Default, Clone)]
struct Sample {
    secs: f64,
    /// Payload bytes sent (and echoed, plus 9 bytes per message).
    bytes: f64,
    client_cpu: f64,
    server_cpu: f64,
    daemon_cpu: f64,
    other_cpu: f64,
    /// Capturing path: rows the taps recorded (`ws_messages`; 0 when the completed upgrade
    /// row never came), rows stored, seconds from the client's last echo until the upgrade
    /// row was completed.
    recorded: u64,
    stored: u64,
    drain_secs: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: cargo test --release -p greyproxyd --test it websocket_bench -- --ignored --nocapture"]
async fn websocket_throughput() {
    let n = knob("WS_BENCH_MESSAGES", 20_000);
    let size = knob("WS_BENCH_SIZE", 1024);
    let reps = knob("WS_BENCH_REPS", 3);
    let ca = TestCa::new("greyproxy bench origin CA");
    let mitm = daemon(&ca, &[]).await;
    let raw = daemon(&ca, &["--no-mitm"]).await;
    let mut events = mitm.client().await;
    let r = events
        .cmd(json!({"command":"subscribe","event_type":"transaction.updated"}))
        .await;
    assert_eq!(r["type"], "subscribed", "{r}");
    let mut origin = WsOrigin::start(IP, Some(&ca), &[]).await;
    let url = origin.url("wss", "/bench");
    let paths: [(&str, Option<&Daemon>, String); 3] = [
        ("direct", None, ca.pem_arg()),
        ("CONNECT tunnel, --no-mitm", Some(&raw), ca.pem_arg()),
        (
            "CONNECT, intercepted + recorded",
            Some(&mitm),
            mitm.state_dir().join("ca-cert.pem").display().to_string(),
        ),
    ];
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); paths.len()];
    let mut stored_before = 0;
    for rep in 0..=reps {
        // Round 0 is a warm-up with fewer messages, not reported.
        let count = if rep == 0 { n.min(2000) } else { n };
        for (i, (_, d, cafile)) in paths.iter().enumerate() {
            let mut cfg = json!({"mode": "bench", "url": url, "count": count, "size": size,
                                 "cafile": cafile});
            if let Some(d) = d {
                cfg["via"] = json!("http");
                cfg["proxy"] = json!(d.http.unwrap().to_string());
            }
            let dpid = d.map(daemon_pid);
            let (s0, d0) = (cpu_secs(origin.pid()), dpid.map_or(0.0, cpu_secs));
            let busy0 = machine_busy_secs();
            let out = run_client_for(&cfg, Duration::from_secs(1800)).await;
            let ended = Instant::now();
            let busy = machine_busy_secs() - busy0;
            let ours_at_end = cpu_secs(origin.pid()) - s0 + dpid.map_or(0.0, cpu_secs) - d0;
            let report = origin.closed().await;
            assert_eq!(report["received"].as_array().unwrap().len(), count);
            let mut s = Sample {
                secs: out["seconds"].as_f64().unwrap(),
                bytes: out["payload_bytes"].as_f64().unwrap(),
                client_cpu: out["cpu_seconds"].as_f64().unwrap(),
                ..Sample::default()
            };
            // The last path is the capturing one.
            if i == paths.len() - 1 {
                // A dropped row (the writer's queue full) may be this very update: give up
                // after a while and report what was stored.
                let up = events.event_where("transaction.updated", |t| t["destination_host"] == IP);
                if let Ok(up) = tokio::time::timeout(Duration::from_secs(9), up).await {
                    s.drain_secs = ended.elapsed().as_secs_f64();
                    s.recorded = up["data"]["ws_messages"].as_u64().unwrap();
                    if let Some(why) = up["data"]["ws_capture_stopped"].as_str() {
                        println!("run {rep}: capture stopped: {why}");
                    }
                }
                let mut total = 0;
                loop {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    let page = events
                        .query(json!({"command":"list_activity","kind":"transaction",
                                      "destination":IP,"limit":1}))
                        .await;
                    let now = page["total"].as_u64().unwrap();
                    if now == total {
                        break;
                    }
                    total = now;
                }
                s.stored = total - stored_before - 1;
                stored_before = total;
            }
            s.server_cpu = cpu_secs(origin.pid()) - s0;
            s.daemon_cpu = dpid.map_or(0.0, cpu_secs) - d0;
            // Busy time of the machine while the client ran, less what the client (measured by
            // itself: interpreter start-up is left out, so this is an upper bound), the origin
            // and the daemon used meanwhile.
            s.other_cpu = (busy - s.client_cpu - ours_at_end).max(0.0);
            if rep > 0 {
                samples[i].push(s);
            }
        }
    }
    report(n, size, reps, &paths.map(|p| p.0), &samples);
    let log = mitm.log();
    let dropped = log
        .lines()
        .filter(|l| l.contains("row dropped"))
        .filter_map(|l| l.split("dropped_total=").nth(1))
        .filter_map(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .max()
        .unwrap_or(0);
    println!(
        "\ncapturing daemon: {dropped} transaction rows dropped (writer queue full), per its log"
    );
}

fn report(n: usize, size: usize, reps: usize, names: &[&str], samples: &[Vec<Sample>]) {
    println!(
        "\n{n} messages of {size} B each way per run (client → origin, echoed), {reps} runs per \
         path, interleaved; medians.\n"
    );
    println!(
        "| path | messages/s (round trips) | MB/s each way (decoded) | vs direct | daemon CPU \
         µs per message each way | client CPU s | origin CPU s | other processes CPU s | rows recorded / stored | rows done after |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let direct = median(samples[0].iter().map(|s| s.secs).collect());
    for (name, ss) in names.iter().zip(samples) {
        let secs = median(ss.iter().map(|s| s.secs).collect());
        let med = |f: fn(&Sample) -> f64| median(ss.iter().map(f).collect());
        let rows = if ss[0].recorded > 0 {
            let rec: Vec<String> = ss.iter().map(|s| s.recorded.to_string()).collect();
            let sto: Vec<String> = ss.iter().map(|s| s.stored.to_string()).collect();
            format!("{} / {}", rec.join(","), sto.join(","))
        } else {
            "–".into()
        };
        let drain = if ss[0].recorded > 0 {
            format!("{:.2} s", med(|s| s.drain_secs))
        } else {
            "–".into()
        };
        println!(
            "| {name} | {:.0} | {:.1} | {:.2}× | {:.1} | {:.2} | {:.2} | {:.2} | {rows} | {drain} |",
            n as f64 / secs,
            med(|s| s.bytes) / secs / 1e6,
            direct / secs,
            med(|s| s.daemon_cpu) * 1e6 / (2 * n) as f64,
            med(|s| s.client_cpu),
            med(|s| s.server_cpu),
            med(|s| s.other_cpu),
        );
    }
}
