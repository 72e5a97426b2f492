//! Shared steps of the interception tests: a daemon that trusts a test CA for origins, a rule
//! allowing the test origins, and the recorded rows (`transaction.new`, `get_transaction`,
//! the tunnel's request_logs row and its `mitm` outcome).

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use crate::control::Control;
use crate::daemon::{Daemon, DaemonBuilder};
use crate::tls::TestCa;
use crate::wait::eventually_every;

/// A daemon started with `--upstream-ca` for a fresh [`TestCa`] (and an optional config file),
/// a control client, and a rule allowing every client to reach 127.0.0.0/8.
pub struct MitmEnv {
    /// The daemon.
    pub d: Daemon,
    /// A control client (receives every event).
    pub ws: Control,
    /// The CA the origins' certificates come from.
    pub ca: TestCa,
}

impl std::fmt::Debug for MitmEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MitmEnv").field("d", &self.d).finish()
    }
}

/// Writes `config` (TOML) to a temp file; keep the handle until the daemon has started.
pub fn config_file(config: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    std::io::Write::write_all(&mut f, config.as_bytes()).unwrap();
    f
}

impl MitmEnv {
    /// Starts with `config` (TOML, may be empty) and extra `serve` arguments.
    pub async fn start(bin: &str, config: &str, args: &[&str]) -> MitmEnv {
        let ca = TestCa::new("greyproxy test origin CA");
        let cfg = config_file(config);
        let cfg_path = cfg.path().display().to_string();
        let ca_path = ca.pem_arg();
        let mut all = vec!["--upstream-ca", ca_path.as_str(), "--config", &cfg_path];
        all.extend_from_slice(args);
        let d = DaemonBuilder::new(bin).args(&all).start().await;
        let mut ws = d.client().await;
        allow_loopback(&mut ws).await;
        MitmEnv { d, ws, ca }
    }

    /// The daemon's CA certificate (`<state>/ca-cert.pem`).
    pub fn daemon_ca(&self) -> PathBuf {
        self.d.state_dir().join("ca-cert.pem")
    }

    /// [`MitmEnv::daemon_ca`] as a string.
    pub fn daemon_ca_arg(&self) -> String {
        self.daemon_ca().display().to_string()
    }

    /// `http://codex:x@127.0.0.1:port` (container `codex`).
    pub fn proxy_as_codex(&self) -> String {
        format!("http://codex:x@{}", self.d.http.unwrap())
    }
}

/// Creates a rule `*` → `127.0.0.0/8` : `*` (allow).
pub async fn allow_loopback(ws: &mut Control) {
    let r = ws
        .cmd(json!({"command":"create_rule","container_pattern":"*",
                    "destination_pattern":"127.0.0.0/8","action":"allow"}))
        .await;
    assert_eq!(r["type"], "command_success", "{r}");
}

/// Waits for a `transaction.new` whose URL ends with `url_suffix` (a path, or a full URL).
pub async fn tx_event(ws: &mut Control, url_suffix: &str) -> Value {
    let ev = ws
        .event_where("transaction.new", |d| {
            d["url"].as_str().is_some_and(|u| u.ends_with(url_suffix))
        })
        .await;
    ev["data"].clone()
}

/// `get_transaction` (bodies included).
pub async fn get_tx(ws: &mut Control, id: &Value) -> Value {
    ws.query(json!({"command":"get_transaction","transaction_id":id}))
        .await
}

/// The tunnel rows (`list_activity kind=connection`) for `host:port` that carry a `mitm`
/// outcome, oldest first; polls for up to 5 s until there are at least `n`.
pub async fn tunnel_rows(ws: &mut Control, host: &str, port: u16, n: usize) -> Vec<Value> {
    let what = format!("{n} tunnel rows with mitm for {host}:{port}");
    eventually_every(
        &what,
        Duration::from_secs(5),
        Duration::from_millis(100),
        async || {
            let page = ws
                .query(
                    json!({"command":"list_activity","kind":"connection","destination":host,
                          "limit":1000}),
                )
                .await;
            let mut rows: Vec<Value> = page["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| {
                    r["destination_host"] == host
                        && r["destination_port"] == port
                        && !r["mitm"].is_null()
                })
                .cloned()
                .collect();
            rows.reverse();
            if rows.len() >= n { Ok(rows) } else { Err(page) }
        },
    )
    .await
}

/// The `mitm` outcomes of the tunnels to `host:port`, oldest first (waits for `n`).
pub async fn mitm_outcomes(ws: &mut Control, host: &str, port: u16, n: usize) -> Vec<String> {
    tunnel_rows(ws, host, port, n)
        .await
        .iter()
        .map(|r| r["mitm"].as_str().unwrap().to_string())
        .collect()
}

/// The `mitm` outcome of the only (or newest) tunnel to `host:port`.
pub async fn mitm_of(ws: &mut Control, host: &str, port: u16) -> String {
    mitm_outcomes(ws, host, port, 1).await.pop().unwrap()
}

/// Every transaction recorded for `host` (newest first).
pub async fn transactions_for(ws: &mut Control, host: &str) -> Vec<Value> {
    let page = ws
        .query(
            json!({"command":"list_activity","kind":"transaction","destination":host,
                      "limit":1000}),
        )
        .await;
    page["items"].as_array().unwrap().clone()
}

/// A header's recorded values (names are matched case-insensitively).
pub fn header<'a>(headers: &'a Value, name: &str) -> Vec<&'a str> {
    headers
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .flat_map(|(_, v)| v.as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect()
}
