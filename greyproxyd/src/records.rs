//! The daemon's own records of rules, pending requests and connection decisions, as stored in
//! redb and held in memory. Times are Unix seconds; [`greyproxy_protocol`] types are derived
//! from these for the wire.

use greyproxy_protocol::{
    Action, Decision, MitmOutcome, PendingRequest, RequestLog, Rule, RuleSource, RuleType,
};
use serde::{Deserialize, Serialize};

use crate::time::rfc3339;

/// A policy rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleRecord {
    /// Monotonic id.
    pub id: u64,
    /// Glob over the container name.
    pub container_pattern: String,
    /// `*`, host, `*.base`, `**.base` or CIDR.
    pub destination_pattern: String,
    /// `*`, port, range or list.
    pub port_pattern: String,
    /// Allow or deny.
    pub action: Action,
    /// Informational.
    pub rule_type: RuleType,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds; `None` = never expires.
    pub expires_at: Option<u64>,
    /// Unix seconds of the last decision this rule made.
    pub last_used_at: Option<u64>,
    /// `admin`, `builtin`, `session:<id>`.
    pub created_by: String,
    /// Free text.
    pub notes: Option<String>,
    /// Session the rule belongs to.
    pub session_id: Option<String>,
}

impl RuleRecord {
    /// True while the rule has no expiry or its expiry is in the future.
    pub fn is_active(&self, now: u64) -> bool {
        self.expires_at.is_none_or(|e| e > now)
    }

    /// Layer of the rule.
    pub fn source(&self) -> RuleSource {
        if self.created_by == "builtin" {
            RuleSource::Builtin
        } else if self.session_id.as_deref().is_some_and(|s| !s.is_empty()) {
            RuleSource::Session
        } else {
            RuleSource::Global
        }
    }

    /// `container → destination:port`, as the activity feed shows it.
    pub fn summary(&self) -> String {
        format!(
            "{} → {}:{}",
            self.container_pattern, self.destination_pattern, self.port_pattern
        )
    }

    /// The wire form.
    pub fn to_wire(&self, now: u64) -> Rule {
        Rule {
            id: self.id,
            container_pattern: self.container_pattern.clone(),
            destination_pattern: self.destination_pattern.clone(),
            port_pattern: self.port_pattern.clone(),
            rule_type: self.rule_type,
            action: self.action,
            created_at: rfc3339(self.created_at),
            expires_at: self.expires_at.map(rfc3339),
            last_used_at: self.last_used_at.map(rfc3339),
            created_by: self.created_by.clone(),
            notes: self.notes.clone(),
            is_active: self.is_active(now),
            session_id: self.session_id.clone(),
            source: self.source(),
        }
    }
}

/// A destination waiting for a decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRecord {
    /// Monotonic id.
    pub id: u64,
    /// Client identity.
    pub container_name: String,
    /// Container id when known.
    pub container_id: String,
    /// Destination as asked (hostname or IP literal).
    pub destination_host: String,
    /// Destination port.
    pub destination_port: u16,
    /// Hostname learnt for an IP destination.
    pub resolved_hostname: Option<String>,
    /// Unix seconds.
    pub first_seen: u64,
    /// Unix seconds.
    pub last_seen: u64,
    /// Attempts folded into this row.
    pub attempt_count: u64,
}

impl PendingRecord {
    /// Resolved hostname if known, else the destination host.
    pub fn display_host(&self) -> &str {
        self.resolved_hostname
            .as_deref()
            .filter(|h| !h.is_empty())
            .unwrap_or(&self.destination_host)
    }

    /// The wire form, with the live number of held connections.
    pub fn to_wire(&self, waiting_count: u64) -> PendingRequest {
        PendingRequest {
            id: self.id,
            container_name: self.container_name.clone(),
            container_id: self.container_id.clone(),
            destination_host: self.destination_host.clone(),
            destination_port: self.destination_port,
            resolved_hostname: self.resolved_hostname.clone(),
            first_seen: rfc3339(self.first_seen),
            last_seen: rfc3339(self.last_seen),
            attempt_count: self.attempt_count,
            waiting_count,
        }
    }
}

/// One connection decision (`request_logs` row).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestLogRecord {
    /// Monotonic id (assigned by the store when written).
    pub id: u64,
    /// Unix seconds of the decision.
    pub timestamp: u64,
    /// Client identity.
    pub container_name: String,
    /// Container id when known.
    pub container_id: Option<String>,
    /// Destination as asked.
    pub destination_host: String,
    /// Destination port.
    pub destination_port: u16,
    /// Hostname learnt for an IP destination.
    pub resolved_hostname: Option<String>,
    /// Front end: `HTTP` or `SOCKS5`.
    pub method: String,
    /// Allowed or blocked.
    pub result: Decision,
    /// Deciding rule.
    pub rule_id: Option<u64>,
    /// Summary of the deciding rule at decision time.
    pub rule_summary: Option<String>,
    /// Arrival to decision, including any hold.
    pub response_time_ms: u64,
    /// `rule`, `allow_all`, `hold_timeout`, `dismissed`, `client_gone`, `shutdown`.
    pub reason: String,
    /// Interception outcome of an allowed tunnel (see the wire type).
    #[serde(default)]
    pub mitm: Option<MitmOutcome>,
}

impl RequestLogRecord {
    /// The wire form.
    pub fn to_wire(&self) -> RequestLog {
        RequestLog {
            id: self.id,
            timestamp: rfc3339(self.timestamp),
            container_name: self.container_name.clone(),
            container_id: self.container_id.clone(),
            destination_host: self.destination_host.clone(),
            destination_port: Some(self.destination_port),
            resolved_hostname: self.resolved_hostname.clone(),
            method: Some(self.method.clone()),
            result: self.result,
            rule_id: self.rule_id,
            response_time_ms: Some(self.response_time_ms),
            reason: Some(self.reason.clone()),
            rule_summary: self.rule_summary.clone(),
            mitm: self.mitm,
        }
    }
}
