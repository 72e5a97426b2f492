//! greyproxyd: the greyproxy daemon as a library, so that the binary stays a thin CLI and the
//! end-to-end tests and benchmarks can reuse its parts.
//!
//! Data flow: a proxy front end ([`proxy`]) accepts a client, derives its identity and asks the
//! [`policy`] engine for a decision (which may hold the connection until a human decides over
//! the [`control`] WebSocket); decisions and rules are made durable in the [`store`]; every
//! change is published on the [`events`] bus that control clients subscribe to.

pub mod accept;
mod atomic;
pub mod capture;
pub mod config;
pub mod control;
pub mod daemon;
pub mod events;
pub mod lifecycle;
pub mod middleware;
pub mod mitm;
pub mod notify;
pub mod policy;
pub mod proxy;
pub mod records;
pub mod reload;
pub mod store;
pub mod time;
