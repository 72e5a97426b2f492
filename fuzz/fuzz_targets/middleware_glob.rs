//! Middleware filter globs: `go_match` and `filter_glob` with both the pattern and the value
//! fuzzed (split at the first NUL byte). They must never panic and must stay fast on any input
//! (libFuzzer's `-timeout` catches exponential backtracking). Also checks a few properties that
//! hold for any pattern.

#![no_main]

use greyproxyd::middleware::glob::{filter_glob, go_match};
use libfuzzer_sys::fuzz_target;

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
