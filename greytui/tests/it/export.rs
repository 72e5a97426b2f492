//! Export from greytui against a real daemon: `--once export har` writes HAR 1.2 (checked
//! field by field, and read back by `mitmdump -nr` when mitmproxy is installed), filters that
//! match nothing give an empty valid HAR, `--once export curl ID` prints a command that, run
//! against the origin, repeats the recorded request; the status bar shows a failing exporter.

use std::time::Duration;

use greyproxy_protocol::export::{ExportState, ExportStatus};
use greyproxy_testkit::agent_env::rule;
use greyproxy_testkit::fetch::fetch;
use greyproxy_testkit::llm_mock::{Answer, CLAUDE_MODEL, LlmMock, always};
use greyproxy_testkit::origin::http_origin;
use greyproxy_testkit::{Daemon, DaemonBuilder};
use greytui::sample::demo_app;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use serde_json::{Value, json};

use crate::common::{daemon_bin, once};

/// Fails with the path when a required HAR 1.2 field is missing or of the wrong type.
fn check_har(har: &Value) {
    let log = &har["log"];
    assert_eq!(log["version"], "1.2", "{har}");
    assert!(log["creator"]["name"].is_string() && log["creator"]["version"].is_string());
    for e in log["entries"].as_array().expect("entries") {
        assert!(e["startedDateTime"].is_string(), "{e}");
        assert!(e["time"].is_number(), "{e}");
        assert!(e["cache"].is_object(), "{e}");
        for k in ["send", "wait", "receive"] {
            assert!(e["timings"][k].is_number(), "timings.{k}: {e}");
        }
        let req = &e["request"];
        for k in ["method", "url", "httpVersion"] {
            assert!(req[k].is_string(), "request.{k}: {e}");
        }
        for k in ["cookies", "headers", "queryString"] {
            assert!(req[k].is_array(), "request.{k}: {e}");
        }
        for k in ["headersSize", "bodySize"] {
            assert!(req[k].is_i64(), "request.{k}: {e}");
        }
        let resp = &e["response"];
        assert!(resp["status"].is_u64(), "{e}");
        for k in ["statusText", "httpVersion", "redirectURL"] {
            assert!(resp[k].is_string(), "response.{k}: {e}");
        }
        for k in ["cookies", "headers"] {
            assert!(resp[k].is_array(), "response.{k}: {e}");
        }
        assert!(resp["content"]["size"].is_u64(), "{e}");
        assert!(resp["content"]["mimeType"].is_string(), "{e}");
        for h in req["headers"].as_array().unwrap() {
            assert!(h["name"].is_string() && h["value"].is_string(), "{h}");
        }
    }
}

async fn proxied(d: &Daemon, user: &str, url: &str) {
    let proxy = format!("http://{user}:x@{}", d.http.unwrap());
    let r = fetch(&["-x", &proxy, "-H", "x-trace: t1"], &[url]).await;
    assert_eq!(r.status(), 200, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn har_export_is_har_1_2_filters_work_and_mitmproxy_reads_it() {
    let origin = http_origin("127.0.0.187").await;
    let d = DaemonBuilder::new(daemon_bin()).start().await;
    let mut ws = d.client().await;
    for c in ["dev", "ops"] {
        rule(&mut ws, c, "127.0.0.187", "allow").await;
    }
    for i in 0..3 {
        proxied(&d, "dev", &format!("http://{origin}/dev/{i}?k=v{i}")).await;
    }
    proxied(&d, "ops", &format!("http://{origin}/ops")).await;

    let run = once(&d, &["export", "har", "--container", "dev"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let har: Value = serde_json::from_str(&run.stdout).unwrap();
    check_har(&har);
    let entries = har["log"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "{har}");
    // Newest first, each with what was recorded.
    let e = &entries[0];
    assert_eq!(e["request"]["method"], "GET");
    assert_eq!(e["request"]["url"], format!("http://{origin}/dev/2?k=v2"));
    assert_eq!(
        e["request"]["queryString"],
        json!([{"name":"k","value":"v2"}])
    );
    assert!(
        e["request"]["headers"]
            .as_array()
            .unwrap()
            .contains(&json!({"name":"X-Trace","value":"t1"})),
        "{e}"
    );
    assert_eq!(e["response"]["status"], 200);
    assert_eq!(
        e["response"]["content"]["text"],
        format!("hello from {origin} GET /dev/2?k=v2")
    );

    // Pages: a small page size gives the same entries (the daemon's pages are joined).
    let mut all = 0;
    let mut before: Option<u64> = None;
    loop {
        let mut cmd = json!({"command":"export","format":"har","container":"dev","limit":1});
        if let Some(b) = before {
            cmd["before_id"] = json!(b);
        }
        let page = ws.query(cmd).await;
        all += page["entries"].as_array().unwrap().len();
        match page["next_before_id"].as_u64() {
            Some(b) => before = Some(b),
            None => break,
        }
    }
    assert_eq!(all, 3);

    // Nothing matches: an empty, valid HAR.
    let none = once(&d, &["export", "har", "--destination", "nowhere.invalid"]).await;
    assert_eq!(none.code, 0, "{none:?}");
    let har0: Value = serde_json::from_str(&none.stdout).unwrap();
    check_har(&har0);
    assert_eq!(har0["log"]["entries"], json!([]));
    // A bad window is a usage error before anything is written.
    let bad = once(&d, &["export", "har", "--since", "yesterday"]).await;
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(bad.stdout.is_empty());

    let have_mitm = std::process::Command::new("mitmdump")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_mitm {
        eprintln!("mitmdump is not on PATH: skipping the mitmproxy read-back");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.har");
    std::fs::write(&file, &run.stdout).unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new("mitmdump")
            .args(["-n", "-r"])
            .arg(&file)
            .arg("--set")
            .arg(format!("confdir={}", dir.path().display()))
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    for i in 0..3 {
        assert!(text.contains(&format!("/dev/{i}")), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_curl_command_repeats_the_recorded_request() {
    let mock = LlmMock::builder("127.0.0.188")
        .script(always(Answer::text("Sure.")))
        .start()
        .await;
    let ca = mock.ca_pem().display().to_string();
    let map = format!("api.anthropic.com={}", mock.ip());
    let d = DaemonBuilder::new(daemon_bin())
        .args(&["--upstream-ca", &ca, "--map-host", &map])
        .start()
        .await;
    let mut ws = d.client().await;
    rule(&mut ws, "dev", "api.anthropic.com", "allow").await;
    let proxy = format!("http://dev:x@{}", d.http.unwrap());
    let dca = d.state_dir().join("ca-cert.pem").display().to_string();
    let url = format!(
        "https://api.anthropic.com:{}/v1/messages?beta=true",
        mock.port()
    );
    let body = json!({"model": CLAUDE_MODEL, "max_tokens": 16,
        "messages": [{"role":"user","content":"it's a test"}]})
    .to_string();
    let r = fetch(
        &[
            "-x",
            &proxy,
            "--cacert",
            &dca,
            "-H",
            "content-type: application/json",
            "-H",
            "user-agent: claude-cli/2.1.0",
            "-H",
            "x-api-key: sk-ant-secret",
            "--data-binary",
            &body,
        ],
        &[&url],
    )
    .await;
    assert_eq!(r.status(), 200, "{r:?}");
    let har = once(&d, &["export", "har", "--destination", "api.anthropic.com"]).await;
    let har: Value = serde_json::from_str(&har.stdout).unwrap();
    let id = har["log"]["entries"][0]["_greyproxy"]["transaction_id"]
        .as_u64()
        .unwrap_or_else(|| panic!("{har}"));

    let run = once(&d, &["export", "curl", &id.to_string()]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let cmd = run.stdout.trim();
    // The API key was redacted in the recording and stays so, with a note.
    let lower = cmd.to_ascii_lowercase();
    assert!(lower.contains("x-api-key: [redacted]"), "{cmd}");
    assert!(!cmd.contains("sk-ant-secret"), "{cmd}");
    assert!(lower.starts_with("# note: x-api-key redacted"), "{cmd}");

    // Run it against the origin directly (its name resolved to the mock, its CA trusted).
    let full = format!(
        "{cmd} -s -o /dev/null --resolve api.anthropic.com:{}:{} --cacert '{ca}'",
        mock.port(),
        mock.ip()
    );
    let out = tokio::process::Command::new("sh")
        .args(["-c", &full])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{full}\n{out:?}");
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    let (a, b) = (&reqs[0], &reqs[1]);
    assert_eq!(a.method, b.method);
    assert_eq!(a.path, b.path);
    assert_eq!(a.authority, b.authority);
    assert_eq!(a.body, b.body);
    for h in ["content-type", "user-agent", "accept"] {
        assert_eq!(a.header(h), b.header(h), "{h}");
    }
    assert_eq!(b.header("x-api-key"), Some("[REDACTED]"));
}

#[test]
fn the_status_bar_shows_a_failing_exporter() {
    let mut app = demo_app(120, 40);
    let render = |app: &greytui::app::App| {
        let mut t = Terminal::new(TestBackend::new(120, 40)).unwrap();
        t.draw(|f| greytui::ui::draw(f, app)).unwrap();
        format!("{}", t.backend())
    };
    let mut st = ExportStatus {
        endpoint: "http://127.0.0.1:4318/v1/traces".into(),
        what: "llm_calls".into(),
        state: ExportState::Ok,
        lag: 3,
        exported_spans: 10,
        retries: 0,
        skipped: 0,
        last_error: None,
        last_success: None,
    };
    app.export = Some(st.clone());
    assert!(
        !render(&app).contains("export "),
        "a healthy exporter is not shown"
    );
    st.state = ExportState::Retrying;
    st.lag = 1234;
    app.export = Some(st);
    assert!(render(&app).contains("export retrying, 1234 behind"));
}
