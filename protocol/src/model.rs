//! Objects the daemon reports: rules, pending requests, allow-all status, activity rows, status.

use serde::{Deserialize, Serialize};

use crate::names::wire_names;

/// What a rule does with a matching connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Action {
    /// Let the connection through.
    Allow,
    /// Refuse the connection (HTTP 403 / SOCKS5 reply 0x02).
    Deny,
}

impl Action {
    /// The wire name (`allow` / `deny`).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Deny => "deny",
        }
    }
}

/// Informational rule kind: `temporary` when the rule was created with an expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RuleType {
    /// Never expires (unless an `expires_at` is set later).
    Permanent,
    /// Created with an expiry.
    Temporary,
}

/// Which layer a rule belongs to; higher layers win before specificity is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RuleSource {
    /// Seeded by the daemon (localhost allows); lowest layer.
    Builtin,
    /// Attached to a sandbox session (greywall); middle layer.
    Session,
    /// Created by an operator; highest layer.
    Global,
}

/// A policy rule as reported to clients (greyproxy's `RuleJSON`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// Monotonic id.
    pub id: u64,
    /// Glob over the container (client identity) name; `*` matches all.
    pub container_pattern: String,
    /// `*`, exact host, `*.base`, `**.base` or CIDR.
    pub destination_pattern: String,
    /// `*`, a port, a range `a-b` or a comma list of those.
    pub port_pattern: String,
    /// Informational: `temporary` when created with an expiry.
    pub rule_type: RuleType,
    /// Allow or deny.
    pub action: Action,
    /// RFC 3339 UTC, second precision.
    pub created_at: String,
    /// RFC 3339 UTC; `null` = never expires.
    pub expires_at: Option<String>,
    /// Last time the rule decided a connection; `null` if never.
    pub last_used_at: Option<String>,
    /// `admin`, `builtin`, `session:<id>`, …
    pub created_by: String,
    /// Free text.
    pub notes: Option<String>,
    /// False once `expires_at` has passed.
    pub is_active: bool,
    /// Session the rule belongs to, omitted when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Layer of the rule.
    pub source: RuleSource,
}

/// A destination some client tried to reach with no rule deciding it (greyproxy's
/// `PendingRequestJSON` plus `waiting_count`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRequest {
    /// Id to pass as `pending_id`.
    pub id: u64,
    /// Client identity (container) name.
    pub container_name: String,
    /// Container id when known, else empty.
    #[serde(default)]
    pub container_id: String,
    /// Destination as the client asked for it (hostname or IP literal).
    pub destination_host: String,
    /// Destination port.
    pub destination_port: u16,
    /// Hostname learnt for an IP destination (DNS cache), `null` when unknown.
    pub resolved_hostname: Option<String>,
    /// RFC 3339 UTC.
    pub first_seen: String,
    /// RFC 3339 UTC.
    pub last_seen: String,
    /// Number of connection attempts folded into this row.
    pub attempt_count: u64,
    /// Connections currently held open waiting for a decision on this destination.
    #[serde(default)]
    pub waiting_count: u64,
    /// Why it was asked for: the tool call the same container's latest LLM call ended with,
    /// shortly before (docs/llm.md#why-a-connection-was-asked-for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm_context: Option<crate::llm::LlmContext>,
    /// `connection` (a destination no rule decides; omitted on the wire) or `credential` (a
    /// request carrying a placeholder where its secret may not go: decided with
    /// `decide_credential`).
    #[serde(default, skip_serializing_if = "PendingKind::is_connection")]
    pub kind: PendingKind,
    /// For `kind: credential`: which secret, where it was found and why it was held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<crate::credentials::CredentialEgress>,
}

/// What a pending request waits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PendingKind {
    /// A connection to a destination no rule decides (`allow` / `deny` / `dismiss`).
    #[default]
    Connection,
    /// Secret egress: a placeholder on its way where its secret may not go
    /// (`decide_credential`; `dismiss` refuses it).
    Credential,
}

impl PendingKind {
    /// True for [`PendingKind::Connection`] (left out of the JSON, greyproxy's shape).
    pub fn is_connection(&self) -> bool {
        *self == PendingKind::Connection
    }
}

impl PendingRequest {
    /// The name to show and to build rules from: the resolved hostname when known.
    pub fn display_host(&self) -> &str {
        self.resolved_hostname
            .as_deref()
            .filter(|h| !h.is_empty())
            .unwrap_or(&self.destination_host)
    }
}

/// Mode of silent (allow-all) mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AllowAllMode {
    /// Everything is allowed without rules or prompts.
    Allow,
    /// Everything is blocked without rules or prompts.
    Deny,
}

/// Silent-mode status (greyproxy's `AllowAllStatus`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AllowAllStatus {
    /// Whether silent mode is on.
    pub active: bool,
    /// Present when active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<AllowAllMode>,
    /// RFC 3339 UTC end, omitted when it lasts until restart or is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Whole seconds left, omitted when there is no expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_seconds: Option<u64>,
}

/// Outcome of a connection decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Decision {
    /// The connection went through.
    Allowed,
    /// The connection was refused.
    Blocked,
}

impl Decision {
    /// The wire name (`allowed` / `blocked`).
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allowed => "allowed",
            Decision::Blocked => "blocked",
        }
    }
}

/// One connection decision (greyproxy's `request_logs` row).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestLog {
    /// Monotonic id.
    pub id: u64,
    /// When the decision was made, RFC 3339 UTC.
    pub timestamp: String,
    /// Client identity.
    pub container_name: String,
    /// Container id when known.
    pub container_id: Option<String>,
    /// Destination as asked.
    pub destination_host: String,
    /// Destination port.
    pub destination_port: Option<u16>,
    /// Hostname learnt for an IP destination.
    pub resolved_hostname: Option<String>,
    /// Front end: `HTTP` or `SOCKS5`.
    pub method: Option<String>,
    /// Allowed or blocked.
    pub result: Decision,
    /// Rule that decided, `null` for holds that ended without one, allow-all and errors.
    pub rule_id: Option<u64>,
    /// Time from arrival to decision, including any hold.
    pub response_time_ms: Option<u64>,
    /// Why: `rule`, `allow_all`, `hold_timeout`, `dismissed`, `client_gone`, `shutdown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `container → destination:port` of the deciding rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_summary: Option<String>,
    /// For allowed tunnels: `intercepted`, `http` (plaintext recorded), or why the traffic was
    /// tunnelled raw (see [`MitmOutcome`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mitm: Option<MitmOutcome>,
}

wire_names! {
    /// What became of an allowed connection's traffic: recorded, or why it was relayed raw
    /// (`RequestLog::mitm`).
    pub enum MitmOutcome ("mitm outcome") {
        /// TLS decrypted and recorded.
        Intercepted = "intercepted",
        /// Plaintext HTTP recorded.
        Http = "http",
        /// Interception is off (`--no-mitm`).
        MitmDisabled = "mitm_disabled",
        /// The host is in `mitm.bypass`.
        MitmBypass = "mitm_bypass",
        /// No CA is loaded to issue certificates with.
        NoCert = "no_cert",
        /// Neither HTTP nor a TLS hello the proxy could read and name.
        NonTls = "non_tls",
        /// TLS with another ALPN protocol than HTTP.
        NonHttp = "non_http",
        /// The client sent nothing within the sniff wait (a server-first protocol such as SMTP).
        ServerFirst = "server_first",
        /// The client closed the connection before sending anything.
        ClientClosed = "client_closed",
        /// The client rejected our certificate.
        MitmError = "mitm_error",
        /// The origin's certificate or handshake failed (the client got a 502).
        UpstreamTlsError = "upstream_tls_error",
        /// The origin could not be reached (the tunnel never opened).
        ConnectFailed = "connect_failed",
    }
}

/// One row of the activity feed, newest first: connection decisions now, HTTP/WebSocket
/// transactions once capture exists. Tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
// Wire types: built once per message and serialised at once, so the size difference
// between variants costs nothing worth an extra allocation.
#[allow(clippy::large_enum_variant)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ActivityItem {
    /// A connection decision.
    Connection(RequestLog),
    /// A recorded HTTP exchange (without bodies).
    Transaction(Transaction),
}

/// A page of a list command's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// How many items match the filters in all.
    pub total: u64,
    /// Pass as `cursor` to get the next page; `null` at the end.
    pub next_cursor: Option<String>,
}

/// Addresses the daemon listens on (real ports, also when configured as `0`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listeners {
    /// Control WebSocket address (path `/ws`).
    pub control: String,
    /// HTTP proxy address.
    pub http: Option<String>,
    /// SOCKS5 proxy address.
    pub socks5: Option<String>,
    /// DNS forwarder address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<String>,
    /// Path of the control unix socket (same protocol as `/ws`; peers are admitted by their
    /// uid/gid); absent when it is off or the daemon predates it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_socket: Option<String>,
}

/// Result of the `status` command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Always `greyproxy`.
    pub service: String,
    /// Daemon version.
    pub version: String,
    /// Control protocol version.
    pub protocol_version: u32,
    /// Seconds since the daemon started.
    pub uptime_seconds: u64,
    /// Bound addresses.
    pub listeners: Listeners,
    /// Number of pending requests.
    pub pending_count: u64,
    /// Connections currently held waiting for a decision.
    pub held_connections: u64,
    /// Number of rules (all, including expired).
    pub rule_count: u64,
    /// Silent-mode status.
    pub allow_all: AllowAllStatus,
    /// Notification claims held by control clients.
    pub active_claims: u64,
    /// Seconds a connection is held waiting for a decision.
    pub hold_timeout_seconds: u64,
    /// The state directory.
    pub state_dir: String,
    /// Sequence number of the last event published.
    pub last_seq: u64,
    /// Tasks alive in the daemon's runtime (one or more per open connection, plus a fixed
    /// set of background tasks). It returns to its idle figure when traffic stops, so a task
    /// leak shows here; absent from older daemons.
    #[serde(default)]
    pub alive_tasks: u64,
    /// The LLM layer, when it is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm: Option<LlmStatus>,
    /// The OTLP exporter, when `[export.otlp]` is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<crate::export::ExportStatus>,
}

/// The LLM layer's state in `status`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LlmStatus {
    /// Version of the price table in use.
    pub price_table: String,
    /// Rows queued for dissection right now.
    pub queued: u64,
    /// Rows not dissected because the queue was full, since start.
    pub dropped: u64,
}

/// Recorded headers: canonical names to all their values, secrets redacted.
pub type HeaderMapJson = std::collections::BTreeMap<String, Vec<String>>;

/// One recorded HTTP exchange (greyproxy's `HttpTransactionJSON` plus timing and capture
/// flags). Lists and `transaction.new` events carry it without bodies; `get_transaction` fills
/// the body fields.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Transaction {
    /// Monotonic id, in capture (request start) order.
    pub id: u64,
    /// When the request started, RFC 3339 UTC.
    pub timestamp: String,
    /// Client identity.
    pub container_name: String,
    /// Origin host.
    pub destination_host: String,
    /// Origin port.
    pub destination_port: u16,
    /// HTTP method.
    pub method: String,
    /// Full URL with the real scheme (`https://` only when intercepted TLS), secrets in the
    /// query redacted.
    pub url: String,
    /// `HTTP/1.1` or `HTTP/2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_version: Option<String>,
    /// Request headers as sent by the client, redacted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_headers: Option<HeaderMapJson>,
    /// Request body bytes on the wire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_body_size: Option<u64>,
    /// Request `Content-Type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_content_type: Option<String>,
    /// Response status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    /// Response headers as sent by the origin, redacted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_headers: Option<HeaderMapJson>,
    /// Response body bytes on the wire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_body_size: Option<u64>,
    /// Response `Content-Type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_content_type: Option<String>,
    /// Request start to end of the response body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Request start to the response head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttfb_ms: Option<u64>,
    /// Rule that allowed the connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<u64>,
    /// `auto` (recorded), `denied` (a deny rule answered 403), `error` (no response).
    pub result: TransactionResult,
    /// What went wrong, when the exchange did not complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Request body (only from `get_transaction`): text, or base64 for binary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_body: Option<String>,
    /// `text` or `base64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_body_encoding: Option<String>,
    /// The stored copy is a prefix (the body exceeded the capture cap).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub request_body_truncated: bool,
    /// `identity`, `decoded`, `partial` or `failed: …` (Content-Encoding of the stored copy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_body_decoding: Option<String>,
    /// Response body (only from `get_transaction`): text, or base64 for binary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_body: Option<String>,
    /// `text` or `base64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_body_encoding: Option<String>,
    /// The stored copy is a prefix.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub response_body_truncated: bool,
    /// `identity`, `decoded`, `partial` or `failed: …`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_body_decoding: Option<String>,
    /// WebSocket message rows (`WS_REQ`/`WS_RESP`): the id of the upgrade (101) transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade_id: Option<u64>,
    /// WebSocket message rows: `text` or `binary`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opcode: Option<String>,
    /// WebSocket message rows: position in the connection, both directions counted, from 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_index: Option<u64>,
    /// WebSocket message rows: payload bytes on the wire (compressed when permessage-deflate
    /// applied; `request_body_size` is the decoded size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wire_size: Option<u64>,
    /// WebSocket message rows: the message was permessage-deflate compressed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub compressed: bool,
    /// Upgrade rows: negotiated `Sec-WebSocket-Extensions`, when any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ws_extensions: Option<String>,
    /// Upgrade rows: messages recorded so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ws_messages: Option<u64>,
    /// Upgrade rows: close code sent by either side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ws_close_code: Option<u16>,
    /// Upgrade rows: close reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ws_close_reason: Option<String>,
    /// Upgrade rows: why message capture stopped early (the relay itself went on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ws_capture_stopped: Option<String>,
    /// Decisions of external middlewares on this exchange that are worth a row: deny, block,
    /// rewrite, or any decision carrying tags (request cascade first, then response).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub middleware_events: Vec<crate::middleware::MiddlewareEvent>,
    /// When the response body's first chunks passed: `[end offset in the body, ms since the
    /// request started]` for up to the first 64 chunks; only for event streams stored without
    /// content encoding (the offsets are wire offsets). Time to first token comes from it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_timeline: Vec<[u64; 2]>,
    /// Set on a row that replaces an earlier version of itself (an upgrade row completed at
    /// close); published as `transaction.updated`. Not stored.
    #[serde(skip)]
    pub is_update: bool,
}

wire_names! {
    /// What became of a recorded HTTP exchange (`Transaction::result`).
    #[derive(Default)]
    pub enum TransactionResult ("transaction result") {
        /// Forwarded and recorded.
        #[default]
        Auto = "auto",
        /// Refused inside an open tunnel: a deny rule or a middleware answered instead of the
        /// origin.
        Denied = "denied",
        /// No response: the origin was unreachable or too slow (the client got 502/504).
        Error = "error",
    }
}
