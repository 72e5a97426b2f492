//! The passive WebSocket tap of one direction: arbitrary bytes as a frame stream, fed in
//! chunks of varying size, with and without permessage-deflate (and its context-takeover
//! options) negotiated, in both directions. The tap must never panic, every event must respect
//! the limits (memory stays bounded: at most `max_message` kept per message, inflating stops at
//! `max_inflated`), and once failed it must keep returning the same error.

#![no_main]

use greyproxyd::capture::ws::{Direction, Event, Limits, Negotiated, Tap};
use libfuzzer_sys::fuzz_target;

const CHUNKS: [usize; 8] = [1, 2, 3, 7, 64, 1000, 4096, usize::MAX];
const MAX_MESSAGE: [usize; 4] = [0, 125, 4096, 64 * 1024];
const MAX_INFLATED: [usize; 4] = [0, 1024, 1024 * 1024, 8 * 1024 * 1024];

fuzz_target!(|data: &[u8]| {
    let [flags, sizes, wire @ ..] = data else {
        return;
    };
    let (flags, sizes) = (*flags, *sizes);
    let negotiated = Negotiated {
        enabled: flags & 1 != 0,
        client_no_context_takeover: flags & 2 != 0,
        server_no_context_takeover: flags & 4 != 0,
        client_max_window_bits: None,
        server_max_window_bits: None,
    };
    let direction = if flags & 8 != 0 {
        Direction::ClientToServer
    } else {
        Direction::ServerToClient
    };
    let chunk = CHUNKS[usize::from(flags >> 5)];
    let limits = Limits {
        max_message: MAX_MESSAGE[usize::from(sizes & 3)],
        max_inflated: MAX_INFLATED[usize::from((sizes >> 2) & 3)],
    };

    let mut tap = Tap::new(direction, negotiated, limits);
    let mut failed = None;
    for piece in wire.chunks(chunk.min(wire.len()).max(1)) {
        let mut events = Vec::new();
        match tap.feed_into(piece, &mut events) {
            Ok(()) => assert!(failed.is_none(), "a failed tap recovered"),
            Err(error) => {
                if let Some(first) = &failed {
                    assert_eq!(first, &error, "a failed tap changed its error");
                }
                failed = Some(error);
            }
        }
        for event in &events {
            check(event, &limits, negotiated.enabled);
        }
    }
    let finished = tap.finish();
    if let Some(first) = &failed {
        assert_eq!(finished.as_ref().err(), Some(first));
        assert_eq!(tap.error(), Some(first));
    }
});

fn check(event: &Event, limits: &Limits, deflate: bool) {
    match event {
        Event::Message {
            payload,
            wire_size,
            decoded_size,
            compressed,
            truncated,
            ..
        } => {
            assert!(payload.len() <= limits.max_message);
            assert!(*decoded_size >= payload.len());
            assert_eq!(*truncated, *decoded_size > payload.len());
            if *compressed {
                assert!(deflate);
                assert!(*decoded_size <= limits.max_inflated);
            } else {
                assert_eq!(decoded_size, wire_size);
            }
        }
        Event::Close { code, reason } => {
            assert!(code.is_some() || reason.is_empty());
            // At most 123 bytes of reason, each byte at most one U+FFFD (3 bytes) when lossy.
            assert!(reason.len() <= 3 * 123);
        }
        Event::Ping { size } | Event::Pong { size } => assert!(*size <= 125),
    }
}
