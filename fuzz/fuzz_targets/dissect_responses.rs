//! The OpenAI Responses API dissector on one recorded HTTP exchange: byte 0 = flags (bit 0
//! `text/event-stream` content type, bit 1 request cut, bit 2 response cut), then the request
//! body, a NUL, and the response body (SSE or JSON). The dissector must never panic and must
//! respect its bounds (text within the body, previews at their lengths, the first-content
//! offset inside the body); the checks live beside the code, in `dissect::responses::fuzz`.

#![no_main]

use greyproxyd::dissect::responses::fuzz;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [flags, rest @ ..] = data else {
        return;
    };
    let (request, response) = match rest.iter().position(|b| *b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (&[][..], rest),
    };
    fuzz::http(request, response, *flags);
});
