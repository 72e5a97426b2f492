//! HTTP leaves shared by the recorder, the middleware hooks and the front ends: the one body
//! type ([`body`]), proxy-generated responses, hop-by-hop stripping and request preparation
//! for the origin connection ([`message`]), and decoding of a body copy per its
//! `Content-Encoding` ([`decode`]). Pure functions; nothing here dials, records or decides.

pub mod body;
pub mod decode;
pub mod message;

pub use body::{Body, text_response};
pub use message::{Origin, prepare_request, strip_hop_headers};
