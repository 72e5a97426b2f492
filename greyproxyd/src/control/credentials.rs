//! The credential and session commands (docs/credentials.md): arguments checked and turned
//! into the credentials service's calls, `decide_credential` on held secret egress, and the
//! `credential` pending requests merged into `list_pending` / decided by `dismiss`.

use std::sync::Arc;

use greyproxy_protocol::command::Scope;
use greyproxy_protocol::credentials::{
    CreateCredentialArgs, CreateSessionArgs, CredentialDecision, DecideCredentialArgs,
    UpdateCredentialArgs,
};
use serde_json::{Value, json};

use crate::credentials::NewCredential;
use crate::credentials::holds::Resolution;
use crate::credentials::model::Destination;
use crate::credentials::secret::Secret;
use crate::credentials::service::{CredentialUpdate, Service, ServiceError};
use crate::credentials::wire::places_from;
use crate::policy::duration::{RuleDuration, parse_duration};
use crate::policy::scope::patterns_for;
use crate::time::{now_secs, parse_timestamp};

/// Why a credential command failed; the text is the `error` reply.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CredentialCommandError {
    /// The service refused.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// An argument is wrong.
    #[error("{0}")]
    Argument(String),
}

type Result<T> = std::result::Result<T, CredentialCommandError>;

fn arg(msg: impl Into<String>) -> CredentialCommandError {
    CredentialCommandError::Argument(msg.into())
}

fn secret(s: &str) -> Result<Secret> {
    Secret::new(s).map_err(|e| arg(e.to_string()))
}

/// An expiry from `expires_at` (RFC 3339) or `duration` (from now); not both.
fn expiry(expires_at: Option<&str>, duration: Option<&str>) -> Result<Option<u64>> {
    match (expires_at, duration) {
        (Some(_), Some(_)) => Err(arg("give expires_at or duration, not both")),
        (Some(t), None) => parse_timestamp(t)
            .map(Some)
            .ok_or_else(|| arg(format!("expires_at {t:?} is not an RFC 3339 time"))),
        (None, Some(d)) => {
            let d = parse_duration(d).map_err(|e| arg(e.to_string()))?;
            Ok(d.expires_at(now_secs()))
        }
        (None, None) => Ok(None),
    }
}

/// `create_credential`.
pub(crate) async fn create(svc: &Service, a: CreateCredentialArgs) -> Result<Value> {
    let new = NewCredential {
        label: a.label,
        secret: secret(&a.secret.0)?,
        destinations: a.destinations,
        containers: a.containers,
        places: places_from(a.places.unwrap_or_default()),
        allow_plaintext: a.allow_plaintext.unwrap_or(false),
        expires_at: expiry(a.expires_at.as_deref(), a.duration.as_deref())?,
    };
    let info = svc.create_credential(new).await?;
    Ok(json!(info))
}

/// `update_credential`.
pub(crate) async fn update(svc: &Service, a: UpdateCredentialArgs) -> Result<Value> {
    let expires_at = match a.expires_at {
        None => None,
        Some(None) => Some(None),
        Some(Some(t)) => Some(expiry(Some(&t), None)?),
    };
    let up = CredentialUpdate {
        secret: a.secret.map(|s| secret(&s.0)).transpose()?,
        destinations: a.destinations,
        containers: a.containers,
        places: a.places.map(places_from),
        allow_plaintext: a.allow_plaintext,
        expires_at,
    };
    Ok(json!(svc.update_credential(&a.label, up).await?))
}

/// `create_session`.
pub(crate) async fn create_session(svc: &Service, a: CreateSessionArgs) -> Result<Value> {
    let created = svc
        .create_session(
            a.session_id,
            &a.container,
            &a.credentials,
            a.ttl_seconds,
            a.allow_all.unwrap_or(false),
        )
        .await?;
    Ok(json!(created))
}

/// `decide_credential` (and `dismiss` of a `credential` pending request, a refusal).
pub(crate) async fn decide(svc: &Arc<Service>, a: DecideCredentialArgs) -> Result<Value> {
    let held = svc
        .held(a.pending_id)
        .ok_or(ServiceError::NoHold(a.pending_id))?;
    let resolution = match a.decision {
        CredentialDecision::SendOnce => Resolution::Send { with_secret: true },
        CredentialDecision::SendUnchanged => Resolution::Send { with_secret: false },
        CredentialDecision::Refuse => Resolution::Refuse {
            reason: a
                .reason
                .clone()
                .filter(|r| !r.trim().is_empty())
                .unwrap_or_else(|| "refused by the operator".into())
                .chars()
                .filter(|c| !c.is_control())
                .take(200)
                .collect(),
        },
        CredentialDecision::Bind => {
            if held.reason != "destination_not_bound" {
                return Err(arg(format!(
                    "bind applies to a destination the credential is not bound to; this \
                     request was held for {}: use send_once, send_unchanged or refuse",
                    held.reason
                )));
            }
            let duration = match a.duration.as_deref() {
                None => RuleDuration::Permanent,
                Some(d) => parse_duration(d).map_err(|e| arg(e.to_string()))?,
            };
            if duration != RuleDuration::Once {
                let p = patterns_for(
                    a.scope.unwrap_or(Scope::Exact),
                    &held.container,
                    &held.host,
                    held.port,
                );
                let text = if p.port_pattern == "*" {
                    p.destination_pattern.clone()
                } else {
                    format!("{}:{}", p.destination_pattern, p.port_pattern)
                };
                let mut dest = Destination::parse(&text).map_err(|e| arg(e.to_string()))?;
                dest.expires_at = duration.expires_at(now_secs());
                for id in &held.credentials {
                    svc.bind(id, dest.clone()).await?;
                }
            }
            Resolution::Send { with_secret: true }
        }
        _ => return Err(arg("unknown decision")),
    };
    let held = svc.resolve(a.pending_id, resolution)?;
    let mut ended = Vec::new();
    if a.decision == CredentialDecision::Refuse && a.end_session == Some(true) {
        for s in &held.sessions {
            if svc.delete_session(s).await.is_ok() {
                ended.push(s.clone());
            }
        }
    }
    Ok(json!({"pending_id": a.pending_id, "ended_sessions": ended}))
}
