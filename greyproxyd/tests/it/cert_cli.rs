//! `greyproxyd cert generate|path|show` run as the real binary against a temporary state dir.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_greyproxyd");

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("GREYPROXY_STATE_DIR")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// The `SHA-256 fingerprint: …` line of `cert generate`.
fn fingerprint(generate_out: &str) -> String {
    generate_out
        .lines()
        .find_map(|l| l.strip_prefix("SHA-256 fingerprint: "))
        .unwrap()
        .to_string()
}

#[test]
fn generate_show_path_and_force() {
    let dir = tempfile::tempdir().unwrap();
    let sd = dir.path().join("state");
    let sd_s = sd.to_str().unwrap();
    let cert = sd.join("ca-cert.pem");
    let key = sd.join("ca-key.pem");

    let (code, path, _) = run(&["cert", "path", "--state-dir", sd_s]);
    assert_eq!(code, 0);
    assert_eq!(path.trim(), cert.to_str().unwrap());

    // No CA yet: show fails and says how to create one.
    let (code, _, err) = run(&["cert", "show", "--state-dir", sd_s]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("no CA in {sd_s}")) && err.contains("cert generate"),
        "{err}"
    );

    let (code, out, err) = run(&["cert", "generate", "--state-dir", sd_s]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(cert.to_str().unwrap()), "{out}");
    let fp = fingerprint(&out);
    assert_eq!(fp.len(), 95, "{fp}");
    assert_eq!(mode(&cert), 0o644);
    assert_eq!(mode(&key), 0o600);
    assert_eq!(mode(&sd), 0o700);

    // Again without --force: refused, nothing replaced.
    let (code, out, err) = run(&["cert", "generate", "--state-dir", sd_s]);
    assert_eq!(code, 1, "{out}");
    assert!(
        err.contains("already exists") && err.contains("--force"),
        "{err}"
    );

    let (code, shown, err) = run(&["cert", "show", "--state-dir", sd_s]);
    assert_eq!(code, 0, "{err}");
    assert!(shown.contains(&fp), "{shown}");
    assert!(shown.contains("CN=greyproxy CA "), "{shown}");
    assert!(shown.contains("mode 0600"), "{shown}");
    assert!(shown.contains("update-ca-certificates"));
    assert!(shown.contains("update-ca-trust"));
    assert!(shown.contains("add-trusted-cert"));
    assert!(shown.contains(&format!("NODE_EXTRA_CA_CERTS={}", cert.display())));

    // A loose key mode is tightened by show (with a warning on stderr).
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let (code, _, err) = run(&["cert", "show", "--state-dir", sd_s]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(mode(&key), 0o600);
    assert!(err.contains("0600"), "{err}");

    // --force replaces it; --state-dir may come before the action too.
    let (code, out, err) = run(&["cert", "--state-dir", sd_s, "generate", "--force"]);
    assert_eq!(code, 0, "{err}");
    assert_ne!(fingerprint(&out), fp);
    assert_eq!(mode(&cert), 0o644);
    assert_eq!(mode(&key), 0o600);
    let (_, shown, _) = run(&["cert", "show", "--state-dir", sd_s]);
    assert!(shown.contains(&fingerprint(&out)));
}

#[test]
fn corrupt_key_is_reported_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let sd = dir.path().to_str().unwrap();
    assert_eq!(run(&["cert", "generate", "--state-dir", sd]).0, 0);
    std::fs::write(dir.path().join("ca-key.pem"), "not a key").unwrap();
    let (code, _, err) = run(&["cert", "show", "--state-dir", sd]);
    assert_eq!(code, 1);
    assert!(err.contains(&format!("{sd}/ca-key.pem")), "{err}");
    std::fs::remove_file(dir.path().join("ca-key.pem")).unwrap();
    let (code, _, err) = run(&["cert", "show", "--state-dir", sd]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("found {sd}/ca-cert.pem but not {sd}/ca-key.pem")),
        "{err}"
    );
}
