//! Capture of HTTP traffic: the exchange that forwards one request through the policy check,
//! the middleware hooks and the origin ([`exchange`]), a capped copy of each body taken while
//! it streams through ([`body`]), the transaction filled from them ([`record`]) and queued for
//! storage ([`recorder`]), redacted as the [`crate::live`] snapshot says
//! ([`crate::http::redact`]), and the WebSocket relay and tap ([`wsrelay`], [`ws`]).

pub(crate) mod body;
pub(crate) mod exchange;
pub(crate) mod record;
pub(crate) mod recorder;
pub(crate) mod serve;
pub(crate) mod upstream;
pub mod ws;
pub(crate) mod wsrelay;
