//! Sessions (what a sandbox launcher registers: a container, a TTL kept alive by heartbeats,
//! one placeholder per credential) and the placeholder format, greyproxy's
//! `greyproxy:credential:v1:<session id>:<32 hex>`.
//!
//! Time is passed in as Unix seconds (`now`) rather than read here: the caller reads it from
//! the daemon's one clock, so tests under paused time or with a hand-set `now` drive expiry
//! exactly.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::model::Credential;

/// What every placeholder starts with, whatever its version: the cheap test a scan makes.
pub(crate) const PREFIX: &str = "greyproxy:credential:";

/// The prefix of the one version there is.
pub(crate) const PREFIX_V1: &str = "greyproxy:credential:v1:";

/// Random hex digits at the end of a placeholder (16 bytes: 128 bits).
pub(crate) const HEX_LEN: usize = 32;

/// Longest session id.
pub(crate) const MAX_SESSION_ID: usize = 64;

/// Session TTL when the launcher gives none (greyproxy's).
pub(crate) const DEFAULT_TTL_SECS: u64 = 900;

/// Longest session TTL (greyproxy's).
pub(crate) const MAX_TTL_SECS: u64 = 3600;

/// Why a session is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SessionError {
    /// The id cannot appear in a placeholder.
    #[error("session id {0:?} is not valid: 1 to {MAX_SESSION_ID} letters, digits, '-' or '_'")]
    Id(String),
    /// No container name.
    #[error("a session needs the container name its sandbox uses")]
    NoContainer,
    /// TTL out of range.
    #[error("session TTL {0} s is out of range: 1 to {MAX_TTL_SECS} s")]
    Ttl(u64),
    /// The OS random source failed.
    #[error("the random source failed")]
    Random,
}

/// True when `id` can be a session id: `[A-Za-z0-9_-]{1,64}` (no `:`, which ends the field
/// in a placeholder).
pub(crate) fn valid_session_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_SESSION_ID
        && id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

/// `n` random bytes as lower-case hex.
pub(crate) fn random_hex(n: usize) -> Result<String, SessionError> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).map_err(|_| SessionError::Random)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A fresh placeholder for session `session`.
pub(crate) fn mint_placeholder(session: &str) -> Result<String, SessionError> {
    if !valid_session_id(session) {
        return Err(SessionError::Id(
            session.chars().take(MAX_SESSION_ID).collect(),
        ));
    }
    Ok(format!("{PREFIX_V1}{session}:{}", random_hex(HEX_LEN / 2)?))
}

/// A registered session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Session {
    /// Its id (the launcher's, e.g. `gw-` + 16 hex, or minted).
    pub(crate) id: String,
    /// The container name the sandbox's requests carry; exact, not a pattern.
    pub(crate) container: String,
    /// Lifetime after the last heartbeat.
    pub(crate) ttl_secs: u64,
    /// Unix seconds.
    pub(crate) created_at: u64,
    /// Unix seconds of the registration or the last heartbeat.
    pub(crate) last_heartbeat: u64,
    /// Credential id → its placeholder in this session.
    pub(crate) placeholders: BTreeMap<String, String>,
    /// The launcher's "learning" mode: every destination allowed by the policy for this
    /// session. It never widens where a secret may go.
    #[serde(default)]
    pub(crate) allow_all: bool,
}

impl Session {
    /// A session for `container` with one freshly minted placeholder per credential.
    pub(crate) fn new(
        id: &str,
        container: &str,
        ttl_secs: Option<u64>,
        credentials: &[&Credential],
        allow_all: bool,
        now: u64,
    ) -> Result<Session, SessionError> {
        if !valid_session_id(id) {
            return Err(SessionError::Id(id.chars().take(MAX_SESSION_ID).collect()));
        }
        if container.trim().is_empty() {
            return Err(SessionError::NoContainer);
        }
        let ttl_secs = ttl_secs.unwrap_or(DEFAULT_TTL_SECS);
        if ttl_secs == 0 || ttl_secs > MAX_TTL_SECS {
            return Err(SessionError::Ttl(ttl_secs));
        }
        let mut placeholders = BTreeMap::new();
        for c in credentials {
            placeholders.insert(c.id.clone(), mint_placeholder(id)?);
        }
        Ok(Session {
            id: id.to_string(),
            container: container.to_string(),
            ttl_secs,
            created_at: now,
            last_heartbeat: now,
            placeholders,
            allow_all,
        })
    }

    /// Unix seconds at which it expires without another heartbeat.
    pub(crate) fn expires_at(&self) -> u64 {
        self.last_heartbeat.saturating_add(self.ttl_secs)
    }

    /// Still alive at `now`.
    pub(crate) fn live(&self, now: u64) -> bool {
        now < self.expires_at()
    }

    /// Keeps it alive for another TTL from `now` (never moves it back).
    pub(crate) fn heartbeat(&mut self, now: u64) {
        self.last_heartbeat = self.last_heartbeat.max(now);
    }
}
