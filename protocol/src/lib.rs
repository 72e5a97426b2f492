//! Wire types of greyproxy's control protocol (`/ws`, version 1).
//!
//! This crate is shared by `greyproxyd`, `greytui` and third-party Rust clients. It holds plain
//! serde types and no I/O: [`model`] has the objects the daemon reports (rules, pending requests,
//! activity rows, allow-all status), [`command`] what a client sends, [`reply`] the direct answers
//! and [`event`] the broadcast events with their envelope; [`credentials`] holds the credential and
//! session commands, reports and events. [`middleware`] holds the external
//! middleware protocol (what the daemon exchanges with middlewares over stdio or WebSocket).
//!
//! The shapes are a superset of the Go greyproxy's `/ws` (see docs/protocol.md): a client written
//! for greyproxy keeps working once it sends the token.

pub mod command;
pub mod credentials;
pub mod event;
pub mod export;
pub mod llm;
pub mod middleware;
pub mod model;
pub mod names;
pub mod reply;

pub use command::{ClientMessage, Command, CommandError, RequestId};
pub use event::{Event, EventEnvelope};
pub use model::*;
pub use names::UnknownName;
pub use reply::{Reply, ServerMessage};

/// Version of the control protocol spoken by this crate; sent in the `connected` greeting.
pub const PROTOCOL_VERSION: u32 = 1;

/// WebSocket close code sent when the upgrade carried no valid token.
pub const CLOSE_UNAUTHORIZED: u16 = 4001;

/// Largest control message (bytes) a server accepts; larger ones close the socket with 1009.
pub const MAX_CONTROL_MESSAGE: usize = 1024 * 1024;
