//! The time the policy reads, behind one seam: Unix seconds for rule and silent-mode expiries,
//! and tokio instants for holds (their timers and the time a connection waited).
//!
//! In production Unix seconds come from the system clock. Under tokio's paused time
//! (`#[tokio::test(start_paused = true)]`) `tokio::time::advance` moves tokio's instants and
//! timers but not `SystemTime`; `Clock::following_tokio` derives Unix seconds from a base plus
//! tokio's elapsed time, so that one `advance` moves hold timeouts, rule expiries and the end of
//! silent mode together, without waiting on the wall clock.

use tokio::time::Instant;

/// Where the policy reads the time. Cheap to copy.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    /// `None`: the system clock. `Some((base, at))`: `base` Unix seconds at tokio instant `at`.
    follow: Option<(u64, Instant)>,
}

impl Clock {
    /// The system clock.
    pub(crate) fn system() -> Clock {
        Clock { follow: None }
    }

    /// Unix time that reads `unix_secs` now and then advances with tokio's clock (paused or
    /// not): for tests and simulations under paused time.
    #[cfg(test)]
    pub(crate) fn following_tokio(unix_secs: u64) -> Clock {
        Clock {
            follow: Some((unix_secs, Instant::now())),
        }
    }

    /// Seconds since the Unix epoch, now.
    pub(crate) fn now_secs(&self) -> u64 {
        match self.follow {
            None => crate::time::now_secs(),
            Some((base, at)) => base.saturating_add(at.elapsed().as_secs()),
        }
    }

    /// A monotonic instant, now (tokio's: paused time moves it).
    pub(crate) fn instant(&self) -> Instant {
        Instant::now()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_following_clock_moves_with_tokio_time_only() {
        let c = Clock::following_tokio(1_000);
        let start = c.instant();
        assert_eq!(c.now_secs(), 1_000);
        tokio::time::advance(Duration::from_millis(1_999)).await;
        assert_eq!(c.now_secs(), 1_001);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(c.now_secs(), 1_002);
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }

    #[test]
    fn the_system_clock_is_the_wall_clock() {
        let before = crate::time::now_secs();
        let now = Clock::system().now_secs();
        assert!(now >= before && now <= crate::time::now_secs());
    }
}
