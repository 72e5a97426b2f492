//! The decompression cap is exact: never more than `max_total` bytes counted, never more than
//! `keep` kept, however the compressed bytes arrive.

use super::*;

/// Feeds `wire` as one message in pieces of the sizes `chunks` yields (cycled), then finishes.
fn inflate_in_chunks(
    inflater: &mut Inflater,
    wire: &[u8],
    chunks: &[usize],
    out: &mut Inflated,
) -> Result<(), DeflateError> {
    let mut rest = wire;
    for &size in chunks.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (piece, tail) = rest.split_at(size.clamp(1, rest.len()));
        inflater.push(piece, out)?;
        rest = tail;
    }
    inflater.finish(out)
}

/// Chunkings to try: bytewise, small odd sizes, about a scratch, whole, and irregular ones.
fn chunkings() -> Vec<Vec<usize>> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut all = vec![vec![1], vec![3], vec![4093], vec![65_537], vec![usize::MAX]];
    for _ in 0..3 {
        all.push((0..64).map(|_| (next() % 700) as usize + 1).collect());
    }
    all
}

#[test]
fn write_counts_and_keeps_no_more_than_the_cap() {
    let mut out = Inflated::new(4, 10);
    out.write(b"abcdef").unwrap();
    assert_eq!(
        out.write(b"ghijkl"),
        Err(DeflateError::TooLarge { cap: 10 })
    );
    assert_eq!((out.data.as_slice(), out.total), (&b"abcd"[..], 10));
    // Exactly at the cap is fine; one more byte is not.
    let mut out = Inflated::new(100, 6);
    out.write(b"abc").unwrap();
    out.write(b"def").unwrap();
    assert_eq!(out.write(b""), Ok(()));
    assert_eq!(out.write(b"g"), Err(DeflateError::TooLarge { cap: 6 }));
    assert_eq!((out.data.as_slice(), out.total), (&b"abcdef"[..], 6));
}

#[test]
fn fuzz_finding_stays_within_the_cap_in_both_rounds() {
    // Found by fuzzing (ws_frame, `fuzz/corpus/ws_frame/inflate_cap_overshoot`): 1.7 KB of
    // DEFLATE (a block of zeros, runs of empty BFINAL blocks, more zeros) that inflates to
    // 1.6 MB. With a 1 MiB cap both rounds reported 1 084 200 bytes: the decoder was handed a
    // whole scratch of output room, and everything it wrote there was counted before the cap
    // was checked. Byte 0 is the fuzz target's flags (whole input, context takeover).
    let finding = include_bytes!("inflate_cap_overshoot.bin");
    let wire = &finding[1..];
    for chunks in chunkings() {
        let mut inflater = Inflater::new(false);
        for round in 0..2 {
            let mut out = Inflated::new(4096, MIB);
            let result = inflate_in_chunks(&mut inflater, wire, &chunks, &mut out);
            assert_eq!(
                result,
                Err(DeflateError::TooLarge { cap: MIB }),
                "round {round}, chunks {chunks:?}"
            );
            assert!(out.total <= MIB, "{} in round {round}", out.total);
            assert!(out.total + out.replayed <= MIB);
            assert_eq!(out.data, vec![0; 4096]);
            inflater.reset();
        }
    }
}

#[test]
fn messages_at_around_the_cap_whatever_the_chunking() {
    let text: Vec<u8> = json_messages(400).concat();
    let mut noise = vec![0u8; 70_000];
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for byte in &mut noise {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *byte = state as u8;
    }
    let zeros = vec![0u8; 300_000];
    // Pairs of messages of one direction; the second refers back into the first.
    let pairs: [(&[u8], &[u8]); 3] = [
        (&text, &text[..50_000]),
        (&noise, &text),
        (&zeros, &noise[..1000]),
    ];
    let chunkings = chunkings();
    for (first, second) in pairs {
        let mut c = Compress::new(Compression::default(), false);
        let wires = [compress(&mut c, first), compress(&mut c, second)];
        let messages = [first, second];
        // Cap offsets for (first, second): under by one, exact, over by one.
        for offsets in [(-1, 0), (0, -1), (0, 0), (1, 1), (-50_000, 0)] {
            for chunks in &chunkings {
                let mut inflater = Inflater::new(false);
                for (i, offset) in [offsets.0, offsets.1].into_iter().enumerate() {
                    let message = messages[i];
                    let cap = message.len().saturating_add_signed(offset);
                    let keep = 1000 * (i + 1);
                    let mut out = Inflated::new(keep, cap);
                    let result = inflate_in_chunks(&mut inflater, &wires[i], chunks, &mut out);
                    let seen = message.len().min(cap);
                    let context = format!("message {i}, cap {cap}, chunks {chunks:?}");
                    assert_eq!(out.total, seen, "{context}");
                    assert_eq!(out.data, &message[..seen.min(keep)], "{context}");
                    if offset < 0 {
                        assert_eq!(result, Err(DeflateError::TooLarge { cap }), "{context}");
                        break; // the context is lost with the error
                    }
                    assert_eq!(result, Ok(()), "{context}");
                }
            }
        }
    }
}
