//! Running under a service manager: the systemd units verify, readiness is signalled over
//! `$NOTIFY_SOCKET` only once the ports accept (then watchdog pings, and `STOPPING=1` on
//! SIGTERM), SIGTERM during a hold answers the held clients and exits 0, and SIGHUP picks up a
//! new MITM bypass list without dropping open tunnels.

use std::net::{SocketAddr, TcpStream as StdTcp};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use greyproxy_testkit::fetch::fetch;
use greyproxy_testkit::https_origin::Origin;
use greyproxy_testkit::mitm::{MitmEnv, allow_loopback, mitm_outcomes};
use greyproxy_testkit::origin::echo_origin;
use greyproxy_testkit::raw::{
    SocksTarget, closed_within, echo_roundtrip, http_connect_send, read_connect_reply,
    read_socks_reply, socks5_connect, socks5_send,
};
use greyproxy_testkit::tls::{Sender, TestCa, tls_via_connect};
use greyproxy_testkit::wait::POLL;
use greyproxy_testkit::{Control, DaemonBuilder, Text, eventually_sync, within_blocking};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_greyproxyd");

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

fn wait_exit(child: &mut Child, within: Duration) -> ExitStatus {
    match within_blocking(within, || child.try_wait().unwrap().ok_or(())) {
        Ok(s) => s,
        Err(()) => {
            let _ = child.kill();
            panic!("daemon did not exit within {within:?}");
        }
    }
}

fn spawn(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Child {
    let log = std::fs::File::create(dir.join("daemon.log")).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg("serve")
        .arg("--state-dir")
        .arg(dir)
        .args(["--control-addr", "127.0.0.1:0"])
        .args(["--http-addr", "127.0.0.1:0", "--socks-addr", "127.0.0.1:0"])
        .args(["--dns-addr", "127.0.0.1:0"])
        .args(extra)
        .env("RUST_LOG", "greyproxyd=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

fn log_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default()
}

#[test]
fn systemd_units_verify() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("skipped: systemd-analyze is not installed");
        return;
    }
    let units = Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd");
    let tmp = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for name in ["greyproxyd.service", "greyproxyd.user.service"] {
        let text = std::fs::read_to_string(units.join(name)).unwrap();
        assert!(
            text.contains("ExecStart=/usr/local/bin/greyproxyd serve"),
            "{name}"
        );
        assert!(text.contains("Type=notify"), "{name}");
        // `verify` checks that the binary exists: point it at the one just built.
        let p = tmp.path().join(name);
        std::fs::write(&p, text.replace("/usr/local/bin/greyproxyd", BIN)).unwrap();
        files.push(p);
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&files)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{err}"
    );
    assert!(
        err.trim().is_empty(),
        "systemd-analyze verify warned:\n{err}"
    );
}

/// Receives one datagram within `within`.
fn recv(sock: &UnixDatagram, within: Duration) -> String {
    sock.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).expect("a notification");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn ready_only_once_ports_accept_then_watchdog_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    let notify = sock_path.to_str().unwrap();
    let mut child = spawn(
        dir.path(),
        &[],
        &[("NOTIFY_SOCKET", notify), ("WATCHDOG_USEC", "400000")],
    );
    let msg = recv(&sock, Duration::from_secs(20));
    assert!(msg.lines().any(|l| l == "READY=1"), "{msg}");
    // At this very moment every listener accepts, and daemon.json names them.
    let rt: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("daemon.json")).unwrap())
            .unwrap();
    for k in ["control", "http", "socks5", "dns"] {
        let addr = rt["listeners"][k].as_str().unwrap();
        StdTcp::connect(addr).unwrap_or_else(|e| panic!("{k} {addr}: {e}"));
        assert!(msg.contains(addr), "STATUS names {addr}: {msg}");
    }
    let status = msg.lines().find(|l| l.starts_with("STATUS=")).unwrap();
    assert!(status.contains("listening"), "{status}");
    // Pings at half of WATCHDOG_USEC.
    let ping = recv(&sock, Duration::from_secs(5));
    assert_eq!(ping.trim(), "WATCHDOG=1");
    signal(child.id(), "TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = recv(&sock, Duration::from_secs(10));
        if m.lines().any(|l| l == "STOPPING=1") {
            break;
        }
        assert!(Instant::now() < deadline, "no STOPPING=1");
    }
    let status = wait_exit(&mut child, Duration::from_secs(15));
    assert!(status.success(), "{status}; log:\n{}", log_of(dir.path()));
    assert!(!dir.path().join("daemon.json").exists());
}

/// A daemon of our own (for its exit status): the child, its listeners and a control client.
async fn start(dir: &Path, extra: &[&str]) -> (Child, Value, Control) {
    let mut child = spawn(dir, extra, &[]);
    let rt = eventually_sync("daemon.json", Duration::from_secs(20), POLL, || {
        if let Ok(t) = std::fs::read_to_string(dir.join("daemon.json"))
            && let Ok(v) = serde_json::from_str::<Value>(&t)
        {
            return Ok(v);
        }
        assert!(child.try_wait().unwrap().is_none(), "{}", log_of(dir));
        Err(Text(log_of(dir)))
    })
    .await;
    let token = std::fs::read_to_string(dir.join("control.token")).unwrap();
    let url = format!("ws://{}/ws", rt["listeners"]["control"].as_str().unwrap());
    let ws = Control::connect(&url, Some(token.trim())).await.unwrap();
    (child, rt, ws)
}

fn listener(rt: &Value, k: &str) -> SocketAddr {
    rt["listeners"][k].as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_a_hold_answers_the_held_clients_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, rt, mut ws) = start(dir.path(), &["--hold-timeout", "120"]).await;
    let addr = |k: &str| listener(&rt, k);

    let held_http = echo_origin("127.0.3.1").await;
    let held_socks = echo_origin("127.0.3.2").await;
    let mut h = http_connect_send(addr("http"), &held_http.to_string(), Some("codex")).await;
    let mut s = socks5_send(
        addr("socks5"),
        &SocksTarget::Ip(held_socks),
        Some(("codex", "x")),
    )
    .await;
    ws.pending_for("127.0.3.1", held_http.port()).await;
    ws.pending_for("127.0.3.2", held_socks.port()).await;

    let t0 = Instant::now();
    signal(child.id(), "TERM");
    let reply = read_connect_reply(&mut h).await;
    assert_eq!(reply.status, 403, "{reply:?}");
    assert_eq!(read_socks_reply(&mut s).await, Some(2));
    let status = wait_exit(&mut child, Duration::from_secs(15));
    assert!(status.success(), "{status}; log:\n{}", log_of(dir.path()));
    // Nothing else was open: no grace period to sit out.
    assert!(t0.elapsed() < Duration::from_secs(8), "{:?}", t0.elapsed());
    assert!(!dir.path().join("daemon.json").exists());
    assert!(log_of(dir.path()).contains("stopped"));
}

#[tokio::test(flavor = "multi_thread")]
async fn open_tunnels_get_the_grace_period_then_are_cut() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "shutdown_grace = 2\n").unwrap();
    let (mut child, rt, mut ws) = start(dir.path(), &["--config", cfg.to_str().unwrap()]).await;
    allow_loopback(&mut ws).await;
    let echo = echo_origin("127.0.3.20").await;
    let socks = listener(&rt, "socks5");
    let (mut t, rep) = socks5_connect(socks, &SocksTarget::Ip(echo), Some(("codex", "x"))).await;
    assert_eq!(rep, Some(0));
    echo_roundtrip(&mut t, b"before").await;
    let t0 = Instant::now();
    signal(child.id(), "TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // No new clients, but the open tunnel still works.
    assert!(tokio::net::TcpStream::connect(socks).await.is_err());
    echo_roundtrip(&mut t, b"during the grace period").await;
    assert!(closed_within(&mut t, Duration::from_secs(10)).await);
    let cut_after = t0.elapsed();
    assert!(cut_after >= Duration::from_millis(1500), "{cut_after:?}");
    let status = wait_exit(&mut child, Duration::from_secs(10));
    assert!(status.success(), "{status}; log:\n{}", log_of(dir.path()));
    assert!(log_of(dir.path()).contains("cutting open connections"));
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_keep_alive_connections_do_not_delay_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("operations origin CA");
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "shutdown_grace = 30\n").unwrap();
    let (cfg_arg, ca_arg) = (cfg.display().to_string(), ca.pem_arg());
    let (mut child, rt, mut ws) = start(
        dir.path(),
        &["--config", &cfg_arg, "--upstream-ca", &ca_arg],
    )
    .await;
    allow_loopback(&mut ws).await;
    let origin = Origin::https("127.0.3.21", &ca).await;
    let plain = Origin::plain("127.0.3.22").await;
    let (proxy, dca) = (listener(&rt, "http"), dir.path().join("ca-cert.pem"));
    let mut senders = Vec::new();
    for alpn in [b"http/1.1".as_slice(), b"h2".as_slice()] {
        let tls = tls_via_connect(proxy, origin.addr, Some("codex"), &dca, &[alpn])
            .await
            .unwrap();
        let mut s = Sender::handshake(tls).await;
        let r = s.get(&origin.authority(), "/json").await.unwrap();
        assert_eq!(r.status(), 200);
        senders.push(s);
    }
    // An absolute-form client on a keep-alive connection, idle after its request.
    let mut raw = tokio::net::TcpStream::connect(proxy).await.unwrap();
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\n\r\n",
        plain.url("/json"),
        plain.authority()
    );
    raw.write_all(req.as_bytes()).await.unwrap();
    let mut buf = [0u8; 12];
    raw.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"HTTP/1.1 200");
    let t0 = Instant::now();
    signal(child.id(), "TERM");
    let status = wait_exit(&mut child, Duration::from_secs(20));
    assert!(status.success(), "{status}; log:\n{}", log_of(dir.path()));
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    drop(senders);
}

async fn curl_with_ca(proxy: &str, ca: &str, url: &str) -> Result<u16, i32> {
    let r = fetch(&["-x", proxy, "--cacert", ca], &[url]).await;
    if r.exit == 0 {
        Ok(r.status())
    } else {
        Err(r.exit)
    }
}

async fn reload_and_wait(env: &MitmEnv, nth: usize) -> String {
    let pid: Value = serde_json::from_str(
        &std::fs::read_to_string(env.d.state_dir().join("daemon.json")).unwrap(),
    )
    .unwrap();
    signal(pid["pid"].as_u64().unwrap() as u32, "HUP");
    let what = format!("reload {nth} logged");
    eventually_sync(&what, Duration::from_secs(10), POLL, || {
        let log = env.d.log();
        let n = log.matches("reloaded ").count() + log.matches("config reload failed").count();
        if n >= nth { Ok(log) } else { Err(Text(log)) }
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_picks_up_a_new_bypass_list_and_keeps_tunnels() {
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = cfg_dir.path().join("greyproxyd.toml");
    std::fs::write(&cfg, "[mitm]\nbypass = [\"*.pinned.example\"]\n").unwrap();
    let cfg_arg = cfg.display().to_string();
    let mut env = MitmEnv::start(BIN, "", &["--config", &cfg_arg]).await;
    let origin = Origin::https("127.0.3.10", &env.ca).await;
    let echo = echo_origin("127.0.3.11").await;
    let (p, dca, ca, url) = (
        env.proxy_as_codex(),
        env.daemon_ca_arg(),
        env.ca.pem_arg(),
        origin.url("/json"),
    );
    // Before: intercepted (our CA).
    assert_eq!(curl_with_ca(&p, &dca, &url).await, Ok(200));
    // A tunnel open across the reload.
    let (mut tunnel, rep) = socks5_connect(
        env.d.socks.unwrap(),
        &SocksTarget::Ip(echo),
        Some(("codex", "x")),
    )
    .await;
    assert_eq!(rep, Some(0));
    echo_roundtrip(&mut tunnel, b"before").await;

    std::fs::write(&cfg, "[mitm]\nbypass = [\"127.0.3.10\"]\n").unwrap();
    let log = reload_and_wait(&env, 1).await;
    assert!(log.contains("1 bypass globs"), "{log}");
    // After: tunnelled raw (the origin's own certificate).
    assert_eq!(curl_with_ca(&p, &ca, &url).await, Ok(200));
    assert_eq!(curl_with_ca(&p, &dca, &url).await, Err(60));
    let got = mitm_outcomes(&mut env.ws, "127.0.3.10", origin.addr.port(), 3).await;
    assert_eq!(got, ["intercepted", "mitm_bypass", "mitm_bypass"]);
    echo_roundtrip(&mut tunnel, b"after").await;

    // A broken file keeps the previous settings and names the key.
    std::fs::write(&cfg, "[mitm]\nbypass = [\"x\"]\nbypas = 3\n").unwrap();
    let log = reload_and_wait(&env, 2).await;
    assert!(log.contains("config reload failed"), "{log}");
    assert!(log.contains("bypas") && log.contains("line 3"), "{log}");
    assert_eq!(curl_with_ca(&p, &ca, &url).await, Ok(200));
    echo_roundtrip(&mut tunnel, b"still").await;
}

#[tokio::test]
async fn reload_without_a_config_file_is_harmless() {
    let d = DaemonBuilder::new(BIN).start().await;
    let pid: Value =
        serde_json::from_str(&std::fs::read_to_string(d.state_dir().join("daemon.json")).unwrap())
            .unwrap();
    signal(pid["pid"].as_u64().unwrap() as u32, "HUP");
    let what = "\"nothing to reload\" logged";
    eventually_sync(what, Duration::from_secs(10), POLL, || {
        let log = d.log();
        if log.contains("nothing to reload") {
            Ok(())
        } else {
            Err(Text(log))
        }
    })
    .await;
    let mut c = d.client().await;
    let s = c.query(serde_json::json!({"command":"status"})).await;
    assert!(s["listeners"]["control"].is_string(), "{s}");
}
