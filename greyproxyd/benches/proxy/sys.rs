//! What the benchmark reads from the system: CPU time, RSS, machine facts; and statistics.

use std::path::Path;

use serde_json::Value;

/// utime + stime of process `pid` (`"self"` for this one), in clock ticks; 0 once it is gone.
fn proc_ticks(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0;
    };
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the state.
    f.get(10).copied().unwrap_or(0) + f.get(11).copied().unwrap_or(0)
}

/// CPU seconds process `pid` has used (0 once it is gone).
pub fn proc_cpu_secs(pid: u32) -> f64 {
    proc_ticks(&pid.to_string()) as f64 / TICKS_PER_SEC
}

/// CPU time counters, in clock ticks (USER_HZ, 100 per second on Linux).
#[derive(Clone, Copy)]
pub struct Cpu {
    /// This benchmark process: clients and origins.
    me: u64,
    /// The daemon.
    daemon: u64,
    /// The whole machine, busy (user + nice + system + irq + softirq).
    busy: u64,
    /// The whole machine, stolen by the hypervisor.
    steal: u64,
    /// The whole machine, in interrupts and softirqs (part of `busy`; loopback TCP's receive
    /// path runs there and is charged to no process).
    irq: u64,
}

const TICKS_PER_SEC: f64 = 100.0;

impl Cpu {
    /// Current counters, `daemon` being the daemon's pid.
    pub fn now(daemon: u32) -> Cpu {
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
        Cpu {
            me: proc_ticks("self"),
            daemon: proc_ticks(&daemon.to_string()),
            busy: at(0) + at(1) + at(2) + at(5) + at(6),
            steal: at(7),
            irq: at(5) + at(6),
        }
    }

    /// CPU seconds the whole machine spent in interrupts and softirqs since `earlier`.
    pub fn irq_since(self, earlier: Cpu) -> f64 {
        self.irq.saturating_sub(earlier.irq) as f64 / TICKS_PER_SEC
    }

    /// CPU seconds spent since `earlier`: (benchmark process, daemon, other processes, steal).
    pub fn since(self, earlier: Cpu) -> (f64, f64, f64, f64) {
        let d = |a: u64, b: u64| a.saturating_sub(b) as f64 / TICKS_PER_SEC;
        let me = d(self.me, earlier.me);
        let daemon = d(self.daemon, earlier.daemon);
        let busy = d(self.busy, earlier.busy);
        (
            me,
            daemon,
            (busy - me - daemon).max(0.0),
            d(self.steal, earlier.steal),
        )
    }
}

/// The daemon's pid, from the runtime file it writes into its state dir.
pub fn daemon_pid(state_dir: &Path) -> u32 {
    let text = std::fs::read_to_string(state_dir.join("daemon.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["pid"].as_u64().unwrap() as u32
}

/// `VmRSS` and `VmHWM` (peak) of a process, in KiB.
pub fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// KiB as MiB text.
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// Facts about the machine and build, for the report header.
pub fn machine() -> Vec<(&'static str, String)> {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let mem = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map(|k| format!("{:.1} GiB", k as f64 / (1 << 20) as f64))
        .unwrap_or_default();
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let git = std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    vec![
        ("nproc", nproc.to_string()),
        ("cpu", cpu),
        ("memory", mem),
        (
            "kernel",
            read("/proc/sys/kernel/osrelease").trim().to_string(),
        ),
        ("commit", git),
    ]
}

/// Nearest-rank percentile of sorted values.
pub fn pct(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A sorted copy.
pub fn sorted(v: &[f64]) -> Vec<f64> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s
}

/// A byte count as `N GiB` / `N MiB` when exact.
pub fn human_bytes(b: u64) -> String {
    if b >= 1 << 30 && b.is_multiple_of(1 << 30) {
        format!("{} GiB", b >> 30)
    } else if b >= 1 << 20 && b.is_multiple_of(1 << 20) {
        format!("{} MiB", b >> 20)
    } else {
        format!("{b} B")
    }
}

/// Resets a process's peak RSS (`VmHWM`) to its current RSS (`/proc/<pid>/clear_refs` = 5), so
/// that the next [`rss_kib`] reads the peak since now. False when not permitted.
pub fn reset_peak_rss(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// The first of `paths` that exists; when none does and `install` is set, installs the Debian
/// package `package` with apt-get (as root) and looks again. `Err` says why there is none.
pub fn apt_binary(
    paths: &[&str],
    package: &str,
    install: bool,
) -> Result<std::path::PathBuf, String> {
    let find = || {
        paths
            .iter()
            .map(std::path::PathBuf::from)
            .find(|p| p.is_file())
    };
    if let Some(p) = find() {
        return Ok(p);
    }
    if !install {
        return Err("not installed (a full `--bench` run installs it with apt)".into());
    }
    eprintln!("      installing {package} with apt-get…");
    let ok = std::process::Command::new("apt-get")
        .args(["install", "-y", "-qq", package])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    find().ok_or_else(|| {
        format!(
            "apt-get install {package} {}",
            if ok { "gave no binary" } else { "failed" }
        )
    })
}
