//! The incremental event-stream parser (`dissect::sse`): any stream, fed whole or in chunks of
//! varying sizes, dispatches the same events with ordered offsets inside the stream. Input: byte
//! 0 seeds the chunk sizes, the rest is the stream
//! (`greyproxyd::dissect::fuzzing::check_sse_chunking`).

#![no_main]

use greyproxyd::dissect::fuzzing::check_sse_chunking;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = check_sse_chunking(data) {
        panic!("{broken}");
    }
});
