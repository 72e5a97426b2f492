//! The Middlewares view's state: the configured external middlewares as `list_middlewares`
//! reports them, fetched when the view is opened, on `r` and `R`, and again every
//! [`MIDDLEWARE_REFRESH`] while the view is shown (the daemon publishes no event when a
//! middleware connects or drops).

use std::time::{Duration, SystemTime};

use greyproxy_protocol::middleware::MiddlewareStatus;
use greyproxy_protocol::{Command, Reply};

use super::listed::{Keyed, Listed};
use super::{App, ConnState, Effect, Tag, View, send};
use crate::middlewares::MiddlewareList;

/// How often the list is fetched again while the view is shown.
pub(crate) const MIDDLEWARE_REFRESH: Duration = Duration::from_secs(2);

/// Slack for the once-a-second clock: a tick a little early still refreshes.
const TICK_SLACK: Duration = Duration::from_millis(250);

/// The list and what is known about its freshness.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Middlewares {
    /// As the daemon listed them, in configuration order, and the selection (its details are
    /// shown under the table).
    pub(crate) list: Listed<MiddlewareStatus>,
    /// A list arrived at least once.
    pub(crate) loaded: bool,
    /// A `list_middlewares` is in flight.
    pub(crate) in_flight: bool,
    /// When the last one was sent.
    pub(crate) asked_at: Option<SystemTime>,
    /// The error of the last attempt, if it failed.
    pub(crate) error: Option<String>,
}

/// A middleware is known by its endpoint: its name comes with its hello and may change.
impl Keyed for MiddlewareStatus {
    type Key = String;
    fn key(&self) -> String {
        self.url.clone()
    }
}

impl App {
    /// Asks for the list now, unless a request is already in flight or the link is down (the
    /// resync on connect asks again).
    pub(super) fn middlewares_fetch(&mut self) -> Vec<Effect> {
        if self.middlewares.in_flight || self.conn != ConnState::Connected {
            return Vec::new();
        }
        self.middlewares.in_flight = true;
        self.middlewares.asked_at = Some(self.now);
        vec![send(Tag::Middlewares, Command::ListMiddlewares)]
    }

    /// On the clock: fetch again when the view is shown and the last fetch is old enough.
    pub(super) fn middlewares_tick(&mut self) -> Vec<Effect> {
        if self.view != View::Middlewares {
            return Vec::new();
        }
        let due = match self.middlewares.asked_at {
            None => true,
            Some(at) => {
                self.now.duration_since(at).unwrap_or_default() + TICK_SLACK >= MIDDLEWARE_REFRESH
            }
        };
        if due {
            self.middlewares_fetch()
        } else {
            Vec::new()
        }
    }

    /// The reply to `list_middlewares`: the selection stays on the same middleware (by URL).
    pub(super) fn middlewares_listed(&mut self, outcome: Result<Reply, String>) {
        let rows = self.list_rows();
        let m = &mut self.middlewares;
        m.in_flight = false;
        match outcome.and_then(super::daemon::data::<MiddlewareList>) {
            Ok(list) => {
                m.list.replace(list.middlewares, rows);
                m.loaded = true;
                m.error = None;
            }
            Err(e) => {
                m.error = Some(e);
                m.list.clamp(rows);
            }
        }
    }
}
