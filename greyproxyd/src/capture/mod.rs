//! Capture of HTTP traffic: a capped copy of each body taken while it streams through
//! ([`body`]), decoding of the stored copy (`http::decode`), header and URL redaction
//! ([`redact`]).

pub mod body;
pub mod forward;
pub mod record;
pub mod redact;
pub mod serve;
pub mod upstream;
pub mod ws;
pub mod wsrelay;
