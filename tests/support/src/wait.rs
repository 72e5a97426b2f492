//! Waiting for something the daemon does in the background: one poll helper instead of a
//! hand-written `loop { if done { break } sleep }` in every test, so that a timeout always
//! says what was awaited and what was last seen.

use std::fmt::Debug;
use std::time::{Duration, Instant};

/// How often [`eventually`] looks again.
pub const POLL: Duration = Duration::from_millis(20);

/// Calls `probe` until it returns `Ok(value)` and returns that value; `Err(seen)` means "not
/// yet" and carries what was observed. Panics after `timeout` naming `what` and the last
/// `seen`. `probe` runs at least once, even with a zero timeout.
pub async fn eventually<T, S: Debug>(
    what: &str,
    timeout: Duration,
    probe: impl AsyncFnMut() -> Result<T, S>,
) -> T {
    eventually_every(what, timeout, POLL, probe).await
}

/// [`eventually`] looking every `every` (for probes that cost the daemon real work).
pub async fn eventually_every<T, S: Debug>(
    what: &str,
    timeout: Duration,
    every: Duration,
    probe: impl AsyncFnMut() -> Result<T, S>,
) -> T {
    match within(timeout, every, probe).await {
        Ok(v) => v,
        Err(seen) => timed_out(what, timeout, seen),
    }
}

/// The polling of [`eventually_every`] without the panic: `Err` with the last `seen` after
/// `timeout`, for callers that clean up first or report what they saw either way.
pub async fn within<T, S>(
    timeout: Duration,
    every: Duration,
    mut probe: impl AsyncFnMut() -> Result<T, S>,
) -> Result<T, S> {
    let deadline = Instant::now() + timeout;
    loop {
        match probe().await {
            Ok(v) => return Ok(v),
            Err(seen) if Instant::now() >= deadline => return Err(seen),
            Err(_) => tokio::time::sleep(every).await,
        }
    }
}

/// [`eventually`] for a probe that does not await (reads a file, a lock, `/proc`), sleeping
/// without blocking the runtime. Unlike an async closure, a plain closure keeps the waiting
/// future `Send` whatever it borrows, so this one also works inside `tokio::spawn`.
pub async fn eventually_sync<T, S: Debug>(
    what: &str,
    timeout: Duration,
    every: Duration,
    probe: impl FnMut() -> Result<T, S>,
) -> T {
    match within_sync(timeout, every, probe).await {
        Ok(v) => v,
        Err(seen) => timed_out(what, timeout, seen),
    }
}

/// [`within`] for a probe that does not await (see [`eventually_sync`]).
pub async fn within_sync<T, S>(
    timeout: Duration,
    every: Duration,
    mut probe: impl FnMut() -> Result<T, S>,
) -> Result<T, S> {
    let deadline = Instant::now() + timeout;
    loop {
        match probe() {
            Ok(v) => return Ok(v),
            Err(seen) if Instant::now() >= deadline => return Err(seen),
            Err(_) => tokio::time::sleep(every).await,
        }
    }
}

/// [`eventually`] for a probe that blocks (no runtime needed), e.g. `Child::try_wait`.
pub fn eventually_blocking<T, S: Debug>(
    what: &str,
    timeout: Duration,
    probe: impl FnMut() -> Result<T, S>,
) -> T {
    match within_blocking(timeout, probe) {
        Ok(v) => v,
        Err(seen) => timed_out(what, timeout, seen),
    }
}

/// [`within`] for a probe that blocks.
pub fn within_blocking<T, S>(
    timeout: Duration,
    mut probe: impl FnMut() -> Result<T, S>,
) -> Result<T, S> {
    let deadline = Instant::now() + timeout;
    loop {
        match probe() {
            Ok(v) => return Ok(v),
            Err(seen) if Instant::now() >= deadline => return Err(seen),
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

fn timed_out(what: &str, timeout: Duration, seen: impl Debug) -> ! {
    panic!("timed out after {timeout:?} waiting for {what}; last observed: {seen:?}")
}

/// A `seen` value whose `Debug` is the text itself, unquoted and unescaped: logs and screens
/// read as they are in a timeout message.
pub struct Text(pub String);

impl Debug for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "\n{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn panic_text(r: std::thread::Result<()>) -> String {
        *r.unwrap_err().downcast::<String>().unwrap()
    }

    #[tokio::test]
    async fn returns_the_value_once_the_probe_succeeds() {
        let mut n = 0;
        let v = eventually("three calls", Duration::from_secs(5), async || {
            n += 1;
            if n == 3 { Ok(n * 10) } else { Err(n) }
        })
        .await;
        assert_eq!((v, n), (30, 3));
    }

    #[test]
    fn the_timeout_names_what_and_the_last_value() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let r = std::panic::catch_unwind(|| {
            let mut n = 0;
            rt.block_on(eventually(
                "the answer",
                Duration::from_millis(50),
                async || {
                    n += 1;
                    Err::<(), _>(format!("try {n}"))
                },
            ));
        });
        let msg = panic_text(r);
        assert!(
            msg.contains("waiting for the answer; last observed: \"try "),
            "{msg}"
        );
        assert!(
            !msg.contains("\"try 1\""),
            "the last value, not the first: {msg}"
        );
    }

    #[tokio::test]
    async fn within_gives_the_last_value_back_without_panicking() {
        let r = within(Duration::ZERO, POLL, async || Err::<(), _>(41)).await;
        assert_eq!(r, Err(41));
    }

    #[test]
    fn blocking_probe_runs_at_least_once() {
        assert_eq!(
            eventually_blocking("x", Duration::ZERO, || Ok::<_, ()>(7)),
            7
        );
        let r = std::panic::catch_unwind(|| {
            eventually_blocking("never", Duration::from_millis(50), || Err::<(), _>("no"));
        });
        assert!(
            panic_text(r).contains("waiting for never; last observed: \"no\""),
            "the message names what and the value"
        );
    }

    #[test]
    fn text_reads_as_written() {
        assert_eq!(format!("{:?}", Text("a \"b\"\nc".into())), "\na \"b\"\nc");
    }
}
