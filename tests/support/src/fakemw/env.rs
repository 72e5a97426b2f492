//! Daemon-side helpers of the middleware tests: start a daemon configured with fakes, read
//! `list_middlewares`, wait for a state, fetch a transaction with its middleware events, run a
//! scenario on both transports.

use std::future::Future;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::Transport;
use crate::control::Control;
use crate::mitm::{MitmEnv, get_tx, tx_event};
use crate::wait::{POLL, Text, eventually_every, eventually_sync, within_sync};

/// Runs `scenario` for the WebSocket and the stdio transport concurrently (see [`settle`]).
pub async fn both<F, Fut>(scenario: F)
where
    F: Fn(Transport) -> Fut,
    Fut: Future<Output = ()>,
{
    settle(vec![scenario(Transport::Ws), scenario(Transport::Stdio)]).await;
}

/// Runs `scenarios` concurrently to the end, then re-raises the first panic. A failing
/// scenario thus never drops another one halfway through starting its daemon (which would
/// leave that daemon process behind), and every scenario reports.
pub async fn settle<Fut: Future<Output = ()>>(scenarios: Vec<Fut>) {
    use futures_util::FutureExt;
    let wrapped = scenarios
        .into_iter()
        .map(|f| std::panic::AssertUnwindSafe(f).catch_unwind());
    let results = futures_util::future::join_all(wrapped).await;
    if let Some(p) = results.into_iter().find_map(Result::err) {
        std::panic::resume_unwind(p);
    }
}

/// Starts a daemon (test CA for HTTPS origins, a rule allowing 127.0.0.0/8) with `config`
/// (TOML) and `args` (e.g. [`super::FakeMw::cli_args`]).
pub async fn start(bin: &str, config: &str, args: &[String]) -> MitmEnv {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    MitmEnv::start(bin, config, &args).await
}

/// `list_middlewares` → the `middlewares` array.
pub async fn middlewares(ws: &mut Control) -> Vec<Value> {
    let data = ws.query(json!({"command":"list_middlewares"})).await;
    data["middlewares"]
        .as_array()
        .unwrap_or_else(|| panic!("list_middlewares without an array: {data}"))
        .clone()
}

/// Polls `list_middlewares` until entry `idx` satisfies `pred`; panics after `wait`.
pub async fn wait_status(
    ws: &mut Control,
    idx: usize,
    wait: Duration,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let what = format!("middleware {idx} to be {what}");
    eventually_every(&what, wait, Duration::from_millis(50), async || {
        let all = middlewares(ws).await;
        match all.get(idx) {
            Some(m) if pred(m) => Ok(m.clone()),
            _ => Err(all),
        }
    })
    .await
}

/// Waits until middleware `idx` is ready.
pub async fn wait_ready(ws: &mut Control, idx: usize) -> Value {
    wait_status(ws, idx, Duration::from_secs(10), "ready", |m| {
        m["ready"] == true
    })
    .await
}

/// The transaction whose URL ends with `url_suffix` (waits for its `transaction.new`), with
/// bodies and middleware events.
pub async fn tx(ws: &mut Control, url_suffix: &str) -> Value {
    let ev = tx_event(ws, url_suffix).await;
    get_tx(ws, &ev["id"]).await
}

/// The `middleware_events` of a transaction (empty when absent).
pub fn events(tx: &Value) -> Vec<Value> {
    tx["middleware_events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Waits until `log()` contains `needle`; panics with the log after `wait`.
pub async fn wait_log(log: impl Fn() -> String, needle: &str, wait: Duration) -> String {
    let what = format!("the log to show {needle:?}");
    eventually_sync(&what, wait, Duration::from_millis(50), || {
        let l = log();
        if l.contains(needle) {
            Ok(l)
        } else {
            Err(Text(l))
        }
    })
    .await
}

/// True while process `pid` exists (and is not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Waits up to `wait` for `pid` to be gone; returns how long it took.
pub async fn wait_gone(pid: u32, wait: Duration) -> Option<Duration> {
    let start = Instant::now();
    within_sync(wait, POLL, || {
        if alive(pid) {
            Err(())
        } else {
            Ok(start.elapsed())
        }
    })
    .await
    .ok()
}
