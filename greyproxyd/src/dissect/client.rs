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
