//! The host map: names the daemon dials at a fixed IP address instead of resolving them
//! (`[hosts]` in the config file, `--map-host NAME=IP` on the command line), like an
//! `/etc/hosts` of the daemon's own. Policy, recording and the TLS server name still use the
//! name a client asked for; only the address of the upstream TCP connection changes. Tests use
//! it to send `api.anthropic.com` to a local mock without touching the machine's resolver.

use std::collections::BTreeMap;
use std::net::IpAddr;

/// Why a host mapping cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostMapError {
    /// `--map-host` without `=`.
    #[error("invalid host mapping {0:?}: expected NAME=IP, like api.example.com=127.0.0.5")]
    NoEquals(String),
    /// An empty name.
    #[error("invalid host mapping: empty host name (mapped to {0:?})")]
    EmptyName(String),
    /// A name with characters no host name has (wildcards are not supported).
    #[error(
        "invalid host mapping: {0:?} is not a host name (letters, digits, `-`, `_` and dots; \
         no wildcards)"
    )]
    BadName(String),
    /// An address that is not an IP literal.
    #[error("invalid host mapping for {name}: {ip:?} is not an IP address")]
    BadIp {
        /// The host name.
        name: String,
        /// What was given as its address.
        ip: String,
    },
}

/// Host names (lower case, without a trailing dot) and the address each is dialled at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostMap(BTreeMap<String, IpAddr>);

impl HostMap {
    /// No mappings: every name is resolved as usual.
    pub fn new() -> HostMap {
        HostMap::default()
    }

    /// Adds (or replaces) `name` → `ip` after validating both.
    pub fn insert(&mut self, name: &str, ip: &str) -> Result<(), HostMapError> {
        let key = normalize(name);
        if key.is_empty() {
            return Err(HostMapError::EmptyName(ip.trim().to_string()));
        }
        if key.starts_with('.')
            || key.contains("..")
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(HostMapError::BadName(name.trim().to_string()));
        }
        let addr = ip
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .map_err(|_| HostMapError::BadIp {
                name: key.clone(),
                ip: ip.trim().to_string(),
            })?;
        self.0.insert(key, addr);
        Ok(())
    }

    /// Adds one `NAME=IP` (the `--map-host` form).
    pub fn insert_flag(&mut self, entry: &str) -> Result<(), HostMapError> {
        let (name, ip) = entry
            .split_once('=')
            .ok_or_else(|| HostMapError::NoEquals(entry.to_string()))?;
        self.insert(name, ip)
    }

    /// The map of a `[hosts]` table.
    pub fn from_table(table: &BTreeMap<String, String>) -> Result<HostMap, HostMapError> {
        let mut map = HostMap::new();
        for (name, ip) in table {
            map.insert(name, ip)?;
        }
        Ok(map)
    }

    /// The map of every `--map-host NAME=IP`; a later entry for a name wins.
    pub fn from_flags(flags: &[String]) -> Result<HostMap, HostMapError> {
        let mut map = HostMap::new();
        for f in flags {
            map.insert_flag(f)?;
        }
        Ok(map)
    }

    /// This map with `over`'s entries added, replacing ours for the same name (the command
    /// line wins over the config file).
    pub fn merged(&self, over: &HostMap) -> HostMap {
        let mut out = self.clone();
        out.0.extend(over.0.iter().map(|(k, v)| (k.clone(), *v)));
        out
    }

    /// The address `host` is dialled at instead of resolving it, if it is mapped. Matching
    /// ignores case and a trailing dot.
    pub fn get(&self, host: &str) -> Option<IpAddr> {
        if self.0.is_empty() {
            return None;
        }
        self.0.get(&normalize(host)).copied()
    }

    /// How many names are mapped.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no name is mapped.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn normalize(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_and_match_names_loosely() {
        let m = HostMap::from_flags(&[
            "API.Anthropic.com=127.0.0.5".into(),
            "v6.example=[::1]".into(),
            " spaced.example = 10.0.0.1 ".into(),
        ])
        .unwrap();
        assert_eq!(m.len(), 3);
        let five: IpAddr = "127.0.0.5".parse().unwrap();
        assert_eq!(m.get("api.anthropic.com"), Some(five));
        assert_eq!(m.get("api.ANTHROPIC.com."), Some(five));
        assert_eq!(m.get("v6.example"), Some("::1".parse().unwrap()));
        assert_eq!(m.get("spaced.example"), Some("10.0.0.1".parse().unwrap()));
        assert_eq!(m.get("anthropic.com"), None);
        assert_eq!(m.get("127.0.0.5"), None);
    }

    #[test]
    fn bad_entries_say_what_is_wrong() {
        let e = |s: &str| HostMap::from_flags(&[s.to_string()]).unwrap_err();
        assert_eq!(
            e("api.example.com"),
            HostMapError::NoEquals("api.example.com".into())
        );
        assert_eq!(e("=127.0.0.1"), HostMapError::EmptyName("127.0.0.1".into()));
        assert_eq!(
            e(" . =127.0.0.1"),
            HostMapError::EmptyName("127.0.0.1".into())
        );
        assert_eq!(
            e("api.example.com=127.0.0.300"),
            HostMapError::BadIp {
                name: "api.example.com".into(),
                ip: "127.0.0.300".into()
            }
        );
        assert!(matches!(
            e("a.example=localhost"),
            HostMapError::BadIp { .. }
        ));
        assert!(matches!(e("a.example="), HostMapError::BadIp { .. }));
        assert_eq!(
            e("*.example.com=127.0.0.1"),
            HostMapError::BadName("*.example.com".into())
        );
        assert!(matches!(e("a b=127.0.0.1"), HostMapError::BadName(_)));
        assert!(matches!(e("a..b=127.0.0.1"), HostMapError::BadName(_)));
        let msg = e("x=nope").to_string();
        assert!(
            msg.contains("x") && msg.contains("\"nope\"") && msg.contains("IP"),
            "{msg}"
        );
    }

    #[test]
    fn the_command_line_wins_over_the_file() {
        let table = BTreeMap::from([
            ("api.anthropic.com".to_string(), "127.0.0.5".to_string()),
            ("api.openai.com".to_string(), "127.0.0.6".to_string()),
        ]);
        let file = HostMap::from_table(&table).unwrap();
        let flags = HostMap::from_flags(&["API.openai.com=127.0.0.7".into()]).unwrap();
        let m = file.merged(&flags);
        assert_eq!(m.len(), 2);
        assert_eq!(
            m.get("api.anthropic.com"),
            Some("127.0.0.5".parse().unwrap())
        );
        assert_eq!(m.get("api.openai.com"), Some("127.0.0.7".parse().unwrap()));
        let bad = BTreeMap::from([("a.example".to_string(), "1.2.3".to_string())]);
        assert!(HostMap::from_table(&bad).is_err());
    }
}
