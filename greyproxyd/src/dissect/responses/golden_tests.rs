//! Golden tests on real opencode traffic to `POST /v1/responses` (SSE responses):
//! `greyproxyd/tests/fixtures/llm/openai_*.json`. Every expected value is read off the
//! fixture.

#![allow(clippy::unwrap_used)]

use greyproxy_protocol::llm::Usage;

use super::super::model::{Block, Decoder, Dissected, Role};
use super::dissect;

use crate::dissect::fixtures::load as fixture;

fn tool_names(d: &Dissected) -> Vec<(&str, &str, &str)> {
    d.response
        .tool_calls
        .iter()
        .map(|t| {
            (
                t.info.id.as_str(),
                t.info.name.as_str(),
                t.info.summary.as_str(),
            )
        })
        .collect()
}

#[test]
fn openai_1163_title_generation() {
    let d = dissect(&fixture("openai_1163"));
    assert_eq!(d.decoder, Decoder::OpenAiResponses);
    assert_eq!(d.provider, "openai");
    assert_eq!(d.operation, "chat");

    let req = &d.request;
    assert_eq!(req.model.as_deref(), Some("gpt-5-nano"));
    assert!(req.stream);
    assert!(req.generate);
    assert_eq!(req.session_id, None);
    assert_eq!(req.thread_id, None);
    assert_eq!(req.client_hint, None);
    assert!(req.tools.is_empty());
    assert_eq!(req.error, None);
    assert_eq!(req.system_len, 824);
    assert!(
        req.system_preview
            .starts_with("You are a title generator. You output ONLY a thread title.")
    );
    let roles: Vec<Role> = req.messages.iter().map(|m| m.role).collect();
    assert_eq!(roles, [Role::System, Role::User, Role::User]);
    assert_eq!(
        req.messages[1].blocks,
        [Block::Text(
            "Generate a title for this conversation:\n".to_owned()
        )]
    );

    let resp = &d.response;
    assert_eq!(resp.model.as_deref(), Some("gpt-5-nano-2025-08-07"));
    assert_eq!(
        resp.id.as_deref(),
        Some("resp_03f6efb31b6f0bf90169bb1074517481a3ad10315cbc2bc9bf")
    );
    assert_eq!(
        resp.text,
        "Subagent search: Greyhaven vs Monadical relations exploration"
    );
    assert_eq!(resp.thinking, "");
    assert!(resp.tool_calls.is_empty());
    assert_eq!(resp.stop_reason.as_deref(), Some("completed"));
    assert_eq!(
        resp.usage,
        Some(Usage {
            input_tokens: 557,
            cache_read_tokens: 0,
            output_tokens: 29,
            reasoning_tokens: 0,
            ..Usage::default()
        })
    );
    assert_eq!(resp.usage_raw.as_ref().unwrap()["total_tokens"], 586);
    // Just past the first `response.output_text.delta` event.
    assert_eq!(resp.first_content_end, Some(3090));
    assert!(resp.streamed);
    assert!(resp.complete);
    assert_eq!(resp.error, None);
}

#[test]
fn openai_1166_parallel_tool_calls_keep_their_own_arguments() {
    let d = dissect(&fixture("openai_1166"));
    let req = &d.request;
    assert_eq!(req.model.as_deref(), Some("gpt-5.1"));
    assert_eq!(
        req.session_id.as_deref(),
        Some("ses_2fd479e75ffepAe8R23CkidGZC")
    );
    assert_eq!(
        req.tools,
        [
            "bash",
            "read",
            "glob",
            "grep",
            "webfetch",
            "skill",
            "apply_patch"
        ]
    );
    assert!(req.system_preview.starts_with("You are OpenCode"));
    assert_eq!(req.messages.len(), 2);

    let resp = &d.response;
    assert_eq!(resp.model.as_deref(), Some("gpt-5.1-2025-11-13"));
    // Three parallel calls: each keeps its own arguments (greyproxy gave the first call the
    // arguments of every later one).
    assert_eq!(
        tool_names(&d),
        [
            (
                "call_evip66KMkwxzRw2BmdanlpX3",
                "webfetch",
                "https://monadical.com"
            ),
            (
                "call_JMw5hLEycCbjvFA9j0GCzXoW",
                "webfetch",
                "https://greyhaven.ai"
            ),
            (
                "call_MvG9uewldptnlkgqzST9kkkY",
                "webfetch",
                "https://greyhaven.monadical.com"
            ),
        ]
    );
    assert_eq!(
        resp.tool_calls[2].info.input_preview,
        r#"{"format":"markdown","timeout":60,"url":"https://greyhaven.monadical.com"}"#
    );
    assert_eq!(resp.text, "");
    assert_eq!(resp.stop_reason.as_deref(), Some("tool_calls"));
    assert_eq!(
        resp.usage,
        Some(Usage {
            input_tokens: 5381,
            cache_read_tokens: 0,
            output_tokens: 115,
            reasoning_tokens: 11,
            ..Usage::default()
        })
    );
    // Just past the first `response.output_item.added` of a function call.
    assert_eq!(resp.first_content_end, Some(37809));
    assert!(resp.complete);
    assert_eq!(resp.error, None);
}

#[test]
fn openai_1170_history_with_a_tool_round_trip() {
    let d = dissect(&fixture("openai_1170"));
    let req = &d.request;
    assert_eq!(req.model.as_deref(), Some("gpt-5.1"));
    assert_eq!(
        req.session_id.as_deref(),
        Some("ses_2fd479e84ffeWtEMMxa6aH6Smi")
    );
    assert_eq!(req.tools.len(), 7);
    let roles: Vec<Role> = req.messages.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        [Role::System, Role::User, Role::Assistant, Role::User]
    );
    // The encrypted reasoning item leaves nothing; the function call joins the assistant.
    let [Block::ToolUse(call)] = req.messages[2].blocks.as_slice() else {
        panic!("{:?}", req.messages[2]);
    };
    assert_eq!(call.info.id, "call_XNYBVYecjtpEPpG6mogKiZL7");
    assert_eq!(call.info.name, "webfetch");
    assert_eq!(
        call.info.summary,
        "https://www.google.com/search?q=Greyhaven+software+security+developer+tools+Mona..."
    );
    let [Block::ToolResult(result)] = req.messages[3].blocks.as_slice() else {
        panic!("{:?}", req.messages[3]);
    };
    assert_eq!(result.tool_use_id, "call_XNYBVYecjtpEPpG6mogKiZL7");
    assert!(
        result
            .preview
            .starts_with("Google Search\n\nHaz clic [aquí]")
    );
    assert!(
        result
            .preview
            .ends_with("(https://support.google.com/websearch).")
    );
    assert_eq!(result.preview.chars().count(), 390);
    assert!(!result.is_error);
    assert_eq!(result.child_session, None);

    let resp = &d.response;
    // The arguments came in 35 deltas; the accumulated text is the whole JSON.
    assert_eq!(
        tool_names(&d),
        [(
            "call_cTm2KHlU6j4cXqGE4L1e0Fp7",
            "webfetch",
            "https://duckduckgo.com/html/?q=Greyhaven+software+security+developer+tools+Monad..."
        )]
    );
    assert_eq!(
        resp.tool_calls[0].info.input_preview,
        r#"{"format":"html","timeout":60,"url":"https://duckduckgo.com/html/?q=Greyhaven+software+security+developer+tools+Monadical"}"#
    );
    assert_eq!(resp.stop_reason.as_deref(), Some("tool_calls"));
    assert_eq!(
        resp.usage,
        Some(Usage {
            input_tokens: 5585,
            cache_read_tokens: 0,
            output_tokens: 74,
            reasoning_tokens: 24,
            ..Usage::default()
        })
    );
    assert_eq!(
        resp.id.as_deref(),
        Some("resp_06900299c02b8a390169bb109cac3881a29d765492b6575ce5")
    );
    assert!(resp.complete);
}

#[test]
fn openai_1166_cut_at_the_capture_cap() {
    let mut t = fixture("openai_1166");
    let body = t.response_body.take().unwrap();
    // Cut inside the last `response.function_call_arguments.delta`.
    let cut = body.find("greyhaven.monadical.com").unwrap();
    t.response_body = Some(body[..cut].to_owned());
    t.response_body_truncated = true;
    let d = dissect(&t);
    let resp = &d.response;
    assert!(!resp.complete);
    assert_eq!(
        resp.error.as_deref(),
        Some("response body cut at the capture cap")
    );
    assert_eq!(resp.usage, None);
    assert_eq!(resp.stop_reason, None);
    // The calls read so far are kept; the third was announced, its arguments never came.
    let ids: Vec<&str> = resp.tool_calls.iter().map(|c| c.info.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "call_evip66KMkwxzRw2BmdanlpX3",
            "call_JMw5hLEycCbjvFA9j0GCzXoW",
            "call_MvG9uewldptnlkgqzST9kkkY"
        ]
    );
    assert_eq!(resp.tool_calls[1].info.summary, "https://greyhaven.ai");
    assert_eq!(resp.tool_calls[2].info.input_preview, "");
}
