//! The tap for one direction of a WebSocket connection: frames in, messages out.
//!
//! [`Tap::feed`] takes a copy of each chunk the relay forwarded and returns what completed in
//! it: whole messages (fragments reassembled, permessage-deflate undone), close frames with
//! their code and reason, and ping/pong sizes. Control frames may arrive between the fragments
//! of a message and are reported as they come.
//!
//! # Truncation and the inflater
//!
//! A message's stored payload is capped ([`Limits::max_message`], 2 MiB by default). For an
//! uncompressed message the rest is simply counted. A compressed message cannot be handled
//! that way: with context takeover the next message may refer back into any part of this one,
//! so the inflater must see every compressed byte, in order, or the rest of the connection
//! decodes wrongly. So compressed payload pieces stream straight from the frame parser into
//! the direction's [`Inflater`] as they arrive (nothing compressed is buffered, whatever the
//! message size); its output is counted in full and only the first `max_message` bytes are
//! kept. The cost of a big message is CPU, not memory, and [`Limits::max_inflated`] bounds that
//! CPU: past it (a decompression bomb, or a message too large to follow) the tap fails, since
//! skipping output would desynchronize the context.
//!
//! # Errors
//!
//! Any framing violation, protocol violation or inflate failure kills the tap: it keeps
//! returning that error, and the caller stops capture for the connection and records the
//! reason. Nothing in here panics on any input.

use std::mem;

use thiserror::Error;

use super::Direction;
use super::deflate::{DeflateError, Inflated, Inflater, Negotiated};
use super::frame::{FrameError, FrameEvent, FrameHeader, FrameParser, OpCode, RSV1};

/// Default cap on the stored payload of one message.
pub const DEFAULT_MAX_MESSAGE: usize = 2 * 1024 * 1024;

/// Default cap on the inflated size of one compressed message (decompression bombs).
pub const DEFAULT_MAX_INFLATED: usize = 64 * 1024 * 1024;

/// Size caps of a tap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most payload bytes kept per message; the rest is counted and the message is marked
    /// truncated.
    pub max_message: usize,
    /// Most bytes a compressed message may inflate to; beyond it the tap fails.
    pub max_inflated: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message: DEFAULT_MAX_MESSAGE,
            max_inflated: DEFAULT_MAX_INFLATED,
        }
    }
}

/// The type of a data message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageOpcode {
    /// Text (UTF-8 as sent; not validated here).
    Text,
    /// Binary.
    Binary,
}

/// Something the tap saw complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A whole data message.
    Message {
        /// Text or binary.
        opcode: MessageOpcode,
        /// The decoded (unmasked, inflated) payload, at most [`Limits::max_message`] bytes.
        payload: Vec<u8>,
        /// Payload bytes on the wire over all fragments (compressed size when compressed).
        wire_size: usize,
        /// Size of the whole decoded payload, kept or not.
        decoded_size: usize,
        /// The message was permessage-deflate compressed (RSV1 on its first frame).
        compressed: bool,
        /// `payload` holds only the first part of the message.
        truncated: bool,
    },
    /// A close frame.
    Close {
        /// The status code, when the frame had a body.
        code: Option<u16>,
        /// The reason (lossily decoded as UTF-8), empty when none.
        reason: String,
    },
    /// A ping, by size only.
    Ping {
        /// Payload size.
        size: usize,
    },
    /// A pong, by size only.
    Pong {
        /// Payload size.
        size: usize,
    },
}

/// A frame sequence that is well formed frame by frame but breaks the message rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ProtocolError {
    /// A continuation frame with no fragmented message in progress.
    #[error("continuation frame outside a fragmented message")]
    UnexpectedContinuation,
    /// A text or binary frame while a fragmented message is still in progress.
    #[error("new data frame before the fragmented message in progress was finished")]
    InterleavedMessage,
    /// RSV1 on a continuation frame; permessage-deflate sets it on the first frame only.
    #[error("RSV1 set on a continuation frame")]
    CompressedContinuation,
    /// RSV1 on a control frame; permessage-deflate never compresses those.
    #[error("RSV1 set on a control frame")]
    CompressedControl,
    /// The stream ended inside a frame (see [`Tap::finish`]).
    #[error("stream ended inside a frame")]
    EndedMidFrame,
    /// The stream ended between the fragments of a message (see [`Tap::finish`]).
    #[error("stream ended inside a fragmented message")]
    EndedMidMessage,
}

/// Why the tap stopped; it keeps returning the same error.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TapError {
    /// The bytes are not a valid frame sequence.
    #[error("websocket framing: {0}")]
    Frame(#[from] FrameError),
    /// The frames break the message rules.
    #[error("websocket protocol: {0}")]
    Protocol(#[from] ProtocolError),
    /// A compressed message could not be inflated (corrupt, or over the cap).
    #[error("permessage-deflate: {0}")]
    Deflate(#[from] DeflateError),
}

/// The frame currently being parsed.
#[derive(Debug)]
enum Current {
    /// Between frames.
    Idle,
    /// A text, binary or continuation frame, part of the message in progress.
    Data { fin: bool },
    /// A control frame, collected whole (at most 125 bytes).
    Control { opcode: OpCode, payload: Vec<u8> },
}

/// A message whose frames are still coming.
#[derive(Debug)]
struct Partial {
    opcode: MessageOpcode,
    compressed: bool,
    wire_size: usize,
    out: Inflated,
}

/// Everything but the parser, so a borrowed payload piece and this can be used together.
#[derive(Debug)]
struct Assembler {
    limits: Limits,
    /// Present when permessage-deflate was negotiated.
    inflater: Option<Inflater>,
    message: Option<Partial>,
    current: Current,
}

/// A live tap.
#[derive(Debug)]
struct Live {
    parser: FrameParser,
    assembler: Assembler,
}

/// The decoding tap for one direction of one WebSocket connection.
#[derive(Debug)]
pub struct Tap {
    direction: Direction,
    /// The error once the tap died (its buffers and inflater are dropped then).
    state: Result<Live, TapError>,
}

impl Tap {
    /// A tap for the frames sent in `direction`, decoding what the 101 negotiated.
    pub fn new(direction: Direction, negotiated: Negotiated, limits: Limits) -> Self {
        // RSV1 is legitimate only under permessage-deflate; RSV2/RSV3 never are here.
        let parser = FrameParser::new(0).allow_reserved(if negotiated.enabled { RSV1 } else { 0 });
        let inflater = negotiated
            .enabled
            .then(|| Inflater::for_direction(&negotiated, direction));
        Self {
            direction,
            state: Ok(Live {
                parser,
                assembler: Assembler {
                    limits,
                    inflater,
                    message: None,
                    current: Current::Idle,
                },
            }),
        }
    }

    /// The direction this tap decodes.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// The error that stopped the tap, if any.
    pub fn error(&self) -> Option<&TapError> {
        self.state.as_ref().err()
    }

    /// Feeds the next chunk of the stream; returns the events it completed. On error, events
    /// completed earlier in the same chunk are lost; [`feed_into`](Self::feed_into) keeps them.
    pub fn feed(&mut self, data: &[u8]) -> Result<Vec<Event>, TapError> {
        let mut events = Vec::new();
        self.feed_into(data, &mut events)?;
        Ok(events)
    }

    /// Like [`feed`](Self::feed), appending to `events`; those completed before an error stay.
    pub fn feed_into(&mut self, data: &[u8], events: &mut Vec<Event>) -> Result<(), TapError> {
        let live = match &mut self.state {
            Ok(live) => live,
            Err(error) => return Err(error.clone()),
        };
        let result = live.run(data, events);
        if let Err(error) = &result {
            self.state = Err(error.clone());
        }
        result
    }
}

impl Tap {
    /// Tells the tap its stream is over (the connection closed). A stream that stopped inside
    /// a frame or between the fragments of a message is an error (and kills the tap), so the
    /// caller can record that the last message was lost; a clean end changes nothing.
    pub fn finish(&mut self) -> Result<(), TapError> {
        let live = match &self.state {
            Ok(live) => live,
            Err(error) => return Err(error.clone()),
        };
        let error = if !live.parser.at_frame_boundary() {
            ProtocolError::EndedMidFrame
        } else if live.assembler.message.is_some() {
            ProtocolError::EndedMidMessage
        } else {
            return Ok(());
        };
        self.state = Err(error.into());
        Err(error.into())
    }
}

impl Live {
    fn run(&mut self, data: &[u8], events: &mut Vec<Event>) -> Result<(), TapError> {
        self.parser.push(data);
        while let Some(event) = self.parser.next_event()? {
            match event {
                FrameEvent::Header(header) => self.assembler.header(&header)?,
                FrameEvent::Payload(piece) => self.assembler.payload(piece)?,
                FrameEvent::End => self.assembler.end(events)?,
            }
        }
        Ok(())
    }
}

impl Assembler {
    fn header(&mut self, header: &FrameHeader) -> Result<(), TapError> {
        if header.opcode.is_control() {
            if header.rsv1 {
                return Err(ProtocolError::CompressedControl.into());
            }
            // The parser already checked the length is at most 125.
            self.current = Current::Control {
                opcode: header.opcode,
                payload: Vec::with_capacity(header.payload_len as usize),
            };
            return Ok(());
        }
        let opcode = match header.opcode {
            OpCode::Text => MessageOpcode::Text,
            OpCode::Binary => MessageOpcode::Binary,
            _ => {
                if self.message.is_none() {
                    return Err(ProtocolError::UnexpectedContinuation.into());
                }
                if header.rsv1 {
                    return Err(ProtocolError::CompressedContinuation.into());
                }
                self.current = Current::Data { fin: header.fin };
                return Ok(());
            }
        };
        if self.message.is_some() {
            return Err(ProtocolError::InterleavedMessage.into());
        }
        // The parser rejects RSV1 unless permessage-deflate was negotiated, so a compressed
        // message always has an inflater.
        let compressed = header.rsv1 && self.inflater.is_some();
        let max_total = if compressed {
            self.limits.max_inflated
        } else {
            usize::MAX
        };
        self.message = Some(Partial {
            opcode,
            compressed,
            wire_size: 0,
            out: Inflated::new(self.limits.max_message, max_total),
        });
        self.current = Current::Data { fin: header.fin };
        Ok(())
    }

    fn payload(&mut self, piece: &[u8]) -> Result<(), TapError> {
        match &mut self.current {
            Current::Control { payload, .. } => payload.extend_from_slice(piece),
            Current::Data { .. } => {
                if let Some(message) = &mut self.message {
                    message.wire_size = message.wire_size.saturating_add(piece.len());
                    match (&mut self.inflater, message.compressed) {
                        (Some(inflater), true) => inflater.push(piece, &mut message.out)?,
                        _ => message.out.write(piece)?,
                    }
                }
            }
            Current::Idle => {}
        }
        Ok(())
    }

    fn end(&mut self, events: &mut Vec<Event>) -> Result<(), TapError> {
        match mem::replace(&mut self.current, Current::Idle) {
            Current::Control { opcode, payload } => events.push(control_event(opcode, &payload)),
            Current::Data { fin: true } => {
                if let Some(mut message) = self.message.take() {
                    if let (Some(inflater), true) = (&mut self.inflater, message.compressed) {
                        inflater.finish(&mut message.out)?;
                    }
                    events.push(Event::Message {
                        opcode: message.opcode,
                        truncated: message.out.is_truncated(),
                        decoded_size: message.out.total,
                        payload: message.out.data,
                        wire_size: message.wire_size,
                        compressed: message.compressed,
                    });
                }
            }
            Current::Data { fin: false } | Current::Idle => {}
        }
        Ok(())
    }
}

/// The event for a complete control frame.
fn control_event(opcode: OpCode, payload: &[u8]) -> Event {
    match opcode {
        OpCode::Ping => Event::Ping {
            size: payload.len(),
        },
        OpCode::Pong => Event::Pong {
            size: payload.len(),
        },
        // Close. A 1-byte body is a protocol error for the endpoints; the tap just records no
        // code rather than give up on a connection that is ending anyway.
        _ => match payload {
            [hi, lo, reason @ ..] => Event::Close {
                code: Some(u16::from_be_bytes([*hi, *lo])),
                reason: String::from_utf8_lossy(reason).into_owned(),
            },
            _ => Event::Close {
                code: None,
                reason: String::new(),
            },
        },
    }
}

#[cfg(test)]
mod tests;
