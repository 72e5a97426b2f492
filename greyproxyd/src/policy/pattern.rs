//! The three rule pattern kinds — container glob, destination, port — with greyproxy's exact
//! matching semantics (docs/protocol.md#patterns-create_rule-update_rule), the specificity score
//! used for precedence (docs/design.md#precedence), and the validation and normalisation applied
//! when rules are created or updated. Unlike greyproxy, a pattern that could never match is
//! refused at creation instead of being stored as a dead rule (docs/design.md#patterns).

use std::net::IpAddr;

use crate::glob::Dialect;

/// A rule pattern was refused; the message is shown to control-protocol users as is.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub(crate) enum PatternError {
    /// The container pattern is empty or not a well-formed glob.
    #[error("invalid container pattern {pattern:?}: {reason}")]
    Container {
        /// The pattern as given.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The destination pattern is not `*`, a CIDR, `*.base`, `**.base`, a host or an IP.
    #[error("invalid destination pattern {pattern:?}: {reason}")]
    Destination {
        /// The pattern as given.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The port pattern is not `*`, a port, a range or a comma list of those.
    #[error("invalid port pattern {pattern:?}: {reason}")]
    Port {
        /// The pattern as given.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
}

// ---------------------------------------------------------------------------------------------
// Container globs: Go's `path.Match` (see [`crate::glob`]), so that rules written for greyproxy
// match the same names here, corner cases included.
// ---------------------------------------------------------------------------------------------

/// True when the container name matches the glob; `*` matches everything and a malformed
/// pattern matches nothing.
pub(crate) fn container_matches(pattern: &str, name: &str) -> bool {
    Dialect::CONTAINER.matches(pattern, name)
}

// ---------------------------------------------------------------------------------------------
// Destinations.
// ---------------------------------------------------------------------------------------------

/// Drops surrounding whitespace, one trailing dot (FQDN form) and IPv6 brackets.
fn bare_host(s: &str) -> &str {
    let s = s.trim();
    // `*.` must not turn into `*`, nor `a..` into `a.`: only a dot after a name character goes.
    let s = match s.strip_suffix('.') {
        Some(rest) if !rest.is_empty() && !rest.ends_with(['.', '*']) => rest,
        _ => s,
    };
    s.strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(s)
}

/// True when the destination host matches the pattern (ASCII case-insensitive): `*`, a CIDR
/// (the host must be an IP inside it), `**.base` (base and its subdomains), `*.base` (its
/// subdomains at any depth, not base) or the exact host. Any other `*` is literal.
pub(crate) fn destination_matches(pattern: &str, host: &str) -> bool {
    let (pattern, host) = (bare_host(pattern), bare_host(host));
    if pattern.contains('/') {
        return match (parse_cidr(pattern), host.parse::<IpAddr>()) {
            (Ok((net, len)), Ok(ip)) => cidr_contains(net, len, ip.to_canonical()),
            _ => false,
        };
    }
    // The same address written two ways (`::1` and `0::1`, or IPv4-mapped) is still the same.
    Dialect::DESTINATION.matches(pattern, host)
        || matches!((pattern.parse::<IpAddr>(), host.parse::<IpAddr>()),
            (Ok(a), Ok(b)) if a.to_canonical() == b.to_canonical())
}

/// Parses `addr/len`; an IPv4-mapped IPv6 network of /96 or longer becomes the IPv4 network,
/// because hosts are compared in canonical form (IPv4-mapped hosts as IPv4).
fn parse_cidr(s: &str) -> Result<(IpAddr, u8), String> {
    let (addr, len) = s.split_once('/').ok_or_else(|| "not a CIDR".to_string())?;
    let addr = bare_host(addr);
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| format!("{addr:?} is not an IP address"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match len.trim().parse::<u8>() {
        Ok(n) if n <= max && len.trim().bytes().all(|b| b.is_ascii_digit()) => n,
        _ => {
            let family = if ip.is_ipv4() { "IPv4" } else { "IPv6" };
            return Err(format!(
                "prefix length must be 0-{max} for an {family} network"
            ));
        }
    };
    match ip {
        IpAddr::V6(v6) if len >= 96 => match v6.to_ipv4_mapped() {
            Some(v4) => Ok((IpAddr::V4(v4), len - 96)),
            None => Ok((ip, len)),
        },
        _ => Ok((ip, len)),
    }
}

fn cidr_contains(net: IpAddr, len: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(h)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(n) & mask == u32::from(h) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(h)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(n) & mask == u128::from(h) & mask
        }
        _ => false,
    }
}

/// The form a destination pattern is stored in: trimmed, ASCII lower-case, without a trailing
/// dot or IPv6 brackets. Matching ignores these differences anyway; storing one form keeps the
/// rules table free of duplicates that differ only in spelling.
pub(crate) fn normalize_destination_pattern(pattern: &str) -> String {
    bare_host(pattern).to_ascii_lowercase()
}

/// Checks a destination pattern as it will be stored (after
/// [`normalize_destination_pattern`]): `*`, a CIDR, `*.base` / `**.base` with a plain base, or
/// a host name or IP literal without wildcards.
pub(crate) fn validate_destination_pattern(pattern: &str) -> Result<(), PatternError> {
    let err = |reason: String| PatternError::Destination {
        pattern: pattern.to_string(),
        reason,
    };
    let norm = normalize_destination_pattern(pattern);
    if norm.is_empty() {
        return Err(err("pattern is empty".into()));
    }
    if norm == "*" {
        return Ok(());
    }
    if norm.contains('/') {
        return parse_cidr(&norm).map(drop).map_err(err);
    }
    let only_prefix = "a wildcard is only supported as a leading \"*.\" or \"**.\"";
    if let Some(base) = norm.strip_prefix("**.").or_else(|| norm.strip_prefix("*.")) {
        if base.is_empty() {
            return Err(err(
                "a wildcard needs a domain after it, as in \"*.example.com\"".into(),
            ));
        }
        if base.contains('*') {
            return Err(err(only_prefix.into()));
        }
        return check_host_name(base).map_err(err);
    }
    if norm.contains('*') {
        return Err(err(only_prefix.into()));
    }
    if norm.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    check_host_name(&norm).map_err(err)
}

/// Checks that a host a connection asked for is a plain host name or IP literal, so that it can
/// stand as an exact destination pattern (a host such as `*` or `0.0.0.0/0` would otherwise
/// become a wildcard or CIDR rule).
pub(crate) fn validate_literal_host(host: &str) -> Result<(), PatternError> {
    let norm = normalize_destination_pattern(host);
    if norm.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let reason = if norm.is_empty() {
        Err("host is empty".into())
    } else {
        check_host_name(&norm)
    };
    reason.map_err(|reason| PatternError::Destination {
        pattern: host.to_string(),
        reason,
    })
}

/// Host names: no empty labels, no ASCII besides letters, digits, `-`, `_` and `.` (IDNs typed
/// in Unicode are let through).
fn check_host_name(host: &str) -> Result<(), String> {
    if let Some(c) = host
        .chars()
        .find(|c| c.is_ascii() && !(c.is_ascii_alphanumeric() || "-_.".contains(*c)))
    {
        return Err(match c {
            ':' => "contains ':'; a port belongs in the port pattern".to_string(),
            c if c.is_ascii_whitespace() => "contains whitespace".to_string(),
            c => format!("contains {c:?}, which cannot appear in a host name"),
        });
    }
    if host.split('.').any(str::is_empty) {
        return Err(
            "has an empty label; use \"**.example.com\" for a domain and its subdomains".into(),
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Ports.
// ---------------------------------------------------------------------------------------------

/// True when the port matches `*`, a port, an inclusive range `a-b` or a comma list of those
/// (whitespace around items ignored); a malformed item matches nothing.
pub(crate) fn port_matches(pattern: &str, port: u16) -> bool {
    let pattern = pattern.trim();
    pattern == "*"
        || pattern
            .split(',')
            .any(|item| parse_port_item(item).is_ok_and(|(lo, hi)| lo <= port && port <= hi))
}

/// One list item as an inclusive range.
fn parse_port_item(item: &str) -> Result<(u16, u16), String> {
    let item = item.trim();
    if item.is_empty() {
        return Err("empty entry".into());
    }
    let Some((lo, hi)) = item.split_once('-') else {
        let port = parse_port(item)?;
        return Ok((port, port));
    };
    let (lo, hi) = (parse_port(lo)?, parse_port(hi)?);
    if lo > hi {
        return Err(format!("range {lo}-{hi} starts after it ends"));
    }
    Ok((lo, hi))
}

fn parse_port(s: &str) -> Result<u16, String> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{s:?} is not a port number"));
    }
    match s.parse::<u32>() {
        Ok(n @ 1..=65535) => u16::try_from(n).map_err(|e| e.to_string()),
        _ => Err("port must be 1-65535".into()),
    }
}

/// Checks a port pattern: `*`, or ports 1–65535 and ranges `low-high` (low ≤ high), comma
/// separated.
pub(crate) fn validate_port_pattern(pattern: &str) -> Result<(), PatternError> {
    let err = |reason: String| PatternError::Port {
        pattern: pattern.to_string(),
        reason,
    };
    let trimmed = pattern.trim();
    if trimmed.is_empty() {
        return Err(err("pattern is empty".into()));
    }
    if trimmed == "*" {
        return Ok(());
    }
    trimmed
        .split(',')
        .try_for_each(|item| parse_port_item(item).map(drop))
        .map_err(err)
}

/// Checks a container pattern: non-empty and a well-formed glob.
pub(crate) fn validate_container_pattern(pattern: &str) -> Result<(), PatternError> {
    let err = |reason: String| PatternError::Container {
        pattern: pattern.to_string(),
        reason,
    };
    if pattern.is_empty() {
        return Err(err("pattern is empty".into()));
    }
    Dialect::CONTAINER
        .check(pattern)
        .map_err(|e| err(e.to_string()))
}

/// Specificity score (greyproxy's, docs/design.md#precedence): container ≠ `*` +100 and without
/// `*?[` another +100; destination ≠ `*` +10 and without `*?[` another +10 (CIDRs count as
/// exact); port ≠ `*` +1.
pub(crate) fn specificity(container: &str, destination: &str, port: &str) -> u32 {
    let score = |pattern: &str, weight: u32| match pattern {
        "*" => 0,
        p if p.contains(['*', '?', '[']) => weight,
        _ => 2 * weight,
    };
    score(container, 100) + score(destination, 10) + u32::from(port != "*")
}

#[cfg(test)]
mod tests;
