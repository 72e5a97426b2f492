//! Wire types of the external-middleware protocol, version 1 — wire-compatible with the Go
//! greyproxy's (docs/middleware.md).
//!
//! The daemon dials a middleware (WebSocket) or spawns it (NDJSON over stdio), says
//! [`ProxyHello`], reads one [`MiddlewareHello`], then sends [`HttpRequestMessage`] and
//! [`HttpResponseMessage`]s and waits for a [`Decision`] with the same id.
//!
//! Decoding of what a middleware sends is *lenient* the way Go's `encoding/json` is, because
//! middlewares written for greyproxy rely on it: object keys of the protocol's structs match
//! case-insensitively, unknown keys are ignored and `null` means "absent" everywhere
//! ([`MiddlewareHello::decode`], [`Decision::decode`]). Bodies are standard base64 with padding;
//! `""` (an empty body) and `null` (no body: over the size limit, or "keep the current one")
//! are different things and stay different here (`Option<Vec<u8>>`).

use std::collections::BTreeMap;

use base64::Engine;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::names::wire_names;

/// Highest middleware protocol version this crate speaks.
pub const MIDDLEWARE_PROTOCOL_VERSION: u32 = 1;

/// Header map as sent on the wire: canonical header name → values in order.
pub type WireHeaders = BTreeMap<String, Vec<String>>;

/// What the proxy says first, exactly `{"type":"hello","version":1}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyHello {
    /// Always `hello`.
    #[serde(rename = "type")]
    pub kind: HelloTag,
    /// The proxy's highest protocol version.
    pub version: u32,
}

impl Default for ProxyHello {
    fn default() -> Self {
        ProxyHello {
            kind: HelloTag::Hello,
            version: MIDDLEWARE_PROTOCOL_VERSION,
        }
    }
}

/// The `type` of hello messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum HelloTag {
    /// `hello`.
    Hello,
}

/// The middleware's answer to the proxy hello: who it is and what it wants to see.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MiddlewareHello {
    /// Must be exactly `hello`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Friendly name for Activity and logs; empty = none.
    #[serde(default)]
    pub name: String,
    /// Lowest protocol version the middleware speaks (0 with `max_version` 0 = legacy `[1,1]`).
    #[serde(default)]
    pub min_version: i64,
    /// Highest protocol version the middleware speaks.
    #[serde(default)]
    pub max_version: i64,
    /// Hook points with their filters; each entry is one cascade step.
    #[serde(default)]
    pub hooks: Vec<HookSpec>,
    /// Largest body the middleware wants to see; 0 or negative = no limit.
    #[serde(default)]
    pub max_body_bytes: i64,
}

/// One hook a middleware asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HookSpec {
    /// `http-request` or `http-response`; other values are accepted and never dispatched.
    #[serde(rename = "type")]
    pub kind: String,
    /// Which traffic the hook sees; absent = all of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<HookFilter>,
}

/// Hook filter: AND across keys, OR within one key; absent or empty = no constraint.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HookFilter {
    /// Globs on the request's Host (as sent, port included when the client sent one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host: Vec<String>,
    /// Unanchored regexes on the path (requests) or the raw request URI (responses).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub path: Vec<String>,
    /// Methods, compared case-insensitively.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub method: Vec<String>,
    /// Globs on the media type (parameters stripped).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content_type: Vec<String>,
    /// Globs on the client identity.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub container: Vec<String>,
    /// Only intercepted (`true`) or only plain-proxy (`false`) traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<bool>,
    /// Only (`true`) or never (`false`) traffic the LLM endpoint registry recognises.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm: Option<bool>,
}

/// Proxy → middleware: a request before it is forwarded. Every key is always present.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRequestMessage {
    /// Always `http-request`.
    #[serde(rename = "type")]
    pub kind: String,
    /// 32 lowercase hex characters, fresh per message.
    pub id: String,
    /// Host header / `:authority`.
    pub host: String,
    /// Method.
    pub method: String,
    /// Request target: origin-form when intercepted, absolute-form on the plain proxy path.
    pub uri: String,
    /// `HTTP/1.1`, `HTTP/1.0` or `HTTP/2.0`.
    pub proto: String,
    /// Current request headers, without `Host`.
    pub headers: WireHeaders,
    /// Current body; `null` when over the size limit.
    #[serde(with = "b64")]
    pub body: Option<Vec<u8>>,
    /// Client identity; empty if unknown.
    pub container: String,
    /// True when the request came through the MITM pipeline.
    pub tls: bool,
}

/// Proxy → middleware: a response before the client sees it. Every key is always present.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpResponseMessage {
    /// Always `http-response`.
    #[serde(rename = "type")]
    pub kind: String,
    /// 32 lowercase hex characters, fresh per message (unrelated to the request's).
    pub id: String,
    /// As in the request message.
    pub host: String,
    /// As in the request message.
    pub method: String,
    /// As in the request message.
    pub uri: String,
    /// Current status.
    pub status_code: u16,
    /// Request headers.
    pub request_headers: WireHeaders,
    /// Request body; `null` when over the limit or not kept.
    #[serde(with = "b64")]
    pub request_body: Option<Vec<u8>>,
    /// Current response headers (still naming the origin's `Content-Encoding`).
    pub response_headers: WireHeaders,
    /// Current response body, decompressed; `null` when over the limit (measured compressed).
    #[serde(with = "b64")]
    pub response_body: Option<Vec<u8>>,
    /// Client identity.
    pub container: String,
    /// Upstream round trip in milliseconds.
    pub duration_ms: i64,
}

/// Middleware → proxy: what to do with the message of the same `id`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Decision {
    /// Conventionally `decision`; never checked.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// The message id this answers.
    #[serde(default)]
    pub id: String,
    /// `allow`, `deny`, `rewrite`, `passthrough` or `block` (case-sensitive); anything else
    /// is kept as sent.
    #[serde(default)]
    pub action: DecisionAction,
    /// Deny/block status; response rewrite status (0 = keep).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub status_code: i64,
    /// Deny/block body or rewrite body; `None` = none supplied, `Some(empty)` = empty body.
    #[serde(default, with = "b64", skip_serializing_if = "Option::is_none")]
    pub body: Option<Vec<u8>>,
    /// Rewrite: headers to replace; an empty list (or `null`) removes the header.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, Vec<String>>,
    /// Free-form metadata shown in Activity.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub tags: Map<String, Value>,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// The `action` of a middleware's [`Decision`]. Middlewares are third-party programs: a name
/// outside the protocol (or none) is kept as sent, in [`DecisionAction::Other`], for the
/// proxy to log and treat as `allow` (requests) or `passthrough` (responses), as greyproxy
/// does.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DecisionAction {
    /// Let the request through unchanged.
    Allow,
    /// Refuse the request (403 unless the decision gives a status).
    Deny,
    /// Replace headers, body or (responses) status.
    Rewrite,
    /// Let the response through unchanged.
    Passthrough,
    /// Refuse the response (502 unless the decision gives a status).
    Block,
    /// Any other string, as sent (`""` when the decision had no action).
    Other(String),
}

impl DecisionAction {
    /// The names the protocol defines.
    pub const NAMES: &'static [&'static str] =
        &["allow", "deny", "rewrite", "passthrough", "block"];

    /// The name as on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            DecisionAction::Allow => "allow",
            DecisionAction::Deny => "deny",
            DecisionAction::Rewrite => "rewrite",
            DecisionAction::Passthrough => "passthrough",
            DecisionAction::Block => "block",
            DecisionAction::Other(s) => s,
        }
    }

    /// The action for `s`, matched case-sensitively; never fails.
    pub fn parse(s: &str) -> DecisionAction {
        match s {
            "allow" => DecisionAction::Allow,
            "deny" => DecisionAction::Deny,
            "rewrite" => DecisionAction::Rewrite,
            "passthrough" => DecisionAction::Passthrough,
            "block" => DecisionAction::Block,
            other => DecisionAction::Other(other.to_string()),
        }
    }

    /// True for one of the names the protocol defines.
    pub fn is_known(&self) -> bool {
        !matches!(self, DecisionAction::Other(_))
    }
}

impl Default for DecisionAction {
    /// No action given: [`DecisionAction::Other`] with an empty string.
    fn default() -> Self {
        DecisionAction::Other(String::new())
    }
}

impl std::fmt::Display for DecisionAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for DecisionAction {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for DecisionAction {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| DecisionAction::parse(&s))
    }
}

wire_names! {
    /// A middleware decision as recorded on a transaction ([`MiddlewareEvent::action`]): the
    /// decisions worth a row. The default is the mildest, `tagged-allow`.
    #[derive(Default)]
    pub enum EventAction ("middleware event action") {
        /// A request step refused the request.
        Deny = "deny",
        /// A response step refused the response.
        Block = "block",
        /// A step rewrote the message.
        Rewrite = "rewrite",
        /// A request step allowed the request and attached tags.
        #[default]
        TaggedAllow = "tagged-allow",
        /// A response step passed the response through and attached tags.
        TaggedPassthrough = "tagged-passthrough",
    }
}

wire_names! {
    /// What the proxy decides on a middleware's behalf while it is unavailable (timed out,
    /// disconnected, not ready): its `on_disconnect` policy. The default fails closed.
    #[derive(Default)]
    pub enum OnDisconnect ("on_disconnect") {
        /// Fail open: requests are allowed, responses passed through.
        Allow = "allow",
        /// Fail closed: requests are denied (403), responses blocked (502).
        #[default]
        Deny = "deny",
    }
}

impl OnDisconnect {
    /// The policy a configured value selects, as greyproxy reads it: exactly `allow` fails
    /// open, anything else (`Allow` included) fails closed.
    pub fn from_config(s: &str) -> OnDisconnect {
        if s == "allow" {
            OnDisconnect::Allow
        } else {
            OnDisconnect::Deny
        }
    }
}

/// Why a middleware message could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(String);

impl MiddlewareHello {
    /// Decodes a hello leniently (see the module docs). The `type` is not checked here.
    pub fn decode(bytes: &[u8]) -> Result<MiddlewareHello, DecodeError> {
        let mut v: Value = serde_json::from_slice(bytes).map_err(|e| DecodeError(e.to_string()))?;
        fold_object(&mut v);
        if let Some(Value::Array(hooks)) = v.get_mut("hooks") {
            for h in hooks.iter_mut() {
                fold_object(h);
                if let Some(f) = h.get_mut("filters") {
                    fold_object(f);
                }
            }
        }
        serde_json::from_value(v).map_err(|e| DecodeError(e.to_string()))
    }
}

impl Decision {
    /// Decodes a decision leniently (see the module docs).
    pub fn decode(bytes: &[u8]) -> Result<Decision, DecodeError> {
        let mut v: Value = serde_json::from_slice(bytes).map_err(|e| DecodeError(e.to_string()))?;
        fold_object(&mut v);
        // A header set to `null` is an empty list: it removes the header.
        if let Some(Value::Object(h)) = v.get_mut("headers") {
            for val in h.values_mut() {
                if val.is_null() {
                    *val = Value::Array(Vec::new());
                }
            }
        }
        serde_json::from_value(v).map_err(|e| DecodeError(e.to_string()))
    }
}

/// Go decodes struct fields case-insensitively and treats `null` as the zero value: lower-case
/// the keys of one object level and drop `null` members so serde's defaults apply. Map-valued
/// fields (`headers`, `tags`) are not folded: their keys are data. As in Go, of two keys that
/// fold to the same field the later one wins.
fn fold_object(v: &mut Value) {
    let Value::Object(obj) = v else { return };
    let old = std::mem::take(obj);
    for (k, val) in old {
        if val.is_null() {
            obj.remove(&k.to_lowercase());
            continue;
        }
        obj.insert(k.to_lowercase(), val);
    }
}

/// Decodes standard base64 with padding, ignoring CR and LF as Go does.
pub fn decode_b64(s: &str) -> Result<Vec<u8>, base64::DecodeError> {
    if s.contains(['\r', '\n']) {
        let clean: String = s.chars().filter(|c| *c != '\r' && *c != '\n').collect();
        base64::engine::general_purpose::STANDARD.decode(clean)
    } else {
        base64::engine::general_purpose::STANDARD.decode(s)
    }
}

/// serde for `Option<Vec<u8>>` as `null` or a standard-base64 string.
pub mod b64 {
    use super::*;

    /// Serialises `None` as `null`, bytes as standard base64.
    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            None => s.serialize_none(),
            Some(b) => s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(b)),
        }
    }

    /// Accepts `null` or a standard-base64 string (padding required).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        match s {
            None => Ok(None),
            Some(s) => decode_b64(&s)
                .map(Some)
                .map_err(|e| serde::de::Error::custom(format!("body is not base64: {e}"))),
        }
    }
}

/// Why no protocol version could be agreed with a middleware.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VersionError {
    /// `min` below 1, or `max` below `min`.
    #[error("middleware declared invalid version range [{min},{max}]")]
    InvalidRange {
        /// Declared lowest version.
        min: i64,
        /// Declared highest version.
        max: i64,
    },
    /// The middleware needs a newer protocol than the proxy speaks.
    #[error("middleware requires protocol v>={min}; proxy only speaks up to v{proxy}")]
    TooNew {
        /// Declared lowest version.
        min: i64,
        /// The proxy's highest version.
        proxy: i64,
    },
}

/// Agrees on a protocol version with a middleware declaring `[min, max]` (greyproxy's exact
/// algorithm: both absent = legacy `[1,1]`; one bound alone is an invalid range).
pub fn negotiate_version(min: i64, max: i64) -> Result<u32, VersionError> {
    let proxy = i64::from(MIDDLEWARE_PROTOCOL_VERSION);
    let (min, max) = if min == 0 && max == 0 {
        (1, 1)
    } else {
        (min, max)
    };
    if min < 1 || max < min {
        return Err(VersionError::InvalidRange { min, max });
    }
    if min > proxy {
        return Err(VersionError::TooNew { min, proxy });
    }
    Ok(proxy.min(max) as u32)
}

/// A middleware as `list_middlewares` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MiddlewareStatus {
    /// Endpoint: the WebSocket URL, or `stdio:` + the program.
    pub url: String,
    /// `ws` or `stdio`.
    pub kind: String,
    /// stdio: the full argv.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Name from the latest hello.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// A transport is up (from dial/spawn until it ends, handshake included).
    pub connected: bool,
    /// The latest handshake succeeded and the connection is still up.
    #[serde(default)]
    pub ready: bool,
    /// Agreed protocol version of the latest handshake.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub protocol_version: u32,
    /// Hook types from the latest hello.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<String>,
    /// From the latest hello.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_body_bytes: i64,
    /// Effective per-message timeout.
    pub timeout_ms: u64,
    /// Effective policy when the middleware is unavailable: `allow` or `deny`.
    pub on_disconnect: OnDisconnect,
    /// Why the latest connection attempt or connection ended, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Connections established so far (a respawn or reconnect adds one).
    #[serde(default)]
    pub connects: u64,
    /// stdio: process id of the running child (also its process group id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

/// One middleware decision recorded on a transaction (greyproxy's middleware event).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MiddlewareEvent {
    /// Position among the steps that matched, from 0, separately for requests and responses.
    pub sequence: u32,
    /// Name from the middleware's hello.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub middleware_name: String,
    /// WebSocket URL; empty for stdio middlewares.
    #[serde(default)]
    pub middleware_url: String,
    /// `http-request`, `http-response`, `mitm-request` or `mitm-response`.
    pub hook: String,
    /// `deny`, `block`, `rewrite`, `tagged-allow` or `tagged-passthrough`.
    pub action: EventAction,
    /// Decision status (deny/block/rewrite).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub status_code: i64,
    /// Names of the headers the step changed (values are never stored).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers_changed: Vec<String>,
    /// The step replaced the body with different bytes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub body_rewritten: bool,
    /// The decision's tags.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub tags: Map<String, Value>,
    /// Time spent waiting for the decision.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub duration_ms: u64,
    /// Why the proxy decided on the middleware's behalf (`timeout`, `disconnected`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    /// When, RFC 3339 UTC.
    pub created_at: String,
}

fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
