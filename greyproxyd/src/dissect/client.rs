//! Which agent program made a call, which session it belongs to and which of the agent's
//! threads (main conversation, subagent, side call) it is. Headers are the strongest sign
//! (each client sends its own User-Agent or attribution headers); the body only helps where
//! headers say nothing. Header names are compared case-insensitively: recorded maps keep the
//! names as canonicalised by the capture, clients spell them as they like.

use greyproxy_protocol::HeaderMapJson;
use greyproxy_protocol::llm::{LlmClient, LlmThread};

use super::model::{Decoder, Dissected};

/// A Claude Code system prompt longer than this is its main thread.
const CLAUDE_MAIN_SYSTEM: usize = 10_000;
/// A Claude Code system prompt longer than this (and not main) is a subagent's.
const CLAUDE_SUBAGENT_SYSTEM: usize = 1_000;

/// The values of a header, whatever the case of its recorded name.
fn header<'a>(headers: Option<&'a HeaderMapJson>, name: &str) -> impl Iterator<Item = &'a str> {
    headers
        .into_iter()
        .flatten()
        .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
        .flat_map(|(_, v)| v.iter().map(String::as_str))
}

/// Whether any value of a header satisfies `f` (given the value in lower case).
fn any(headers: Option<&HeaderMapJson>, name: &str, f: impl Fn(&str) -> bool) -> bool {
    header(headers, name).any(|v| f(&v.to_ascii_lowercase()))
}

/// Recognises the agent program from the request headers, then from the body.
pub(crate) fn detect_client(headers: Option<&HeaderMapJson>, d: &Dissected) -> LlmClient {
    let ua = |needle: &str| any(headers, "user-agent", |v| v.contains(needle));
    if ua("claude-cli/") || ua("claude-code/") {
        return LlmClient::ClaudeCode;
    }
    if any(headers, "originator", |v| v.starts_with("codex")) || ua("codex_") {
        return LlmClient::Codex;
    }
    if ua("opencode/")
        || any(headers, "x-title", |v| v.trim() == "opencode")
        || any(headers, "http-referer", |v| v.contains("opencode.ai"))
    {
        return LlmClient::Opencode;
    }
    if any(headers, "x-title", |v| v.trim() == "aider")
        || any(headers, "http-referer", |v| v.contains("aider.chat"))
        || (ua("litellm/") && aider_prompt(d))
    {
        return LlmClient::Aider;
    }
    if ua("geminicli/") {
        return LlmClient::GeminiCli;
    }
    if let Some(hint) = d.request.client_hint {
        return hint;
    }
    // Body fingerprints: system prompts that name their program.
    if d.decoder == Decoder::Anthropic && d.request.system_preview.contains("You are Claude Code") {
        return LlmClient::ClaudeCode;
    }
    if aider_prompt(d) {
        return LlmClient::Aider;
    }
    LlmClient::Other
}

/// aider's system prompts all open with this sentence.
fn aider_prompt(d: &Dissected) -> bool {
    d.request
        .system_preview
        .contains("Act as an expert software developer")
}

/// The session the wire names: the body's (Claude Code `metadata.user_id`,
/// `prompt_cache_key`, codex `client_metadata`), else a session header.
pub(crate) fn wire_session(headers: Option<&HeaderMapJson>, d: &Dissected) -> Option<String> {
    if let Some(s) = &d.request.session_id {
        return Some(s.clone());
    }
    ["x-claude-code-session-id", "session-id", "session_id"]
        .iter()
        .find_map(|name| header(headers, name).map(str::trim).find(|v| !v.is_empty()))
        .map(str::to_owned)
}

/// Which thread of its client a call is, from the shape of the request.
pub(crate) fn classify_thread(client: LlmClient, d: &Dissected) -> LlmThread {
    let req = &d.request;
    let has = |names: &[&str]| {
        req.tools
            .iter()
            .any(|t| names.iter().any(|n| t.eq_ignore_ascii_case(n)))
    };
    match client {
        // The main thread's system prompt is long (the whole Claude Code manual), a
        // subagent's is shorter, side calls (titles, summaries) have almost none. Tool sets
        // do not tell them apart: with deferred tools the main thread may offer only
        // `ToolSearch` (fixture 383).
        LlmClient::ClaudeCode => {
            if req.system_len > CLAUDE_MAIN_SYSTEM && !req.tools.is_empty() {
                LlmThread::Main
            } else if req.system_len > CLAUDE_SUBAGENT_SYSTEM {
                LlmThread::Subagent
            } else {
                LlmThread::Utility
            }
        }
        LlmClient::Codex => {
            if !req.generate || req.tools.is_empty() {
                LlmThread::Utility
            } else {
                req.thread_hint.unwrap_or(LlmThread::Main)
            }
        }
        LlmClient::Opencode => {
            if req.tools.is_empty() {
                LlmThread::Utility
            } else if has(&["task", "question", "todowrite"]) {
                LlmThread::Main
            } else {
                LlmThread::Subagent
            }
        }
        LlmClient::Aider => LlmThread::Main,
        LlmClient::GeminiCli => {
            let lite = req
                .model
                .as_deref()
                .is_some_and(|m| m.contains("flash-lite"));
            if lite || req.tools.is_empty() {
                LlmThread::Utility
            } else {
                LlmThread::Main
            }
        }
        // Other (and clients this code does not know yet): one thread.
        _ => LlmThread::Main,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::dissect::model::{RequestFacts, ResponseFacts};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMapJson {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), vec![(*v).to_owned()]))
            .collect()
    }

    fn call(decoder: Decoder, request: RequestFacts) -> Dissected {
        Dissected {
            decoder,
            provider: "openai".to_owned(),
            operation: "chat",
            request,
            response: ResponseFacts::default(),
        }
    }

    fn req(system_len: usize, tools: &[&str]) -> RequestFacts {
        RequestFacts {
            generate: true,
            system_len,
            tools: tools.iter().map(|t| (*t).to_owned()).collect(),
            ..RequestFacts::default()
        }
    }

    #[test]
    fn headers_name_the_client_whatever_their_case() {
        let d = call(Decoder::OpenAiChat, req(0, &[]));
        let cases = [
            (
                vec![("user-agent", "claude-cli/2.1.74 (external, cli)")],
                LlmClient::ClaudeCode,
            ),
            (
                vec![("USER-AGENT", "claude-code/2.1.0")],
                LlmClient::ClaudeCode,
            ),
            (vec![("Originator", "codex_exec")], LlmClient::Codex),
            (vec![("originator", "codex_cli_rs")], LlmClient::Codex),
            (
                vec![("User-Agent", "codex_exec/0.169.0 (Linux)")],
                LlmClient::Codex,
            ),
            (
                vec![("User-Agent", "ai-sdk/openrouter/1.5.4, opencode/1.2.6")],
                LlmClient::Opencode,
            ),
            (vec![("X-Title", "opencode")], LlmClient::Opencode),
            (
                vec![("http-referer", "https://opencode.ai/")],
                LlmClient::Opencode,
            ),
            (
                vec![("X-Title", "Aider"), ("User-Agent", "litellm/1.68.1")],
                LlmClient::Aider,
            ),
            (
                vec![("Http-Referer", "https://aider.chat")],
                LlmClient::Aider,
            ),
            (
                vec![(
                    "User-Agent",
                    "GeminiCLI/0.36.0/gemini-3.1-pro-preview (linux)",
                )],
                LlmClient::GeminiCli,
            ),
            (vec![("User-Agent", "litellm/1.68.1")], LlmClient::Other),
            (vec![("User-Agent", "curl/8.0")], LlmClient::Other),
        ];
        for (h, want) in cases {
            assert_eq!(detect_client(Some(&headers(&h)), &d), want, "{h:?}");
        }
        assert_eq!(detect_client(None, &d), LlmClient::Other);
    }

    #[test]
    fn the_body_speaks_when_headers_do_not() {
        let mut r = req(0, &[]);
        r.client_hint = Some(LlmClient::Codex);
        assert_eq!(
            detect_client(None, &call(Decoder::OpenAiWs, r)),
            LlmClient::Codex
        );

        let mut r = req(20_000, &["Bash"]);
        r.system_preview = "You are Claude Code, Anthropic's official CLI for Claude.".to_owned();
        assert_eq!(
            detect_client(None, &call(Decoder::Anthropic, r)),
            LlmClient::ClaudeCode
        );

        // aider's prompt behind litellm's own User-Agent, and without any header.
        let mut r = req(5312, &[]);
        r.system_preview =
            "Act as an expert software developer.\nAlways use best practices".to_owned();
        let d = call(Decoder::OpenAiChat, r);
        let litellm = headers(&[("User-Agent", "litellm/1.68.1")]);
        assert_eq!(detect_client(Some(&litellm), &d), LlmClient::Aider);
        assert_eq!(detect_client(None, &d), LlmClient::Aider);
    }

    #[test]
    fn session_from_the_body_then_headers() {
        let mut r = req(0, &[]);
        let d = call(Decoder::Anthropic, r.clone());
        let h = headers(&[("X-Claude-Code-Session-Id", "cc-1"), ("Session_id", "s-2")]);
        assert_eq!(wire_session(Some(&h), &d).as_deref(), Some("cc-1"));
        let h = headers(&[("Session_id", "s-2")]);
        assert_eq!(wire_session(Some(&h), &d).as_deref(), Some("s-2"));
        let h = headers(&[("session-id", " "), ("Session-Id", "s-3")]);
        assert_eq!(wire_session(Some(&h), &d).as_deref(), Some("s-3"));
        assert_eq!(wire_session(None, &d), None);
        r.session_id = Some("body".to_owned());
        let d = call(Decoder::Anthropic, r);
        assert_eq!(wire_session(Some(&h), &d).as_deref(), Some("body"));
    }

    #[test]
    fn threads_per_client() {
        use LlmClient::*;
        use LlmThread::*;
        let thread =
            |client, r: RequestFacts| classify_thread(client, &call(Decoder::OpenAiChat, r));
        // Claude Code: by system prompt length.
        assert_eq!(thread(ClaudeCode, req(15_739, &["ToolSearch"])), Main);
        assert_eq!(thread(ClaudeCode, req(4_000, &["Read", "Grep"])), Subagent);
        assert_eq!(thread(ClaudeCode, req(300, &[])), Utility);
        // codex: warm-ups and tool-less calls are side calls; the body may name a subagent.
        let mut warm = req(9_000, &["shell"]);
        warm.generate = false;
        assert_eq!(thread(Codex, warm), Utility);
        assert_eq!(thread(Codex, req(9_000, &[])), Utility);
        assert_eq!(thread(Codex, req(9_000, &["shell"])), Main);
        let mut sub = req(9_000, &["shell"]);
        sub.thread_hint = Some(Subagent);
        assert_eq!(thread(Codex, sub), Subagent);
        // opencode: the main agent has task / question / todowrite.
        assert_eq!(thread(Opencode, req(8_000, &[])), Utility);
        assert_eq!(thread(Opencode, req(8_000, &["bash", "TodoWrite"])), Main);
        assert_eq!(thread(Opencode, req(8_000, &["bash", "read"])), Subagent);
        assert_eq!(thread(Aider, req(5_000, &[])), Main);
        // gemini-cli: flash-lite side calls (the complexity scorer) and tool-less calls.
        let mut lite = req(2_000, &["read_file"]);
        lite.model = Some("gemini-2.5-flash-lite".to_owned());
        assert_eq!(thread(GeminiCli, lite), Utility);
        assert_eq!(thread(GeminiCli, req(30_000, &[])), Utility);
        assert_eq!(thread(GeminiCli, req(30_000, &["read_file"])), Main);
        assert_eq!(thread(Other, req(0, &[])), Main);
    }
}
