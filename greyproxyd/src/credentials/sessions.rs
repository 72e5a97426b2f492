//! The session half of the credentials service: launcher sessions registered, heartbeated,
//! deleted and listed, learning mode, and the sweep of the expired ones (the credential half
//! and the shared state are in [`super::service`]).

use greyproxy_protocol::Event;
use greyproxy_protocol::credentials::{SessionCreated, SessionEnded, SessionInfo, SessionList};

use super::service::{Service, ServiceError};
use super::session::{self, Session};
use crate::time::now_secs;

impl Service {
    /// `create_session`: one placeholder per named credential. An existing id is replaced
    /// (with new placeholders).
    pub(crate) async fn create_session(
        &self,
        id: Option<String>,
        container: &str,
        labels: &[String],
        ttl_secs: Option<u64>,
        allow_all: bool,
    ) -> Result<SessionCreated, ServiceError> {
        self.vault()?;
        let id = match id {
            Some(id) => id,
            None => format!("gs-{}", session::random_hex(8)?),
        };
        let _w = self.write.lock().await;
        let now = now_secs();
        let s = {
            let st = self.lock();
            let mut creds = Vec::new();
            for l in labels {
                let c = st
                    .tables
                    .credential_by_label(l)
                    .ok_or_else(|| ServiceError::NoCredential(l.clone()))?;
                creds.push(c);
            }
            Session::new(&id, container, ttl_secs, &creds, allow_all, now)?
        };
        self.save(vec![super::put_session(&s)?]).await?;
        let (info, placeholders) = {
            let mut st = self.lock();
            st.tables.put_session(s.clone());
            let placeholders = s
                .placeholders
                .iter()
                .filter_map(|(cid, p)| {
                    let c = st.tables.credential(cid)?;
                    Some((c.label.clone(), p.clone()))
                })
                .collect();
            (self.session_info(&st, &s, now), placeholders)
        };
        tracing::info!(session = %s.id, container, "credential session created");
        self.events.publish(Event::SessionCreated(info.clone()));
        Ok(SessionCreated {
            session: info,
            placeholders,
        })
    }

    /// `heartbeat_session`: another TTL from now. An expired one is gone (register again).
    pub(crate) async fn heartbeat_session(&self, id: &str) -> Result<SessionInfo, ServiceError> {
        let _w = self.write.lock().await;
        let now = now_secs();
        let s = {
            let st = self.lock();
            match st.tables.session(id) {
                Some(s) if s.live(now) => {
                    let mut s = s.clone();
                    s.heartbeat(now);
                    s
                }
                _ => return Err(ServiceError::NoSession(id.to_string())),
            }
        };
        self.save(vec![super::put_session(&s)?]).await?;
        let mut st = self.lock();
        st.tables.put_session(s.clone());
        Ok(self.session_info(&st, &s, now))
    }

    /// `delete_session` (and a refusal that ends the session).
    pub(crate) async fn delete_session(&self, id: &str) -> Result<(), ServiceError> {
        let _w = self.write.lock().await;
        if self.lock().tables.session(id).is_none() {
            return Err(ServiceError::NoSession(id.to_string()));
        }
        self.save(vec![super::delete_session(id)]).await?;
        let removed = self.lock().tables.remove_session(id);
        if let Some(s) = removed {
            self.forget_counts(&s.id);
            tracing::info!(session = %s.id, "credential session deleted");
            self.events.publish(Event::SessionDeleted(SessionEnded {
                session_id: s.id,
                container: s.container,
            }));
        }
        Ok(())
    }

    /// `list_sessions`: the live ones.
    pub(crate) fn list_sessions(&self) -> SessionList {
        let now = now_secs();
        let st = self.lock();
        SessionList {
            sessions: st
                .tables
                .sessions()
                .filter(|s| s.live(now))
                .map(|s| self.session_info(&st, s, now))
                .collect(),
        }
    }

    /// True when some credential substitutes in bodies (only then are bodies read).
    pub(crate) fn any_body_places(&self) -> bool {
        self.lock().tables.any_body_places()
    }

    /// True when a live session of `container` asked for allow-all.
    pub(crate) fn allows_all(&self, container: &str) -> bool {
        let now = now_secs();
        self.lock()
            .tables
            .sessions()
            .any(|s| s.allow_all && s.container == container && s.live(now))
    }

    /// Removes the sessions past their TTL, from memory and the store, and announces them.
    pub(crate) async fn sweep(&self) {
        let _w = self.write.lock().await;
        let dead = self.lock().tables.sweep(now_secs());
        if dead.is_empty() {
            return;
        }
        let ops = dead.iter().map(|s| super::delete_session(&s.id)).collect();
        if let Err(e) = self.save(ops).await {
            tracing::warn!(error = %e, "cannot delete expired sessions from the store");
        }
        for s in dead {
            self.forget_counts(&s.id);
            tracing::info!(session = %s.id, "credential session expired");
            self.events.publish(Event::SessionExpired(SessionEnded {
                session_id: s.id,
                container: s.container,
            }));
        }
    }
}
