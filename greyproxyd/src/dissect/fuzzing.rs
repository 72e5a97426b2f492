//! The one public door the fuzz targets (`fuzz/fuzz_targets/dissect_*.rs`) use into the
//! crate-private dissectors: build a transaction from raw bytes, dissect it, run the client
//! detection, and check the bounds every dissector promises. The dissectors themselves stay
//! `pub(crate)`; nothing else in the daemon calls this.

use base64::Engine as _;
use greyproxy_protocol::{HeaderMapJson, Transaction};

use super::model::{Block, Dissected};
use super::{anthropic, chat, client, gemini};

/// Which dissector to run.
#[derive(Debug, Clone, Copy)]
pub enum Format {
    /// Anthropic Messages.
    Anthropic,
    /// Chat Completions.
    Chat,
    /// Google AI generateContent.
    Gemini,
}

/// One fuzz input, as a recorded transaction would hold it.
#[derive(Debug, Clone, Default)]
pub struct Input<'a> {
    /// The request URL.
    pub url: &'a str,
    /// The request body, raw (stored as base64 when it is not UTF-8, as the store does).
    pub request: &'a [u8],
    /// The response body, raw.
    pub response: &'a [u8],
    /// The response's content type, if recorded.
    pub content_type: Option<&'a str>,
    /// The response body was cut at the capture cap.
    pub response_truncated: bool,
    /// The request body was cut at the capture cap.
    pub request_truncated: bool,
    /// A `User-Agent` request header.
    pub user_agent: Option<&'a str>,
}

/// A body as the store keeps it: text when it is UTF-8, base64 otherwise.
fn stored(body: &[u8]) -> (String, String) {
    match std::str::from_utf8(body) {
        Ok(s) => (s.to_owned(), "text".to_owned()),
        Err(_) => (
            base64::engine::general_purpose::STANDARD.encode(body),
            "base64".to_owned(),
        ),
    }
}

/// Dissects `input` with `format` and checks the documented bounds; `Err` names the first
/// one broken. Never panics on any input (that is what the fuzz targets check as well).
pub fn check(format: Format, input: &Input<'_>) -> Result<(), String> {
    let (request_body, request_enc) = stored(input.request);
    let (response_body, response_enc) = stored(input.response);
    let headers: Option<HeaderMapJson> = input
        .user_agent
        .map(|ua| [("User-Agent".to_owned(), vec![ua.to_owned()])].into());
    let t = Transaction {
        url: input.url.to_owned(),
        destination_host: input.url.split('/').nth(2).unwrap_or_default().to_owned(),
        method: "POST".to_owned(),
        request_headers: headers,
        request_body: Some(request_body),
        request_body_encoding: Some(request_enc),
        request_body_truncated: input.request_truncated,
        response_body: Some(response_body),
        response_body_encoding: Some(response_enc),
        response_body_truncated: input.response_truncated,
        response_content_type: input.content_type.map(str::to_owned),
        ..Transaction::default()
    };
    let d = match format {
        Format::Anthropic => anthropic::dissect(&t),
        Format::Chat => chat::dissect(&t),
        Format::Gemini => gemini::dissect(&t),
    };
    let who = client::detect_client(t.request_headers.as_ref(), &d);
    let _ = client::classify_thread(who, &d);
    let _ = client::wire_session(t.request_headers.as_ref(), &d);
    bounds(&d, input)
}

/// Decodes a fuzz input and runs [`check`]. Layout: byte 0 holds flags (bits 0–1: content
/// type event-stream / JSON / none / event-stream with charset; bit 2: response cut at the
/// cap; bit 3: request cut; bit 4: a User-Agent of the format's usual client; bit 5: the
/// format's other URL — OpenRouter for Chat, `alt=sse` for Gemini); the rest is the request
/// body, a NUL byte, the response body (no NUL: all response).
pub fn check_bytes(format: Format, data: &[u8]) -> Result<(), String> {
    let Some((&flags, rest)) = data.split_first() else {
        return Ok(());
    };
    let (request, response) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (&b""[..], rest),
    };
    let alt = flags & 0x20 != 0;
    let (url, ua) = match format {
        Format::Anthropic => (
            "https://api.anthropic.com/v1/messages?beta=true",
            "claude-cli/2.1.74 (external, cli)",
        ),
        Format::Chat if alt => (
            "https://openrouter.ai/api/v1/chat/completions",
            "ai-sdk/openrouter/1.5.4, opencode/1.2.6",
        ),
        Format::Chat => (
            "https://api.openai.com/v1/chat/completions",
            "litellm/1.68.1",
        ),
        Format::Gemini if alt => (
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-3-flash-preview:streamGenerateContent?alt=sse",
            "GeminiCLI/0.36.0",
        ),
        Format::Gemini => (
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash-lite:generateContent",
            "GeminiCLI/0.36.0",
        ),
    };
    let input = Input {
        url,
        request,
        response,
        content_type: match flags & 3 {
            0 => Some("text/event-stream"),
            1 => Some("application/json"),
            2 => None,
            _ => Some("text/event-stream; charset=utf-8"),
        },
        response_truncated: flags & 4 != 0,
        request_truncated: flags & 8 != 0,
        user_agent: (flags & 0x10 != 0).then_some(ua),
    };
    check(format, &input)
}

fn at_most(what: &str, s: &str, chars: usize) -> Result<(), String> {
    let n = s.chars().count();
    if n > chars {
        return Err(format!("{what}: {n} characters, more than {chars}"));
    }
    Ok(())
}

fn bounds(d: &Dissected, input: &Input<'_>) -> Result<(), String> {
    // Previews: the documented cut plus the `...` that marks it.
    let (call, summary, result, thinking) = (303, 83, 503, 503);
    let r = &d.response;
    at_most("system preview", &d.request.system_preview, 2000)?;
    at_most("thinking", &r.thinking, thinking)?;
    let request_calls = d.request.messages.iter().flat_map(|m| &m.blocks);
    for b in request_calls {
        match b {
            Block::ToolUse(u) => {
                at_most("tool input preview", &u.info.input_preview, call)?;
                at_most("tool summary", &u.info.summary, summary)?;
            }
            Block::ToolResult(res) => at_most("tool result", &res.preview, result)?,
            Block::Thinking(t) => at_most("thinking block", t, thinking)?,
            Block::Text(_) => {}
        }
    }
    for u in &r.tool_calls {
        at_most("tool input preview", &u.info.input_preview, call)?;
        at_most("tool summary", &u.info.summary, summary)?;
    }
    if r.first_content_end
        .is_some_and(|e| e > input.response.len())
    {
        return Err("first content past the end of the body".to_owned());
    }
    // Unescaping only shrinks text; a replaced invalid byte grows to 3 (U+FFFD).
    if r.text.len() > 3 * input.response.len() {
        return Err("more text than body".to_owned());
    }
    if r.complete && (r.error.is_some() || input.response_truncated) {
        return Err(format!("complete despite {:?}", r.error));
    }
    if let Some(u) = r.usage
        && (u.cache_write_5m_tokens.is_some() || u.cache_write_1h_tokens.is_some())
        && d.provider != "anthropic"
    {
        return Err("a TTL split from a provider that has none".to_owned());
    }
    Ok(())
}

/// The event-stream parser on `data` (byte 0 seeds the chunk sizes, the rest is the stream):
/// fed whole and fed in chunks, it must dispatch the same events; every event's end offset is
/// within the stream and after the previous one's; no event's data is longer than the stream.
pub fn check_sse_chunking(data: &[u8]) -> Result<(), String> {
    let Some((&seed, stream)) = data.split_first() else {
        return Ok(());
    };
    let (whole, cut) = super::sse::parse_all(stream);
    let mut p = super::sse::SseParser::new();
    let mut chunked = Vec::new();
    let mut rest = stream;
    let mut step = usize::from(seed % 7) + 1;
    while !rest.is_empty() {
        let n = step.min(rest.len());
        p.push(&rest[..n], &mut chunked);
        rest = &rest[n..];
        step = step * 3 % 11 + 1;
    }
    let cut_chunked = p.finish();
    if chunked != whole || cut != cut_chunked {
        return Err(format!(
            "chunking changed the result: {} events whole, {} chunked",
            whole.len(),
            chunked.len()
        ));
    }
    let mut last = 0;
    for e in &whole {
        if e.end > stream.len() || e.end < last {
            return Err(format!(
                "end offset {} out of order or past the stream",
                e.end
            ));
        }
        last = e.end;
        if e.data.len() > stream.len() * 3 {
            return Err("event data longer than the stream allows".into());
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The committed seeds of the three fuzz targets pass the checks, under every flag byte.
    #[test]
    fn seeds_pass_under_every_flag() {
        let corpus = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus");
        for (dir, format) in [
            ("dissect_anthropic", Format::Anthropic),
            ("dissect_chat", Format::Chat),
            ("dissect_gemini", Format::Gemini),
        ] {
            let entries = std::fs::read_dir(format!("{corpus}/{dir}")).unwrap();
            let mut seen = 0;
            for e in entries {
                let mut data = std::fs::read(e.unwrap().path()).unwrap();
                for flags in 0..64u8 {
                    data[0] = flags;
                    check_bytes(format, &data).unwrap();
                }
                seen += 1;
            }
            assert!(seen >= 4, "{dir}");
        }
    }

    /// Every prefix of every seed (bodies cut anywhere) passes the checks, with the response
    /// marked cut and not.
    #[test]
    fn every_prefix_of_every_seed_passes() {
        let corpus = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus");
        for (dir, format) in [
            ("dissect_anthropic", Format::Anthropic),
            ("dissect_chat", Format::Chat),
            ("dissect_gemini", Format::Gemini),
        ] {
            for e in std::fs::read_dir(format!("{corpus}/{dir}")).unwrap() {
                let data = std::fs::read(e.unwrap().path()).unwrap();
                // Cuts in the request body too (then it all reads as the response).
                for end in 1..=data.len() {
                    let mut cut = data[..end].to_vec();
                    for flags in [0x30, 0x35, 0x12] {
                        cut[0] = flags;
                        check_bytes(format, &cut).unwrap();
                    }
                }
            }
        }
    }

    #[test]
    fn a_broken_bound_is_reported() {
        assert!(at_most("x", "abcd", 3).is_err());
        assert!(at_most("x", "ééé", 3).is_ok());
    }
}
