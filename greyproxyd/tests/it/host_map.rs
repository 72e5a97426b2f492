//! The host map (`--map-host NAME=IP`, `[hosts]`): a mapped name is dialled at its address
//! through every front end (HTTP CONNECT, SOCKS5 with a name, plain HTTP) while policy, the
//! recording and TLS verification keep the name; a reload moves a name; bad entries stop the
//! start and fail `config check`. The HTTPS origin is the mock LLM API, so these runs also
//! check its Chat Completions answers (JSON, and SSE with the usage chunk) through the proxy.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use greyproxy_testkit::agent_env::rule;
use greyproxy_testkit::fetch::fetch;
use greyproxy_testkit::llm_mock::{Answer, LlmMock, MockUsage, always};
use greyproxy_testkit::origin::{http_origin, http_origin_at};
use greyproxy_testkit::wait::{POLL, eventually_sync};
use greyproxy_testkit::{DaemonBuilder, Text};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_greyproxyd");

const CHAT: &str = r#"{"model":"gpt-5-mini","stream":true,"stream_options":{"include_usage":true},
"messages":[{"role":"user","content":"hi"}]}"#;

/// `name` or `name:port` as a URL authority (the port left out when it is 443).
fn authority(name: &str, port: u16) -> String {
    if port == 443 {
        name.to_string()
    } else {
        format!("{name}:{port}")
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mapped_name_is_dialled_at_its_address_and_policy_sees_the_name() {
    let mock = LlmMock::builder("127.0.0.113")
        .names(&["models.example.test"])
        .script(always(Answer::text("Mapped hello.").with_usage(
            MockUsage {
                input: 21,
                cache_read: 4,
                output: 5,
                ..MockUsage::default()
            },
        )))
        .start()
        .await;
    let plain = http_origin("127.0.0.114").await;
    let ca = mock.ca_pem().display().to_string();
    // A short hold: were the IP decided instead of the name (no rule allows 127.0.0.113), the
    // requests would fail with 403 quickly rather than hang.
    let d = DaemonBuilder::new(BIN)
        .args(&[
            "--map-host",
            "models.example.test=127.0.0.113",
            "--map-host",
            "PLAIN.example.test=127.0.0.114",
            "--upstream-ca",
            &ca,
            "--hold-timeout",
            "2",
        ])
        .start()
        .await;
    let mut ws = d.client().await;
    rule(&mut ws, "hm", "models.example.test", "allow").await;
    rule(&mut ws, "hm", "plain.example.test", "allow").await;
    let dca = d.state_dir().join("ca-cert.pem").display().to_string();
    let base = format!("https://{}", authority("models.example.test", mock.port()));
    let url = format!("{base}/v1/chat/completions");
    let post = ["-H", "content-type: application/json", "--data-binary"];

    // HTTP CONNECT with the name; the client verifies the daemon's certificate for the name.
    let proxy = format!("http://hm:x@{}", d.http.unwrap());
    let args = [&["-x", &proxy, "--cacert", &dca][..], &post, &[CHAT]].concat();
    let r = fetch(&args, &[&url]).await;
    assert_eq!(r.status(), 200, "{r:?}\n{}", d.log());
    let sse = r.text();
    let text: String = sse
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(text, "Mapped hello.", "{sse}");
    assert!(sse.contains("\"prompt_tokens\":25"), "usage chunk: {sse}");
    assert!(sse.contains("\"cached_tokens\":4"), "{sse}");
    assert!(sse.trim_end().ends_with("data: [DONE]"), "{sse}");

    // SOCKS5 with the name (curl does not resolve it), OpenRouter's path.
    let socks = d.socks.unwrap().to_string();
    let json_body = CHAT.replace("\"stream\":true", "\"stream\":false");
    let args = [
        &[
            "--socks5-hostname",
            &socks,
            "--proxy-user",
            "hm:x",
            "--cacert",
            &dca,
        ][..],
        &post,
        &[&json_body],
    ]
    .concat();
    let r = fetch(&args, &[&format!("{base}/api/v1/chat/completions")]).await;
    assert_eq!(r.status(), 200, "{r:?}");
    let v: Value = serde_json::from_slice(r.body()).unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "Mapped hello.");
    assert_eq!(v["usage"]["completion_tokens"], 5);

    // Plain HTTP through the proxy, the name in any case.
    let plain_url = format!("http://Plain.Example.Test:{}/x", plain.port());
    let r = fetch(&["-x", &proxy], &[&plain_url]).await;
    assert_eq!(r.status(), 200, "{r:?}");
    assert_eq!(r.text(), format!("hello from {plain} GET /x"));

    // The origin saw the name; the daemon held nothing and recorded the name.
    let seen = mock.requests();
    assert_eq!(seen.len(), 2, "{seen:?}");
    let names: Vec<&str> = seen.iter().map(|s| s.authority.as_str()).collect();
    assert!(
        names.iter().all(|n| n.starts_with("models.example.test")),
        "{names:?}"
    );
    let pending = ws.query(json!({"command":"list_pending"})).await;
    assert_eq!(pending["total"], 0, "{pending}");
    let page = ws
        .query(json!({"command":"list_activity","kind":"transaction","limit":100}))
        .await;
    let rows = page["items"].as_array().unwrap();
    let hosts: Vec<&str> = rows
        .iter()
        .filter_map(|r| r["destination_host"].as_str())
        .collect();
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(
        hosts.iter().all(|h| h.ends_with(".example.test")),
        "{hosts:?}"
    );
    assert!(rows.iter().any(|r| r["url"] == url.as_str()), "{rows:?}");
}

/// SIGHUP to the daemon of `d`, then waits for the `nth` reload line in its log.
async fn reload(d: &greyproxy_testkit::Daemon, nth: usize) -> String {
    let pid: Value =
        serde_json::from_str(&std::fs::read_to_string(d.state_dir().join("daemon.json")).unwrap())
            .unwrap();
    let ok = Command::new("kill")
        .args(["-HUP", &pid["pid"].to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    eventually_sync("the reload", Duration::from_secs(10), POLL, || {
        let log = d.log();
        let n = log.matches("reloaded ").count() + log.matches("config reload failed").count();
        if n >= nth { Ok(log) } else { Err(Text(log)) }
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_moves_a_mapped_name_and_the_flags_still_win() {
    let a = http_origin("127.0.0.115").await;
    let b = http_origin_at(SocketAddr::new([127, 0, 0, 116].into(), a.port())).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("greyproxyd.toml");
    let hosts = |ip: &str| {
        format!("[hosts]\n\"swap.example.test\" = \"{ip}\"\n\"pinned.example.test\" = \"{ip}\"\n")
    };
    std::fs::write(&cfg, hosts("127.0.0.115")).unwrap();
    let d = DaemonBuilder::new(BIN)
        .args(&[
            "--config",
            cfg.to_str().unwrap(),
            "--map-host",
            "pinned.example.test=127.0.0.115",
        ])
        .start()
        .await;
    let mut ws = d.client().await;
    rule(&mut ws, "hm", "**.example.test", "allow").await;
    let proxy = format!("http://hm:x@{}", d.http.unwrap());
    let get = async |name: &str| {
        let url = format!("http://{name}:{}/x", a.port());
        fetch(&["-x", &proxy], &[&url]).await.text()
    };
    let at = |o: SocketAddr| format!("hello from {o} GET /x");
    assert_eq!(get("swap.example.test").await, at(a));

    std::fs::write(&cfg, hosts("127.0.0.116")).unwrap();
    let log = reload(&d, 1).await;
    assert!(log.contains("2 mapped hosts"), "{log}");
    assert_eq!(get("swap.example.test").await, at(b));
    assert_eq!(get("pinned.example.test").await, at(a), "--map-host wins");

    // A bad address keeps the map in force.
    std::fs::write(&cfg, hosts("127.0.0.300")).unwrap();
    let log = reload(&d, 2).await;
    assert!(log.contains("config reload failed"), "{log}");
    assert!(
        log.contains("hosts.swap.example.test") || log.contains("hosts.pinned"),
        "{log}"
    );
    assert_eq!(get("swap.example.test").await, at(b));
}

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_mappings_stop_the_start_and_fail_config_check() {
    let dir = tempfile::tempdir().unwrap();
    let sd = dir.path().join("state");
    let sd = sd.to_str().unwrap();
    for (flag, says) in [
        ("api.example.com", "expected NAME=IP"),
        (
            "api.example.com=127.0.0.256",
            "\"127.0.0.256\" is not an IP address",
        ),
        ("=127.0.0.5", "empty host name"),
        ("*.example.com=127.0.0.5", "no wildcards"),
    ] {
        let (code, err) = run(&["serve", "--state-dir", sd, "--map-host", flag]);
        assert_ne!(code, 0, "{flag}");
        assert!(
            err.contains("--map-host") && err.contains(says),
            "{flag}: {err}"
        );
    }
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "hold_timeout = 5\n[hosts]\n\"api.example.com\" = \"nope\"\n",
    )
    .unwrap();
    let (code, err) = run(&["config", "check", cfg.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("hosts.api.example.com") && err.contains("line 3"),
        "{err}"
    );
    let (code, err) = run(&[
        "serve",
        "--state-dir",
        sd,
        "--config",
        cfg.to_str().unwrap(),
    ]);
    assert_ne!(code, 0);
    assert!(
        err.contains("hosts.api.example.com") && err.contains("\"nope\""),
        "{err}"
    );
    std::fs::write(&cfg, "[hosts]\n\"api.example.com\" = \"::1\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["config", "check", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
}
