//! Credentials and launcher sessions over `/ws` (docs/credentials.md): the arguments of the
//! credential and session commands, what the daemon reports about them, their events, and the
//! `credential` kind of pending request (a placeholder seen where its secret may not go).
//!
//! A secret travels only in [`CreateCredentialArgs::secret`] and
//! [`UpdateCredentialArgs::secret`], inside a [`WireSecret`] whose `Debug` never shows it;
//! nothing the daemon sends back carries it (lists show a preview).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::command::Scope;

/// A secret as a client sends it. `Debug` prints `<secret>`, so a command logged with `{:?}`
/// never shows it; the daemon moves it into its own wiped-on-drop type at once.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WireSecret(pub String);

impl fmt::Debug for WireSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

impl From<&str> for WireSecret {
    fn from(s: &str) -> Self {
        WireSecret(s.to_string())
    }
}

/// Where in a request a credential's placeholder is replaced by its secret. Headers and query
/// by default; bodies opt-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialPlaces {
    /// Header values.
    #[serde(default = "yes")]
    pub headers: bool,
    /// URL query parameter values.
    #[serde(default = "yes")]
    pub query: bool,
    /// JSON request bodies (within the capture body cap).
    #[serde(default)]
    pub json_body: bool,
    /// `application/x-www-form-urlencoded` request bodies (within the capture body cap).
    #[serde(default)]
    pub form_body: bool,
}

fn yes() -> bool {
    true
}

impl Default for CredentialPlaces {
    fn default() -> Self {
        CredentialPlaces {
            headers: true,
            query: true,
            json_body: false,
            form_body: false,
        }
    }
}

/// Arguments of `create_credential`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CreateCredentialArgs {
    /// Unique label, an environment-variable-like name (`OPENAI_API_KEY`).
    pub label: String,
    /// The secret: write-only, never echoed.
    pub secret: WireSecret,
    /// Where it may be sent: `host[:port][/path-prefix]`, host globs `*.x` / `**.x`.
    pub destinations: Vec<String>,
    /// Container globs it may be used from; empty or absent means any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<String>,
    /// Where to substitute (default headers and query).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub places: Option<CredentialPlaces>,
    /// Substitute on plain HTTP too (default false: TLS-intercepted requests only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_plaintext: Option<bool>,
    /// RFC 3339 end of validity; exclusive with `duration`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Validity counted from now (`1h`, `30d`, `permanent`); exclusive with `expires_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
}

/// Arguments of `update_credential`: absent fields stay as they are. A new `secret` is a
/// rotation: the credential keeps its id, so every placeholder minted for it stays valid.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UpdateCredentialArgs {
    /// The credential to change.
    pub label: String,
    /// New secret (rotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<WireSecret>,
    /// New destinations (replaces the list, timed bindings included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destinations: Option<Vec<String>>,
    /// New container globs (empty: any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub containers: Option<Vec<String>>,
    /// New places.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub places: Option<CredentialPlaces>,
    /// Plain HTTP allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_plaintext: Option<bool>,
    /// `Some(None)` (JSON `null` or `""`) removes the expiry.
    #[serde(
        default,
        deserialize_with = "clearable",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_at: Option<Option<String>>,
}

/// Present-but-null or empty string → `Some(None)`; absent is handled by `#[serde(default)]`.
fn clearable<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    let v: Option<String> = Option::deserialize(d)?;
    Ok(Some(v.filter(|s| !s.is_empty())))
}

/// Arguments naming one credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialLabelArgs {
    /// The credential's label.
    pub label: String,
}

/// Arguments of `create_session`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CreateSessionArgs {
    /// The launcher's id (`[A-Za-z0-9_-]{1,64}`, e.g. `gw-` + 16 hex); minted when absent.
    /// Registering an existing id again replaces that session (new placeholders).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The container name (proxy user name) the sandbox's requests carry; exact.
    pub container: String,
    /// Labels of the credentials to mint placeholders for.
    #[serde(default)]
    pub credentials: Vec<String>,
    /// Lifetime after the last heartbeat, seconds (default 900, at most 3600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
    /// The launcher's learning mode: the policy allows every destination for this container
    /// while the session lives. It never widens where a secret may go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_all: Option<bool>,
}

/// Arguments naming one session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionIdArgs {
    /// The session.
    pub session_id: String,
}

/// What to do with a held `credential` pending request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CredentialDecision {
    /// Send this one request with the secret substituted.
    SendOnce,
    /// Add the destination to the credential's destinations (with `scope` and `duration`),
    /// then send it with the secret.
    Bind,
    /// Send it as it is, placeholder and all (the origin never sees the secret).
    SendUnchanged,
    /// Answer 403 with `reason`; `end_session` also deletes the placeholder's session.
    Refuse,
}

/// Arguments of `decide_credential`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecideCredentialArgs {
    /// The `credential` pending request.
    pub pending_id: u64,
    /// What to do.
    pub decision: CredentialDecision,
    /// `bind`: `exact` (host and port, default), `any_port` (host), `subdomain_wildcard`
    /// (`**.` the registrable domain), `all_containers` (host and port, and any container).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    /// `bind`: `permanent` (default), `once`, `1h`, `24h`, … or a humantime span.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// `refuse`: the reason put in the 403 body (default `credential refused`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `refuse`: also delete the session whose placeholder it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_session: Option<bool>,
}

/// One destination of a credential, as reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialDestination {
    /// `host[:port][/path-prefix]`.
    pub pattern: String,
    /// RFC 3339 end of a timed binding (from a `bind` decision); absent: permanent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// A credential as `list_credentials` and the `credential.*` events report it: never the
/// secret, only a preview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialInfo {
    /// Stable id (`cr-` + 16 hex).
    pub id: String,
    /// Unique label.
    pub label: String,
    /// `sk-p…(51 chars)`.
    pub preview: String,
    /// Where it may be sent.
    pub destinations: Vec<CredentialDestination>,
    /// Container globs it may be used from.
    pub containers: Vec<String>,
    /// Where it is substituted.
    pub places: CredentialPlaces,
    /// Plain HTTP allowed.
    pub allow_plaintext: bool,
    /// RFC 3339 end of validity, `null` for none.
    pub expires_at: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339 (a rotation counts).
    pub updated_at: String,
    /// Substitutions made since the daemon started, all sessions together.
    #[serde(default)]
    pub substitutions: u64,
}

/// `data` of `list_credentials`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CredentialList {
    /// By label.
    pub credentials: Vec<CredentialInfo>,
    /// False when the key file could not be used: nothing is substituted, every placeholder
    /// is held; `unavailable_reason` says why.
    pub available: bool,
    /// Why credentials are unavailable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable_reason: Option<String>,
}

/// A session as `list_sessions` and the `session.*` events report it. Its placeholders are
/// only in [`SessionCreated`] (the launcher's answer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// Session id.
    pub session_id: String,
    /// Its container.
    pub container: String,
    /// Labels of its credentials (a deleted credential is left out).
    pub credentials: Vec<String>,
    /// Lifetime after the last heartbeat.
    pub ttl_seconds: u64,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339 of the registration or the last heartbeat.
    pub last_heartbeat: String,
    /// RFC 3339 end unless heartbeated.
    pub expires_at: String,
    /// Whole seconds left.
    pub remaining_seconds: u64,
    /// Learning mode.
    pub allow_all: bool,
    /// Substitutions made for this session since the daemon started, by credential label.
    #[serde(default)]
    pub substitutions: BTreeMap<String, u64>,
}

/// `data` of `create_session`: the session and one placeholder per credential, by label (what
/// a launcher exports as `LABEL=<placeholder>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionCreated {
    /// The session.
    pub session: SessionInfo,
    /// Label → placeholder.
    pub placeholders: BTreeMap<String, String>,
}

/// `data` of `list_sessions`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SessionList {
    /// By id.
    pub sessions: Vec<SessionInfo>,
}

/// Payload of `credential.deleted`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialDeleted {
    /// The id it had.
    pub id: String,
    /// Its label.
    pub label: String,
}

/// Payload of `session.expired` and `session.deleted`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionEnded {
    /// The session.
    pub session_id: String,
    /// Its container.
    pub container: String,
}

/// One line of `credential.substitutions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubstitutionCount {
    /// The session.
    pub session_id: String,
    /// The credential's label.
    pub label: String,
    /// Substitutions since the daemon started.
    pub total: u64,
    /// Substitutions since the previous event.
    pub added: u64,
}

/// Payload of `credential.substitutions`: sent at most once a second, only when a count
/// changed, with the lines that changed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SubstitutionCounts {
    /// The changed counters.
    pub counts: Vec<SubstitutionCount>,
}

/// Where in a request a placeholder was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FoundIn {
    /// A header value.
    Header,
    /// A URL query value.
    Query,
    /// A JSON body.
    JsonBody,
    /// A form body.
    FormBody,
}

/// What a `credential` pending request says (`PendingRequest::credential`): which secret,
/// going where, from where, found where, and why it was not substituted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialEgress {
    /// The credential's label, when the placeholder is known and its credential exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The session that minted the placeholder, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// `METHOD https://host:port/path` (query left out: it may carry other secrets).
    pub request: String,
    /// Where the placeholder was found.
    pub found_in: FoundIn,
    /// The header or parameter name (empty for a JSON body).
    #[serde(default)]
    pub name: String,
    /// Why it was held: `destination_not_bound`, `wrong_container`, `plaintext_not_allowed`,
    /// `unknown_placeholder`, `session_expired`, `deleted_credential`, `credential_expired`,
    /// `echo_method`, `place_not_enabled`, `credentials_unavailable`.
    pub reason: String,
}
