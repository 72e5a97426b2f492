//! `subdomain_wildcard` with real host names, end to end through SOCKS5 (remote resolution):
//! the rule covers the registrable domain, apex included, and decides sibling hosts without a
//! prompt. The names do not resolve, so an allowed connection ends with SOCKS5 "host
//! unreachable" (curl exit 97, reply code 4) while a blocked one ends with "not allowed" (2):
//! the decision is visible either way.

use greyproxy_testkit::{DaemonBuilder, curl};
use serde_json::json;

#[tokio::test]
async fn subdomain_wildcard_covers_the_registrable_domain_and_its_apex() {
    let d = DaemonBuilder::new(env!("CARGO_BIN_EXE_greyproxyd"))
        .start()
        .await;
    let mut ws = d.client().await;
    let socks = d.socks_proxy();
    let held = tokio::spawn({
        let s = socks.clone();
        async move {
            curl(&[
                "--socks5-hostname",
                &s,
                "--proxy-user",
                "agent:x",
                "http://api.greyproxy-test.co.uk:8080/",
            ])
            .await
        }
    });
    let pending = ws.pending_for("api.greyproxy-test.co.uk", 8080).await;
    let r = ws
        .cmd(json!({"command":"allow","pending_id":pending["id"],"scope":"subdomain_wildcard"}))
        .await;
    assert_eq!(r["type"], "command_success", "{r}");
    let res = held.await.unwrap();
    // Allowed, then the name does not resolve: "host unreachable", not "not allowed".
    assert_eq!(res.exit, 97, "{res:?}");
    assert!(res.stderr.contains(". (4)"), "{res:?}");

    let rules = ws
        .query(json!({"command":"list_rules","container":"agent"}))
        .await;
    let rule = &rules["items"][0];
    assert_eq!(rule["destination_pattern"], "**.greyproxy-test.co.uk");
    assert_eq!(rule["port_pattern"], "*");
    assert_eq!(rule["container_pattern"], "agent");

    // The apex and another subdomain, other ports: decided by the rule, no new prompt.
    for url in [
        "http://greyproxy-test.co.uk/",
        "http://deep.www.greyproxy-test.co.uk:9/",
    ] {
        let res = curl(&["--socks5-hostname", &socks, "--proxy-user", "agent:x", url]).await;
        assert_eq!(res.exit, 97, "{url}: {res:?}");
        assert!(res.stderr.contains(". (4)"), "{url}: {res:?}");
    }
    let pending = ws.query(json!({"command":"list_pending"})).await;
    assert_eq!(pending["total"], 0, "{pending}");

    // Another registrable domain under the same public suffix is not covered.
    let other = tokio::spawn({
        let s = socks.clone();
        async move {
            curl(&[
                "--socks5-hostname",
                &s,
                "--proxy-user",
                "agent:x",
                "http://evil-test.co.uk/",
            ])
            .await
        }
    });
    let p = ws.pending_for("evil-test.co.uk", 80).await;
    let r = ws.cmd(json!({"command":"deny","pending_id":p["id"]})).await;
    assert_eq!(r["type"], "command_success");
    let res = other.await.unwrap();
    assert_eq!(res.exit, 97, "{res:?}");
    assert!(res.stderr.contains(". (2)"), "{res:?}");
}
