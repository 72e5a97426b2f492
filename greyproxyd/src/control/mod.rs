//! The control WebSocket (`/ws`, and the same protocol on a unix socket): token or peer
//! credential authentication, sessions with heartbeat, subscription filters and bounded event
//! delivery, and the command handlers (credentials and sessions in [`credentials`]).

pub(crate) mod activity;
pub mod attach;
pub mod auth;
pub(crate) mod claims;
pub(crate) mod credentials;
pub(crate) mod handlers;
pub(crate) mod llm;
pub(crate) mod peer;
pub(crate) mod server;
pub mod session;
pub mod unix;

pub(crate) use claims::Claims;
pub(crate) use handlers::Handler;
