//! The command line: token management, config errors, disabled listeners.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use greyproxy_testkit::DaemonBuilder;
use greyproxy_testkit::control::{expect_close, open};

const BIN: &str = env!("CARGO_BIN_EXE_greyproxyd");

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn token_show_path_rotate() {
    let dir = tempfile::tempdir().unwrap();
    let sd = dir.path().join("state");
    let sd = sd.to_str().unwrap();
    let (code, path, _) = run(&["token", "path", "--state-dir", sd]);
    assert_eq!(code, 0);
    assert!(path.ends_with("state/control.token"), "{path}");
    let (code, t1, _) = run(&["token", "show", "--state-dir", sd]);
    assert_eq!(code, 0);
    assert_eq!(t1.len(), 64);
    assert!(t1.chars().all(|c| c.is_ascii_hexdigit()));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(run(&["token", "show", "--state-dir", sd]).1, t1);
    let (code, t2, _) = run(&["token", "rotate", "--state-dir", sd]);
    assert_eq!(code, 0);
    assert_ne!(t1, t2);
    assert_eq!(run(&["token", "show", "--state-dir", sd]).1, t2);
    // The state dir itself is private.
    let mode = std::fs::metadata(sd).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
}

#[tokio::test]
async fn rotation_takes_effect_without_restart() {
    let d = DaemonBuilder::new(BIN).start().await;
    let sd = d.state_dir().to_str().unwrap().to_string();
    let (_, new, _) = run(&["token", "rotate", "--state-dir", &sd]);
    let mut old = open(&d.ws_url(), Some(&d.token)).await.unwrap();
    let frame = expect_close(&mut old).await.unwrap();
    assert_eq!(u16::from(frame.code), 4001);
    greyproxy_testkit::Control::connect(&d.ws_url(), Some(&new))
        .await
        .unwrap();
}

#[test]
fn bad_config_names_key_and_line_and_bad_addresses_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "hold_timeout = 5\nhttp_adress = \"127.0.0.1:1\"\n").unwrap();
    let (code, _, err) = run(&["serve", "--config", cfg.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(
        err.contains("http_adress") && err.contains("line 2"),
        "{err}"
    );

    let sd = dir.path().join("s");
    let (code, _, err) = run(&[
        "serve",
        "--state-dir",
        sd.to_str().unwrap(),
        "--http-addr",
        "localhost:80",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("invalid HTTP proxy address"), "{err}");
}

#[tokio::test]
async fn proxies_can_be_switched_off() {
    let d = DaemonBuilder::new(BIN)
        .args(&["--http-addr", "off"])
        .start()
        .await;
    assert!(d.http.is_none());
    assert!(d.socks.is_some());
    let mut c = d.client().await;
    let s = c.query(serde_json::json!({"command":"status"})).await;
    assert_eq!(s["listeners"]["http"], serde_json::Value::Null);
    assert_eq!(s["listeners"]["control"], d.control.to_string());
}

#[test]
fn config_check_names_the_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    let path = cfg.to_str().unwrap();
    std::fs::write(
        &cfg,
        "hold_timeout = 5\nshutdown_grace = 3\n[mitm]\nbypass = [\"*.apple.com\"]\n",
    )
    .unwrap();
    let (code, out, err) = run(&["config", "check", path]);
    assert_eq!((code, out.as_str()), (0, "ok"), "{err}");
    // Syntax and unknown keys.
    std::fs::write(&cfg, "[capture]\nmax_body_bytes = 1\nredact = []\n").unwrap();
    let (code, _, err) = run(&["config", "check", path]);
    assert_ne!(code, 0);
    assert!(err.contains("redact") && err.contains("line 3"), "{err}");
    // Values the types cannot express.
    std::fs::write(&cfg, "http_addr = \"off\"\n\n[control]\nauth = \"basic\"\n").unwrap();
    let (code, _, err) = run(&["config", "check", path]);
    assert_ne!(code, 0);
    assert!(
        err.contains("control.auth") && err.contains("line 4"),
        "{err}"
    );
    // serve refuses the same file, naming the key.
    let sd = dir.path().join("s");
    let (code, _, err) = run(&[
        "serve",
        "--state-dir",
        sd.to_str().unwrap(),
        "--config",
        path,
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("control.auth"), "{err}");
    let (code, _, err) = run(&["config", "check", "/nonexistent/greyproxyd.toml"]);
    assert_ne!(code, 0);
    assert!(err.contains("cannot read config file"), "{err}");
}

#[test]
fn completions_and_man_pages() {
    for shell in ["bash", "zsh", "fish"] {
        let (code, out, err) = run(&["completions", shell]);
        assert_eq!(code, 0, "{err}");
        assert!(
            out.contains("greyproxyd") && out.contains("serve"),
            "{shell}"
        );
    }
    let (code, _, _) = run(&["completions", "tcsh"]);
    assert_ne!(code, 0);
    let (code, out, _) = run(&["man"]);
    assert_eq!(code, 0);
    assert!(out.contains(".TH greyproxyd 1"), "{out}");
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(&["man", "--dir", dir.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    for page in [
        "greyproxyd.1",
        "greyproxyd-serve.1",
        "greyproxyd-config-check.1",
    ] {
        assert!(dir.path().join(page).is_file(), "{page}");
    }
}

/// The allocator's options are compiled into the binary, so a daemon started by hand needs no
/// environment knob (docs/performance.md#allocator): jemalloc lists the options in effect in
/// the statistics it prints at exit when asked to.
#[cfg(feature = "jemalloc")]
#[test]
fn the_allocator_options_are_built_in() {
    let out = Command::new(BIN)
        .arg("--version")
        .env("_RJEM_MALLOC_CONF", "stats_print:true")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stats = String::from_utf8_lossy(&out.stderr);
    for option in [
        "opt.narenas: 1\n",
        "opt.background_thread: true",
        "opt.dirty_decay_ms: 1000 ",
        "opt.muzzy_decay_ms: 0 ",
    ] {
        assert!(stats.contains(option), "{option:?} not in:\n{stats}");
    }
}
