//! Golden tests: every captured Anthropic, Chat Completions and Gemini transaction in
//! `greyproxyd/tests/fixtures/llm/` dissected, with the values a user sees pinned (models,
//! sessions, clients and threads, stop reasons, tool calls and their summaries, message counts,
//! usage to the token, time-to-first-token offsets).
#![allow(clippy::unwrap_used)]

use greyproxy_protocol::Transaction;
use greyproxy_protocol::llm::{LlmClient, LlmThread, Usage};
use serde_json::Value;

use super::model::{Block, Decoder, Dissected, Role};
use super::{anthropic, chat, client, gemini};

use super::fixtures::load;

/// A dissected fixture with what the client layer says about it.
struct Seen {
    t: Transaction,
    d: Dissected,
    client: LlmClient,
    thread: LlmThread,
    session: Option<String>,
}

fn see(name: &str, dissect: fn(&Transaction) -> Dissected) -> Seen {
    let t = load(name);
    let d = dissect(&t);
    let headers = t.request_headers.as_ref();
    let client = client::detect_client(headers, &d);
    Seen {
        thread: client::classify_thread(client, &d),
        session: client::wire_session(headers, &d),
        client,
        d,
        t,
    }
}

fn usage(input: u64, read: u64, write: u64, output: u64, reasoning: u64) -> Usage {
    Usage {
        input_tokens: input,
        cache_read_tokens: read,
        cache_write_tokens: write,
        output_tokens: output,
        reasoning_tokens: reasoning,
        ..Usage::default()
    }
}

/// Anthropic usage with the 5-minute / 1-hour split the fixtures carry.
fn usage_5m(input: u64, read: u64, write: u64, output: u64) -> Usage {
    Usage {
        cache_write_5m_tokens: Some(write),
        cache_write_1h_tokens: Some(0),
        ..usage(input, read, write, output, 0)
    }
}

/// (name, summary) of each response tool call.
fn calls(d: &Dissected) -> Vec<(&str, &str)> {
    d.response
        .tool_calls
        .iter()
        .map(|c| (c.info.name.as_str(), c.info.summary.as_str()))
        .collect()
}

/// The byte offset of the first event with content lands just past the event holding
/// `first` (and before the next one).
fn assert_first_content(s: &Seen, first: &str) {
    let body = s.t.response_body.as_deref().unwrap();
    let end = s.d.response.first_content_end.unwrap();
    assert!(body[..end].contains(first), "{end}");
    let before = body[..end].trim_end_matches(['\r', '\n']);
    assert!(before.ends_with('}'), "{before:?}");
    assert!(
        body[end..]
            .trim_start_matches(['\r', '\n'])
            .starts_with("data:")
            || body[end..].starts_with("event:")
    );
}

const SESSION: &str = "33a9d683-ef38-4571-92b9-1ae2bf7a6be3";

/// What all five Claude Code requests share: one session, one model, Claude Code's main
/// thread (15 739-character system prompt), a complete stream.
fn claude_code(name: &str) -> Seen {
    let s = see(name, anthropic::dissect);
    let (req, resp) = (&s.d.request, &s.d.response);
    assert_eq!(s.d.decoder, Decoder::Anthropic);
    assert_eq!(
        (s.d.provider.as_str(), s.d.operation),
        ("anthropic", "chat")
    );
    assert_eq!(req.model.as_deref(), Some("claude-opus-4-6"));
    assert_eq!(resp.model.as_deref(), Some("claude-opus-4-6"));
    assert_eq!(req.session_id.as_deref(), Some(SESSION));
    assert_eq!(s.session.as_deref(), Some(SESSION));
    assert!(req.stream && resp.streamed && resp.complete, "{name}");
    assert_eq!((req.error.as_deref(), resp.error.as_deref()), (None, None));
    assert_eq!(req.system_len, 15_739);
    assert!(req.system_preview.starts_with("x-anthropic-billing-header"));
    assert_eq!(req.system_preview.chars().count(), 2000);
    assert_eq!(s.client, LlmClient::ClaudeCode);
    assert_eq!(s.thread, LlmThread::Main);
    assert_eq!(req.messages[0].role, Role::User);
    s
}

#[test]
fn anthropic_383_first_call_writes_the_cache() {
    let s = claude_code("383");
    let (req, resp) = (&s.d.request, &s.d.response);
    assert_eq!(req.tools, ["ToolSearch"]);
    assert_eq!(req.messages.len(), 2);
    assert_eq!(req.messages[1].blocks.len(), 3);
    assert_eq!(resp.id.as_deref(), Some("msg_01MDL19T9XYaMMjDG2B8nJMP"));
    assert_eq!(resp.stop_reason.as_deref(), Some("tool_use"));
    assert_eq!(calls(&s.d), [("ToolSearch", "select:Agent,WebSearch,Read")]);
    let call = &resp.tool_calls[0].info;
    assert_eq!(call.id, "toolu_01GFhYb4FcmMZVsVegGc3hMc");
    // Accumulated from input_json_delta events, parsed at content_block_stop.
    assert_eq!(
        serde_json::from_str::<Value>(&call.input_preview).unwrap(),
        serde_json::json!({"query": "select:Agent,WebSearch,Read", "max_results": 3})
    );
    assert!(resp.text.is_empty());
    assert!(
        resp.thinking
            .starts_with("The user wants me to:\n1. Have a subagent")
    );
    // message_start {input 3, cache_creation 5333, cache_read 0, output 14}; the delta's
    // cumulative output 148 wins.
    assert_eq!(resp.usage, Some(usage_5m(5336, 0, 5333, 148)));
    let raw = resp.usage_raw.as_ref().unwrap();
    assert_eq!(raw["output_tokens"], 148);
    assert_eq!(raw["service_tier"], "standard");
    assert_first_content(&s, "thinking_delta");
}

#[test]
fn anthropic_384_streams_two_agent_calls_in_parallel() {
    let s = claude_code("384");
    let (req, resp) = (&s.d.request, &s.d.response);
    assert_eq!(req.tools, ["Agent", "Read", "WebSearch", "ToolSearch"]);
    assert_eq!(req.messages.len(), 4);
    let assistant = &req.messages[2];
    assert_eq!(assistant.role, Role::Assistant);
    assert!(matches!(&assistant.blocks[0], Block::Thinking(t) if t.len() == 183));
    assert!(
        matches!(&assistant.blocks[1], Block::ToolUse(u) if u.info.summary == "select:Agent,WebSearch,Read")
    );
    // A tool_result made of tool_reference parts has no text.
    assert!(matches!(&req.messages[3].blocks[0], Block::ToolResult(r)
        if r.tool_use_id == "toolu_01GFhYb4FcmMZVsVegGc3hMc" && r.preview.is_empty() && !r.is_error));
    assert_eq!(resp.stop_reason.as_deref(), Some("tool_use"));
    assert_eq!(
        calls(&s.d),
        [
            ("Agent", "Explore greyproxy project"),
            ("Agent", "Research greyhaven.co website")
        ]
    );
    let ids: Vec<_> = resp.tool_calls.iter().map(|c| c.info.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "toolu_017YJR1dqEQoEdSAiHGi2pxb",
            "toolu_01JZ2kum1iJRy5LDXHTNoqC2"
        ]
    );
    let prompt = resp.tool_calls[0].spawn_prompt.as_deref().unwrap();
    assert!(prompt.starts_with("Thoroughly explore the greyproxy project"));
    assert!(prompt.ends_with("and any documentation files."));
    assert!(
        resp.tool_calls
            .iter()
            .all(|c| c.info.input_preview.ends_with("...")
                && c.info.input_preview.chars().count() == 303)
    );
    assert_eq!(
        resp.text,
        "I'll launch both research tasks in parallel, then link the findings together."
    );
    assert_eq!(resp.usage, Some(usage_5m(8598, 5333, 3262, 510)));
    assert_first_content(&s, "thinking_delta");
}

#[test]
fn anthropic_427_reads_the_cache_and_carries_agent_results() {
    let s = claude_code("427");
    let (req, resp) = (&s.d.request, &s.d.response);
    assert_eq!(req.messages.len(), 6);
    let spawned: Vec<_> = req.messages[4]
        .blocks
        .iter()
        .filter_map(|b| match b {
            Block::ToolUse(u) => Some(u.info.summary.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        spawned,
        ["Explore greyproxy project", "Research greyhaven.co website"]
    );
    let results: Vec<_> = req.messages[5]
        .blocks
        .iter()
        .filter_map(|b| match b {
            Block::ToolResult(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(results.len(), 2);
    assert_eq!(results[1].tool_use_id, "toolu_01JZ2kum1iJRy5LDXHTNoqC2");
    assert!(
        results[0]
            .preview
            .starts_with("Perfect! Now I have a comprehensive")
    );
    assert_eq!(results[0].preview.chars().count(), 503);
    assert_eq!(resp.stop_reason.as_deref(), Some("end_turn"));
    assert!(resp.tool_calls.is_empty());
    assert_eq!(resp.text.chars().count(), 2333);
    assert!(
        resp.text
            .starts_with("Both agents are done. Here's the linked summary:")
    );
    assert_eq!(resp.thinking, "Now let me link both findings together.");
    assert_eq!(resp.usage, Some(usage_5m(1 + 8595 + 4338, 8595, 4338, 590)));
}

#[test]
fn anthropic_428_and_517_answer_with_text() {
    let s = claude_code("428");
    let resp = &s.d.response;
    assert_eq!(s.d.request.messages.len(), 8);
    assert_eq!(resp.stop_reason.as_deref(), Some("end_turn"));
    assert_eq!(
        resp.text,
        "can you actually run greyproxy and test the mitm proxy with a curl request?"
    );
    assert!(resp.thinking.is_empty());
    assert_eq!(
        resp.usage,
        Some(usage_5m(295 + 12933 + 588, 12933, 588, 22))
    );
    assert_first_content(&s, "text_delta");

    let s = claude_code("517");
    let resp = &s.d.response;
    assert_eq!(s.d.request.messages.len(), 8);
    assert!(matches!(&s.d.request.messages[7].blocks[..], [Block::Text(t)] if t.len() == 36));
    assert_eq!(resp.stop_reason.as_deref(), Some("end_turn"));
    assert_eq!(resp.text.chars().count(), 845);
    assert_eq!(resp.thinking.chars().count(), 258);
    assert_eq!(resp.usage, Some(usage_5m(13536, 0, 13533, 321)));
}

#[test]
fn chat_aider_openrouter_json_padded_with_whitespace() {
    let s = see("aider_openrouter_2459", chat::dissect);
    let (req, resp) = (&s.d.request, &s.d.response);
    assert_eq!(
        (s.d.decoder, s.d.provider.as_str()),
        (Decoder::OpenAiChat, "openrouter")
    );
    assert_eq!(req.model.as_deref(), Some("anthropic/claude-sonnet-4"));
    assert_eq!(
        resp.model.as_deref(),
        Some("anthropic/claude-4-sonnet-20250522")
    );
    assert_eq!(
        resp.id.as_deref(),
        Some("gen-1775171050-NJP5StPXRG0Ys0dqImSr")
    );
    assert!(!req.stream && !resp.streamed && resp.complete);
    assert_eq!(
        (req.session_id.as_deref(), s.session.as_deref()),
        (None, None)
    );
    assert!(req.tools.is_empty());
    // The system message stays in the history and is the system prompt.
    assert_eq!(req.messages.len(), 10);
    assert_eq!(req.messages[0].role, Role::System);
    assert_eq!(req.system_len, 5312);
    assert!(
        req.system_preview
            .starts_with("Act as an expert software developer.")
    );
    let roles: Vec<_> = req.messages[1..].iter().map(|m| m.role).collect();
    assert_eq!(roles, [Role::User, Role::Assistant].repeat(5)[..9]);
    assert_eq!(resp.text, "Hello world!");
    assert_eq!(resp.stop_reason.as_deref(), Some("stop"));
    assert_eq!(resp.usage, Some(usage(2619, 0, 0, 6, 0)));
    assert_eq!(resp.provider_cost_usd, Some(0.007947));
    assert_eq!(resp.first_content_end, None);
    assert_eq!((s.client, s.thread), (LlmClient::Aider, LlmThread::Main));
}

#[test]
fn chat_opencode_openrouter_stream_opens_with_a_comment() {
    let s = see("opencode_openrouter_2469", chat::dissect);
    let (req, resp) = (&s.d.request, &s.d.response);
    assert_eq!(s.d.provider, "openrouter");
    assert_eq!(req.model.as_deref(), Some("openai/gpt-5.4"));
    assert_eq!(resp.model.as_deref(), Some("openai/gpt-5.4-20260305"));
    assert_eq!(
        req.session_id.as_deref(),
        Some("ses_2af2ef724ffeUHjFHEhGOFhyXe")
    );
    assert_eq!(s.session, req.session_id);
    assert_eq!(req.tools.len(), 10);
    assert_eq!(req.tools[..3], ["question", "bash", "read"]);
    assert_eq!(req.messages.len(), 2);
    assert_eq!(req.system_len, 8753);
    assert!(req.stream && resp.streamed && resp.complete && resp.error.is_none());
    assert_eq!(resp.text, "Hey! What can I help you build or fix?");
    assert_eq!(resp.stop_reason.as_deref(), Some("stop"));
    assert!(resp.tool_calls.is_empty());
    // Usage rides on the last chunk, which still has a choice.
    assert_eq!(resp.usage, Some(usage(9659, 0, 0, 15, 0)));
    assert_eq!(resp.provider_cost_usd, Some(0.0243725));
    assert_first_content(&s, "\"content\":\"Hey\"");
    assert_eq!((s.client, s.thread), (LlmClient::Opencode, LlmThread::Main));
}

#[test]
fn chat_opencode_litellm_reasoning_and_usage_with_choices() {
    let s = see("opencode_litellm_302", chat::dissect);
    let (req, resp) = (&s.d.request, &s.d.response);
    assert_eq!(s.d.provider, "openai");
    assert_eq!(req.model.as_deref(), Some("Minimax-M2.5-noiac"));
    assert_eq!(resp.model.as_deref(), Some("lukealonso/Minimax-M2.5"));
    assert_eq!(resp.id.as_deref(), Some("17639b21d9874ecb97875360314d2376"));
    assert_eq!(s.session, None);
    assert_eq!(req.tools.len(), 11);
    assert_eq!(req.messages.len(), 2);
    assert_eq!(req.system_len, 11_079);
    assert!(resp.complete && resp.error.is_none());
    assert_eq!(resp.text, "\n\nhello world");
    assert_eq!(
        resp.thinking,
        "The user is asking me to say \"hello world\" - a simple greeting. This is a \
         straightforward request that doesn't require any tools.\n"
    );
    assert_eq!(resp.stop_reason.as_deref(), Some("stop"));
    assert_eq!(resp.usage, Some(usage(11_710, 0, 0, 32, 28)));
    assert_eq!(resp.provider_cost_usd, None);
    assert_first_content(&s, "reasoning_content\":\"The\"");
    assert_eq!((s.client, s.thread), (LlmClient::Opencode, LlmThread::Main));
}

#[test]
fn gemini_main_stream_takes_the_last_usage() {
    let s = see("gemini_main_2571", gemini::dissect);
    let (req, resp) = (&s.d.request, &s.d.response);
    assert_eq!(s.d.decoder, Decoder::GoogleAi);
    assert_eq!(
        (s.d.provider.as_str(), s.d.operation),
        ("gcp.gemini", "generate_content")
    );
    assert_eq!(req.model.as_deref(), Some("gemini-3-flash-preview"));
    assert_eq!(resp.model.as_deref(), Some("gemini-3-flash-preview"));
    assert_eq!(resp.id.as_deref(), Some("ARLPaYXNOYDFqtsP08XK2QQ"));
    assert!(req.stream && resp.streamed && resp.complete && resp.error.is_none());
    assert_eq!(req.system_len, 34_159);
    assert_eq!(req.tools.len(), 26);
    assert_eq!(
        req.tools[..3],
        ["list_directory", "read_file", "grep_search"]
    );
    assert_eq!(req.messages.len(), 2);
    assert!(req.messages.iter().all(|m| m.role == Role::User));
    assert_eq!(
        resp.text,
        "Hello! I'm Gemini CLI, your autonomous software engineering assistant. I see we're \
         working in the `test-matrix` directory of the `greyproxy` project.\n\nHow can I help \
         you with the `run.sh` script or other tasks in this workspace today?"
    );
    assert_eq!(resp.stop_reason.as_deref(), Some("STOP"));
    // The first chunk says 11934 + 10 + 111 = 12055; the counts are cumulative and the last
    // chunk's are 11934 + 58 + 111 = 12103.
    assert_eq!(resp.usage, Some(usage(11_934, 0, 0, 58 + 111, 111)));
    assert_eq!(resp.usage_raw.as_ref().unwrap()["totalTokenCount"], 12_103);
    assert_first_content(&s, "Hello! I'm Gemini CLI");
    assert_eq!(
        (s.client, s.thread),
        (LlmClient::GeminiCli, LlmThread::Main)
    );
    assert_eq!(s.session, None);
}

#[test]
fn gemini_scorer_json_is_a_utility_call() {
    let s = see("gemini_scorer_2570", gemini::dissect);
    let (req, resp) = (&s.d.request, &s.d.response);
    assert_eq!(req.model.as_deref(), Some("gemini-2.5-flash-lite"));
    assert_eq!(resp.model.as_deref(), Some("gemini-2.5-flash-lite"));
    assert_eq!(resp.id.as_deref(), Some("_RHPac-MNNbzqtsPq7-8uQk"));
    assert!(!req.stream && !resp.streamed && resp.complete);
    assert!(req.tools.is_empty());
    assert_eq!(req.messages.len(), 2);
    assert_eq!(req.system_len, 2175);
    let answer: Value = serde_json::from_str(&resp.text).unwrap();
    assert_eq!(answer["complexity_score"], 1);
    assert_eq!(resp.stop_reason.as_deref(), Some("STOP"));
    assert_eq!(resp.usage, Some(usage(770, 0, 0, 34 + 103, 103)));
    assert_eq!(resp.first_content_end, None);
    assert_eq!(
        (s.client, s.thread),
        (LlmClient::GeminiCli, LlmThread::Utility)
    );
}
