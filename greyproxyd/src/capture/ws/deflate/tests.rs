#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use flate2::{Compress, Compression, FlushCompress, Status as CStatus};
use http::{HeaderMap, HeaderValue};

use super::*;

mod cap;

const MIB: usize = 1024 * 1024;

/// Compresses one message the way permessage-deflate senders do: sync flush on a persistent
/// compressor (context takeover unless the caller resets it), the `00 00 FF FF` tail stripped.
pub(crate) fn compress(c: &mut Compress, data: &[u8]) -> Vec<u8> {
    // Room for the worst-case expansion, so one call does the whole flush.
    let mut out = Vec::with_capacity(data.len() + data.len() / 8 + 1024);
    let before = c.total_in();
    let status = c.compress_vec(data, &mut out, FlushCompress::Sync).unwrap();
    assert_eq!(status, CStatus::Ok);
    assert_eq!((c.total_in() - before) as usize, data.len());
    assert!(out.len() < out.capacity());
    assert!(
        out.ends_with(&TAIL),
        "sync flush ends with the empty stored block"
    );
    out.truncate(out.len() - 4);
    out
}

/// A DEFLATE bit stream writer (bits LSB first, Huffman codes MSB first), for hand-made data.
#[derive(Default)]
pub(crate) struct Bits {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl Bits {
    pub(crate) fn put(&mut self, value: u32, count: u32) {
        self.acc |= u64::from(value) << self.n;
        self.n += count;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    pub(crate) fn code(&mut self, code: u32, len: u32) {
        self.put(code.reverse_bits() >> (32 - len), len);
    }

    /// Ends a message as RFC 7692 senders do: EOB, then the header of an empty stored block
    /// padded to the byte boundary, whose `LEN`/`NLEN` would be the stripped tail.
    pub(crate) fn end_message(mut self) -> Vec<u8> {
        self.code(0, 7); // end of block (fixed code 256)
        self.put(0, 3); // BFINAL=0, BTYPE=00
        if self.n > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

/// A fixed-Huffman block producing `1 + 258 * repeats` zero bytes in about 13 bits per 258.
pub(crate) fn zero_bomb(repeats: usize) -> Vec<u8> {
    let mut bits = Bits::default();
    bits.put(0, 1);
    bits.put(1, 2); // BTYPE=01: fixed Huffman
    bits.code(0x30, 8); // literal 0
    for _ in 0..repeats {
        bits.code(0b1100_0101, 8); // length code 285: 258
        bits.code(0, 5); // distance code 0: 1
    }
    bits.end_message()
}

/// JSON-ish messages that share most of their text, like an agent's requests.
pub(crate) fn json_messages(count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            format!(
                r#"{{"type":"response.create","id":"msg_{i:04}","model":"gpt-5-codex","input":[{{"role":"user","content":[{{"type":"input_text","text":"Please look at file number {i} and tell me what it does."}}]}}],"stream":true,"store":false}}"#
            )
            .into_bytes()
        })
        .collect()
}

fn negotiated(values: &[&str]) -> Negotiated {
    Negotiated::parse(values.iter().copied())
}

#[test]
fn parses_plain_and_parameterized_extensions() {
    assert_eq!(negotiated(&[]), Negotiated::default());
    assert_eq!(
        negotiated(&["x-webkit-deflate-frame"]),
        Negotiated::default()
    );
    assert_eq!(
        negotiated(&["permessage-deflate"]),
        Negotiated {
            enabled: true,
            ..Negotiated::default()
        }
    );
    let n = negotiated(&[
        "Permessage-Deflate; client_no_context_takeover;SERVER_NO_CONTEXT_TAKEOVER; client_max_window_bits=10; server_max_window_bits=\"12\"",
    ]);
    assert_eq!(
        n,
        Negotiated {
            enabled: true,
            client_no_context_takeover: true,
            server_no_context_takeover: true,
            client_max_window_bits: Some(10),
            server_max_window_bits: Some(12),
        }
    );
    assert!(n.no_context_takeover(Direction::ClientToServer));
    // Without a value, with a bad value, out of range: no usable size.
    let n = negotiated(&["permessage-deflate; client_max_window_bits; server_max_window_bits=16"]);
    assert_eq!(
        (n.client_max_window_bits, n.server_max_window_bits),
        (None, None)
    );
    let n = negotiated(&["permessage-deflate; server_max_window_bits = \"1\\5\""]);
    assert_eq!(n.server_max_window_bits, Some(15));
}

#[test]
fn only_the_first_permessage_deflate_counts() {
    let n = negotiated(&[
        "foo; bar=\"a,b;permessage-deflate\", permessage-deflate; server_no_context_takeover, permessage-deflate; client_no_context_takeover",
    ]);
    assert!(n.enabled && n.server_no_context_takeover && !n.client_no_context_takeover);
    // Several header fields: the first one holding the extension wins.
    let mut headers = HeaderMap::new();
    headers.append(
        SEC_WEBSOCKET_EXTENSIONS,
        HeaderValue::from_static("x-other"),
    );
    headers.append(
        SEC_WEBSOCKET_EXTENSIONS,
        HeaderValue::from_static("permessage-deflate; client_no_context_takeover"),
    );
    headers.append(
        SEC_WEBSOCKET_EXTENSIONS,
        HeaderValue::from_static("permessage-deflate"),
    );
    let n = Negotiated::from_headers(&headers);
    assert!(n.enabled && n.client_no_context_takeover && !n.server_no_context_takeover);
    assert!(!Negotiated::from_headers(&HeaderMap::new()).enabled);
}

#[test]
fn rfc7692_hello() {
    let mut inflater = Inflater::new(false);
    let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    assert_eq!(inflater.inflate_message(&hello, 100).unwrap(), b"Hello");
}

#[test]
fn rfc7692_shared_window_needs_the_context() {
    let first = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    let second = [0xf2, 0x00, 0x11, 0x00, 0x00];
    let mut inflater = Inflater::new(false);
    assert_eq!(inflater.inflate_message(&first, 100).unwrap(), b"Hello");
    assert_eq!(inflater.inflate_message(&second, 100).unwrap(), b"Hello");
    // A fresh inflater has nothing to refer back to.
    assert_ne!(
        Inflater::new(false)
            .inflate_message(&second, 100)
            .ok()
            .as_deref(),
        Some(&b"Hello"[..])
    );
    // With no_context_takeover the inflater resets after each message, so the same bytes no
    // longer decode: the reset really happens.
    let mut resetting = Inflater::new(true);
    assert_eq!(resetting.inflate_message(&first, 100).unwrap(), b"Hello");
    assert_ne!(
        resetting.inflate_message(&second, 100).ok().as_deref(),
        Some(&b"Hello"[..])
    );
}

#[test]
fn rfc7692_stored_block_and_two_blocks() {
    let stored = [
        0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
    ];
    let two = [
        0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
    ];
    let mut inflater = Inflater::new(false);
    assert_eq!(inflater.inflate_message(&stored, 100).unwrap(), b"Hello");
    assert_eq!(inflater.inflate_message(&two, 100).unwrap(), b"Hello");
}

#[test]
fn rfc7692_bfinal_block_keeps_the_context() {
    let bfinal = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
    let back_reference = [0xf2, 0x00, 0x11, 0x00, 0x00];
    let sync = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    let mut inflater = Inflater::new(false);
    assert_eq!(inflater.inflate_message(&bfinal, 100).unwrap(), b"Hello");
    assert_eq!(
        inflater.inflate_message(&back_reference, 100).unwrap(),
        b"Hello"
    );
    assert_eq!(inflater.inflate_message(&sync, 100).unwrap(), b"Hello");
    // A sender that leaves out the empty block after BFINAL still sent a complete message.
    assert_eq!(
        inflater.inflate_message(&bfinal[..7], 100).unwrap(),
        b"Hello"
    );
    assert_eq!(
        inflater.inflate_message(&back_reference, 100).unwrap(),
        b"Hello"
    );
    // Blocks may follow a BFINAL block inside one message, window included.
    let both = [&bfinal[..7], &back_reference[..]].concat();
    assert_eq!(
        Inflater::new(false).inflate_message(&both, 100).unwrap(),
        b"HelloHello"
    );
}

#[test]
fn context_after_bfinal_reaches_back_a_full_window() {
    // Message 1: 100 KB of text in one BFINAL stream (flate2's Finish), then the header byte
    // of the empty stored block. Message 2: one back-reference of 258 bytes at distance 32768.
    let mut state = 0x853C_49E6_748F_EA9Bu64;
    let text: Vec<u8> = (0..100_000)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            b"abcdefghijklmnopqrstuvwxyz0123456789"[((state >> 33) % 36) as usize]
        })
        .collect();
    let mut c = Compress::new(Compression::default(), false);
    let mut first = Vec::with_capacity(200_000);
    assert_eq!(
        c.compress_vec(&text, &mut first, FlushCompress::Finish)
            .unwrap(),
        CStatus::StreamEnd
    );
    first.push(0x00);
    let mut bits = Bits::default();
    bits.put(0, 1);
    bits.put(1, 2);
    bits.code(0b1100_0101, 8); // length 258
    bits.code(29, 5); // distance code 29: 24577 + 13 extra bits
    bits.put(32768 - 24577, 13);
    let second = bits.end_message();
    let mut inflater = Inflater::new(false);
    assert_eq!(inflater.inflate_message(&first, MIB).unwrap(), text);
    let from = text.len() - 32768;
    assert_eq!(
        inflater.inflate_message(&second, MIB).unwrap(),
        text[from..from + 258]
    );
}

#[test]
fn generated_messages_need_the_persistent_context() {
    let messages = json_messages(12);
    let mut c = Compress::new(Compression::new(6), false);
    let wire: Vec<Vec<u8>> = messages.iter().map(|m| compress(&mut c, m)).collect();
    assert!(
        wire[1].len() < wire[0].len() / 2,
        "later messages are mostly back-references"
    );
    for chunk in [1, 7, usize::MAX] {
        let mut inflater = Inflater::new(false);
        for (message, compressed) in messages.iter().zip(&wire) {
            let mut out = Inflated::new(MIB, MIB);
            for piece in compressed.chunks(chunk.min(compressed.len()).max(1)) {
                inflater.push(piece, &mut out).unwrap();
            }
            inflater.finish(&mut out).unwrap();
            assert_eq!(&out.data, message);
            assert!(!out.is_truncated());
        }
    }
    let alone = Inflater::new(false).inflate_message(&wire[1], MIB);
    assert_ne!(
        alone.ok().as_ref(),
        Some(&messages[1]),
        "message 2 alone must not decode"
    );
}

#[test]
fn no_context_takeover_streams_decode_with_resets() {
    let messages = json_messages(5);
    let mut c = Compress::new(Compression::new(6), false);
    let mut inflater = Inflater::for_direction(
        &negotiated(&["permessage-deflate; server_no_context_takeover"]),
        Direction::ServerToClient,
    );
    for message in &messages {
        c.reset();
        let compressed = compress(&mut c, message);
        // Each message decodes alone, and through the resetting inflater.
        assert_eq!(
            &Inflater::new(false)
                .inflate_message(&compressed, MIB)
                .unwrap(),
            message
        );
        assert_eq!(
            &inflater.inflate_message(&compressed, MIB).unwrap(),
            message
        );
    }
}

#[test]
fn output_past_keep_is_counted_and_the_context_stays_in_step() {
    let big: Vec<u8> = json_messages(3000).concat();
    let after = json_messages(2);
    let mut c = Compress::new(Compression::fast(), false);
    let big_wire = compress(&mut c, &big);
    let after_wire = compress(&mut c, &after[1]);
    let mut inflater = Inflater::new(false);
    let mut out = Inflated::new(1000, usize::MAX);
    inflater.push(&big_wire, &mut out).unwrap();
    inflater.finish(&mut out).unwrap();
    assert_eq!((out.data.as_slice(), out.total), (&big[..1000], big.len()));
    assert!(out.is_truncated());
    assert_eq!(
        inflater.inflate_message(&after_wire, MIB).unwrap(),
        after[1]
    );
}

#[test]
fn decompression_bomb_fails_fast_naming_the_cap() {
    let bomb = zero_bomb(50 * MIB / 258); // ~50 MiB of zeros
    assert!(bomb.len() < 400 * 1024);
    let start = Instant::now();
    let error = Inflater::new(false)
        .inflate_message(&bomb, 8 * MIB)
        .unwrap_err();
    assert_eq!(error, DeflateError::TooLarge { cap: 8 * MIB });
    assert!(error.to_string().contains("8388608"), "{error}");
    assert!(start.elapsed() < Duration::from_secs(10));
    // Under a larger cap the same data is fine (the decoder is exact, only bounded).
    let small = zero_bomb(1000);
    let out = Inflater::new(false).inflate_message(&small, MIB).unwrap();
    assert_eq!(out, vec![0; 1 + 258 * 1000]);
}

#[test]
fn bfinal_restarts_count_against_the_cap() {
    // Found by fuzzing (ws_frame): 32 KiB of history, then a run of empty BFINAL blocks
    // (`03 00`: BFINAL=1, fixed Huffman, end of block). Each one made `restart` replay the whole
    // 32 KiB window into a fresh decoder, uncounted: 64 KiB of input cost 1 GiB of decoding
    // while the output stayed at 32 KiB, far under any cap. The replay now counts against it.
    let mut bits = Bits::default();
    bits.put(1, 1); // BFINAL
    bits.put(1, 2); // fixed Huffman
    bits.code(0x30, 8); // literal 0
    for _ in 0..127 {
        bits.code(0b1100_0101, 8); // length 258
        bits.code(0, 5); // distance 1
    }
    bits.code(0, 7); // end of block
    if bits.n > 0 {
        bits.out.push(bits.acc as u8); // pad to the byte boundary
    }
    let mut data = bits.out;
    let history = 1 + 258 * 127;
    data.extend(b"\x03\x00".repeat(20_000));
    let start = Instant::now();
    let error = Inflater::new(false)
        .inflate_message(&data, MIB)
        .unwrap_err();
    assert_eq!(error, DeflateError::TooLarge { cap: MIB });
    assert!(start.elapsed() < Duration::from_secs(10));
    // A few restarts stay well within the cap, and the output is only what was produced.
    let few = &data[..data.len() - 2 * 19_990];
    let out = Inflater::new(false).inflate_message(few, MIB).unwrap();
    assert_eq!(out, vec![0; history]);
}

#[test]
fn corrupt_data_is_an_error() {
    // BTYPE=11 is reserved.
    assert!(matches!(
        Inflater::new(false).inflate_message(&[0xff, 0xff], 100),
        Err(DeflateError::Corrupt(_))
    ));
    // A stored block whose NLEN is not the complement of LEN.
    assert!(
        Inflater::new(false)
            .inflate_message(&[0x00, 0x05, 0x00, 0x00, 0x00, 1, 2, 3, 4, 5], 100)
            .is_err()
    );
    // The error sticks until a reset.
    let mut inflater = Inflater::new(false);
    assert!(inflater.inflate_message(&[0xff], 100).is_err());
    assert!(
        inflater
            .inflate_message(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], 100)
            .is_err()
    );
    inflater.reset();
    assert_eq!(
        inflater
            .inflate_message(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], 100)
            .unwrap(),
        b"Hello"
    );
}

#[test]
fn garbage_and_truncations_never_panic() {
    let mut c = Compress::new(Compression::default(), false);
    let good = compress(&mut c, &json_messages(20).concat());
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for round in 0..3000usize {
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let data: Vec<u8> = match round % 3 {
            0 => (0..next() % 200).map(|_| next() as u8).collect(),
            1 => good[..(next() as usize) % good.len()].to_vec(),
            _ => {
                let mut d = good.clone();
                let at = (next() as usize) % d.len();
                d[at] ^= 1 << (next() % 8);
                d
            }
        };
        let mut inflater = Inflater::new(round % 2 == 0);
        for _ in 0..2 {
            let _ = inflater.inflate_message(&data, 256 * 1024);
        }
    }
}
