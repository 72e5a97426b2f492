//! Decoding of a captured body copy per its `Content-Encoding`, for storage.
//!
//! Only the stored copy is ever decoded; the forwarded bytes stay as they were on the wire.
//! Unlike greyproxy (which handles one coding, reads `deflate` as raw DEFLATE only, and keeps
//! the compressed bytes whenever anything goes wrong, including the 2 MiB truncation), this
//! decodes stacked codings, accepts both zlib and raw `deflate`, and turns a truncated capture
//! into a decoded prefix marked partial. Output is bounded by `max_decoded` with streaming
//! decoders, so a decompression bomb costs at most that much memory and time.

use std::borrow::Cow;
use std::fmt;
use std::io::{self, Read};

use flate2::bufread::{DeflateDecoder, MultiGzDecoder, ZlibDecoder};

/// Size of the scratch buffer decoders write into.
const CHUNK: usize = 32 * 1024;

/// More stacked codings than anyone sends; bounds the work a hostile header can ask for, since
/// every layer may be decoded up to `max_decoded` bytes.
const MAX_LAYERS: usize = 4;

/// Largest zstd window accepted: RFC 9659 caps `Content-Encoding: zstd` windows at 8 MiB, and
/// without a limit a frame header alone could make the decoder reserve 128 MiB.
const ZSTD_WINDOW_LOG_MAX: u32 = 23;

/// Input buffer of the brotli reader (it reads from a slice, so this is only a copy size).
const BROTLI_BUFFER: usize = 4096;

/// A decoded body copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decoded {
    /// The decoded bytes; the raw captured bytes when there was nothing to decode or decoding
    /// failed.
    pub(crate) bytes: Vec<u8>,
    /// How `bytes` relates to the captured bytes.
    pub(crate) status: DecodeStatus,
}

/// Outcome of decoding a body copy.
///
/// Serialized as a string: `"identity"`, `"decoded"`, `"partial"` or `"failed: <reason>"`
/// (the encodings list is not part of the string form, so deserializing gives it empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DecodeStatus {
    /// No content coding (none, or only `identity`): the bytes are the captured ones.
    Identity,
    /// The codings were undone.
    Decoded {
        /// The codings as listed in `Content-Encoding` (lowercased, in the order they were
        /// applied, which is the reverse of the decoding order).
        encodings: Vec<String>,
        /// True when the bytes are only a prefix of the decoded body: the capture was
        /// truncated or incomplete, or the `max_decoded` cap was reached.
        partial: bool,
    },
    /// Decoding was impossible (unknown coding, corrupt data): the bytes are the captured,
    /// still encoded, ones.
    Failed {
        /// Why, for humans.
        reason: String,
    },
}

impl DecodeStatus {
    /// The status without details: `"identity"`, `"decoded"`, `"partial"` or `"failed"`.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Identity => "identity",
            Self::Decoded { partial: false, .. } => "decoded",
            Self::Decoded { partial: true, .. } => "partial",
            Self::Failed { .. } => "failed",
        }
    }

    /// True when the stored bytes are a decoded prefix rather than the whole decoded body.
    #[cfg(test)]
    pub(crate) fn is_partial(&self) -> bool {
        matches!(self, Self::Decoded { partial: true, .. })
    }
}

impl fmt::Display for DecodeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed { reason } => write!(f, "failed: {reason}"),
            other => f.write_str(other.kind()),
        }
    }
}

impl serde::Serialize for DecodeStatus {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for DecodeStatus {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <Cow<'de, str>>::deserialize(deserializer)?;
        match text.as_ref() {
            "identity" => Ok(Self::Identity),
            "decoded" | "partial" => Ok(Self::Decoded {
                encodings: Vec::new(),
                partial: text == "partial",
            }),
            "failed" => Ok(Self::Failed {
                reason: String::new(),
            }),
            other => match other.strip_prefix("failed:") {
                Some(reason) => Ok(Self::Failed {
                    reason: reason.trim_start().to_owned(),
                }),
                None => Err(serde::de::Error::invalid_value(
                    serde::de::Unexpected::Str(other),
                    &"identity, decoded, partial or failed: <reason>",
                )),
            },
        }
    }
}

/// A content coding this module can undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coding {
    Gzip,
    Deflate,
    Brotli,
    Zstd,
}

impl Coding {
    fn parse(token: &str) -> Option<Self> {
        match token {
            "gzip" | "x-gzip" => Some(Self::Gzip),
            "deflate" => Some(Self::Deflate),
            "br" => Some(Self::Brotli),
            "zstd" => Some(Self::Zstd),
            _ => None,
        }
    }
}

/// Decodes a captured body per its `Content-Encoding` header value, producing at most
/// `max_decoded` bytes.
///
/// * No header, or only `identity` → the raw bytes, [`DecodeStatus::Identity`].
/// * `gzip`/`x-gzip`, `deflate` (zlib, or raw DEFLATE as some servers send), `br`, `zstd`,
///   stacked as a comma list in the order applied (`gzip, br` is decoded br first); tokens are
///   case- and whitespace-insensitive → [`DecodeStatus::Decoded`].
/// * `input_truncated` must be true when `raw` is not the whole body (capture cap reached, or
///   the body ended early): whatever prefix the decoders yield is then kept and marked
///   partial, instead of failing on the missing end.
/// * Reaching `max_decoded` stops decoding and marks the result partial.
/// * An unknown coding, or corrupt data → the raw bytes, [`DecodeStatus::Failed`].
pub(crate) fn decode_body(
    raw: &[u8],
    content_encoding: Option<&str>,
    input_truncated: bool,
    max_decoded: usize,
) -> Decoded {
    let failed = |reason: String| Decoded {
        bytes: raw.to_vec(),
        status: DecodeStatus::Failed { reason },
    };

    let mut codings = Vec::new();
    let mut names = Vec::new();
    for token in content_encoding.unwrap_or_default().split(',') {
        let token = token.trim().to_ascii_lowercase();
        if token.is_empty() || token == "identity" {
            continue;
        }
        match Coding::parse(&token) {
            Some(coding) => codings.push(coding),
            None => return failed(format!("unsupported content-encoding {token:?}")),
        }
        names.push(token);
    }
    if codings.is_empty() {
        return Decoded {
            bytes: raw.to_vec(),
            status: DecodeStatus::Identity,
        };
    }
    if codings.len() > MAX_LAYERS {
        return failed(format!(
            "{} stacked content-encodings (at most {MAX_LAYERS} are decoded)",
            codings.len()
        ));
    }

    // Layer by layer, last applied first. Each intermediate result is bounded like the final
    // one, and a capped or truncated layer makes the next one's input truncated.
    let mut current = Cow::Borrowed(raw);
    let mut partial = input_truncated;
    for (&coding, name) in codings.iter().zip(&names).rev() {
        match decode_layer(&current, coding, partial, max_decoded) {
            Ok(layer) => {
                partial |= layer.partial;
                current = Cow::Owned(layer.bytes);
            }
            Err(reason) => return failed(format!("{name}: {reason}")),
        }
    }
    Decoded {
        bytes: current.into_owned(),
        status: DecodeStatus::Decoded {
            encodings: names,
            partial,
        },
    }
}

/// One decoded layer.
struct Layer {
    bytes: Vec<u8>,
    partial: bool,
}

/// Why one coding could not be undone (shown after `failed: <coding>: `).
#[derive(Debug, thiserror::Error)]
enum LayerError {
    /// The decoder failed (or could not be set up).
    #[error("{0}")]
    Decoder(#[from] io::Error),
    /// `deflate` failed both as zlib and as raw DEFLATE.
    #[error("neither zlib ({zlib}) nor raw ({raw})")]
    Deflate {
        /// The zlib attempt's error.
        zlib: io::Error,
        /// The raw attempt's error.
        raw: io::Error,
    },
}

/// Undoes one coding of `input`; `truncated` says the input is only a prefix.
fn decode_layer(
    input: &[u8],
    coding: Coding,
    truncated: bool,
    max: usize,
) -> Result<Layer, LayerError> {
    match coding {
        // Multi-member: concatenated gzip members are one valid gzip body (RFC 1952), and
        // Go's reader, which greyproxy used, reads them all too.
        Coding::Gzip => Ok(settle(drain(MultiGzDecoder::new(input), max), truncated)?),
        // RFC 9110 says zlib, but some servers send raw DEFLATE. A raw stream fails the zlib
        // header check at once; the rare raw stream that happens to look like a zlib header
        // fails later on and gets its second chance the same way.
        Coding::Deflate => settle(drain(ZlibDecoder::new(input), max), truncated).or_else(|zlib| {
            settle(drain(DeflateDecoder::new(input), max), truncated)
                .map_err(|raw| LayerError::Deflate { zlib, raw })
        }),
        Coding::Brotli => Ok(settle(
            drain(brotli::Decompressor::new(input, BROTLI_BUFFER), max),
            truncated,
        )?),
        Coding::Zstd => {
            let mut decoder = zstd::stream::read::Decoder::with_buffer(input)?;
            decoder.window_log_max(ZSTD_WINDOW_LOG_MAX)?;
            Ok(settle(drain(decoder, max), truncated)?)
        }
    }
}

/// How reading a decoder stopped.
enum Stop {
    /// The decoder reported the end of its stream.
    End,
    /// `max` bytes were produced and there was more.
    Capped,
    /// The decoder failed.
    Error(io::Error),
}

/// Reads `reader` until its end, an error, or `max` bytes. Memory grows with the output
/// actually produced, never with sizes claimed by the stream.
fn drain<R: Read>(mut reader: R, max: usize) -> (Vec<u8>, Stop) {
    let mut out = Vec::new();
    let mut chunk = vec![0u8; CHUNK];
    loop {
        let room = max - out.len();
        if room == 0 {
            // Reading one more byte tells a stream that ends exactly at the cap (complete,
            // checksum verified) from one that goes on.
            let mut probe = [0u8; 1];
            return match read_retrying(&mut reader, &mut probe) {
                Ok(0) => (out, Stop::End),
                Ok(_) => (out, Stop::Capped),
                Err(e) => (out, Stop::Error(e)),
            };
        }
        let want = room.min(CHUNK);
        match read_retrying(&mut reader, &mut chunk[..want]) {
            Ok(0) => return (out, Stop::End),
            Ok(n) => {
                let needed = out.len() + n;
                if needed > out.capacity() {
                    // Geometric growth clamped to the cap, as for the capture buffer.
                    let target = needed.max(out.capacity().saturating_mul(2)).min(max);
                    out.reserve_exact(target - out.len());
                }
                out.extend_from_slice(&chunk[..n]);
            }
            Err(e) => return (out, Stop::Error(e)),
        }
    }
}

/// `Read::read`, retried on `Interrupted` (which decoders over slices never return, but the
/// trait allows).
fn read_retrying<R: Read>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match reader.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Turns a drained decoder into a layer or the decoder's error.
fn settle((bytes, stop): (Vec<u8>, Stop), truncated: bool) -> io::Result<Layer> {
    match stop {
        // A decoder reading a cut input may stop quietly at what it has; the cut still makes
        // the output a prefix.
        Stop::End => Ok(Layer {
            bytes,
            partial: truncated,
        }),
        Stop::Capped => Ok(Layer {
            bytes,
            partial: true,
        }),
        // The error is most likely the cut itself (unexpected end of stream); the prefix
        // decoded before it is what the capture is for. With nothing decoded, the raw bytes
        // are kept instead.
        Stop::Error(_) if truncated && !bytes.is_empty() => Ok(Layer {
            bytes,
            partial: true,
        }),
        Stop::Error(e) => Err(e),
    }
}

#[cfg(test)]
mod tests;
