//! Broadcast events: a typed [`Event`] (what happened) and the wire [`EventEnvelope`]
//! `{"type":…,"data":…,"seq":N,"timestamp":…}`. `seq` grows by one per published event, so a
//! client can see that it missed some and resync with list commands.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::credentials::{
    CredentialDeleted, CredentialInfo, SessionEnded, SessionInfo, SubstitutionCounts,
};
use crate::llm::{ConversationSummary, EndpointProposal, EndpointRule, LlmCall};
use crate::model::{AllowAllStatus, PendingRequest, RequestLog, Rule, Transaction};

/// `data` of `pending_request.allowed` and `pending_request.dismissed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingDecided {
    /// The pending request that was decided.
    pub pending_id: u64,
    /// The rule that decided it (absent for a plain dismiss).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<Rule>,
}

/// `data` of `waiters.changed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitersChanged {
    /// Client identity.
    pub container_name: String,
    /// Raw destination host.
    pub host: String,
    /// Destination port.
    pub port: u16,
    /// Held connections before.
    pub previous_count: u64,
    /// Held connections now.
    pub current_count: u64,
    /// The pending request these connections wait on, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_id: Option<u64>,
}

/// `data` of `notification.claims_changed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimsChanged {
    /// Claims held now.
    pub active_claims: u64,
}

/// `data` of `rule.deleted`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleDeleted {
    /// The id the rule had.
    pub rule_id: u64,
}

/// Every event type of protocol version 1 this crate knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
// Wire types: built once per message and serialised at once, so the size difference
// between variants costs nothing worth an extra allocation.
#[allow(clippy::large_enum_variant)]
#[serde(tag = "type", content = "data")]
#[non_exhaustive]
pub enum Event {
    /// A connection with no deciding rule created a new pending request.
    #[serde(rename = "pending_request.created")]
    PendingCreated(PendingRequest),
    /// A pending request changed (another attempt, waiting count, resolved name).
    #[serde(rename = "pending_request.updated")]
    PendingUpdated(PendingRequest),
    /// A pending request was allowed (by `allow`, or by a rule that now decides it).
    #[serde(rename = "pending_request.allowed")]
    PendingAllowed(PendingDecided),
    /// A pending request was dismissed or denied.
    #[serde(rename = "pending_request.dismissed")]
    PendingDismissed(PendingDecided),
    /// The number of connections held for a destination changed.
    #[serde(rename = "waiters.changed")]
    WaitersChanged(WaitersChanged),
    /// Silent mode changed.
    #[serde(rename = "allowall.changed")]
    AllowAllChanged(AllowAllStatus),
    /// The number of notification claims changed.
    #[serde(rename = "notification.claims_changed")]
    ClaimsChanged(ClaimsChanged),
    /// A rule was created.
    #[serde(rename = "rule.created")]
    RuleCreated(Rule),
    /// A rule was changed.
    #[serde(rename = "rule.updated")]
    RuleUpdated(Rule),
    /// A rule was deleted.
    #[serde(rename = "rule.deleted")]
    RuleDeleted(RuleDeleted),
    /// A connection decision was recorded (the activity feed's `connection` rows).
    #[serde(rename = "request_log.new")]
    RequestLogNew(RequestLog),
    /// An HTTP exchange or WebSocket message was recorded (without bodies).
    #[serde(rename = "transaction.new")]
    TransactionNew(Transaction),
    /// A recorded transaction changed (a WebSocket upgrade row completed at close).
    #[serde(rename = "transaction.updated")]
    TransactionUpdated(Transaction),
    /// An LLM call was dissected and recorded.
    #[serde(rename = "llm_call.new")]
    LlmCallNew(LlmCall),
    /// A conversation changed (a call was added); carries the summary with its totals.
    #[serde(rename = "conversation.updated")]
    ConversationUpdated(ConversationUpdated),
    /// An endpoint rule was created over `/ws`.
    #[serde(rename = "endpoint_rule.created")]
    EndpointRuleCreated(EndpointRule),
    /// An endpoint rule was changed.
    #[serde(rename = "endpoint_rule.updated")]
    EndpointRuleUpdated(EndpointRule),
    /// An endpoint rule was deleted.
    #[serde(rename = "endpoint_rule.deleted")]
    EndpointRuleDeleted(EndpointRuleDeleted),
    /// An unknown host received what looks like a chat API call: a rule the operator may create.
    #[serde(rename = "endpoint_rule.proposed")]
    EndpointRuleProposed(EndpointProposal),
    /// Progress of a maintenance job (`rebuild_conversations`).
    #[serde(rename = "maintenance.progress")]
    MaintenanceProgress(MaintenanceProgress),
    /// A credential was created (never with its secret).
    #[serde(rename = "credential.created")]
    CredentialCreated(CredentialInfo),
    /// A credential was changed (rotated, rebound).
    #[serde(rename = "credential.updated")]
    CredentialUpdated(CredentialInfo),
    /// A credential was deleted.
    #[serde(rename = "credential.deleted")]
    CredentialDeleted(CredentialDeleted),
    /// Substitution counters changed (at most once a second, only the changed lines).
    #[serde(rename = "credential.substitutions")]
    CredentialSubstitutions(SubstitutionCounts),
    /// A launcher session was registered (or registered again).
    #[serde(rename = "session.created")]
    SessionCreated(SessionInfo),
    /// A session went past its TTL without a heartbeat and was removed.
    #[serde(rename = "session.expired")]
    SessionExpired(SessionEnded),
    /// A session was deleted (by `delete_session` or a refusal that ended it).
    #[serde(rename = "session.deleted")]
    SessionDeleted(SessionEnded),
}

/// Payload of `conversation.updated`: greyproxy's `{"conversation_id": …}` (its clients then
/// refetch) plus the whole summary, so ours need not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationUpdated {
    /// The conversation's id (the same as `summary.id`).
    pub conversation_id: String,
    /// Its summary after the change.
    #[serde(flatten)]
    pub summary: ConversationSummary,
}

impl From<ConversationSummary> for ConversationUpdated {
    fn from(summary: ConversationSummary) -> Self {
        ConversationUpdated {
            conversation_id: summary.id.clone(),
            summary,
        }
    }
}

/// Payload of `endpoint_rule.deleted`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRuleDeleted {
    /// The deleted rule's id.
    pub rule_id: u64,
}

/// Payload of `maintenance.progress`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceProgress {
    /// `rebuild_conversations`.
    pub job: String,
    /// Transactions looked at so far.
    pub done: u64,
    /// Transactions to look at.
    pub total: u64,
    /// LLM calls recorded so far.
    pub calls: u64,
    /// The job is over.
    pub finished: bool,
}

/// Every event type name, for validating `subscribe`.
pub const EVENT_TYPES: &[&str] = &[
    "pending_request.created",
    "pending_request.updated",
    "pending_request.allowed",
    "pending_request.dismissed",
    "waiters.changed",
    "allowall.changed",
    "notification.claims_changed",
    "rule.created",
    "rule.updated",
    "rule.deleted",
    "request_log.new",
    "transaction.new",
    "transaction.updated",
    "llm_call.new",
    "conversation.updated",
    "endpoint_rule.created",
    "endpoint_rule.updated",
    "endpoint_rule.deleted",
    "endpoint_rule.proposed",
    "maintenance.progress",
    "credential.created",
    "credential.updated",
    "credential.deleted",
    "credential.substitutions",
    "session.created",
    "session.expired",
    "session.deleted",
];

impl Event {
    /// The wire type of this event.
    pub fn event_type(&self) -> &'static str {
        match self {
            Event::PendingCreated(_) => "pending_request.created",
            Event::PendingUpdated(_) => "pending_request.updated",
            Event::PendingAllowed(_) => "pending_request.allowed",
            Event::PendingDismissed(_) => "pending_request.dismissed",
            Event::WaitersChanged(_) => "waiters.changed",
            Event::AllowAllChanged(_) => "allowall.changed",
            Event::ClaimsChanged(_) => "notification.claims_changed",
            Event::RuleCreated(_) => "rule.created",
            Event::RuleUpdated(_) => "rule.updated",
            Event::RuleDeleted(_) => "rule.deleted",
            Event::RequestLogNew(_) => "request_log.new",
            Event::TransactionNew(_) => "transaction.new",
            Event::TransactionUpdated(_) => "transaction.updated",
            Event::LlmCallNew(_) => "llm_call.new",
            Event::ConversationUpdated(_) => "conversation.updated",
            Event::EndpointRuleCreated(_) => "endpoint_rule.created",
            Event::EndpointRuleUpdated(_) => "endpoint_rule.updated",
            Event::EndpointRuleDeleted(_) => "endpoint_rule.deleted",
            Event::EndpointRuleProposed(_) => "endpoint_rule.proposed",
            Event::MaintenanceProgress(_) => "maintenance.progress",
            Event::CredentialCreated(_) => "credential.created",
            Event::CredentialUpdated(_) => "credential.updated",
            Event::CredentialDeleted(_) => "credential.deleted",
            Event::CredentialSubstitutions(_) => "credential.substitutions",
            Event::SessionCreated(_) => "session.created",
            Event::SessionExpired(_) => "session.expired",
            Event::SessionDeleted(_) => "session.deleted",
        }
    }
}

/// An event as sent on the wire. `data` stays raw so that event types newer than this crate
/// still decode; [`EventEnvelope::event`] gives the typed form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventEnvelope {
    /// Event type, e.g. `pending_request.created`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Payload.
    pub data: Value,
    /// Sequence number, +1 per published event.
    pub seq: u64,
    /// RFC 3339 UTC.
    pub timestamp: String,
}

impl EventEnvelope {
    /// Wraps a typed event.
    pub fn new(event: &Event, seq: u64, timestamp: String) -> EventEnvelope {
        let data = match serde_json::to_value(event) {
            Ok(Value::Object(mut o)) => o.remove("data").unwrap_or(Value::Null),
            _ => Value::Null,
        };
        EventEnvelope {
            event_type: event.event_type().to_string(),
            data,
            seq,
            timestamp,
        }
    }

    /// The typed event, or `None` for a type this crate does not know or a malformed payload.
    pub fn event(&self) -> Option<Event> {
        let v = serde_json::json!({"type": self.event_type, "data": self.data});
        serde_json::from_value(v).ok()
    }
}
