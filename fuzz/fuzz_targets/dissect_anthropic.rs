//! The Anthropic Messages dissector on arbitrary request and response bodies (JSON or SSE, cut or
//! whole, UTF-8 or not), with the client detection after it. Never a panic; previews, the
//! system prompt and thinking stay within their documented lengths, the first-content offset
//! within the body, and a response marked complete has no error. Input layout:
//! `greyproxyd::dissect::fuzzing::check_bytes`.

#![no_main]

use greyproxyd::dissect::fuzzing::{Format, check_bytes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = check_bytes(Format::Anthropic, data) {
        panic!("{broken}");
    }
});
