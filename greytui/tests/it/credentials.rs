//! Credentials from greytui against a real daemon over intercepted TLS: `--once credential`
//! and `session` (the secret from standard input, never printed; `--env` export lines whose
//! placeholder a bound origin receives as the real secret), and the dashboard: the Credentials
//! view listing them, a placeholder sent to an allowed but unbound origin shown as secret egress
//! and refused from the keyboard (403, the origin never reached, the secret nowhere on screen).

use std::process::Stdio;
use std::time::Duration;

use greyproxy_testkit::fetch::fetch;
use greyproxy_testkit::https_origin::Origin;
use greyproxy_testkit::mitm::MitmEnv;
use greytui::app::View;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::common::{Run, command, daemon_bin, once};
use crate::llm::{Harness, has_line};

/// The secret; looked for everywhere it must not be.
const SECRET: &str = "sk-test-greytui-Vb7Qm2Xr9Lp4Kt6Wz1Nc";

/// The container the agent's requests carry.
const AGENT: &str = "agent";

async fn env() -> MitmEnv {
    MitmEnv::start(daemon_bin().to_str().unwrap(), "", &[]).await
}

/// `greytui --once <args> --state-dir <daemon's>` with `stdin` piped in.
async fn once_stdin(env: &MitmEnv, args: &[&str], stdin: &str) -> Run {
    let dir = env.d.state_dir().to_str().unwrap().to_string();
    let mut c = command();
    c.arg("--once")
        .args(args)
        .args(["--state-dir", &dir])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("greytui --once finishes")
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn no_secret(r: &Run) {
    assert!(
        !r.stdout.contains(SECRET) && !r.stderr.contains(SECRET),
        "the secret was printed: {r:?}"
    );
}

/// GET `url` through the daemon as [`AGENT`] with `x-api-key: <key>`.
async fn get_with_key(env: &MitmEnv, key: &str, url: &str) -> greyproxy_testkit::fetch::Fetch {
    let proxy = format!("http://{AGENT}:x@{}", env.d.http.unwrap());
    let ca = env.daemon_ca_arg();
    let header = format!("x-api-key: {key}");
    fetch(&["-x", &proxy, "--cacert", &ca, "-H", &header], &[url]).await
}

/// The `export NAME='value'` lines of `--env`, as (name, value).
fn exports(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_credential_and_session_commands_keep_the_secret_to_the_bound_origin() {
    let env = env().await;
    let bound = Origin::https("127.0.0.171", &env.ca).await;
    let host = bound.authority();

    // The secret comes from standard input; nothing printed contains it.
    let add = ["credential", "add", "TEST_KEY", "--dest", host.as_str()];
    let r = once_stdin(&env, &add, &format!("{SECRET}\n")).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.stdout, "added credential TEST_KEY (sk-t…(36 chars))\n",
        "{r:?}"
    );
    no_secret(&r);
    // No secret on standard input: a usage error, nothing created.
    let r = once_stdin(
        &env,
        &["credential", "add", "EMPTY", "--dest", "x.test"],
        "",
    )
    .await;
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("no secret on standard input"), "{r:?}");
    // A duplicate label: the daemon refuses (exit 1), the secret still unprinted.
    let r = once_stdin(&env, &add, SECRET).await;
    assert_eq!(r.code, 1, "{r:?}");
    no_secret(&r);

    let r = once(&env.d, &["credential", "list"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        has_line(&r.stdout, &["TEST_KEY", "sk-t…(36 chars)", &host, "*"]),
        "{r:?}"
    );
    assert!(!r.stdout.contains("EMPTY"), "{r:?}");
    no_secret(&r);
    let r = once(&env.d, &["credential", "list", "--json"]).await;
    let list: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(list["available"], true);
    assert_eq!(list["credentials"][0]["label"], "TEST_KEY");
    no_secret(&r);

    // A launcher's session: export lines with the placeholder.
    let create = [
        "session",
        "create",
        "--container",
        AGENT,
        "--credential",
        "TEST_KEY",
        "--ttl",
        "10m",
        "--env",
    ];
    let r = once(&env.d, &create).await;
    assert_eq!(r.code, 0, "{r:?}");
    let vars = exports(&r.stdout);
    assert_eq!(vars.len(), 2, "{r:?}");
    let (_, id) = &vars[0];
    assert_eq!(vars[0].0, "GREYPROXY_SESSION_ID");
    let (name, placeholder) = &vars[1];
    assert_eq!(name, "TEST_KEY");
    assert!(
        placeholder.starts_with(&format!("greyproxy:credential:v1:{id}:")),
        "{placeholder}"
    );

    // The bound origin receives the real secret; the agent never sees it.
    let got = get_with_key(&env, placeholder, &bound.url("/json")).await;
    assert_eq!(got.status(), 200, "{got:?}\n{}", env.d.log());
    let seen = bound.requests();
    let key = seen.last().unwrap().headers.get("x-api-key").unwrap();
    assert_eq!(key.to_str().unwrap(), SECRET);

    let r = once(&env.d, &["session", "heartbeat", id]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.starts_with(&format!("session {id} lives ")),
        "{r:?}"
    );
    let r = once(&env.d, &["session", "list", "--json"]).await;
    let list: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(list["sessions"][0]["container"], AGENT, "{list}");
    let r = once(&env.d, &["session", "delete", id]).await;
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, format!("ended session {id}\n").as_str())
    );
    let r = once(&env.d, &["session", "list"]).await;
    assert_eq!(r.stdout, "no sessions\n", "{r:?}");
    // Unknown ids are refusals.
    let r = once(&env.d, &["session", "heartbeat", id]).await;
    assert_eq!(r.code, 1, "{r:?}");
    let r = once(&env.d, &["credential", "delete", "TEST_KEY"]).await;
    assert_eq!(r.stdout, "deleted credential TEST_KEY\n", "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_lists_credentials_and_refuses_a_secret_egress() {
    let mut env = env().await;
    let bound = Origin::https("127.0.0.172", &env.ca).await;
    let echo = Origin::https("127.0.0.173", &env.ca).await;
    let info = env
        .ws
        .query(
            json!({"command":"create_credential","label":"TEST_KEY","secret":SECRET,
                      "destinations":[bound.authority()]}),
        )
        .await;
    assert_eq!(info["label"], "TEST_KEY", "{info}");
    let created = env
        .ws
        .query(json!({"command":"create_session","container":AGENT,"credentials":["TEST_KEY"]}))
        .await;
    let placeholder = created["placeholders"]["TEST_KEY"]
        .as_str()
        .unwrap()
        .to_string();

    let mut h = Harness::new(env.d.state_dir().to_path_buf());
    h.until("connected", |a| a.claimed).await;
    h.keys("7").await;
    h.until("the credential and its session", |a| {
        let s = crate::llm::h_screen(a);
        a.view == View::Credentials
            && has_line(&s, &["TEST_KEY", "sk-t…(36 chars)", &bound.authority()])
            && has_line(&s, &[AGENT, "TEST_KEY"])
    })
    .await;

    // A bound call: counted.
    let got = get_with_key(&env, &placeholder, &bound.url("/json")).await;
    assert_eq!(got.status(), 200, "{got:?}");
    h.until("the substitution counted", |a| {
        has_line(&crate::llm::h_screen(a), &[AGENT, "TEST_KEY 1"])
    })
    .await;

    // The echo attack: allowed by rule, not bound: held as secret egress, refused with a, 1.
    let env_ref = &env;
    let url = echo.url("/echo");
    let call = async { get_with_key(env_ref, &placeholder, &url).await };
    let decide = async {
        h.keys("1").await;
        h.until("the secret egress row", |a| {
            has_line(
                &crate::llm::h_screen(a),
                &["⚠ secret TEST_KEY in header x-api-key"],
            )
        })
        .await;
        let screen = h.screen();
        assert!(!screen.contains(SECRET), "{screen}");
        h.keys("a").await;
        let screen = h.screen();
        assert!(has_line(&screen, &["1 refuse (403)"]), "{screen}");
        h.keys("1").await;
        h.until("the row to go", |a| a.pending.is_empty()).await;
    };
    let (got, ()) = tokio::join!(call, decide);
    assert_eq!(got.status(), 403, "{got:?}");
    assert!(!format!("{got:?}").contains(SECRET), "{got:?}");
    assert!(
        echo.requests().is_empty(),
        "the echo origin was never reached"
    );
    assert!(
        has_line(&h.screen(), &["refused #"]),
        "the message line: {}",
        h.screen()
    );
}
