//! Finding the daemon without flags: the state directory (resolved exactly like `greyproxyd`
//! does, so that the same user on the same host needs no configuration), the control token and
//! the control URL (from the daemon's `daemon.json` runtime file when present).
//!
//! Everything here takes the environment as a function so that the resolution order is tested
//! without touching the process environment.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Control URL used when neither `--url` nor a runtime file says otherwise.
pub(crate) const DEFAULT_URL: &str = "ws://127.0.0.1:43080/ws";

/// Token file name in the state directory (as written by `greyproxyd`).
pub(crate) const TOKEN_FILE: &str = "control.token";

/// Runtime file `greyproxyd serve` writes into its state directory.
pub(crate) const RUNTIME_FILE: &str = "daemon.json";

/// Why the token could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The token file named by `--token-file` (or found in the state dir) is unreadable.
    #[error("cannot read token file {path}: {source}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The token file is empty.
    #[error("token file {0} is empty")]
    Empty(PathBuf),
}

/// Where the token came from, for messages such as "unauthorized (token from …)".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// `--token-file`.
    File(PathBuf),
    /// `$GREYPROXY_TOKEN`.
    Env,
    /// `control.token` in the state directory.
    StateDir(PathBuf),
    /// Nothing found: the connection is attempted without a token (`control.auth = "none"`).
    None,
}

impl std::fmt::Display for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSource::File(p) => write!(f, "token from {}", p.display()),
            TokenSource::Env => f.write_str("token from $GREYPROXY_TOKEN"),
            TokenSource::StateDir(p) => write!(f, "token from {}", p.display()),
            TokenSource::None => f.write_str(
                "no token found: pass --token-file, set $GREYPROXY_TOKEN or use --state-dir",
            ),
        }
    }
}

/// Resolves the state directory: flag > `$GREYPROXY_STATE_DIR` > `$STATE_DIRECTORY` (first of
/// its colon-separated entries, as systemd may pass several) > `$XDG_STATE_HOME/greyproxy` >
/// `$HOME/.local/state/greyproxy`. `None` when not even `HOME` is set.
pub(crate) fn state_dir(
    flag: Option<&Path>,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Option<PathBuf> {
    if let Some(p) = flag {
        return Some(p.to_path_buf());
    }
    let var = |k: &str| env(k).filter(|v| !v.is_empty());
    if let Some(p) = var("GREYPROXY_STATE_DIR") {
        return Some(PathBuf::from(p));
    }
    if let Some(p) = var("STATE_DIRECTORY") {
        let s = p.to_string_lossy();
        let first = s.split(':').next().unwrap_or_default();
        return Some(PathBuf::from(first));
    }
    if let Some(p) = var("XDG_STATE_HOME") {
        return Some(PathBuf::from(p).join("greyproxy"));
    }
    var("HOME").map(|h| PathBuf::from(h).join(".local/state/greyproxy"))
}

/// Finds the token: `--token-file` > `$GREYPROXY_TOKEN` > `<state dir>/control.token`.
///
/// A missing state-dir token is not an error (the daemon may run with `auth = "none"`); an
/// explicit `--token-file` that cannot be read is.
pub(crate) fn token(
    token_file: Option<&Path>,
    state_dir: Option<&Path>,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<(Option<String>, TokenSource), TokenError> {
    if let Some(p) = token_file {
        return read_token(p).map(|t| (Some(t), TokenSource::File(p.to_path_buf())));
    }
    if let Some(t) = env("GREYPROXY_TOKEN") {
        let t = t.to_string_lossy().trim().to_string();
        if !t.is_empty() {
            return Ok((Some(t), TokenSource::Env));
        }
    }
    if let Some(dir) = state_dir {
        let p = dir.join(TOKEN_FILE);
        match read_token(&p) {
            Ok(t) => return Ok((Some(t), TokenSource::StateDir(p))),
            Err(TokenError::Unreadable { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok((None, TokenSource::None))
}

fn read_token(p: &Path) -> Result<String, TokenError> {
    let text = std::fs::read_to_string(p).map_err(|source| TokenError::Unreadable {
        path: p.to_path_buf(),
        source,
    })?;
    let t = text.trim();
    if t.is_empty() {
        return Err(TokenError::Empty(p.to_path_buf()));
    }
    Ok(t.to_string())
}

/// The control URL named by a runtime file's text (`{"listeners":{"control":"IP:PORT"}}`), or
/// `None` when the text does not say. A wildcard bind address is reached over loopback.
pub(crate) fn url_from_runtime(text: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let addr: std::net::SocketAddr = v.get("listeners")?.get("control")?.as_str()?.parse().ok()?;
    let ip = match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
            std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
        }
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
            std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
        }
        ip => ip,
    };
    Some(format!(
        "ws://{}/ws",
        std::net::SocketAddr::new(ip, addr.port())
    ))
}

/// The control URL: `--url` > the state dir's `daemon.json` > [`DEFAULT_URL`]. Read again on
/// every (re)connection, because a restarted daemon on port 0 listens somewhere else.
pub(crate) fn url(flag: Option<&str>, state_dir: Option<&Path>) -> String {
    if let Some(u) = flag {
        return u.to_string();
    }
    state_dir
        .and_then(|d| std::fs::read_to_string(d.join(RUNTIME_FILE)).ok())
        .and_then(|t| url_from_runtime(&t))
        .unwrap_or_else(|| DEFAULT_URL.to_string())
}

/// The endpoint (URL and token) from the flags and the environment, and where the token came
/// from. Called before every connection attempt so that a restarted daemon is found again.
pub fn endpoint(
    url_flag: Option<&str>,
    token_file: Option<&Path>,
    state_dir_flag: Option<&Path>,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<(crate::client::Endpoint, TokenSource), TokenError> {
    let dir = state_dir(state_dir_flag, env);
    let (token, source) = token(token_file, dir.as_deref(), env)?;
    let ep = crate::client::Endpoint {
        url: url(url_flag, dir.as_deref()),
        token,
    };
    Ok((ep, source))
}

/// The real process environment, for the functions above.
pub(crate) fn process_env(k: &str) -> Option<OsString> {
    std::env::var_os(k)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<OsString> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn state_dir_order_matches_the_daemon() {
        let all = env_of(&[
            ("GREYPROXY_STATE_DIR", "/g"),
            ("STATE_DIRECTORY", "/s:/t"),
            ("XDG_STATE_HOME", "/x"),
            ("HOME", "/h"),
        ]);
        assert_eq!(
            state_dir(Some(Path::new("/f")), &all),
            Some(PathBuf::from("/f"))
        );
        assert_eq!(state_dir(None, &all), Some(PathBuf::from("/g")));
        let e = env_of(&[
            ("GREYPROXY_STATE_DIR", ""),
            ("STATE_DIRECTORY", "/s:/t"),
            ("HOME", "/h"),
        ]);
        assert_eq!(state_dir(None, &e), Some(PathBuf::from("/s")));
        let e = env_of(&[("XDG_STATE_HOME", "/x"), ("HOME", "/h")]);
        assert_eq!(state_dir(None, &e), Some(PathBuf::from("/x/greyproxy")));
        let e = env_of(&[("HOME", "/h")]);
        assert_eq!(
            state_dir(None, &e),
            Some(PathBuf::from("/h/.local/state/greyproxy"))
        );
        assert_eq!(state_dir(None, &env_of(&[])), None);
    }

    #[test]
    fn token_order_file_env_state_dir() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(TOKEN_FILE), "fromdir\n").unwrap();
        let file = dir.path().join("other");
        std::fs::write(&file, " fromfile \n").unwrap();
        let env = env_of(&[("GREYPROXY_TOKEN", "fromenv")]);
        let none = env_of(&[]);
        let (t, s) = token(Some(&file), Some(dir.path()), &env).unwrap();
        assert_eq!(
            (t.as_deref(), s),
            (Some("fromfile"), TokenSource::File(file))
        );
        let (t, s) = token(None, Some(dir.path()), &env).unwrap();
        assert_eq!((t.as_deref(), s), (Some("fromenv"), TokenSource::Env));
        let (t, _) = token(None, Some(dir.path()), &none).unwrap();
        assert_eq!(t.as_deref(), Some("fromdir"));
        let empty = tempfile::tempdir().unwrap();
        let (t, s) = token(None, Some(empty.path()), &none).unwrap();
        assert_eq!((t, s), (None, TokenSource::None));
    }

    #[test]
    fn explicit_token_file_must_exist_and_not_be_empty() {
        let dir = tempfile::tempdir().unwrap();
        let none = env_of(&[]);
        let missing = dir.path().join("missing");
        assert!(matches!(
            token(Some(&missing), None, &none),
            Err(TokenError::Unreadable { .. })
        ));
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        assert!(matches!(
            token(Some(&empty), None, &none),
            Err(TokenError::Empty(_))
        ));
    }

    #[test]
    fn runtime_file_gives_the_control_url() {
        let t =
            r#"{"pid":1,"version":"0.1.0","listeners":{"control":"127.0.0.1:41234","http":null}}"#;
        assert_eq!(
            url_from_runtime(t).as_deref(),
            Some("ws://127.0.0.1:41234/ws")
        );
        let t = r#"{"listeners":{"control":"0.0.0.0:5"}}"#;
        assert_eq!(url_from_runtime(t).as_deref(), Some("ws://127.0.0.1:5/ws"));
        let t = r#"{"listeners":{"control":"[::]:5"}}"#;
        assert_eq!(url_from_runtime(t).as_deref(), Some("ws://[::1]:5/ws"));
        assert_eq!(url_from_runtime("{}"), None);
        assert_eq!(url_from_runtime("garbage"), None);
    }

    #[test]
    fn url_order_flag_runtime_default() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(url(None, Some(dir.path())), DEFAULT_URL);
        std::fs::write(
            dir.path().join(RUNTIME_FILE),
            r#"{"listeners":{"control":"127.0.0.1:9"}}"#,
        )
        .unwrap();
        assert_eq!(url(None, Some(dir.path())), "ws://127.0.0.1:9/ws");
        assert_eq!(url(Some("ws://h:1/ws"), Some(dir.path())), "ws://h:1/ws");
        assert_eq!(url(None, None), DEFAULT_URL);
    }
}
