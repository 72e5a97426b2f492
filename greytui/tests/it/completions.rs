//! `greytui completions SHELL` and `greytui man` work without a daemon.

use std::process::Command;

#[test]
fn completions_and_man_page_need_no_daemon() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(env!("CARGO_BIN_EXE_greytui"))
            .args(["completions", shell])
            .env("GREYPROXY_STATE_DIR", "/nonexistent")
            .output()
            .expect("greytui runs");
        assert!(out.status.success(), "{shell}: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("greytui") && text.contains("allow"),
            "{shell}: {text}"
        );
    }
    let out = Command::new(env!("CARGO_BIN_EXE_greytui"))
        .arg("man")
        .output()
        .expect("greytui runs");
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(".TH greytui"));
}
