#![allow(clippy::unwrap_used)]

use super::*;

/// Feeds `bytes` in pieces of `chunk` bytes and collects every frame.
fn frames_chunked(parser: &mut FrameParser, bytes: &[u8], chunk: usize) -> Vec<Frame> {
    let mut out = Vec::new();
    for piece in bytes.chunks(chunk.max(1)) {
        parser.push(piece);
        while let Some(frame) = parser.next_frame().unwrap() {
            out.push(frame);
        }
    }
    out
}

fn frames(bytes: &[u8]) -> Vec<Frame> {
    frames_chunked(&mut FrameParser::new(usize::MAX), bytes, bytes.len())
}

/// Feeds everything and returns the first error.
fn error_of(bytes: &[u8]) -> FrameError {
    let mut parser = FrameParser::new(1024);
    parser.push(bytes);
    loop {
        match parser.next_frame() {
            Ok(Some(_)) => {}
            Ok(None) => panic!("no error for {bytes:02x?}"),
            Err(error) => return error,
        }
    }
}

const MASKED_HELLO: [u8; 11] = [
    0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
];

#[test]
fn rfc6455_single_frame_unmasked_text() {
    let got = frames(&[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
    assert_eq!(got.len(), 1);
    let h = got[0].header;
    assert!(h.fin && !h.rsv1 && !h.rsv2 && !h.rsv3);
    assert_eq!(
        (h.opcode, h.mask, h.payload_len, h.header_len),
        (OpCode::Text, None, 5, 2)
    );
    assert_eq!(got[0].payload, b"Hello");
}

#[test]
fn rfc6455_single_frame_masked_text_unmasks_a_copy() {
    let wire = MASKED_HELLO;
    let before = wire;
    for chunk in 1..=wire.len() {
        let got = frames_chunked(&mut FrameParser::new(usize::MAX), &wire, chunk);
        assert_eq!(got.len(), 1, "chunk {chunk}");
        assert_eq!(got[0].header.mask, Some([0x37, 0xfa, 0x21, 0x3d]));
        assert_eq!(got[0].header.header_len, 6);
        assert_eq!(got[0].payload, b"Hello", "chunk {chunk}");
    }
    assert_eq!(wire, before, "the caller's bytes are untouched");
}

#[test]
fn rfc6455_fragmented_text() {
    let got = frames(&[0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f]);
    assert_eq!(got.len(), 2);
    assert_eq!(
        (got[0].header.fin, got[0].header.opcode),
        (false, OpCode::Text)
    );
    assert_eq!(got[0].payload, b"Hel");
    assert_eq!(
        (got[1].header.fin, got[1].header.opcode),
        (true, OpCode::Continuation)
    );
    assert_eq!(got[1].payload, b"lo");
}

#[test]
fn rfc6455_ping_and_masked_pong() {
    let got = frames(&[0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
    assert_eq!(
        (got[0].header.opcode, got[0].payload.as_slice()),
        (OpCode::Ping, &b"Hello"[..])
    );
    let mut pong = MASKED_HELLO;
    pong[0] = 0x8a;
    let got = frames(&pong);
    assert_eq!(
        (got[0].header.opcode, got[0].payload.as_slice()),
        (OpCode::Pong, &b"Hello"[..])
    );
}

#[test]
fn rfc6455_256_bytes_with_16_bit_length() {
    let payload: Vec<u8> = (0..=255).collect();
    let mut wire = vec![0x82, 0x7E, 0x01, 0x00];
    wire.extend_from_slice(&payload);
    for chunk in [1, 3, 7, wire.len()] {
        let got = frames_chunked(&mut FrameParser::new(usize::MAX), &wire, chunk);
        assert_eq!(got[0].header.opcode, OpCode::Binary);
        assert_eq!(
            (got[0].header.payload_len, got[0].header.header_len),
            (256, 4)
        );
        assert_eq!(got[0].payload, payload);
    }
    assert_eq!(encode_frame(true, 0, OpCode::Binary, None, &payload), wire);
}

#[test]
fn rfc6455_64_kib_with_64_bit_length() {
    let payload: Vec<u8> = (0..65536u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut wire = vec![0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0];
    wire.extend_from_slice(&payload);
    let got = frames_chunked(&mut FrameParser::new(usize::MAX), &wire, 4096);
    assert_eq!(
        (got[0].header.payload_len, got[0].header.header_len),
        (65536, 10)
    );
    assert_eq!(got[0].payload, payload);
    assert_eq!(encode_frame(true, 0, OpCode::Binary, None, &payload), wire);
}

#[test]
fn masked_frames_with_every_length_form_round_trip() {
    let key = [0xde, 0xad, 0xbe, 0xef];
    for len in [0, 1, 5, 125, 126, 127, 65535, 65536, 70000] {
        let payload: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
        let wire = encode_frame(true, 0, OpCode::Binary, Some(key), &payload);
        let copy = wire.clone();
        for chunk in [1, 7, wire.len()] {
            if chunk == 1 && len > 1000 {
                continue;
            }
            let got = frames_chunked(&mut FrameParser::new(usize::MAX), &wire, chunk);
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].header.mask, Some(key));
            assert_eq!(got[0].payload, payload, "len {len} chunk {chunk}");
        }
        assert_eq!(wire, copy);
    }
}

#[test]
fn payload_over_the_cap_is_skipped_but_sized() {
    let big: Vec<u8> = (0..5 * 1024 * 1024u32).map(|i| i as u8).collect();
    let mut wire = encode_frame(true, 0, OpCode::Binary, Some([1, 2, 3, 4]), &big);
    wire.extend(encode_frame(true, 0, OpCode::Text, None, b"next"));
    let mut parser = FrameParser::new(1000);
    let got = frames_chunked(&mut parser, &wire, 64 * 1024);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].header.payload_len, big.len() as u64);
    assert_eq!(got[0].payload, big[..1000]);
    assert!(got[0].is_truncated());
    assert_eq!(got[1].payload, b"next");
    assert!(!got[1].is_truncated());
}

#[test]
fn events_stream_payload_pieces() {
    let wire = encode_frame(
        true,
        RSV1,
        OpCode::Text,
        Some([9, 8, 7, 6]),
        b"Hello, world",
    );
    let mut parser = FrameParser::new(0);
    let mut pieces = Vec::new();
    let mut seen = Vec::new();
    for byte in &wire {
        parser.push(std::slice::from_ref(byte));
        while let Some(event) = parser.next_event().unwrap() {
            match event {
                FrameEvent::Header(h) => {
                    assert!(h.rsv1);
                    seen.push("header");
                }
                FrameEvent::Payload(piece) => pieces.extend_from_slice(piece),
                FrameEvent::End => seen.push("end"),
            }
        }
    }
    assert_eq!(seen, ["header", "end"]);
    assert_eq!(pieces, b"Hello, world");
}

#[test]
fn empty_frames() {
    let mut wire = encode_frame(true, 0, OpCode::Text, None, b"");
    wire.extend(encode_frame(
        true,
        0,
        OpCode::Close,
        Some([1, 2, 3, 4]),
        b"",
    ));
    let got = frames(&wire);
    assert_eq!(got.len(), 2);
    assert!(
        got.iter()
            .all(|f| f.payload.is_empty() && !f.is_truncated())
    );
}

#[test]
fn incomplete_input_waits() {
    let wire = encode_frame(true, 0, OpCode::Binary, Some([1, 2, 3, 4]), &[7; 300]);
    let mut parser = FrameParser::new(usize::MAX);
    for cut in 0..wire.len() {
        let mut p = FrameParser::new(usize::MAX);
        p.push(&wire[..cut]);
        assert_eq!(p.next_frame().unwrap(), None, "cut at {cut}");
    }
    parser.push(&wire);
    assert!(parser.next_frame().unwrap().is_some());
}

#[test]
fn reserved_opcodes_are_errors() {
    for op in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
        assert_eq!(error_of(&[0x80 | op, 0x00]), FrameError::UnknownOpcode(op));
    }
}

#[test]
fn reserved_bits_need_an_extension() {
    assert_eq!(error_of(&[0xA1, 0x00]), FrameError::ReservedBit(2));
    assert_eq!(error_of(&[0x91, 0x00]), FrameError::ReservedBit(3));
    // RSV1 passes by default (the tap checks it against the negotiation) …
    assert!(frames(&[0xC1, 0x00])[0].header.rsv1);
    // … and fails when no extension allows it.
    let mut parser = FrameParser::new(10).allow_reserved(0);
    parser.push(&[0xC1, 0x00]);
    assert_eq!(parser.next_frame(), Err(FrameError::ReservedBit(1)));
    let mut parser = FrameParser::new(10).allow_reserved(RSV1 | RSV2 | RSV3);
    parser.push(&[0xF1, 0x00]);
    let h = parser.next_frame().unwrap().unwrap().header;
    assert!(h.rsv1 && h.rsv2 && h.rsv3);
}

#[test]
fn control_frames_must_be_short_and_final() {
    assert_eq!(
        error_of(&[0x09, 0x00]),
        FrameError::FragmentedControl(OpCode::Ping)
    );
    assert_eq!(
        error_of(&[0x88, 0x7E, 0x00, 0x7E]),
        FrameError::ControlTooLong {
            opcode: OpCode::Close,
            len: 126
        }
    );
    let mut ok = vec![0x8A, 125];
    ok.extend([0; 125]);
    assert_eq!(frames(&ok)[0].payload.len(), 125);
}

#[test]
fn sixty_four_bit_length_msb_is_an_error() {
    assert_eq!(
        error_of(&[0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0]),
        FrameError::LengthOverflow
    );
    // The largest legal declared length only parses; it never allocates.
    let mut parser = FrameParser::new(16);
    parser.push(&[
        0x82, 0x7F, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3,
    ]);
    assert_eq!(parser.next_frame().unwrap(), None);
}

#[test]
fn errors_are_sticky() {
    let mut parser = FrameParser::new(10);
    parser.push(&[0x83, 0x00]);
    assert_eq!(parser.next_frame(), Err(FrameError::UnknownOpcode(3)));
    parser.push(&[0x81, 0x00]);
    assert_eq!(parser.next_frame(), Err(FrameError::UnknownOpcode(3)));
    assert_eq!(parser.next_event(), Err(FrameError::UnknownOpcode(3)));
}

#[test]
fn garbage_never_panics() {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for round in 0..2000 {
        let mut parser = FrameParser::new(64);
        let len = round % 97;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        for piece in bytes.chunks(1 + round % 5) {
            parser.push(piece);
            while let Ok(Some(_)) = parser.next_frame() {}
        }
    }
}
