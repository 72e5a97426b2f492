//! HTTP semantics through the interception (HEAD, 204/304, chunked keep-alive,
//! `Connection: close`, a slow origin) and plaintext HTTP: inside a CONNECT tunnel and in
//! absolute form, recorded as `http://` with the right port.

use std::sync::atomic::Ordering;
use std::time::Duration;

use greyproxy_testkit::eventually_every;
use greyproxy_testkit::fetch::fetch;
use greyproxy_testkit::https_origin::{CHUNKS, JSON_BODY, Origin};
use greyproxy_testkit::mitm::{MitmEnv, get_tx, mitm_of, transactions_for, tx_event};
use greyproxy_testkit::tls::{Sender, body_bytes, tls_via_connect};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_greyproxyd");

/// Waits until `n` transactions for `host` are recorded; returns them oldest first.
async fn recorded(env: &mut MitmEnv, host: &str, n: usize) -> Vec<Value> {
    let what = format!("{n} transactions for {host}");
    eventually_every(
        &what,
        Duration::from_secs(5),
        Duration::from_millis(100),
        async || {
            let mut all = transactions_for(&mut env.ws, host).await;
            if all.len() >= n {
                all.reverse();
                Ok(all)
            } else {
                Err(all)
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn head_then_get_on_one_connection_http1_and_h2() {
    let mut env = MitmEnv::start(BIN, "", &[]).await;
    let origin = Origin::https("127.0.0.52", &env.ca).await;
    let dca = env.daemon_ca();
    for alpn in [b"http/1.1".as_slice(), b"h2".as_slice()] {
        let tls = tls_via_connect(env.d.http.unwrap(), origin.addr, None, &dca, &[alpn])
            .await
            .unwrap();
        let mut s = Sender::handshake(tls).await;
        let head = s
            .send(&origin.authority(), "HEAD", "/json", Default::default())
            .await
            .unwrap();
        assert_eq!(head.status(), 200);
        let len = head.headers()["content-length"]
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(len, JSON_BODY.len().to_string(), "HEAD keeps GET's length");
        assert!(body_bytes(head).await.is_empty());
        // The same connection is still in step: the next response is the GET's.
        let get = tokio::time::timeout(Duration::from_secs(5), s.get(&origin.authority(), "/json"))
            .await
            .expect("no hang after HEAD")
            .unwrap();
        assert_eq!(body_bytes(get).await, JSON_BODY.as_bytes());
    }
    let txs = recorded(&mut env, "127.0.0.52", 4).await;
    let methods: Vec<&str> = txs.iter().map(|t| t["method"].as_str().unwrap()).collect();
    assert_eq!(methods, ["HEAD", "GET", "HEAD", "GET"]);
    let head = get_tx(&mut env.ws, &txs[2]["id"]).await;
    assert_eq!(head["status_code"], 200);
    assert_eq!(head["http_version"], "HTTP/2");
    assert!(head.get("response_body").is_none(), "{head}");
    assert_eq!(
        origin.connections.load(Ordering::SeqCst),
        2,
        "one per tunnel"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn no_body_statuses_and_chunked_keep_the_connection_alive() {
    let mut env = MitmEnv::start(BIN, "", &[]).await;
    let origin = Origin::https("127.0.0.53", &env.ca).await;
    let (p, dca) = (env.proxy_as_codex(), env.daemon_ca_arg());
    let urls: Vec<String> = ["/status/204", "/status/304", "/chunked", "/json"]
        .iter()
        .map(|u| origin.url(u))
        .collect();
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    let r = fetch(&["-x", &p, "--cacert", &dca, "--http1.1"], &urls).await;
    assert_eq!(r.exit, 0, "{r:?}");
    let st: Vec<u16> = r.transfers.iter().map(|t| t.status).collect();
    assert_eq!(st, [204, 304, 200, 200], "{r:?}");
    let conns: Vec<u32> = r.transfers.iter().map(|t| t.num_connects).collect();
    assert_eq!(conns, [1, 0, 0, 0], "one client connection for all: {r:?}");
    assert!(r.transfers[0].body.is_empty() && r.transfers[1].body.is_empty());
    assert_eq!(r.transfers[2].body, CHUNKS.concat().as_bytes());
    assert_eq!(r.transfers[3].body, JSON_BODY.as_bytes());
    let heads = r.headers.to_ascii_lowercase();
    assert!(heads.contains("transfer-encoding: chunked"), "{heads}");

    let txs = recorded(&mut env, "127.0.0.53", 4).await;
    let st: Vec<u64> = txs
        .iter()
        .map(|t| t["status_code"].as_u64().unwrap())
        .collect();
    assert_eq!(st, [204, 304, 200, 200]);
    let chunked = get_tx(&mut env.ws, &txs[2]["id"]).await;
    assert_eq!(chunked["response_body"], CHUNKS.concat());
    assert_eq!(chunked["response_body_size"], CHUNKS.concat().len());
    let no_content = get_tx(&mut env.ws, &txs[0]["id"]).await;
    assert!(no_content.get("response_body").is_none(), "{no_content}");
}

#[tokio::test(flavor = "multi_thread")]
async fn origin_connection_close_then_next_request_still_works() {
    let mut env = MitmEnv::start(BIN, "", &[]).await;
    let origin = Origin::https("127.0.0.54", &env.ca).await;
    let (p, dca) = (env.proxy_as_codex(), env.daemon_ca_arg());
    let (u1, u2) = (origin.url("/close"), origin.url("/json"));
    let r = fetch(&["-x", &p, "--cacert", &dca, "--http1.1"], &[&u1, &u2]).await;
    assert_eq!(r.exit, 0, "{r:?}");
    for t in &r.transfers {
        assert_eq!(t.status, 200);
        assert_eq!(t.body, JSON_BODY.as_bytes());
    }
    assert_eq!(r.transfers.len(), 2);
    assert_eq!(
        origin.connections.load(Ordering::SeqCst),
        2,
        "the origin closed after /close, so the daemon dialled again"
    );
    let txs = recorded(&mut env, "127.0.0.54", 2).await;
    assert_eq!(txs[0]["url"], u1);
    assert_eq!(txs[1]["url"], u2);
    assert!(txs.iter().all(|t| t["status_code"] == 200));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_origin_slower_than_response_timeout_gets_504() {
    let cfg = "[capture]\nresponse_timeout = 1\n";
    let mut env = MitmEnv::start(BIN, cfg, &[]).await;
    let origin = Origin::https("127.0.0.55", &env.ca).await;
    let (p, dca) = (env.proxy_as_codex(), env.daemon_ca_arg());
    let r = fetch(
        &["-x", &p, "--cacert", &dca],
        &[&origin.url("/slow?ms=4000")],
    )
    .await;
    assert_eq!(r.status(), 504, "{r:?}");
    assert!(r.elapsed < Duration::from_secs(3), "{r:?}");
    let ev = tx_event(&mut env.ws, "/slow?ms=4000").await;
    assert_eq!(ev["result"], "error", "{ev}");
    assert_eq!(ev["status_code"], 504);
    assert!(
        ev["error"].as_str().unwrap().contains("did not answer"),
        "{ev}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn plaintext_http_inside_connect_is_recorded_as_http_with_its_port() {
    let mut env = MitmEnv::start(BIN, "", &[]).await;
    let origin = Origin::plain("127.0.0.56").await;
    let p = env.proxy_as_codex();
    let url = origin.url("/json?x=1");
    let r = fetch(&["-p", "-x", &p, "-H", "Authorization: Bearer s"], &[&url]).await;
    assert_eq!(r.status(), 200, "{r:?}");
    assert_eq!(r.body(), JSON_BODY.as_bytes());
    let ev = tx_event(&mut env.ws, "/json?x=1").await;
    assert_eq!(ev["url"], format!("http://{}/json?x=1", origin.authority()));
    assert_eq!(ev["destination_port"], origin.addr.port());
    assert_eq!(ev["container_name"], "codex");
    let t = get_tx(&mut env.ws, &ev["id"]).await;
    assert_eq!(t["response_body"], JSON_BODY);
    assert_eq!(
        t["request_headers"]["Authorization"][0], "[REDACTED]",
        "{t}"
    );
    let port = origin.addr.port();
    assert_eq!(mitm_of(&mut env.ws, "127.0.0.56", port).await, "http");
}

#[tokio::test(flavor = "multi_thread")]
async fn absolute_form_requests_are_recorded_as_http() {
    let mut env = MitmEnv::start(BIN, "", &[]).await;
    let origin = Origin::plain("127.0.0.57").await;
    let p = env.proxy_as_codex();
    let (u1, u2) = (origin.url("/json"), origin.url("/echo"));
    let r = fetch(&["-x", &p], &[&u1]).await;
    assert_eq!(r.body(), JSON_BODY.as_bytes(), "{r:?}");
    let r = fetch(
        &[
            "-x",
            &p,
            "-H",
            "Content-Type: application/json",
            "--data",
            "{\"a\":1}",
        ],
        &[&u2],
    )
    .await;
    assert_eq!(r.text(), "{\"a\":1}");
    let ev = tx_event(&mut env.ws, "/json").await;
    assert_eq!(ev["url"], u1);
    assert!(u1.starts_with("http://127.0.0.57:"));
    let ev = tx_event(&mut env.ws, "/echo").await;
    assert_eq!(ev["url"], u2);
    assert_eq!(ev["method"], "POST");
    let t = get_tx(&mut env.ws, &ev["id"]).await;
    assert_eq!(t["request_body"], "{\"a\":1}");
}

/// Body and trailers of `/trailers` sent with `TE: trailers`, plus the `x-seen-te` header.
async fn get_trailers(
    s: &mut Sender,
    authority: &str,
) -> (Vec<u8>, Option<String>, Option<String>) {
    use http_body_util::BodyExt;
    let r = s
        .send_with(
            authority,
            "GET",
            "/trailers",
            &[("te", "trailers")],
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen_te = r
        .headers()
        .get("x-seen-te")
        .map(|v| v.to_str().unwrap().to_string());
    let collected = r.into_body().collect().await.unwrap();
    let trailer = collected
        .trailers()
        .and_then(|t| t.get("x-checksum"))
        .map(|v| v.to_str().unwrap().to_string());
    (collected.to_bytes().to_vec(), trailer, seen_te)
}

#[tokio::test(flavor = "multi_thread")]
async fn trailers_and_te_trailers_pass_through_http1_and_h2() {
    use greyproxy_testkit::https_origin::TRAILER_VALUE;
    use greyproxy_testkit::tls::tls_connect;
    let mut env = MitmEnv::start(BIN, "", &[]).await;
    let origin = Origin::https("127.0.0.68", &env.ca).await;
    let dca = env.daemon_ca();
    for alpn in [b"h2".as_slice(), b"http/1.1".as_slice()] {
        let name = String::from_utf8_lossy(alpn).into_owned();
        // Direct first: the origin does send them.
        let tcp = tokio::net::TcpStream::connect(origin.addr).await.unwrap();
        let tls = tls_connect(tcp, &origin.ip(), env.ca.pem_path(), &[alpn])
            .await
            .unwrap();
        let direct = get_trailers(&mut Sender::handshake(tls).await, &origin.authority()).await;
        assert_eq!(direct.1.as_deref(), Some(TRAILER_VALUE), "{name} direct");
        let tls = tls_via_connect(env.d.http.unwrap(), origin.addr, None, &dca, &[alpn])
            .await
            .unwrap();
        let via = get_trailers(&mut Sender::handshake(tls).await, &origin.authority()).await;
        assert_eq!(via.0, direct.0, "{name}");
        assert_eq!(
            via.2.as_deref(),
            Some("trailers"),
            "{name}: TE: trailers reaches the origin"
        );
        assert_eq!(
            via.1.as_deref(),
            Some(TRAILER_VALUE),
            "{name}: trailers reach the client"
        );
    }
    let txs = recorded(&mut env, "127.0.0.68", 2).await;
    assert!(txs.iter().all(|t| t["status_code"] == 200));
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_http_inside_an_intercepted_tunnel_gets_400_and_close() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let env = MitmEnv::start(BIN, "", &[]).await;
    let origin = Origin::https("127.0.0.72", &env.ca).await;
    let mut tls = tls_via_connect(
        env.d.http.unwrap(),
        origin.addr,
        None,
        &env.daemon_ca(),
        &[],
    )
    .await
    .unwrap();
    tls.write_all(b"THIS IS NOT HTTP\r\n\r\n").await.unwrap();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the daemon closes the connection");
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 400"), "{text:?}");
    assert!(origin.requests().is_empty());
}
