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
use crate::sys::{daemon_pid, pct, sorted};

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/passthrough/middleware.py")
}

/// The passthrough example serving WebSocket on a free port; killed on drop.
struct WsMiddleware {
    child: Child,
    port: u16,
}

impl WsMiddleware {
    async fn start() -> WsMiddleware {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("python3")
            .arg(example())
            .env("GREYPROXY_TRANSPORT", "ws")
            .env("GREYPROXY_WS_PORT", port.to_string())
            .env("GREYPROXY_WS_HOST", "127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "ws middleware did not listen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        WsMiddleware { child, port }
    }
}

impl Drop for WsMiddleware {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the section and prints its table.
pub async fn run(cfg: &MitmCfg) {
    eprintln!("[middleware] origin, three daemons, a WebSocket middleware…");
    let ca = TestCa::new("greyproxy bench origin CA");
    let origin: SocketAddr = https_origin(&ca).await;
    let ca_arg = ca.pem_arg();
    let cmd = format!("python3 {}", example().display());
    let ws = WsMiddleware::start().await;
    let ws_url = format!("ws://127.0.0.1:{}/middleware", ws.port);
    // Warnings only: the example logs every message, which would otherwise measure logging.
    let plain = DaemonBuilder::new(&cfg.daemon)
        .args(&["--upstream-ca", &ca_arg])
        .env("RUST_LOG", "warn")
        .start()
        .await;
    let stdio = DaemonBuilder::new(&cfg.daemon)
        .args(&["--upstream-ca", &ca_arg, "--middleware-cmd", &cmd])
        .env("RUST_LOG", "warn")
        .start()
        .await;
    let wsd = DaemonBuilder::new(&cfg.daemon)
        .args(&["--upstream-ca", &ca_arg, "--middleware", &ws_url])
        .env("RUST_LOG", "warn")
        .start()
        .await;
    let tls = |d: &greyproxy_testkit::Daemon| -> Arc<ClientConfig> {
        client_config(&d.state_dir().join("ca-cert.pem"), &[b"http/1.1"])
    };
    let routes = [
        (
            "MITM, no middleware",
            Via::Http(plain.http.unwrap()),
            tls(&plain),
            daemon_pid(plain.state_dir()),
        ),
        (
            "MITM + passthrough (stdio)",
            Via::Http(stdio.http.unwrap()),
            tls(&stdio),
            daemon_pid(stdio.state_dir()),
        ),
        (
            "MITM + passthrough (WebSocket)",
            Via::Http(wsd.http.unwrap()),
            tls(&wsd),
            daemon_pid(wsd.state_dir()),
        ),
    ];
    for (name, via, tls, _) in &routes {
        let mut c = connect(*via, origin, tls.clone())
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let n = get(&mut c, &origin.to_string(), "/json")
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(n, JSON.len() as u64, "{name}");
    }
    let mut rows: Vec<(usize, &str, Rate)> = Vec::new();
    for &n in &cfg.conns {
        for (name, via, tls, pid) in &routes {
            eprintln!("[middleware] {n} connection(s), {name}…");
            let r = rate(
                Some(*pid),
                *via,
                origin,
                tls.clone(),
                n,
                cfg.warm,
                cfg.window,
            )
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
            rows.push((n, name, r));
        }
    }
    println!(
        "## Middleware overhead (HTTP/1.1 keep-alive over MITM, GET of a {}-byte JSON, {} s per row; Python passthrough example on request and response hooks)",
        JSON.len(),
        cfg.window.as_secs_f64()
    );
    println!();
    println!(
        "| conns | path | req/s | ÷ no middleware | p50 µs | p99 µs | added p50 µs | daemon CPU µs/req |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|");
    for &n in &cfg.conns {
        let base = rows.iter().find(|(c, _, _)| *c == n).map(|(_, _, r)| r);
        let base_rs = base.map(|r| r.requests as f64 / r.window.as_secs_f64());
        let base_p50 = base.map(|r| pct(&sorted(&r.micros), 50.0));
        for (c, name, r) in rows.iter().filter(|(c, _, _)| *c == n) {
            let v = sorted(&r.micros);
            let rs = r.requests as f64 / r.window.as_secs_f64();
            let p50 = pct(&v, 50.0);
            println!(
                "| {c} | {name} | {rs:.0} | {} | {p50:.0} | {:.0} | {} | {:.0} |",
                base_rs.map_or("—".into(), |b| format!("{:.2}×", rs / b)),
                pct(&v, 99.0),
                base_p50.map_or("—".into(), |b| format!("{:.0}", p50 - b)),
                r.cpu.1 * 1e6 / r.requests.max(1) as f64,
            );
        }
    }
    println!();
    drop(ws);
    let _ = plain.stop().await;
    let _ = stdio.stop().await;
    let _ = wsd.stop().await;
}
