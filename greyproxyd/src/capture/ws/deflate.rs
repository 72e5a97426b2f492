//! permessage-deflate (RFC 7692) for the passive tap: what the 101 negotiated, and one
//! inflater per direction that follows the sender's compression context.
//!
//! greyproxy rewrote the client's offer to force `*_no_context_takeover` so that every message
//! could be inflated alone. We relay the handshake untouched instead (docs/design.md#capture), so
//! the peers usually keep their LZ77 window across messages (the default of most libraries): a
//! message may refer back into earlier ones, and only an inflater that has seen *every* earlier
//! message of that direction, in order, can decode it. [`Inflater`] is that persistent state:
//! a raw-deflate `flate2::Decompress` (a 15-bit window decodes any smaller negotiated
//! `*_max_window_bits`), the `00 00 FF FF` tail the sender stripped appended at each message
//! end, and a reset per message only when that direction's `*_no_context_takeover` was agreed.
//!
//! Output goes to an [`Inflated`], which keeps at most a given number of bytes but counts them
//! all and refuses to go past a decompression-bomb cap: memory stays bounded whatever the
//! ratio, and a message larger than the capture cap still runs through the inflater in full,
//! which keeps the context in step for the messages after it. The cap is exact: the decoder is
//! never given room for more than one byte past it, and no more than the cap is ever counted
//! or kept, however the compressed bytes are split into pushes.

use std::borrow::Cow;

use flate2::{Decompress, FlushDecompress, Status};
use http::HeaderMap;
use http::header::SEC_WEBSOCKET_EXTENSIONS;
use thiserror::Error;

use super::Direction;

/// The extension token.
pub const EXTENSION: &str = "permessage-deflate";

/// The empty stored block's `LEN`/`NLEN` that a sender strips from every message (RFC 7692
/// §7.2.1) and a receiver appends back.
const TAIL: [u8; 4] = [0x00, 0x00, 0xFF, 0xFF];

/// The LZ77 window of DEFLATE (and of a 15-bit `max_window_bits`, the largest allowed).
const WINDOW: usize = 32 * 1024;

/// Output scratch: the last [`WINDOW`] bytes stay in it as history, the rest is room to write.
const SCRATCH: usize = 2 * WINDOW;

/// Slide the history to the front when less room than this is left, so each call to the
/// decompressor gets a decent amount of output space.
const MIN_ROOM: usize = 4 * 1024;

/// The permessage-deflate parameters agreed in the 101 response.
///
/// Only the response counts: it carries what the server accepted, and RFC 7692 lets an
/// endpoint that offered no context takeover behave so even if the answer omits it, which is
/// harmless for decoding (not resetting only matters when a sender *does* reuse context).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Negotiated {
    /// permessage-deflate is in effect; RSV1 marks compressed messages.
    pub enabled: bool,
    /// The client resets its compressor per message; the client-to-server inflater may too.
    pub client_no_context_takeover: bool,
    /// The server resets its compressor per message; the server-to-client inflater may too.
    pub server_no_context_takeover: bool,
    /// `client_max_window_bits` when given a valid value (8..=15); informational, since a
    /// 15-bit inflater decodes any smaller window.
    pub client_max_window_bits: Option<u8>,
    /// `server_max_window_bits` when given a valid value (8..=15); informational.
    pub server_max_window_bits: Option<u8>,
}

impl Negotiated {
    /// Reads every `Sec-WebSocket-Extensions` field of a 101 response (values that are not
    /// visible ASCII are ignored).
    pub fn from_headers(headers: &HeaderMap) -> Self {
        Self::parse(
            headers
                .get_all(SEC_WEBSOCKET_EXTENSIONS)
                .iter()
                .filter_map(|value| value.to_str().ok()),
        )
    }

    /// Parses `Sec-WebSocket-Extensions` values (one per header field; each may list several
    /// extensions). The first `permessage-deflate` element counts, the rest are ignored;
    /// without one the result is disabled. Parameters: with or without a value, the value a
    /// token or a quoted string. Unknown parameters and unusable window sizes are ignored:
    /// the peers already agreed, and the tap only needs to follow what they do.
    pub fn parse<'a, I>(values: I) -> Self
    where
        I: IntoIterator<Item = &'a str>,
    {
        for value in values {
            for element in split_unquoted(value, ',') {
                let mut parts = split_unquoted(element, ';').into_iter();
                let name = parts.next().unwrap_or_default().trim();
                if !name.eq_ignore_ascii_case(EXTENSION) {
                    continue;
                }
                let mut negotiated = Self {
                    enabled: true,
                    ..Self::default()
                };
                for param in parts {
                    let (key, value) = match param.split_once('=') {
                        Some((key, value)) => (key.trim(), Some(unquote(value.trim()))),
                        None => (param.trim(), None),
                    };
                    let bits = || value.as_deref().and_then(window_bits);
                    match key.to_ascii_lowercase().as_str() {
                        "client_no_context_takeover" => {
                            negotiated.client_no_context_takeover = true
                        }
                        "server_no_context_takeover" => {
                            negotiated.server_no_context_takeover = true
                        }
                        "client_max_window_bits" => negotiated.client_max_window_bits = bits(),
                        "server_max_window_bits" => negotiated.server_max_window_bits = bits(),
                        _ => {}
                    }
                }
                return negotiated;
            }
        }
        Self::default()
    }

    /// Whether the sender of `direction` resets its compression context per message.
    pub fn no_context_takeover(&self, direction: Direction) -> bool {
        match direction {
            Direction::ClientToServer => self.client_no_context_takeover,
            Direction::ServerToClient => self.server_no_context_takeover,
        }
    }
}

/// Splits on `sep` outside quoted strings (which may contain backslash escapes).
fn split_unquoted(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            parts.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&s[start..]);
    parts
}

/// The value of a parameter: a token as is, a quoted string without quotes and escapes.
fn unquote(value: &str) -> Cow<'_, str> {
    match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) if inner.contains('\\') => {
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                out.push(if c == '\\' {
                    chars.next().unwrap_or('\\')
                } else {
                    c
                });
            }
            Cow::Owned(out)
        }
        Some(inner) => Cow::Borrowed(inner),
        None => Cow::Borrowed(value),
    }
}

/// A `*_max_window_bits` value, if it is one RFC 7692 allows.
fn window_bits(value: &str) -> Option<u8> {
    value
        .parse::<u8>()
        .ok()
        .filter(|bits| (8..=15).contains(bits))
}

/// Why a compressed message could not be inflated. The inflater's context is then unusable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DeflateError {
    /// The message inflates to more than the cap (a decompression bomb, or just too big).
    #[error("inflated message exceeds the decompression cap of {cap} bytes")]
    TooLarge {
        /// The cap, in bytes.
        cap: usize,
    },
    /// The data is not valid DEFLATE (or does not continue the stream seen so far).
    #[error("corrupt DEFLATE data: {0}")]
    Corrupt(String),
    /// The decompressor consumed nothing and produced nothing although it had input and room.
    #[error("DEFLATE decoder stalled with {0} bytes of input left")]
    Stalled(usize),
}

/// The output of one message: the first `keep` bytes, the count of all of them, and a cap on
/// that count beyond which inflating is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inflated {
    /// The kept bytes: at most `keep` of them.
    pub data: Vec<u8>,
    /// Every byte produced so far, kept or not; never more than the cap.
    pub total: usize,
    /// History bytes decoded again (and discarded) to restart after BFINAL blocks: as much
    /// work as output, so they count against `max_total` too.
    replayed: usize,
    keep: usize,
    max_total: usize,
}

impl Inflated {
    /// Keeps at most `keep` bytes; producing more than `max_total` is an error.
    pub fn new(keep: usize, max_total: usize) -> Self {
        Self {
            data: Vec::new(),
            total: 0,
            replayed: 0,
            keep,
            max_total,
        }
    }

    /// True when more was produced than kept.
    pub fn is_truncated(&self) -> bool {
        self.total > self.data.len()
    }

    /// Counts `chunk` and keeps what fits. Past the cap it counts and keeps only the bytes up
    /// to the cap, then fails: `total` never exceeds the cap, whatever the chunk sizes.
    pub fn write(&mut self, chunk: &[u8]) -> Result<(), DeflateError> {
        let (fits, rest) = chunk.split_at(chunk.len().min(self.room()));
        self.total += fits.len();
        let keep = self.keep.saturating_sub(self.data.len());
        self.data.extend_from_slice(&fits[..keep.min(fits.len())]);
        if rest.is_empty() {
            Ok(())
        } else {
            Err(self.too_large())
        }
    }

    /// How many more bytes may be produced before the cap is reached.
    fn room(&self) -> usize {
        self.max_total
            .saturating_sub(self.total.saturating_add(self.replayed))
    }

    /// Counts `len` history bytes about to be replayed into a restarted decoder; fails, without
    /// counting them, if they do not fit under the cap.
    fn replay(&mut self, len: usize) -> Result<(), DeflateError> {
        if len > self.room() {
            return Err(self.too_large());
        }
        self.replayed += len;
        Ok(())
    }

    fn too_large(&self) -> DeflateError {
        DeflateError::TooLarge {
            cap: self.max_total,
        }
    }
}

/// The decompression state of one direction of a WebSocket connection.
///
/// Feed each compressed message with [`push`](Self::push) (in as many pieces as it arrives)
/// then [`finish`](Self::finish), or whole with [`inflate_message`](Self::inflate_message).
/// Every compressed message of the direction must go through, in order, or later messages that
/// refer back to it decode wrongly. After an error the context is lost: [`reset`](Self::reset)
/// or drop the inflater.
pub struct Inflater {
    decompress: Decompress,
    no_context_takeover: bool,
    /// Output scratch, allocated on first use; `scratch[..filled]` ends with the history.
    scratch: Vec<u8>,
    filled: usize,
    /// The last block had BFINAL set: the decoder stopped, and a new one must take over.
    ended: bool,
    /// Some compressed bytes of the current message were pushed.
    fed: bool,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater")
            .field("no_context_takeover", &self.no_context_takeover)
            .field("total_in", &self.decompress.total_in())
            .field("total_out", &self.decompress.total_out())
            .field("ended", &self.ended)
            .finish()
    }
}

impl Inflater {
    /// A fresh inflater; with `no_context_takeover` it resets after every message.
    pub fn new(no_context_takeover: bool) -> Self {
        Self {
            decompress: Decompress::new(false),
            no_context_takeover,
            scratch: Vec::new(),
            filled: 0,
            ended: false,
            fed: false,
        }
    }

    /// The inflater for the messages sent in `direction`.
    pub fn for_direction(negotiated: &Negotiated, direction: Direction) -> Self {
        Self::new(negotiated.no_context_takeover(direction))
    }

    /// Inflates one whole compressed message (as sent: the tail stripped). More than `max_out`
    /// bytes of output is an error naming the cap.
    pub fn inflate_message(
        &mut self,
        data: &[u8],
        max_out: usize,
    ) -> Result<Vec<u8>, DeflateError> {
        let mut out = Inflated::new(max_out, max_out);
        self.push(data, &mut out)?;
        self.finish(&mut out)?;
        Ok(out.data)
    }

    /// Feeds the next piece of the current message's compressed payload.
    pub fn push(&mut self, mut input: &[u8], out: &mut Inflated) -> Result<(), DeflateError> {
        if self.scratch.is_empty() {
            self.scratch = vec![0; SCRATCH];
        }
        self.fed |= !input.is_empty();
        loop {
            if self.ended {
                if input.is_empty() {
                    return Ok(());
                }
                self.restart(out)?;
            }
            if SCRATCH - self.filled < MIN_ROOM {
                self.scratch
                    .copy_within(self.filled - WINDOW..self.filled, 0);
                self.filled = WINDOW;
            }
            // Never let the decoder run more than one byte past the cap: with room for exactly
            // `out.room()` bytes a message that ends right at the cap could not be told from
            // one that goes on, so one byte more is decoded (into the scratch only) to find out,
            // and `write` refuses it. Without this bound one call could decode a whole scratch
            // (up to 60 KiB) past the cap, and `total` went that far over.
            let room = (SCRATCH - self.filled).min(out.room().saturating_add(1));
            let (in_before, out_before) = (self.decompress.total_in(), self.decompress.total_out());
            let status = self
                .decompress
                .decompress(
                    input,
                    &mut self.scratch[self.filled..self.filled + room],
                    FlushDecompress::None,
                )
                .map_err(|e| DeflateError::Corrupt(e.to_string()))?;
            // The deltas are bounded by the slices handed over; `min` only guards the indexing.
            let consumed = ((self.decompress.total_in() - in_before) as usize).min(input.len());
            let produced = ((self.decompress.total_out() - out_before) as usize).min(room);
            input = &input[consumed..];
            let start = self.filled;
            self.filled += produced;
            out.write(&self.scratch[start..self.filled])?;
            if status == Status::StreamEnd {
                self.ended = true;
                continue;
            }
            if produced == room {
                // Output space ran out: the decoder may hold more, even with no input left.
                continue;
            }
            if input.is_empty() {
                return Ok(());
            }
            if consumed == 0 && produced == 0 {
                return Err(DeflateError::Stalled(input.len()));
            }
        }
    }

    /// Ends the current message: appends the stripped tail, then resets if this direction's
    /// sender does not take its context over to the next message.
    pub fn finish(&mut self, out: &mut Inflated) -> Result<(), DeflateError> {
        // The tail completes the empty stored block whose header ends the sender's data. With
        // no data at all (an empty payload with RSV1), or right after a BFINAL block whose
        // empty stored block a sender left out, there is no such header, and the tail would
        // instead open a bogus stored block that swallows the next message.
        let result = if self.ended || !self.fed {
            Ok(())
        } else {
            self.push(&TAIL, out)
        };
        self.fed = false;
        if self.no_context_takeover {
            self.reset();
        }
        result
    }

    /// Forgets all context: the next message is decoded as the first of a stream.
    pub fn reset(&mut self) {
        self.decompress.reset(false);
        self.filled = 0;
        self.ended = false;
        self.fed = false;
    }

    /// Continues after a BFINAL block. RFC 7692 §7.2.1 lets more blocks follow one with BFINAL
    /// set, in the same message or the next, and the sender's window carries on across it.
    /// zlib-style decoders stop at BFINAL, and the miniz backend cannot be given a preset
    /// dictionary, so the new decoder is primed with a stored block holding the last 32 KiB of
    /// output: that puts exactly the sender's history in its window. Its output is discarded,
    /// but the work is charged to `out`: a run of tiny BFINAL blocks would otherwise make every
    /// two input bytes cost a 32 KiB replay, unbounded by the decompression cap.
    fn restart(&mut self, out: &mut Inflated) -> Result<(), DeflateError> {
        self.decompress.reset(false);
        self.ended = false;
        let history = &self.scratch[self.filled.saturating_sub(WINDOW)..self.filled];
        if history.is_empty() {
            return Ok(());
        }
        out.replay(history.len())?;
        // `history` is at most WINDOW (32 KiB) long, so it fits a stored block's 16-bit LEN.
        let len = history.len() as u16;
        let mut primer = Vec::with_capacity(5 + history.len());
        primer.push(0x00); // BFINAL=0, BTYPE=00 (stored), padding to the byte boundary
        primer.extend_from_slice(&len.to_le_bytes());
        primer.extend_from_slice(&(!len).to_le_bytes());
        primer.extend_from_slice(history);
        let mut sink = vec![0; history.len()];
        let mut input = primer.as_slice();
        let mut written = 0;
        while !input.is_empty() {
            let (in_before, out_before) = (self.decompress.total_in(), self.decompress.total_out());
            self.decompress
                .decompress(input, &mut sink[written..], FlushDecompress::None)
                .map_err(|e| DeflateError::Corrupt(e.to_string()))?;
            let consumed = ((self.decompress.total_in() - in_before) as usize).min(input.len());
            let produced = (self.decompress.total_out() - out_before) as usize;
            written = (written + produced).min(sink.len());
            if consumed == 0 && produced == 0 {
                return Err(DeflateError::Stalled(input.len()));
            }
            input = &input[consumed..];
        }
        Ok(())
    }
}

#[cfg(test)]
pub(super) mod tests;
