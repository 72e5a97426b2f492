//! The SOCKS5 front end as clients see it (identity with and without credentials, held and
//! refused connections, hang-ups) and IPv6 targets through both proxies.

use std::net::SocketAddr;
use std::time::Duration;

use greyproxy_testkit::origin::{echo_origin, http_origin};
use greyproxy_testkit::raw::{
    SocksTarget, echo_roundtrip, http_connect, read_socks_reply, socks5_connect, socks5_send,
};
use greyproxy_testkit::{CurlResult, Daemon, DaemonBuilder, curl};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

fn daemon() -> DaemonBuilder {
    DaemonBuilder::new(env!("CARGO_BIN_EXE_greyproxyd"))
}

const SOON: Duration = Duration::from_secs(2);

/// curl through the SOCKS5 proxy, the proxy resolving names (`--socks5-hostname`).
fn socks_curl(d: &Daemon, url: &str, user: Option<&str>) -> JoinHandle<CurlResult> {
    let socks = d.socks_proxy();
    let url = url.to_string();
    let user = user.map(str::to_string);
    tokio::spawn(async move {
        let mut args = vec!["--socks5-hostname", socks.as_str(), url.as_str()];
        if let Some(u) = &user {
            args.extend(["--proxy-user", u.as_str()]);
        }
        curl(&args).await
    })
}

async fn finish(h: JoinHandle<CurlResult>) -> CurlResult {
    tokio::time::timeout(SOON, h)
        .await
        .expect("client answered at once")
        .unwrap()
}

fn assert_ok(res: &CurlResult, origin: SocketAddr) {
    assert_eq!((res.exit, res.status), (0, 200), "{res:?}");
    assert!(
        res.body.starts_with(&format!("hello from {origin} GET /")),
        "{res:?}"
    );
}

/// `--socks5-hostname` to an IP literal: recent curl sends it as an address, older ones as a
/// name; the daemon keys both by the IP text.
fn pending_matches(p: &Value, container: &str, origin: SocketAddr) -> bool {
    p["container_name"] == container
        && p["destination_host"] == origin.ip().to_string()
        && p["destination_port"] == origin.port()
}

#[tokio::test]
async fn identity_comes_from_the_username_or_the_peer_and_deny_refuses_with_exit_97() {
    let a = http_origin("127.0.3.1").await;
    let d = daemon().start().await;
    let mut ws = d.client().await;
    let url = format!("http://{a}/s");
    let anonymous = socks_curl(&d, &url, None);
    let pa = ws
        .event_where("pending_request.created", |p| {
            pending_matches(p, "unknown-127.0.0.1", a)
        })
        .await["data"]
        .clone();
    let named = socks_curl(&d, &url, Some("agent-7:secret"));
    let pn = ws
        .event_where("pending_request.created", |p| {
            pending_matches(p, "agent-7", a)
        })
        .await["data"]
        .clone();
    assert_ne!(pa["id"], pn["id"]);
    // `proxy` as username counts as no identity (what greywall sends without one).
    let mut as_proxy =
        socks5_send(d.socks.unwrap(), &SocksTarget::Ip(a), Some(("proxy", "x"))).await;
    let ev = ws
        .event_where("pending_request.updated", |p| p["id"] == pa["id"])
        .await;
    assert_eq!(ev["data"]["attempt_count"], 2, "{ev}");

    let r = ws
        .cmd(json!({"command":"deny","pending_id":pa["id"]}))
        .await;
    assert_eq!(r["type"], "command_success", "{r}");
    let res = finish(anonymous).await;
    assert_eq!(res.exit, 97, "SOCKS refusal: {res:?}");
    let rep = tokio::time::timeout(SOON, read_socks_reply(&mut as_proxy)).await;
    assert_eq!(rep.unwrap(), Some(2), "REP 0x02: not allowed by ruleset");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!named.is_finished(), "the other identity is still held");

    let r = ws
        .cmd(json!({"command":"allow","pending_id":pn["id"]}))
        .await;
    assert_eq!(r["type"], "command_success", "{r}");
    assert_ok(&finish(named).await, a);

    // The deny rule answers the anonymous client at once from now on.
    let again = curl(&["--socks5-hostname", &d.socks_proxy(), &url]).await;
    assert_eq!(again.exit, 97, "{again:?}");
    assert!(again.elapsed < SOON, "{again:?}");
}

#[tokio::test]
async fn a_socks_client_hanging_up_mid_hold_is_no_longer_counted() {
    let a = echo_origin("127.0.3.2").await;
    let d = daemon().start().await;
    let mut ws = d.client().await;
    let proxy = d.socks.unwrap();
    let kept = socks5_send(proxy, &SocksTarget::Ip(a), Some(("web", "pw"))).await;
    let p = ws.pending_for("127.0.3.2", a.port()).await;
    assert_eq!(p["container_name"], "web");
    let gone = socks5_send(proxy, &SocksTarget::Ip(a), Some(("web", "pw"))).await;
    let id = p["id"].clone();
    ws.event_where("waiters.changed", |e| {
        e["pending_id"] == id && e["previous_count"] == 1 && e["current_count"] == 2
    })
    .await;
    drop(gone);
    ws.event_where("waiters.changed", |e| {
        e["pending_id"] == id && e["previous_count"] == 2 && e["current_count"] == 1
    })
    .await;
    let list = ws.query(json!({"command":"list_pending"})).await;
    assert_eq!(list["items"][0]["waiting_count"], 1, "{list}");

    let r = ws.cmd(json!({"command":"allow","pending_id":id})).await;
    assert_eq!(r["type"], "command_success", "{r}");
    let mut kept = kept;
    let rep = tokio::time::timeout(SOON, read_socks_reply(&mut kept))
        .await
        .unwrap();
    assert_eq!(rep, Some(0));
    echo_roundtrip(&mut kept, b"through socks").await;
}

#[tokio::test]
async fn ipv6_loopback_through_socks5_by_name_and_by_address() {
    let web = http_origin("::1").await;
    let echo = echo_origin("::1").await;
    let d = daemon().start().await;
    let mut ws = d.client().await;
    let url = format!("http://{web}/six");
    let socks = d.socks_proxy();
    // ::1 is allowed by a built-in rule: nothing is held.
    let by_name = curl(&["--socks5-hostname", &socks, &url]).await;
    assert_ok(&by_name, web);
    let resolved_locally = curl(&["--socks5", &socks, &url]).await;
    assert_ok(&resolved_locally, web);

    let (mut s, rep) = socks5_connect(d.socks.unwrap(), &SocksTarget::Ip(echo), None).await;
    assert_eq!(rep, Some(0), "numeric IPv6 (ATYP 4) CONNECT");
    echo_roundtrip(&mut s, b"v6 by address").await;
    let name = SocksTarget::Domain("::1".into(), echo.port());
    let (mut s, rep) = socks5_connect(d.socks.unwrap(), &name, Some(("six", "x"))).await;
    assert_eq!(rep, Some(0), "IPv6 literal sent as a name (ATYP 3)");
    echo_roundtrip(&mut s, b"v6 by name").await;

    let list = ws.query(json!({"command":"list_pending"})).await;
    assert_eq!(list["total"], 0, "{list}");
}

#[tokio::test]
async fn http_connect_to_an_ipv6_literal() {
    let web = http_origin("::1").await;
    let echo = echo_origin("::1").await;
    let d = daemon().start().await;
    let (mut s, reply) = http_connect(d.http.unwrap(), &echo.to_string(), None).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    echo_roundtrip(&mut s, b"v6 tunnel").await;
    let res = curl(&["-p", "-x", &d.http_proxy(), &format!("http://{web}/p")]).await;
    assert_ok(&res, web);
    let plain = curl(&["-x", &d.http_proxy(), &format!("http://{web}/q")]).await;
    assert_eq!(plain.status, 200, "{plain:?}");
}
