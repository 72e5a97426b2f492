//! Bodies through the interception: compressed responses reach the client byte for byte while
//! the store holds them decoded; SSE streams event by event; a 10 MiB download is intact while
//! the stored copy is capped; request bodies (also behind `Expect: 100-continue`) are recorded.

use std::time::{Duration, Instant};

use base64::Engine;
use greyproxy_testkit::fetch::fetch;
use greyproxy_testkit::https_origin::{BAD_GZIP, JSON_BODY, Origin, SSE_EVENTS, big_body, encode};
use greyproxy_testkit::mitm::{MitmEnv, get_tx, header, tx_event};
use greyproxy_testkit::tls::{Sender, tls_via_connect, tls_via_socks};
use http_body_util::BodyExt;

const BIN: &str = env!("CARGO_BIN_EXE_greyproxyd");

fn b64(s: &serde_json::Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(s.as_str().unwrap())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn compressed_responses_pass_untouched_and_are_stored_decoded() {
    let mut env = MitmEnv::start(BIN, "", &[]).await;
    let origin = Origin::https("127.0.0.46", &env.ca).await;
    let (p, dca, ca) = (env.proxy_as_codex(), env.daemon_ca_arg(), env.ca.pem_arg());
    for (path, ce) in [
        ("/gzip", "gzip"),
        ("/br", "br"),
        ("/zstd", "zstd"),
        ("/gzip-br", "gzip, br"),
    ] {
        let url = origin.url(path);
        let direct = fetch(&["--cacert", &ca], &[&url]).await;
        let via = fetch(&["-x", &p, "--cacert", &dca], &[&url]).await;
        assert_eq!(via.status(), 200, "{via:?}");
        let wire = encode(ce, JSON_BODY.as_bytes());
        assert_eq!(direct.body(), &wire[..], "{path}: direct fetch");
        assert_eq!(
            via.body(),
            &wire[..],
            "{path}: the client gets the compressed bytes"
        );
        let hdr = format!("content-encoding: {ce}");
        assert!(via.headers.to_ascii_lowercase().contains(&hdr), "{via:?}");

        let ev = tx_event(&mut env.ws, path).await;
        let t = get_tx(&mut env.ws, &ev["id"]).await;
        assert_eq!(t["response_body"], JSON_BODY, "{path}: {t}");
        assert_eq!(t["response_body_decoding"], "decoded", "{path}");
        assert_eq!(t["response_body_encoding"], "text");
        assert_eq!(t["response_body_size"], wire.len(), "bytes on the wire");
        assert_eq!(header(&t["response_headers"], "content-encoding"), [ce]);
    }

    // A body labelled gzip that is not: the client still gets it, the store keeps it raw.
    let via = fetch(&["-x", &p, "--cacert", &dca], &[&origin.url("/bad-gzip")]).await;
    assert_eq!(via.body(), BAD_GZIP.as_bytes());
    let ev = tx_event(&mut env.ws, "/bad-gzip").await;
    let t = get_tx(&mut env.ws, &ev["id"]).await;
    let decoding = t["response_body_decoding"].as_str().unwrap();
    assert!(decoding.starts_with("failed"), "{t}");
    assert_eq!(t["response_body"], BAD_GZIP, "raw bytes kept: {t}");
}

/// Reads an SSE response through the proxy with a Rust client, timing each frame.
async fn sse_through(env: &mut MitmEnv, origin: &Origin, socks: bool, h2: bool) {
    let alpn: &[&[u8]] = if h2 { &[b"h2"] } else { &[b"http/1.1"] };
    let dca = env.daemon_ca();
    let tls = if socks {
        tls_via_socks(env.d.socks.unwrap(), origin.addr, &dca, alpn).await
    } else {
        tls_via_connect(env.d.http.unwrap(), origin.addr, Some("codex"), &dca, alpn).await
    };
    let tls = tls.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(alpn[0]));
    let mut s = Sender::handshake(tls).await;
    let start = Instant::now();
    let resp = s.get(&origin.authority(), "/sse").await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut got = Vec::new();
    let mut first_at = None;
    while let Some(f) = tokio::time::timeout(Duration::from_secs(10), body.frame())
        .await
        .expect("stream goes on")
    {
        if let Ok(d) = f.unwrap().into_data() {
            first_at.get_or_insert_with(|| start.elapsed());
            got.extend_from_slice(&d);
        }
    }
    let end = start.elapsed();
    let first = first_at.unwrap();
    assert_eq!(String::from_utf8(got).unwrap(), SSE_EVENTS.concat());
    assert!(
        end >= Duration::from_millis(950),
        "stream lasts 1 s: {end:?}"
    );
    assert!(
        first < Duration::from_millis(600) && end - first >= Duration::from_millis(800),
        "the first event must arrive before the stream ends: first {first:?}, end {end:?}"
    );

    let ev = tx_event(&mut env.ws, "/sse").await;
    let t = get_tx(&mut env.ws, &ev["id"]).await;
    assert_eq!(t["response_body"], SSE_EVENTS.concat(), "{t}");
    assert_eq!(t["response_content_type"], "text/event-stream");
    assert_eq!(t["http_version"], if h2 { "HTTP/2" } else { "HTTP/1.1" });
    assert!(t["duration_ms"].as_u64().unwrap() >= 900, "{t}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sse_events_reach_the_client_incrementally_http1_and_h2() {
    let mut env = MitmEnv::start(BIN, "", &[]).await;
    let origin = Origin::https("127.0.0.47", &env.ca).await;
    sse_through(&mut env, &origin, false, false).await;
    sse_through(&mut env, &origin, false, true).await;
    sse_through(&mut env, &origin, true, true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sse_with_curl_prints_the_first_event_early() {
    let mut env = MitmEnv::start(BIN, "", &[]).await;
    let origin = Origin::https("127.0.0.48", &env.ca).await;
    let mut child = tokio::process::Command::new("curl")
        .args(["-s", "-N", "-x", &env.proxy_as_codex()])
        .args(["--cacert", &env.daemon_ca_arg(), &origin.url("/sse")])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let start = Instant::now();
    let mut buf = vec![0u8; 4096];
    let n = tokio::io::AsyncReadExt::read(&mut out, &mut buf)
        .await
        .unwrap();
    let first = start.elapsed();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("event: message"));
    let mut rest = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut out, &mut rest)
        .await
        .unwrap();
    let end = start.elapsed();
    assert!(child.wait().await.unwrap().success());
    assert!(
        first < Duration::from_millis(800)
            && end >= Duration::from_millis(950)
            && end - first >= Duration::from_millis(700),
        "first event at {first:?}, end at {end:?}"
    );
    let ev = tx_event(&mut env.ws, "/sse").await;
    let t = get_tx(&mut env.ws, &ev["id"]).await;
    assert_eq!(t["response_body"], SSE_EVENTS.concat());
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_mib_download_is_intact_and_the_stored_copy_capped() {
    let big = big_body(10 * 1024 * 1024);
    let cases = [
        ("", 2 * 1024 * 1024, "127.0.0.49"),
        ("[capture]\nmax_body_bytes = 1000\n", 1000, "127.0.0.50"),
    ];
    for (cfg, cap, ip) in cases {
        let mut env = MitmEnv::start(BIN, cfg, &[]).await;
        let origin = Origin::https(ip, &env.ca).await;
        let (p, dca) = (env.proxy_as_codex(), env.daemon_ca_arg());
        let r = fetch(&["-x", &p, "--cacert", &dca], &[&origin.url("/big?mb=10")]).await;
        assert_eq!(r.status(), 200, "{r:?}");
        assert_eq!(r.body().len(), big.len());
        assert!(r.body() == &big[..], "the download must be byte-identical");

        let ev = tx_event(&mut env.ws, "/big?mb=10").await;
        assert_eq!(ev["response_body_truncated"], true, "{ev}");
        let t = get_tx(&mut env.ws, &ev["id"]).await;
        assert_eq!(t["response_body_size"], big.len());
        assert_eq!(t["response_body_truncated"], true);
        assert_eq!(t["response_body_encoding"], "base64");
        assert_eq!(t["response_content_type"], "application/octet-stream");
        let stored = b64(&t["response_body"]);
        assert_eq!(stored.len(), cap, "stored copy is the cap");
        assert_eq!(stored[..], big[..cap], "stored copy is a prefix");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn post_bodies_are_recorded_also_with_expect_100_continue() {
    let mut env = MitmEnv::start(BIN, "", &[]).await;
    let origin = Origin::https("127.0.0.51", &env.ca).await;
    let (p, dca) = (env.proxy_as_codex(), env.daemon_ca_arg());
    let json = r#"{"model":"m","prompt":"hi"}"#;
    let r = fetch(
        &[
            "-x",
            &p,
            "--cacert",
            &dca,
            "-H",
            "Content-Type: application/json",
            "--data",
            json,
        ],
        &[&origin.url("/echo")],
    )
    .await;
    assert_eq!(r.status(), 200, "{r:?}");
    assert_eq!(r.text(), json);
    let ev = tx_event(&mut env.ws, "/echo").await;
    let t = get_tx(&mut env.ws, &ev["id"]).await;
    assert_eq!(t["method"], "POST");
    assert_eq!(t["request_body"], json, "{t}");
    assert_eq!(t["request_body_encoding"], "text");
    assert_eq!(t["request_body_size"], json.len());
    assert_eq!(t["request_content_type"], "application/json");
    assert_eq!(t["response_body"], json);

    // 4 KiB behind `Expect: 100-continue`: curl waits up to 5 s for the 100 before sending.
    let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(4096 - 10));
    assert_eq!(big.len(), 4096);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body.json");
    std::fs::write(&file, &big).unwrap();
    let data = format!("@{}", file.display());
    let r = fetch(
        &[
            "-x",
            &p,
            "--cacert",
            &dca,
            "--http1.1",
            "-H",
            "Content-Type: application/json",
            "-H",
            "Expect: 100-continue",
            "--expect100-timeout",
            "5",
            "--data-binary",
            &data,
        ],
        &[&origin.url("/echo?big=1")],
    )
    .await;
    assert_eq!(r.status(), 200, "{r:?}");
    assert_eq!(r.text(), big);
    assert!(r.headers.contains("100 Continue"), "{}", r.headers);
    assert!(
        r.elapsed < Duration::from_secs(4),
        "the 100 was relayed: {r:?}"
    );
    let seen = origin.requests();
    let last = seen.last().unwrap();
    assert_eq!(last.body_len, 4096);
    assert_eq!(last.headers["expect"], "100-continue");
    let ev = tx_event(&mut env.ws, "/echo?big=1").await;
    let t = get_tx(&mut env.ws, &ev["id"]).await;
    assert_eq!(t["request_body"], big);
    assert_eq!(t["request_body_size"], 4096);
    assert_eq!(t["status_code"], 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_upload_is_intact_and_its_stored_copy_capped() {
    let mut env = MitmEnv::start(BIN, "", &[]).await;
    let origin = Origin::https("127.0.0.71", &env.ca).await;
    let (p, dca) = (env.proxy_as_codex(), env.daemon_ca_arg());
    let upload = big_body(3 * 1024 * 1024 + 5);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("upload.bin");
    std::fs::write(&file, &upload).unwrap();
    let data = format!("@{}", file.display());
    let ct = "Content-Type: application/octet-stream";
    let args = ["-x", &p, "--cacert", &dca, "-H", ct, "--data-binary", &data];
    let r = fetch(&args, &[&origin.url("/echo")]).await;
    assert_eq!(r.status(), 200, "{r:?}");
    assert!(r.body() == &upload[..], "echoed byte for byte");
    assert_eq!(origin.requests()[0].body_len, upload.len());
    let ev = tx_event(&mut env.ws, "/echo").await;
    let t = get_tx(&mut env.ws, &ev["id"]).await;
    assert_eq!(t["request_body_size"], upload.len());
    assert_eq!(t["request_body_truncated"], true);
    assert_eq!(t["request_body_encoding"], "base64");
    assert_eq!(b64(&t["request_body"])[..], upload[..2 * 1024 * 1024]);
    assert_eq!(t["response_body_truncated"], true);
}

/// HTTP/2 streams through the interception run concurrently: a request sent while an SSE
/// stream is still open on the same connection completes at once.
#[tokio::test(flavor = "multi_thread")]
async fn h2_streams_are_not_serialised_behind_a_long_response() {
    let mut env = MitmEnv::start(BIN, "", &[]).await;
    let origin = Origin::https("127.0.0.75", &env.ca).await;
    let tls = tls_via_connect(
        env.d.http.unwrap(),
        origin.addr,
        None,
        &env.daemon_ca(),
        &[b"h2"],
    )
    .await
    .unwrap();
    let mut sse = Sender::handshake(tls).await;
    let mut other = sse.h2_clone().expect("h2 chosen");
    let auth = origin.authority();
    let resp = sse.get(&auth, "/sse").await.unwrap();
    let mut body = resp.into_body();
    body.frame().await.unwrap().unwrap(); // the first event: the stream is open
    let start = Instant::now();
    let r = other.get(&auth, "/json").await.unwrap();
    let json = greyproxy_testkit::tls::body_bytes(r).await;
    assert_eq!(json, JSON_BODY.as_bytes());
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "{:?}",
        start.elapsed()
    );
    while body.frame().await.is_some() {}
    assert!(
        start.elapsed() >= Duration::from_millis(700),
        "the SSE stream was still open meanwhile: {:?}",
        start.elapsed()
    );
    assert_eq!(
        origin.connections.load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    tx_event(&mut env.ws, "/json").await;
    tx_event(&mut env.ws, "/sse").await;
}
