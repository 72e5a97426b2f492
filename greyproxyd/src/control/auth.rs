//! The control token: 256 random bits, hex, in `control.token` (0600) in the state dir.
//! Clients send it as `Authorization: Bearer <token>` or `?token=`; it is compared in
//! constant time and re-read on every connection, so `greyproxyd token rotate` takes effect
//! without a restart.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use subtle::ConstantTimeEq;

use crate::http::percent::{self, Plus};

/// File name of the token in the state dir.
pub const TOKEN_FILE: &str = "control.token";

/// `control.auth`: whether control clients must present the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ControlAuth {
    /// `token` (the default): the bearer token is required.
    #[default]
    Token,
    /// `none`: no authentication (loopback-only setups).
    None,
}

/// A `control.auth` value other than `token` or `none`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value {0:?}: use \"token\" or \"none\"")]
pub struct ControlAuthError(pub String);

impl std::str::FromStr for ControlAuth {
    type Err = ControlAuthError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "token" => Ok(ControlAuth::Token),
            "none" => Ok(ControlAuth::None),
            other => Err(ControlAuthError(other.to_string())),
        }
    }
}

/// Path of the token file.
pub fn token_path(state_dir: &Path) -> PathBuf {
    state_dir.join(TOKEN_FILE)
}

fn random_token() -> io::Result<String> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Writes `token` (and a newline) to `path` with mode 0600, atomically.
fn write_token(path: &Path, token: &str) -> io::Result<()> {
    crate::atomic::write_atomic(path, format!("{token}\n").as_bytes(), 0o600)
}

/// Reads the token, creating it (0600) when missing. Tightens loose permissions.
pub fn ensure_token(state_dir: &Path) -> io::Result<String> {
    let path = token_path(state_dir);
    match read_token(&path) {
        Ok(t) => {
            let mode = fs::metadata(&path)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "control token was readable by others; setting 0600");
                fs::set_permissions(&path, fs::Permissions::from_mode(0o600))?;
            }
            Ok(t)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let t = random_token()?;
            write_token(&path, &t)?;
            Ok(t)
        }
        Err(e) => Err(e),
    }
}

/// Reads the token file (trimmed); an empty file is an error.
pub fn read_token(path: &Path) -> io::Result<String> {
    let t = fs::read_to_string(path)?.trim().to_string();
    if t.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is empty", path.display()),
        ));
    }
    Ok(t)
}

/// Replaces the token with a new random one and returns it.
pub fn rotate_token(state_dir: &Path) -> io::Result<String> {
    let t = random_token()?;
    write_token(&token_path(state_dir), &t)?;
    Ok(t)
}

/// Constant-time comparison of a presented token with the expected one.
pub fn token_matches(presented: &str, expected: &str) -> bool {
    presented.len() == expected.len() && bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

/// The token a client presented on the upgrade request: `Authorization: Bearer …`, else the
/// `token` query parameter.
pub fn presented_token(authorization: Option<&str>, query: Option<&str>) -> Option<String> {
    if let Some(a) = authorization {
        let a = a.trim();
        if let Some((scheme, t)) = a.split_once(' ')
            && scheme.eq_ignore_ascii_case("bearer")
        {
            return Some(t.trim().to_string());
        }
    }
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "token")
        // Tokens are hex, but clients may percent-encode the query.
        .map(|(_, v)| percent::decode_lossy(v, Plus::Space).into_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn token_file_is_created_0600_and_rotates() {
        let dir = tempfile::tempdir().unwrap();
        let t = ensure_token(dir.path()).unwrap();
        assert_eq!(t.len(), 64);
        let mode = fs::metadata(token_path(dir.path()))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(ensure_token(dir.path()).unwrap(), t);
        let t2 = rotate_token(dir.path()).unwrap();
        assert_ne!(t, t2);
        assert_eq!(read_token(&token_path(dir.path())).unwrap(), t2);
        fs::set_permissions(token_path(dir.path()), fs::Permissions::from_mode(0o644)).unwrap();
        ensure_token(dir.path()).unwrap();
        let mode = fs::metadata(token_path(dir.path()))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn control_auth_parses_exactly_token_and_none() {
        assert_eq!("token".parse(), Ok(ControlAuth::Token));
        assert_eq!("none".parse(), Ok(ControlAuth::None));
        assert_eq!(ControlAuth::default(), ControlAuth::Token);
        assert_eq!(
            "Token".parse::<ControlAuth>().unwrap_err().to_string(),
            r#"invalid value "Token": use "token" or "none""#
        );
    }

    #[test]
    fn presented_token_sources() {
        assert_eq!(
            presented_token(Some("Bearer abc"), None).as_deref(),
            Some("abc")
        );
        assert_eq!(
            presented_token(Some("bearer  abc "), None).as_deref(),
            Some("abc")
        );
        assert_eq!(
            presented_token(None, Some("a=1&token=x%41y")).as_deref(),
            Some("xAy")
        );
        // A sign is not a hex digit: `%+f` used to decode to 0x0F.
        assert_eq!(
            presented_token(None, Some("token=%+f%2")).as_deref(),
            Some("% f%2")
        );
        assert_eq!(presented_token(Some("Basic zzz"), None), None);
        assert!(token_matches("abc", "abc"));
        assert!(!token_matches("abd", "abc"));
        assert!(!token_matches("ab", "abc"));
    }
}
