//! The WebSocket frame parser on its own (both pull APIs, fed in chunks), a re-encoding round
//! trip of every frame it accepts, the permessage-deflate inflater fed raw bytes as one
//! compressed message, and the `Sec-WebSocket-Extensions` parser on the input as text.

#![no_main]

use greyproxyd::capture::ws::deflate::Inflated;
use greyproxyd::capture::ws::frame::{FrameEvent, RSV1, RSV2, RSV3, encode_frame};
use greyproxyd::capture::ws::{FrameParser, Inflater, Negotiated};
use libfuzzer_sys::fuzz_target;

const CAPS: [usize; 4] = [0, 5, 125, 64 * 1024];
const CHUNKS: [usize; 4] = [1, 3, 512, usize::MAX];

fuzz_target!(|data: &[u8]| {
    let [flags, wire @ ..] = data else {
        return;
    };
    let flags = *flags;
    let allowed = flags & (RSV1 | RSV2 | RSV3);
    let cap = CAPS[usize::from(flags & 3)];
    let chunk = CHUNKS[usize::from((flags >> 2) & 3)].min(wire.len()).max(1);

    // Whole frames, capped.
    let mut frames = Vec::new();
    let mut parser = FrameParser::new(cap).allow_reserved(allowed);
    let mut frame_error = None;
    'outer: for piece in wire.chunks(chunk) {
        parser.push(piece);
        loop {
            match parser.next_frame() {
                Ok(Some(frame)) => {
                    assert!(frame.payload.len() <= cap);
                    assert!(frame.payload.len() as u64 <= frame.header.payload_len);
                    assert!((2..=14).contains(&frame.header.header_len));
                    frames.push(frame);
                }
                Ok(None) => break,
                Err(error) => {
                    // A failed parser stays failed.
                    assert_eq!(parser.next_frame(), Err(error.clone()));
                    frame_error = Some(error);
                    break 'outer;
                }
            }
        }
    }

    // Streamed events over the same bytes must describe the same frames.
    let mut parser = FrameParser::new(0).allow_reserved(allowed);
    let mut headers = Vec::new();
    let mut payloads: Vec<Vec<u8>> = Vec::new();
    let mut event_error = None;
    'outer: for piece in wire.chunks(chunk) {
        parser.push(piece);
        loop {
            match parser.next_event() {
                Ok(Some(FrameEvent::Header(header))) => {
                    headers.push(header);
                    payloads.push(Vec::new());
                }
                Ok(Some(FrameEvent::Payload(bytes))) => {
                    if let Some(payload) = payloads.last_mut() {
                        payload.extend_from_slice(
                            &bytes[..bytes.len().min(cap - payload.len().min(cap))],
                        );
                    }
                }
                Ok(Some(FrameEvent::End)) => {}
                Ok(None) => break,
                Err(error) => {
                    event_error = Some(error);
                    break 'outer;
                }
            }
        }
    }
    assert_eq!(frame_error, event_error);
    assert!(headers.len() >= frames.len());
    for (i, frame) in frames.iter().enumerate() {
        assert_eq!(frame.header, headers[i]);
        assert_eq!(frame.payload, payloads[i]);
    }

    // Every complete, untruncated frame re-encodes to something that parses back to it.
    for frame in frames.iter().filter(|f| !f.is_truncated()) {
        let h = frame.header;
        let rsv = (if h.rsv1 { RSV1 } else { 0 })
            | (if h.rsv2 { RSV2 } else { 0 })
            | (if h.rsv3 { RSV3 } else { 0 });
        let bytes = encode_frame(h.fin, rsv, h.opcode, h.mask, &frame.payload);
        let mut again = FrameParser::new(usize::MAX).allow_reserved(allowed);
        again.push(&bytes);
        let back = again
            .next_frame()
            .expect("re-encoded frame parses")
            .expect("complete");
        assert_eq!(back.payload, frame.payload);
        assert_eq!(back.header.opcode, h.opcode);
        assert!(again.at_frame_boundary());
    }

    // The raw bytes as one compressed message, then again as the next one (context kept).
    let mut inflater = Inflater::new(flags & 0x80 != 0);
    for _ in 0..2 {
        let mut out = Inflated::new(4096, 1024 * 1024);
        let pushed = inflater.push(wire, &mut out);
        let finished = inflater.finish(&mut out);
        assert!(out.data.len() <= 4096);
        assert!(out.total <= 1024 * 1024);
        if pushed.is_err() || finished.is_err() {
            inflater.reset();
        }
    }
    let _ = Inflater::new(false).inflate_message(wire, 64 * 1024);

    if let Ok(text) = std::str::from_utf8(wire) {
        let negotiated = Negotiated::parse(text.split('\n'));
        for bits in [
            negotiated.client_max_window_bits,
            negotiated.server_max_window_bits,
        ] {
            assert!(bits.is_none_or(|b| (8..=15).contains(&b)));
        }
    }
});
