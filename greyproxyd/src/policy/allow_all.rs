//! Silent mode ("allow-all"): everything allowed, or everything blocked, with no rules and no
//! prompts, until an expiry or until the daemon restarts. Unlike greyproxy, a timed silent mode
//! survives a restart (it is kept in the store's settings); "until restart" does not.

use std::sync::Arc;
use std::time::Duration;

use greyproxy_protocol::{AllowAllMode, AllowAllStatus};
use serde::{Deserialize, Serialize};

use super::apply::Plan;
use super::engine::Policy;
use super::error::PolicyError;
use crate::store::{Op, Store};
use crate::time::rfc3339;

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
    /// Loads a timed silent mode that has not expired at `now`.
    pub(crate) fn load(store: &Store, now: u64) -> AllowAllState {
        let saved: Option<AllowAllState> = store
            .get_setting(SETTING_KEY)
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice(&b).ok());
        match saved {
            Some(s) if s.expires_at.is_some_and(|e| e > now) => s,
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

    /// How this state is kept in the store: only a timed mode is, since "until restart" must
    /// not outlive the process.
    pub(super) fn setting_op(&self) -> Result<Op, PolicyError> {
        Ok(match (self.mode, self.expires_at) {
            (Some(_), Some(_)) => Op::PutSetting(SETTING_KEY.into(), serde_json::to_vec(self)?),
            _ => Op::DeleteSetting(SETTING_KEY.into()),
        })
    }

    /// Off, one epoch later.
    fn off_after(&self) -> AllowAllState {
        AllowAllState {
            epoch: self.epoch + 1,
            ..Default::default()
        }
    }
}

impl Policy {
    /// Silent-mode status.
    pub(crate) fn allow_all_status(&self) -> AllowAllStatus {
        self.lock().allow_all.status(self.clock.now_secs())
    }

    /// Switches silent mode on (`duration` None = until restart). Held connections are decided
    /// at once.
    pub(crate) async fn set_allow_all(
        self: &Arc<Self>,
        mode: AllowAllMode,
        duration: Option<Duration>,
    ) -> Result<AllowAllStatus, PolicyError> {
        let w = self.write_lock.lock().await;
        let now = self.clock.now_secs();
        let next = AllowAllState {
            mode: Some(mode),
            expires_at: duration.map(|d| now + d.as_secs().max(1)),
            epoch: self.lock().allow_all.epoch + 1,
        };
        let status = next.status(now);
        let mut plan = Plan::at(now);
        plan.allow_all = Some((next, Some(status.clone())));
        self.apply(&w, plan).await?;
        drop(w);
        self.schedule_allow_all_expiry();
        Ok(status)
    }

    /// Switches silent mode off; publishes an event only if it was on.
    pub(crate) async fn clear_allow_all(self: &Arc<Self>) -> Result<AllowAllStatus, PolicyError> {
        let w = self.write_lock.lock().await;
        let now = self.clock.now_secs();
        let (was_active, next) = {
            let st = self.lock();
            (
                st.allow_all.active_mode(now).is_some(),
                st.allow_all.off_after(),
            )
        };
        let mut plan = Plan::at(now);
        plan.allow_all = Some((next, was_active.then(AllowAllStatus::default)));
        self.apply(&w, plan).await?;
        Ok(AllowAllStatus::default())
    }

    /// Ends the timed silent mode of `epoch`, its time being up, and publishes the change —
    /// unless it was changed or cleared meanwhile (checked under `write_lock`, so a mode
    /// switched on just now is never the one ended). Returns whether it ended.
    async fn expire_allow_all(&self, epoch: u64) -> Result<bool, PolicyError> {
        let w = self.write_lock.lock().await;
        let now = self.clock.now_secs();
        let next = {
            let st = self.lock();
            if st.allow_all.epoch != epoch || st.allow_all.mode.is_none() {
                return Ok(false);
            }
            st.allow_all.off_after()
        };
        let mut plan = Plan::at(now);
        plan.allow_all = Some((next, Some(AllowAllStatus::default())));
        self.apply(&w, plan).await?;
        Ok(true)
    }

    /// Starts a timer that ends a timed silent mode and publishes its end (also after a
    /// restart).
    pub(crate) fn schedule_allow_all_expiry(self: &Arc<Self>) {
        let (epoch, expires_at) = {
            let st = self.lock();
            (st.allow_all.epoch, st.allow_all.expires_at)
        };
        let Some(expires_at) = expires_at else {
            return;
        };
        let policy = Arc::downgrade(self);
        // The deadline is fixed now, not when the task first runs.
        let wait = Duration::from_secs(expires_at.saturating_sub(self.clock.now_secs()));
        let deadline = self.clock.instant() + wait;
        tokio::spawn(async move {
            tokio::time::sleep_until(deadline).await;
            let Some(policy) = policy.upgrade() else {
                return;
            };
            if let Err(e) = policy.expire_allow_all(epoch).await {
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
