//! The control WebSocket (`/ws`): token authentication, sessions with heartbeat, subscription
//! filters and bounded event delivery, and the command handlers.

pub mod activity;
pub mod auth;
pub mod claims;
pub mod handlers;
pub mod server;
pub mod session;

pub use claims::Claims;
pub use handlers::Handler;
