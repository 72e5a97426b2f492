//! The middleware acceptance scenario: greyproxyd with
//! `--middleware-cmd 'python3 …/examples/secret-scanner/middleware.py'`; a POST carrying an
//! `sk-` key is refused with the scanner's message and recorded with its deny event, a clean
//! POST reaches the origin; after `kill -9` of the middleware's process group requests are
//! refused until the daemon has respawned it, then pass again.

use std::time::Duration;

use greyproxy_testkit::fakemw::env::{alive, events, middlewares, tx, wait_gone};
use greyproxy_testkit::fakemw::example::{script, start_env};
use greyproxy_testkit::fakemw::origin::Scripted;
use greyproxy_testkit::fetch::{Fetch, fetch};
use greyproxy_testkit::mitm::MitmEnv;
use greyproxy_testkit::{eventually, python};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_greyproxyd");
const MESSAGE: &str = "Request blocked: detected leaked credentials (sk-api-key). Remove secrets \
                       from the request body before retrying.";

async fn post(env: &MitmEnv, url: &str, body: &str) -> Fetch {
    fetch(
        &["-x", &env.proxy_as_codex(), "--data-binary", body],
        &[url],
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn secret_scanner_over_stdio_blocks_leaks_and_survives_kill_9() {
    let cmd = format!("'{}' {}", python(), script("secret-scanner"));
    let mut env = start_env(BIN, "", &["--middleware-cmd".into(), cmd], &[]).await;
    let origin = Scripted::start("127.0.0.95", None, vec![]).await;
    let leak = format!("{{\"text\":\"use sk-{}\"}}", "abcdefghijklmnopqrstuvwx");
    let clean = "{\"text\":\"nothing to see\"}";

    let r = post(&env, &origin.url("/echo?leak=1"), &leak).await;
    assert_eq!((r.status(), r.text().as_str()), (403, MESSAGE), "{r:?}");
    assert!(origin.requests().is_empty(), "the secret never left");
    let r = post(&env, &origin.url("/echo?clean=1"), clean).await;
    assert_eq!((r.status(), r.text().as_str()), (200, clean), "{r:?}");
    assert_eq!(origin.requests()[0].body, clean.as_bytes());

    let ev = events(&tx(&mut env.ws, "/echo?leak=1").await);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0]["action"], "deny");
    assert_eq!(ev[0]["status_code"], 403);
    assert_eq!(ev[0]["hook"], "http-request");
    assert_eq!(ev[0]["middleware_name"], "secret-scanner");
    assert_eq!(ev[0]["middleware_url"], "");
    assert_eq!(
        ev[0]["tags"],
        json!({"secret-scanner.labels":["sk-api-key"]})
    );

    // kill -9 the whole process group.
    let m = middlewares(&mut env.ws).await.remove(0);
    assert_eq!(
        (&m["ready"], &m["kind"]),
        (&json!(true), &json!("stdio")),
        "{m}"
    );
    let pid = m["pid"].as_u64().unwrap() as u32;
    let killed = std::process::Command::new("kill")
        .args(["-9", "--", &format!("-{pid}")])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut refused = 0;
    let what = format!("the scanner (pid {pid}) respawned");
    let new_pid = eventually(&what, Duration::from_secs(10), async || {
        let m = middlewares(&mut env.ws).await.remove(0);
        let respawned = m["ready"] == true && m["pid"].as_u64() != Some(u64::from(pid));
        if respawned {
            return Ok(m["pid"].as_u64().unwrap() as u32);
        }
        let r = post(&env, &origin.url("/echo?while-down=1"), clean).await;
        let after = middlewares(&mut env.ws).await.remove(0);
        let back_meanwhile =
            after["ready"] == true && after["pid"].as_u64() != Some(u64::from(pid));
        if !back_meanwhile {
            assert_eq!(r.status(), 403, "refused while the scanner is down: {r:?}");
            refused += 1;
        }
        Err(after)
    })
    .await;
    assert!(
        refused >= 1,
        "at least one request was made while the scanner was down"
    );
    assert!(wait_gone(pid, Duration::from_secs(2)).await.is_some());
    assert!(alive(new_pid));
    assert!(
        !origin
            .requests()
            .iter()
            .any(|g| g.path.contains("while-down") && g.body != clean.as_bytes()),
        "only clean bodies ever reach the origin"
    );

    let r = post(&env, &origin.url("/echo?clean=2"), clean).await;
    assert_eq!((r.status(), r.text().as_str()), (200, clean), "{r:?}");
    let r = post(&env, &origin.url("/echo?leak=2"), &leak).await;
    assert_eq!((r.status(), r.text().as_str()), (403, MESSAGE), "{r:?}");
}
