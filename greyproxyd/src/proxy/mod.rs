//! Proxy front ends: HTTP (CONNECT and absolute-form), SOCKS5, the context and identity rule
//! they share ([`tunnel`]), the sniff-and-dispatch step every allowed tunnel goes through
//! ([`dispatch`]), and the DNS forwarder that names the IPs they are asked for.

pub(crate) mod dispatch;
pub mod dns;
pub mod head;
pub(crate) mod http;
pub(crate) mod socks;
pub mod socks5;
pub(crate) mod tunnel;
