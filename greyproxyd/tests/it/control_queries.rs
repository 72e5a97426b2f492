//! Query and settings commands of the control WebSocket as a client sees them: `status`,
//! `list_rules` (built-ins, paging), `list_activity` (order, filters, events), silent mode.

use std::collections::BTreeSet;

use greyproxy_testkit::origin::http_origin;
use greyproxy_testkit::wire::is_rfc3339;
use greyproxy_testkit::{DaemonBuilder, curl};
use serde_json::{Value, json};

fn daemon() -> DaemonBuilder {
    DaemonBuilder::new(env!("CARGO_BIN_EXE_greyproxyd"))
}

#[tokio::test]
async fn status_reports_real_listeners_and_counts() {
    let d = daemon().args(&["--hold-timeout", "17"]).start().await;
    let mut ws = d.client().await;
    let st = ws.query(json!({"command":"status"})).await;
    assert_eq!(st["service"], "greyproxy", "{st}");
    assert_eq!(st["protocol_version"], 1);
    assert_eq!(st["listeners"]["control"], d.control.to_string(), "{st}");
    assert_eq!(st["listeners"]["http"], d.http.unwrap().to_string());
    assert_eq!(st["listeners"]["socks5"], d.socks.unwrap().to_string());
    for k in ["control", "http", "socks5"] {
        let port: u16 = st["listeners"][k]
            .as_str()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_ne!(port, 0, "{k} must show the real port");
    }
    assert_eq!(st["pending_count"], 0);
    assert_eq!(st["held_connections"], 0);
    assert_eq!(st["rule_count"], 3, "the three built-ins: {st}");
    assert_eq!(st["allow_all"]["active"], false);
    assert_eq!(st["active_claims"], 0);
    assert_eq!(st["hold_timeout_seconds"], 17);
    assert_eq!(st["state_dir"], d.state_dir().display().to_string());
    assert!(st["uptime_seconds"].is_u64());
    let seq0 = st["last_seq"].as_u64().unwrap();

    // Counts follow changes.
    let r = ws.cmd(json!({"command":"create_rule","container_pattern":"*","destination_pattern":"example.org"})).await;
    assert_eq!(r["type"], "command_success", "{r}");
    let ev = ws.event("rule.created").await;
    let st = ws.query(json!({"command":"status"})).await;
    assert_eq!(st["rule_count"], 4);
    assert_eq!(st["last_seq"], ev["seq"]);
    assert!(st["last_seq"].as_u64().unwrap() > seq0);
}

#[tokio::test]
async fn list_rules_shows_the_builtins_and_pages_with_cursors() {
    let d = daemon().start().await;
    let mut ws = d.client().await;
    let page = ws.query(json!({"command":"list_rules"})).await;
    assert_eq!(page["total"], 3, "{page}");
    assert!(page["next_cursor"].is_null());
    let dests: BTreeSet<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["source"], "builtin", "{r}");
            assert_eq!(r["created_by"], "builtin", "{r}");
            assert_eq!(r["action"], "allow", "{r}");
            assert_eq!(r["container_pattern"], "*", "{r}");
            assert_eq!(r["port_pattern"], "*", "{r}");
            assert_eq!(r["is_active"], true, "{r}");
            r["destination_pattern"].as_str().unwrap()
        })
        .collect();
    assert_eq!(dests, BTreeSet::from(["127.0.0.1", "::1", "localhost"]));

    for n in 0..4 {
        let r = ws
            .cmd(json!({"command":"create_rule","container_pattern":"agent","destination_pattern":format!("h{n}.example"),"action":"deny"}))
            .await;
        assert_eq!(r["type"], "command_success", "{r}");
    }
    let mut ids = Vec::new();
    let mut cursor = Value::Null;
    let mut pages = 0;
    loop {
        let mut cmd = json!({"command":"list_rules","limit":2});
        if !cursor.is_null() {
            cmd["cursor"] = cursor.clone();
        }
        let page = ws.query(cmd).await;
        pages += 1;
        assert_eq!(page["total"], 7, "{page}");
        let items = page["items"].as_array().unwrap();
        assert!(!items.is_empty() && items.len() <= 2, "{page}");
        ids.extend(items.iter().map(|r| r["id"].as_u64().unwrap()));
        cursor = page["next_cursor"].clone();
        if cursor.is_null() {
            break;
        }
        assert!(cursor.is_string(), "{page}");
    }
    assert_eq!(pages, 4);
    let mut sorted = ids.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    sorted.dedup();
    assert_eq!(ids, sorted, "newest first, no repeats");
    assert_eq!(ids.len(), 7);

    // Filters.
    let page = ws
        .query(json!({"command":"list_rules","action":"deny"}))
        .await;
    assert_eq!(page["total"], 4, "{page}");
    let page = ws
        .query(json!({"command":"list_rules","destination":"h2.ex"}))
        .await;
    assert_eq!(page["total"], 1, "{page}");
    let r = ws
        .cmd(json!({"command":"list_rules","cursor":"not-a-cursor"}))
        .await;
    assert_eq!(r["type"], "error", "{r}");
}

#[tokio::test]
async fn list_activity_is_newest_first_filters_and_announces_each_row() {
    let ok = http_origin("127.0.0.1").await;
    let denied = http_origin("127.0.0.24").await;
    let d = daemon().start().await;
    let mut ws = d.client().await;
    let proxy = d.http_proxy();
    let r = ws
        .cmd(json!({"command":"create_rule","container_pattern":"*","destination_pattern":"127.0.0.24","action":"deny"}))
        .await;
    let deny_id = r["rule_id"].clone();

    let a = curl(&[
        "-x",
        &proxy,
        "--proxy-user",
        "alice:pw",
        &format!("http://{ok}/a"),
    ])
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    let ev_a = ws
        .event_where("request_log.new", |l| l["container_name"] == "alice")
        .await;
    let b = curl(&[
        "-x",
        &proxy,
        "--proxy-user",
        "bob:pw",
        &format!("http://{denied}/b"),
    ])
    .await;
    assert_eq!(b.status, 403, "{b:?}");
    let ev_b = ws
        .event_where("request_log.new", |l| l["container_name"] == "bob")
        .await;
    assert_eq!(ev_a["data"]["result"], "allowed", "{ev_a}");
    assert_eq!(ev_a["data"]["destination_host"], "127.0.0.1");
    assert_eq!(ev_a["data"]["method"], "HTTP");
    assert_eq!(ev_b["data"]["result"], "blocked", "{ev_b}");
    assert_eq!(ev_b["data"]["rule_id"], deny_id);
    assert_eq!(ev_b["data"]["reason"], "rule");

    // The unfiltered feed also has alice's recorded exchange (plain HTTP is captured).
    let everything = ws.query(json!({"command":"list_activity"})).await;
    assert_eq!(everything["total"], 3, "{everything}");
    let tx: Vec<&Value> = everything["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["kind"] == "transaction")
        .collect();
    assert_eq!(tx.len(), 1, "{everything}");
    assert_eq!(tx[0]["url"], format!("http://{ok}/a"));
    assert_eq!(tx[0]["status_code"], 200);
    assert_eq!(tx[0]["container_name"], "alice");

    let all = ws
        .query(json!({"command":"list_activity","kind":"connection"}))
        .await;
    assert_eq!(all["total"], 2, "{all}");
    let items = all["items"].as_array().unwrap();
    assert_eq!(items[0]["kind"], "connection", "{all}");
    assert_eq!(items[0]["container_name"], "bob", "newest first: {all}");
    assert_eq!(items[1]["container_name"], "alice");
    assert_eq!(items[0]["id"], ev_b["data"]["id"]);
    assert_eq!(items[1]["id"], ev_a["data"]["id"]);

    let only = |q: Value| {
        let mut cmd = q;
        cmd["command"] = json!("list_activity");
        cmd["kind"] = json!("connection");
        cmd
    };
    for (filter, who) in [
        (json!({"result":"blocked"}), Some("bob")),
        (json!({"result":"allowed"}), Some("alice")),
        (json!({"container":"ALI"}), Some("alice")),
        (json!({"destination":"127.0.0.24"}), Some("bob")),
        (json!({"method":"SOCKS5"}), None),
        (json!({"container":"carol"}), None),
    ] {
        let page = ws.query(only(filter.clone())).await;
        let names: Vec<&str> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["container_name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            who.into_iter().collect::<Vec<_>>(),
            "{filter}: {page}"
        );
        assert_eq!(page["total"], names.len(), "{filter}: {page}");
    }

    // Keyset paging.
    let p1 = ws
        .query(json!({"command":"list_activity","kind":"connection","limit":1}))
        .await;
    assert_eq!(p1["items"][0]["container_name"], "bob", "{p1}");
    let p2 = ws
        .query(json!({"command":"list_activity","kind":"connection","limit":1,"cursor":p1["next_cursor"]}))
        .await;
    assert_eq!(p2["items"][0]["container_name"], "alice", "{p2}");

    let r = ws
        .cmd(json!({"command":"list_activity","result":"maybe"}))
        .await;
    assert_eq!(r["type"], "error", "{r}");
}

#[tokio::test]
async fn allow_all_deny_blocks_even_builtin_destinations_until_cleared() {
    let origin = http_origin("127.0.0.1").await;
    let d = daemon().start().await;
    let mut ws = d.client().await;
    let mut other = d.client().await;
    let proxy = d.http_proxy();
    let url = format!("http://{origin}/");

    let st = ws.query(json!({"command":"get_allow_all"})).await;
    assert_eq!(st, json!({"active":false}));

    let st = ws
        .query(json!({"command":"set_allow_all","mode":"deny","duration":"10m"}))
        .await;
    assert_eq!(st["active"], true, "{st}");
    assert_eq!(st["mode"], "deny");
    assert!(is_rfc3339(st["expires_at"].as_str().unwrap()), "{st}");
    let left = st["remaining_seconds"].as_u64().unwrap();
    assert!((590..=600).contains(&left), "{st}");
    let ev = other.event("allowall.changed").await;
    assert_eq!(ev["data"]["mode"], "deny", "{ev}");

    let r = curl(&["-x", &proxy, &url]).await;
    assert_eq!(
        r.status, 403,
        "silent deny overrides the built-in loopback rule: {r:?}"
    );
    let log = ws
        .event_where("request_log.new", |l| l["result"] == "blocked")
        .await;
    assert_eq!(log["data"]["reason"], "allow_all", "{log}");
    assert_eq!(
        ws.query(json!({"command":"get_allow_all"})).await["mode"],
        "deny"
    );

    // Invalid durations change nothing.
    for bad in ["soon", "0s", "400d"] {
        let r = ws
            .cmd(json!({"command":"set_allow_all","mode":"allow","duration":bad}))
            .await;
        assert_eq!(r["type"], "error", "{bad}: {r}");
    }
    let r = ws
        .cmd(json!({"command":"set_allow_all","mode":"sideways"}))
        .await;
    assert_eq!(r["type"], "error", "{r}");
    assert_eq!(
        ws.query(json!({"command":"get_allow_all"})).await["mode"],
        "deny"
    );

    let st = ws.query(json!({"command":"clear_allow_all"})).await;
    assert_eq!(st, json!({"active":false}));
    let ev = other
        .event_where("allowall.changed", |s| s["active"] == false)
        .await;
    assert!(ev["data"].get("mode").is_none(), "{ev}");
    let r = curl(&["-x", &proxy, &url]).await;
    assert_eq!(r.status, 200, "{r:?}");

    // "Until restart": active, no expiry.
    let st = ws
        .query(json!({"command":"set_allow_all","mode":"allow"}))
        .await;
    assert_eq!(st["active"], true, "{st}");
    assert_eq!(st["mode"], "allow");
    assert!(
        st.get("expires_at").is_none() && st.get("remaining_seconds").is_none(),
        "{st}"
    );
    other
        .event_where("allowall.changed", |s| s["mode"] == "allow")
        .await;
    assert_eq!(ws.query(json!({"command":"status"})).await["allow_all"], st);
}
