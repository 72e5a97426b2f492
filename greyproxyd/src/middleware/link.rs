//! A live transport to one middleware, the same shape for both kinds: JSON documents go out on
//! a bounded channel, frames come in on another, and closing is one call that also reaps
//! whatever the transport owns (for stdio, the child's whole process group).

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Outgoing messages queued per connection before writers wait (backpressure, not a buffer
/// that grows with traffic).
pub(crate) const OUT_QUEUE: usize = 256;
/// Incoming frames queued before the transport stops reading.
pub(crate) const IN_QUEUE: usize = 256;

/// What the transport hands to the client: one frame, or why the transport ended.
pub(crate) type Inbound = Result<Vec<u8>, Ended>;

/// Why a transport ended; the text becomes the middleware's `last_error`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Ended {
    /// Closed from our side (shutdown, or the client went away).
    #[error("closed")]
    Closed,
    /// The middleware sent a WebSocket close frame without a code.
    #[error("middleware closed the socket")]
    SocketClosed,
    /// The middleware sent a WebSocket close frame.
    #[error("middleware closed the socket ({code} {reason})")]
    SocketClosedWith {
        /// Close code.
        code: u16,
        /// Close reason.
        reason: String,
    },
    /// The WebSocket failed.
    #[error("websocket: {0}")]
    WebSocket(Box<tokio_tungstenite::tungstenite::Error>),
    /// The WebSocket connection ended without a close frame.
    #[error("connection closed")]
    ConnectionClosed,
    /// The stdio child closed its stdout.
    #[error("middleware closed stdout (exited?)")]
    StdoutClosed,
    /// Reading the stdio child's stdout failed (or a line was too long).
    #[error("reading stdout: {0}")]
    Stdout(std::io::Error),
}

/// One established transport.
pub(crate) struct Link {
    /// JSON documents to send, one per frame/line.
    pub(crate) out: mpsc::Sender<String>,
    /// Frames received; an `Err` is the last item (the transport ended and why).
    pub(crate) inbound: mpsc::Receiver<Inbound>,
    /// stdio: the child's pid (= its process group).
    pub(crate) pid: Option<u32>,
    /// Cancelled to close the transport.
    close: CancellationToken,
    /// Finishes once everything the transport owns is gone (child reaped, socket closed).
    reaper: JoinHandle<()>,
}

impl Link {
    /// Assembles a link from its parts (used by the transports).
    pub(crate) fn new(
        out: mpsc::Sender<String>,
        inbound: mpsc::Receiver<Inbound>,
        pid: Option<u32>,
        close: CancellationToken,
        reaper: JoinHandle<()>,
    ) -> Link {
        Link {
            out,
            inbound,
            pid,
            close,
            reaper,
        }
    }

    /// Closes the transport and waits until it is fully gone.
    pub(crate) async fn shutdown(mut self) {
        self.close.cancel();
        let _ = (&mut self.reaper).await;
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // A link dropped without `shutdown` (its task was cancelled) still closes; the reaper
        // task runs on by itself and kills the process group.
        self.close.cancel();
    }
}
