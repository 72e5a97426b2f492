//! What happens to tunnels besides plain interception: a deny rule created mid-tunnel, an
//! origin with an untrusted certificate, server-speaks-first protocols, `--no-mitm` and the
//! bypass list, a client that rejects our certificate, and a CA rotated while running.

use std::time::Duration;

use greyproxy_testkit::fetch::fetch;
use greyproxy_testkit::https_origin::{BANNER, JSON_BODY, Origin, banner_origin};
use greyproxy_testkit::mitm::{MitmEnv, allow_loopback, mitm_outcomes, transactions_for, tx_event};
use greyproxy_testkit::origin::echo_origin;
use greyproxy_testkit::raw::{SocksTarget, echo_roundtrip, http_connect, socks5_connect};
use greyproxy_testkit::tls::{Sender, TestCa, body_bytes, tls_connect, tls_via_connect};
use greyproxy_testkit::{DaemonBuilder, Text, eventually_every};
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

const BIN: &str = env!("CARGO_BIN_EXE_greyproxyd");

#[tokio::test(flavor = "multi_thread")]
async fn deny_rule_created_mid_tunnel_answers_the_next_request_403() {
    let mut env = MitmEnv::start(BIN, "", &[]).await;
    let origin = Origin::https("127.0.0.58", &env.ca).await;
    let (proxy, dca, auth) = (env.d.http.unwrap(), env.daemon_ca(), origin.authority());
    let mut senders = Vec::new();
    for alpn in [b"http/1.1".as_slice(), b"h2".as_slice()] {
        let tls = tls_via_connect(proxy, origin.addr, Some("codex"), &dca, &[alpn])
            .await
            .unwrap();
        let mut s = Sender::handshake(tls).await;
        let r = s.get(&auth, "/json").await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(body_bytes(r).await, JSON_BODY.as_bytes());
        senders.push(s);
    }
    let r = env
        .ws
        .cmd(json!({"command":"create_rule","container_pattern":"codex",
                    "destination_pattern":"127.0.0.58","port_pattern":origin.addr.port().to_string(),
                    "action":"deny"}))
        .await;
    assert_eq!(r["type"], "command_success", "{r}");
    let rule_id = r["rule_id"].clone();
    for s in &mut senders {
        let r = s
            .get(&auth, "/json?after=deny")
            .await
            .expect("tunnel still open");
        assert_eq!(r.status(), 403, "{s:?}");
        let len: usize = r.headers()["content-length"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let body = body_bytes(r).await;
        assert_eq!(len, body.len(), "Content-Length matches the body");
        assert!(
            String::from_utf8_lossy(&body).contains("denied"),
            "{body:?}"
        );
    }
    assert_eq!(
        origin.requests().len(),
        2,
        "denied requests never reach the origin"
    );
    for _ in 0..2 {
        let ev = tx_event(&mut env.ws, "/json?after=deny").await;
        assert_eq!(ev["result"], "denied", "{ev}");
        assert_eq!(ev["status_code"], 403);
        assert_eq!(ev["rule_id"], rule_id);
        assert_eq!(ev["container_name"], "codex");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn origin_with_untrusted_certificate_gets_502_with_the_reason() {
    let mut env = MitmEnv::start(BIN, "", &[]).await;
    let origin = Origin::self_signed("127.0.0.59").await;
    let (p, dca) = (env.proxy_as_codex(), env.daemon_ca_arg());
    for proto in ["--http1.1", "--http2"] {
        let r = fetch(
            &["-x", &p, "--cacert", &dca, proto],
            &[&origin.url("/json")],
        )
        .await;
        assert_eq!(r.status(), 502, "{proto}: {r:?}");
        let text = r.text().to_ascii_lowercase();
        assert!(text.contains("certificate"), "{proto}: {text}");
        assert!(text.contains("127.0.0.59"), "{text}");
        assert!(
            r.headers
                .to_ascii_lowercase()
                .contains("content-type: text/plain")
        );
    }
    // A client that speaks only h2 (gRPC-style ALPN offer) gets the 502 over h2.
    let proxy: std::net::SocketAddr = env.d.http.unwrap();
    let tls = tls_via_connect(proxy, origin.addr, None, &env.daemon_ca(), &[b"h2"])
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let mut client = Sender::handshake(tls).await;
    let resp = client.get(&origin.addr.to_string(), "/json").await.unwrap();
    assert_eq!(resp.status(), 502);
    let text = String::from_utf8_lossy(&body_bytes(resp).await).to_ascii_lowercase();
    assert!(text.contains("certificate"), "{text}");

    assert!(origin.requests().is_empty());
    let port = origin.addr.port();
    let got = mitm_outcomes(&mut env.ws, "127.0.0.59", port, 3).await;
    assert_eq!(got, ["upstream_tls_error"; 3]);
}

async fn banner_then_echo(s: &mut TcpStream) {
    let mut got = vec![0u8; BANNER.len()];
    tokio::time::timeout(Duration::from_secs(3), s.read_exact(&mut got))
        .await
        .expect("the banner arrives although the client said nothing")
        .unwrap();
    assert_eq!(got, BANNER);
    echo_roundtrip(s, b"EHLO client\r\n").await;
    echo_roundtrip(s, &[0x16, 0x03, 0x01, 0, 1, 0]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn server_speaks_first_through_connect_and_socks() {
    let mut env = MitmEnv::start(BIN, "[mitm]\nsniff_timeout_ms = 300\n", &[]).await;
    let addr = banner_origin("127.0.0.60").await;
    let (mut s, reply) = http_connect(env.d.http.unwrap(), &addr.to_string(), None).await;
    assert_eq!(reply.status, 200, "{}", reply.head);
    banner_then_echo(&mut s).await;
    let (mut s2, rep) = socks5_connect(env.d.socks.unwrap(), &SocksTarget::Ip(addr), None).await;
    assert_eq!(rep, Some(0));
    banner_then_echo(&mut s2).await;
    let got = mitm_outcomes(&mut env.ws, "127.0.0.60", addr.port(), 2).await;
    assert_eq!(got, ["server_first", "server_first"]);
}

/// `curl --cacert ca` through the proxy: Ok(status) or Err(exit code).
async fn curl_with_ca(proxy: &str, ca: &str, url: &str) -> Result<u16, i32> {
    let r = fetch(&["-x", proxy, "--cacert", ca], &[url]).await;
    if r.exit == 0 {
        Ok(r.status())
    } else {
        Err(r.exit)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_mitm_tunnels_raw_with_the_origins_own_certificate() {
    let ca = TestCa::new("no-mitm origin CA");
    let origin = Origin::https("127.0.0.61", &ca).await;
    // A daemon CA exists (generated beforehand) but --no-mitm must not use it.
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(BIN)
        .args(["cert", "generate", "--state-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let d = DaemonBuilder::new(BIN)
        .args(&["--no-mitm", "--upstream-ca", &ca.pem_arg()])
        .start_in(dir)
        .await;
    let mut ws = d.client().await;
    allow_loopback(&mut ws).await;
    let dca = d.state_dir().join("ca-cert.pem").display().to_string();
    let (p, url) = (d.http_proxy(), origin.url("/json"));
    assert_eq!(curl_with_ca(&p, &ca.pem_arg(), &url).await, Ok(200));
    assert_eq!(
        curl_with_ca(&p, &dca, &url).await,
        Err(60),
        "not our certificate"
    );
    let got = mitm_outcomes(&mut ws, "127.0.0.61", origin.addr.port(), 2).await;
    assert_eq!(got, ["mitm_disabled", "mitm_disabled"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(transactions_for(&mut ws, "127.0.0.61").await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn bypassed_hosts_tunnel_raw_and_others_are_intercepted() {
    let cfg = "[mitm]\nbypass = [\"*.pinned.example\", \"127.0.0.62\", \"LocalHost\"]\n";
    let mut env = MitmEnv::start(BIN, cfg, &[]).await;
    let pinned = Origin::https("127.0.0.62", &env.ca).await;
    let other = Origin::https("127.0.0.63", &env.ca).await;
    let (p, dca, ca) = (env.proxy_as_codex(), env.daemon_ca_arg(), env.ca.pem_arg());
    let url = pinned.url("/json");
    assert_eq!(
        curl_with_ca(&p, &ca, &url).await,
        Ok(200),
        "origin's own cert"
    );
    assert_eq!(curl_with_ca(&p, &dca, &url).await, Err(60));
    let port = pinned.addr.port();
    let got = mitm_outcomes(&mut env.ws, "127.0.0.62", port, 2).await;
    assert_eq!(got, ["mitm_bypass", "mitm_bypass"]);

    assert_eq!(curl_with_ca(&p, &dca, &other.url("/json")).await, Ok(200));
    assert_eq!(curl_with_ca(&p, &ca, &other.url("/json")).await, Err(60));
    tx_event(&mut env.ws, &other.url("/json")).await;
    let port = other.addr.port();
    // The SNI name counts too: "localhost" is bypassed whatever the CONNECT target.
    let (tcp, reply) = http_connect(env.d.http.unwrap(), &other.authority(), None).await;
    assert_eq!(reply.status, 200);
    let tls = tls_connect(tcp, "localhost", env.ca.pem_path(), &[b"http/1.1"])
        .await
        .expect("the origin's own certificate for localhost");
    let r = Sender::handshake(tls)
        .await
        .get("localhost", "/json")
        .await
        .unwrap();
    assert_eq!(body_bytes(r).await, JSON_BODY.as_bytes());
    let got = mitm_outcomes(&mut env.ws, "127.0.0.63", port, 3).await;
    assert_eq!(got, ["intercepted", "mitm_error", "mitm_bypass"]);
    assert!(transactions_for(&mut env.ws, "127.0.0.62").await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_rejecting_our_certificate_fails_and_the_daemon_keeps_serving() {
    let mut env = MitmEnv::start(BIN, "", &[]).await;
    let origin = Origin::https("127.0.0.64", &env.ca).await;
    let (p, url) = (env.proxy_as_codex(), origin.url("/json"));
    // Trusting only the origin's CA (curl's own store may differ between systems).
    let ca = env.ca.pem_arg();
    for _ in 0..2 {
        let r = fetch(&["-x", &p, "--cacert", &ca], &[&url]).await;
        assert_eq!(r.exit, 60, "certificate error expected: {r:?}");
        assert!(
            r.stderr.to_ascii_lowercase().contains("certificate"),
            "{r:?}"
        );
    }
    // Plain curl with its default store does not know our CA either.
    let r = fetch(&["-x", &p], &[&url]).await;
    assert_eq!(r.exit, 60, "{r:?}");
    let dca = env.daemon_ca_arg();
    assert_eq!(curl_with_ca(&p, &dca, &url).await, Ok(200));
    let port = origin.addr.port();
    let got = mitm_outcomes(&mut env.ws, "127.0.0.64", port, 4).await;
    assert_eq!(
        got,
        ["mitm_error", "mitm_error", "mitm_error", "intercepted"]
    );
    let hints = env.d.log().matches("add the host to mitm.bypass").count();
    assert_eq!(hints, 1, "warned once per host:\n{}", env.d.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_regenerated_ca_is_used_for_new_connections_within_seconds() {
    let env = MitmEnv::start(BIN, "", &[]).await;
    let origin = Origin::https("127.0.0.65", &env.ca).await;
    let (p, url) = (env.proxy_as_codex(), origin.url("/json"));
    let old = tempfile::NamedTempFile::new().unwrap();
    std::fs::copy(env.daemon_ca(), old.path()).unwrap();
    let old_arg = old.path().display().to_string();
    assert_eq!(curl_with_ca(&p, &old_arg, &url).await, Ok(200));

    let out = std::process::Command::new(BIN)
        .args(["cert", "generate", "--force", "--state-dir"])
        .arg(env.d.state_dir())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let new_pem = std::fs::read(env.daemon_ca()).unwrap();
    assert_ne!(
        new_pem,
        std::fs::read(old.path()).unwrap(),
        "a new CA was written"
    );
    let new_arg = env.daemon_ca_arg();
    let what = "the new CA to be used (curl's result, the daemon log)";
    eventually_every(
        what,
        Duration::from_secs(5),
        Duration::from_millis(200),
        async || match curl_with_ca(&p, &new_arg, &url).await {
            Ok(200) => Ok(()),
            other => Err((other, Text(env.d.log()))),
        },
    )
    .await;
    assert_eq!(
        curl_with_ca(&p, &old_arg, &url).await,
        Err(60),
        "old CA no longer used"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn non_tls_bytes_are_relayed_raw_and_unreachable_origins_get_502() {
    let mut env = MitmEnv::start(BIN, "", &[]).await;
    let echo = echo_origin("127.0.0.73").await;
    let (mut s, reply) = http_connect(env.d.http.unwrap(), &echo.to_string(), None).await;
    assert_eq!(reply.status, 200);
    echo_roundtrip(&mut s, b"SSH-2.0-OpenSSH_9.6\r\n").await;
    echo_roundtrip(&mut s, b"more bytes").await;
    let got = mitm_outcomes(&mut env.ws, "127.0.0.73", echo.port(), 1).await;
    assert_eq!(got, ["non_tls"]);

    // Nothing listens there: the CONNECT is answered 502 and the row says why.
    let closed = std::net::TcpListener::bind("127.0.0.74:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let (_, reply) = http_connect(env.d.http.unwrap(), &format!("127.0.0.74:{port}"), None).await;
    assert_eq!(reply.status, 502, "{}", reply.head);
    let got = mitm_outcomes(&mut env.ws, "127.0.0.74", port, 1).await;
    assert_eq!(got, ["connect_failed"]);
}
