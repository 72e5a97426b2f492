//! The LLM endpoint registry: maps `(host, path, method)` to a decoder name (the table and its
//! matching rules are in docs/middleware.md#filters). It feeds the middleware `llm` filter key
//! and the capture dissectors.
//!
//! The registry holds the seven built-in rules followed by user rules (`[[llm_endpoint]]` tables
//! of the configuration file). Matching walks the enabled rules by priority (highest first), then
//! insertion order, and returns the decoder of the first rule whose method is `*` or equal, whose
//! host glob matches the host without its port (case-insensitively) and whose path glob matches
//! the URL path. Globs here are deliberately simpler than the filter globs: only `*` is special,
//! it matches any sequence (including `/`), and the match is anchored at both ends
//! ([`Dialect::Star`]).

use serde::{Deserialize, Serialize};

use crate::glob::Dialect;

/// One endpoint rule; the keys of an `[[llm_endpoint]]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LlmRule {
    /// Host glob (only `*` is special), compared case-insensitively against the host without
    /// its port.
    pub(crate) host: String,
    /// Path glob (only `*` is special, anchored), compared against the URL path without query.
    pub(crate) path: String,
    /// HTTP method (or `WS_REQ` / `WS_RESP`), compared case-sensitively; `*` matches any.
    #[serde(default = "default_method")]
    pub(crate) method: String,
    /// Decoder (dissector) name, e.g. `anthropic`, `openai-chat`.
    pub(crate) decoder: String,
    /// Higher priorities are tried first; ties keep insertion order.
    #[serde(default)]
    pub(crate) priority: i32,
    /// Disabled rules never match.
    #[serde(default = "default_enabled")]
    pub(crate) enabled: bool,
}

fn default_method() -> String {
    "POST".to_owned()
}

fn default_enabled() -> bool {
    true
}

impl LlmRule {
    fn builtin(host: &str, path: &str, method: &str, decoder: &str) -> Self {
        LlmRule {
            host: host.to_owned(),
            path: path.to_owned(),
            method: method.to_owned(),
            decoder: decoder.to_owned(),
            priority: 0,
            enabled: true,
        }
    }
}

/// The seven built-in rules (always enabled, priority 0): Anthropic, OpenAI Responses (HTTP and
/// both WebSocket directions), OpenAI Chat Completions, OpenRouter and Google AI.
#[must_use]
pub(crate) fn builtin_rules() -> Vec<LlmRule> {
    vec![
        LlmRule::builtin("api.anthropic.com", "/v1/messages", "POST", "anthropic"),
        LlmRule::builtin("api.openai.com", "/v1/responses", "POST", "openai"),
        LlmRule::builtin("api.openai.com", "/v1/responses", "WS_REQ", "openai-ws"),
        LlmRule::builtin("api.openai.com", "/v1/responses", "WS_RESP", "openai-ws"),
        LlmRule::builtin(
            "api.openai.com",
            "/v1/chat/completions",
            "POST",
            "openai-chat",
        ),
        LlmRule::builtin(
            "openrouter.ai",
            "/api/v1/chat/completions",
            "POST",
            "openai-chat",
        ),
        LlmRule::builtin(
            "generativelanguage.googleapis.com",
            "/v1beta/models/*",
            "POST",
            "google-ai",
        ),
    ]
}

/// A user rule with an empty key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("llm_endpoint #{rule}: {key} must not be empty")]
pub struct EmptyKey {
    /// The rule, 1-based.
    pub(crate) rule: usize,
    /// `host`, `path` or `decoder`.
    pub(crate) key: &'static str,
}

/// Checks user rules: host, path and decoder must be non-empty (after trimming whitespace).
///
/// # Errors
///
/// The first offending rule (1-based) and key.
pub fn validate(rules: &[LlmRule]) -> Result<(), EmptyKey> {
    for (n, rule) in rules.iter().enumerate() {
        for (key, value) in [
            ("host", &rule.host),
            ("path", &rule.path),
            ("decoder", &rule.decoder),
        ] {
            if value.trim().is_empty() {
                return Err(EmptyKey { rule: n + 1, key });
            }
        }
    }
    Ok(())
}

/// The endpoint registry: built-in rules then user rules, with a precomputed matching order.
#[derive(Debug, Clone)]
pub(crate) struct LlmRegistry {
    /// Built-ins first, then user rules, in insertion order.
    rules: Vec<LlmRule>,
    /// Number of built-in rules at the start of `rules`.
    #[cfg_attr(not(test), allow(dead_code))] // read by the tests
    builtin_count: usize,
    /// Enabled rules in matching order (priority DESC, then insertion order), with the host
    /// pattern lower-cased.
    order: Vec<(usize, String)>,
}

impl LlmRegistry {
    /// Builds the registry from the user rules (appended after the built-ins).
    #[must_use]
    pub(crate) fn new(user: Vec<LlmRule>) -> Self {
        let mut rules = builtin_rules();
        let builtin_count = rules.len();
        rules.extend(user);
        let mut order: Vec<(usize, String)> = rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.enabled)
            .map(|(i, r)| (i, r.host.to_lowercase()))
            .collect();
        // Stable sort: ties keep insertion order.
        order.sort_by_key(|&(i, _)| std::cmp::Reverse(rules[i].priority));
        LlmRegistry {
            rules,
            builtin_count,
            order,
        }
    }

    /// All rules: built-ins first, then user rules, in insertion order (disabled ones included).
    #[must_use]
    #[cfg(test)]
    pub(crate) fn rules(&self) -> &[LlmRule] {
        &self.rules
    }

    /// The user rules, in insertion order.
    #[must_use]
    #[cfg(test)]
    pub(crate) fn user_rules(&self) -> &[LlmRule] {
        self.rules.get(self.builtin_count..).unwrap_or(&[])
    }

    /// The decoder of the first matching enabled rule, if any.
    ///
    /// `host` may carry a `:port` (also `[v6]:port`), which is ignored; it is compared
    /// case-insensitively. `path_or_uri` may be a path, an origin-form URI with query, or an
    /// absolute-form URI; see [`url_path`]. `method` is compared case-sensitively (`*` in a rule
    /// matches any method).
    #[must_use]
    pub(crate) fn lookup(&self, host: &str, path_or_uri: &str, method: &str) -> Option<&str> {
        let host = strip_port(host).to_lowercase();
        let path = url_path(path_or_uri);
        self.order.iter().find_map(|(i, host_pattern)| {
            let rule = self.rules.get(*i)?;
            let hit = (rule.method == "*" || rule.method == method)
                && Dialect::Star.matches(host_pattern, &host)
                && Dialect::Star.matches(&rule.path, path);
            hit.then_some(rule.decoder.as_str())
        })
    }
}

impl Default for LlmRegistry {
    /// The built-in rules only.
    fn default() -> Self {
        LlmRegistry::new(Vec::new())
    }
}

/// The URL path of a request target: `scheme://authority` is stripped when present, the text is
/// cut at the first `?`, and an empty result becomes `/`.
#[must_use]
pub(crate) fn url_path(uri: &str) -> &str {
    let rest = match uri.split_once("://") {
        Some((scheme, after)) if is_scheme(scheme) => {
            let end = after.find(['/', '?']).unwrap_or(after.len());
            &after[end..]
        }
        _ => uri,
    };
    let path = rest.split_once('?').map_or(rest, |(p, _)| p);
    if path.is_empty() { "/" } else { path }
}

/// RFC 3986 scheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
fn is_scheme(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// The host without a trailing `:port`; brackets of an IPv6 literal are removed too
/// (`[::1]:443` → `::1`). A bare IPv6 address (several colons, no brackets) is left alone.
fn strip_port(host: &str) -> &str {
    if let Some(inner) = host.strip_prefix('[') {
        return match inner.split_once(']') {
            Some((addr, _)) => addr,
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn user(host: &str, path: &str, method: &str, decoder: &str, priority: i32) -> LlmRule {
        LlmRule {
            host: host.to_owned(),
            path: path.to_owned(),
            method: method.to_owned(),
            decoder: decoder.to_owned(),
            priority,
            enabled: true,
        }
    }

    #[test]
    fn builtins_shape() {
        let rules = builtin_rules();
        assert_eq!(rules.len(), 7);
        assert!(rules.iter().all(|r| r.enabled && r.priority == 0));
        let reg = LlmRegistry::default();
        assert_eq!(reg.rules(), rules.as_slice());
        assert!(reg.user_rules().is_empty());
        assert_eq!(validate(&rules), Ok(()));
    }

    #[test]
    fn each_builtin_matches() {
        let reg = LlmRegistry::new(Vec::new());
        let cases: &[(&str, &str, &str, &str)] = &[
            ("api.anthropic.com", "/v1/messages", "POST", "anthropic"),
            ("api.anthropic.com:443", "/v1/messages", "POST", "anthropic"),
            (
                "API.Anthropic.COM",
                "/v1/messages?beta=true",
                "POST",
                "anthropic",
            ),
            ("api.openai.com", "/v1/responses", "POST", "openai"),
            ("api.openai.com", "/v1/responses", "WS_REQ", "openai-ws"),
            ("api.openai.com:80", "/v1/responses", "WS_RESP", "openai-ws"),
            (
                "api.openai.com",
                "wss://api.openai.com:80/v1/responses",
                "WS_REQ",
                "openai-ws",
            ),
            (
                "api.openai.com",
                "/v1/chat/completions",
                "POST",
                "openai-chat",
            ),
            (
                "api.openai.com",
                "http://api.openai.com/v1/chat/completions?x=1",
                "POST",
                "openai-chat",
            ),
            (
                "openrouter.ai",
                "/api/v1/chat/completions",
                "POST",
                "openai-chat",
            ),
            (
                "generativelanguage.googleapis.com",
                "/v1beta/models/gemini-pro:generateContent",
                "POST",
                "google-ai",
            ),
            (
                "generativelanguage.googleapis.com:443",
                "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
                "POST",
                "google-ai",
            ),
        ];
        for &(host, path, method, want) in cases {
            assert_eq!(
                reg.lookup(host, path, method),
                Some(want),
                "lookup({host:?}, {path:?}, {method:?})"
            );
        }
    }

    #[test]
    fn non_matches() {
        let reg = LlmRegistry::new(Vec::new());
        let cases: &[(&str, &str, &str)] = &[
            // Wrong method (and method is case-sensitive).
            ("api.anthropic.com", "/v1/messages", "GET"),
            ("api.anthropic.com", "/v1/messages", "post"),
            ("api.openai.com", "/v1/chat/completions", "WS_REQ"),
            // Wrong host / path.
            ("example.com", "/v1/messages", "POST"),
            ("evil-api.anthropic.com", "/v1/messages", "POST"),
            ("api.anthropic.com", "/v1/messages/count_tokens", "POST"),
            ("api.anthropic.com", "/x/v1/messages", "POST"),
            ("api.anthropic.com", "/V1/messages", "POST"),
            (
                "generativelanguage.googleapis.com",
                "/v1/models/gemini-pro",
                "POST",
            ),
            ("api.openai.com", "/", "POST"),
            ("api.openai.com", "", "POST"),
        ];
        for &(host, path, method) in cases {
            assert_eq!(
                reg.lookup(host, path, method),
                None,
                "lookup({host:?}, {path:?}, {method:?})"
            );
        }
    }

    #[test]
    fn disabled_user_rule_never_matches() {
        let mut rule = user(
            "llm.internal",
            "/chat/completions",
            "POST",
            "openai-chat",
            0,
        );
        rule.enabled = false;
        let reg = LlmRegistry::new(vec![rule.clone()]);
        assert_eq!(
            reg.lookup("llm.internal", "/chat/completions", "POST"),
            None
        );
        assert_eq!(reg.user_rules(), std::slice::from_ref(&rule));
        assert_eq!(reg.rules().len(), 8);

        rule.enabled = true;
        let reg = LlmRegistry::new(vec![rule]);
        assert_eq!(
            reg.lookup("llm.internal", "/chat/completions", "POST"),
            Some("openai-chat")
        );
    }

    #[test]
    fn priority_order() {
        // A user rule with a higher priority beats the built-in.
        let reg = LlmRegistry::new(vec![user("api.anthropic.com", "/v1/*", "*", "custom", 5)]);
        assert_eq!(
            reg.lookup("api.anthropic.com", "/v1/messages", "POST"),
            Some("custom")
        );
        // Equal priority: the built-in was inserted first.
        let reg = LlmRegistry::new(vec![user("api.anthropic.com", "/v1/*", "*", "custom", 0)]);
        assert_eq!(
            reg.lookup("api.anthropic.com", "/v1/messages", "POST"),
            Some("anthropic")
        );
        assert_eq!(
            reg.lookup("api.anthropic.com", "/v1/models", "GET"),
            Some("custom")
        );
        // Negative priority loses to built-ins; ties among user rules keep insertion order.
        let reg = LlmRegistry::new(vec![
            user("*", "*", "*", "first", -1),
            user("*", "*", "*", "second", -1),
        ]);
        assert_eq!(
            reg.lookup("api.anthropic.com", "/v1/messages", "POST"),
            Some("anthropic")
        );
        assert_eq!(reg.lookup("x", "/y", "GET"), Some("first"));
    }

    #[test]
    fn user_rule_host_glob_case_insensitive() {
        let reg = LlmRegistry::new(vec![user(
            "*.Example.COM",
            "/llm/*",
            "POST",
            "openai-chat",
            0,
        )]);
        assert_eq!(
            reg.lookup("a.example.com:8443", "/llm/chat", "POST"),
            Some("openai-chat")
        );
        assert_eq!(
            reg.lookup("A.B.EXAMPLE.com", "/llm/a/b", "POST"),
            Some("openai-chat")
        );
        assert_eq!(reg.lookup("example.com", "/llm/chat", "POST"), None);
    }

    #[test]
    fn ipv6_hosts() {
        let reg = LlmRegistry::new(vec![
            user("::1", "/v1/*", "POST", "v6", 0),
            user("127.0.0.1", "/v1/*", "POST", "v4", 0),
        ]);
        assert_eq!(reg.lookup("[::1]:443", "/v1/x", "POST"), Some("v6"));
        assert_eq!(reg.lookup("[::1]", "/v1/x", "POST"), Some("v6"));
        assert_eq!(reg.lookup("::1", "/v1/x", "POST"), Some("v6"));
        assert_eq!(reg.lookup("127.0.0.1:8080", "/v1/x", "POST"), Some("v4"));
    }

    #[test]
    fn strip_port_cases() {
        assert_eq!(strip_port("api.anthropic.com:443"), "api.anthropic.com");
        assert_eq!(strip_port("api.anthropic.com"), "api.anthropic.com");
        assert_eq!(strip_port("host:"), "host");
        assert_eq!(strip_port("[::1]:443"), "::1");
        assert_eq!(strip_port("[::1]"), "::1");
        assert_eq!(strip_port("::1"), "::1");
        assert_eq!(strip_port("fe80::1:443"), "fe80::1:443");
        assert_eq!(strip_port("host:abc"), "host:abc");
        assert_eq!(strip_port("[broken"), "[broken");
    }

    #[test]
    fn url_path_cases() {
        let cases: &[(&str, &str)] = &[
            ("/v1/messages", "/v1/messages"),
            ("/v1/messages?beta=true", "/v1/messages"),
            (
                "http://api.openai.com/v1/chat/completions?x=1",
                "/v1/chat/completions",
            ),
            ("https://api.openai.com:443/v1/responses", "/v1/responses"),
            ("wss://api.openai.com:80/v1/responses", "/v1/responses"),
            ("http://host", "/"),
            ("http://host?x=1", "/"),
            ("http://host/", "/"),
            ("", "/"),
            ("?x", "/"),
            ("/a/b://c", "/a/b://c"),
            ("/redirect?to=http://x/y", "/redirect"),
        ];
        for &(input, want) in cases {
            assert_eq!(url_path(input), want, "url_path({input:?})");
        }
    }

    #[test]
    fn validate_rejects_empty_fields() {
        assert_eq!(validate(&[]), Ok(()));
        let ok = user("h", "/p", "POST", "d", 0);
        assert_eq!(validate(std::slice::from_ref(&ok)), Ok(()));
        for key in ["host", "path", "decoder"] {
            let mut bad = ok.clone();
            match key {
                "host" => bad.host = String::new(),
                "path" => bad.path = "  ".to_owned(),
                _ => bad.decoder = String::new(),
            }
            let err = validate(&[ok.clone(), bad]).unwrap_err().to_string();
            assert!(err.contains("#2"), "{err}");
            assert!(err.contains(key), "{err}");
        }
    }

    #[test]
    fn toml_keys_and_defaults() {
        #[derive(Deserialize)]
        struct File {
            llm_endpoint: Vec<LlmRule>,
        }
        let file: File = toml::from_str(
            r#"
            [[llm_endpoint]]
            host = "llm.internal"
            path = "/v1/chat/completions"
            decoder = "openai-chat"

            [[llm_endpoint]]
            host = "*.corp"
            path = "/*"
            method = "*"
            decoder = "anthropic"
            priority = 10
            enabled = false
            "#,
        )
        .unwrap();
        assert_eq!(
            file.llm_endpoint,
            vec![
                user(
                    "llm.internal",
                    "/v1/chat/completions",
                    "POST",
                    "openai-chat",
                    0
                ),
                LlmRule {
                    enabled: false,
                    ..user("*.corp", "/*", "*", "anthropic", 10)
                },
            ]
        );
        let unknown = toml::from_str::<File>(
            r#"
            [[llm_endpoint]]
            host = "h"
            path = "/p"
            decoder = "d"
            colour = "blue"
            "#,
        );
        assert!(unknown.is_err());
        let missing = toml::from_str::<File>(
            r#"
            [[llm_endpoint]]
            host = "h"
            path = "/p"
            "#,
        );
        assert!(missing.is_err());
    }
}
