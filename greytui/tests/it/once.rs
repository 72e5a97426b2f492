//! `greytui --once` against a real greyproxyd (free ports, temp state dir) with real curl
//! requests held by it: every command, JSON and table output, token and address discovery,
//! and the exit codes 0/1/2/3.

use crate::common;

use std::time::Duration;

use common::{command, daemon, finish, greytui, held_curl, once};
use greyproxy_testkit::closed_port;
use greyproxy_testkit::origin::http_origin;
use serde_json::Value;

/// A held curl to a fresh origin on 127.0.0.2 (no built-in rule allows it) and its pending id.
async fn held(
    d: &greyproxy_testkit::Daemon,
) -> (
    std::net::SocketAddr,
    tokio::task::JoinHandle<greyproxy_testkit::CurlResult>,
    u64,
) {
    let origin = http_origin("127.0.0.2").await;
    let mut ws = d.client().await;
    let h = held_curl(d, &format!("http://{origin}/x"));
    let p = ws.pending_for("127.0.0.2", origin.port()).await;
    (origin, h, p["id"].as_u64().unwrap())
}

#[tokio::test]
async fn pending_json_lists_a_held_request_then_allow_releases_it() {
    let d = daemon().await;
    let (origin, h, id) = held(&d).await;

    let r = once(&d, &["pending", "--json"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    let items: Vec<Value> = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["id"], id);
    assert_eq!(items[0]["destination_host"], "127.0.0.2");
    assert_eq!(items[0]["destination_port"], origin.port());
    assert_eq!(items[0]["waiting_count"], 1);

    let r = once(&d, &["pending"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    let mut lines = r.stdout.lines();
    assert_eq!(
        lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
        [
            "ID",
            "CONTAINER",
            "DESTINATION",
            "PORT",
            "ATTEMPTS",
            "WAITING",
            "AGE"
        ]
    );
    assert!(lines.next().unwrap().contains("127.0.0.2"), "{r:?}");

    let r = once(&d, &["allow", &id.to_string()]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .starts_with(&format!("allowed pending request {id} (rule ")),
        "{r:?}"
    );
    let res = finish(h).await;
    assert_eq!((res.exit, res.status), (0, 200), "{res:?}");
    assert!(res.body.starts_with(&format!("hello from {origin}")));

    let r = once(&d, &["pending", "--json"]).await;
    assert_eq!(r.stdout.trim(), "[]");
    let r = once(&d, &["pending"]).await;
    assert_eq!(r.stdout, "no pending requests\n");
}

#[tokio::test]
async fn deny_with_scope_and_duration_json_and_the_rule_it_made() {
    let d = daemon().await;
    let (origin, h, id) = held(&d).await;
    let r = once(
        &d,
        &[
            "deny",
            &id.to_string(),
            "--scope",
            "any-port",
            "--duration",
            "1h",
            "--notes",
            "nope",
            "--json",
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{r:?}");
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["pending_id"], id);
    let rule_id = v["rule_id"].as_u64().unwrap();
    let res = finish(h).await;
    assert_eq!(res.status, 403, "{res:?}");

    let r = once(&d, &["rules", "--json"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    let rules: Vec<Value> = serde_json::from_str(&r.stdout).unwrap();
    let rule = rules.iter().find(|r| r["id"] == rule_id).unwrap();
    assert_eq!(rule["action"], "deny");
    assert_eq!(rule["destination_pattern"], "127.0.0.2");
    assert_eq!(rule["port_pattern"], "*");
    assert_eq!(rule["notes"], "nope");
    assert!(rule["expires_at"].is_string(), "{rule}");

    let r = once(&d, &["rules"]).await;
    let header = r.stdout.lines().next().unwrap();
    assert!(header.starts_with("ID  ACTION"), "{r:?}");
    let row = r
        .stdout
        .lines()
        .find(|l| l.starts_with(&format!("{rule_id} ")))
        .unwrap();
    assert!(
        row.contains("deny") && (row.contains("in 59m") || row.contains("in 1h")),
        "{row}"
    );
    let _ = origin;
}

#[tokio::test]
async fn dismiss_ends_the_hold_without_a_rule() {
    let d = daemon().await;
    let (_, h, id) = held(&d).await;
    let rules_before = once(&d, &["rules", "--json"]).await.stdout;
    let r = once(&d, &["dismiss", &id.to_string(), "--json"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout.trim(), format!("{{\"pending_id\":{id}}}"));
    let res = finish(h).await;
    assert_eq!(res.status, 403, "{res:?}");
    assert_eq!(once(&d, &["rules", "--json"]).await.stdout, rules_before);
}

#[tokio::test]
async fn refusals_exit_1_with_one_line() {
    let d = daemon().await;
    let r = once(&d, &["allow", "999999"]).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.stderr, "greytui: pending request 999999 not found\n");
    assert_eq!(r.stdout, "");

    let r = once(&d, &["dismiss", "999999"]).await;
    assert_eq!(r.code, 1, "{r:?}");

    let (_, h, id) = held(&d).await;
    let r = once(&d, &["allow", &id.to_string(), "--scope", "galaxy"]).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.starts_with("greytui: unknown scope \"galaxy\""),
        "{r:?}"
    );
    assert_eq!(r.stderr.lines().count(), 1);

    let r = once(&d, &["allow", &id.to_string(), "--duration", "fortnight"]).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("duration"), "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1);

    // Nothing was decided by the refused commands.
    let r = once(&d, &["pending", "--json"]).await;
    let items: Vec<Value> = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(items.len(), 1);
    h.abort();
}

#[tokio::test]
async fn daemon_down_or_wrong_token_exit_3_and_usage_errors_exit_2() {
    let d = daemon().await;
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.token");
    std::fs::write(&bad, "0000\n").unwrap();
    let r = once(&d, &["pending", "--token-file", bad.to_str().unwrap()]).await;
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.starts_with("greytui: unauthorized"), "{r:?}");
    assert!(r.stderr.contains("bad.token"), "{r:?}");

    let missing = dir.path().join("missing.token");
    let r = once(&d, &["status", "--token-file", missing.to_str().unwrap()]).await;
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("cannot read token file"), "{r:?}");

    // A stopped daemon removes its daemon.json, and greytui would then try the default
    // address, where a developer's own daemon may be listening: name a closed port instead.
    let state = d.stop().await;
    let url = format!("ws://127.0.0.1:{}/ws", closed_port());
    let r = greytui(&[
        "--once",
        "pending",
        "--state-dir",
        state.path().to_str().unwrap(),
        "--url",
        &url,
    ])
    .await;
    assert_eq!(r.code, 3, "{r:?}");
    assert!(
        r.stderr.starts_with("greytui: cannot reach the daemon"),
        "{r:?}"
    );
    assert_eq!(r.stderr.lines().count(), 1, "{r:?}");

    for args in [
        &["--once"][..],
        &["--once", "allow"],
        &["--once", "allow", "twelve"],
        &["--once", "frobnicate"],
        &["--bogus"],
    ] {
        let r = greytui(args).await;
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
    }
    // Without a terminal the dashboard refuses to start instead of garbling a pipe.
    let r = greytui(&["--url", "ws://127.0.0.1:1/ws"]).await;
    assert_eq!(r.code, 2, "{r:?}");
}

#[tokio::test]
async fn status_json_and_table_and_discovery_from_the_environment() {
    let d = daemon().await;
    let r = once(&d, &["status", "--json"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    let st: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(st["service"], "greyproxy");
    assert_eq!(st["listeners"]["control"], d.control.to_string());
    assert_eq!(st["pending_count"], 0);

    // $GREYPROXY_STATE_DIR finds daemon.json and control.token; $GREYPROXY_TOKEN and --url
    // work without any state dir.
    let out = command()
        .args(["--once", "status"])
        .env("GREYPROXY_STATE_DIR", d.state_dir())
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        text.contains(&format!("control:             {}", d.ws_url())),
        "{text}"
    );
    assert!(text.contains("pending:             0"), "{text}");
    let sock = d.state_dir().join("control.sock");
    assert!(
        text.contains(&format!("control socket:      {}", sock.display())),
        "{text}"
    );
    let out = command()
        .args(["--once", "rules", "--url", &d.ws_url()])
        .env("GREYPROXY_TOKEN", &d.token)
        .env("HOME", "/nonexistent")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("127.0.0.1"));
}

#[tokio::test]
async fn watch_prints_json_lines_until_terminated() {
    let d = daemon().await;
    let dir = d.state_dir().to_str().unwrap().to_string();
    let mut child = command()
        .args([
            "--once",
            "watch",
            "--event",
            "pending_request.created",
            "--state-dir",
            &dir,
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    // watch may still be connecting: hold requests to fresh destinations (each a new
    // pending request) until one is printed.
    let mut held_ids = Vec::new();
    let mut holds = Vec::new();
    let line = loop {
        let (origin, h, id) = held(&d).await;
        held_ids.push((id, origin.port()));
        holds.push(h);
        match tokio::time::timeout(Duration::from_secs(1), lines.next_line()).await {
            Ok(l) => break l.unwrap().unwrap(),
            Err(_) => assert!(held_ids.len() < 15, "watch printed nothing"),
        }
    };
    let ev: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(ev["type"], "pending_request.created");
    assert_eq!(ev["data"]["destination_host"], "127.0.0.2");
    let id = ev["data"]["id"].as_u64().unwrap();
    let port = held_ids.iter().find(|(i, _)| *i == id).unwrap().1;
    assert_eq!(ev["data"]["destination_port"], port);
    assert!(ev["seq"].is_u64());
    for h in holds {
        h.abort();
    }
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));

    let r = once(&d, &["watch", "--event", "no.such_event"]).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("unknown event type"), "{r:?}");
}

/// `--once middlewares` against a daemon running the Python passthrough example on stdio: the
/// table and the JSON show it ready with the name and hooks from its hello.
#[tokio::test]
async fn middlewares_lists_a_live_stdio_middleware() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/passthrough/middleware.py")
        .canonicalize()
        .unwrap();
    let cmd = format!("'{}' {}", greyproxy_testkit::python(), example.display());
    let d = greyproxy_testkit::DaemonBuilder::new(common::daemon_bin())
        .args(&["--middleware-cmd", &cmd])
        .start()
        .await;
    let r = once(&d, &["middlewares", "--json"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    let items: Vec<Value> = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["kind"], "stdio");
    assert_eq!(items[0]["name"], "passthrough");
    assert_eq!(items[0]["ready"], true);
    assert_eq!(
        items[0]["hooks"],
        serde_json::json!(["http-request", "http-response"])
    );
    assert!(items[0]["pid"].as_u64().is_some(), "{items:?}");

    let r = once(&d, &["middlewares"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("passthrough") && r.stdout.contains("stdio"),
        "{r:?}"
    );
    assert!(r.stdout.contains("ready"), "{r:?}");
    d.stop().await;
}
