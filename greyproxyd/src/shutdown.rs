//! The daemon's one shutdown, in three phases that every part of it sees under the same names:
//!
//! 1. **begin** (SIGTERM/SIGINT, or the end of an in-process daemon's serve future): the
//!    listeners stop accepting, holds end blocked, background tasks stop, and intercepted
//!    connections finish the exchange in flight and close instead of idling in keep-alive;
//! 2. **cut** (once the grace period is over): the connections still open are cut;
//! 3. **done**: what served those connections (external middlewares) stops after the last one.
//!
//! The connection tracker counts the proxied connections, so that [`Shutdown::drain`] waits
//! for exactly them.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long the connections still open after the cut get to notice it.
const AFTER_CUT: Duration = Duration::from_secs(2);

/// The shutdown handle; clones share it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Shutdown {
    begun: CancellationToken,
    cut: CancellationToken,
    done: CancellationToken,
    conns: TaskTracker,
}

impl Shutdown {
    /// A daemon that is running.
    pub(crate) fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Phase 1: stop accepting, end holds and background tasks, finish the exchanges in flight.
    pub(crate) fn begin(&self) {
        self.begun.cancel();
    }

    /// Whether phase 1 has started.
    #[cfg(test)]
    pub(crate) fn is_begun(&self) -> bool {
        self.begun.is_cancelled()
    }

    /// Cancelled when phase 1 starts (for the parts that take a token: accept loops, the
    /// control server, background tasks).
    pub(crate) fn begun_token(&self) -> CancellationToken {
        self.begun.clone()
    }

    /// Phase 2: cut the connections still open.
    pub(crate) fn cut(&self) {
        self.cut.cancel();
    }

    /// Cancelled when phase 2 starts (for the relays of open connections).
    pub(crate) fn cut_token(&self) -> CancellationToken {
        self.cut.clone()
    }

    /// Cancelled at phase 3: what served the connections stops.
    pub(crate) fn done_token(&self) -> CancellationToken {
        self.done.clone()
    }

    /// Runs a proxied connection, counted until it ends.
    pub(crate) fn track<F>(&self, conn: F) -> impl Future<Output = F::Output> + use<F>
    where
        F: Future,
    {
        self.conns.track_future(conn)
    }

    /// Connections open right now.
    #[cfg(test)]
    pub(crate) fn open_connections(&self) -> usize {
        self.conns.len()
    }

    /// Begins the shutdown if it has not begun, gives the open connections `grace` to finish,
    /// cuts the rest and waits briefly for them to notice, then ends phase 3. Returns the
    /// connections that were still open when the grace period ran out (0: all finished).
    pub(crate) async fn drain(&self, grace: Duration) -> usize {
        self.begin();
        self.conns.close();
        if !self.conns.is_empty() {
            tracing::info!(
                open = self.conns.len(),
                ?grace,
                "waiting for open connections to finish"
            );
        }
        let mut left = 0;
        if tokio::time::timeout(grace, self.conns.wait())
            .await
            .is_err()
        {
            left = self.conns.len();
            tracing::warn!(open = left, "grace period over: cutting open connections");
        }
        self.cut();
        let _ = tokio::time::timeout(AFTER_CUT, self.conns.wait()).await;
        self.done.cancel();
        left
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_finishes_in_the_grace_period_is_not_cut() {
        let s = Shutdown::new();
        let cut = s.cut_token();
        let begun = s.begun_token();
        let conn = tokio::spawn(s.track(async move {
            begun.cancelled().await;
            tokio::time::sleep(Duration::from_secs(3)).await;
        }));
        tokio::task::yield_now().await;
        assert_eq!(s.open_connections(), 1);
        assert_eq!(s.drain(Duration::from_secs(5)).await, 0);
        assert!(conn.is_finished());
        assert!(
            cut.is_cancelled(),
            "the cut still comes, for anything untracked"
        );
        assert!(s.done_token().is_cancelled());
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_outliving_the_grace_period_is_cut() {
        let s = Shutdown::new();
        let cut = s.cut_token();
        let conn = tokio::spawn(s.track(async move { cut.cancelled().await }));
        tokio::task::yield_now().await;
        let started = tokio::time::Instant::now();
        assert_eq!(s.drain(Duration::from_secs(30)).await, 1);
        assert_eq!(started.elapsed(), Duration::from_secs(30));
        assert!(conn.await.is_ok());
        assert_eq!(s.open_connections(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn phases_come_in_order() {
        let s = Shutdown::new();
        assert!(!s.is_begun());
        let (begun, cut, done) = (s.begun_token(), s.cut_token(), s.done_token());
        s.begin();
        assert!(s.is_begun() && begun.is_cancelled());
        assert!(!cut.is_cancelled() && !done.is_cancelled());
        s.drain(Duration::from_secs(1)).await;
        assert!(cut.is_cancelled() && done.is_cancelled());
    }
}
