//! The control unix socket and `greyproxyd attach`: the daemon's user needs no token, attach
//! bridges stdio to the socket (what `ssh host greyproxyd attach` runs), stale sockets are
//! replaced, a live one is not stolen, and a peer of another uid is refused.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use greyproxy_testkit::origin::http_origin;
use greyproxy_testkit::{Control, DaemonBuilder, curl};
use serde_json::json;

fn daemon() -> DaemonBuilder {
    DaemonBuilder::new(env!("CARGO_BIN_EXE_greyproxyd"))
}

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_greyproxyd"))
}

/// `greyproxyd attach ARGS` with stdin closed: its exit status and stderr.
fn attach_output(args: &[&str]) -> (std::process::ExitStatus, String) {
    let out = std::process::Command::new(bin())
        .arg("attach")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_daemons_user_drives_it_over_the_socket_without_a_token() {
    let d = daemon().start().await;
    let sock = d.state_dir().join("control.sock");
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the socket is the daemon user's alone");
    let mut c = Control::unix(&sock).await.unwrap();
    assert_eq!(c.greeting["protocol_version"], 1);
    let st = c.query(json!({"command":"status"})).await;
    assert_eq!(
        st["listeners"]["control_socket"],
        sock.display().to_string(),
        "{st}"
    );
    // The TCP endpoint still wants the token.
    assert!(Control::connect(&d.ws_url(), None).await.is_err());
}

#[tokio::test]
async fn attach_bridges_stdio_and_approves_a_held_curl() {
    let d = daemon().start().await;
    let origin = http_origin("127.0.17.1").await;
    let dir = d.state_dir().display().to_string();
    let mut c = Control::attach(bin(), &["--state-dir", &dir])
        .await
        .unwrap();
    let proxy = d.http_proxy();
    let held = tokio::spawn(async move {
        curl(&["-p", "-x", &proxy, &format!("http://{origin}/attached")]).await
    });
    let p = c.pending_for("127.0.17.1", origin.port()).await;
    let r = c.cmd(json!({"command":"allow","pending_id":p["id"]})).await;
    assert_eq!(r["type"], "command_success", "{r}");
    let res = held.await.unwrap();
    assert_eq!((res.exit, res.status), (0, 200), "{res:?}");
    assert!(res.body.ends_with("GET /attached"), "{res:?}");
    c.close().await;
}

#[tokio::test]
async fn attach_says_why_it_cannot_connect() {
    let empty = tempfile::tempdir().unwrap();
    let (st, err) = attach_output(&["--state-dir", &empty.path().display().to_string()]);
    assert!(!st.success());
    assert!(err.contains("no greyproxyd control socket"), "{err}");
    assert!(err.contains("control.sock"), "{err}");

    let stale = empty.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let (st, err) = attach_output(&["--socket", &stale.display().to_string()]);
    assert!(!st.success());
    assert!(err.contains("nothing listens"), "{err}");
}

#[tokio::test]
async fn a_stale_socket_is_replaced_and_a_live_one_is_not_stolen() {
    let dir = tempfile::tempdir().unwrap();
    drop(std::os::unix::net::UnixListener::bind(dir.path().join("control.sock")).unwrap());
    let d = daemon().start_in(dir).await;
    let sock = d.state_dir().join("control.sock");
    Control::unix(&sock).await.unwrap();

    let other = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(bin())
        .args(["serve", "--state-dir"])
        .arg(other.path())
        .args([
            "--control-addr",
            "127.0.0.1:0",
            "--http-addr",
            "off",
            "--socks-addr",
            "off",
        ])
        .args(["--dns-addr", "off", "--control-socket"])
        .arg(&sock)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already serves control"), "{err}");
    Control::unix(&sock)
        .await
        .expect("the first daemon still answers");
}

/// A peer of another uid: refused by the socket's mode, and, when the mode is loosened by
/// hand, by its credentials (close 4001 with the reason). Needs root to run as `nobody`.
#[tokio::test]
async fn a_peer_of_another_uid_is_refused() {
    if !rustix::process::geteuid().is_root() || !Path::new("/usr/bin/setpriv").exists() {
        eprintln!("skipped: needs root and setpriv; peer::tests covers the decision");
        return;
    }
    let d = daemon().start().await;
    let sock = d.state_dir().join("control.sock");
    // The state dir is 0700: let `nobody` reach the socket so that its mode is what refuses.
    std::fs::set_permissions(d.state_dir(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let as_nobody = |sock: &Path| {
        let mut cmd = tokio::process::Command::new("/usr/bin/setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(bin())
            .args(["attach", "--socket"])
            .arg(sock);
        cmd
    };
    let out = as_nobody(&sock).output().await.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("permission denied"), "{err}");

    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    let e = Control::command(as_nobody(&sock))
        .await
        .err()
        .expect("refused");
    let msg = format!("{e:#}");
    assert!(msg.contains("4001") || msg.contains("greeting"), "{msg}");
    assert!(
        d.log().contains("uid 65534 is not the daemon's user"),
        "{}",
        d.log()
    );
    // The daemon's own user still gets in.
    Control::unix(&sock).await.unwrap();
}

/// With mode 0660 a member of the socket's group is admitted without a token, through a
/// supplementary group (read from /proc): `nobody` with the daemon's group added. Needs root.
#[tokio::test]
async fn a_member_of_the_sockets_group_is_admitted_with_mode_0660() {
    if !rustix::process::geteuid().is_root() || !Path::new("/usr/bin/setpriv").exists() {
        eprintln!("skipped: needs root and setpriv; peer::tests covers the decision");
        return;
    }
    let d = daemon()
        .args(&["--control-socket-mode", "0660"])
        .start()
        .await;
    let sock = d.state_dir().join("control.sock");
    let meta = std::fs::metadata(&sock).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    std::fs::set_permissions(d.state_dir(), std::fs::Permissions::from_mode(0o711)).unwrap();
    use std::os::unix::fs::MetadataExt;
    let mut cmd = tokio::process::Command::new("/usr/bin/setpriv");
    cmd.args(["--reuid=65534", "--regid=65534"])
        .arg(format!("--groups={}", meta.gid()))
        .arg(bin())
        .args(["attach", "--socket"])
        .arg(&sock);
    let mut c = Control::command(cmd)
        .await
        .expect("a group member is admitted");
    let st = c.query(json!({"command":"status"})).await;
    assert_eq!(
        st["listeners"]["control_socket"],
        sock.display().to_string()
    );
    c.close().await;
}
