//! Proxy front ends: HTTP (CONNECT and absolute-form), SOCKS5, and the byte tunnel they share.

pub mod head;
pub mod http;
pub mod socks;
pub mod socks5;
pub mod tunnel;
