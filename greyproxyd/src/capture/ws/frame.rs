//! Incremental WebSocket frame parser (RFC 6455 §5.2) for the passive capture tap.
//!
//! The relay forwards the wire bytes untouched; the tap hands a *copy* of each chunk to
//! [`FrameParser::push`], in whatever sizes the socket delivered them, and pulls frames out.
//! Two views of the same state machine exist:
//!
//! * [`FrameParser::next_event`] streams a frame as header, payload pieces and end. Nothing of
//!   the payload is held back, so a frame of any size costs only the chunk being parsed; the
//!   tap uses this to pour compressed payloads straight into its inflater.
//! * [`FrameParser::next_frame`] returns whole frames, keeping at most `cap` payload bytes of
//!   each (larger frames are still parsed to their end and report their declared size), so a
//!   5 MiB frame does not need 5 MiB unless the cap asks for it.
//!
//! Masked payloads are unmasked in the parser's own buffer, never in the caller's bytes (greyproxy
//! unmasked the forwarded bytes in place, a bug: docs/design.md#capture). Violations that make
//! the rest of the stream unparseable (unknown opcode, reserved bit, oversized or fragmented
//! control frame, 64-bit length with its top bit set) are errors, and the parser then stays
//! failed. Non-minimal length encodings and the masking direction are *not* checked: the
//! endpoints enforce those, and a passive tap gains nothing by giving up on a stream its peers
//! accepted.

use thiserror::Error;

/// RSV1 in the first header byte; permessage-deflate uses it to mark a compressed message.
pub const RSV1: u8 = 0x40;
/// RSV2 in the first header byte; no extension we know of defines it.
pub const RSV2: u8 = 0x20;
/// RSV3 in the first header byte; no extension we know of defines it.
pub const RSV3: u8 = 0x10;
/// Longest frame header: 2 bytes, an 8-byte extended length and a 4-byte masking key.
pub const MAX_HEADER_LEN: usize = 14;
/// Largest payload of a control frame (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: u64 = 125;

/// Most bytes reserved up front for a captured frame; the buffer grows as data really arrives,
/// so a header that merely *declares* a huge length cannot make us allocate it.
const INITIAL_CAPACITY: usize = 64 * 1024;

/// Frame opcode (RFC 6455 §5.2); the reserved values are rejected while parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// `0x0`: a later fragment of a text or binary message.
    Continuation,
    /// `0x1`: UTF-8 text message (its first frame).
    Text,
    /// `0x2`: binary message (its first frame).
    Binary,
    /// `0x8`: connection close, optionally with a code and a reason.
    Close,
    /// `0x9`: ping.
    Ping,
    /// `0xA`: pong.
    Pong,
}

impl OpCode {
    /// The opcode for the low four bits of the first header byte, `None` for reserved values.
    pub fn from_bits(bits: u8) -> Option<Self> {
        match bits {
            0x0 => Some(Self::Continuation),
            0x1 => Some(Self::Text),
            0x2 => Some(Self::Binary),
            0x8 => Some(Self::Close),
            0x9 => Some(Self::Ping),
            0xA => Some(Self::Pong),
            _ => None,
        }
    }

    /// The four-bit wire value.
    pub fn bits(self) -> u8 {
        match self {
            Self::Continuation => 0x0,
            Self::Text => 0x1,
            Self::Binary => 0x2,
            Self::Close => 0x8,
            Self::Ping => 0x9,
            Self::Pong => 0xA,
        }
    }

    /// Close, ping and pong: never fragmented, at most 125 bytes, allowed between fragments.
    pub fn is_control(self) -> bool {
        matches!(self, Self::Close | Self::Ping | Self::Pong)
    }
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// FIN: this is the last frame of its message.
    pub fin: bool,
    /// RSV1 (with permessage-deflate: the message is compressed; first frame only).
    pub rsv1: bool,
    /// RSV2; only set when the parser was told an extension allows it.
    pub rsv2: bool,
    /// RSV3; only set when the parser was told an extension allows it.
    pub rsv3: bool,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, when the MASK bit is set (client-to-server frames).
    pub mask: Option<[u8; 4]>,
    /// Payload length as declared by the header.
    pub payload_len: u64,
    /// Size of the header on the wire: 2 to 14 bytes.
    pub header_len: usize,
}

/// A whole frame as returned by [`FrameParser::next_frame`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The header, with the declared payload length.
    pub header: FrameHeader,
    /// The unmasked payload, or its first `cap` bytes for larger frames.
    pub payload: Vec<u8>,
}

impl Frame {
    /// True when the payload was cut at the parser's cap.
    pub fn is_truncated(&self) -> bool {
        (self.payload.len() as u64) < self.header.payload_len
    }
}

/// One step of a frame as streamed by [`FrameParser::next_event`].
#[derive(Debug, PartialEq, Eq)]
pub enum FrameEvent<'a> {
    /// A complete header; the payload follows in zero or more [`FrameEvent::Payload`] pieces.
    Header(FrameHeader),
    /// The next piece of the payload, already unmasked; borrowed from the parser's buffer.
    Payload(&'a [u8]),
    /// The frame's payload is complete (also sent for empty payloads).
    End,
}

/// Why a byte stream is not a valid WebSocket frame sequence.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    /// The opcode is one of the reserved values.
    #[error("reserved opcode {0:#x}")]
    UnknownOpcode(u8),
    /// A reserved bit is set that no negotiated extension defines (the number is 1, 2 or 3).
    #[error("reserved bit RSV{0} set without an extension that defines it")]
    ReservedBit(u8),
    /// A control frame without FIN.
    #[error("fragmented {0:?} control frame")]
    FragmentedControl(OpCode),
    /// A control frame longer than 125 bytes.
    #[error("{opcode:?} control frame of {len} bytes (at most 125 allowed)")]
    ControlTooLong {
        /// The control opcode.
        opcode: OpCode,
        /// The declared payload length.
        len: u64,
    },
    /// A 64-bit extended length with its most significant bit set.
    #[error("64-bit payload length with its most significant bit set")]
    LengthOverflow,
}

/// Where the parser stands in the byte stream.
#[derive(Debug, Clone, Copy)]
enum State {
    /// Waiting for (the rest of) a header.
    Header,
    /// Inside a payload: `remaining` bytes to go, `phase` = offset modulo 4 into the mask.
    Payload {
        remaining: u64,
        mask: Option<[u8; 4]>,
        phase: usize,
    },
}

/// The byte-level state machine; kept apart from [`FrameParser`]'s frame accumulator so a
/// borrowed [`FrameEvent::Payload`] and the accumulator can be used at the same time.
#[derive(Debug)]
struct Stream {
    /// Pushed bytes; `buf[pos..]` are not consumed yet.
    buf: Vec<u8>,
    pos: usize,
    state: State,
    /// Which of [`RSV1`], [`RSV2`], [`RSV3`] may be set.
    allowed_reserved: u8,
    /// Set by the first error; the stream stays failed.
    failed: Option<FrameError>,
}

impl Stream {
    fn push(&mut self, data: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        // Consumed bytes go first. A caller that drains events after every push leaves at most
        // a partial header here, so this moves a handful of bytes, not the chunk.
        if self.pos == self.buf.len() {
            self.buf.clear();
        } else if self.pos > 0 {
            self.buf.drain(..self.pos);
        }
        self.pos = 0;
        self.buf.extend_from_slice(data);
    }

    fn next_event(&mut self) -> Result<Option<FrameEvent<'_>>, FrameError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        match self.state {
            State::Header => {
                let rest = self.buf.get(self.pos..).unwrap_or_default();
                match parse_header(rest, self.allowed_reserved) {
                    Ok(None) => Ok(None),
                    Ok(Some(header)) => {
                        self.pos += header.header_len;
                        self.state = State::Payload {
                            remaining: header.payload_len,
                            mask: header.mask,
                            phase: 0,
                        };
                        Ok(Some(FrameEvent::Header(header)))
                    }
                    Err(error) => {
                        self.failed = Some(error.clone());
                        // Nothing after a framing error can be trusted; let the memory go.
                        self.buf = Vec::new();
                        self.pos = 0;
                        Err(error)
                    }
                }
            }
            State::Payload { remaining: 0, .. } => {
                self.state = State::Header;
                Ok(Some(FrameEvent::End))
            }
            State::Payload {
                remaining,
                mask,
                phase,
            } => {
                let available = self.buf.len().saturating_sub(self.pos);
                if available == 0 {
                    return Ok(None);
                }
                let n = usize::try_from(remaining).map_or(available, |r| r.min(available));
                let (start, end) = (self.pos, self.pos + n);
                let piece = self.buf.get_mut(start..end).unwrap_or_default();
                if let Some(key) = mask {
                    unmask(piece, key, phase);
                }
                self.pos = end;
                self.state = State::Payload {
                    remaining: remaining - n as u64,
                    mask,
                    phase: (phase + n) % 4,
                };
                Ok(Some(FrameEvent::Payload(piece)))
            }
        }
    }
}

/// Parses a header from the start of `bytes`: `Ok(None)` while it is incomplete.
fn parse_header(bytes: &[u8], allowed_reserved: u8) -> Result<Option<FrameHeader>, FrameError> {
    let (Some(&b0), Some(&b1)) = (bytes.first(), bytes.get(1)) else {
        return Ok(None);
    };
    // Everything the first two bytes can reveal is checked before waiting for the rest, so
    // garbage fails at once instead of waiting for up to 12 more bytes.
    let opcode = OpCode::from_bits(b0 & 0x0F).ok_or(FrameError::UnknownOpcode(b0 & 0x0F))?;
    for (bit, number) in [(RSV1, 1), (RSV2, 2), (RSV3, 3)] {
        if b0 & bit != 0 && allowed_reserved & bit == 0 {
            return Err(FrameError::ReservedBit(number));
        }
    }
    let fin = b0 & 0x80 != 0;
    if opcode.is_control() && !fin {
        return Err(FrameError::FragmentedControl(opcode));
    }
    let masked = b1 & 0x80 != 0;
    let len7 = b1 & 0x7F;
    let extended = match len7 {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let header_len = 2 + extended + if masked { 4 } else { 0 };
    let Some(header) = bytes.get(..header_len) else {
        return Ok(None);
    };
    let payload_len = match extended {
        2 => u64::from(u16::from_be_bytes([header[2], header[3]])),
        8 => {
            let mut be = [0; 8];
            be.copy_from_slice(&header[2..10]);
            let len = u64::from_be_bytes(be);
            if len >> 63 != 0 {
                return Err(FrameError::LengthOverflow);
            }
            len
        }
        _ => u64::from(len7),
    };
    if opcode.is_control() && payload_len > MAX_CONTROL_PAYLOAD {
        return Err(FrameError::ControlTooLong {
            opcode,
            len: payload_len,
        });
    }
    let mask = masked.then(|| {
        let at = 2 + extended;
        [header[at], header[at + 1], header[at + 2], header[at + 3]]
    });
    Ok(Some(FrameHeader {
        fin,
        rsv1: b0 & RSV1 != 0,
        rsv2: b0 & RSV2 != 0,
        rsv3: b0 & RSV3 != 0,
        opcode,
        mask,
        payload_len,
        header_len,
    }))
}

/// XORs `data` with the masking key, `data[0]` being payload byte number `phase` (mod 4).
fn unmask(data: &mut [u8], key: [u8; 4], phase: usize) {
    let mut rotated = key;
    rotated.rotate_left(phase % 4);
    for chunk in data.chunks_mut(4) {
        for (byte, k) in chunk.iter_mut().zip(rotated) {
            *byte ^= k;
        }
    }
}

/// Incremental frame parser over a byte stream fed in arbitrary chunks.
///
/// Push a chunk, then pull with [`next_frame`](Self::next_frame) *or*
/// [`next_event`](Self::next_event) until they return `Ok(None)`; the unconsumed bytes kept
/// between pushes are then at most one partial header. Do not mix the two pulls inside one
/// frame. After an error every call returns that error again.
#[derive(Debug)]
pub struct FrameParser {
    stream: Stream,
    cap: usize,
    /// The frame [`next_frame`](Self::next_frame) is assembling.
    partial: Option<Frame>,
}

impl FrameParser {
    /// A parser keeping at most `cap` payload bytes per frame in [`next_frame`](Self::next_frame).
    /// RSV1 is allowed (permessage-deflate; the caller knows whether it was negotiated); RSV2
    /// and RSV3 are errors unless [`allow_reserved`](Self::allow_reserved) says otherwise.
    pub fn new(cap: usize) -> Self {
        Self {
            stream: Stream {
                buf: Vec::new(),
                pos: 0,
                state: State::Header,
                allowed_reserved: RSV1,
                failed: None,
            },
            cap,
            partial: None,
        }
    }

    /// Sets exactly which reserved bits (a mask of [`RSV1`], [`RSV2`], [`RSV3`]) negotiated
    /// extensions allow; any other set reserved bit is an error.
    pub fn allow_reserved(mut self, bits: u8) -> Self {
        self.stream.allowed_reserved = bits & (RSV1 | RSV2 | RSV3);
        self
    }

    /// Appends a chunk of the stream (a copy; `data` itself is never modified).
    pub fn push(&mut self, data: &[u8]) {
        self.stream.push(data);
    }

    /// True between frames with nothing buffered: the stream could end here cleanly.
    pub fn at_frame_boundary(&self) -> bool {
        matches!(self.stream.state, State::Header) && self.stream.pos >= self.stream.buf.len()
    }

    /// The next header, payload piece or frame end, `Ok(None)` when more bytes are needed.
    pub fn next_event(&mut self) -> Result<Option<FrameEvent<'_>>, FrameError> {
        self.stream.next_event()
    }

    /// The next complete frame, `Ok(None)` when more bytes are needed. Payloads longer than
    /// the cap are consumed to their end but only their first `cap` bytes are kept.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        loop {
            let Some(event) = self.stream.next_event()? else {
                return Ok(None);
            };
            match event {
                FrameEvent::Header(header) => {
                    let keep = usize::try_from(header.payload_len)
                        .map_or(self.cap, |len| len.min(self.cap));
                    self.partial = Some(Frame {
                        header,
                        payload: Vec::with_capacity(keep.min(INITIAL_CAPACITY)),
                    });
                }
                FrameEvent::Payload(piece) => {
                    if let Some(frame) = &mut self.partial {
                        let room = self.cap.saturating_sub(frame.payload.len());
                        frame
                            .payload
                            .extend_from_slice(&piece[..room.min(piece.len())]);
                    }
                }
                FrameEvent::End => {
                    if let Some(frame) = self.partial.take() {
                        return Ok(Some(frame));
                    }
                }
            }
        }
    }
}

/// Serializes one frame: minimal length form, payload masked with `mask` when given. `rsv` is
/// a mask of [`RSV1`], [`RSV2`], [`RSV3`]. The relay never re-encodes traffic; this is for
/// synthesizing frames (tests, fixtures).
pub fn encode_frame(
    fin: bool,
    rsv: u8,
    opcode: OpCode,
    mask: Option<[u8; 4]>,
    payload: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAX_HEADER_LEN + payload.len());
    out.push(if fin { 0x80 } else { 0 } | (rsv & (RSV1 | RSV2 | RSV3)) | opcode.bits());
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        len @ 0..=125 => out.push(mask_bit | len as u8),
        len @ 126..=0xFFFF => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    if let Some(key) = mask {
        out.extend_from_slice(&key);
    }
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(key) = mask {
        unmask(&mut out[start..], key, 0);
    }
    out
}

#[cfg(test)]
mod tests;
