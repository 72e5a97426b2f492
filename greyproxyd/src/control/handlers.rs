//! Command handlers: one decoded command in, one reply out. Mutations are committed before the
//! reply is built (the policy engine guarantees it).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use greyproxy_protocol::event::EVENT_TYPES;
use greyproxy_protocol::{
    AllowAllMode, ClientMessage, Command, CommandError, Listeners, PROTOCOL_VERSION, Reply,
    RequestId, Status,
};
use serde::Serialize;

use greyproxy_protocol::credentials::{CredentialDecision, DecideCredentialArgs};

use super::claims::{ClaimGuard, Claims};
use super::credentials as creds;
use crate::policy::Policy;
use crate::policy::duration::parse_allow_all_duration;
use crate::store::Store;
use crate::time::now_rfc3339;

/// Per-connection state the handlers change.
#[derive(Debug, Default)]
pub(crate) struct SessionState {
    /// `None` = every event; `Some(set)` = only these types (greyproxy semantics).
    pub(crate) filter: Option<HashSet<String>>,
    /// This connection's notification claim.
    pub(crate) claim: Option<ClaimGuard>,
}

impl SessionState {
    /// Whether an event of this type passes the filter.
    pub(crate) fn wants(&self, event_type: &str) -> bool {
        self.filter.as_ref().is_none_or(|f| f.contains(event_type))
    }
}

/// Everything the handlers need; shared by all sessions.
#[derive(Debug)]
pub(crate) struct Handler {
    /// Policy engine.
    pub(crate) policy: Arc<Policy>,
    /// Notification claims.
    pub(crate) claims: Claims,
    /// Store (activity queries).
    pub(crate) store: Arc<Store>,
    /// Recording (its writer is flushed before activity queries).
    pub(crate) transactions: crate::store::Sink<greyproxy_protocol::Transaction>,
    /// When the daemon started.
    pub(crate) started: Instant,
    /// Bound addresses.
    pub(crate) listeners: Listeners,
    /// State directory, for `status`.
    pub(crate) state_dir: String,
    /// Server ping settings.
    pub(crate) heartbeat: super::session::Heartbeat,
    /// External middlewares, for `list_middlewares`.
    pub(crate) middlewares: Arc<crate::middleware::Middlewares>,
    /// The LLM layer's commands (`None` when it is off).
    pub(crate) llm: Option<Arc<super::llm::LlmHandles>>,
    /// Credentials, sessions and held secret egress.
    pub(crate) credentials: Arc<crate::credentials::service::Service>,
    /// The OTLP exporter, for `status` (`None` when not configured).
    pub(crate) exporter: Option<Arc<crate::export::Exporter>>,
}

fn error(e: impl std::fmt::Display, request_id: Option<RequestId>) -> Reply {
    Reply::Error {
        error: e.to_string(),
        timestamp: now_rfc3339(),
        request_id,
    }
}

fn success(
    command: &str,
    pending_id: Option<u64>,
    rule_id: Option<u64>,
    request_id: Option<RequestId>,
) -> Reply {
    Reply::CommandSuccess {
        command: command.into(),
        pending_id,
        rule_id,
        active_claims: None,
        timestamp: now_rfc3339(),
        request_id,
    }
}

fn reply<E: std::fmt::Display>(
    command: &str,
    r: Result<serde_json::Value, E>,
    request_id: Option<RequestId>,
) -> Reply {
    match r {
        Ok(v) => result(command, &v, request_id),
        Err(e) => error(e, request_id),
    }
}

fn result<T: Serialize>(command: &str, data: &T, request_id: Option<RequestId>) -> Reply {
    match serde_json::to_value(data) {
        Ok(data) => Reply::Result {
            command: command.into(),
            request_id,
            data,
            timestamp: now_rfc3339(),
        },
        Err(e) => error(format!("cannot encode result: {e}"), request_id),
    }
}

impl Handler {
    /// Runs one command for a session and returns the reply to send.
    pub(crate) async fn handle(&self, msg: ClientMessage, session: &mut SessionState) -> Reply {
        let rid = msg.request_id;
        let name = msg.command.name();
        match msg.command {
            Command::Ping => Reply::Pong {
                timestamp: now_rfc3339(),
                request_id: rid,
            },
            Command::Allow(a) | Command::Deny(a)
                if self.credentials.held(a.pending_id).is_some() =>
            {
                error(
                    format!(
                        "pending request {} is a held credential request: decide it with \
                         decide_credential (send_once, bind, send_unchanged, refuse)",
                        a.pending_id
                    ),
                    rid,
                )
            }
            Command::Allow(a) => match self.policy.allow(&a).await {
                Ok(r) => success(name, Some(a.pending_id), Some(r.id), rid),
                Err(e) => error(e, rid),
            },
            Command::Deny(a) => match self.policy.deny(&a).await {
                Ok(r) => success(name, Some(a.pending_id), Some(r.id), rid),
                Err(e) => error(e, rid),
            },
            Command::Dismiss(a) if self.credentials.held(a.pending_id).is_some() => {
                let d = DecideCredentialArgs {
                    pending_id: a.pending_id,
                    decision: CredentialDecision::Refuse,
                    scope: None,
                    duration: None,
                    reason: Some("dismissed".into()),
                    end_session: None,
                };
                match creds::decide(&self.credentials, d).await {
                    Ok(_) => success(name, Some(a.pending_id), None, rid),
                    Err(e) => error(e, rid),
                }
            }
            Command::Dismiss(a) => match self.policy.dismiss(a.pending_id).await {
                Ok(()) => success(name, Some(a.pending_id), None, rid),
                Err(e) => error(e, rid),
            },
            Command::Subscribe(a) => {
                let Some(t) = a.event_type.filter(|t| !t.is_empty()) else {
                    return error("event_type is required for subscribe", rid);
                };
                if !EVENT_TYPES.contains(&t.as_str()) {
                    return error(
                        format!(
                            "unknown event type: {t} (known: {})",
                            EVENT_TYPES.join(", ")
                        ),
                        rid,
                    );
                }
                session
                    .filter
                    .get_or_insert_with(HashSet::new)
                    .insert(t.clone());
                Reply::Subscribed {
                    event_type: t,
                    timestamp: now_rfc3339(),
                    request_id: rid,
                }
            }
            Command::Unsubscribe(a) => {
                let Some(t) = a.event_type.filter(|t| !t.is_empty()) else {
                    return error("event_type is required for unsubscribe", rid);
                };
                if let Some(f) = session.filter.as_mut() {
                    f.remove(&t);
                }
                Reply::Unsubscribed {
                    event_type: t,
                    timestamp: now_rfc3339(),
                    request_id: rid,
                }
            }
            Command::ClaimNotifications => {
                if session.claim.is_some() {
                    return error("notifications already claimed by this connection", rid);
                }
                let (guard, n) = self.claims.claim();
                session.claim = Some(guard);
                Reply::NotificationClaimed {
                    active_claims: n,
                    timestamp: now_rfc3339(),
                    request_id: rid,
                }
            }
            Command::ReleaseNotifications => {
                if session.claim.take().is_none() {
                    return error("notifications are not claimed by this connection", rid);
                }
                Reply::CommandSuccess {
                    command: name.into(),
                    pending_id: None,
                    rule_id: None,
                    active_claims: Some(self.claims.active()),
                    timestamp: now_rfc3339(),
                    request_id: rid,
                }
            }
            Command::Status => result(name, &self.status(), rid),
            Command::ListPending(a) => match self.policy.list_pending(&a) {
                Ok(mut p) => {
                    // Held credential requests come first, on the first page.
                    if a.cursor.is_none() {
                        let held = self
                            .credentials
                            .list_holds(a.container.as_deref(), a.destination.as_deref());
                        p.total += held.len() as u64;
                        p.items.splice(0..0, held);
                    }
                    result(name, &p, rid)
                }
                Err(e) => error(e, rid),
            },
            Command::CreateCredential(a) => {
                reply(name, creds::create(&self.credentials, a).await, rid)
            }
            Command::UpdateCredential(a) => {
                reply(name, creds::update(&self.credentials, a).await, rid)
            }
            Command::DeleteCredential(a) => {
                match self.credentials.delete_credential(&a.label).await {
                    Ok(()) => result(name, &serde_json::json!({"label": a.label}), rid),
                    Err(e) => error(e, rid),
                }
            }
            Command::ListCredentials => result(name, &self.credentials.list_credentials(), rid),
            Command::CreateSession(a) => {
                reply(name, creds::create_session(&self.credentials, a).await, rid)
            }
            Command::HeartbeatSession(a) => {
                match self.credentials.heartbeat_session(&a.session_id).await {
                    Ok(s) => result(name, &s, rid),
                    Err(e) => error(e, rid),
                }
            }
            Command::DeleteSession(a) => match self.credentials.delete_session(&a.session_id).await
            {
                Ok(()) => result(name, &serde_json::json!({"session_id": a.session_id}), rid),
                Err(e) => error(e, rid),
            },
            Command::ListSessions => result(name, &self.credentials.list_sessions(), rid),
            Command::DecideCredential(a) => {
                reply(name, creds::decide(&self.credentials, a).await, rid)
            }
            Command::ListRules(a) => match self.policy.list_rules(&a) {
                Ok(p) => result(name, &p, rid),
                Err(e) => error(e, rid),
            },
            Command::CreateRule(a) => match self.policy.create_rule(&a).await {
                Ok(r) => success(name, None, Some(r.id), rid),
                Err(e) => error(e, rid),
            },
            Command::UpdateRule(a) => match self.policy.update_rule(&a).await {
                Ok(r) => success(name, None, Some(r.id), rid),
                Err(e) => error(e, rid),
            },
            Command::DeleteRule(a) => match self.policy.delete_rule(a.rule_id).await {
                Ok(()) => success(name, None, Some(a.rule_id), rid),
                Err(e) => error(e, rid),
            },
            Command::GetAllowAll => result(name, &self.policy.allow_all_status(), rid),
            Command::SetAllowAll(a) => {
                let duration = match parse_allow_all_duration(a.duration.as_deref()) {
                    Ok(d) => d,
                    Err(e) => return error(e, rid),
                };
                let mode = a.mode.unwrap_or(AllowAllMode::Allow);
                match self.policy.set_allow_all(mode, duration).await {
                    Ok(s) => result(name, &s, rid),
                    Err(e) => error(e, rid),
                }
            }
            Command::ClearAllowAll => match self.policy.clear_allow_all().await {
                Ok(s) => result(name, &s, rid),
                Err(e) => error(e, rid),
            },
            Command::ListActivity(a) => match self.list_activity(a).await {
                Ok(p) => result(name, &p, rid),
                Err(e) => error(e, rid),
            },
            Command::GetTransaction(a) => match self.get_transaction(a.transaction_id).await {
                Ok(t) => result(name, &t, rid),
                Err(e) => error(e, rid),
            },
            Command::Export(a) => match self.export_page(a).await {
                Ok(p) => result(name, &p, rid),
                Err(e) => error(e, rid),
            },
            Command::ListMiddlewares => result(
                name,
                &serde_json::json!({ "middlewares": self.middlewares.statuses() }),
                rid,
            ),
            c @ (Command::ListLlmCalls(_)
            | Command::ListConversations(_)
            | Command::GetConversation(_)
            | Command::UsageSummary(_)
            | Command::ListEndpointRules
            | Command::CreateEndpointRule(_)
            | Command::UpdateEndpointRule(_)
            | Command::DeleteEndpointRule(_)
            | Command::RebuildConversations) => {
                let Some(llm) = &self.llm else {
                    return error("the LLM layer is off (llm.enabled = false)", rid);
                };
                let r = match c {
                    Command::ListLlmCalls(a) => llm.list_calls(a).await,
                    Command::ListConversations(a) => llm.list_conversations(a).await,
                    Command::GetConversation(a) => llm.get_conversation(a.conversation_id).await,
                    Command::UsageSummary(a) => llm.usage_summary(a).await,
                    Command::ListEndpointRules => Ok(llm.list_rules()),
                    Command::CreateEndpointRule(a) => llm.create_rule(a).await,
                    Command::UpdateEndpointRule(a) => llm.update_rule(a).await,
                    Command::DeleteEndpointRule(a) => llm
                        .delete_rule(a.rule_id)
                        .await
                        .map(|()| serde_json::json!({})),
                    _ => llm.rebuild().await,
                };
                match r {
                    Ok(v) => result(name, &v, rid),
                    Err(e) => error(e, rid),
                }
            }
            // `Command` is non-exhaustive: a command this daemon does not implement yet.
            _ => error(CommandError::UnknownCommand(name.to_string()), rid),
        }
    }

    fn status(&self) -> Status {
        Status {
            service: "greyproxy".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            protocol_version: PROTOCOL_VERSION,
            uptime_seconds: self.started.elapsed().as_secs(),
            listeners: self.listeners.clone(),
            pending_count: self.policy.pending_count() + self.credentials.held_count() as u64,
            held_connections: self.policy.held_connections() + self.credentials.held_count() as u64,
            rule_count: self.policy.rule_count(),
            allow_all: self.policy.allow_all_status(),
            active_claims: self.claims.active(),
            hold_timeout_seconds: self.policy.hold_timeout().as_secs(),
            state_dir: self.state_dir.clone(),
            last_seq: self.policy.events().last_seq(),
            alive_tasks: tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks() as u64,
            llm: self.llm.as_ref().map(|l| l.status()),
            export: self.exporter.as_ref().map(|e| e.status()),
        }
    }
}
