//! Fault: `kill -9` in the middle of a burst of decisions and rule edits. Several control
//! clients create, edit and delete rules as fast as the daemon answers while another allows
//! pending requests of real held connections; every command whose `command_success` reached
//! its client is written down, the daemon is SIGKILLed mid-burst, and after a restart on the
//! same state dir every acknowledged rule (in its latest acknowledged form), every acknowledged
//! allow and every acknowledged delete is there. The only command a client may have in flight
//! at the kill is allowed either outcome. Zero lost.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use greyproxy_testkit::control::open;
use greyproxy_testkit::origin::http_origin;
use greyproxy_testkit::raw::{http_connect, http_connect_send};
use greyproxy_testkit::{Control, Daemon, DaemonBuilder, eventually_sync};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Clients editing rules at once.
const EDITORS: usize = 3;
/// Held destinations (one pending request each) for the allowing client.
const HELD: usize = 16;
/// Acknowledged commands before the kill, at least.
const KILL_AFTER_ACKS: usize = 150;
/// Acknowledged allows before the kill, at least.
const KILL_AFTER_ALLOWS: usize = 6;

/// The fields of a rule this test sets and compares.
const FIELDS: [&str; 5] = [
    "container_pattern",
    "destination_pattern",
    "port_pattern",
    "action",
    "notes",
];

/// A control client that, unlike [`Control`], reports the daemon going away instead of
/// panicking.
struct Raw {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    n: u64,
}

impl Raw {
    async fn connect(d: &Daemon) -> Raw {
        let mut ws = open(&d.ws_url(), Some(&d.token)).await.unwrap();
        let hello = ws.next().await.unwrap().unwrap();
        assert!(hello.to_text().unwrap().contains("connected"), "{hello}");
        Raw { ws, n: 0 }
    }

    /// The reply to `cmd`; `None` once the daemon is gone (or silent for 10 s).
    async fn cmd(&mut self, mut cmd: Value) -> Option<Value> {
        self.n += 1;
        let id = format!("k{}", self.n);
        cmd["request_id"] = json!(id);
        self.ws.send(Message::text(cmd.to_string())).await.ok()?;
        loop {
            let next = tokio::time::timeout(Duration::from_secs(10), self.ws.next()).await;
            match next {
                Ok(Some(Ok(Message::Text(t)))) => {
                    let m: Value = serde_json::from_str(t.as_str()).unwrap();
                    if m["request_id"] == json!(id) {
                        return Some(m);
                    }
                }
                Ok(Some(Ok(_))) => continue,
                _ => return None,
            }
        }
    }
}

/// What the clients were told, and what they had in flight when the daemon died.
#[derive(Default)]
struct Ledger {
    /// Rule id → its acknowledged fields (`None`: acknowledged deleted).
    rules: BTreeMap<u64, Option<Value>>,
    /// Acknowledged allows: (pending id, rule id, host, port).
    allowed: Vec<(u64, u64, String, u16)>,
    /// Per client: the command sent and not yet answered.
    in_flight: BTreeMap<String, Value>,
    /// Replies other than success before the kill.
    failures: Vec<String>,
    acks: usize,
}

type Shared = Arc<Mutex<Ledger>>;

/// Sends `cmd` on behalf of `who`, noting it in flight; returns the success reply, or `None`
/// when the daemon is gone.
async fn send(c: &mut Raw, ledger: &Shared, who: &str, cmd: Value) -> Option<Value> {
    ledger
        .lock()
        .unwrap()
        .in_flight
        .insert(who.into(), cmd.clone());
    let r = c.cmd(cmd.clone()).await?;
    let mut l = ledger.lock().unwrap();
    l.in_flight.remove(who);
    if r["type"] != "command_success" {
        l.failures.push(format!("{cmd} -> {r}"));
        return None;
    }
    l.acks += 1;
    Some(r)
}

/// The rule fields `cmd` (a create or update) leaves on `base`.
fn applied(base: Option<&Value>, cmd: &Value) -> Value {
    let mut out = base.cloned().unwrap_or_else(|| json!({"port_pattern":"*"}));
    for k in FIELDS {
        if !cmd[k].is_null() {
            out[k] = cmd[k].clone();
        }
    }
    out
}

/// One editor: create, update, update again, delete every third, as fast as answered.
async fn edit_forever(mut c: Raw, ledger: Shared, who: String) {
    for i in 0.. {
        let create = json!({"command":"create_rule","container_pattern":format!("agent-{who}"),
            "destination_pattern":format!("{who}-{i}.fault.example"),"port_pattern":"443",
            "action": if i % 4 == 0 { "deny" } else { "allow" },"notes":format!("v0 {who} {i}")});
        let Some(r) = send(&mut c, &ledger, &who, create.clone()).await else {
            return;
        };
        let id = r["rule_id"].as_u64().unwrap();
        ledger
            .lock()
            .unwrap()
            .rules
            .insert(id, Some(applied(None, &create)));
        let edits = [
            json!({"command":"update_rule","rule_id":id,"port_pattern":"8443",
                "notes":format!("v1 {who} {i}")}),
            json!({"command":"update_rule","rule_id":id,"destination_pattern":
                format!("**.{who}-{i}.fault.example"),"notes":format!("v2 {who} {i}")}),
        ];
        for edit in edits.iter().take(1 + i % 2) {
            if send(&mut c, &ledger, &who, edit.clone()).await.is_none() {
                return;
            }
            let mut l = ledger.lock().unwrap();
            let now = applied(l.rules[&id].as_ref(), edit);
            l.rules.insert(id, Some(now));
        }
        if i % 3 == 2 {
            let del = json!({"command":"delete_rule","rule_id":id});
            if send(&mut c, &ledger, &who, del).await.is_none() {
                return;
            }
            ledger.lock().unwrap().rules.insert(id, None);
        }
    }
}

/// Allows the held pending requests one by one, a little apart.
async fn allow_all(mut c: Raw, ledger: Shared, pendings: Vec<Value>) {
    for p in pendings {
        let cmd = json!({"command":"allow","pending_id":p["id"]});
        let Some(r) = send(&mut c, &ledger, "allower", cmd).await else {
            return;
        };
        let entry = (
            p["id"].as_u64().unwrap(),
            r["rule_id"].as_u64().unwrap(),
            p["destination_host"].as_str().unwrap().to_string(),
            p["destination_port"].as_u64().unwrap() as u16,
        );
        ledger.lock().unwrap().allowed.push(entry);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn pid_of(d: &Daemon) -> i32 {
    let rt: Value =
        serde_json::from_str(&std::fs::read_to_string(d.state_dir().join("daemon.json")).unwrap())
            .unwrap();
    rt["pid"].as_i64().unwrap() as i32
}

fn sigkill(pid: i32) {
    let pid = rustix::process::Pid::from_raw(pid).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
}

async fn all(ws: &mut Control, command: &str) -> Vec<Value> {
    let page = ws.query(json!({"command":command,"limit":1000})).await;
    assert!(page["next_cursor"].is_null(), "one page holds all: {page}");
    page["items"].as_array().unwrap().clone()
}

fn fields(rule: &Value) -> Value {
    let mut out = json!({});
    for k in FIELDS {
        out[k] = rule[k].clone();
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_mid_burst_loses_no_acknowledged_decision_or_edit() {
    let t0 = Instant::now();
    let d = DaemonBuilder::new(env!("CARGO_BIN_EXE_greyproxyd"))
        .args(&["--hold-timeout", "120"])
        .start()
        .await;
    let mut ws = d.client().await;
    let proxy = d.http.unwrap();
    let mut held = Vec::new();
    let mut pendings = Vec::new();
    for i in 0..HELD {
        let ip = format!("127.0.5.{}", i + 1);
        let origin = http_origin(&ip).await;
        held.push(http_connect_send(proxy, &origin.to_string(), None).await);
        pendings.push(ws.pending_for(&ip, origin.port()).await);
    }

    let ledger = Shared::default();
    let mut burst = tokio::task::JoinSet::new();
    for e in 0..EDITORS {
        let c = Raw::connect(&d).await;
        burst.spawn(edit_forever(c, ledger.clone(), format!("e{e}")));
    }
    let c = Raw::connect(&d).await;
    burst.spawn(allow_all(c, ledger.clone(), pendings.clone()));

    // Mid-burst: enough acknowledged, editors still going.
    let what = "enough acknowledged edits and allows mid-burst (acks, allows)";
    eventually_sync(
        what,
        Duration::from_secs(20),
        Duration::from_millis(2),
        || {
            let l = ledger.lock().unwrap();
            assert!(l.failures.is_empty(), "{:?}", l.failures);
            if l.acks >= KILL_AFTER_ACKS && l.allowed.len() >= KILL_AFTER_ALLOWS {
                Ok(())
            } else {
                Err((l.acks, l.allowed.len()))
            }
        },
    )
    .await;
    sigkill(pid_of(&d));
    while let Some(r) = burst.join_next().await {
        r.unwrap();
    }
    drop(held);
    let l = std::mem::take(&mut *ledger.lock().unwrap());
    assert!(l.failures.is_empty(), "{:?}", l.failures);
    let killed_at = t0.elapsed();

    let d = d.restart().await;
    let mut ws = d.client().await;
    let rules: BTreeMap<u64, Value> = all(&mut ws, "list_rules")
        .await
        .into_iter()
        .filter(|r| r["source"] != "builtin")
        .map(|r| (r["id"].as_u64().unwrap(), r))
        .collect();
    let mut lost = Vec::new();
    for (id, want) in &l.rules {
        let got = rules.get(id).map(fields);
        let ok = match (want, &got) {
            (Some(w), Some(g)) => w == g,
            (None, None) => true,
            _ => false,
        };
        if ok {
            continue;
        }
        let in_flight = l
            .in_flight
            .values()
            .find(|c| c["rule_id"].as_u64() == Some(*id));
        let explained = match (in_flight, &got) {
            (Some(c), None) => c["command"] == "delete_rule",
            (Some(c), Some(g)) => c["command"] == "update_rule" && *g == applied(want.as_ref(), c),
            _ => false,
        };
        if !explained {
            lost.push(format!(
                "rule {id}: acknowledged {want:?}, after restart {got:?}"
            ));
        }
    }
    // Every acknowledged allow: its rule is there and decides its destination at once.
    let pending_ids: Vec<Value> = all(&mut ws, "list_pending")
        .await
        .iter()
        .map(|p| p["id"].clone())
        .collect();
    for (pid, rid, host, port) in &l.allowed {
        match rules.get(rid) {
            Some(r)
                if r["destination_pattern"] == host.as_str()
                    && r["port_pattern"].as_str().and_then(|p| p.parse().ok()) == Some(*port)
                    && r["action"] == "allow" => {}
            other => lost.push(format!("allow of pending {pid} (rule {rid}): {other:?}")),
        }
        if pending_ids.contains(&json!(pid)) {
            lost.push(format!("allowed pending {pid} is pending again"));
        }
        let (_s, reply) = tokio::time::timeout(
            Duration::from_secs(2),
            http_connect(d.http.unwrap(), &format!("{host}:{port}"), None),
        )
        .await
        .unwrap_or_else(|_| panic!("{host}:{port} held again after its allow"));
        assert_eq!(reply.status, 200, "{host}:{port}: {reply:?}");
    }
    // Pending requests nobody decided are still there.
    let decided: Vec<u64> = l.allowed.iter().map(|a| a.0).collect();
    let allow_in_flight = l.in_flight.get("allower").map(|c| c["pending_id"].clone());
    for p in &pendings {
        let id = p["id"].as_u64().unwrap();
        if !decided.contains(&id)
            && allow_in_flight.as_ref() != Some(&p["id"])
            && !pending_ids.contains(&p["id"])
        {
            lost.push(format!("undecided pending {id} vanished"));
        }
    }
    // Nothing appeared that nobody asked for: at most the in-flight creates and allows.
    let unknown: Vec<&Value> = rules
        .iter()
        .filter(|(id, _)| !l.rules.contains_key(id) && !l.allowed.iter().any(|a| a.1 == **id))
        .map(|(_, r)| r)
        .collect();
    let creates_in_flight = l
        .in_flight
        .values()
        .filter(|c| c["command"] == "create_rule" || c["command"] == "allow")
        .count();
    assert!(
        unknown.len() <= creates_in_flight,
        "rules nobody was told about: {unknown:?}; in flight: {:?}",
        l.in_flight
    );
    for r in &unknown {
        let explained = l.in_flight.values().any(|c| {
            (c["command"] == "create_rule" && fields(r) == applied(None, c))
                || c["command"] == "allow"
        });
        assert!(
            explained,
            "unexplained rule {r}; in flight {:?}",
            l.in_flight
        );
    }
    assert!(lost.is_empty(), "lost after kill -9:\n{}", lost.join("\n"));

    // Ids go on above everything handed out before the kill.
    let max_id = l.rules.keys().chain(l.allowed.iter().map(|a| &a.1)).max();
    let r = ws
        .cmd(json!({"command":"create_rule","container_pattern":"*",
            "destination_pattern":"after.fault.example"}))
        .await;
    assert_eq!(r["type"], "command_success", "{r}");
    assert!(r["rule_id"].as_u64() > max_id.copied(), "{r} vs {max_id:?}");
    println!(
        "kill -9 after {} acknowledged commands ({} rules, {} allows, in flight {:?}) at {killed_at:?}; \
         all checked at {:?}",
        l.acks,
        l.rules.len(),
        l.allowed.len(),
        l.in_flight
            .values()
            .map(|c| &c["command"])
            .collect::<Vec<_>>(),
        t0.elapsed()
    );
}
