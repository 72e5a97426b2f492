//! SOCKS5 server handshake (RFC 1928) with optional username/password sub-negotiation
//! (RFC 1929).
//!
//! The handshake only learns *what* the client wants ([`Request`]): the target and, when the
//! client authenticated, the username that names its container (docs/design.md#identity).
//! Policy, connecting and the final reply belong to the
//! caller, which sends it with [`send_reply`] (mapping connect failures through
//! [`reply_for_connect_error`]).
//!
//! Unlike greyproxy, which always selects username/password, no method is forced on clients
//! (docs/design.md#identity): if the client offers username/password we pick it, because that is
//! how we learn its identity; otherwise no-auth is accepted and the caller derives
//! `unknown-<ip>`. The password is never checked.
//!
//! Every read is a `read_exact` of a length known from the protocol, so the stream is never
//! read past the end of the request: bytes a client pipelines right after it belong to the
//! tunnel. The caller applies the overall handshake timeout.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const VERSION: u8 = 0x05;
const METHOD_NO_AUTH: u8 = 0x00;
const METHOD_USER_PASS: u8 = 0x02;
const METHOD_NONE_ACCEPTABLE: u8 = 0xFF;
// RFC 1929 sub-negotiation version and statuses (any non-zero status is a failure).
const AUTH_VERSION: u8 = 0x01;
const AUTH_SUCCESS: u8 = 0x00;
const AUTH_FAILURE: u8 = 0x01;

const CMD_CONNECT: u8 = 0x01;
const CMD_BIND: u8 = 0x02;
const CMD_UDP_ASSOCIATE: u8 = 0x03;

const ATYP_IPV4: u8 = 0x01;
const ATYP_DOMAIN: u8 = 0x03;
const ATYP_IPV6: u8 = 0x04;

/// Username that clients (greywall) send when they have no identity; it counts as none.
const ANONYMOUS_USERNAME: &str = "proxy";

/// Reply code: succeeded.
pub const REP_SUCCEEDED: u8 = 0x00;
/// Reply code: general SOCKS server failure.
pub const REP_GENERAL_FAILURE: u8 = 0x01;
/// Reply code: connection not allowed by ruleset (policy denial, hold expiry).
pub const REP_NOT_ALLOWED: u8 = 0x02;
/// Reply code: network unreachable.
pub const REP_NETWORK_UNREACHABLE: u8 = 0x03;
/// Reply code: host unreachable (also used when the name does not resolve).
pub const REP_HOST_UNREACHABLE: u8 = 0x04;
/// Reply code: connection refused.
pub const REP_CONNECTION_REFUSED: u8 = 0x05;
/// Reply code: TTL expired (used for connect timeouts).
pub const REP_TTL_EXPIRED: u8 = 0x06;
/// Reply code: command not supported.
pub const REP_COMMAND_NOT_SUPPORTED: u8 = 0x07;
/// Reply code: address type not supported.
pub const REP_ADDRESS_TYPE_NOT_SUPPORTED: u8 = 0x08;

/// Where the client asked to be connected.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// A literal IPv4 or IPv6 address (ATYP 0x01 / 0x04).
    Ip(SocketAddr),
    /// A domain name (ATYP 0x03) and port, exactly as the client sent it (not resolved, not
    /// lowercased: normalisation is the policy's business). An IP literal sent as a domain
    /// stays a domain.
    Domain(String, u16),
}

impl Target {
    /// The host part: the IP address as text (IPv6 without brackets) or the domain.
    pub fn host(&self) -> String {
        match self {
            Target::Ip(addr) => addr.ip().to_string(),
            Target::Domain(name, _) => name.clone(),
        }
    }

    /// The destination port.
    pub fn port(&self) -> u16 {
        match self {
            Target::Ip(addr) => addr.port(),
            Target::Domain(_, port) => *port,
        }
    }
}

impl std::fmt::Display for Target {
    /// `host:port`, with brackets around IPv6 addresses so the result splits unambiguously.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Ip(addr) => write!(f, "{addr}"),
            Target::Domain(name, port) => write!(f, "{name}:{port}"),
        }
    }
}

/// A successfully parsed SOCKS5 CONNECT request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The destination.
    pub target: Target,
    /// RFC 1929 username; `None` for no-auth, an empty username, or the literal `proxy`.
    pub username: Option<String>,
}

/// Why a SOCKS5 handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum Socks5Error {
    /// The greeting or request did not start with version 0x05.
    #[error("unsupported SOCKS version 0x{0:02x} (expected 0x05)")]
    BadVersion(u8),
    /// The client offered neither no-auth nor username/password.
    #[error("no acceptable authentication method; client offered {}", format_methods(.0))]
    NoAcceptableMethod(Vec<u8>),
    /// The username/password sub-negotiation had a version other than 0x01.
    #[error("unsupported username/password sub-negotiation version 0x{0:02x} (expected 0x01)")]
    BadAuthVersion(u8),
    /// A command other than CONNECT.
    #[error(
        "unsupported SOCKS5 command {name} (0x{code:02x}); only CONNECT is supported",
        name = command_name(*.0),
        code = .0
    )]
    UnsupportedCommand(u8),
    /// An ATYP other than IPv4, domain or IPv6.
    #[error("unsupported SOCKS5 address type 0x{0:02x}")]
    BadAddressType(u8),
    /// A domain that is empty, not UTF-8, or contains NUL/whitespace.
    #[error("invalid domain name in SOCKS5 request: {0}")]
    BadDomain(BadName),
    /// The client closed the connection before the handshake was complete.
    #[error("client closed during handshake")]
    ClientClosed,
    /// Any other I/O error while reading or writing the handshake.
    #[error("I/O error during SOCKS5 handshake: {0}")]
    Io(std::io::Error),
}

impl From<std::io::Error> for Socks5Error {
    /// A short read means the client went away mid-handshake; that is common (scanners,
    /// cancelled clients) and deserves its own plain message.
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Socks5Error::ClientClosed
        } else {
            Socks5Error::Io(e)
        }
    }
}

/// Renders offered methods as `[0x00, 0x01]` for error messages.
fn format_methods(methods: &[u8]) -> String {
    let parts: Vec<String> = methods.iter().map(|m| format!("0x{m:02x}")).collect();
    format!("[{}]", parts.join(", "))
}

/// Human name of a SOCKS5 command byte, for error messages.
fn command_name(cmd: u8) -> &'static str {
    match cmd {
        CMD_CONNECT => "CONNECT",
        CMD_BIND => "BIND",
        CMD_UDP_ASSOCIATE => "UDP ASSOCIATE",
        _ => "unknown",
    }
}

/// Performs the server side of the SOCKS5 handshake up to (not including) the final reply.
///
/// Reads the greeting, selects username/password if offered (else no-auth), runs the RFC 1929
/// sub-negotiation when selected (always answering success: the password is not checked), then
/// reads the request. On success nothing past the request has been read, and the caller must
/// send the reply with [`send_reply`]. On failure the appropriate refusal (method 0xFF, auth
/// failure status, or a reply code) has already been written, best effort, and the connection
/// should simply be closed. No timeout is applied here.
pub async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
) -> Result<Request, Socks5Error> {
    let method = negotiate_method(stream).await?;
    let username = if method == METHOD_USER_PASS {
        authenticate(stream).await?
    } else {
        None
    };
    let target = read_request(stream).await?;
    Ok(Request { target, username })
}

/// Greeting: VER NMETHODS METHODS..., answered with VER METHOD.
async fn negotiate_method<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
) -> Result<u8, Socks5Error> {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).await?;
    if head[0] != VERSION {
        // Not SOCKS5 (maybe SOCKS4 or HTTP): there is no reply format we could share.
        return Err(Socks5Error::BadVersion(head[0]));
    }
    let mut methods = vec![0u8; usize::from(head[1])];
    stream.read_exact(&mut methods).await?;

    // Prefer username/password: it is the only way to learn which container is talking.
    let chosen = if methods.contains(&METHOD_USER_PASS) {
        METHOD_USER_PASS
    } else if methods.contains(&METHOD_NO_AUTH) {
        METHOD_NO_AUTH
    } else {
        // Best effort: the error we return is more useful than a failed write.
        let _ = write_flush(stream, &[VERSION, METHOD_NONE_ACCEPTABLE]).await;
        return Err(Socks5Error::NoAcceptableMethod(methods));
    };
    write_flush(stream, &[VERSION, chosen]).await?;
    Ok(chosen)
}

/// RFC 1929: VER ULEN UNAME PLEN PASSWD, answered with VER STATUS.
async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
) -> Result<Option<String>, Socks5Error> {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).await?;
    if head[0] != AUTH_VERSION {
        // The rest of the message cannot be trusted to have the RFC 1929 layout.
        let _ = write_flush(stream, &[AUTH_VERSION, AUTH_FAILURE]).await;
        return Err(Socks5Error::BadAuthVersion(head[0]));
    }
    let mut uname = vec![0u8; usize::from(head[1])];
    stream.read_exact(&mut uname).await?;
    let mut plen = [0u8; 1];
    stream.read_exact(&mut plen).await?;
    // The password is ignored, but it must be consumed so the request parses.
    let mut passwd = vec![0u8; usize::from(plen[0])];
    stream.read_exact(&mut passwd).await?;
    // Identity never fails authentication: the password is never checked (greyproxy's too).
    write_flush(stream, &[AUTH_VERSION, AUTH_SUCCESS]).await?;

    // Lossy: a non-UTF-8 username still identifies the client; it only names a container.
    let name = String::from_utf8_lossy(&uname).into_owned();
    Ok(if name.is_empty() || name == ANONYMOUS_USERNAME {
        None
    } else {
        Some(name)
    })
}

/// Request: VER CMD RSV ATYP DST.ADDR DST.PORT. Failures are answered with a reply here.
async fn read_request<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
) -> Result<Target, Socks5Error> {
    let mut head = [0u8; 4];
    stream.read_exact(&mut head).await?;
    let [ver, cmd, _rsv, atyp] = head;
    if ver != VERSION {
        fail(stream, REP_GENERAL_FAILURE).await;
        return Err(Socks5Error::BadVersion(ver));
    }
    // The address is read before the command is judged: closing a socket with unread input
    // makes the kernel send RST, which can destroy the 0x07 reply before the client reads it.
    let target = read_target(stream, atyp).await?;
    if cmd != CMD_CONNECT {
        fail(stream, REP_COMMAND_NOT_SUPPORTED).await;
        return Err(Socks5Error::UnsupportedCommand(cmd));
    }
    Ok(target)
}

/// Reads DST.ADDR and DST.PORT for the given ATYP, replying to the client on bad input.
async fn read_target<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    atyp: u8,
) -> Result<Target, Socks5Error> {
    match atyp {
        ATYP_IPV4 => {
            let mut buf = [0u8; 6];
            stream.read_exact(&mut buf).await?;
            let ip = Ipv4Addr::new(buf[0], buf[1], buf[2], buf[3]);
            let port = u16::from_be_bytes([buf[4], buf[5]]);
            Ok(Target::Ip(SocketAddr::V4(SocketAddrV4::new(ip, port))))
        }
        ATYP_IPV6 => {
            let mut buf = [0u8; 18];
            stream.read_exact(&mut buf).await?;
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&buf[..16]);
            let port = u16::from_be_bytes([buf[16], buf[17]]);
            let addr = SocketAddrV6::new(Ipv6Addr::from(octets), port, 0, 0);
            Ok(Target::Ip(SocketAddr::V6(addr)))
        }
        ATYP_DOMAIN => {
            let mut len = [0u8; 1];
            stream.read_exact(&mut len).await?;
            // Name and port in one read: the length is known, so this cannot over-read.
            let mut buf = vec![0u8; usize::from(len[0]) + 2];
            stream.read_exact(&mut buf).await?;
            let port = u16::from_be_bytes([buf[buf.len() - 2], buf[buf.len() - 1]]);
            buf.truncate(buf.len() - 2);
            match validate_domain(buf) {
                Ok(name) => Ok(Target::Domain(name, port)),
                Err(reason) => {
                    // 0x01, not 0x08: the address *type* is supported, this one name is
                    // malformed, and 0x08 would wrongly tell the client to stop using domains.
                    fail(stream, REP_GENERAL_FAILURE).await;
                    Err(Socks5Error::BadDomain(reason))
                }
            }
        }
        other => {
            fail(stream, REP_ADDRESS_TYPE_NOT_SUPPORTED).await;
            Err(Socks5Error::BadAddressType(other))
        }
    }
}

/// Why a domain in a request was refused.
#[derive(Debug, thiserror::Error)]
pub enum BadName {
    /// Zero-length name.
    #[error("empty name")]
    Empty,
    /// Not UTF-8.
    #[error("not valid UTF-8")]
    NotUtf8,
    /// NUL or whitespace in the name.
    #[error("{name:?} contains forbidden character {c:?}")]
    Forbidden {
        /// The name as sent.
        name: String,
        /// The first forbidden character.
        c: char,
    },
}

/// Checks a domain from the request.
fn validate_domain(bytes: Vec<u8>) -> Result<String, BadName> {
    if bytes.is_empty() {
        return Err(BadName::Empty);
    }
    let name = String::from_utf8(bytes).map_err(|_| BadName::NotUtf8)?;
    // NUL and whitespace can never be part of a host name and would corrupt log lines,
    // policy patterns and the `host:port` strings built from the target.
    if let Some(c) = name.chars().find(|c| *c == '\0' || c.is_whitespace()) {
        return Err(BadName::Forbidden { name, c });
    }
    Ok(name)
}

/// Sends a failure reply, ignoring write errors: the caller reports the protocol error, which
/// says more than a broken pipe would.
async fn fail<S: AsyncWrite + Unpin>(stream: &mut S, rep: u8) {
    let _ = send_reply(stream, rep, None).await;
}

/// Writes all of `bytes` and flushes, so replies are not left in a caller's write buffer.
async fn write_flush<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) -> std::io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await
}

/// Sends the reply to a request: VER REP RSV ATYP BND.ADDR BND.PORT.
///
/// `bound` is the local address of the upstream connection when known; `None` encodes as
/// `0.0.0.0:0`, which clients accept for CONNECT. IPv6 addresses use ATYP 0x04.
pub async fn send_reply<S: AsyncWrite + Unpin>(
    stream: &mut S,
    rep: u8,
    bound: Option<SocketAddr>,
) -> std::io::Result<()> {
    let bound = bound.unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0));
    let mut buf = Vec::with_capacity(22);
    buf.extend_from_slice(&[VERSION, rep, 0x00]);
    match bound.ip() {
        IpAddr::V4(ip) => {
            buf.push(ATYP_IPV4);
            buf.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            buf.push(ATYP_IPV6);
            buf.extend_from_slice(&ip.octets());
        }
    }
    buf.extend_from_slice(&bound.port().to_be_bytes());
    write_flush(stream, &buf).await
}

/// Maps an error from connecting upstream to the SOCKS5 reply code the client should see.
///
/// Name-resolution failures should reach here as [`std::io::ErrorKind::NotFound`] (the
/// resolver's own errors are uncategorised), and then answer "host unreachable".
pub fn reply_for_connect_error(e: &std::io::Error) -> u8 {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::ConnectionRefused => REP_CONNECTION_REFUSED,
        ErrorKind::HostUnreachable | ErrorKind::NotFound => REP_HOST_UNREACHABLE,
        ErrorKind::NetworkUnreachable => REP_NETWORK_UNREACHABLE,
        ErrorKind::TimedOut => REP_TTL_EXPIRED,
        _ => REP_GENERAL_FAILURE,
    }
}

#[cfg(test)]
mod tests;
