//! TEMPORARY: the engine against the implementations it replaces, over many generated
//! patterns and values. Deleted together with the old implementations.

#![allow(clippy::unwrap_used)]
use super::*;
use crate::middleware::glob::{filter_glob, go_match};
use crate::middleware::llm::star_glob;
use crate::mitm::intercept::host_glob;
use crate::policy::pattern::{container_matches, destination_matches, validate_container_pattern};

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn string(&mut self, alphabet: &[&str], max: usize) -> String {
        let n = (self.next() % (max as u64 + 1)) as usize;
        (0..n)
            .map(|_| alphabet[(self.next() % alphabet.len() as u64) as usize])
            .collect()
    }
}

/// Every string of up to `max` tokens.
fn all(alphabet: &[&str], max: usize) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut layer = vec![String::new()];
    for _ in 0..max {
        layer = layer
            .iter()
            .flat_map(|s| alphabet.iter().map(move |t| format!("{s}{t}")))
            .collect();
        out.extend(layer.iter().cloned());
    }
    out
}

const PATH_PATTERN: &[&str] = &[
    "a", "b", "/", ".", "*", "?", "[", "]", "^", "-", "\\", "é", "€", "\u{FFFD}", "A", "[a-z]",
    "[^é]", "[é-€]", "[\\]]", "**", "[^a]", "*.", "☺",
];
const PATH_VALUE: &[&str] = &[
    "a", "b", "/", ".", "é", "€", "A", "-", "]", "*", "?", "[", "\\", "z", "\u{FFFD}", "☺", "^",
];

fn check_path(p: &str, v: &str) {
    let go = Dialect::Path(PathOptions {
        star_step: StarStep::Char,
        lone_star_matches_all: false,
        dot_suffix: false,
    });
    assert_eq!(go.matches(p, v), go_match(p, v), "go_match {p:?} {v:?}");
    assert_eq!(
        Dialect::FILTER.matches(p, v),
        filter_glob(p, v),
        "filter_glob {p:?} {v:?}"
    );
    assert_eq!(
        Dialect::CONTAINER.matches(p, v),
        container_matches(p, v),
        "container_matches {p:?} {v:?}"
    );
    assert_eq!(
        Dialect::Star.matches(p, v),
        star_glob(p, v),
        "star_glob {p:?} {v:?}"
    );
}

#[test]
fn path_dialects_agree_with_the_old_matchers() {
    let (patterns, values) = (all(PATH_PATTERN, 3), all(PATH_VALUE, 2));
    for p in &patterns {
        if !p.is_empty() {
            assert_eq!(
                Dialect::CONTAINER.check(p).map_err(|e| e.to_string()),
                validate_container_pattern(p).map_err(|e| match e {
                    crate::policy::pattern::PatternError::Container { reason, .. } => reason,
                    other => panic!("{other}"),
                }),
                "check {p:?}"
            );
        }
        for v in &values {
            check_path(p, v);
        }
    }
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..400_000 {
        let p = rng.string(PATH_PATTERN, 8);
        let v = rng.string(PATH_VALUE, 10);
        check_path(&p, &v);
        check_path(&p, &p);
    }
}

const HOST: &[&str] = &[
    "*", "**", ".", "a", "b", "A", "B", "é", "É", "-", "1", "com", ".com", "*.", "**.",
];

/// The old `destination_matches` trims, drops a trailing dot after a name character and IPv6
/// brackets before comparing; inputs where that changes nothing compare the engine directly.
fn bare(s: &str) -> bool {
    !s.trim().eq(s)
        || s.contains(['[', ']', '/', ':'])
        || s.strip_suffix('.')
            .is_some_and(|r| !r.is_empty() && !r.ends_with(['.', '*']))
}

fn check_host(p: &str, h: &str) {
    if !bare(p) && !bare(h) {
        assert_eq!(
            Dialect::DESTINATION.matches(p, h),
            destination_matches(p, h),
            "destination {p:?} {h:?}"
        );
    }
    for g in [p.to_string(), format!(" {p}\t")] {
        assert_eq!(
            Dialect::BYPASS.matches(g.trim(), h),
            host_glob(&g, &h.to_ascii_lowercase()),
            "bypass {g:?} {h:?}"
        );
    }
}

#[test]
fn host_dialects_agree_with_the_old_matchers() {
    let all_hosts = all(HOST, 2);
    for p in &all_hosts {
        for h in &all_hosts {
            check_host(p, h);
        }
    }
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    for _ in 0..200_000 {
        let p = rng.string(HOST, 7);
        let h = rng.string(HOST, 7);
        check_host(&p, &h);
        check_host(&p, &p);
    }
}
