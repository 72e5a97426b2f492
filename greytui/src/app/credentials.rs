//! The Credentials view's state (docs/credentials.md): the daemon's credentials (never their
//! secrets: a preview) and the live launcher sessions with their substitution counts. Both
//! lists are fetched when the view opens, on `r` and `R`, when a `credential.*` or `session.*`
//! event arrives while it is shown, and every [`CREDENTIALS_REFRESH`] while it is shown (a
//! heartbeat publishes no event, and the time left counts down); `credential.substitutions`
//! updates the counts in place.

use std::time::{Duration, SystemTime};

use greyproxy_protocol::credentials::{
    CredentialInfo, CredentialList, SessionInfo, SessionList, SubstitutionCounts,
};
use greyproxy_protocol::{Command, Reply};

use super::listed::{Keyed, Listed};
use super::{App, ConnState, Effect, Tag, View, send};

/// How often the lists are fetched again while the view is shown.
pub(crate) const CREDENTIALS_REFRESH: Duration = Duration::from_secs(5);

/// Slack for the once-a-second clock: a tick a little early still refreshes.
const TICK_SLACK: Duration = Duration::from_millis(250);

/// Which of the view's two tables has the selection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Pane {
    /// Credentials (add, edit, delete).
    #[default]
    Credentials,
    /// Sessions (delete).
    Sessions,
}

/// The Credentials view.
#[derive(Debug, Clone, Default)]
pub(crate) struct Credentials {
    /// By label, as the daemon lists them.
    pub(crate) creds: Listed<CredentialInfo>,
    /// By id.
    pub(crate) sessions: Listed<SessionInfo>,
    /// The table with the selection.
    pub(crate) pane: Pane,
    /// False when the daemon cannot use its key file; `unavailable` says why.
    pub(crate) available: bool,
    /// Why credentials are unavailable.
    pub(crate) unavailable: Option<String>,
    /// Both lists arrived at least once.
    pub(crate) loaded: bool,
    /// Replies awaited (0, 1 or 2).
    pub(crate) in_flight: u8,
    /// When the last fetch was sent.
    pub(crate) asked_at: Option<SystemTime>,
    /// The error of the last attempt, if it failed (a daemon without credentials support).
    pub(crate) error: Option<String>,
}

impl Keyed for CredentialInfo {
    type Key = String;
    fn key(&self) -> String {
        self.id.clone()
    }
}

impl Keyed for SessionInfo {
    type Key = String;
    fn key(&self) -> String {
        self.session_id.clone()
    }
}

impl Credentials {
    /// The selected credential, when the credentials table has the selection.
    pub(crate) fn selected_credential(&self) -> Option<&CredentialInfo> {
        (self.pane == Pane::Credentials)
            .then(|| self.creds.selected())
            .flatten()
    }

    /// The selected session, when the sessions table has the selection.
    pub(crate) fn selected_session(&self) -> Option<&SessionInfo> {
        (self.pane == Pane::Sessions)
            .then(|| self.sessions.selected())
            .flatten()
    }
}

impl App {
    /// Asks for both lists now, unless replies are awaited or the link is down (the resync on
    /// connect asks again).
    pub(super) fn credentials_fetch(&mut self) -> Vec<Effect> {
        let c = &mut self.credentials;
        if c.in_flight > 0 || self.conn != ConnState::Connected {
            return Vec::new();
        }
        c.in_flight = 2;
        c.asked_at = Some(self.now);
        vec![
            send(Tag::Credentials, Command::ListCredentials),
            send(Tag::Sessions, Command::ListSessions),
        ]
    }

    /// On the clock: fetch again when the view is shown and the last fetch is old enough.
    pub(super) fn credentials_tick(&mut self) -> Vec<Effect> {
        if self.view != View::Credentials {
            return Vec::new();
        }
        let due = self.credentials.asked_at.is_none_or(|at| {
            self.now.duration_since(at).unwrap_or_default() + TICK_SLACK >= CREDENTIALS_REFRESH
        });
        if due {
            self.credentials_fetch()
        } else {
            Vec::new()
        }
    }

    /// A `credential.*` or `session.*` event: the lists are fetched again when shown (an
    /// event carries one item, the lists carry the counts and time left of all).
    pub(super) fn credentials_changed(&mut self) -> Vec<Effect> {
        if self.view == View::Credentials {
            self.credentials_fetch()
        } else {
            // Shown next time from fresh lists.
            self.credentials.asked_at = None;
            Vec::new()
        }
    }

    /// `credential.substitutions`: the counts move in place.
    pub(super) fn credentials_counted(&mut self, counts: &SubstitutionCounts) {
        let c = &mut self.credentials;
        for line in &counts.counts {
            if let Some(s) = c.sessions.find_mut(&line.session_id) {
                s.substitutions.insert(line.label.clone(), line.total);
            }
            if let Some(cred) = c.creds.iter().position(|x| x.label == line.label) {
                let id = c.creds[cred].id.clone();
                if let Some(x) = c.creds.find_mut(&id) {
                    x.substitutions = x.substitutions.saturating_add(line.added);
                }
            }
        }
    }

    /// The reply to `list_credentials`: the selection stays on the same credential.
    pub(super) fn credentials_listed(&mut self, outcome: Result<Reply, String>) {
        let rows = self.credential_rows();
        let c = &mut self.credentials;
        c.in_flight = c.in_flight.saturating_sub(1);
        match outcome.and_then(super::daemon::data::<CredentialList>) {
            Ok(list) => {
                c.creds.replace(list.credentials, rows);
                c.available = list.available;
                c.unavailable = list.unavailable_reason;
                c.loaded = true;
                c.error = None;
            }
            Err(e) => {
                c.error = Some(e);
                c.loaded = true;
            }
        }
    }

    /// The reply to `list_sessions`.
    pub(super) fn sessions_listed(&mut self, outcome: Result<Reply, String>) {
        let rows = self.credential_rows();
        let c = &mut self.credentials;
        c.in_flight = c.in_flight.saturating_sub(1);
        match outcome.and_then(super::daemon::data::<SessionList>) {
            Ok(list) => c.sessions.replace(list.sessions, rows),
            Err(e) => c.error = Some(e),
        }
    }

    /// The link dropped: its replies will not come.
    pub(super) fn credentials_disconnected(&mut self) {
        self.credentials.in_flight = 0;
    }

    /// Rows of each of the view's two tables: half the list area each, less their headers
    /// and the line between them.
    pub(crate) fn credential_rows(&self) -> usize {
        (self.list_rows().saturating_sub(3) / 2).max(1)
    }

    /// Moves the selection of the table that has it.
    pub(super) fn credentials_step(&mut self, delta: isize) {
        let rows = self.credential_rows();
        let c = &mut self.credentials;
        match c.pane {
            Pane::Credentials => c.creds.step(delta, rows),
            Pane::Sessions => c.sessions.step(delta, rows),
        }
    }

    /// Switches the selection between credentials and sessions.
    pub(super) fn credentials_switch_pane(&mut self) {
        let c = &mut self.credentials;
        c.pane = match c.pane {
            Pane::Credentials => Pane::Sessions,
            Pane::Sessions => Pane::Credentials,
        };
    }
}
