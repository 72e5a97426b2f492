//! Rule precedence: which rule, if any, decides a connection (docs/design.md#precedence). Layer
//! first (global > session > builtin), then specificity, then deny before allow, then — unlike
//! greyproxy, whose unstable sort leaves this arbitrary — the lowest id.

use std::cmp::Reverse;

use greyproxy_protocol::Action;

use super::pattern::{container_matches, destination_matches, port_matches, specificity};
use crate::records::RuleRecord;

/// True when the rule's three patterns accept the connection. The destination is tried against
/// the host as asked and then against the hostname learnt for it, so a rule written for a name
/// still decides a connection made to one of its IPs.
pub(crate) fn rule_matches(
    rule: &RuleRecord,
    container: &str,
    host: &str,
    port: u16,
    resolved: Option<&str>,
) -> bool {
    container_matches(&rule.container_pattern, container)
        && port_matches(&rule.port_pattern, port)
        && (destination_matches(&rule.destination_pattern, host)
            || resolved.is_some_and(|r| {
                !r.is_empty() && destination_matches(&rule.destination_pattern, r)
            }))
}

/// The rule that decides a connection from `container` to `host:port` at `now`, or `None` when
/// no active rule matches (the caller then holds the connection as a pending request).
///
/// Session-layer rules are ordinary candidates of their layer: sessions do not exist in this
/// product yet, so greyproxy's "newest live session of that container" filter has nothing to
/// filter.
pub(crate) fn find_matching<'a>(
    rules: &'a [RuleRecord],
    container: &str,
    host: &str,
    port: u16,
    resolved: Option<&str>,
    now: u64,
) -> Option<&'a RuleRecord> {
    rules
        .iter()
        .filter(|r| r.is_active(now) && rule_matches(r, container, host, port, resolved))
        .max_by_key(|r| rank(r))
}

/// Sort key: greater wins. Ids are unique, so the key is a total order over a rule set and the
/// winner never depends on the order rules happen to be stored in.
fn rank(rule: &RuleRecord) -> (greyproxy_protocol::RuleSource, u32, bool, Reverse<u64>) {
    (
        rule.source(),
        specificity(
            &rule.container_pattern,
            &rule.destination_pattern,
            &rule.port_pattern,
        ),
        rule.action == Action::Deny,
        Reverse(rule.id),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use greyproxy_protocol::RuleType;

    use super::*;

    fn rule(id: u64, c: &str, d: &str, p: &str, action: Action) -> RuleRecord {
        RuleRecord {
            id,
            container_pattern: c.into(),
            destination_pattern: d.into(),
            port_pattern: p.into(),
            action,
            rule_type: RuleType::Permanent,
            created_at: 0,
            expires_at: None,
            last_used_at: None,
            created_by: "admin".into(),
            notes: None,
            session_id: None,
        }
    }

    fn builtin(mut r: RuleRecord) -> RuleRecord {
        r.created_by = "builtin".into();
        r
    }

    fn session(mut r: RuleRecord) -> RuleRecord {
        r.session_id = Some("s1".into());
        r
    }

    fn winner(rules: &[RuleRecord], host: &str, port: u16, resolved: Option<&str>) -> Option<u64> {
        find_matching(rules, "myapp", host, port, resolved, 1_000).map(|r| r.id)
    }

    #[test]
    fn no_rules_or_no_match_is_none() {
        assert_eq!(winner(&[], "example.com", 443, None), None);
        let rules = [rule(1, "other", "*", "*", Action::Allow)];
        assert_eq!(winner(&rules, "example.com", 443, None), None);
        let rules = [rule(1, "myapp", "example.com", "80", Action::Allow)];
        assert_eq!(winner(&rules, "example.com", 443, None), None);
    }

    #[test]
    fn global_wildcard_allow_beats_session_exact_deny() {
        let rules = [
            session(rule(1, "myapp", "example.com", "443", Action::Deny)),
            rule(2, "*", "*", "*", Action::Allow),
        ];
        assert_eq!(winner(&rules, "example.com", 443, None), Some(2));
    }

    #[test]
    fn session_beats_builtin_and_global_beats_builtin_localhost() {
        let rules = [
            builtin(rule(1, "*", "localhost", "*", Action::Allow)),
            rule(2, "*", "*", "*", Action::Deny),
        ];
        assert_eq!(winner(&rules, "localhost", 8080, None), Some(2));
        let rules = [
            builtin(rule(1, "myapp", "localhost", "8080", Action::Allow)),
            session(rule(2, "*", "*", "*", Action::Deny)),
        ];
        assert_eq!(winner(&rules, "localhost", 8080, None), Some(2));
    }

    #[test]
    fn more_specific_wins_within_a_layer() {
        let rules = [
            rule(1, "*", "*", "*", Action::Deny),
            rule(2, "*", "*.example.com", "*", Action::Allow),
            rule(3, "myapp", "api.example.com", "*", Action::Deny),
            rule(4, "myapp", "api.example.com", "443", Action::Allow),
        ];
        assert_eq!(winner(&rules, "api.example.com", 443, None), Some(4));
        assert_eq!(winner(&rules, "api.example.com", 80, None), Some(3));
        assert_eq!(winner(&rules, "www.example.com", 80, None), Some(2));
        assert_eq!(winner(&rules, "example.org", 80, None), Some(1));
    }

    #[test]
    fn deny_wins_ties_then_lowest_id() {
        let rules = [
            rule(5, "myapp", "example.com", "*", Action::Allow),
            rule(7, "myapp", "example.com", "*", Action::Deny),
        ];
        assert_eq!(winner(&rules, "example.com", 443, None), Some(7));
        // Same rank, same action (different but equally specific patterns): lowest id, whatever
        // the storage order.
        let a = rule(9, "myapp", "example.com", "443", Action::Allow);
        let b = rule(3, "myapp", "example.com", "400-500", Action::Allow);
        assert_eq!(
            winner(&[a.clone(), b.clone()], "example.com", 443, None),
            Some(3)
        );
        assert_eq!(winner(&[b, a], "example.com", 443, None), Some(3));
    }

    #[test]
    fn expired_rules_are_ignored() {
        let mut deny = rule(1, "myapp", "example.com", "443", Action::Deny);
        deny.expires_at = Some(1_000); // expiry == now counts as expired
        let allow = rule(2, "*", "*", "*", Action::Allow);
        assert_eq!(
            winner(&[deny.clone(), allow.clone()], "example.com", 443, None),
            Some(2)
        );
        deny.expires_at = Some(1_001);
        assert_eq!(winner(&[deny, allow], "example.com", 443, None), Some(1));
    }

    #[test]
    fn resolved_hostname_is_tried_after_the_raw_host() {
        let rules = [rule(1, "myapp", "**.example.com", "443", Action::Allow)];
        assert_eq!(winner(&rules, "93.184.216.34", 443, None), None);
        assert_eq!(winner(&rules, "93.184.216.34", 443, Some("")), None);
        assert_eq!(
            winner(&rules, "93.184.216.34", 443, Some("www.example.com")),
            Some(1)
        );
        // Either side may be the one that matches.
        let rules = [rule(1, "myapp", "93.184.216.0/24", "443", Action::Deny)];
        assert_eq!(
            winner(&rules, "93.184.216.34", 443, Some("www.example.com")),
            Some(1)
        );
    }

    #[test]
    fn cidr_never_matches_a_hostname() {
        let rules = [rule(1, "myapp", "0.0.0.0/0", "*", Action::Allow)];
        assert_eq!(winner(&rules, "example.com", 443, None), None);
        assert_eq!(winner(&rules, "10.0.0.1", 443, None), Some(1));
    }

    #[test]
    fn container_glob_and_case_sensitivity() {
        let rules = [rule(1, "my*", "EXAMPLE.com", "*", Action::Allow)];
        assert_eq!(winner(&rules, "Example.COM", 443, None), Some(1));
        let rules = [rule(1, "MyApp", "*", "*", Action::Allow)];
        assert_eq!(winner(&rules, "example.com", 443, None), None);
    }
}
