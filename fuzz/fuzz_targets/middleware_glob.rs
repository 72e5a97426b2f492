//! The glob engine's Go dialect as the middleware filters use it (`Dialect::FILTER`) and
//! without the `*.suffix` extension, with both the pattern and the value fuzzed (split at the
//! first NUL byte). They must never panic and must stay fast on any input
//! (libFuzzer's `-timeout` catches exponential backtracking). Also checks a few properties that
//! hold for any pattern.

#![no_main]

use greyproxyd::glob::{Dialect, PathOptions, StarStep};
use libfuzzer_sys::fuzz_target;

/// `Dialect::FILTER` without the `*.suffix` extension.
const GO: Dialect = Dialect::Path(PathOptions {
    star_step: StarStep::Char,
    ..PathOptions::GO
});

fn go_match(pattern: &str, value: &str) -> bool {
    GO.matches(pattern, value)
}

fn filter_glob(pattern: &str, value: &str) -> bool {
    Dialect::FILTER.matches(pattern, value)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (pattern, value) = text.split_once('\0').unwrap_or((text, ""));
    let matched = go_match(pattern, value);
    let filtered = filter_glob(pattern, value);
    // The filter glob only ever adds matches on top of `go_match`.
    assert!(!matched || filtered);
    // A pattern without any special character matches exactly itself.
    if !pattern.contains(['*', '?', '[', '\\']) {
        assert_eq!(matched, pattern == value);
        assert!(go_match(pattern, pattern));
    }
    // Swapped roles too: values are often pattern-like.
    let _ = go_match(value, pattern);
    let _ = filter_glob(value, pattern);
});
