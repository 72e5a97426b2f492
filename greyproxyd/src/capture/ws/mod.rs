//! WebSocket capture: the pure decoding half of the passive tap.
//!
//! After a 101 the relay copies both streams byte for byte (masking untouched, no extension
//! rewriting, unlike greyproxy which forced `*_no_context_takeover` on the client's offer). A
//! [`Tap`] per direction reads a copy of what went by: [`frame`] parses frames out of chunks of
//! any size, [`deflate`] follows permessage-deflate with one persistent inflater per direction
//! (context takeover supported), and [`tap`] reassembles fragments into messages and reports
//! close/ping/pong. Everything here is synchronous and does no I/O; an error means capture for
//! that connection stops, never the traffic.

pub mod deflate;
pub mod frame;
pub mod tap;

pub use deflate::{DeflateError, Inflater, Negotiated};
pub use frame::{FrameError, FrameParser, OpCode};
pub use tap::{Event, Limits, MessageOpcode, ProtocolError, Tap, TapError};

/// Which way a stream of frames flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Client to server: frames are masked; recorded as `WS_REQ`.
    ClientToServer,
    /// Server to client: frames are unmasked; recorded as `WS_RESP`.
    ServerToClient,
}
