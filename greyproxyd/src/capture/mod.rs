//! Capture of HTTP traffic: the exchange that forwards one request through the policy check,
//! the middleware hooks and the origin ([`exchange`]), a capped copy of each body taken while
//! it streams through ([`body`]), the transaction filled from them ([`record`]) and queued for
//! storage ([`recorder`]), header and URL redaction ([`redact`]), and the WebSocket relay and
//! tap ([`wsrelay`], [`ws`]).

pub mod body;
pub mod exchange;
pub mod record;
pub mod recorder;
pub mod redact;
pub mod serve;
pub mod upstream;
pub mod ws;
pub mod wsrelay;
