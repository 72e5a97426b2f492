//! An incremental parser for `text/event-stream` bodies that follows the WHATWG event-stream
//! rules: lines end in CR, LF or CRLF (a CR at the end of one chunk and an LF at the start of
//! the next are one line end); a line starting with `:` is a comment; `field:value` with one
//! optional space after the colon; several `data` lines join with `\n`; a blank line dispatches
//! the event; an event with no `data` line dispatches nothing. Chunk boundaries may fall
//! anywhere, including inside a UTF-8 sequence. greyproxy's parser kept only the last `data`
//! line and failed on a leading comment (OpenRouter's `: OPENROUTER PROCESSING`).
//!
//! Memory is bounded by the input: the parser keeps at most the current line and the current
//! event's data.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    /// The `event` field, `message` when none was given.
    pub(crate) event: String,
    /// The `data` lines joined with `\n` (invalid UTF-8 replaced).
    pub(crate) data: String,
    /// Byte offset in the stream just past the blank line that dispatched the event (for a
    /// CRLF blank line, past its CR: the event is complete there, whatever comes next).
    pub(crate) end: usize,
}

/// The parser's state between chunks.
#[derive(Debug, Default)]
pub(crate) struct SseParser {
    /// Bytes of the line being read.
    line: Vec<u8>,
    /// The last byte consumed was a CR (an LF right after it is part of the same line end).
    after_cr: bool,
    /// `event` field of the event being read.
    event: Option<String>,
    /// `data` of the event being read.
    data: Vec<u8>,
    /// At least one `data` line was seen for the event being read.
    has_data: bool,
    /// Bytes consumed so far.
    offset: usize,
    /// Something (a field line) was read since the last dispatch.
    pending: bool,
}

impl SseParser {
    /// A parser at the start of a stream.
    pub(crate) fn new() -> SseParser {
        SseParser::default()
    }

    /// Feeds one chunk; dispatched events are appended to `out`.
    pub(crate) fn push(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) {
        for &b in chunk {
            self.offset += 1;
            match b {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    self.end_line(out);
                }
                _ => {
                    self.after_cr = false;
                    self.line.push(b);
                }
            }
        }
    }

    /// Ends the stream. Returns true when it stopped inside an event (a field was read but no
    /// blank line dispatched it): a cut stream. Per the rules that event is discarded.
    pub(crate) fn finish(&mut self) -> bool {
        let cut = self.pending || !self.line.is_empty();
        self.line.clear();
        self.reset_event();
        cut
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        self.pending = true;
        if line[0] == b':' {
            return;
        }
        let (name, value) = match line.iter().position(|&c| c == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (&line[..], &b""[..]),
        };
        match name {
            b"event" => self.event = Some(String::from_utf8_lossy(value).into_owned()),
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            // `id` and `retry` do not matter to a recorder; unknown fields are ignored.
            _ => {}
        }
        self.line = line;
        self.line.clear();
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        if self.has_data {
            let event = self
                .event
                .take()
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| "message".to_owned());
            out.push(SseEvent {
                event,
                data: String::from_utf8_lossy(&self.data).into_owned(),
                end: self.offset,
            });
        }
        self.reset_event();
    }

    fn reset_event(&mut self) {
        self.event = None;
        self.data.clear();
        self.has_data = false;
        self.pending = false;
    }
}

/// Parses a whole body. The flag is true when the body ended inside an event (cut).
pub(crate) fn parse_all(body: &[u8]) -> (Vec<SseEvent>, bool) {
    let mut p = SseParser::new();
    let mut out = Vec::new();
    p.push(body, &mut out);
    let cut = p.finish();
    (out, cut)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ev(event: &str, data: &str, end: usize) -> SseEvent {
        SseEvent {
            event: event.into(),
            data: data.into(),
            end,
        }
    }

    #[test]
    fn events_comments_and_multiline_data() {
        let body = b": OPENROUTER PROCESSING\n\nevent: a\ndata: one\ndata:two\n\ndata: x\n\n";
        let (evs, cut) = parse_all(body);
        assert!(!cut);
        assert_eq!(
            evs,
            vec![ev("a", "one\ntwo", 54), ev("message", "x", body.len())]
        );
        assert!(body[..54].ends_with(b"data:two\n\n"));
    }

    #[test]
    fn cr_lf_and_crlf_line_ends() {
        for body in [
            &b"data: a\r\rdata: b\r\n\r\n"[..],
            &b"data: a\n\ndata: b\r\n\r\n"[..],
            &b"data: a\r\n\r\ndata: b\r\r"[..],
        ] {
            let (evs, cut) = parse_all(body);
            assert!(!cut);
            let data: Vec<_> = evs.iter().map(|e| e.data.as_str()).collect();
            assert_eq!(data, ["a", "b"], "{body:?}");
        }
    }

    #[test]
    fn any_chunking_gives_the_same_events() {
        let body =
            "event: x\r\ndata: héllo\r\ndata: wörld\r\n\r\n: c\n\ndata: [DONE]\n\n".as_bytes();
        let (whole, _) = parse_all(body);
        assert_eq!(whole.len(), 2);
        assert_eq!(whole[0].data, "héllo\nwörld");
        for size in 1..body.len() {
            let mut p = SseParser::new();
            let mut out = Vec::new();
            for chunk in body.chunks(size) {
                p.push(chunk, &mut out);
            }
            assert!(!p.finish());
            assert_eq!(out, whole, "chunk size {size}");
        }
    }

    #[test]
    fn field_without_colon_and_space_rules() {
        // `data` alone is an empty data line; only one leading space is stripped.
        let (evs, _) = parse_all(b"data\ndata:  two\n\n");
        assert_eq!(evs[0].data, "\n two");
        // An event with no data dispatches nothing; its event name does not leak.
        let (evs, _) = parse_all(b"event: lonely\n\ndata: y\n\n");
        assert_eq!(evs, vec![ev("message", "y", 24)]);
    }

    #[test]
    fn a_cut_stream_is_reported_and_its_partial_event_dropped() {
        let (evs, cut) = parse_all(b"data: a\n\ndata: {\"part");
        assert!(cut);
        assert_eq!(evs.len(), 1);
        let (evs, cut) = parse_all(b"data: a\n\ndata: b\n");
        assert!(cut);
        assert_eq!(evs.len(), 1);
        let (_, cut) = parse_all(b"");
        assert!(!cut);
    }

    #[test]
    fn the_fuzz_seeds_pass_the_fuzz_checks() {
        for seed in [
            &b"\x03: OPENROUTER PROCESSING\n\nevent: a\r\ndata: one\r\ndata:two\r\n\r\ndata: [DONE]\n\n"[..],
            &b"\x01event: message_start\ndata: {\"type\"}\n\ndata: {\"cut"[..],
            &b"\x06\r\r\n\n\rdata\r"[..],
        ] {
            for cut in 0..=seed.len() {
                crate::dissect::fuzzing::check_sse_chunking(&seed[..cut]).unwrap();
            }
        }
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        let (evs, cut) = parse_all(b"data: \xff\xfe\n\n");
        assert!(!cut);
        assert_eq!(evs[0].data, "\u{fffd}\u{fffd}");
    }
}
