//! The OpenAI Responses API over WebSocket: one connection's messages, one per input line; a
//! line starting with `>` is a client message (`response.create`…, the rest of the line),
//! any other a server event. Pairing must never panic, and every call it returns must respect
//! its bounds (text within the input, response rows from this connection, timings in order);
//! the checks live beside the code, in `dissect::responses::fuzz`.

#![no_main]

use greyproxyd::dissect::responses::fuzz;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let messages: Vec<(bool, &[u8])> = data
        .split(|b| *b == b'\n')
        .map(|line| match line.strip_prefix(b">") {
            Some(client) => (true, client),
            None => (false, line),
        })
        .collect();
    fuzz::ws(&messages);
});
