//! Silent mode ("allow-all"): everything allowed, or everything blocked, with no rules and no
//! prompts, until an expiry or until the daemon restarts. Unlike greyproxy, a timed silent mode
//! survives a restart (it is kept in the store's settings); "until restart" does not.

use std::sync::Arc;
use std::time::Duration;

use greyproxy_protocol::{AllowAllMode, AllowAllStatus, Event};
use serde::{Deserialize, Serialize};

use super::engine::Policy;
use super::error::PolicyError;
use crate::store::{Op, Store};
use crate::time::{now_secs, rfc3339};

const SETTING_KEY: &str = "allow_all";

/// Current silent-mode setting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AllowAllState {
    /// Mode while active; `None` = off.
    pub(crate) mode: Option<AllowAllMode>,
    /// Unix seconds; `None` = until restart.
    pub(crate) expires_at: Option<u64>,
    /// Bumped on every change so that a stale expiry timer does nothing.
    #[serde(default)]
    pub(crate) epoch: u64,
}

impl AllowAllState {
    /// Loads a timed silent mode that has not expired yet.
    pub(crate) fn load(store: &Store) -> AllowAllState {
        let saved: Option<AllowAllState> = store
            .get_setting(SETTING_KEY)
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice(&b).ok());
        match saved {
            Some(s) if s.expires_at.is_some_and(|e| e > now_secs()) => s,
            _ => AllowAllState::default(),
        }
    }

    /// The mode in force at `now`, if any.
    pub(crate) fn active_mode(&self, now: u64) -> Option<AllowAllMode> {
        match (self.mode, self.expires_at) {
            (Some(m), Some(e)) if e > now => Some(m),
            (Some(m), None) => Some(m),
            _ => None,
        }
    }

    /// The wire status at `now`.
    pub(crate) fn status(&self, now: u64) -> AllowAllStatus {
        match self.active_mode(now) {
            None => AllowAllStatus::default(),
            Some(m) => AllowAllStatus {
                active: true,
                mode: Some(m),
                expires_at: self.expires_at.map(rfc3339),
                remaining_seconds: self.expires_at.map(|e| e.saturating_sub(now)),
            },
        }
    }
}

impl Policy {
    /// Silent-mode status.
    pub(crate) fn allow_all_status(&self) -> AllowAllStatus {
        self.lock().allow_all.status(now_secs())
    }

    /// Switches silent mode on (`duration` None = until restart). Held connections are decided
    /// at once.
    pub(crate) async fn set_allow_all(
        self: &Arc<Self>,
        mode: AllowAllMode,
        duration: Option<Duration>,
    ) -> Result<AllowAllStatus, PolicyError> {
        let _w = self.write_lock.lock().await;
        let now = now_secs();
        let mut next = AllowAllState {
            mode: Some(mode),
            expires_at: duration.map(|d| now + d.as_secs().max(1)),
            epoch: self.lock().allow_all.epoch + 1,
        };
        // Only timed modes are persisted: "until restart" must not outlive the process.
        let op = if next.expires_at.is_some() {
            Op::PutSetting(SETTING_KEY.into(), serde_json::to_vec(&next)?)
        } else {
            Op::DeleteSetting(SETTING_KEY.into())
        };
        self.commit(vec![op]).await?;
        let status = {
            let mut st = self.lock();
            std::mem::swap(&mut st.allow_all, &mut next);
            st.allow_all.status(now)
        };
        self.events.publish(Event::AllowAllChanged(status.clone()));
        self.bump();
        self.schedule_allow_all_expiry();
        Ok(status)
    }

    /// Switches silent mode off; publishes an event only if it was on.
    pub(crate) async fn clear_allow_all(self: &Arc<Self>) -> Result<AllowAllStatus, PolicyError> {
        let _w = self.write_lock.lock().await;
        let was_active = self.lock().allow_all.active_mode(now_secs()).is_some();
        self.commit(vec![Op::DeleteSetting(SETTING_KEY.into())])
            .await?;
        {
            let mut st = self.lock();
            let epoch = st.allow_all.epoch + 1;
            st.allow_all = AllowAllState {
                epoch,
                ..Default::default()
            };
        }
        if was_active {
            self.events
                .publish(Event::AllowAllChanged(AllowAllStatus::default()));
            self.bump();
        }
        Ok(AllowAllStatus::default())
    }

    /// Starts a timer that publishes the end of a timed silent mode (also after a restart).
    pub(crate) fn schedule_allow_all_expiry(self: &Arc<Self>) {
        let (epoch, expires_at) = {
            let st = self.lock();
            (st.allow_all.epoch, st.allow_all.expires_at)
        };
        let Some(expires_at) = expires_at else {
            return;
        };
        let policy = Arc::downgrade(self);
        tokio::spawn(async move {
            let wait = expires_at.saturating_sub(now_secs());
            tokio::time::sleep(Duration::from_secs(wait)).await;
            let Some(policy) = policy.upgrade() else {
                return;
            };
            if policy.lock().allow_all.epoch != epoch {
                return;
            }
            if let Err(e) = policy.clear_allow_all().await {
                tracing::warn!(error = %e, "cannot clear expired silent mode");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_reflects_expiry() {
        let s = AllowAllState {
            mode: Some(AllowAllMode::Deny),
            expires_at: Some(100),
            epoch: 1,
        };
        assert_eq!(s.active_mode(99), Some(AllowAllMode::Deny));
        assert_eq!(s.active_mode(100), None);
        let st = s.status(40);
        assert!(st.active);
        assert_eq!(st.remaining_seconds, Some(60));
        assert_eq!(s.status(100), AllowAllStatus::default());
        let forever = AllowAllState {
            mode: Some(AllowAllMode::Allow),
            expires_at: None,
            epoch: 1,
        };
        assert_eq!(forever.status(5).remaining_seconds, None);
        assert!(forever.status(5).active);
    }
}
