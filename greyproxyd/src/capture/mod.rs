//! Capture of HTTP traffic: the exchange that forwards one request through the policy check,
//! the middleware hooks and the origin ([`exchange`]), a capped copy of each body taken while
//! it streams through ([`body`]), the transaction filled from them ([`record`]) and queued for
//! storage ([`recorder`]), redacted as the [`crate::live`] snapshot says
//! ([`crate::http::redact`]), the WebSocket relay and tap ([`wsrelay`], [`ws`]), and the credentials stage
//! ([`credentials`]) with the echo scrub of responses ([`scrub`]).

pub(crate) mod body;
pub(crate) mod credentials;
pub(crate) mod exchange;
pub(crate) mod record;
pub(crate) mod recorder;
pub(crate) mod scrub;
pub(crate) mod serve;
pub(crate) mod upstream;
pub mod ws;
pub(crate) mod wsrelay;
