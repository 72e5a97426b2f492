//! The capped copy of an HTTP body taken while it streams through the proxy.
//!
//! [`TeeBody`] wraps the body being forwarded: every frame goes on to the peer untouched and at
//! once (an SSE stream must reach the client event by event), while the first `cap` bytes of
//! data are copied into a [`BodyCapture`]. When the body is over — its end, an error, or the
//! wrapper being dropped because a side went away — the copy is handed over once, as a
//! [`Captured`], through a oneshot channel; the capture pipeline decodes and stores it later,
//! away from the traffic path. [`is_textual`] is the content-type gate deciding whether a body
//! is worth storing at all.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::oneshot;

/// First allocation of a capture buffer; most bodies are small, and reserving the whole cap
/// (2 MiB by default) up front for every request would dwarf them.
const INITIAL_CAPACITY: usize = 8 * 1024;

/// Accumulates the first `cap` bytes of a body while counting all of them.
#[derive(Debug)]
pub(crate) struct BodyCapture {
    buf: Vec<u8>,
    cap: usize,
    wire_size: u64,
    first_byte: Option<Instant>,
    trailers: Option<HeaderMap>,
    /// When the first chunks passed: (bytes seen after the chunk, when). Bounded by
    /// [`TIMELINE_CHUNKS`]; the LLM layer finds when the first content event arrived in it.
    timeline: Vec<(u64, Instant)>,
}

/// Chunks whose arrival time is kept per body. Streams put their first content event within the
/// first few chunks (Anthropic: `message_start`, `content_block_start`, `ping`, then deltas).
pub(crate) const TIMELINE_CHUNKS: usize = 64;

impl BodyCapture {
    /// An empty capture that keeps at most `cap` bytes; no memory is reserved until data comes.
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            buf: Vec::new(),
            cap,
            wire_size: 0,
            first_byte: None,
            trailers: None,
            timeline: Vec::new(),
        }
    }

    /// Records one chunk as it passed on the wire: all of it is counted, only what still fits
    /// under the cap is kept. The first non-empty chunk stamps the first-byte time.
    pub(crate) fn push(&mut self, chunk: &[u8]) {
        if chunk.is_empty() {
            return;
        }
        let now = Instant::now();
        if self.first_byte.is_none() {
            self.first_byte = Some(now);
        }
        self.wire_size = self.wire_size.saturating_add(chunk.len() as u64);
        if self.timeline.len() < TIMELINE_CHUNKS {
            self.timeline.push((self.wire_size, now));
        }
        let take = self.cap.saturating_sub(self.buf.len()).min(chunk.len());
        if take == 0 {
            return;
        }
        let needed = self.buf.len() + take;
        if needed > self.buf.capacity() {
            // Grow geometrically, but never past the cap: plain `Vec` doubling would turn a
            // 2 MiB cap into 4 MiB of capacity for every large body in flight.
            let target = needed
                .max(self.buf.capacity().saturating_mul(2))
                .max(INITIAL_CAPACITY)
                .min(self.cap);
            self.buf.reserve_exact(target - self.buf.len());
        }
        self.buf.extend_from_slice(&chunk[..take]);
    }

    /// Keeps the body's trailers (HTTP/2 or chunked HTTP/1.1), replacing earlier ones.
    pub(crate) fn set_trailers(&mut self, trailers: HeaderMap) {
        self.trailers = Some(trailers);
    }

    /// Number of body bytes seen so far, kept or not (after transfer decoding, before any
    /// content decoding).
    #[cfg(test)]
    pub(crate) fn wire_size(&self) -> u64 {
        self.wire_size
    }

    /// True once more bytes have passed than the cap allowed to keep.
    pub(crate) fn truncated(&self) -> bool {
        self.wire_size > self.buf.len() as u64
    }

    /// Ends the capture. `complete` says whether the body reached its end; pass false when it
    /// was dropped or failed midway, so readers know the copy is a prefix even if not truncated.
    pub(crate) fn finish(self, complete: bool) -> Captured {
        let truncated = self.truncated();
        Captured {
            bytes: Bytes::from(self.buf),
            wire_size: self.wire_size,
            truncated,
            complete,
            trailers: self.trailers,
            first_byte: self.first_byte,
            timeline: self.timeline,
            ended: Instant::now(),
        }
    }
}

/// The copy of one body, handed over when the body is over.
#[derive(Debug, Clone)]
pub(crate) struct Captured {
    /// The first `cap` bytes of the body, exactly as they passed (still content-encoded).
    pub(crate) bytes: Bytes,
    /// Total number of body bytes that passed, including those not kept.
    pub(crate) wire_size: u64,
    /// True when `bytes` is shorter than what passed because of the cap.
    pub(crate) truncated: bool,
    /// False when the body was dropped or errored before its end.
    pub(crate) complete: bool,
    /// The trailers, when the body had any.
    #[cfg_attr(not(test), allow(dead_code))] // read by the tests
    pub(crate) trailers: Option<HeaderMap>,
    /// When the first non-empty data frame passed; `None` for an empty body.
    #[cfg_attr(not(test), allow(dead_code))] // read by the tests
    pub(crate) first_byte: Option<Instant>,
    /// When the first chunks passed (see [`BodyCapture`]).
    pub(crate) timeline: Vec<(u64, Instant)>,
    /// When the body ended, failed or was dropped.
    pub(crate) ended: Instant,
}

/// Who gets the copy once the body is over.
enum Done {
    /// A channel, for a pipeline that awaits the copy.
    Channel(oneshot::Sender<Captured>),
    /// A function run where the body ends, on the task that forwards it: no task and no
    /// wake-up per body (see [`TeeBody::calling`]).
    Call(Box<dyn FnOnce(Captured) + Send + Sync>),
}

/// What is still owed once the body is over; taken exactly once.
struct Pending {
    capture: BodyCapture,
    done: Done,
}

/// An [`http_body::Body`] that forwards its inner body frame by frame, unchanged and without
/// buffering, while keeping a capped copy of the data for capture (see the module docs).
///
/// The inner body is boxed so that any body can be wrapped without pin projection (the crate
/// forbids `unsafe`); one small allocation per body is noise next to the frames themselves.
pub(crate) struct TeeBody<B: Body> {
    inner: Pin<Box<B>>,
    pending: Option<Pending>,
}

impl<B: Body> TeeBody<B> {
    /// Wraps `inner`, keeping at most `cap` bytes of it; `done` receives the copy once.
    pub(crate) fn new(inner: B, cap: usize, done: oneshot::Sender<Captured>) -> Self {
        Self::with(inner, cap, Done::Channel(done))
    }

    /// Wraps `inner` like [`TeeBody::new`], but hands the copy to `done`, called once where
    /// the body ends (the frame that ends it, or the drop) on the task forwarding it. For
    /// quick work only: it runs before that last frame reaches the peer.
    pub(crate) fn calling(
        inner: B,
        cap: usize,
        done: impl FnOnce(Captured) + Send + Sync + 'static,
    ) -> Self {
        Self::with(inner, cap, Done::Call(Box::new(done)))
    }

    fn with(inner: B, cap: usize, done: Done) -> Self {
        Self {
            inner: Box::pin(inner),
            pending: Some(Pending {
                capture: BodyCapture::new(cap),
                done,
            }),
        }
    }

    /// Hands the copy over if it has not been yet.
    fn finish(&mut self, complete: bool) {
        if let Some(pending) = self.pending.take() {
            let captured = pending.capture.finish(complete);
            match pending.done {
                // The receiver is gone when the transaction was abandoned; the traffic must
                // not care whether anyone still wants the copy.
                Done::Channel(tx) => {
                    let _ = tx.send(captured);
                }
                Done::Call(f) => f(captured),
            }
        }
    }
}

impl<B> Body for TeeBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        // `TeeBody` is `Unpin` whatever `B` is (the inner body sits in a `Pin<Box<_>>`).
        let this = self.get_mut();
        let polled = ready!(this.inner.as_mut().poll_frame(cx));
        match &polled {
            Some(Ok(frame)) => {
                if let Some(pending) = this.pending.as_mut() {
                    if let Some(data) = frame.data_ref() {
                        pending.capture.push(data);
                    } else if let Some(trailers) = frame.trailers_ref() {
                        pending.capture.set_trailers(trailers.clone());
                    }
                }
                // hyper stops polling as soon as `is_end_stream` is true (Content-Length
                // bodies never yield the final `None`), so the end must be noticed here or the
                // copy would only be sent on drop, marked incomplete.
                if this.inner.is_end_stream() {
                    this.finish(true);
                }
            }
            Some(Err(_)) => this.finish(false),
            None => this.finish(true),
        }
        Poll::Ready(polled)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B: Body> Drop for TeeBody<B> {
    fn drop(&mut self) {
        // A body that is already at its end (an empty request body, say) may be dropped
        // without ever being polled; that is a complete body, not an aborted one.
        let complete = self.inner.is_end_stream();
        self.finish(complete);
    }
}

impl<B: Body> std::fmt::Debug for TeeBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TeeBody")
            .field("captured", &self.pending.as_ref().map(|p| &p.capture))
            .finish_non_exhaustive()
    }
}

/// Exact `application/*` types whose bodies are text worth storing (greyproxy's list plus the
/// newline-delimited JSON and YAML spellings seen in API traffic).
const TEXTUAL_APPLICATION_TYPES: &[&str] = &[
    "application/json",
    "application/xml",
    "application/javascript",
    "application/x-javascript",
    "application/ecmascript",
    "application/x-www-form-urlencoded",
    "application/graphql",
    "application/soap+xml",
    "application/xhtml+xml",
    "application/x-ndjson",
    "application/ndjson",
    "application/jsonl",
    "application/x-jsonlines",
    "application/yaml",
    "application/x-yaml",
];

/// True when a body of this `Content-Type` is text worth storing: `text/*` (so SSE's
/// `text/event-stream`), the JSON/XML/JavaScript/form/GraphQL/NDJSON `application/` types,
/// and anything ending in `+json` or `+xml`. Parameters, surrounding whitespace and case are
/// ignored; a missing or empty type is not textual.
pub(crate) fn is_textual(content_type: Option<&str>) -> bool {
    let Some(content_type) = content_type else {
        return false;
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if let Some(subtype) = essence.strip_prefix("text/") {
        return !subtype.is_empty();
    }
    essence.ends_with("+json")
        || essence.ends_with("+xml")
        || TEXTUAL_APPLICATION_TYPES.contains(&essence.as_str())
}

#[cfg(test)]
mod tests;
