//! Direct answers of the daemon, tagged by `type`, and the decoder for everything a client
//! receives ([`ServerMessage`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::command::RequestId;
use crate::event::EventEnvelope;

/// `data` of a `lagged` message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lagged {
    /// Events this client did not receive; resync with the list commands.
    pub missed: u64,
}

/// A direct answer (never filtered by subscriptions). `timestamp` is RFC 3339 UTC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reply {
    /// The greeting sent once after a successful upgrade.
    Connected {
        /// Always `Connected to proxy event stream`.
        message: String,
        /// When.
        timestamp: String,
        /// Control protocol version.
        protocol_version: u32,
        /// Daemon version.
        server_version: String,
    },
    /// Answer to `ping`.
    Pong {
        /// When.
        timestamp: String,
        /// Echoed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<RequestId>,
    },
    /// A mutation succeeded.
    CommandSuccess {
        /// The command's name.
        command: String,
        /// For `allow`/`deny`/`dismiss`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pending_id: Option<u64>,
        /// The rule created or reused (`allow`, `deny`, rule commands).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rule_id: Option<u64>,
        /// Claim count after `release_notifications`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        active_claims: Option<u64>,
        /// When.
        timestamp: String,
        /// Echoed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<RequestId>,
    },
    /// Answer to `subscribe`.
    Subscribed {
        /// The type added to the filter.
        event_type: String,
        /// When.
        timestamp: String,
        /// Echoed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<RequestId>,
    },
    /// Answer to `unsubscribe`.
    Unsubscribed {
        /// The type removed from the filter.
        event_type: String,
        /// When.
        timestamp: String,
        /// Echoed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<RequestId>,
    },
    /// Answer to `claim_notifications`.
    NotificationClaimed {
        /// Claims held now, across all connections.
        active_claims: u64,
        /// When.
        timestamp: String,
        /// Echoed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<RequestId>,
    },
    /// Answer of a query command.
    Result {
        /// The command's name.
        command: String,
        /// Echoed (`null` when the client sent none).
        request_id: Option<RequestId>,
        /// The command's result.
        data: Value,
        /// When.
        timestamp: String,
    },
    /// The command failed; nothing changed.
    Error {
        /// Human-readable reason.
        error: String,
        /// When.
        timestamp: String,
        /// Echoed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<RequestId>,
    },
    /// This client's queue overflowed; `missed` events were dropped for it.
    Lagged {
        /// How many.
        data: Lagged,
    },
}

/// Anything the daemon sends: a reply or a broadcast event.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ServerMessage {
    /// A direct reply.
    Reply(Reply),
    /// A broadcast event.
    Event(EventEnvelope),
}

impl ServerMessage {
    /// Decodes one frame. Events are recognised by their `seq` field, so event types this crate
    /// does not know yet still decode (as raw envelopes).
    pub fn decode(text: &str) -> Result<ServerMessage, serde_json::Error> {
        let v: Value = serde_json::from_str(text)?;
        if v.get("seq").is_some() {
            Ok(ServerMessage::Event(serde_json::from_value(v)?))
        } else {
            Ok(ServerMessage::Reply(serde_json::from_value(v)?))
        }
    }
}
