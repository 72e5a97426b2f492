//! Middleware framing and multiplexing across processes (cases B, C of docs/middleware.md#tests):
//! binary WS frames, CRLF and blank stdio lines, an over-long stdio line, the child's stderr in the
//! log and its environment; 32-hex ids unique per message, replies in any order, garbage frames,
//! unknown ids, duplicates, bad base64 and any decision `type`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use greyproxy_testkit::fakemw::env::{both, middlewares, start, wait_log, wait_ready, wait_status};
use greyproxy_testkit::fakemw::{
    FakeMw, Frame, Transport, allow, b64, case, decision, decision_with, hello, python,
};
use greyproxy_testkit::https_origin::Origin;
use greyproxy_testkit::{CurlResult, curl};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_greyproxyd");

async fn get(proxy: &str, url: &str) -> CurlResult {
    curl(&["-x", proxy, url]).await
}

/// B1 (WS binary frame), B2 (stdio `\r\n`, blank lines before a decision).
#[tokio::test(flavor = "multi_thread")]
async fn binary_frames_crlf_and_blank_lines_are_accepted() {
    both(|t| async move {
        let fake = FakeMw::new(t)
            .await
            .serve(hello("frames", &["http-request"]), move |m| {
                let d = decision_with(m, "deny", json!({"status_code":451,"body":b64("framed")}));
                match t {
                    Transport::Ws => vec![Frame::Binary(d.to_string().into_bytes())],
                    Transport::Stdio => {
                        let mut raw = b"\n\r\n".to_vec();
                        raw.extend_from_slice(d.to_string().as_bytes());
                        raw.extend_from_slice(b"\r\n");
                        vec![Frame::Raw(raw)]
                    }
                }
            });
        let mut env = start(BIN, "", &fake.mw.cli_args()).await;
        let origin = Origin::plain("127.0.0.5").await;
        let p = env.proxy_as_codex();
        for i in 0..3 {
            let r = get(&p, &origin.url(&format!("/json?i={i}"))).await;
            assert!(r.elapsed < Duration::from_secs(5), "{t}: no timeout: {r:?}");
            assert_eq!((r.status, r.body.as_str()), (451, "framed"), "{t}: {r:?}");
        }
        assert_eq!(fake.conns().len(), 1, "{t}: the connection stays up");
        assert_eq!(middlewares(&mut env.ws).await[0]["connects"], 1);
    })
    .await;
}

/// B3: a stdout line over 32 MiB drops the connection; the child is respawned and works.
#[tokio::test(flavor = "multi_thread")]
async fn overlong_stdio_line_respawns_the_child() {
    let fake = FakeMw::stdio()
        .await
        .serve(hello("big", &["http-request"]), |m| {
            if case(m) == "huge" {
                let mut raw = vec![b'a'; 33 << 20];
                raw.push(b'\n');
                vec![Frame::Raw(raw)]
            } else {
                vec![Frame::Json(allow(m))]
            }
        });
    let mut env = start(BIN, "", &fake.mw.cli_args()).await;
    let origin = Origin::plain("127.0.0.6").await;
    let p = env.proxy_as_codex();
    let first_pid = fake.conns()[0].meta.as_ref().unwrap()["pid"]
        .as_u64()
        .unwrap() as u32;
    let huge = get(&p, &origin.url("/json?case=huge")).await;
    assert_eq!(
        huge.status, 403,
        "in flight when the connection dropped: {huge:?}"
    );
    let conns = fake.wait_conns(2, Duration::from_secs(8)).await;
    assert!(conns.len() >= 2, "respawned: {conns:?}");
    assert_ne!(conns[1].meta.as_ref().unwrap()["pid"], first_pid);
    let gone = greyproxy_testkit::fakemw::env::wait_gone(first_pid, Duration::from_secs(5)).await;
    assert!(gone.is_some(), "the first child is gone");
    wait_ready(&mut env.ws, 0).await;
    let r = get(&p, &origin.url("/json?case=fine")).await;
    assert_eq!(r.status, 200, "{r:?}");
    // The waiting request was failed when the connection dropped, not at its 10 s timeout.
    assert!(
        huge.elapsed < Duration::from_secs(5),
        "the in-flight request waited {:?}: {huge:?}",
        huge.elapsed
    );
}

/// B4 (stderr → `mw[<label>] <line>`, label = config name or basename(argv0); blank lines
/// skipped; an over-long line does not stall the child), B5 (child env).
#[tokio::test(flavor = "multi_thread")]
async fn stderr_is_logged_with_its_label_and_env_is_inherited() {
    let long = "L".repeat(80 * 1024);
    let cli = FakeMw::stdio()
        .await
        .relay_args(&["--stderr", "hello from the cli relay"])
        .serve_allow(hello("cli-hello-name", &[]));
    let named = FakeMw::stdio()
        .await
        .relay_args(&[
            "--stderr",
            "",
            "--stderr",
            &long,
            "--stderr",
            "after the long line",
        ])
        .serve_allow(hello("named-hello-name", &["http-request"]));
    let config = named.mw.toml("name = \"named-mw\"");
    let mut env = start(BIN, &config, &cli.mw.cli_args()).await;
    let log = || env.d.log();
    let label = std::path::Path::new(python())
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    wait_log(
        log,
        &format!("mw[{label}] hello from the cli relay"),
        Duration::from_secs(5),
    )
    .await;
    let l = wait_log(
        log,
        "mw[named-mw] after the long line",
        Duration::from_secs(5),
    )
    .await;
    assert!(!l.contains("mw[cli-hello-name]") && !l.contains("mw[named-hello-name]"));
    assert!(
        !l.lines().any(|x| x.trim_end().ends_with("mw[named-mw]")),
        "blank stderr lines are skipped:\n{l}"
    );
    // The over-long line was cut, not logged whole, and did not stall the relay.
    assert!(!l.contains(&long), "an 80 KiB stderr line is truncated");
    let origin = Origin::plain("127.0.0.7").await;
    let r = get(&env.proxy_as_codex(), &origin.url("/json")).await;
    assert_eq!(r.status, 200, "{r:?}");

    let path = std::env::var("PATH").unwrap();
    for s in [&cli, &named] {
        let meta = s.conns()[0].meta.clone().unwrap();
        assert_eq!(meta["env"]["GREYPROXY_TRANSPORT"], "stdio");
        let child_path = meta["env"]["PATH"].as_str().unwrap();
        assert!(
            child_path.ends_with(&path),
            "the daemon's env is inherited: {child_path}"
        );
        assert_eq!(meta["env"]["RUST_LOG"], "greyproxyd=debug");
    }
    assert_eq!(middlewares(&mut env.ws).await.len(), 2);
}

/// C1: ids are 32 lowercase hex and unique over 64 messages; request and response ids differ.
#[tokio::test(flavor = "multi_thread")]
async fn ids_are_fresh_32_hex_per_message() {
    both(|t| async move {
        let fake = FakeMw::new(t)
            .await
            .serve_allow(hello("ids", &["http-request", "http-response"]));
        let env = start(BIN, "", &fake.mw.cli_args()).await;
        let origin = Origin::plain("127.0.0.8").await;
        let urls: Vec<String> = (0..32)
            .map(|i| origin.url(&format!("/json?n={i}")))
            .collect();
        let mut args = vec![
            "-x".to_string(),
            env.proxy_as_codex(),
            "-o".into(),
            "/dev/null".into(),
        ];
        for u in &urls {
            args.push(u.clone());
            args.push("-o".into());
            args.push("/dev/null".into());
        }
        args.pop();
        args.pop();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = curl(&args).await;
        assert_eq!(r.exit, 0, "{t}: {r:?}");
        let m = fake.wait_messages(64, Duration::from_secs(5)).await;
        assert_eq!(m.len(), 64, "{t}");
        let mut ids: Vec<&str> = m.iter().map(|m| m["id"].as_str().unwrap()).collect();
        for id in &ids {
            assert_eq!(id.len(), 32, "{t}: {id}");
            assert!(
                id.chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
                "{t}: {id}"
            );
        }
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 64, "{t}: unique ids");
    })
    .await;
}

/// C2–C7 on one connection: replies in reverse order, garbage before a decision, unknown
/// ids, a duplicate decision, URL-safe unpadded base64, a decision whose `type` is not
/// `decision`.
#[tokio::test(flavor = "multi_thread")]
async fn multiplexing_tolerates_disorder_garbage_and_bad_decisions() {
    both(|t| async move {
        let held: Arc<Mutex<Option<Value>>> = Arc::default();
        let fake = FakeMw::new(t).await.serve(hello("mux", &["http-request"]), move |m| {
            let deny = |m: &Value, body: &str| {
                decision_with(m, "deny", json!({"status_code":451,"body":b64(body)}))
            };
            match case(m).as_str() {
                "c2a" | "c2b" => {
                    // Hold the first; answer the second, then the first.
                    let mut h = held.lock().unwrap();
                    match h.take() {
                        None => {
                            *h = Some(m.clone());
                            vec![]
                        }
                        Some(first) => vec![
                            Frame::Json(deny(m, &format!("for {}", case(m)))),
                            Frame::Json(deny(&first, &format!("for {}", case(&first)))),
                        ],
                    }
                }
                "c3" => vec![
                    Frame::Text("{not json".into()),
                    Frame::Json(deny(m, "after garbage")),
                ],
                "c4" => vec![Frame::Json(
                    json!({"type":"decision","id":"0123456789abcdef0123456789abcdef","action":"allow"}),
                )],
                "c5" => vec![
                    Frame::Json(deny(m, "first answer")),
                    Frame::Json(decision(m, "allow")),
                ],
                "c6" => vec![Frame::Json(decision_with(
                    m,
                    "deny",
                    json!({"status_code":451,"body":"-_8"}),
                ))],
                "c7" => vec![Frame::Json(json!({"type":"verdict","id":m["id"],
                    "action":"deny","status_code":452,"body":b64("odd type")}))],
                _ => vec![Frame::Json(allow(m))],
            }
        });
        let config = fake.mw.toml("timeout_ms = 400");
        let env = start(BIN, &config, &[]).await;
        let origin = Origin::plain("127.0.0.9").await;
        let p = env.proxy_as_codex();
        let u = |c: &str| origin.url(&format!("/json?case={c}"));

        // C2: two requests in flight; each gets its own decision.
        let ua = u("c2a");
        let (a, b) = tokio::join!(get(&p, &ua), async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            get(&p, &u("c2b")).await
        });
        assert_eq!((a.status, a.body.as_str()), (451, "for c2a"), "{t}: {a:?}");
        assert_eq!((b.status, b.body.as_str()), (451, "for c2b"), "{t}: {b:?}");

        let r = get(&p, &u("c3")).await;
        assert_eq!((r.status, r.body.as_str()), (451, "after garbage"), "{t}: C3 {r:?}");

        let start_c4 = Instant::now();
        let r = get(&p, &u("c4")).await;
        assert_eq!(r.status, 403, "{t}: C4 unknown id ignored, then timeout: {r:?}");
        assert!(start_c4.elapsed() >= Duration::from_millis(380), "{t}: waited the timeout");

        let r = get(&p, &u("c5")).await;
        assert_eq!((r.status, r.body.as_str()), (451, "first answer"), "{t}: C5 {r:?}");

        let r = get(&p, &u("c6")).await;
        assert_eq!(r.status, 403, "{t}: C6 bad base64 dropped → timeout fallback: {r:?}");
        assert_ne!(r.body, "-_8");

        let r = get(&p, &u("c7")).await;
        assert_eq!((r.status, r.body.as_str()), (452, "odd type"), "{t}: C7 {r:?}");

        let r = get(&p, &u("fine")).await;
        assert_eq!(r.status, 200, "{t}: {r:?}");
        assert_eq!(fake.conns().len(), 1, "{t}: one connection throughout");
        let mut ws = env.ws;
        let m = wait_status(&mut ws, 0, Duration::from_secs(1), "connected", |m| {
            m["ready"] == true
        })
        .await;
        assert_eq!(m["connects"], 1, "{t}: {m}");
    })
    .await;
}
