//! The patterns of the rule an allow/deny creates for a pending request, per scope, with one
//! difference from greyproxy (docs/design.md#scopes): `subdomain_wildcard` covers the registrable
//! domain from the Public Suffix List (`api.foo.co.uk` → `**.foo.co.uk`), apex included, so the
//! rule always matches the request it was made for — greyproxy's "last two labels" did not.

use std::net::IpAddr;

use greyproxy_protocol::command::Scope;

use super::pattern::{normalize_destination_pattern, validate_literal_host};

/// Patterns of a rule to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScopePatterns {
    /// Container glob (the container name with glob characters escaped, or `*`).
    pub(crate) container_pattern: String,
    /// Destination pattern, normalised (lower-case, no brackets or trailing dot).
    pub(crate) destination_pattern: String,
    /// A port or `*`.
    pub(crate) port_pattern: String,
}

/// Rule patterns for `scope` from a pending request's container, display host (resolved
/// hostname if known, else the host asked for) and port:
///
/// | scope | container | destination | port |
/// |---|---|---|---|
/// | `Exact` | name | host | port |
/// | `AnyPort` | name | host | `*` |
/// | `SubdomainWildcard` | name | `**.<registrable domain>` (an IP stays exact) | `*` |
/// | `AllContainers` | `*` | host | port |
///
/// The result always matches the `(container, host, port)` it was made from.
///
/// The host must be a plain host name or IP literal: callers should refuse the decision when
/// [`validate_literal_host`] fails, since a requested "host" such as `*` or `0.0.0.0/0` cannot
/// be written as an exact pattern. Should one get here anyway, the destination pattern is left
/// empty — a pattern that matches no real host and that validation refuses — so a malicious
/// host name never turns into a wildcard or CIDR rule.
pub(crate) fn patterns_for(
    scope: Scope,
    container: &str,
    display_host: &str,
    port: u16,
) -> ScopePatterns {
    let host = if validate_literal_host(display_host).is_ok() {
        normalize_destination_pattern(display_host)
    } else {
        String::new()
    };
    let name = escape_glob(container);
    let (container_pattern, destination_pattern, port_pattern) = match scope {
        Scope::Exact => (name, host, port.to_string()),
        Scope::AnyPort => (name, host, "*".to_string()),
        Scope::SubdomainWildcard => (name, subdomain_wildcard(&host), "*".to_string()),
        Scope::AllContainers => ("*".to_string(), host, port.to_string()),
        // A scope this build does not know is as narrow as a scope gets.
        _ => (name, host, port.to_string()),
    };
    ScopePatterns {
        container_pattern,
        destination_pattern,
        port_pattern,
    }
}

/// `**.<registrable domain>` for a normalised host. An IP literal (or the empty pattern) stays
/// as is: "subdomains of an IP" means nothing. A host without a registrable domain — a single
/// label such as `intranet`, or a public suffix itself such as `co.uk` or `github.io` — also
/// stays exact: `**.github.io` would cover every GitHub Pages site, far more than the user saw.
fn subdomain_wildcard(host: &str) -> String {
    if host.is_empty() || host.parse::<IpAddr>().is_ok() {
        return host.to_string();
    }
    match psl::domain_str(host) {
        // psl yields `.com` for `a..com`; such a domain is no base to build on.
        Some(domain) if !domain.is_empty() && !domain.starts_with('.') => format!("**.{domain}"),
        _ => host.to_string(),
    }
}

/// Escapes Go glob metacharacters so a container name matches itself only: container names
/// are free text (`unknown-<ip>`, a proxy username), and one containing `[` or a trailing `\`
/// would otherwise make a malformed pattern that never matches.
fn escape_glob(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '*' | '?' | '[' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::policy::pattern::{
        container_matches, destination_matches, port_matches, validate_container_pattern,
        validate_destination_pattern, validate_port_pattern,
    };

    const SCOPES: [Scope; 4] = [
        Scope::Exact,
        Scope::AnyPort,
        Scope::SubdomainWildcard,
        Scope::AllContainers,
    ];

    fn pats(scope: Scope, container: &str, host: &str, port: u16) -> (String, String, String) {
        let p = patterns_for(scope, container, host, port);
        (p.container_pattern, p.destination_pattern, p.port_pattern)
    }

    fn t(c: &str, d: &str, p: &str) -> (String, String, String) {
        (c.into(), d.into(), p.into())
    }

    #[test]
    fn table_of_the_reference() {
        let h = "api.example.com";
        assert_eq!(pats(Scope::Exact, "app", h, 443), t("app", h, "443"));
        assert_eq!(pats(Scope::AnyPort, "app", h, 443), t("app", h, "*"));
        assert_eq!(
            pats(Scope::SubdomainWildcard, "app", h, 443),
            t("app", "**.example.com", "*")
        );
        assert_eq!(pats(Scope::AllContainers, "app", h, 443), t("*", h, "443"));
        assert_eq!(Scope::default(), Scope::Exact);
    }

    #[test]
    fn subdomain_wildcard_uses_the_registrable_domain() {
        let w = |host| pats(Scope::SubdomainWildcard, "app", host, 443).1;
        assert_eq!(w("api.foo.co.uk"), "**.foo.co.uk");
        assert_eq!(w("foo.co.uk"), "**.foo.co.uk");
        assert_eq!(w("example.com"), "**.example.com");
        assert_eq!(w("a.b.c.example.com"), "**.example.com");
        assert_eq!(w("API.Example.COM."), "**.example.com");
        assert_eq!(w("user.github.io"), "**.user.github.io");
        assert_eq!(w("intranet"), "intranet");
        assert_eq!(w("localhost"), "localhost");
        assert_eq!(w("co.uk"), "co.uk");
        assert_eq!(w("github.io"), "github.io");
        assert_eq!(w("host.internal-tld"), "**.host.internal-tld");
        // IP literals stay exact (port still `*`).
        assert_eq!(
            pats(Scope::SubdomainWildcard, "app", "1.2.3.4", 443),
            t("app", "1.2.3.4", "*")
        );
        assert_eq!(w("[2001:db8::1]"), "2001:db8::1");
    }

    #[test]
    fn hosts_are_normalised_and_names_escaped() {
        assert_eq!(
            pats(Scope::Exact, "app", "Example.COM.", 80).1,
            "example.com"
        );
        assert_eq!(pats(Scope::Exact, "app", "[::1]", 80).1, "::1");
        assert_eq!(
            pats(Scope::Exact, "a*[b]?\\", "x.com", 80).0,
            "a\\*\\[b]\\?\\\\"
        );
    }

    #[test]
    fn hosts_that_are_not_literal_never_become_wildcards() {
        for bad in ["*", "*.evil.com", "**.com", "0.0.0.0/0", "a b"] {
            for scope in SCOPES {
                let (_, d, _) = pats(scope, "app", bad, 443);
                assert_eq!(d, "", "{bad} {scope:?}");
                assert!(!destination_matches(&d, "example.com"));
                assert!(validate_destination_pattern(&d).is_err());
            }
        }
    }

    #[test]
    fn generated_rule_always_matches_its_request_and_validates() {
        let containers = [
            "myapp",
            "unknown-10.0.0.7",
            "unknown-::1",
            "we[ird]*?\\",
            "ünï",
        ];
        let hosts = [
            "example.com",
            "api.example.com",
            "API.Foo.CO.UK.",
            "foo.co.uk",
            "co.uk",
            "intranet",
            "localhost",
            "user.github.io",
            "a.b.c.d.example.org",
            "my_host.local",
            "10.1.2.3",
            "::1",
            "[fe80::1]",
            "::ffff:10.0.0.1",
        ];
        for scope in SCOPES {
            for c in containers {
                for h in hosts {
                    for port in [1, 443, 65535] {
                        let p = patterns_for(scope, c, h, port);
                        let why = format!("{scope:?} {c} {h} {port} -> {p:?}");
                        assert!(container_matches(&p.container_pattern, c), "{why}");
                        assert!(destination_matches(&p.destination_pattern, h), "{why}");
                        assert!(port_matches(&p.port_pattern, port), "{why}");
                        assert_eq!(validate_container_pattern(&p.container_pattern), Ok(()));
                        assert_eq!(validate_destination_pattern(&p.destination_pattern), Ok(()));
                        assert_eq!(validate_port_pattern(&p.port_pattern), Ok(()));
                    }
                }
            }
        }
    }

    #[test]
    fn escaped_exact_container_matches_only_itself() {
        let p = patterns_for(Scope::Exact, "app-*", "x.com", 80);
        assert!(container_matches(&p.container_pattern, "app-*"));
        assert!(!container_matches(&p.container_pattern, "app-web"));
    }
}
