//! HTTP leaves shared by the recorder, the middleware hooks and the front ends: the one body
//! type ([`body`]), proxy-generated responses, hop-by-hop stripping and request preparation
//! for the origin connection ([`message`]), decoding of a body copy per its
//! `Content-Encoding` ([`decode`]), the canonical forms that must give the same answer
//! wherever they are used: header names ([`header`]) and percent-decoding ([`percent`]), and
//! the redaction of secrets in headers and URLs before anything is stored ([`redact`]).
//! Pure functions; nothing here dials, records or decides.

pub(crate) mod body;
pub(crate) mod decode;
pub(crate) mod header;
pub(crate) mod message;
pub(crate) mod percent;
pub(crate) mod redact;

pub(crate) use body::{Body, full, text_response};
pub(crate) use message::{Origin, prepare_request, strip_hop_headers};
