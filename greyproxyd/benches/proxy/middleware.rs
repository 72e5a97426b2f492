//! The middleware benchmark (issue: external middleware): HTTP/1.1 keep-alive request rate
//! and latency through the MITM with no middleware, with the shipped Python passthrough
//! example (`examples/passthrough/middleware.py`, request and response hooks, no filters) on
//! stdio, and the same example on WebSocket — one client, one HTTPS origin, same run.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ClientConfig;

use greyproxy_testkit::DaemonBuilder;
use greyproxy_testkit::tls::{TestCa, client_config};

use crate::client::Via;
use crate::mitm::MitmCfg;
use crate::mitm_load::{JSON, Rate, connect, get, https_origin, rate};
use crate::sys::{daemon_pid, mib, pct, sorted};

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/passthrough/middleware.py")
}

/// The passthrough example serving WebSocket on a free port; killed on drop.
struct WsMiddleware {
    child: Child,
    port: u16,
}

/// Whether python3 can import `websockets` (the example's WebSocket transport needs it),
/// installing it with pip first when it is missing and `install` is set.
fn websockets_present(install: bool) -> Result<(), String> {
    let present = || {
        Command::new("python3")
            .args(["-c", "import websockets"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if present() {
        return Ok(());
    }
    if !install {
        return Err("python3 has no `websockets` (a full `--bench` run installs it)".into());
    }
    eprintln!("      python3 -m pip install websockets…");
    let _ = Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "websockets"])
        .stdin(Stdio::null())
        .status();
    if present() {
        Ok(())
    } else {
        Err("pip install websockets failed".into())
    }
}

impl WsMiddleware {
    async fn start(install: bool) -> Result<WsMiddleware, String> {
        websockets_present(install)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut child = Command::new("python3")
            .arg(example())
            .env("GREYPROXY_TRANSPORT", "ws")
            .env("GREYPROXY_WS_PORT", port.to_string())
            .env("GREYPROXY_WS_HOST", "127.0.0.1")
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .map_err(|e| format!("python3: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            let exited = child.try_wait().ok().flatten().is_some();
            if exited || Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                let err = std::fs::read_to_string(log.path()).unwrap_or_default();
                let last = err.lines().last().unwrap_or("no output").to_string();
                return Err(format!("the WebSocket middleware did not listen: {last}"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(WsMiddleware { child, port })
    }
}

impl Drop for WsMiddleware {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The children of `pid` (the stdio middleware the daemon spawned).
fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| {
            c.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// One way through: a daemon, what the client trusts, the middleware process if any.
struct Route {
    name: &'static str,
    via: Via,
    tls: Arc<ClientConfig>,
    pid: u32,
    middleware: Option<u32>,
}

fn route(name: &'static str, d: &greyproxy_testkit::Daemon, middleware: Option<u32>) -> Route {
    let pid = daemon_pid(d.state_dir());
    Route {
        name,
        via: Via::Http(d.http.unwrap()),
        tls: client_config(&d.state_dir().join("ca-cert.pem"), &[b"http/1.1"]),
        pid,
        middleware,
    }
}

/// Runs the section and prints its table.
pub async fn run(cfg: &MitmCfg) {
    eprintln!("[middleware] origin, three daemons, a WebSocket middleware…");
    let ca = TestCa::new("greyproxy bench origin CA");
    let origin: SocketAddr = https_origin(&ca).await;
    let ca_arg = ca.pem_arg();
    let cmd = format!("python3 {}", example().display());
    // Warnings only: the example logs every message, which would otherwise measure logging.
    let daemon = |extra: Vec<String>| {
        let mut args = vec!["--upstream-ca".to_string(), ca_arg.clone()];
        args.extend(extra);
        async move {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            DaemonBuilder::new(&cfg.daemon)
                .args(&refs)
                .env("RUST_LOG", "warn")
                .start()
                .await
        }
    };
    let plain = daemon(vec![]).await;
    let stdio = daemon(vec!["--middleware-cmd".into(), cmd]).await;
    let stdio_mw = children(daemon_pid(stdio.state_dir())).first().copied();
    let ws = WsMiddleware::start(cfg.install).await;
    let wsd = match &ws {
        Ok(ws) => {
            let url = format!("ws://127.0.0.1:{}/middleware", ws.port);
            Some(daemon(vec!["--middleware".into(), url]).await)
        }
        Err(e) => {
            eprintln!("      WebSocket middleware: {e}");
            None
        }
    };
    let mut routes = vec![
        route("MITM, no middleware", &plain, None),
        route("MITM + passthrough (stdio)", &stdio, stdio_mw),
    ];
    if let (Some(d), Ok(ws)) = (&wsd, &ws) {
        routes.push(route(
            "MITM + passthrough (WebSocket)",
            d,
            Some(ws.child.id()),
        ));
    }
    for r in &routes {
        let mut c = connect(r.via, origin, r.tls.clone())
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", r.name));
        let n = get(&mut c, &origin.to_string(), "/json")
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", r.name));
        assert_eq!(n, JSON.len() as u64, "{}", r.name);
    }
    // (conns, path, rate, middleware CPU in cores over the row)
    let mut rows: Vec<(usize, &str, Rate, Option<f64>)> = Vec::new();
    for &n in &cfg.conns {
        for r in &routes {
            eprintln!("[middleware] {n} connection(s), {}…", r.name);
            let mw_before = r.middleware.map(crate::sys::proc_cpu_secs);
            let t = Instant::now();
            let res = rate(
                Some(r.pid),
                r.via,
                origin,
                r.tls.clone(),
                n,
                cfg.warm,
                cfg.window,
            )
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", r.name));
            let secs = t.elapsed().as_secs_f64();
            let mw = r
                .middleware
                .zip(mw_before)
                .map(|(p, b)| (crate::sys::proc_cpu_secs(p) - b) / secs);
            rows.push((n, r.name, res, mw));
        }
    }
    println!(
        "## Middleware overhead (HTTP/1.1 keep-alive over MITM, GET of a {}-byte JSON, {} s per row; Python passthrough example on request and response hooks)",
        JSON.len(),
        cfg.window.as_secs_f64()
    );
    println!();
    println!(
        "| conns | path | req/s | ÷ no middleware | p50 µs | p99 µs | added p50 µs | daemon CPU µs/req | daemon peak RSS | middleware CPU (cores) |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &n in &cfg.conns {
        let base = rows.iter().find(|(c, ..)| *c == n).map(|(_, _, r, _)| r);
        let base_rs = base.map(|r| r.requests as f64 / r.window.as_secs_f64());
        let base_p50 = base.map(|r| pct(&sorted(&r.micros), 50.0));
        for (c, name, r, mw) in rows.iter().filter(|(c, ..)| *c == n) {
            let v = sorted(&r.micros);
            let rs = r.requests as f64 / r.window.as_secs_f64();
            let p50 = pct(&v, 50.0);
            println!(
                "| {c} | {name} | {rs:.0} | {} | {p50:.0} | {:.0} | {} | {:.0} | {} | {} |",
                base_rs.map_or("—".into(), |b| format!("{:.2}×", rs / b)),
                pct(&v, 99.0),
                base_p50.map_or("—".into(), |b| format!("{:.0}", p50 - b)),
                r.cpu.1 * 1e6 / r.requests.max(1) as f64,
                r.peak_kib.map_or("—".into(), mib),
                mw.map_or("—".into(), |m| format!("{m:.2}")),
            );
        }
        if let Err(e) = &ws {
            println!(
                "| {n} | MITM + passthrough (WebSocket): not measured ({e}) | | | | | | | | |"
            );
        }
    }
    println!();
    drop(ws);
    let _ = plain.stop().await;
    let _ = stdio.stop().await;
    if let Some(d) = wsd {
        let _ = d.stop().await;
    }
}
