//! The dashboard's link to the daemon: a task that keeps one control connection open,
//! reconnecting with backoff, forwards commands tagged by the caller and routes each reply back
//! with its tag. The dashboard never waits on the network: it sends [`Request`]s and receives
//! [`LinkEvent`]s on channels.
//!
//! The endpoint (URL and token) is resolved again before every attempt, because a restarted
//! daemon may listen on another port (port 0) and the token may have been rotated.

use std::collections::HashMap;
use std::time::Duration;

use greyproxy_protocol::{Command, EventEnvelope, Reply, RequestId};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::client::{self, ClientError, Incoming, Target};

/// First reconnection delay; doubled after each failure up to `MAX_BACKOFF`.
pub const MIN_BACKOFF: Duration = Duration::from_millis(200);
/// How often a connected link measures the round-trip time.
pub const RTT_EVERY: Duration = Duration::from_secs(5);

/// Longest reconnection delay.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A command to send, with a caller-chosen tag returned with its reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Request<T> {
    /// Returned with the reply.
    pub tag: T,
    /// What to send.
    pub command: Command,
}

/// What the link reports.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkEvent<T> {
    /// An attempt to connect starts.
    Connecting {
        /// 1 for the first attempt after a loss.
        attempt: u32,
        /// Where.
        url: String,
    },
    /// Connected and greeted.
    Connected {
        /// Daemon version from the greeting.
        server_version: String,
        /// Where.
        url: String,
    },
    /// The attempt failed or the connection was lost; the next attempt follows `retry_in`.
    Disconnected {
        /// Why, one line.
        reason: String,
        /// The daemon refused the token (reconnecting goes on: the token may be rotated).
        unauthorized: bool,
        /// Delay before the next attempt.
        retry_in: Duration,
    },
    /// A broadcast event.
    Event(EventEnvelope),
    /// The daemon dropped `missed` events for this client.
    Lagged(u64),
    /// The round-trip time of a `ping` (sent every [`RTT_EVERY`] while connected).
    Rtt(Duration),
    /// The reply to a [`Request`]: `Ok` for any non-error reply, `Err` with the daemon's error
    /// text, or with a local reason when the command could not be sent or its answer was lost.
    Reply {
        /// The request's tag.
        tag: T,
        /// The outcome.
        outcome: Result<Reply, String>,
    },
}

/// Starts the link task. It ends when either channel's other side is dropped.
pub fn spawn<T, F, E>(
    resolve: F,
) -> (
    mpsc::Sender<Request<T>>,
    mpsc::Receiver<LinkEvent<T>>,
    JoinHandle<()>,
)
where
    T: Send + 'static,
    E: Into<Target> + Send + 'static,
    F: Fn() -> Result<E, String> + Send + 'static,
{
    let (req_tx, req_rx) = mpsc::channel(256);
    // Bounded: when the UI falls behind, the link stops reading, the daemon's per-client queue
    // fills and the daemon sends `lagged`, which makes the UI resync. Nothing grows unbounded.
    let (ev_tx, ev_rx) = mpsc::channel(4096);
    let task = tokio::spawn(run(resolve, req_rx, ev_tx));
    (req_tx, ev_rx, task)
}

/// Ends the task when the UI is gone.
struct Gone;

async fn run<T, F, E>(
    resolve: F,
    mut req_rx: mpsc::Receiver<Request<T>>,
    ev_tx: mpsc::Sender<LinkEvent<T>>,
) where
    T: Send + 'static,
    E: Into<Target> + Send + 'static,
    F: Fn() -> Result<E, String> + Send + 'static,
{
    let mut backoff = MIN_BACKOFF;
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let (reason, unauthorized) = match resolve().map(Into::into) {
            Err(e) => (e, false),
            Ok(ep) => {
                let ep: Target = ep;
                let connecting = LinkEvent::Connecting {
                    attempt,
                    url: ep.label().to_string(),
                };
                if ev_tx.send(connecting).await.is_err() {
                    return;
                }
                match client::connect_to(&ep).await {
                    Ok(conn) => {
                        backoff = MIN_BACKOFF;
                        attempt = 0;
                        match session(conn, ep.label(), &mut req_rx, &ev_tx).await {
                            Ok(e) => (e.to_string(), false),
                            Err(Gone) => return,
                        }
                    }
                    Err(e) => {
                        let unauthorized = e.is_refusal();
                        (e.to_string(), unauthorized)
                    }
                }
            }
        };
        let retry_in = backoff;
        let lost = LinkEvent::Disconnected {
            reason,
            unauthorized,
            retry_in,
        };
        if ev_tx.send(lost).await.is_err() {
            return;
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
        // While waiting, commands fail at once rather than queue: the operator sees "not
        // connected" instead of a decision applied minutes later.
        let sleep = tokio::time::sleep(retry_in);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => break,
                r = req_rx.recv() => {
                    let Some(r) = r else { return };
                    let failed = LinkEvent::Reply { tag: r.tag, outcome: Err("not connected to the daemon".into()) };
                    if ev_tx.send(failed).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// Runs one connection until it fails; returns why, or `Gone` when the UI went away.
async fn session<T: Send + 'static>(
    mut conn: client::Connection,
    url: &str,
    req_rx: &mut mpsc::Receiver<Request<T>>,
    ev_tx: &mpsc::Sender<LinkEvent<T>>,
) -> Result<ClientError, Gone> {
    let hello = LinkEvent::Connected {
        server_version: conn.server_version.clone(),
        url: url.to_string(),
    };
    ev_tx.send(hello).await.map_err(|_| Gone)?;
    let mut inflight: HashMap<RequestId, T> = HashMap::new();
    // The first ping goes at once, so that the Hosts view has a figure soon after connecting.
    let mut rtt_tick = tokio::time::interval(RTT_EVERY);
    let mut ping: Option<(RequestId, tokio::time::Instant)> = None;
    let err = loop {
        tokio::select! {
            _ = rtt_tick.tick(), if ping.is_none() => {
                match conn.send(greyproxy_protocol::Command::Ping).await {
                    Ok(id) => ping = Some((id, tokio::time::Instant::now())),
                    Err(e) => break e,
                }
            }
            m = conn.recv() => {
                let ev = match m {
                    Err(e) => break e,
                    Ok(Incoming::Event(e)) => LinkEvent::Event(e),
                    Ok(Incoming::Reply(Reply::Lagged { data })) => LinkEvent::Lagged(data.missed),
                    Ok(Incoming::Reply(r))
                        if ping.as_ref().is_some_and(|(id, _)| client::reply_id(&r) == Some(id)) =>
                    {
                        let Some((_, sent)) = ping.take() else { continue };
                        LinkEvent::Rtt(sent.elapsed())
                    }
                    Ok(Incoming::Reply(r)) => {
                        let Some(tag) = client::reply_id(&r).and_then(|id| inflight.remove(id)) else {
                            continue; // not ours (or a greeting): nothing waits for it
                        };
                        let outcome = match r {
                            Reply::Error { error, .. } => Err(error),
                            r => Ok(r),
                        };
                        LinkEvent::Reply { tag, outcome }
                    }
                };
                ev_tx.send(ev).await.map_err(|_| Gone)?;
            }
            r = req_rx.recv() => {
                let Some(r) = r else { return Err(Gone) };
                match conn.send(r.command).await {
                    Ok(id) => { inflight.insert(id, r.tag); }
                    Err(e) => {
                        let failed = LinkEvent::Reply { tag: r.tag, outcome: Err(e.to_string()) };
                        ev_tx.send(failed).await.map_err(|_| Gone)?;
                        break e;
                    }
                }
            }
        }
    };
    for (_, tag) in inflight.drain() {
        let failed = LinkEvent::Reply {
            tag,
            outcome: Err("connection lost before the daemon answered".into()),
        };
        ev_tx.send(failed).await.map_err(|_| Gone)?;
    }
    Ok(err)
}
