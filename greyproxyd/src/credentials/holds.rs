//! Secret egress held for a human: a request carrying a placeholder that fails its binding
//! waits here as a pending request of kind `credential` until `decide_credential` (or
//! `dismiss`) resolves it, the hold times out, or the client goes away.
//!
//! Holds live in memory only: a held request is an open client request, which a restart
//! ends anyway. Their ids come from the store's pending sequence, so a `pending_id` names one
//! pending request whatever its kind.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use greyproxy_protocol::credentials::CredentialEgress;
use greyproxy_protocol::event::PendingDecided;
use greyproxy_protocol::{Event, PendingKind, PendingRequest};
use tokio::sync::oneshot;

use super::service::{Service, ServiceError};
use crate::time::{now_secs, rfc3339};

/// How a held request ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Resolution {
    /// Send it; with the secret substituted when `with_secret` (send once, or bound now).
    Send {
        /// Substitute the held placeholders (else they go out unchanged).
        with_secret: bool,
    },
    /// Answer 403 with this reason.
    Refuse {
        /// Shown to the client.
        reason: String,
    },
}

/// What the decision needs to know about a held request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeldRequest {
    /// Client identity.
    pub(crate) container: String,
    /// Destination host.
    pub(crate) host: String,
    /// Destination port.
    pub(crate) port: u16,
    /// Ids of the credentials whose placeholders were held (those that exist).
    pub(crate) credentials: Vec<String>,
    /// Sessions of the held placeholders (those that are known).
    pub(crate) sessions: Vec<String>,
    /// The first reason (`destination_not_bound`, …).
    pub(crate) reason: String,
}

#[derive(Debug)]
struct Held {
    wire: PendingRequest,
    request: HeldRequest,
    tx: Option<oneshot::Sender<Resolution>>,
}

/// The held requests by pending id.
#[derive(Debug, Default)]
pub(crate) struct Holds {
    map: Mutex<BTreeMap<u64, Held>>,
}

impl Holds {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Held>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One held request's side: wait on it; dropping it ends the hold (client gone).
#[derive(Debug)]
pub(crate) struct Ticket {
    /// Its pending id.
    pub(crate) id: u64,
    rx: Option<oneshot::Receiver<Resolution>>,
    service: Arc<Service>,
}

impl Ticket {
    /// Waits for the decision, at most `timeout`; `None` when nobody decided in time or the
    /// daemon is shutting down.
    pub(crate) async fn wait(&mut self, timeout: std::time::Duration) -> Option<Resolution> {
        let rx = self.rx.take()?;
        tokio::select! {
            r = tokio::time::timeout(timeout, rx) => r.ok().and_then(Result::ok),
            _ = self.service.stopping.cancelled() => None,
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        // Still there: nobody decided (timeout, client gone, shutdown).
        if self.service.holds.lock().remove(&self.id).is_some() {
            self.service
                .events
                .publish(Event::PendingDismissed(PendingDecided {
                    pending_id: self.id,
                    rule: None,
                }));
        }
    }
}

impl Service {
    /// Holds a request and announces it (`pending_request.created`, kind `credential`).
    pub(crate) fn hold(self: &Arc<Self>, request: HeldRequest, egress: CredentialEgress) -> Ticket {
        let id = self.next_pending_id();
        let now = rfc3339(now_secs());
        let wire = PendingRequest {
            id,
            container_name: request.container.clone(),
            container_id: String::new(),
            destination_host: request.host.clone(),
            destination_port: request.port,
            resolved_hostname: None,
            first_seen: now.clone(),
            last_seen: now,
            attempt_count: 1,
            waiting_count: 1,
            llm_context: None,
            kind: PendingKind::Credential,
            credential: Some(egress),
        };
        let (tx, rx) = oneshot::channel();
        self.holds.lock().insert(
            id,
            Held {
                wire: wire.clone(),
                request,
                tx: Some(tx),
            },
        );
        tracing::warn!(
            pending_id = id,
            container = %wire.container_name,
            host = %wire.destination_host,
            reason = wire.credential.as_ref().map_or("", |c| c.reason.as_str()),
            "secret egress held"
        );
        self.events.publish(Event::PendingCreated(wire));
        Ticket {
            id,
            rx: Some(rx),
            service: self.clone(),
        }
    }

    /// The held request `id`, if it is one.
    pub(crate) fn held(&self, id: u64) -> Option<HeldRequest> {
        self.holds.lock().get(&id).map(|h| h.request.clone())
    }

    /// Ends the hold `id` with `r` and announces it (`pending_request.allowed` when sent,
    /// `pending_request.dismissed` when refused).
    pub(crate) fn resolve(&self, id: u64, r: Resolution) -> Result<HeldRequest, ServiceError> {
        let held = self
            .holds
            .lock()
            .remove(&id)
            .ok_or(ServiceError::NoHold(id))?;
        let event = PendingDecided {
            pending_id: id,
            rule: None,
        };
        self.events.publish(match r {
            Resolution::Send { .. } => Event::PendingAllowed(event),
            Resolution::Refuse { .. } => Event::PendingDismissed(event),
        });
        if let Some(tx) = held.tx {
            // The client may have gone meanwhile: nothing left to tell.
            let _ = tx.send(r);
        }
        Ok(held.request)
    }

    /// The held requests, newest first, filtered like `list_pending` (substrings of the
    /// container and destination).
    pub(crate) fn list_holds(
        &self,
        container: Option<&str>,
        destination: Option<&str>,
    ) -> Vec<PendingRequest> {
        self.holds
            .lock()
            .values()
            .rev()
            .filter(|h| container.is_none_or(|c| h.wire.container_name.contains(c)))
            .filter(|h| destination.is_none_or(|d| h.wire.destination_host.contains(d)))
            .map(|h| h.wire.clone())
            .collect()
    }

    /// How many requests are held.
    pub(crate) fn held_count(&self) -> usize {
        self.holds.lock().len()
    }
}
