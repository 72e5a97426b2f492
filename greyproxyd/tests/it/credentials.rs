//! Credentials end to end (docs/credentials.md), with real curl through the real daemon over
//! intercepted TLS: a bound origin receives the real secret (header and query, HTTP/1.1 and
//! HTTP/2) while the agent, the capture and the events only ever see the placeholder; the echo
//! attack is held as secret egress and refusing it leaks the secret nowhere (responses, the
//! daemon's log, captures, events, every file of the state dir). The decisions, the refusals
//! of other containers, expired sessions and plain HTTP are in `credentials_holds.rs`.

use std::time::Duration;

use greyproxy_testkit::daemon::DaemonBuilder;
use greyproxy_testkit::fetch::{Fetch, fetch};
pub(crate) use greyproxy_testkit::grep::files_containing;
use greyproxy_testkit::https_origin::Origin;
use greyproxy_testkit::mitm::{MitmEnv, allow_loopback, get_tx, tx_event};
use greyproxy_testkit::tls::TestCa;
use serde_json::{Value, json};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_greyproxyd");

/// The secret every test stores; searched for everywhere it must not be.
pub(crate) const SECRET: &str = "sk-test-Zq8Rv2Lm5Xw9Ty4Pu7Ns3Kd6Hf1Gb0Jc";

/// `create_credential` for `label` bound to `destinations`, with `extra` fields; asserts it
/// worked and that the reply shows a preview, never the secret.
pub(crate) async fn add_credential(
    env: &mut MitmEnv,
    label: &str,
    destinations: &[String],
    extra: Value,
) -> Value {
    let mut cmd = json!({"command":"create_credential","label":label,"secret":SECRET,
                         "destinations":destinations});
    if let (Some(c), Some(e)) = (cmd.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    let info = env.ws.query(cmd).await;
    assert_eq!(info["label"], label, "{info}");
    assert!(!info.to_string().contains(SECRET), "{info}");
    assert_eq!(info["preview"], "sk-t…(40 chars)");
    info
}

/// `create_session` for `container` with one credential; returns (session id, placeholder).
pub(crate) async fn add_session(
    env: &mut MitmEnv,
    container: &str,
    label: &str,
    ttl: Option<u64>,
) -> (String, String) {
    let mut cmd = json!({"command":"create_session","container":container,"credentials":[label]});
    if let Some(t) = ttl {
        cmd["ttl_seconds"] = json!(t);
    }
    let created = env.ws.query(cmd).await;
    let id = created["session"]["session_id"]
        .as_str()
        .unwrap()
        .to_string();
    let ph = created["placeholders"][label].as_str().unwrap().to_string();
    assert!(
        ph.starts_with(&format!("greyproxy:credential:v1:{id}:")),
        "{ph}"
    );
    (id, ph)
}

/// curl through the HTTP proxy as `user`, in the background (a held request waits for a
/// decision made meanwhile).
pub(crate) fn spawn_curl(
    env: &MitmEnv,
    user: &str,
    h2: bool,
    headers: &[String],
    url: &str,
) -> tokio::task::JoinHandle<Fetch> {
    let mut args = vec![
        "-x".to_string(),
        format!("http://{user}:x@{}", env.d.http.unwrap()),
        "--cacert".to_string(),
        env.daemon_ca_arg(),
        if h2 { "--http2" } else { "--http1.1" }.to_string(),
    ];
    for h in headers {
        args.push("-H".into());
        args.push(h.clone());
    }
    let url = url.to_string();
    tokio::spawn(async move {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        fetch(&a, &[&url]).await
    })
}

/// The next `pending_request.created` of kind `credential`.
pub(crate) async fn held(env: &mut MitmEnv) -> Value {
    env.ws
        .event_where("pending_request.created", |d| d["kind"] == "credential")
        .await["data"]
        .clone()
}

/// `decide_credential` with `decision` and `extra` fields; returns the reply.
pub(crate) async fn decide(
    env: &mut MitmEnv,
    pending: &Value,
    decision: &str,
    extra: Value,
) -> Value {
    let mut cmd = json!({"command":"decide_credential","pending_id":pending["id"],
                         "decision":decision});
    if let (Some(c), Some(e)) = (cmd.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    env.ws.cmd(cmd).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bound_origin_gets_the_secret_in_header_and_query_and_the_agent_never_sees_it() {
    let mut env = MitmEnv::start(BIN, "", &[]).await;
    let origin = Origin::https("127.0.16.1", &env.ca).await;
    add_credential(&mut env, "TEST_KEY", &[origin.authority()], json!({})).await;
    let (_, ph) = add_session(&mut env, "codex", "TEST_KEY", None).await;
    for h2 in [false, true] {
        let path = format!("/reflect?api_key={ph}&h2={h2}");
        let auth = format!("Authorization: Bearer {ph}");
        let r = spawn_curl(&env, "codex", h2, &[auth], &origin.url(&path))
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{r:?}\n{}", env.d.log());
        assert_eq!(r.version(), if h2 { "2" } else { "1.1" });

        // Upstream: the real secret, in the header and in the query.
        let seen = origin.requests().pop().unwrap();
        assert_eq!(
            seen.headers["authorization"],
            format!("Bearer {SECRET}").as_str()
        );
        assert_eq!(seen.path, format!("/reflect?api_key={SECRET}&h2={h2}"));

        // The origin echoed it back (body and a header): the agent gets the placeholder.
        let text = r.text();
        assert!(!text.contains(SECRET), "the agent saw the secret: {text}");
        assert!(
            text.contains(&format!("authorization: Bearer {ph}")),
            "{text}"
        );
        assert!(
            r.headers
                .contains(&format!("x-reflect-authorization: Bearer {ph}")),
            "{}",
            r.headers
        );
        assert!(!r.headers.contains(SECRET), "{}", r.headers);

        // The capture keeps the placeholder, never the secret.
        let ev = tx_event(&mut env.ws, &format!("h2={h2}")).await;
        let t = get_tx(&mut env.ws, &ev["id"]).await;
        assert_eq!(t["status_code"], 200);
        let stored = t.to_string();
        assert!(!stored.contains(SECRET), "{stored}");
        assert!(
            stored.contains(&ph),
            "the echo is stored as the placeholder: {stored}"
        );
    }
    // Counted, in a batched event and in the lists.
    let ev = env
        .ws
        .event_where("credential.substitutions", |d| {
            d["counts"].as_array().is_some_and(|c| !c.is_empty())
        })
        .await;
    assert_eq!(ev["data"]["counts"][0]["label"], "TEST_KEY", "{ev}");
    let sessions = env.ws.query(json!({"command":"list_sessions"})).await;
    assert!(
        sessions["sessions"][0]["substitutions"]["TEST_KEY"]
            .as_u64()
            .is_some_and(|n| n >= 2),
        "two requests, two places each: {sessions}"
    );
    assert!(!env.d.log().contains(SECRET));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_echo_attack_is_held_and_refusing_it_leaks_nothing() {
    let mut env = MitmEnv::start(BIN, "", &[]).await;
    let api = Origin::https("127.0.16.2", &env.ca).await;
    // An echo service the rules allow (127.0.0.0/8), but not one the secret is bound to.
    let echo = Origin::https("127.0.16.3", &env.ca).await;
    add_credential(&mut env, "TEST_KEY", &[api.authority()], json!({})).await;
    let (sid, ph) = add_session(&mut env, "codex", "TEST_KEY", None).await;
    let auth = format!("Authorization: Bearer {ph}");

    // The secret is in use on the bound API...
    let ok = spawn_curl(
        &env,
        "codex",
        false,
        std::slice::from_ref(&auth),
        &api.url("/reflect"),
    )
    .await
    .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(
        api.requests()[0].headers["authorization"],
        format!("Bearer {SECRET}").as_str()
    );

    // ...and the same placeholder heads for the echo service: held, not substituted.
    let attack = spawn_curl(&env, "codex", false, &[auth], &echo.url("/reflect?x=1"));
    let p = held(&mut env).await;
    assert_eq!(p["kind"], "credential", "{p}");
    assert_eq!(p["container_name"], "codex");
    assert_eq!(p["destination_host"], "127.0.16.3");
    assert_eq!(p["credential"]["label"], "TEST_KEY");
    assert_eq!(p["credential"]["session_id"], sid.as_str());
    assert_eq!(p["credential"]["reason"], "destination_not_bound");
    assert_eq!(p["credential"]["found_in"], "header");
    assert_eq!(p["credential"]["name"], "authorization");
    assert!(
        echo.requests().is_empty(),
        "nothing reached the echo service while held"
    );
    let listed = env.ws.query(json!({"command":"list_pending"})).await;
    assert_eq!(listed["items"][0]["id"], p["id"], "{listed}");

    let r = decide(
        &mut env,
        &p,
        "refuse",
        json!({"reason":"not for that host"}),
    )
    .await;
    assert_eq!(r["type"], "result", "{r}");
    let refused = attack.await.unwrap();
    assert_eq!(refused.status(), 403, "{refused:?}");
    assert!(
        refused.text().contains("not for that host"),
        "{}",
        refused.text()
    );
    assert!(echo.requests().is_empty(), "the echo service never got it");
    env.ws
        .event_where("pending_request.dismissed", |d| d["pending_id"] == p["id"])
        .await;

    // The refused request is recorded, as the client sent it (placeholder, 403).
    let ev = tx_event(&mut env.ws, "/reflect?x=1").await;
    let t = get_tx(&mut env.ws, &ev["id"]).await;
    assert_eq!(t["status_code"], 403);
    assert_eq!(t["result"], "denied");

    // Grep everything for the secret's bytes: responses, captures over /ws, events, the
    // daemon's log, every file under the state dir.
    for (what, text) in [
        ("the bound response", ok.text() + &ok.headers),
        ("the refusal", refused.text() + &refused.headers),
        ("the daemon's log", env.d.log()),
    ] {
        assert!(!text.contains(SECRET), "{what} holds the secret: {text}");
    }
    let all = env
        .ws
        .query(json!({"command":"list_activity","limit":1000}))
        .await;
    for item in all["items"].as_array().unwrap() {
        if item["kind"] == "transaction" {
            let t = get_tx(&mut env.ws, &item["id"]).await;
            assert!(!t.to_string().contains(SECRET), "capture: {t}");
        }
    }
    let events = env.ws.drain(Duration::from_millis(1500)).await;
    assert!(!events.is_empty());
    for e in &events {
        assert!(!e.to_string().contains(SECRET), "event: {e}");
    }
    for q in [
        "list_credentials",
        "list_sessions",
        "list_pending",
        "status",
    ] {
        let v = env.ws.query(json!({ "command": q })).await;
        assert!(!v.to_string().contains(SECRET), "{q}: {v}");
    }
    let hits = files_containing(env.d.state_dir(), SECRET.as_bytes());
    assert!(hits.is_empty(), "the secret is in {hits:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_and_sessions_survive_a_restart_encrypted_and_rotation_keeps_placeholders() {
    let ca = TestCa::new("greyproxy test origin CA");
    let ca_arg = ca.pem_arg();
    let d = DaemonBuilder::new(BIN)
        .args(&["--upstream-ca", &ca_arg])
        .start()
        .await;
    let mut env = MitmEnv {
        ws: d.client().await,
        d,
        ca,
    };
    allow_loopback(&mut env.ws).await;
    let origin = Origin::https("127.0.16.8", &env.ca).await;
    add_credential(&mut env, "TEST_KEY", &[origin.authority()], json!({})).await;
    let (sid, ph) = add_session(&mut env, "codex", "TEST_KEY", Some(3600)).await;

    let MitmEnv { d, ws, ca } = env;
    ws.close().await;
    let d = d.restart().await;
    let mut env = MitmEnv {
        ws: d.client().await,
        d,
        ca,
    };
    let creds = env.ws.query(json!({"command":"list_credentials"})).await;
    assert_eq!(creds["available"], true, "{creds}");
    assert_eq!(creds["credentials"][0]["label"], "TEST_KEY");
    assert_eq!(creds["credentials"][0]["preview"], "sk-t…(40 chars)");
    let sessions = env.ws.query(json!({"command":"list_sessions"})).await;
    assert_eq!(
        sessions["sessions"][0]["session_id"],
        sid.as_str(),
        "{sessions}"
    );
    // The store holds the credential, encrypted.
    let redb = std::fs::read(env.d.state_dir().join("greyproxy.redb")).unwrap();
    assert!(
        redb.windows(8).any(|w| w == b"TEST_KEY"),
        "the row is there"
    );
    assert!(!redb.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()));

    // The placeholder minted before the restart still works.
    let auth = format!("Authorization: Bearer {ph}");
    let r = spawn_curl(
        &env,
        "codex",
        false,
        std::slice::from_ref(&auth),
        &origin.url("/json"),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200, "{r:?}");
    assert_eq!(
        origin.requests()[0].headers["authorization"],
        format!("Bearer {SECRET}").as_str()
    );

    // Rotation: a new secret behind the same placeholder.
    let rotated = "sk-test-ROTATED-0000000000000000000000";
    let up = env
        .ws
        .query(json!({"command":"update_credential","label":"TEST_KEY","secret":rotated}))
        .await;
    assert_eq!(up["preview"], "sk-t…(38 chars)");
    let r = spawn_curl(&env, "codex", false, &[auth], &origin.url("/json"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        origin.requests()[1].headers["authorization"],
        format!("Bearer {rotated}").as_str()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_json_body_opted_in_carries_the_secret_upstream_and_the_placeholder_everywhere_else() {
    let mut env = MitmEnv::start(BIN, "", &[]).await;
    let origin = Origin::https("127.0.16.11", &env.ca).await;
    add_credential(
        &mut env,
        "TEST_KEY",
        &[origin.authority()],
        json!({"places":{"headers":false,"query":false,"json_body":true}}),
    )
    .await;
    let (_, ph) = add_session(&mut env, "codex", "TEST_KEY", None).await;
    let sent = format!("{{\"api_key\":\"{ph}\"}}");
    let args = [
        "-x".to_string(),
        format!("http://codex:x@{}", env.d.http.unwrap()),
        "--cacert".into(),
        env.daemon_ca_arg(),
        "-H".into(),
        "Content-Type: application/json".into(),
        "--data-binary".into(),
        sent.clone(),
    ];
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = fetch(&a, &[&origin.url("/echo")]).await;
    assert_eq!(r.status(), 200, "{r:?}");
    // The origin read a body of the secret's length (Content-Length fixed), and echoed it:
    // the agent gets its own body back, placeholder and all.
    let upstream_len = sent.len() - ph.len() + SECRET.len();
    assert_eq!(origin.requests()[0].body_len, upstream_len);
    assert_eq!(r.text(), sent);
    let ev = tx_event(&mut env.ws, "/echo").await;
    let t = get_tx(&mut env.ws, &ev["id"]).await;
    assert_eq!(
        t["request_body"],
        sent.as_str(),
        "the capture keeps the placeholder"
    );
    assert!(!t.to_string().contains(SECRET), "{t}");
}
