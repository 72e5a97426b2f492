#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use flate2::{Compress, Compression};

use super::super::deflate::tests::{compress, json_messages, zero_bomb};
use super::super::frame::encode_frame;
use super::*;

const MIB: usize = 1024 * 1024;

/// xorshift64*: a tiny deterministic PRNG, so failures reproduce from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

fn deflate(extra: &str) -> Negotiated {
    Negotiated::parse([format!("permessage-deflate{extra}").as_str()])
}

fn plain() -> Negotiated {
    Negotiated::default()
}

/// Feeds `wire` in pieces of `chunk` bytes and collects all events.
fn run(tap: &mut Tap, wire: &[u8], chunk: usize) -> Vec<Event> {
    let mut events = Vec::new();
    for piece in wire.chunks(chunk.max(1)) {
        events.extend(tap.feed(piece).unwrap());
    }
    events
}

fn run_whole(direction: Direction, negotiated: Negotiated, wire: &[u8]) -> Vec<Event> {
    run(
        &mut Tap::new(direction, negotiated, Limits::default()),
        wire,
        wire.len(),
    )
}

/// The event for a message of `full` decoded bytes, kept up to `cap`.
fn message(
    opcode: MessageOpcode,
    full: &[u8],
    cap: usize,
    wire_size: usize,
    compressed: bool,
) -> Event {
    Event::Message {
        opcode,
        payload: full[..full.len().min(cap)].to_vec(),
        wire_size,
        decoded_size: full.len(),
        compressed,
        truncated: full.len() > cap,
    }
}

fn text(payload: &[u8], wire_size: usize, compressed: bool) -> Event {
    message(
        MessageOpcode::Text,
        payload,
        usize::MAX,
        wire_size,
        compressed,
    )
}

fn close(code: Option<u16>, reason: &str) -> Event {
    Event::Close {
        code,
        reason: reason.into(),
    }
}

fn error_of(negotiated: Negotiated, wire: &[u8]) -> TapError {
    let mut tap = Tap::new(Direction::ServerToClient, negotiated, Limits::default());
    let error = tap.feed(wire).unwrap_err();
    assert_eq!(tap.feed(b"\x81\x00").unwrap_err(), error, "stays dead");
    assert_eq!(tap.error(), Some(&error));
    error
}

#[test]
fn rfc6455_examples() {
    use Direction::{ClientToServer as C2S, ServerToClient as S2C};
    let masked_hello = [0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
    let hello = text(b"Hello", 5, false);
    let binary: Vec<u8> = (0..65536).map(|i| (i % 256) as u8).collect();
    let cases: Vec<(Direction, Vec<u8>, Event)> = vec![
        (S2C, b"\x81\x05Hello".to_vec(), hello.clone()),
        (
            C2S,
            [&[0x81, 0x85][..], &masked_hello].concat(),
            hello.clone(),
        ),
        (S2C, b"\x01\x03Hel\x80\x02lo".to_vec(), hello),
        (S2C, b"\x89\x05Hello".to_vec(), Event::Ping { size: 5 }),
        (
            C2S,
            [&[0x8a, 0x85][..], &masked_hello].concat(),
            Event::Pong { size: 5 },
        ),
        (
            S2C,
            [&[0x82, 0x7E, 0x01, 0x00][..], &binary[..256]].concat(),
            message(MessageOpcode::Binary, &binary[..256], MIB, 256, false),
        ),
        (
            S2C,
            [&[0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0][..], &binary].concat(),
            message(MessageOpcode::Binary, &binary, MIB, 65536, false),
        ),
    ];
    for (direction, wire, expected) in cases {
        let copy = wire.clone();
        for chunk in [1, 7, wire.len()] {
            let mut tap = Tap::new(direction, plain(), Limits::default());
            assert_eq!(run(&mut tap, &wire, chunk), std::slice::from_ref(&expected));
        }
        assert_eq!(wire, copy, "the relayed bytes are untouched");
    }
}

#[test]
fn rfc7692_examples() {
    let on = deflate("");
    let s2c = |wire: &[u8]| run_whole(Direction::ServerToClient, on, wire);
    let one = [0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    assert_eq!(s2c(&one), [text(b"Hello", 7, true)]);
    // Fragmented: RSV1 on the first frame only.
    let fragmented = [
        0x41, 0x03, 0xf2, 0x48, 0xcd, 0x80, 0x04, 0xc9, 0xc9, 0x07, 0x00,
    ];
    assert_eq!(s2c(&fragmented), [text(b"Hello", 7, true)]);
    // The same message twice, the second referring back into the first.
    let twice = [&one[..], &[0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00]].concat();
    assert_eq!(
        s2c(&twice),
        [text(b"Hello", 7, true), text(b"Hello", 5, true)]
    );
    // BFINAL variant, then a back-reference across it.
    let bfinal = [
        &[0xc1, 0x08, 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00][..],
        &[0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00],
    ]
    .concat();
    assert_eq!(
        s2c(&bfinal),
        [text(b"Hello", 8, true), text(b"Hello", 5, true)]
    );
    let stored = [
        0xc1, 0x0b, 0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
    ];
    assert_eq!(s2c(&stored), [text(b"Hello", 11, true)]);
    // With no_context_takeover the second message cannot refer back; the inflater resets.
    let events = run_whole(
        Direction::ServerToClient,
        deflate("; server_no_context_takeover"),
        &twice,
    );
    assert_eq!(events[0], text(b"Hello", 7, true));
    assert_ne!(events.get(1), Some(&text(b"Hello", 5, true)));
    // An empty compressed payload is an empty message and leaves the context intact.
    let empty = [&[0xc1, 0x00][..], &one, &[0xc1, 0x01, 0x00], &twice[9..]].concat();
    assert_eq!(
        s2c(&empty),
        [
            text(b"", 0, true),
            text(b"Hello", 7, true),
            text(b"", 1, true),
            text(b"Hello", 5, true)
        ]
    );
    // An uncompressed message under permessage-deflate is fine.
    assert_eq!(s2c(&[0x81, 0x02, b'h', b'i']), [text(b"hi", 2, false)]);
}

/// Frames one message: `body` (already compressed when `compressed`) split into `pieces`
/// frames at random points, masked for client-to-server, control frames between fragments.
fn message_frames(
    rng: &mut Rng,
    direction: Direction,
    opcode: OpCode,
    body: &[u8],
    compressed: bool,
    pieces: usize,
    expected: &mut Vec<Event>,
) -> Vec<u8> {
    let mut cuts: Vec<usize> = (1..pieces).map(|_| rng.below(body.len() + 1)).collect();
    cuts.sort_unstable();
    cuts.insert(0, 0);
    cuts.push(body.len());
    let mut wire = Vec::new();
    let mut key = || {
        (direction == Direction::ClientToServer)
            .then(|| rng.next().to_le_bytes()[..4].try_into().unwrap())
    };
    for (i, span) in cuts.windows(2).enumerate() {
        let last = i + 2 == cuts.len();
        let op = if i == 0 { opcode } else { OpCode::Continuation };
        let rsv = if i == 0 && compressed { RSV1 } else { 0 };
        wire.extend(encode_frame(last, rsv, op, key(), &body[span[0]..span[1]]));
        if !last && i % 2 == 0 {
            wire.extend(encode_frame(true, 0, OpCode::Ping, key(), b"keepalive"));
            expected.push(Event::Ping { size: 9 });
        }
    }
    wire
}

#[test]
fn generated_context_takeover_streams_decode_in_any_chunking() {
    for direction in [Direction::ServerToClient, Direction::ClientToServer] {
        for no_context in [false, true] {
            let negotiated = if no_context {
                deflate("; client_no_context_takeover; server_no_context_takeover")
            } else {
                deflate("")
            };
            let mut rng = Rng(0x1234_5678 + no_context as u64);
            let mut c = Compress::new(Compression::new(6), false);
            let (mut wire, mut expected) = (Vec::new(), Vec::new());
            for (i, message) in json_messages(15).iter().enumerate() {
                if no_context {
                    c.reset();
                }
                let body = compress(&mut c, message);
                let frames = message_frames(
                    &mut rng,
                    direction,
                    OpCode::Text,
                    &body,
                    true,
                    1 + i % 4,
                    &mut expected,
                );
                wire.extend(frames);
                expected.push(text(message, body.len(), true));
            }
            wire.extend(encode_frame(true, 0, OpCode::Close, None, b"\x03\xe8bye"));
            expected.push(close(Some(1000), "bye"));
            let copy = wire.clone();
            for chunk in [1, 7, 4096, wire.len()] {
                let mut tap = Tap::new(direction, negotiated, Limits::default());
                assert_eq!(
                    run(&mut tap, &wire, chunk),
                    expected,
                    "{direction:?} no_context={no_context} chunk={chunk}"
                );
                assert!(tap.finish().is_ok());
            }
            assert_eq!(wire, copy);
        }
    }
}

#[test]
fn five_mib_messages_are_truncated_and_keep_the_stream_in_step() {
    let big: Vec<u8> = json_messages(40_000).concat()[..5 * MIB].to_vec();
    let after = &json_messages(3)[2];
    let mut rng = Rng(99);
    let mut c = Compress::new(Compression::fast(), false);
    let big_body = compress(&mut c, &big);
    let after_body = compress(&mut c, after);
    let (mut wire, mut sink) = (Vec::new(), Vec::new());
    for (opcode, body, compressed, pieces) in [
        (OpCode::Text, &big_body, true, 5),
        (OpCode::Binary, &big, false, 7),
        (OpCode::Text, &after_body, true, 2),
    ] {
        let c2s = Direction::ClientToServer;
        wire.extend(message_frames(
            &mut rng, c2s, opcode, body, compressed, pieces, &mut sink,
        ));
    }
    let mut tap = Tap::new(Direction::ClientToServer, deflate(""), Limits::default());
    let events: Vec<Event> = run(&mut tap, &wire, 64 * 1024)
        .into_iter()
        .filter(|e| matches!(e, Event::Message { .. }))
        .collect();
    let cap = DEFAULT_MAX_MESSAGE;
    assert_eq!(
        events,
        [
            message(MessageOpcode::Text, &big, cap, big_body.len(), true),
            message(MessageOpcode::Binary, &big, cap, big.len(), false),
            text(after, after_body.len(), true),
        ]
    );
    assert!(matches!(
        events[0],
        Event::Message {
            truncated: true,
            ..
        }
    ));
}

#[test]
fn decompression_bomb_kills_the_tap_naming_the_cap() {
    let bomb = zero_bomb(50 * MIB / 258);
    let limits = Limits {
        max_message: MIB,
        max_inflated: 4 * MIB,
    };
    let mut tap = Tap::new(Direction::ServerToClient, deflate(""), limits);
    let wire = encode_frame(true, RSV1, OpCode::Binary, None, &bomb);
    let start = Instant::now();
    let error = tap.feed(&wire).unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(
        error,
        TapError::Deflate(DeflateError::TooLarge { cap: 4 * MIB })
    );
    assert!(
        error.to_string().contains(&(4 * MIB).to_string()),
        "{error}"
    );
    assert_eq!(tap.feed(b"\x81\x00").unwrap_err(), error);
}

#[test]
fn protocol_and_framing_errors() {
    use FrameError::{ControlTooLong, ReservedBit, UnknownOpcode};
    use ProtocolError::*;
    let on = deflate("");
    let cases: [(Negotiated, &[u8], TapError); 8] = [
        (plain(), &[0xc1, 0x00], ReservedBit(1).into()),
        (on, &[0xa1, 0x00], ReservedBit(2).into()),
        (on, &[0x83, 0x00], UnknownOpcode(3).into()),
        (
            on,
            &[0x89, 0x7e, 0x00, 0x80],
            ControlTooLong {
                opcode: OpCode::Ping,
                len: 128,
            }
            .into(),
        ),
        (on, &[0x80, 0x00], UnexpectedContinuation.into()),
        (on, &[0x01, 0x00, 0x81, 0x00], InterleavedMessage.into()),
        (on, &[0x41, 0x00, 0xc0, 0x00], CompressedContinuation.into()),
        (on, &[0xc9, 0x00], CompressedControl.into()),
    ];
    for (negotiated, wire, expected) in cases {
        assert_eq!(error_of(negotiated, wire), expected, "{wire:02x?}");
    }
    assert!(matches!(
        error_of(on, &[0xc1, 0x02, 0xff, 0xff]),
        TapError::Deflate(DeflateError::Corrupt(_))
    ));
}

#[test]
fn events_before_an_error_survive_with_feed_into() {
    let mut tap = Tap::new(Direction::ServerToClient, plain(), Limits::default());
    let mut events = Vec::new();
    let error = tap
        .feed_into(&[0x81, 0x01, b'a', 0x83, 0x00], &mut events)
        .unwrap_err();
    assert_eq!(events, [text(b"a", 1, false)]);
    assert_eq!(error, TapError::Frame(FrameError::UnknownOpcode(3)));
}

#[test]
fn truncated_streams_are_reported_by_finish() {
    let mut tap = Tap::new(Direction::ServerToClient, plain(), Limits::default());
    assert_eq!(tap.feed(&[0x82, 0x7e, 0x01]).unwrap(), []);
    assert_eq!(tap.finish(), Err(ProtocolError::EndedMidFrame.into()));
    let mut tap = Tap::new(Direction::ServerToClient, plain(), Limits::default());
    assert_eq!(tap.feed(&[0x01, 0x01, b'a']).unwrap(), []);
    assert_eq!(tap.finish(), Err(ProtocolError::EndedMidMessage.into()));
    assert!(tap.feed(&[0x80, 0x00]).is_err());
    let mut tap = Tap::new(Direction::ServerToClient, plain(), Limits::default());
    tap.feed(&[0x81, 0x00]).unwrap();
    assert_eq!(tap.finish(), Ok(()));
}

#[test]
fn close_frames() {
    let s2c = |wire: &[u8]| run_whole(Direction::ServerToClient, plain(), wire);
    assert_eq!(s2c(&[0x88, 0x00]), [close(None, "")]);
    assert_eq!(s2c(&[0x88, 0x02, 0x03, 0xe9]), [close(Some(1001), "")]);
    // A 1-byte body is invalid for the peers; the tap records no code and goes on.
    assert_eq!(s2c(&[0x88, 0x01, 0x03]), [close(None, "")]);
    let wire = [0x88, 0x04, 0x0f, 0xa0, 0xff, b'x'];
    assert_eq!(s2c(&wire), [close(Some(4000), "\u{fffd}x")]);
}

#[test]
fn garbage_never_panics() {
    let mut rng = Rng(7);
    let mut c = Compress::new(Compression::default(), false);
    let valid = json_messages(10)
        .iter()
        .flat_map(|m| encode_frame(true, RSV1, OpCode::Text, None, &compress(&mut c, m)))
        .collect::<Vec<u8>>();
    for round in 0..3000 {
        let wire: Vec<u8> = match round % 3 {
            0 => (0..rng.below(300)).map(|_| rng.next() as u8).collect(),
            1 => valid[..rng.below(valid.len())].to_vec(),
            _ => {
                let mut w = valid.clone();
                let at = rng.below(w.len());
                w[at] ^= 1 << rng.below(8);
                w
            }
        };
        let negotiated = if round % 2 == 0 { deflate("") } else { plain() };
        let mut tap = Tap::new(
            Direction::ClientToServer,
            negotiated,
            Limits {
                max_message: 64,
                max_inflated: 64 * 1024,
            },
        );
        let mut rest = wire.as_slice();
        while !rest.is_empty() {
            let (piece, tail) = rest.split_at(1 + rng.below(rest.len()));
            rest = tail;
            let _ = tap.feed(piece);
        }
        let _ = tap.finish();
    }
}

/// Random valid streams (sizes, fragmentation, masking, control frames, compression or not,
/// context takeover or not, small caps) fed in random chunks decode to exactly what was sent.
#[test]
fn property_random_streams_in_random_chunks() {
    for seed in 1..=60u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let direction = if rng.chance(50) {
            Direction::ClientToServer
        } else {
            Direction::ServerToClient
        };
        let enabled = rng.chance(75);
        let no_context = rng.chance(30);
        let negotiated = match (enabled, no_context) {
            (false, _) => plain(),
            (true, false) => deflate(""),
            (true, true) => deflate("; client_no_context_takeover; server_no_context_takeover"),
        };
        let limits = Limits {
            max_message: if rng.chance(30) {
                1 + rng.below(600)
            } else {
                DEFAULT_MAX_MESSAGE
            },
            max_inflated: MIB,
        };
        let mut c = Compress::new(Compression::new(rng.below(10) as u32), false);
        let templates = json_messages(8);
        let (mut wire, mut expected) = (Vec::new(), Vec::new());
        for _ in 0..1 + rng.below(12) {
            let binary = rng.chance(30);
            let payload: Vec<u8> = if binary {
                (0..rng.below(3000)).map(|_| rng.next() as u8).collect()
            } else {
                templates[rng.below(templates.len())].repeat(1 + rng.below(3))
            };
            let compressed = enabled && rng.chance(80);
            let body = if compressed {
                if no_context {
                    c.reset();
                }
                compress(&mut c, &payload)
            } else {
                payload.clone()
            };
            let opcode = if binary { OpCode::Binary } else { OpCode::Text };
            let pieces = 1 + rng.below(5);
            wire.extend(message_frames(
                &mut rng,
                direction,
                opcode,
                &body,
                compressed,
                pieces,
                &mut expected,
            ));
            let kind = if binary {
                MessageOpcode::Binary
            } else {
                MessageOpcode::Text
            };
            let cap = limits.max_message;
            expected.push(message(kind, &payload, cap, body.len(), compressed));
            if rng.chance(20) {
                wire.extend(encode_frame(true, 0, OpCode::Pong, None, &[1, 2, 3]));
                expected.push(Event::Pong { size: 3 });
            }
        }
        let mut tap = Tap::new(direction, negotiated, limits);
        let mut events = Vec::new();
        let mut rest = wire.as_slice();
        while !rest.is_empty() {
            let size = match rng.below(4) {
                0 => 1,
                1 => 1 + rng.below(16),
                2 => 1 + rng.below(2000),
                _ => rest.len(),
            };
            let (piece, tail) = rest.split_at(size.min(rest.len()));
            rest = tail;
            events.extend(tap.feed(piece).unwrap());
        }
        assert_eq!(events, expected, "seed {seed}");
        assert_eq!(tap.finish(), Ok(()), "seed {seed}");
    }
}
