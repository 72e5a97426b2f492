//! How the Middlewares view stays fresh: the configured external middlewares as
//! `list_middlewares` reports them are fetched when the view is opened, on `r` and `R`, and
//! again every [`MIDDLEWARE_REFRESH`] while the view is shown (the daemon publishes no event
//! when a middleware connects or drops).

use std::time::Duration;

use greyproxy_protocol::{Command, Reply};

use super::{App, ConnState, Effect, Tag, View, send};
use crate::middlewares::MiddlewareList;

/// How often the list is fetched again while the view is shown.
pub(crate) const MIDDLEWARE_REFRESH: Duration = Duration::from_secs(2);

/// Slack for the once-a-second clock: a tick a little early still refreshes.
const TICK_SLACK: Duration = Duration::from_millis(250);

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
