//! Secret egress held for a human, end to end: the four decisions of a `credential` pending
//! request, a placeholder used from another container, after its session expired or was
//! deleted, or over plain HTTP; the daemon's own control port refused through its proxies
//! (reason `self`); a bad key file (credentials unavailable, the proxy serves on); and bad
//! input to the credential commands (clear errors that never quote the secret).

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use greyproxy_testkit::daemon::DaemonBuilder;
use greyproxy_testkit::fetch::fetch;
use greyproxy_testkit::https_origin::Origin;
use greyproxy_testkit::mitm::{MitmEnv, allow_loopback};
use greyproxy_testkit::raw::{SocksTarget, socks5_connect};
use serde_json::json;

use super::credentials::{BIN, SECRET, add_credential, add_session, decide, held, spawn_curl};

#[tokio::test(flavor = "multi_thread")]
async fn each_decision_does_what_it_says() {
    let mut env = MitmEnv::start(BIN, "", &[]).await;
    let api = Origin::https("127.0.16.4", &env.ca).await;
    let other = Origin::https("127.0.16.5", &env.ca).await;
    add_credential(&mut env, "TEST_KEY", &[api.authority()], json!({})).await;
    let (sid, ph) = add_session(&mut env, "codex", "TEST_KEY", None).await;
    let auth = vec![format!("Authorization: Bearer {ph}")];
    let bearer_secret = format!("Bearer {SECRET}");
    let bearer_ph = format!("Bearer {ph}");

    // send_once: this request carries the secret, the echo of it comes back scrubbed.
    let c = spawn_curl(&env, "codex", true, &auth, &other.url("/reflect?n=1"));
    let p = held(&mut env).await;
    // A connection's commands do not apply to it.
    let r = env
        .ws
        .cmd(json!({"command":"allow","pending_id":p["id"]}))
        .await;
    assert!(
        r["error"].as_str().unwrap().contains("decide_credential"),
        "{r}"
    );
    assert_eq!(
        decide(&mut env, &p, "send_once", json!({})).await["type"],
        "result"
    );
    let r = c.await.unwrap();
    assert_eq!(r.status(), 200, "{r:?}");
    assert_eq!(
        other.requests()[0].headers["authorization"],
        bearer_secret.as_str()
    );
    assert!(
        !r.text().contains(SECRET) && r.text().contains(&bearer_ph),
        "{}",
        r.text()
    );

    // ...once: the next one is held again. send_unchanged: the origin gets the placeholder.
    let c = spawn_curl(&env, "codex", false, &auth, &other.url("/reflect?n=2"));
    let p = held(&mut env).await;
    assert_eq!(
        decide(&mut env, &p, "send_unchanged", json!({})).await["type"],
        "result"
    );
    let r = c.await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        other.requests()[1].headers["authorization"],
        bearer_ph.as_str()
    );

    // bind: the destination joins the credential for good; later requests are not held.
    let c = spawn_curl(&env, "codex", false, &auth, &other.url("/reflect?n=3"));
    let p = held(&mut env).await;
    let r = decide(
        &mut env,
        &p,
        "bind",
        json!({"scope":"exact","duration":"permanent"}),
    )
    .await;
    assert_eq!(r["type"], "result", "{r}");
    assert_eq!(c.await.unwrap().status(), 200);
    assert_eq!(
        other.requests()[2].headers["authorization"],
        bearer_secret.as_str()
    );
    let ev = env.ws.event("credential.updated").await;
    let dests: Vec<String> = ev["data"]["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["pattern"].as_str().unwrap().to_string())
        .collect();
    assert!(dests.contains(&other.authority()), "{dests:?}");
    let r = spawn_curl(&env, "codex", false, &auth, &other.url("/reflect?n=4"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "bound now, not held");
    assert_eq!(
        other.requests()[3].headers["authorization"],
        bearer_secret.as_str()
    );

    // refuse + end_session: 403 with the reason, and the session is gone; its placeholder is
    // then unknown (held again, and refused by dismiss).
    let third = Origin::https("127.0.16.10", &env.ca).await;
    let c = spawn_curl(&env, "codex", false, &auth, &third.url("/reflect"));
    let p = held(&mut env).await;
    let r = decide(
        &mut env,
        &p,
        "refuse",
        json!({"reason":"exfiltration","end_session":true}),
    )
    .await;
    assert_eq!(r["data"]["ended_sessions"], json!([sid]), "{r}");
    let r = c.await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().contains("exfiltration"), "{}", r.text());
    env.ws
        .event_where("session.deleted", |d| d["session_id"] == sid.as_str())
        .await;
    let c = spawn_curl(&env, "codex", false, &auth, &api.url("/json"));
    let p = held(&mut env).await;
    assert_eq!(p["credential"]["reason"], "unknown_placeholder", "{p}");
    let r = decide(&mut env, &p, "bind", json!({})).await;
    assert_eq!(r["type"], "error", "{r}");
    assert!(
        r["error"].as_str().unwrap().contains("unknown_placeholder"),
        "{r}"
    );
    let r = env
        .ws
        .cmd(json!({"command":"dismiss","pending_id":p["id"]}))
        .await;
    assert_eq!(r["type"], "command_success", "{r}");
    assert_eq!(c.await.unwrap().status(), 403);
    assert!(third.requests().is_empty());
    assert_eq!(
        api.requests().len(),
        0,
        "the deleted session's placeholder never went out"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn other_containers_expired_sessions_and_plain_http_are_held() {
    let mut env = MitmEnv::start(BIN, "", &[]).await;
    let api = Origin::https("127.0.16.6", &env.ca).await;
    let plain = Origin::plain("127.0.16.7").await;
    add_credential(
        &mut env,
        "TEST_KEY",
        &[api.authority(), plain.authority()],
        json!({}),
    )
    .await;
    let (_, ph) = add_session(&mut env, "codex", "TEST_KEY", None).await;
    let auth = vec![format!("Authorization: Bearer {ph}")];

    // Another container holding the same placeholder.
    let c = spawn_curl(&env, "opencode", false, &auth, &api.url("/json"));
    let p = held(&mut env).await;
    assert_eq!(p["container_name"], "opencode");
    assert_eq!(p["credential"]["reason"], "wrong_container", "{p}");
    decide(&mut env, &p, "refuse", json!({})).await;
    assert_eq!(c.await.unwrap().status(), 403);

    // Plain HTTP to a bound host, the credential not allowing plaintext.
    let c = spawn_curl(&env, "codex", false, &auth, &plain.url("/reflect"));
    let p = held(&mut env).await;
    assert_eq!(p["credential"]["reason"], "plaintext_not_allowed", "{p}");
    assert!(
        p["credential"]["request"]
            .as_str()
            .unwrap()
            .starts_with("GET http://")
    );
    decide(&mut env, &p, "refuse", json!({})).await;
    assert_eq!(c.await.unwrap().status(), 403);
    assert!(plain.requests().is_empty());

    // Once plaintext is allowed, the same request gets the secret.
    env.ws
        .query(json!({"command":"update_credential","label":"TEST_KEY","allow_plaintext":true}))
        .await;
    let r = spawn_curl(&env, "codex", false, &auth, &plain.url("/reflect"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        plain.requests()[0].headers["authorization"],
        format!("Bearer {SECRET}").as_str()
    );
    assert!(!r.text().contains(SECRET));

    // An expired session (TTL 1 s, no heartbeat).
    let (short, ph) = add_session(&mut env, "codex", "TEST_KEY", Some(1)).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let c = spawn_curl(
        &env,
        "codex",
        false,
        &[format!("X-Api-Key: {ph}")],
        &api.url("/json"),
    );
    let p = held(&mut env).await;
    assert_eq!(p["credential"]["reason"], "session_expired", "{p}");
    assert_eq!(p["credential"]["name"], "x-api-key");
    decide(&mut env, &p, "refuse", json!({})).await;
    assert_eq!(c.await.unwrap().status(), 403);
    let r = env
        .ws
        .cmd(json!({"command":"heartbeat_session","session_id":short}))
        .await;
    assert_eq!(r["type"], "error");
    assert!(r["error"].as_str().unwrap().contains("not found"), "{r}");
    assert_eq!(api.requests().len(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_control_port_is_refused_through_the_proxies_whatever_the_rules() {
    let mut env = MitmEnv::start(BIN, "", &["--map-host", "selfname.test=127.0.0.1"]).await;
    // The loopback rule allows 127.0.0.0/8, the control port included.
    let ctl = env.d.control;
    let proxy = format!("http://codex:x@{}", env.d.http.unwrap());
    let r = fetch(&["-x", &proxy], &[&format!("http://{ctl}/ws")]).await;
    assert_eq!(r.status(), 403, "{r:?}");
    assert!(r.text().contains("(self)"), "{}", r.text());
    let r = fetch(
        &["-x", &proxy, "-p", "--connect-timeout", "5"],
        &[&format!("http://{ctl}/ws")],
    )
    .await;
    assert_ne!(r.exit, 0, "CONNECT refused: {r:?}");
    assert!(r.headers.contains(" 403"), "{}", r.headers);
    let (_, rep) = socks5_connect(
        env.d.socks.unwrap(),
        &SocksTarget::Ip(ctl),
        Some(("codex", "x")),
    )
    .await;
    assert_eq!(rep, Some(0x02), "SOCKS5 not allowed");
    // By name too (localhost resolves to it).
    let (_, rep) = socks5_connect(
        env.d.socks.unwrap(),
        &SocksTarget::Domain("localhost".into(), ctl.port()),
        Some(("codex", "x")),
    )
    .await;
    assert_eq!(rep, Some(0x02));
    let row = env
        .ws
        .event_where("request_log.new", |d| d["reason"] == "self")
        .await;
    assert_eq!(row["data"]["result"], "blocked", "{row}");

    // A name a rule allows that leads to the daemon: refused once connected.
    greyproxy_testkit::agent_env::rule(&mut env.ws, "*", "selfname.test", "allow").await;
    let url = format!("http://selfname.test:{}/ws", ctl.port());
    let r = fetch(&["-x", &proxy, "-p"], &[&url]).await;
    assert!(r.headers.contains(" 403"), "CONNECT: {}", r.headers);
    let r = fetch(&["-x", &proxy], &[&url]).await;
    assert_eq!(r.status(), 502, "{r:?}");
    assert!(r.text().contains("(self)"), "{}", r.text());
    let (_, rep) = socks5_connect(
        env.d.socks.unwrap(),
        &SocksTarget::Domain("selfname.test".into(), ctl.port()),
        Some(("codex", "x")),
    )
    .await;
    assert_eq!(rep, Some(0x02));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_key_file_makes_credentials_unavailable_and_the_proxy_serves() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("credentials.key");
    std::fs::write(&key, b"short").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let d = DaemonBuilder::new(BIN).start_in(dir).await;
    let mut ws = d.client().await;
    allow_loopback(&mut ws).await;
    let list = ws.query(json!({"command":"list_credentials"})).await;
    assert_eq!(list["available"], false, "{list}");
    let why = list["unavailable_reason"].as_str().unwrap();
    assert!(
        why.contains("credentials.key") && why.contains("5 bytes"),
        "{why}"
    );
    let r = ws
        .cmd(
            json!({"command":"create_credential","label":"K","secret":SECRET,
                    "destinations":["api.example.com"]}),
        )
        .await;
    assert_eq!(r["type"], "error");
    let e = r["error"].as_str().unwrap();
    assert!(e.starts_with("credentials are unavailable"), "{e}");
    assert!(!e.contains(SECRET));
    assert!(d.log().contains("credentials unavailable"), "{}", d.log());
    // The proxy serves on.
    let origin = greyproxy_testkit::origin::http_origin("127.0.16.9").await;
    let proxy = format!("http://codex:x@{}", d.http.unwrap());
    let r = fetch(&["-x", &proxy], &[&format!("http://{origin}/x")]).await;
    assert_eq!(r.status(), 200, "{r:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_credential_input_gets_clear_errors_that_never_quote_the_secret() {
    let mut env = MitmEnv::start(BIN, "", &[]).await;
    add_credential(&mut env, "TEST_KEY", &["api.example.com".into()], json!({})).await;
    let cases = [
        (
            json!({"command":"create_credential","label":"TEST_KEY","secret":SECRET,
                   "destinations":["x.example.com"]}),
            "exists already",
        ),
        (
            json!({"command":"create_credential","label":"B","secret":SECRET,
                   "destinations":["*"]}),
            "every host",
        ),
        (
            json!({"command":"create_credential","label":"B","secret":SECRET,
                   "destinations":[]}),
            "at least one destination",
        ),
        (
            json!({"command":"create_credential","label":"B","secret":format!("{SECRET}\n"),
                   "destinations":["x.example.com"]}),
            "HTTP header cannot carry",
        ),
        (
            json!({"command":"create_credential","label":"B","secret":"x".repeat(9000),
                   "destinations":["x.example.com"]}),
            "at most 8192",
        ),
        (
            json!({"command":"create_credential","label":"2FA","secret":SECRET,
                   "destinations":["x.example.com"]}),
            "is not valid",
        ),
        (
            json!({"command":"create_session","container":"codex","credentials":["NOPE"]}),
            "no credential labelled NOPE",
        ),
        (
            json!({"command":"create_session","container":"codex","credentials":["TEST_KEY"],
                   "ttl_seconds":999999}),
            "out of range",
        ),
        (
            json!({"command":"create_session","container":"codex","session_id":"a:b"}),
            "is not valid",
        ),
        (
            json!({"command":"update_credential","label":"NOPE","allow_plaintext":true}),
            "no credential labelled NOPE",
        ),
        (
            json!({"command":"decide_credential","pending_id":999999,"decision":"send_once"}),
            "no held credential request",
        ),
    ];
    for (cmd, want) in cases {
        let r = env.ws.cmd(cmd.clone()).await;
        assert_eq!(r["type"], "error", "{cmd}: {r}");
        let e = r["error"].as_str().unwrap();
        assert!(e.contains(want), "{cmd}: {e}");
        assert!(!e.contains(SECRET), "{e}");
    }
    let list = env.ws.query(json!({"command":"list_credentials"})).await;
    assert_eq!(
        list["credentials"].as_array().unwrap().len(),
        1,
        "nothing lost: {list}"
    );
    assert!(!env.d.log().contains(SECRET));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_learning_session_allows_its_containers_connections_while_it_lives() {
    let d = DaemonBuilder::new(BIN).start().await;
    let mut ws = d.client().await;
    let origin = greyproxy_testkit::origin::http_origin("127.0.16.12").await;
    let created = ws
        .query(
            json!({"command":"create_session","container":"learner","credentials":[],
                      "allow_all":true}),
        )
        .await;
    let sid = created["session"]["session_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(created["session"]["allow_all"], true);
    let url = format!("http://{origin}/x");
    let via = |user: &str| format!("http://{user}:x@{}", d.http.unwrap());
    let r = fetch(&["-x", &via("learner")], &[&url]).await;
    assert_eq!(
        r.status(),
        200,
        "no rule, but the learning session allows it: {r:?}"
    );

    // Another container is held as usual; and so is the learner once its session is gone.
    for (user, delete_first) in [("other", false), ("learner", true)] {
        if delete_first {
            let r = ws
                .cmd(json!({"command":"delete_session","session_id":sid}))
                .await;
            assert_eq!(r["type"], "result", "{r}");
        }
        let proxy = via(user);
        let url = url.clone();
        let c = tokio::spawn(async move { fetch(&["-x", &proxy], &[&url]).await });
        let p = ws
            .event_where("pending_request.created", |d| d["container_name"] == user)
            .await;
        let r = ws
            .cmd(json!({"command":"dismiss","pending_id":p["data"]["id"]}))
            .await;
        assert_eq!(r["type"], "command_success", "{r}");
        assert_eq!(c.await.unwrap().status(), 403, "{user}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_held_credential_request_is_refused_when_the_daemon_stops() {
    let mut env = MitmEnv::start(BIN, "", &[]).await;
    let other = Origin::https("127.0.16.13", &env.ca).await;
    add_credential(&mut env, "TEST_KEY", &["api.example.com".into()], json!({})).await;
    let (_, ph) = add_session(&mut env, "codex", "TEST_KEY", None).await;
    let c = spawn_curl(
        &env,
        "codex",
        false,
        &[format!("Authorization: Bearer {ph}")],
        &other.url("/reflect"),
    );
    held(&mut env).await;
    let MitmEnv { d, ws, .. } = env;
    ws.close().await;
    let _dir = d.stop().await;
    let r = c.await.unwrap();
    assert_eq!(r.status(), 403, "{r:?}");
    assert!(r.text().contains("stopping"), "{}", r.text());
    assert!(other.requests().is_empty());
}
