//! Fault: the store can no longer be written (a read-only or full disk). Commands that must
//! write answer a clear `error` at once — no hang, no crash — while the proxy keeps serving what
//! is already allowed and refuses (rather than holds forever) what it cannot record; nothing
//! acknowledged before the fault is lost, and nothing refused during it appears later. A state
//! dir that cannot be written at start makes the daemon exit at once naming the path.
//!
//! The write failure is made with `chattr +i` (the file or dir becomes immutable even for
//! root, and writes through descriptors already open fail with `EPERM`). That needs root with
//! `CAP_LINUX_IMMUTABLE` on a filesystem with inode flags; elsewhere a non-root run falls back
//! to permissions where they suffice (at start), and the running-daemon test is skipped with a
//! message.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use greyproxy_testkit::origin::http_origin;
use greyproxy_testkit::raw::{http_connect_send, read_connect_reply};
use greyproxy_testkit::{Control, DaemonBuilder, curl};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_greyproxyd");
/// "At once" for an error reply or an exit.
const PROMPT: Duration = Duration::from_secs(5);

/// A file or dir made unwritable; made writable again on drop (an immutable file could not
/// even be removed with its temporary dir).
struct Frozen {
    path: PathBuf,
    immutable: bool,
}

impl Frozen {
    /// `chattr +i path`; `None` when that is not possible here.
    fn immutable(path: &Path) -> Option<Frozen> {
        let ok = std::process::Command::new("chattr")
            .arg("+i")
            .arg(path)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Frozen {
            path: path.to_path_buf(),
            immutable: true,
        })
    }

    /// Unwritable for this process: immutable when possible, else (not root) by mode.
    fn unwritable(path: &Path) -> Option<Frozen> {
        if let Some(f) = Frozen::immutable(path) {
            return Some(f);
        }
        if rustix::process::geteuid().is_root() {
            return None; // root ignores permissions
        }
        use std::os::unix::fs::PermissionsExt;
        let mode = if path.is_dir() { 0o500 } else { 0o400 };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        Some(Frozen {
            path: path.to_path_buf(),
            immutable: false,
        })
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        if self.immutable {
            let _ = std::process::Command::new("chattr")
                .arg("-i")
                .arg(&self.path)
                .status();
        } else {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(0o700));
        }
    }
}

/// A command's reply within [`PROMPT`].
async fn reply(ws: &mut Control, cmd: Value) -> Value {
    tokio::time::timeout(PROMPT, ws.cmd(cmd.clone()))
        .await
        .unwrap_or_else(|_| panic!("{cmd}: no reply within {PROMPT:?}"))
}

async fn rules(ws: &mut Control) -> Vec<Value> {
    let page = ws.query(json!({"command":"list_rules","limit":1000})).await;
    let mut items = page["items"].as_array().unwrap().clone();
    for r in &mut items {
        r.as_object_mut().unwrap().remove("last_used_at");
    }
    items
}

async fn pending_ids(ws: &mut Control) -> Vec<Value> {
    let page = ws.query(json!({"command":"list_pending"})).await;
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_that_turns_read_only_fails_writes_with_errors_and_keeps_serving() {
    let allowed = http_origin("127.0.6.1").await;
    let unknown = http_origin("127.0.6.2").await;
    let waiting = http_origin("127.0.6.3").await;
    let d = DaemonBuilder::new(BIN)
        .args(&["--hold-timeout", "60"])
        .start()
        .await;
    let mut ws = d.client().await;
    let create = |dest: &str| {
        json!({"command":"create_rule","container_pattern":"*","destination_pattern":dest,
            "notes":"before the fault"})
    };
    assert_eq!(
        reply(&mut ws, create("127.0.6.1")).await["type"],
        "command_success"
    );
    let other = reply(&mut ws, create("other.fault.example")).await;
    assert_eq!(other["type"], "command_success", "{other}");
    let mut held = http_connect_send(d.http.unwrap(), &waiting.to_string(), None).await;
    let pending = ws.pending_for("127.0.6.3", waiting.port()).await;
    let proxy = d.http_proxy();
    let plain_url = format!("http://{allowed}/plain");
    let tunnel_url = format!("http://{allowed}/tunnel");
    assert_eq!(curl(&["-x", &proxy, &plain_url]).await.status, 200);
    let rules_before = rules(&mut ws).await;

    let store = d.state_dir().join("greyproxy.redb");
    let Some(frozen) = Frozen::immutable(&store) else {
        println!(
            "skipped: cannot make {} immutable (chattr +i needs root with CAP_LINUX_IMMUTABLE)",
            store.display()
        );
        return;
    };

    // Every command that must write: a prompt, clear error, and no change.
    let writes = [
        create("during.fault.example"),
        json!({"command":"update_rule","rule_id":other["rule_id"],"notes":"during the fault"}),
        json!({"command":"delete_rule","rule_id":other["rule_id"]}),
        json!({"command":"allow","pending_id":pending["id"]}),
        json!({"command":"deny","pending_id":pending["id"]}),
        json!({"command":"dismiss","pending_id":pending["id"]}),
    ];
    for (i, cmd) in writes.iter().enumerate() {
        let r = reply(&mut ws, cmd.clone()).await;
        assert_eq!(r["type"], "error", "{cmd} -> {r}");
        let msg = r["error"].as_str().unwrap();
        assert!(msg.contains("store"), "{cmd} -> {msg}");
        // The first failed write gets the I/O error; from then on the store refuses writes
        // until a restart, and says so in words an operator can act on.
        if i > 0 {
            assert!(msg.contains("restarted"), "{cmd} -> {msg}");
        }
    }
    assert_eq!(rules(&mut ws).await, rules_before);
    assert_eq!(pending_ids(&mut ws).await, [pending["id"].clone()]);
    // The held client is still held: the failed allow released nothing.
    let early = tokio::time::timeout(Duration::from_millis(300), read_connect_reply(&mut held));
    assert!(early.await.is_err(), "a failed allow must not release");

    // The proxy serves what is allowed, both ways, again and again.
    for _ in 0..3 {
        let r = curl(&["-x", &proxy, &plain_url]).await;
        assert_eq!((r.exit, r.status), (0, 200), "{r:?}");
        let r = curl(&["-p", "-x", &proxy, &tunnel_url]).await;
        assert_eq!((r.exit, r.status), (0, 200), "{r:?}");
    }
    // A new destination cannot be recorded as pending: refused at once, not held forever.
    let r = curl(&["-x", &proxy, &format!("http://{unknown}/")]).await;
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.elapsed < PROMPT, "{r:?}");
    assert!(
        r.body.contains("blocked (store error)"),
        "the refusal says why: {r:?}"
    );
    let st = ws.query(json!({"command":"status"})).await;
    assert_eq!(st["held_connections"], 1, "{st}");

    // Writable again: a restart finds exactly what was acknowledged.
    drop(frozen);
    let log = d.log();
    drop(held);
    ws.close().await;
    let d = d.restart().await;
    let mut ws = d.client().await;
    assert_eq!(
        rules(&mut ws).await,
        rules_before,
        "log before the restart:\n{log}"
    );
    assert_eq!(pending_ids(&mut ws).await, [pending["id"].clone()]);
    let r = curl(&["-x", &d.http_proxy(), &plain_url]).await;
    assert_eq!((r.exit, r.status), (0, 200), "{r:?}");
    // And writes work again.
    let r = reply(&mut ws, create("after.fault.example")).await;
    assert_eq!(r["type"], "command_success", "{r}");
}

/// Runs `greyproxyd serve` on `state` and returns (exit success, stderr, wall time).
async fn serve_once(state: &Path) -> (bool, String, Duration) {
    let t = Instant::now();
    let child = tokio::process::Command::new(BIN)
        .arg("serve")
        .arg("--state-dir")
        .arg(state)
        .args([
            "--control-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
        ])
        .args(["--socks-addr", "127.0.0.1:0", "--dns-addr", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(15), child.wait_with_output())
        .await
        .expect("the daemon exits instead of running on an unwritable state dir")
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.success(), err, t.elapsed())
}

#[tokio::test]
async fn an_unwritable_state_dir_fails_fast_naming_it() {
    // A new, empty state dir that cannot be written.
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let Some(frozen) = Frozen::unwritable(&state) else {
        println!("skipped: root without chattr +i cannot make a dir unwritable");
        return;
    };
    let (ok, err, took) = serve_once(&state).await;
    drop(frozen);
    assert!(!ok, "{err}");
    assert!(took < PROMPT, "took {took:?}: {err}");
    assert!(err.contains(&state.display().to_string()), "{err}");

    // An existing state whose store cannot be written (e.g. a read-only remount).
    let d = DaemonBuilder::new(BIN).start().await;
    let dir = d.stop().await;
    let store = dir.path().join("greyproxy.redb");
    let frozen = Frozen::unwritable(&store).unwrap();
    let (ok, err, took) = serve_once(dir.path()).await;
    drop(frozen);
    assert!(!ok, "{err}");
    assert!(took < PROMPT, "took {took:?}: {err}");
    assert!(err.contains(&store.display().to_string()), "{err}");
}
