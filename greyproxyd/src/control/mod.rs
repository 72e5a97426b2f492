//! The control WebSocket (`/ws`): token authentication, sessions with heartbeat, subscription
//! filters and bounded event delivery, and the command handlers (credentials and sessions in
//! [`credentials`]).

pub(crate) mod activity;
pub mod auth;
pub(crate) mod claims;
pub(crate) mod credentials;
pub(crate) mod handlers;
pub(crate) mod llm;
pub(crate) mod server;
pub mod session;

pub(crate) use claims::Claims;
pub(crate) use handlers::Handler;
