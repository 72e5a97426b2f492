//! Middleware hook filters: a [`HookFilter`] received in a middleware's `hello`, compiled once
//! ([`CompiledFilter`]) and evaluated against each request/response ([`FilterInput`]).
//!
//! Semantics (greyproxy's, docs/middleware.md#filters): keys are evaluated in the order `tls`,
//! `llm`, `host`, `path`, `method`, `content_type`, `container`; the first failing key answers
//! "no match". Across keys it is an AND, within one key an OR over its patterns; an absent key or
//! an empty list places no constraint, and an absent filter matches everything.

use greyproxy_protocol::middleware::HookFilter;
use regex::Regex;

use crate::glob::Dialect;

/// What one hook invocation is matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FilterInput<'a> {
    /// The pipeline flag: `true` for intercepted (MITM) traffic, `false` for the plain proxy.
    pub(crate) tls: bool,
    /// Whether the LLM endpoint registry currently maps this traffic to a decoder.
    pub(crate) llm: bool,
    /// The request's `Host` as sent (may include `:port`, not lower-cased).
    pub(crate) host: &'a str,
    /// Request hook: the decoded path without query. Response hook: the raw request URI.
    pub(crate) path: &'a str,
    /// The request method.
    pub(crate) method: &'a str,
    /// The current `Content-Type` header (request or working response); `None` when absent,
    /// which is matched as the empty string.
    pub(crate) content_type: Option<&'a str>,
    /// The client identity ("container name").
    pub(crate) container: &'a str,
}

/// A [`HookFilter`] with its path regexes compiled.
#[derive(Debug, Clone)]
pub(crate) struct CompiledFilter {
    tls: Option<bool>,
    llm: Option<bool>,
    host: Vec<String>,
    /// Whether the filter listed any path pattern (even if none compiled).
    path_listed: bool,
    /// The path patterns that compiled; empty with `path_listed` means "never matches".
    paths: Vec<Regex>,
    method: Vec<String>,
    content_type: Vec<String>,
    container: Vec<String>,
}

impl CompiledFilter {
    /// Compiles a filter; `None` (filter absent or `null`) matches everything.
    ///
    /// Path regexes are compiled once here; those that fail to compile are dropped (logged at
    /// debug level). If the filter listed paths and every one of them was invalid, the filter
    /// never matches.
    #[must_use]
    pub(crate) fn new(f: Option<&HookFilter>) -> CompiledFilter {
        let Some(f) = f else {
            return CompiledFilter {
                tls: None,
                llm: None,
                host: Vec::new(),
                path_listed: false,
                paths: Vec::new(),
                method: Vec::new(),
                content_type: Vec::new(),
                container: Vec::new(),
            };
        };
        let paths = f
            .path
            .iter()
            .filter_map(|p| match Regex::new(p) {
                Ok(re) => Some(re),
                Err(err) => {
                    tracing::debug!(pattern = %p, error = %err, "dropping invalid filter path regex");
                    None
                }
            })
            .collect();
        CompiledFilter {
            tls: f.tls,
            llm: f.llm,
            host: f.host.clone(),
            path_listed: !f.path.is_empty(),
            paths,
            method: f.method.clone(),
            content_type: f.content_type.clone(),
            container: f.container.clone(),
        }
    }

    /// Whether the filter places no constraint at all (absent filter, or every key absent or
    /// empty).
    #[must_use]
    #[cfg(test)]
    pub(crate) fn is_match_all(&self) -> bool {
        self.tls.is_none()
            && self.llm.is_none()
            && self.host.is_empty()
            && !self.path_listed
            && self.method.is_empty()
            && self.content_type.is_empty()
            && self.container.is_empty()
    }

    /// Evaluates the filter: keys in the order `tls`, `llm`, `host`, `path`, `method`,
    /// `content_type`, `container`; AND across keys, OR within a key.
    #[must_use]
    pub(crate) fn matches(&self, i: &FilterInput<'_>) -> bool {
        self.first_mismatch(i).is_none()
    }

    /// The first key (in evaluation order) that rejects `i`, or `None` when the filter matches.
    fn first_mismatch(&self, i: &FilterInput<'_>) -> Option<&'static str> {
        if self.tls.is_some_and(|want| want != i.tls) {
            return Some("tls");
        }
        if self.llm.is_some_and(|want| want != i.llm) {
            return Some("llm");
        }
        if !self.host.is_empty() && !self.host.iter().any(|p| filter_glob(p, i.host)) {
            return Some("host");
        }
        if self.path_listed && !self.paths.iter().any(|re| re.is_match(i.path)) {
            return Some("path");
        }
        if !self.method.is_empty() && !self.method.iter().any(|m| eq_lowercase(m, i.method)) {
            return Some("method");
        }
        if !self.content_type.is_empty() {
            let media = media_type(i.content_type.unwrap_or(""));
            if !self.content_type.iter().any(|p| filter_glob(p, media)) {
                return Some("content_type");
            }
        }
        if !self.container.is_empty() && !self.container.iter().any(|p| filter_glob(p, i.container))
        {
            return Some("container");
        }
        None
    }
}

/// The glob of the `host`, `content_type` and `container` keys: Go's `path.Match` plus the
/// `*.suffix` extension ([`Dialect::FILTER`]).
fn filter_glob(pattern: &str, value: &str) -> bool {
    Dialect::FILTER.matches(pattern, value)
}

/// The media type used by the `content_type` filter: when the value contains a `;`, the text
/// before it, whitespace-trimmed; otherwise the value unchanged.
#[must_use]
pub(crate) fn media_type(ct: &str) -> &str {
    match ct.split_once(';') {
        Some((before, _)) => before.trim(),
        None => ct,
    }
}

/// Case-insensitive equality by comparing the Unicode lower-case forms, without allocating.
fn eq_lowercase(a: &str, b: &str) -> bool {
    a.chars()
        .flat_map(char::to_lowercase)
        .eq(b.chars().flat_map(char::to_lowercase))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn input() -> FilterInput<'static> {
        FilterInput {
            tls: true,
            llm: false,
            host: "api.openai.com",
            path: "/v1/chat/completions",
            method: "POST",
            content_type: Some("application/json"),
            container: "my-app-1",
        }
    }

    fn compile(f: &HookFilter) -> CompiledFilter {
        CompiledFilter::new(Some(f))
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn g1_host_suffix_glob() {
        let f = compile(&HookFilter {
            host: strings(&["*.openai.com"]),
            ..HookFilter::default()
        });
        for (host, want) in [
            ("api.openai.com", true),
            ("a.b.openai.com", true),
            ("openai.com", false),
            ("api.openai.com:443", false),
            ("evilopenai.com", false),
        ] {
            assert_eq!(f.matches(&FilterInput { host, ..input() }), want, "{host}");
        }
    }

    #[test]
    fn g2_content_type_globs() {
        let cases: &[(&str, Option<&str>, bool)] = &[
            ("text/*", Some("text/html"), true),
            ("*", Some("application/json"), false),
            ("*/*", Some("application/json"), true),
            ("*/*", Some("text/html; charset=utf-8"), true),
            (
                "application/json",
                Some("application/json; charset=utf-8"),
                true,
            ),
            (
                "application/json",
                Some("application/json ;charset=utf-8"),
                true,
            ),
            ("Application/JSON", Some("application/json"), false),
            ("application/json", Some("Application/JSON"), false),
            // Missing Content-Type is the empty string.
            ("*", None, true),
            ("*/*", None, false),
            ("", None, true),
        ];
        for &(pattern, content_type, want) in cases {
            let f = compile(&HookFilter {
                content_type: strings(&[pattern]),
                ..HookFilter::default()
            });
            assert_eq!(
                f.matches(&FilterInput {
                    content_type,
                    ..input()
                }),
                want,
                "{pattern:?} vs {content_type:?}"
            );
        }
    }

    #[test]
    fn g2_media_type() {
        assert_eq!(
            media_type("application/json; charset=utf-8"),
            "application/json"
        );
        assert_eq!(media_type("  text/html ; q=1"), "text/html");
        assert_eq!(media_type("text/html"), "text/html");
        // Without `;` the value is not trimmed.
        assert_eq!(media_type(" text/html "), " text/html ");
        assert_eq!(media_type(""), "");
        assert_eq!(media_type(";x"), "");
    }

    #[test]
    fn g3_method_case_insensitive() {
        let f = compile(&HookFilter {
            method: strings(&["post"]),
            ..HookFilter::default()
        });
        assert!(f.matches(&input()));
        assert!(f.matches(&FilterInput {
            method: "Post",
            ..input()
        }));
        assert!(!f.matches(&FilterInput {
            method: "GET",
            ..input()
        }));
        assert!(!f.matches(&FilterInput {
            method: "POSTS",
            ..input()
        }));
        let f = compile(&HookFilter {
            method: strings(&["GET", "PUT"]),
            ..HookFilter::default()
        });
        assert!(f.matches(&FilterInput {
            method: "put",
            ..input()
        }));
        assert!(!f.matches(&input()));
    }

    #[test]
    fn g4_path_regexes() {
        let f = compile(&HookFilter {
            path: strings(&["/v1/.*"]),
            ..HookFilter::default()
        });
        assert!(f.matches(&input()));
        assert!(!f.matches(&FilterInput {
            path: "/v2/x",
            ..input()
        }));

        // Unanchored.
        let f = compile(&HookFilter {
            path: strings(&["/v1/"]),
            ..HookFilter::default()
        });
        assert!(f.matches(&FilterInput {
            path: "/x/v1/y",
            ..input()
        }));

        // Case-sensitive unless (?i).
        let f = compile(&HookFilter {
            path: strings(&["/V1/"]),
            ..HookFilter::default()
        });
        assert!(!f.matches(&input()));
        let f = compile(&HookFilter {
            path: strings(&["(?i)/V1/"]),
            ..HookFilter::default()
        });
        assert!(f.matches(&input()));

        // All invalid: never matches, and is not "match all".
        let f = compile(&HookFilter {
            path: strings(&["("]),
            ..HookFilter::default()
        });
        assert!(!f.is_match_all());
        for path in ["", "/", "/v1/chat/completions", "("] {
            assert!(!f.matches(&FilterInput { path, ..input() }), "{path}");
        }

        // Invalid + valid: the valid one works.
        let f = compile(&HookFilter {
            path: strings(&["(", "/chat/"]),
            ..HookFilter::default()
        });
        assert!(f.matches(&input()));
        assert!(!f.matches(&FilterInput {
            path: "/v1/embeddings",
            ..input()
        }));
    }

    #[test]
    fn g5_container_globs() {
        let cases: &[(&str, &str, bool)] = &[
            ("my-app-*", "my-app-1", true),
            ("my-app-*", "other", false),
            ("*", "", true),
            ("*", "anything", true),
            ("[", "[", false),
            ("[", "", false),
        ];
        for &(pattern, container, want) in cases {
            let f = compile(&HookFilter {
                container: strings(&[pattern]),
                ..HookFilter::default()
            });
            assert_eq!(
                f.matches(&FilterInput {
                    container,
                    ..input()
                }),
                want,
                "{pattern:?} vs {container:?}"
            );
        }
    }

    #[test]
    fn g6_tls_flag() {
        let only_mitm = compile(&HookFilter {
            tls: Some(true),
            ..HookFilter::default()
        });
        let only_plain = compile(&HookFilter {
            tls: Some(false),
            ..HookFilter::default()
        });
        let mitm = input();
        let plain = FilterInput {
            tls: false,
            ..input()
        };
        assert!(only_mitm.matches(&mitm));
        assert!(!only_mitm.matches(&plain));
        assert!(only_plain.matches(&plain));
        assert!(!only_plain.matches(&mitm));
    }

    #[test]
    fn llm_flag_must_equal() {
        let only_llm = compile(&HookFilter {
            llm: Some(true),
            ..HookFilter::default()
        });
        let never_llm = compile(&HookFilter {
            llm: Some(false),
            ..HookFilter::default()
        });
        let llm = FilterInput {
            llm: true,
            ..input()
        };
        assert!(only_llm.matches(&llm));
        assert!(!only_llm.matches(&input()));
        assert!(never_llm.matches(&input()));
        assert!(!never_llm.matches(&llm));
    }

    #[test]
    fn g8_empty_arrays_and_null_match_all() {
        let none = CompiledFilter::new(None);
        assert!(none.is_match_all());
        let empty = compile(&HookFilter::default());
        assert!(empty.is_match_all());
        let odd = FilterInput {
            tls: false,
            llm: true,
            host: "",
            path: "",
            method: "",
            content_type: None,
            container: "",
        };
        for f in [&none, &empty] {
            assert!(f.matches(&input()));
            assert!(f.matches(&odd));
        }
        // An empty list among constrained keys places no constraint either.
        let f = compile(&HookFilter {
            host: Vec::new(),
            method: strings(&["POST"]),
            ..HookFilter::default()
        });
        assert!(!f.is_match_all());
        assert!(f.matches(&input()));
    }

    #[test]
    fn and_across_keys_or_within() {
        let f = compile(&HookFilter {
            host: strings(&["example.com", "*.openai.com"]),
            method: strings(&["GET", "POST"]),
            content_type: strings(&["text/*", "application/json"]),
            ..HookFilter::default()
        });
        assert!(f.matches(&input()));
        assert!(!f.matches(&FilterInput {
            host: "other.org",
            ..input()
        }));
        assert!(!f.matches(&FilterInput {
            method: "DELETE",
            ..input()
        }));
        assert!(f.matches(&FilterInput {
            host: "example.com",
            content_type: Some("text/plain"),
            ..input()
        }));
    }

    #[test]
    fn evaluation_order_and_first_failure() {
        let f = compile(&HookFilter {
            tls: Some(false),
            llm: Some(true),
            host: strings(&["h"]),
            path: strings(&["^/p$"]),
            method: strings(&["GET"]),
            content_type: strings(&["text/plain"]),
            container: strings(&["c"]),
        });
        let all_good = FilterInput {
            tls: false,
            llm: true,
            host: "h",
            path: "/p",
            method: "get",
            content_type: Some("text/plain; charset=utf-8"),
            container: "c",
        };
        assert!(f.matches(&all_good));
        assert_eq!(f.first_mismatch(&all_good), None);

        // Start with every key failing, then fix keys one at a time in evaluation order: the
        // reported first failure walks tls, llm, host, path, method, content_type, container.
        let mut i = FilterInput {
            tls: true,
            llm: false,
            host: "x",
            path: "/q",
            method: "PUT",
            content_type: Some("text/html"),
            container: "d",
        };
        type Fixer = (&'static str, fn(&mut FilterInput<'static>));
        let fixers: [Fixer; 7] = [
            ("tls", |i| i.tls = false),
            ("llm", |i| i.llm = true),
            ("host", |i| i.host = "h"),
            ("path", |i| i.path = "/p"),
            ("method", |i| i.method = "GET"),
            ("content_type", |i| i.content_type = Some("text/plain")),
            ("container", |i| i.container = "c"),
        ];
        for (key, fix) in fixers {
            assert_eq!(f.first_mismatch(&i), Some(key));
            assert!(!f.matches(&i));
            fix(&mut i);
        }
        assert!(f.matches(&i));

        // Each key alone decides.
        for (key, _) in fixers {
            let mut one_bad = all_good;
            match key {
                "tls" => one_bad.tls = true,
                "llm" => one_bad.llm = false,
                "host" => one_bad.host = "x",
                "path" => one_bad.path = "/p/",
                "method" => one_bad.method = "PUT",
                "content_type" => one_bad.content_type = None,
                _ => one_bad.container = "cc",
            }
            assert_eq!(f.first_mismatch(&one_bad), Some(key));
        }
    }
}
