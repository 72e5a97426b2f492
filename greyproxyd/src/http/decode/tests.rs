#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::time::{Duration, Instant};

use flate2::Compression;
use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};

use super::*;

const MIB: usize = 1024 * 1024;

/// Text that compresses like real JSON/SSE (repetitive words, pseudo-random order), large
/// enough that half of its compressed form decodes to a sizeable prefix.
fn sample_text(len: usize) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "data: ",
        "{\"type\":",
        "\"content_block_delta\"",
        "model",
        "token",
        "\n\n",
        "hello",
        "assistant",
        "tool_use",
        "claude",
        "stream",
        "42",
        "}",
        "event: ping",
        "delta",
    ];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::with_capacity(len + 32);
    while out.len() < len {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        out.extend_from_slice(WORDS[(state >> 33) as usize % WORDS.len()].as_bytes());
        out.push(b' ');
    }
    out.truncate(len);
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn raw_deflate(data: &[u8]) -> Vec<u8> {
    let mut e = DeflateEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn brotli(data: &[u8]) -> Vec<u8> {
    let mut e = brotli::CompressorWriter::new(Vec::new(), 4096, 5, 22);
    e.write_all(data).unwrap();
    e.into_inner()
}

fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(data, 3).unwrap()
}

fn assert_decoded(d: &Decoded, encodings: &[&str], partial: bool) {
    assert_eq!(
        d.status,
        DecodeStatus::Decoded {
            encodings: encodings.iter().map(|s| s.to_string()).collect(),
            partial,
        }
    );
}

fn assert_failed(d: &Decoded, raw: &[u8]) {
    assert!(
        matches!(d.status, DecodeStatus::Failed { .. }),
        "{:?}",
        d.status
    );
    assert_eq!(d.bytes, raw, "a failed decode keeps the captured bytes");
}

#[test]
fn identity_keeps_bytes() {
    let raw = b"plain body";
    for enc in [None, Some(""), Some("identity"), Some(" Identity , ")] {
        let d = decode_body(raw, enc, false, MIB);
        assert_eq!(d.status, DecodeStatus::Identity, "{enc:?}");
        assert_eq!(d.bytes, raw);
    }
}

#[test]
fn each_coding_round_trips() {
    let text = sample_text(100_000);
    let cases: [(&str, Vec<u8>); 7] = [
        ("gzip", gzip(&text)),
        ("x-gzip", gzip(&text)),
        ("deflate", zlib(&text)),
        ("deflate", raw_deflate(&text)),
        ("br", brotli(&text)),
        ("zstd", zstd(&text)),
        ("identity, gzip", gzip(&text)),
    ];
    for (enc, raw) in cases {
        let d = decode_body(&raw, Some(enc), false, MIB);
        assert_eq!(d.bytes, text, "{enc}");
        let expected = enc.rsplit(", ").next().unwrap();
        assert_decoded(&d, &[expected], false);
    }
}

#[test]
fn tokens_are_case_and_whitespace_insensitive() {
    let text = sample_text(1000);
    let d = decode_body(&gzip(&text), Some("  GZip "), false, MIB);
    assert_eq!(d.bytes, text);
    assert_decoded(&d, &["gzip"], false);
    let d = decode_body(&brotli(&text), Some("BR"), false, MIB);
    assert_eq!(d.bytes, text);
}

#[test]
fn stacked_codings_are_undone_in_reverse() {
    let text = sample_text(50_000);
    // `gzip, br`: gzip was applied first, then br.
    let raw = brotli(&gzip(&text));
    let d = decode_body(&raw, Some("gzip, br"), false, MIB);
    assert_eq!(d.bytes, text);
    assert_decoded(&d, &["gzip", "br"], false);

    let raw = gzip(&zstd(&raw_deflate(&text)));
    let d = decode_body(&raw, Some("deflate,zstd ,GZIP"), false, MIB);
    assert_eq!(d.bytes, text);
    assert_decoded(&d, &["deflate", "zstd", "gzip"], false);

    // The wrong order fails and keeps the raw bytes.
    let raw = brotli(&gzip(&text));
    assert_failed(&decode_body(&raw, Some("br, gzip"), false, MIB), &raw);
}

#[test]
fn concatenated_gzip_members_are_one_body() {
    let mut raw = gzip(b"first member, ");
    raw.extend(gzip(b"second member"));
    let d = decode_body(&raw, Some("gzip"), false, MIB);
    assert_eq!(d.bytes, b"first member, second member");
}

#[test]
fn unknown_coding_keeps_raw_bytes() {
    let raw = b"\x1f\x9d compressed with LZW";
    let d = decode_body(raw, Some("compress"), false, MIB);
    assert_failed(&d, raw);
    assert_eq!(
        d.status.to_string(),
        "failed: unsupported content-encoding \"compress\""
    );

    let gz = gzip(b"x");
    assert_failed(&decode_body(&gz, Some("gzip, snappy"), false, MIB), &gz);
}

#[test]
fn too_many_layers_are_refused() {
    let raw = gzip(b"x");
    let d = decode_body(&raw, Some("gzip, gzip, gzip, gzip, gzip"), false, MIB);
    assert_failed(&d, &raw);
}

#[test]
fn corrupt_data_fails_with_raw_bytes() {
    let text = sample_text(20_000);
    // Formats with a checksum or strict framing notice damage anywhere.
    for (enc, mut raw) in [
        ("gzip", gzip(&text)),
        ("deflate", zlib(&text)),
        ("br", brotli(&text)),
        ("zstd", zstd(&text)),
    ] {
        let mid = raw.len() / 2;
        for b in &mut raw[mid..mid + 16] {
            *b ^= 0x5a;
        }
        let d = decode_body(&raw, Some(enc), false, MIB);
        assert_failed(&d, &raw);
        assert!(
            d.status
                .to_string()
                .starts_with(&format!("failed: {enc}: "))
        );
    }
    // Raw DEFLATE has no checksum, so damage is only seen when it breaks the block structure:
    // here the first block claims the reserved block type 3.
    let mut raw = raw_deflate(&text);
    raw[0] |= 0b110;
    assert_failed(&decode_body(&raw, Some("deflate"), false, MIB), &raw);

    let garbage = b"this is not compressed at all, whatever the header says".to_vec();
    for enc in ["gzip", "deflate", "zstd"] {
        assert_failed(&decode_body(&garbage, Some(enc), false, MIB), &garbage);
    }
}

#[test]
fn truncated_capture_decodes_to_partial_prefix() {
    let text = sample_text(400_000);
    for (enc, raw) in [
        ("gzip", gzip(&text)),
        ("deflate", zlib(&text)),
        ("deflate", raw_deflate(&text)),
        ("br", brotli(&text)),
        ("zstd", zstd(&text)),
        ("gzip, br", brotli(&gzip(&text))),
    ] {
        let cut = &raw[..raw.len() / 2];
        let d = decode_body(cut, Some(enc), true, MIB);
        assert!(d.status.is_partial(), "{enc}: {:?}", d.status);
        assert_eq!(d.status.kind(), "partial");
        assert!(
            d.bytes.len() > text.len() / 10,
            "{enc}: only {} bytes",
            d.bytes.len()
        );
        assert!(d.bytes.len() < text.len(), "{enc}");
        assert_eq!(d.bytes[..], text[..d.bytes.len()], "{enc}: not a prefix");

        // The same cut, claimed complete, is an error: the stream's end is missing.
        assert_failed(&decode_body(cut, Some(enc), false, MIB), cut);
    }
}

#[test]
fn truncated_flag_marks_even_a_clean_end_partial() {
    // A capture marked incomplete stays partial even if the decoder found nothing missing.
    let text = sample_text(1000);
    let d = decode_body(&gzip(&text), Some("gzip"), true, MIB);
    assert_eq!(d.bytes, text);
    assert_decoded(&d, &["gzip"], true);
}

#[test]
fn truncation_that_yields_nothing_keeps_raw_bytes() {
    let raw = gzip(&sample_text(1000));
    let cut = &raw[..5]; // inside the gzip header
    assert_failed(&decode_body(cut, Some("gzip"), true, MIB), cut);
}

#[test]
fn output_is_capped_exactly() {
    let text = sample_text(10_000);
    let d = decode_body(&gzip(&text), Some("gzip"), false, 4096);
    assert_eq!(d.bytes, text[..4096]);
    assert_decoded(&d, &["gzip"], true);

    // Ending exactly at the cap is complete.
    let d = decode_body(&zstd(&text), Some("zstd"), false, text.len());
    assert_eq!(d.bytes, text);
    assert_decoded(&d, &["zstd"], false);

    let d = decode_body(&brotli(&text), Some("br"), false, 0);
    assert!(d.bytes.is_empty());
    assert_decoded(&d, &["br"], true);
}

#[test]
fn decompression_bomb_is_capped_fast() {
    // 100 MiB of zeros as 100 gzip members of 1 MiB (a valid single gzip body that is cheap
    // to build in a debug test), and as one zstd stream.
    let member = gzip(&vec![0u8; MIB]);
    let gz_bomb: Vec<u8> = member
        .iter()
        .copied()
        .cycle()
        .take(member.len() * 100)
        .collect();
    let mut zstd_bomb = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
    let zeros = vec![0u8; MIB];
    for _ in 0..100 {
        zstd_bomb.write_all(&zeros).unwrap();
    }
    let zstd_bomb = zstd_bomb.finish().unwrap();
    assert!(gz_bomb.len() < 200 * 1024 && zstd_bomb.len() < 200 * 1024);

    for (enc, raw) in [("gzip", &gz_bomb), ("zstd", &zstd_bomb)] {
        let started = Instant::now();
        let d = decode_body(raw, Some(enc), false, MIB);
        let elapsed = started.elapsed();
        assert_eq!(d.bytes.len(), MIB, "{enc}");
        assert!(d.bytes.iter().all(|&b| b == 0));
        assert!(d.bytes.capacity() <= MIB, "{enc}: over-allocated");
        assert_decoded(&d, &[enc], true);
        assert!(elapsed < Duration::from_secs(2), "{enc} took {elapsed:?}");
    }

    // A single-member gzip bomb: only the first MiB is ever inflated.
    let mut one = GzEncoder::new(Vec::new(), Compression::fast());
    for _ in 0..16 {
        one.write_all(&zeros).unwrap();
    }
    let one = one.finish().unwrap();
    let d = decode_body(&one, Some("gzip"), false, MIB / 4);
    assert_eq!(d.bytes.len(), MIB / 4);
    assert_decoded(&d, &["gzip"], true);
}

#[test]
fn status_string_forms() {
    let decoded = DecodeStatus::Decoded {
        encodings: vec!["gzip".into()],
        partial: false,
    };
    let partial = DecodeStatus::Decoded {
        encodings: vec!["br".into()],
        partial: true,
    };
    let failed = DecodeStatus::Failed {
        reason: "gzip: corrupt deflate stream".into(),
    };
    assert_eq!(DecodeStatus::Identity.to_string(), "identity");
    assert_eq!(decoded.to_string(), "decoded");
    assert_eq!(partial.to_string(), "partial");
    assert_eq!(failed.to_string(), "failed: gzip: corrupt deflate stream");
    assert_eq!(failed.kind(), "failed");

    assert_eq!(serde_json::to_string(&partial).unwrap(), "\"partial\"");
    assert_eq!(
        serde_json::to_string(&failed).unwrap(),
        "\"failed: gzip: corrupt deflate stream\""
    );
    let back: DecodeStatus =
        serde_json::from_str("\"failed: gzip: corrupt deflate stream\"").unwrap();
    assert_eq!(back, failed);
    let back: DecodeStatus = serde_json::from_str("\"partial\"").unwrap();
    assert!(back.is_partial());
    let back: DecodeStatus = serde_json::from_str("\"identity\"").unwrap();
    assert_eq!(back, DecodeStatus::Identity);
    assert!(serde_json::from_str::<DecodeStatus>("\"bogus\"").is_err());
}
