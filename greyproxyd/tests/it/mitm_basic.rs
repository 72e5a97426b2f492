//! TLS interception end to end with real curl: through the HTTP proxy and SOCKS5, HTTP/1.1 and
//! HTTP/2, the client gets the origin's bytes, a `transaction.new` event arrives and
//! `get_transaction` shows what happened with secrets redacted; the tunnel's row says
//! `intercepted`.

use greyproxy_testkit::fetch::fetch;
use greyproxy_testkit::https_origin::{JSON_BODY, Origin};
use greyproxy_testkit::mitm::{MitmEnv, get_tx, header, mitm_of, tx_event};
use greyproxy_testkit::raw::http_connect;
use greyproxy_testkit::tls::{Sender, body_bytes, tls_connect};
use http::Version;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_greyproxyd");

#[derive(Clone, Copy, PartialEq)]
enum Front {
    Http,
    Socks,
}

/// One GET `/json` with `Authorization: Bearer secret` through `front`, asserting everything a
/// user sees; returns the stored transaction.
async fn intercepted_get(ip: &str, front: Front, h2: bool) -> Value {
    let mut env = MitmEnv::start(BIN, "", &[]).await;
    let origin = Origin::https(ip, &env.ca).await;
    let url = origin.url("/json");
    let auth = ["-H", "Authorization: Bearer secret"];
    let proto = if h2 { "--http2" } else { "--http1.1" };

    let ca = env.ca.pem_arg();
    let direct = fetch(&[&["--cacert", &ca, proto][..], &auth].concat(), &[&url]).await;
    assert_eq!(direct.status(), 200, "{direct:?}");

    let dca = env.daemon_ca_arg();
    let http_proxy = env.proxy_as_codex();
    let socks = env.d.socks_proxy();
    let via: Vec<&str> = match front {
        Front::Http => vec!["-x", &http_proxy],
        Front::Socks => vec!["--socks5-hostname", &socks, "--proxy-user", "codex:x"],
    };
    let r = fetch(
        &[&via[..], &["--cacert", &dca, proto], &auth].concat(),
        &[&url],
    )
    .await;
    assert_eq!(r.exit, 0, "{r:?}\n{}", env.d.log());
    assert_eq!(r.status(), 200, "{r:?}");
    assert_eq!(
        r.body(),
        direct.body(),
        "the client gets the origin's bytes"
    );
    assert_eq!(r.body(), JSON_BODY.as_bytes());
    assert_eq!(r.version(), if h2 { "2" } else { "1.1" }, "{r:?}");

    // The origin got the real header and (with --http2) chose h2 on the daemon's connection.
    let seen = origin.requests();
    let last = seen.last().unwrap();
    assert_eq!(last.headers["authorization"], "Bearer secret");
    let want = if h2 {
        Version::HTTP_2
    } else {
        Version::HTTP_11
    };
    assert_eq!(last.version, want, "origin side protocol");

    let ev = tx_event(&mut env.ws, "/json").await;
    assert!(
        ev.get("response_body").is_none(),
        "events carry no bodies: {ev}"
    );
    let t = get_tx(&mut env.ws, &ev["id"]).await;
    assert_eq!(t["method"], "GET");
    assert_eq!(t["url"], format!("https://{}/json", origin.authority()));
    assert_eq!(t["destination_host"], ip);
    assert_eq!(t["destination_port"], origin.addr.port());
    assert_eq!(t["container_name"], "codex");
    assert_eq!(t["status_code"], 200);
    assert_eq!(t["result"], "auto");
    let hv = if h2 { "HTTP/2" } else { "HTTP/1.1" };
    assert_eq!(t["http_version"], hv, "{t}");
    assert_eq!(
        header(&t["request_headers"], "authorization"),
        ["[REDACTED]"]
    );
    assert_eq!(
        header(&t["response_headers"], "content-type"),
        ["application/json"]
    );
    assert_eq!(header(&t["response_headers"], "x-origin"), ["test"]);
    assert_eq!(header(&t["response_headers"], "set-cookie"), ["[REDACTED]"]);
    assert_eq!(t["response_body"], JSON_BODY);
    assert_eq!(t["response_body_encoding"], "text");
    assert_eq!(t["response_body_size"], JSON_BODY.len());
    assert_eq!(t["response_content_type"], "application/json");
    assert!(t["duration_ms"].is_u64() && t["ttfb_ms"].is_u64(), "{t}");
    assert!(!t.to_string().contains("Bearer secret"), "{t}");

    let port = origin.addr.port();
    assert_eq!(mitm_of(&mut env.ws, ip, port).await, "intercepted");
    t
}

#[tokio::test(flavor = "multi_thread")]
async fn http_proxy_http1_is_intercepted_and_recorded() {
    intercepted_get("127.0.0.40", Front::Http, false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn http_proxy_http2_is_intercepted_and_recorded_as_h2() {
    intercepted_get("127.0.0.41", Front::Http, true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn socks5_http1_is_intercepted_and_recorded() {
    intercepted_get("127.0.0.42", Front::Socks, false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn socks5_http2_is_intercepted_and_recorded_as_h2() {
    intercepted_get("127.0.0.43", Front::Socks, true).await;
}

/// Secrets in headers (defaults and a configured pattern) and in the query never reach the
/// store, while the origin receives them unchanged.
#[tokio::test(flavor = "multi_thread")]
async fn secrets_are_redacted_in_storage_but_sent_to_the_origin() {
    let cfg = "[capture]\nredact_headers = [\"x-custom-*\"]\n";
    for (configured, ip) in [(true, "127.0.0.44"), (false, "127.0.0.45")] {
        let mut env = MitmEnv::start(BIN, if configured { cfg } else { "" }, &[]).await;
        let origin = Origin::https(ip, &env.ca).await;
        let url = origin.url("/json?key=AIzaSECRET&q=hello");
        let (p, dca) = (env.proxy_as_codex(), env.daemon_ca_arg());
        let r = fetch(
            &[
                "-x",
                &p,
                "--cacert",
                &dca,
                "-H",
                "Authorization: Bearer secret",
                "-H",
                "Cookie: sid=cookie-secret",
                "-H",
                "X-Api-Key: key-secret",
                "-H",
                "X-Custom-Thing: custom-secret",
                "-H",
                "X-Plain: visible",
            ],
            &[&url],
        )
        .await;
        assert_eq!(r.status(), 200, "{r:?}");
        let got = &origin.requests()[0];
        assert_eq!(got.path, "/json?key=AIzaSECRET&q=hello");
        assert_eq!(got.headers["x-api-key"], "key-secret");
        assert_eq!(got.headers["cookie"], "sid=cookie-secret");

        let ev = tx_event(&mut env.ws, "q=hello").await;
        let t = get_tx(&mut env.ws, &ev["id"]).await;
        let h = &t["request_headers"];
        assert_eq!(
            t["url"],
            format!("https://{}/json?key=[REDACTED]&q=hello", origin.authority())
        );
        for name in ["authorization", "cookie", "x-api-key"] {
            assert_eq!(header(h, name), ["[REDACTED]"], "{name}: {t}");
        }
        assert_eq!(header(h, "x-plain"), ["visible"]);
        let custom = header(h, "x-custom-thing");
        if configured {
            assert_eq!(custom, ["[REDACTED]"], "configured pattern: {t}");
        } else {
            assert_eq!(custom, ["custom-secret"], "not configured: {t}");
        }
        let text = t.to_string();
        for secret in ["AIzaSECRET", "Bearer secret", "cookie-secret", "key-secret"] {
            assert!(!text.contains(secret), "{secret} stored: {text}");
        }
        if configured {
            assert!(!text.contains("custom-secret"), "{text}");
        }
    }
}

/// A client sending SNI gets a leaf for that name, the origin is verified under it, and the
/// recorded URL uses it.
#[tokio::test(flavor = "multi_thread")]
async fn the_sni_name_is_used_for_the_leaf_the_origin_and_the_url() {
    let mut env = MitmEnv::start(BIN, "", &[]).await;
    let origin = Origin::https("127.0.0.69", &env.ca).await;
    let proxy = env.d.http.unwrap();
    let (tcp, reply) = http_connect(proxy, &origin.authority(), Some("codex")).await;
    assert_eq!(reply.status, 200, "{}", reply.head);
    // Verifies the daemon's leaf for "localhost" (not for the CONNECT IP).
    let tls = tls_connect(tcp, "localhost", &env.daemon_ca(), &[b"http/1.1"])
        .await
        .unwrap();
    let mut s = Sender::handshake(tls).await;
    let authority = format!("localhost:{}", origin.addr.port());
    let r = s.get(&authority, "/json").await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(body_bytes(r).await, JSON_BODY.as_bytes());
    assert_eq!(origin.requests()[0].headers["host"], authority.as_str());
    let ev = tx_event(&mut env.ws, "/json").await;
    assert_eq!(ev["url"], format!("https://{authority}/json"), "{ev}");
    let port = origin.addr.port();
    assert_eq!(
        mitm_of(&mut env.ws, "127.0.0.69", port).await,
        "intercepted"
    );
}

/// The client is offered what the origin chose: an HTTP/1.1-only origin means HTTP/1.1 for a
/// client that asked for h2.
#[tokio::test(flavor = "multi_thread")]
async fn an_http1_only_origin_gives_the_client_http1_even_with_http2() {
    let mut env = MitmEnv::start(BIN, "", &[]).await;
    let origin = Origin::https_alpn("127.0.0.70", &env.ca, &[b"http/1.1"]).await;
    let (p, dca) = (env.proxy_as_codex(), env.daemon_ca_arg());
    let r = fetch(
        &["-x", &p, "--cacert", &dca, "--http2"],
        &[&origin.url("/json")],
    )
    .await;
    assert_eq!(r.status(), 200, "{r:?}");
    assert_eq!(r.version(), "1.1", "{r:?}");
    assert_eq!(origin.requests()[0].version, Version::HTTP_11);
    let ev = tx_event(&mut env.ws, "/json").await;
    assert_eq!(ev["http_version"], "HTTP/1.1");
}
