//! The real `greytui` binary in a real terminal: tmux runs it (a bare pipe is no terminal, and
//! crossterm needs one that answers its queries), `send-keys` types, `capture-pane` reads the
//! screen. Against a real daemon with real held curl requests (one of them asked for by the tool
//! call of an LLM call answered by the mock LLM origin, so that its why line shows).
//!
//! Needs `tmux` (Debian package `tmux`); without it the tests print why and pass, except under
//! `CI=true`, where a missing tmux fails them: CI must not go green without running them.

use crate::common;

use std::process::Command;
use std::time::Duration;

use common::{daemon, finish, greytui_bin, held_curl, standin};
use greyproxy_testkit::origin::http_origin;
use greyproxy_testkit::{Text, eventually_sync};

fn tmux_missing() -> bool {
    let ok = Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            !under_ci(std::env::var("CI").ok().as_deref()),
            "tmux is not installed (apt-get install -y tmux): under CI=true the terminal tests \
             must run, not skip"
        );
        eprintln!(
            "SKIPPED: tmux is not installed (apt-get install -y tmux); the terminal tests did not run"
        );
    }
    !ok
}

/// Whether `$CI` (its value given) asks for every test to run.
fn under_ci(ci: Option<&str>) -> bool {
    ci.is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

#[test]
fn ci_is_recognised_from_its_usual_values() {
    assert!(under_ci(Some("true")) && under_ci(Some("TRUE")) && under_ci(Some("1")));
    assert!(!under_ci(None) && !under_ci(Some("")) && !under_ci(Some("false")));
}

/// A private tmux server (its own socket, no user config) running one command.
struct Tmux {
    socket: String,
    /// Holds the socket; removed with it.
    _dir: tempfile::TempDir,
}

impl Tmux {
    /// Runs `greytui <args>` in a `w`×`h` pane. When greytui exits, the pane prints its exit
    /// code and whether the tty is back in canonical mode, and stays for inspection.
    fn greytui(args: &[&str], w: u16, h: u16) -> Tmux {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("tmux.sock").to_str().unwrap().to_string();
        let script = format!(
            "env -u GREYPROXY_TOKEN -u GREYPROXY_STATE_DIR -u DBUS_SESSION_BUS_ADDRESS {} {}; \
             echo greytui-exit=$?; echo tty=$(stty -a | tr ' ;' '\\n\\n' | grep -x -- '-\\?icanon'); \
             sleep 60",
            greytui_bin(),
            args.join(" ")
        );
        let t = Tmux { socket, _dir: dir };
        let st = t
            .cmd(&[
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-s",
                "t",
                "-x",
                &w.to_string(),
                "-y",
                &h.to_string(),
                &script,
            ])
            .status()
            .unwrap();
        assert!(st.success());
        t
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("tmux");
        // A private server even when the tests themselves run inside tmux.
        c.env_remove("TMUX").args(["-S", &self.socket]).args(args);
        c
    }

    fn screen(&self) -> String {
        let out = self
            .cmd(&["capture-pane", "-p", "-t", "t"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend_from_slice(keys);
        assert!(self.cmd(&args).status().unwrap().success());
    }

    /// Waits until the screen shows `text`; returns the screen.
    /// Waits for greytui's exit line; asserts it exited 0 and left the terminal in canonical
    /// mode. Returns the screen.
    async fn exited_restored(&self) -> String {
        let screen = self.wait_for("tty=").await;
        assert!(screen.contains("greytui-exit=0"), "{screen}");
        assert!(
            screen.contains("tty=icanon"),
            "terminal restored:\n{screen}"
        );
        screen
    }

    async fn wait_for(&self, text: &str) -> String {
        self.wait_line(&[text]).await
    }

    /// Waits until one line of the screen shows all of `parts`; returns the screen.
    async fn wait_line(&self, parts: &[&str]) -> String {
        self.wait_screen(&format!("a line showing {parts:?}"), |s| {
            s.lines().any(|l| parts.iter().all(|p| l.contains(p)))
        })
        .await
    }

    /// Waits until the whole screen satisfies `ok` (what it waits for is `what`); returns it.
    /// A terminal redraws in steps (tmux resizes the pane, then greytui repaints), so a check
    /// on one capture may see the frame in between.
    async fn wait_screen(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let what = format!("a screen showing {what}");
        eventually_sync(
            &what,
            Duration::from_secs(15),
            Duration::from_millis(50),
            || {
                let s = self.screen();
                if ok(&s) { Ok(s) } else { Err(Text(s)) }
            },
        )
        .await
    }
}

impl Tmux {
    /// The pid of the program the pane's shell runs (greytui), from the shell's pid.
    fn child_pid(&self) -> u32 {
        let out = self
            .cmd(&["display-message", "-p", "-t", "t", "#{pane_pid}"])
            .output()
            .unwrap();
        let sh = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let children = std::fs::read_to_string(format!("/proc/{sh}/task/{sh}/children")).unwrap();
        children.split_whitespace().next().unwrap().parse().unwrap()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // Only our private server (its own socket) is ended.
        let _ = self.cmd(&["kill-server"]).status();
    }
}

#[tokio::test]
async fn approve_a_held_request_with_a_then_quit_with_q() {
    if tmux_missing() {
        return;
    }
    let d = daemon().await;
    let dir = d.state_dir().to_str().unwrap().to_string();
    let t = Tmux::greytui(&["--state-dir", &dir], 120, 40);
    t.wait_for("● connected").await;
    t.wait_for("claims 1 (ours)").await;

    let origin = http_origin("127.0.0.2").await;
    let curl = held_curl(&d, &format!("http://{origin}/tmux"));
    let screen = t
        .wait_line(&["127.0.0.2  ", &origin.port().to_string()])
        .await;
    assert!(screen.contains("1 Pending (1)"), "{screen}");

    t.keys(&["a"]);
    let res = finish(curl).await;
    assert_eq!((res.exit, res.status), (0, 200), "{res:?}");
    // The reply (message line) and the event (row gone) may arrive in either order.
    t.wait_for("allowed #").await;
    t.wait_for("1 Pending (0)").await;

    // The activity view shows the decision; the rules view the new rule.
    t.keys(&["2"]);
    t.wait_for("allowed unknown-").await;
    t.keys(&["3"]);
    t.wait_line(&["allow ", "127.0.0.2", &origin.port().to_string()])
        .await;

    t.keys(&["q"]);
    t.exited_restored().await;
}

#[tokio::test]
async fn picker_at_80x24_resizes_cleanly_and_ctrl_c_restores_the_terminal() {
    if tmux_missing() {
        return;
    }
    let d = daemon().await;
    let dir = d.state_dir().to_str().unwrap().to_string();
    let t = Tmux::greytui(&["--state-dir", &dir], 80, 24);
    t.wait_for("● connected").await;
    let origin = http_origin("127.0.0.2").await;
    let curl = held_curl(&d, &format!("http://{origin}/"));
    t.wait_for("1 Pending (1)").await;

    // D: deny with the picker, any port, once.
    t.keys(&["D"]);
    let screen = t.wait_for("Scope:").await;
    assert!(screen.contains("any port"), "{screen}");
    t.keys(&["j", "Enter"]);
    t.wait_for("Duration:").await;
    t.keys(&["1"]);
    let res = finish(curl).await;
    assert_eq!(res.status, 403, "{res:?}");
    t.wait_for("denied #").await;
    t.keys(&["3"]);
    t.wait_line(&["deny ", "127.0.0.2", "*"]).await;

    // Resizing re-lays out the same view.
    assert!(
        t.cmd(&["resize-window", "-t", "t", "-x", "120", "-y", "40"])
            .status()
            .unwrap()
            .success()
    );
    t.wait_screen("the rules view re-laid out at 120×40", |screen| {
        screen.lines().count() >= 39
            && screen.lines().any(|l| l.contains("n new"))
            && screen
                .lines()
                .any(|l| l.contains("● connected") && l.contains("claims"))
    })
    .await;

    t.keys(&["C-c"]);
    t.exited_restored().await;
}

#[tokio::test]
async fn sigterm_quits_and_restores_the_terminal() {
    if tmux_missing() {
        return;
    }
    let d = daemon().await;
    let dir = d.state_dir().to_str().unwrap().to_string();
    let t = Tmux::greytui(&["--state-dir", &dir], 80, 24);
    t.wait_for("● connected").await;
    t.keys(&["3", "n"]); // a form open: raw mode and an overlay on screen
    t.wait_for("New rule").await;
    let pid = t.child_pid().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let screen = t.exited_restored().await;
    assert!(
        !screen.contains("New rule"),
        "alternate screen left:\n{screen}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_request_shows_its_why_line_and_a_releases_it() {
    if tmux_missing() {
        return;
    }
    let (mock, d, target) = crate::llm::llm_setup("127.0.0.143", "127.0.0.144").await;
    let dir = d.state_dir().to_str().unwrap().to_string();
    let t = Tmux::greytui(&["--state-dir", &dir], 80, 24);
    t.wait_for("● connected").await;
    // The agent's call: its answer is a Bash tool call running curl against `target`.
    crate::llm::anthropic_call(&d, &mock).await;
    t.wait_line(&["● connected", "$0.18 today"]).await;
    let curl = crate::llm::held_curl_as_dev(&d, target);
    let screen = t
        .wait_line(&["↳ $ Bash: curl -s http://", &target.to_string()])
        .await;
    assert!(
        screen.contains("1 Pending (1)") && screen.contains("w why"),
        "{screen}"
    );
    t.keys(&["a"]);
    let res = finish(curl).await;
    assert_eq!((res.exit, res.status), (0, 200), "{res:?}");
    t.wait_for("1 Pending (0)").await;
    t.keys(&["q"]);
    let screen = t.wait_for("tty=").await;
    assert!(screen.contains("greytui-exit=0"), "{screen}");
}

/// The dashboard over two daemons reached through a stand-in ssh (`greyproxyd attach`): both
/// hosts' requests in one list with their HOST, `a` on a row allows it on its own host, a new
/// rule goes to both, and a host that dies shows as reconnecting in the Hosts view while the
/// other stays usable.
#[tokio::test]
async fn a_fleet_merges_pending_and_decides_on_the_owning_host() {
    if tmux_missing() {
        return;
    }
    let (alpha, mut beta) = (daemon().await, daemon().await);
    let base = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(alpha.state_dir(), base.path().join("alpha")).unwrap();
    std::os::unix::fs::symlink(beta.state_dir(), base.path().join("beta")).unwrap();
    let ssh = standin(base.path()).display().to_string();
    let t = Tmux::greytui(
        &["--ssh", "alpha", "--ssh", "beta", "--ssh-command", &ssh],
        140,
        40,
    );
    t.wait_for("2/2 hosts").await;

    let oa = http_origin("127.0.0.3").await;
    let ob = http_origin("127.0.0.4").await;
    let ca = held_curl(&alpha, &format!("http://{oa}/a"));
    let cb = held_curl(&beta, &format!("http://{ob}/b"));
    t.wait_line(&["alpha ", "127.0.0.3"]).await;
    let screen = t.wait_line(&["beta ", "127.0.0.4"]).await;
    assert!(screen.contains("1 Pending (2)"), "{screen}");

    // alpha's block comes first: j selects beta's request, a allows it on beta.
    t.keys(&["j", "a"]);
    let res = finish(cb).await;
    assert_eq!((res.exit, res.status), (0, 200), "{res:?}");
    t.wait_for("1 Pending (1)").await;
    assert!(!ca.is_finished(), "alpha's request is still held");

    // A rule for all hosts (the default over a fleet).
    t.keys(&["3", "n"]);
    t.wait_for("New rule").await;
    t.keys(&["fleet.example", "Enter"]);
    t.wait_line(&["alpha ", "fleet.example"]).await;
    t.wait_line(&["beta ", "fleet.example"]).await;

    // beta dies: the Hosts view says so, alpha still answers.
    beta.kill();
    t.keys(&["8"]);
    t.wait_line(&["beta", "reconnecting"]).await;
    t.wait_line(&["alpha", "connected"]).await;
    t.keys(&["1", "g", "a"]);
    let res = finish(ca).await;
    assert_eq!((res.exit, res.status), (0, 200), "{res:?}");

    t.keys(&["q"]);
    let screen = t.wait_for("tty=").await;
    assert!(screen.contains("greytui-exit=0"), "{screen}");
}
