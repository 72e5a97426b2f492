//! The activity feed with both kinds of rows: connection decisions and recorded transactions
//! merged newest first, filters by kind, status, method, result and destination, and cursor
//! paging across both kinds without duplicates or gaps.

use std::collections::HashSet;
use std::time::Duration;

use greyproxy_testkit::Control;
use greyproxy_testkit::fetch::fetch;
use greyproxy_testkit::https_origin::Origin;
use greyproxy_testkit::mitm::MitmEnv;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_greyproxyd");

fn key(item: &Value) -> (String, u64) {
    (
        item["kind"].as_str().unwrap().to_string(),
        item["id"].as_u64().unwrap(),
    )
}

/// Every page of `list_activity` with `args` and `limit`, concatenated.
async fn all_pages(ws: &mut Control, args: Value, limit: u64) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor = Value::Null;
    for _ in 0..200 {
        let mut q = args.clone();
        q["command"] = json!("list_activity");
        q["limit"] = json!(limit);
        if !cursor.is_null() {
            q["cursor"] = cursor.clone();
        }
        let page = ws.query(q).await;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() as u64 <= limit, "{page}");
        out.extend(items.iter().cloned());
        cursor = page["next_cursor"].clone();
        if cursor.is_null() {
            return out;
        }
        assert!(
            !items.is_empty(),
            "a page with a cursor must not be empty: {page}"
        );
    }
    panic!("paging does not end");
}

fn kinds(items: &[Value], kind: &str) -> usize {
    items.iter().filter(|i| i["kind"] == kind).count()
}

#[tokio::test(flavor = "multi_thread")]
async fn activity_merges_both_kinds_newest_first_with_filters_and_paging() {
    let mut env = MitmEnv::start(BIN, "", &[]).await;
    let origin = Origin::https("127.0.0.66", &env.ca).await;
    let blocked = Origin::https("127.0.0.67", &env.ca).await;
    let r = env
        .ws
        .cmd(json!({"command":"create_rule","container_pattern":"*",
                    "destination_pattern":"127.0.0.67","action":"deny"}))
        .await;
    assert_eq!(r["type"], "command_success", "{r}");
    let (p, dca) = (env.proxy_as_codex(), env.daemon_ca_arg());
    let socks = env.d.socks_proxy();
    let get = |path: &str| origin.url(path);

    // Batch A: 5 GET /json and 3 GET /status/404 through the HTTP proxy.
    for i in 0..8 {
        let url = if i < 5 {
            get("/json")
        } else {
            get("/status/404")
        };
        let r = fetch(&["-x", &p, "--cacert", &dca], &[&url]).await;
        assert!(r.status() == 200 || r.status() == 404, "{r:?}");
    }
    // The next batch starts in a later second, so it must be listed entirely before batch A.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Batch B: 2 POSTs, 3 GETs through SOCKS5, one blocked connection.
    for _ in 0..2 {
        let r = fetch(
            &["-x", &p, "--cacert", &dca, "--data", "{\"x\":1}"],
            &[&get("/echo")],
        )
        .await;
        assert_eq!(r.status(), 200, "{r:?}");
    }
    for _ in 0..3 {
        let args = ["--socks5-hostname", &socks, "--cacert", &dca];
        let r = fetch(&args, &[&get("/json")]).await;
        assert_eq!(r.status(), 200, "{r:?}");
    }
    let r = fetch(&["-x", &p, "--cacert", &dca], &[&blocked.url("/json")]).await;
    assert_ne!(r.exit, 0, "blocked: {r:?}");
    for _ in 0..13 {
        env.ws.event("transaction.new").await;
    }

    let all = all_pages(&mut env.ws, json!({}), 1000).await;
    assert_eq!(kinds(&all, "transaction"), 13, "{all:?}");
    assert_eq!(kinds(&all, "connection"), 14, "{all:?}");
    let ts: Vec<&str> = all
        .iter()
        .map(|i| i["timestamp"].as_str().unwrap())
        .collect();
    assert!(ts.windows(2).all(|w| w[0] >= w[1]), "newest first: {ts:?}");
    for kind in ["connection", "transaction"] {
        let ids: Vec<u64> = all
            .iter()
            .filter(|i| i["kind"] == kind)
            .map(|i| i["id"].as_u64().unwrap())
            .collect();
        assert!(ids.windows(2).all(|w| w[0] > w[1]), "{kind} ids: {ids:?}");
    }
    // Batch B (6 connections, 5 transactions: the highest ids of each kind) comes first.
    let max = |kind: &str| {
        all.iter()
            .filter(|i| i["kind"] == kind)
            .map(|i| i["id"].as_u64().unwrap())
            .max()
            .unwrap()
    };
    let (cmax, tmax) = (max("connection"), max("transaction"));
    let in_b = |i: &Value| {
        let id = i["id"].as_u64().unwrap();
        if i["kind"] == "connection" {
            id > cmax - 6
        } else {
            id > tmax - 5
        }
    };
    assert!(all[..11].iter().all(in_b), "batch B first: {all:?}");
    assert!(!all[11..].iter().any(in_b), "then batch A: {all:?}");
    assert!(all[..11].iter().any(|i| i["method"] == "POST"));

    // Paging across both kinds: same sequence, no duplicates, no gaps.
    let want: Vec<(String, u64)> = all.iter().map(key).collect();
    for limit in [1, 4, 7] {
        let paged: Vec<(String, u64)> = all_pages(&mut env.ws, json!({}), limit)
            .await
            .iter()
            .map(key)
            .collect();
        assert_eq!(paged, want, "limit {limit}");
    }
    let first = env
        .ws
        .query(json!({"command":"list_activity","limit":5}))
        .await;
    assert_eq!(first["total"], 27);

    // Filters.
    let txs = all_pages(&mut env.ws, json!({"kind":"transaction"}), 5).await;
    assert_eq!(txs.len(), 13);
    assert!(txs.iter().all(|i| i["kind"] == "transaction"));
    let conns = all_pages(&mut env.ws, json!({"kind":"connection"}), 5).await;
    assert_eq!(conns.len(), 14);
    assert!(conns.iter().all(|i| i["kind"] == "connection"));
    let nf = all_pages(&mut env.ws, json!({"status":404}), 2).await;
    assert_eq!(nf.len(), 3, "{nf:?}");
    assert!(
        nf.iter()
            .all(|i| i["kind"] == "transaction" && i["status_code"] == 404)
    );
    let posts = all_pages(&mut env.ws, json!({"method":"POST"}), 1).await;
    assert_eq!(posts.len(), 2, "{posts:?}");
    assert!(
        posts
            .iter()
            .all(|i| i["kind"] == "transaction" && i["method"] == "POST")
    );
    let via_socks = all_pages(&mut env.ws, json!({"method":"SOCKS5"}), 2).await;
    assert_eq!(via_socks.len(), 3, "{via_socks:?}");
    assert!(via_socks.iter().all(|i| i["kind"] == "connection"));
    let denied = all_pages(&mut env.ws, json!({"result":"blocked"}), 10).await;
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0]["destination_host"], "127.0.0.67");
    let allowed = all_pages(&mut env.ws, json!({"result":"allowed"}), 3).await;
    assert_eq!(allowed.len(), 13);
    assert!(allowed.iter().all(|i| i["kind"] == "connection"));
    let dest = all_pages(&mut env.ws, json!({"destination":"127.0.0.67"}), 10).await;
    assert_eq!(dest.len(), 1, "{dest:?}");
    let get404 = all_pages(&mut env.ws, json!({"method":"GET","status":404}), 10).await;
    assert_eq!(get404.len(), 3);

    let unique: HashSet<(String, u64)> = want.iter().cloned().collect();
    assert_eq!(unique.len(), want.len());
    let bad = env
        .ws
        .cmd(json!({"command":"list_activity","kind":"nonsense"}))
        .await;
    assert_eq!(bad["type"], "error", "{bad}");
}
