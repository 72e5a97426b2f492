//! WebSocket capture tests: the Python `websockets` origin and client of
//! `greyproxyd/tests/it/ws/` run as real child processes, and the rows the daemon recorded for a
//! WebSocket connection (the 101 upgrade and one `WS_REQ`/`WS_RESP` row per message).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use crate::control::Control;
use crate::tls::TestCa;
use crate::wait::within;

/// How long a script may take before the test gives up on it.
const SCRIPT_WAIT: Duration = Duration::from_secs(60);

/// A script of `greyproxyd/tests/it/ws/`.
pub fn script(name: &str) -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../greyproxyd/tests/it/ws"
    ))
    .join(name)
}

/// `greyproxyd/tests/it/ws/server.py` listening on an IP of its own; killed when dropped.
pub struct WsOrigin {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    stderr: tempfile::NamedTempFile,
    _tls: Option<tempfile::TempDir>,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl std::fmt::Debug for WsOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsOrigin")
            .field("addr", &self.addr)
            .finish()
    }
}

impl WsOrigin {
    /// Starts the server on `ip` (TLS with a leaf from `ca` when given) with extra `args`
    /// (`--compression …`, `--mode …`, `--fragment-replies N`).
    pub async fn start(ip: &str, ca: Option<&TestCa>, args: &[&str]) -> WsOrigin {
        let stderr = tempfile::NamedTempFile::new().unwrap();
        let mut cmd = Command::new(crate::python());
        cmd.arg(script("server.py")).args(["--host", ip]).args(args);
        let tls = ca.map(|ca| {
            let ck = ca.leaf(&[ip]);
            let dir = tempfile::tempdir().unwrap();
            let write = |name: &str, der: &[u8]| {
                let p = dir.path().join(name);
                std::fs::write(&p, der).unwrap();
                p
            };
            cmd.arg("--cert")
                .arg(write("cert.der", &ck.chain[0]))
                .arg("--ca")
                .arg(write("ca.der", &ck.chain[1]))
                .arg("--key")
                .arg(write("key.der", ck.key.secret_der()));
            dir
        });
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr.reopen().unwrap()))
            .kill_on_drop(true)
            .spawn()
            .expect("python runs");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(SCRIPT_WAIT, lines.next_line()).await;
        let port = match first {
            Ok(Ok(Some(l))) => serde_json::from_str::<Value>(&l).unwrap()["port"]
                .as_u64()
                .unwrap(),
            _ => panic!(
                "server.py did not start: {}",
                std::fs::read_to_string(stderr.path()).unwrap_or_default()
            ),
        };
        WsOrigin {
            child,
            lines,
            stderr,
            _tls: tls,
            addr: SocketAddr::new(ip.parse().unwrap(), port as u16),
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    /// `scheme://ip:port{path}`.
    pub fn url(&self, scheme: &str, path: &str) -> String {
        format!("{scheme}://{}{path}", self.addr)
    }

    /// The server's stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.stderr.path()).unwrap_or_default()
    }

    /// The next connection report (`{"event":"closed",…}`): what the server received, the
    /// extensions it negotiated, the close code and reason it got.
    pub async fn closed(&mut self) -> Value {
        match tokio::time::timeout(SCRIPT_WAIT, self.lines.next_line()).await {
            Ok(Ok(Some(l))) => serde_json::from_str(&l).unwrap(),
            other => panic!("no report from server.py ({other:?}): {}", self.stderr()),
        }
    }

    /// Kills the server.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Runs `greyproxyd/tests/it/ws/client.py` with `cfg` on stdin; returns its JSON output. Panics
/// with its stderr when it fails or takes more than a minute.
pub async fn run_client(cfg: &Value) -> Value {
    run_client_for(cfg, SCRIPT_WAIT).await
}

/// [`run_client`] allowing it `wait`.
pub async fn run_client_for(cfg: &Value, wait: Duration) -> Value {
    let mut child = Command::new(crate::python())
        .arg(script("client.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python runs");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(cfg.to_string().as_bytes()).await.unwrap();
    drop(stdin);
    let out = tokio::time::timeout(wait, child.wait_with_output())
        .await
        .expect("client.py finishes")
        .unwrap();
    assert!(
        out.status.success(),
        "client.py failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The client actions for a chat: each message sent, then its echo read.
pub fn send_and_recv(messages: &[String]) -> Vec<Value> {
    messages
        .iter()
        .flat_map(|m| [json!({"send": m}), json!({"recv": 1})])
        .collect()
}

/// What `server.py` answers to the text message `m`.
pub fn echo(m: &str) -> String {
    format!("{{\"echo\":{m}}}")
}

/// `n` similar JSON messages of an agent's chat (most of each repeats the previous one).
pub fn chat_messages(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            json!({"type":"conversation.item.create","event_id":format!("evt_{i:04}"),
                   "item":{"type":"message","role":"user","content":[{"type":"input_text",
                   "text":format!("Please read src/capture/ws/tap.rs and list every function \
                                   it defines with a one-line summary of each (request {i}).")}]}})
            .to_string()
        })
        .collect()
}

/// The rows of one WebSocket connection.
#[derive(Debug)]
pub struct WsRows {
    /// The 101 upgrade transaction (`get_transaction`).
    pub upgrade: Value,
    /// Every `WS_REQ`/`WS_RESP` row with its payload (`get_transaction`), by `message_index`.
    pub messages: Vec<Value>,
}

impl WsRows {
    /// The rows of one direction (`WS_REQ` or `WS_RESP`), in message order.
    pub fn dir(&self, method: &str) -> Vec<&Value> {
        self.messages
            .iter()
            .filter(|m| m["method"] == method)
            .collect()
    }
}

/// Waits until the upgrade row of the only WebSocket connection to `host` has been completed
/// (`transaction.updated`: the connection ended) and returns it with its message rows. Panics
/// if the number of message rows is not exactly `n`, or if they were not each announced by a
/// `transaction.new` event.
pub async fn closed_connection(ws: &mut Control, host: &str, n: usize) -> WsRows {
    let upgrade = ws
        .event_where("transaction.new", |d| {
            d["destination_host"] == host && d["status_code"] == 101 && d["method"] == "GET"
        })
        .await["data"]
        .clone();
    let id = upgrade["id"].clone();
    let updated = ws
        .event_where("transaction.updated", |d| d["id"] == id)
        .await;
    assert!(
        updated["data"]["ws_messages"].is_u64(),
        "the update reports the message count: {updated}"
    );
    let items = within(
        Duration::from_secs(10),
        Duration::from_millis(100),
        async || {
            let page = ws
                .query(
                    json!({"command":"list_activity","kind":"transaction","destination":host,
                       "limit":1000}),
                )
                .await;
            let items: Vec<Value> = page["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|t| t["id"] != id)
                .cloned()
                .collect();
            if items.len() >= n {
                Ok(items)
            } else {
                Err(items)
            }
        },
    )
    .await
    .unwrap_or_else(|items| items);
    let methods: Vec<&Value> = items.iter().map(|t| &t["method"]).collect();
    assert_eq!(items.len(), n, "message rows for {host}: {methods:?}");
    let mut messages = Vec::new();
    for t in &items {
        let full = ws
            .query(json!({"command":"get_transaction","transaction_id":t["id"]}))
            .await;
        messages.push(full);
    }
    messages.sort_by_key(|m| m["message_index"].as_u64());
    // Each message row was announced, without its payload.
    for _ in 0..n {
        let ev = ws
            .event_where("transaction.new", |d| d["upgrade_id"] == id)
            .await;
        assert!(ev["data"].get("request_body").is_none(), "{ev}");
    }
    let upgrade = ws
        .query(json!({"command":"get_transaction","transaction_id":id}))
        .await;
    WsRows { upgrade, messages }
}

/// Asserts what every message row of a connection shows: linked to the upgrade, at `url`,
/// indexes 0..n without gaps, and per direction (in index order) exactly the messages `sent`
/// (`WS_REQ`) and `received` (`WS_RESP`) as `client.py` reports them: opcode, decoded size,
/// and the payload, whole when it fits in `cap` bytes, else its first `cap` bytes and
/// `request_body_truncated` (text only; binary is `{"b64": …, "len": n}`, never truncated).
pub fn assert_messages(rows: &WsRows, url: &str, sent: &[Value], received: &[Value], cap: usize) {
    let up = &rows.upgrade;
    for (i, m) in rows.messages.iter().enumerate() {
        assert_eq!(m["message_index"], i, "indexes 0..n without gaps: {m}");
        assert_eq!(m["upgrade_id"], up["id"], "{m}");
        assert_eq!(m["url"], url, "{m}");
        assert_eq!(m["destination_host"], up["destination_host"]);
        assert_eq!(m["destination_port"], up["destination_port"]);
        assert_eq!(m["container_name"], up["container_name"]);
    }
    for (method, want) in [("WS_REQ", sent), ("WS_RESP", received)] {
        let got: Vec<&Value> = rows.dir(method);
        assert_eq!(got.len(), want.len(), "{method} rows: {got:?}");
        for (m, w) in got.iter().zip(want) {
            if let Some(b64) = w.get("b64") {
                // Binary: the row stores base64, as client.py reports it.
                assert_eq!(m["opcode"], "binary", "{m}");
                assert_eq!(m["request_body_encoding"], "base64", "{m}");
                assert_eq!(m["request_body"], *b64, "{method} binary payload");
                assert_eq!(m["request_body_size"], w["len"], "decoded size: {m}");
                assert!(m.get("request_body_truncated").is_none(), "{m}");
                continue;
            }
            let text = w.as_str().unwrap();
            assert_eq!(m["opcode"], "text", "{m}");
            assert_eq!(m["request_body_encoding"], "text", "{m}");
            assert_eq!(m["request_body_size"], text.len(), "decoded size: {m}");
            let body = m["request_body"].as_str().unwrap_or("<none>");
            if text.len() <= cap {
                assert!(
                    body == text,
                    "{method} #{} payload: stored {body:?}, sent {text:?}",
                    m["message_index"]
                );
                assert!(m.get("request_body_truncated").is_none(), "{m}");
            } else {
                assert_eq!(m["request_body_truncated"], true, "{method} over the cap");
                assert_eq!(body.len(), cap, "{method}: the stored copy is the cap");
                assert!(
                    text.starts_with(body),
                    "{method}: the stored copy is a prefix"
                );
            }
        }
    }
}

/// The `compressed` flag of a row (absent means false).
pub fn compressed(m: &Value) -> bool {
    m["compressed"].as_bool().unwrap_or(false)
}

/// `wire_size` of a row.
pub fn wire(m: &Value) -> u64 {
    m["wire_size"].as_u64().unwrap()
}
