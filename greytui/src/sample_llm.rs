//! Sample LLM objects at the samples' fixed clock ([`crate::sample::NOW`]): conversations of
//! the agents greyproxy knows, one opened conversation with every kind of step (thinking,
//! text, tool calls of each kind, a subagent link, an error result, control characters and
//! non-ASCII text in model output), its subagent, and the why of a held request. Shared by
//! the state-machine tests, the render snapshots, the documentation captures and the bench.

use greyproxy_protocol::llm::{
    Conversation, ConversationStatus, ConversationSummary, LlmClient, LlmContext, LlmThread,
    LlmTotals, SessionSource, Step, StepToolCall, ToolCallInfo, Turn, Usage,
};

use crate::app::App;
use crate::sample::demo_app;

/// The session of the main sample conversation.
pub const SESSION: &str = "33a9d683-2c1e-4f7b-9d0a-5b1f0c2e8a77";

/// The id of the main sample conversation.
pub fn main_id() -> String {
    format!("claude-code:{SESSION}")
}

/// The id of its subagent.
pub fn subagent_id() -> String {
    format!("{}/agent-1", main_id())
}

fn totals(calls: u64, input: u64, cached: u64, output: u64, micro: u64) -> LlmTotals {
    LlmTotals {
        calls,
        usage: Usage {
            input_tokens: input,
            cache_read_tokens: cached,
            cache_write_tokens: input / 20,
            output_tokens: output,
            reasoning_tokens: output / 10,
            ..Usage::default()
        },
        cost_micro_usd: micro,
        unpriced_calls: 0,
        duration_ms: calls * 2400,
    }
}

/// A conversation summary.
#[allow(clippy::too_many_arguments)]
pub fn summary(
    id: &str,
    container: &str,
    client: LlmClient,
    model: &str,
    status: ConversationStatus,
    last_activity: &str,
    turns: u32,
    totals: LlmTotals,
    title: &str,
) -> ConversationSummary {
    let session = id.split_once(':').map(|(_, s)| s).unwrap_or(id);
    ConversationSummary {
        id: id.into(),
        session_id: session.split('/').next().unwrap_or(session).into(),
        session_source: SessionSource::Wire,
        thread: LlmThread::Main,
        parent_id: None,
        parent_tool_call_id: None,
        container_name: container.into(),
        client,
        provider: match client {
            LlmClient::Codex => "openai".into(),
            LlmClient::GeminiCli => "gcp.gemini".into(),
            _ => "anthropic".into(),
        },
        models: vec![model.into()],
        status,
        started_at: "2026-11-22T09:41:07.120Z".into(),
        last_activity: last_activity.into(),
        turns,
        title: title.into(),
        totals,
        context_tokens: 82_310,
        context_window: Some(200_000),
    }
}

/// The list: a Claude Code session in progress, its subagent, a codex session, an opencode
/// session with an unpriced model, an aider session cut short; newest activity first.
pub fn summaries() -> Vec<ConversationSummary> {
    let mut sub = summary(
        &subagent_id(),
        "claude",
        LlmClient::ClaudeCode,
        "claude-haiku-4-5-20251001",
        ConversationStatus::Answered,
        "2026-11-22T09:59:41.530Z",
        1,
        totals(3, 21_904, 12_000, 1_310, 19_870),
        "Find where the build resolves npm packages",
    );
    sub.thread = LlmThread::Subagent;
    sub.parent_id = Some(main_id());
    let mut unpriced = totals(5, 40_120, 0, 2_004, 0);
    unpriced.unpriced_calls = 5;
    vec![
        summary(
            &main_id(),
            "claude",
            LlmClient::ClaudeCode,
            "claude-sonnet-4-5-20250929",
            ConversationStatus::InProgress,
            "2026-11-22T09:59:58.412Z",
            2,
            totals(12, 182_340, 150_112, 4_812, 412_345),
            "add left-pad to the build and run the tests",
        ),
        sub,
        summary(
            "codex:0199a7c2-5e1b-7d30-8c44-2f9e61b0d5aa",
            "codex",
            LlmClient::Codex,
            "gpt-5-codex",
            ConversationStatus::Answered,
            "2026-11-22T09:58:40.001Z",
            1,
            totals(4, 48_210, 30_720, 1_204, 61_005),
            "explain why the CI job fails on arm64",
        ),
        summary(
            "opencode:ses_7f3a2b91c0de",
            "opencode",
            LlmClient::Opencode,
            "mock-frontier-9-preview",
            ConversationStatus::Answered,
            "2026-11-22T09:31:02.250Z",
            2,
            unpriced,
            "rename the config loader",
        ),
        summary(
            "aider:inferred-aider-0003",
            "aider",
            LlmClient::Aider,
            "gpt-4o-2024-08-06",
            ConversationStatus::Incomplete,
            "2026-11-22T07:12:44.000Z",
            1,
            totals(2, 9_310, 0, 88, 24_155),
            "fix the flaky test",
        ),
    ]
}

fn tool(id: &str, name: &str, summary: &str, result: Option<&str>, error: bool) -> StepToolCall {
    StepToolCall {
        call: ToolCallInfo {
            id: id.into(),
            name: name.into(),
            summary: summary.into(),
            input_preview: String::new(),
        },
        result_preview: result.map(str::to_string),
        is_error: error,
        linked_conversation_id: None,
    }
}

fn step(call_id: u64, text: &str, thinking: &str, tools: Vec<StepToolCall>) -> Step {
    Step {
        call_id,
        text: text.into(),
        thinking_preview: thinking.into(),
        tool_calls: tools,
    }
}

/// The main sample conversation: turn 1 explores with a subagent, reads, greps (an error),
/// answers; turn 2 asks to install a package and is waiting on that tool call (the one held
/// by the proxy in the Pending samples).
pub fn conversation() -> Conversation {
    let mut task = tool(
        "toolu_01Explore",
        "Task",
        "Find where the build resolves npm packages",
        Some("The build resolves packages in scripts/deps.mjs via the npm registry."),
        false,
    );
    task.linked_conversation_id = Some(subagent_id());
    let turn1 = Turn {
        number: 1,
        user_prompt: "add left-pad to the build and run the tests".into(),
        steps: vec![
            step(
                51,
                "I'll look at how the build pulls its dependencies first.",
                "The user wants a new dependency. Find the build's package handling before \
                 touching anything.",
                vec![task],
            ),
            step(
                52,
                "",
                "",
                vec![
                    tool(
                        "toolu_02",
                        "Read",
                        "scripts/deps.mjs",
                        Some(
                            "import { fetch } from 'undici';\nexport const registry = 'https://registry.npmjs.org/';",
                        ),
                        false,
                    ),
                    tool(
                        "toolu_03",
                        "Grep",
                        "pattern: leftPad in src",
                        Some("rg: src: No such file or directory (os error 2)"),
                        true,
                    ),
                ],
            ),
            step(
                53,
                "Les dépendances sont résolues dans scripts/deps.mjs; \x1b[31mnothing\x1b[0m \
                 uses left-pad yet — 准备好了.",
                "",
                vec![],
            ),
        ],
        call_ids: vec![50, 51, 52, 53],
        started_at: "2026-11-22T09:41:07.120Z".into(),
        ended_at: "2026-11-22T09:59:44.010Z".into(),
    };
    let turn2 = Turn {
        number: 2,
        user_prompt: "ok, install it".into(),
        steps: vec![step(
            57,
            "Let me install it.",
            "",
            vec![tool(
                "toolu_04",
                "Bash",
                "npm install left-pad",
                None,
                false,
            )],
        )],
        call_ids: vec![57],
        started_at: "2026-11-22T09:59:55.900Z".into(),
        ended_at: "2026-11-22T09:59:58.412Z".into(),
    };
    let mut summary = summaries().remove(0);
    summary.turns = 2;
    Conversation {
        summary,
        system_prompt_preview: "You are Claude Code, Anthropic's official CLI for Claude.".into(),
        turns: vec![turn1, turn2],
        subagents: vec![subagent_id()],
    }
}

/// The subagent the main conversation's `Task` spawned.
pub fn subagent() -> Conversation {
    let summary = summaries().remove(1);
    Conversation {
        summary,
        system_prompt_preview: String::new(),
        turns: vec![Turn {
            number: 1,
            user_prompt: "Find where the build resolves npm packages".into(),
            steps: vec![
                step(
                    54,
                    "",
                    "",
                    vec![tool(
                        "toolu_11",
                        "Glob",
                        "**/*.mjs",
                        Some("scripts/deps.mjs\nscripts/build.mjs"),
                        false,
                    )],
                ),
                step(
                    55,
                    "The build resolves packages in scripts/deps.mjs via the npm registry.",
                    "",
                    vec![],
                ),
            ],
            call_ids: vec![54, 55],
            started_at: "2026-11-22T09:59:30.000Z".into(),
            ended_at: "2026-11-22T09:59:41.530Z".into(),
        }],
        subagents: Vec::new(),
    }
}

/// Why pending request 17 (opencode → registry.npmjs.org) was asked for.
pub fn llm_context() -> LlmContext {
    LlmContext {
        conversation_id: main_id(),
        turn: 2,
        call_id: 57,
        tool: "Bash".into(),
        summary: "npm install left-pad".into(),
        last_text: Some("Let me install it.".into()),
        age_secs: 1,
    }
}

/// The sample dashboard with the LLM layer: pending request 17 carries its why, today's cost
/// is known, the conversations are listed.
pub fn demo_llm_app(w: u16, h: u16) -> App {
    let mut app = demo_app(w, h);
    let mut pending = app.pending.to_vec();
    if let Some(p) = pending.first_mut() {
        p.llm_context = Some(llm_context());
    }
    app.pending = pending.into();
    app.cost.micro_usd = Some(1_234_567);
    let c = &mut app.conversations;
    c.wanted = true;
    c.items = summaries()
        .into_iter()
        .map(crate::app::Hosted::local)
        .collect();
    app
}

/// The sample fleet (`build1`, `build2`, `lab`) with the LLM layer: the conversations are
/// listed, every other one held by `build2`.
pub fn demo_fleet_llm_app(w: u16, h: u16) -> App {
    let mut app = crate::sample::demo_fleet_app(w, h);
    let c = &mut app.conversations;
    c.wanted = true;
    c.items = summaries()
        .into_iter()
        .enumerate()
        .map(|(i, s)| crate::app::Hosted::new(i % 2, s))
        .collect();
    app
}
