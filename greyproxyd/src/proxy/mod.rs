//! Proxy front ends: HTTP (CONNECT and absolute-form), SOCKS5, the byte tunnel they share, and
//! the DNS forwarder that names the IPs they are asked for.

pub mod dns;
pub mod head;
pub mod http;
pub mod socks;
pub mod socks5;
pub mod tunnel;
