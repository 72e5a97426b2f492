//! `greyproxyd cert generate|path|show`: each command is a function returning the text to
//! print, so the binary only dispatches and the output is testable.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::ca::{self, CaError, rfc3339};

/// `cert generate [--force]`: creates the CA and returns its path and fingerprint. Without
/// `force`, fails when a CA file already exists.
pub fn generate(state_dir: &Path, force: bool) -> Result<String, CaError> {
    let ca = ca::generate(state_dir, force)?;
    Ok(format!(
        "Generated {}\nSHA-256 fingerprint: {}\nA running greyproxyd picks it up within a few seconds; `greyproxyd cert show` tells how to trust it.\n",
        ca.cert_path().display(),
        ca.fingerprint()
    ))
}

/// `cert path`: the CA certificate's path (whether or not it exists yet).
pub fn path(state_dir: &Path) -> String {
    format!("{}\n", ca::cert_path(state_dir).display())
}

/// `cert show`: subject, fingerprint, validity, key file and mode, and how to make clients
/// trust the CA.
pub fn show(state_dir: &Path) -> Result<String, CaError> {
    if !ca::pair_exists(state_dir)? {
        return Err(CaError::NoCa {
            dir: state_dir.into(),
        });
    }
    let ca = ca::load(state_dir)?;
    let key_mode = std::fs::metadata(ca.key_path())
        .map(|m| format!("{:04o}", m.permissions().mode() & 0o7777))
        .unwrap_or_else(|e| format!("unknown: {e}"));
    let cert = shell_quote(&ca.cert_path().display().to_string());
    Ok(format!(
        "\
Certificate:  {path}
Subject:      {subject}
SHA-256:      {fp}
Not before:   {nb}
Not after:    {na}
Private key:  {key} (mode {key_mode})

Trust it system-wide (then restart the programs that should use it):
  Debian/Ubuntu:
    sudo cp {cert} /usr/local/share/ca-certificates/greyproxy-ca.crt && sudo update-ca-certificates
  Fedora/RHEL:
    sudo cp {cert} /etc/pki/ca-trust/source/anchors/greyproxy-ca.pem && sudo update-ca-trust
  macOS:
    sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain {cert}

Tools that ignore the system store:
  export NODE_EXTRA_CA_CERTS={cert}   # Node.js (Claude Code, codex, gemini-cli, opencode): added to the built-in roots
  export SSL_CERT_FILE={cert}         # OpenSSL-based tools: replaces the default bundle
  export REQUESTS_CA_BUNDLE={cert}    # Python requests (aider): replaces the default bundle
SSL_CERT_FILE and REQUESTS_CA_BUNDLE replace the default roots: once the CA is installed system-wide,
point them at the system bundle instead (/etc/ssl/certs/ca-certificates.crt on Debian/Ubuntu,
/etc/pki/tls/certs/ca-bundle.crt on Fedora/RHEL) so hosts that bypass interception still verify.
",
        path = ca.cert_path().display(),
        subject = ca.subject(),
        fp = ca.fingerprint(),
        nb = rfc3339(ca.not_before()),
        na = rfc3339(ca.not_after()),
        key = ca.key_path().display(),
    ))
}

/// Quotes `s` for a POSIX shell when it contains anything beyond a safe set, so the printed
/// commands can be pasted as they are.
fn shell_quote(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "/._-+:@%,=".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("/a/b-c.pem"), "/a/b-c.pem");
        assert_eq!(shell_quote("/a b/c.pem"), "'/a b/c.pem'");
        assert_eq!(shell_quote("/it's"), r"'/it'\''s'");
    }

    #[test]
    fn generate_path_show() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        assert_eq!(
            path(&state),
            format!("{}\n", state.join("ca-cert.pem").display())
        );
        let err = show(&state).unwrap_err().to_string();
        assert!(err.contains("cert generate"), "{err}");

        let out = generate(&state, false).unwrap();
        let ca = ca::load(&state).unwrap();
        assert!(out.contains(ca.fingerprint()), "{out}");
        assert!(out.contains(&state.join("ca-cert.pem").display().to_string()));
        let err = generate(&state, false).unwrap_err().to_string();
        assert!(
            err.contains("already exists") && err.contains("--force"),
            "{err}"
        );

        let shown = show(&state).unwrap();
        let cert = state.join("ca-cert.pem").display().to_string();
        for needle in [
            ca.fingerprint(),
            ca.subject(),
            "mode 0600",
            &format!(
                "sudo cp {cert} /usr/local/share/ca-certificates/greyproxy-ca.crt && sudo update-ca-certificates"
            ),
            &format!(
                "sudo cp {cert} /etc/pki/ca-trust/source/anchors/greyproxy-ca.pem && sudo update-ca-trust"
            ),
            &format!(
                "sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain {cert}"
            ),
            &format!("NODE_EXTRA_CA_CERTS={cert}"),
            &format!("SSL_CERT_FILE={cert}"),
            &format!("REQUESTS_CA_BUNDLE={cert}"),
        ] {
            assert!(shown.contains(needle), "missing {needle:?} in\n{shown}");
        }
    }
}
