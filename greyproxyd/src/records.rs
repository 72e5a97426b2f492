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
pub(crate) struct RuleRecord {
    /// Monotonic id.
    pub(crate) id: u64,
    /// Glob over the container name.
    pub(crate) container_pattern: String,
    /// `*`, host, `*.base`, `**.base` or CIDR.
    pub(crate) destination_pattern: String,
    /// `*`, port, range or list.
    pub(crate) port_pattern: String,
    /// Allow or deny.
    pub(crate) action: Action,
    /// Informational.
    pub(crate) rule_type: RuleType,
    /// Unix seconds.
    pub(crate) created_at: u64,
    /// Unix seconds; `None` = never expires.
    pub(crate) expires_at: Option<u64>,
    /// Unix seconds of the last decision this rule made.
    pub(crate) last_used_at: Option<u64>,
    /// `admin`, `builtin`, `session:<id>`.
    pub(crate) created_by: String,
    /// Free text.
    pub(crate) notes: Option<String>,
    /// Session the rule belongs to.
    pub(crate) session_id: Option<String>,
}

impl RuleRecord {
    /// True while the rule has no expiry or its expiry is in the future.
    pub(crate) fn is_active(&self, now: u64) -> bool {
        self.expires_at.is_none_or(|e| e > now)
    }

    /// Layer of the rule.
    pub(crate) fn source(&self) -> RuleSource {
        if self.created_by == "builtin" {
            RuleSource::Builtin
        } else if self.session_id.as_deref().is_some_and(|s| !s.is_empty()) {
            RuleSource::Session
        } else {
            RuleSource::Global
        }
    }

    /// `container → destination:port`, as the activity feed shows it.
    pub(crate) fn summary(&self) -> String {
        format!(
            "{} → {}:{}",
            self.container_pattern, self.destination_pattern, self.port_pattern
        )
    }

    /// The wire form.
    pub(crate) fn to_wire(&self, now: u64) -> Rule {
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
pub(crate) struct PendingRecord {
    /// Monotonic id.
    pub(crate) id: u64,
    /// Client identity.
    pub(crate) container_name: String,
    /// Container id when known.
    pub(crate) container_id: String,
    /// Destination as asked (hostname or IP literal).
    pub(crate) destination_host: String,
    /// Destination port.
    pub(crate) destination_port: u16,
    /// Hostname learnt for an IP destination.
    pub(crate) resolved_hostname: Option<String>,
    /// Unix seconds.
    pub(crate) first_seen: u64,
    /// Unix seconds.
    pub(crate) last_seen: u64,
    /// Attempts folded into this row.
    pub(crate) attempt_count: u64,
    /// The tool call that asked for it, when an LLM call of the same container ended with
    /// one shortly before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) llm_context: Option<greyproxy_protocol::llm::LlmContext>,
}

impl PendingRecord {
    /// Resolved hostname if known, else the destination host.
    pub(crate) fn display_host(&self) -> &str {
        self.resolved_hostname
            .as_deref()
            .filter(|h| !h.is_empty())
            .unwrap_or(&self.destination_host)
    }

    /// The wire form, with the live number of held connections.
    pub(crate) fn to_wire(&self, waiting_count: u64) -> PendingRequest {
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
            llm_context: self.llm_context.clone(),
            kind: greyproxy_protocol::PendingKind::Connection,
            credential: None,
        }
    }
}

/// One connection decision (`request_logs` row).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RequestLogRecord {
    /// Monotonic id (assigned by the store when written).
    pub(crate) id: u64,
    /// Unix seconds of the decision.
    pub(crate) timestamp: u64,
    /// Client identity.
    pub(crate) container_name: String,
    /// Container id when known.
    pub(crate) container_id: Option<String>,
    /// Destination as asked.
    pub(crate) destination_host: String,
    /// Destination port.
    pub(crate) destination_port: u16,
    /// Hostname learnt for an IP destination.
    pub(crate) resolved_hostname: Option<String>,
    /// Front end: `HTTP` or `SOCKS5`.
    pub(crate) method: String,
    /// Allowed or blocked.
    pub(crate) result: Decision,
    /// Deciding rule.
    pub(crate) rule_id: Option<u64>,
    /// Summary of the deciding rule at decision time.
    pub(crate) rule_summary: Option<String>,
    /// Arrival to decision, including any hold.
    pub(crate) response_time_ms: u64,
    /// `rule`, `allow_all`, `hold_timeout`, `dismissed`, `client_gone`, `shutdown`.
    pub(crate) reason: String,
    /// Interception outcome of an allowed tunnel (see the wire type).
    #[serde(default)]
    pub(crate) mitm: Option<MitmOutcome>,
}

impl RequestLogRecord {
    /// The wire form.
    pub(crate) fn to_wire(&self) -> RequestLog {
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
