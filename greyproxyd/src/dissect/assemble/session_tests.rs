//! Tests of sessions (inferred ones), subagent linking (by content, and opencode's child
//! sessions), restarts over the same store file, and rebuilds (clear, then replay).

#![allow(clippy::unwrap_used)]

use greyproxy_protocol::llm::{LlmClient, LlmThread, SessionSource};

use super::Assembled;
use super::harness::{Harness, Spec, answer, call, cc_first, echo, prompts, results, tool, user};
use crate::dissect::model::{Block, Decoder, Dissected, Message, Role, ToolResult};
use crate::store::ConversationFilter;

#[test]
fn parallel_subagents_are_linked_by_content_not_by_order() {
    let mut h = Harness::new();
    let s = Spec::claude("p");
    let main = "claude-code:p";
    let (agent1, agent2) = (format!("{main}/agent-1"), format!("{main}/agent-2"));
    // Fixture 427's shape: two Agent calls in one step.
    let spawn_a = "Thoroughly explore the greyproxy project.\n  Report what it is.";
    let spawn_b = "Research greyhaven.co and summarise it.";
    let r1 = answer(
        "I'll launch both research tasks in parallel.",
        vec![
            tool(
                "toolu_A",
                "Agent",
                "Explore greyproxy project",
                Some(spawn_a),
            ),
            tool("toolu_B", "Agent", "Research greyhaven.co", Some(spawn_b)),
        ],
    );
    let history = vec![cc_first(
        "One subagent on this project, another on greyhaven.co",
    )];
    h.call(&s, &call(Decoder::Anthropic, history.clone(), r1.clone()));

    // B's first call finishes first, then the two interleave.
    let sub = s.thread(LlmThread::Subagent);
    let b1 = vec![cc_first(spawn_b)];
    let rb1 = answer(
        "",
        vec![tool("toolu_b1", "WebSearch", "greyhaven.co", None)],
    );
    let ab = h.call(
        &sub.at(1),
        &call(Decoder::Anthropic, b1.clone(), rb1.clone()),
    );
    let a1 = vec![user(&[
        "<system-reminder>\ncontext\n</system-reminder>",
        "Thoroughly explore the greyproxy project. Report what it is.",
    ])];
    let ra1 = answer("", vec![tool("toolu_a1", "Read", "README.md", None)]);
    let aa = h.call(
        &sub.at(2),
        &call(Decoder::Anthropic, a1.clone(), ra1.clone()),
    );
    let mut b2 = b1;
    b2.extend([echo(&rb1), results(&[("toolu_b1", "sovereign AI", false)])]);
    h.call(
        &sub.at(3),
        &call(Decoder::Anthropic, b2, answer("Greyhaven: AI.", vec![])),
    );
    let mut a2 = a1;
    a2.extend([echo(&ra1), results(&[("toolu_a1", "# greyproxy", false)])]);
    h.call(
        &sub.at(4),
        &call(Decoder::Anthropic, a2, answer("A proxy.", vec![])),
    );
    let mut m2 = history;
    m2.extend([
        echo(&r1),
        results(&[
            ("toolu_A", "A proxy.", false),
            ("toolu_B", "Greyhaven: AI.", false),
        ]),
    ]);
    h.call(
        &s.at(5),
        &call(Decoder::Anthropic, m2, answer("Both are linked.", vec![])),
    );

    assert_eq!(ab.conversation_id.as_ref(), Some(&agent1));
    assert_eq!(ab.changed_parent.unwrap().id, main);
    assert_eq!(aa.conversation_id.as_ref(), Some(&agent2));
    let c = h.get(main);
    let step = &c.turns[0].steps[0];
    // By order, greyproxy would link toolu_A to agent-1.
    assert_eq!(
        step.tool_calls[0].linked_conversation_id.as_ref(),
        Some(&agent2)
    );
    assert_eq!(
        step.tool_calls[1].linked_conversation_id.as_ref(),
        Some(&agent1)
    );
    assert_eq!(
        step.tool_calls[0].result_preview.as_deref(),
        Some("A proxy.")
    );
    assert_eq!(c.subagents, [agent1.clone(), agent2.clone()]);
    assert_eq!(c.summary.totals.calls, 2, "subagent calls are their own");

    let b = h.get(&agent1);
    assert_eq!(b.summary.thread, LlmThread::Subagent);
    assert_eq!(b.summary.parent_id.as_deref(), Some(main));
    assert_eq!(b.summary.parent_tool_call_id.as_deref(), Some("toolu_B"));
    assert_eq!(b.turns.len(), 1);
    assert_eq!(b.turns[0].user_prompt, spawn_b);
    assert_eq!(b.turns[0].call_ids, [2, 4]);
    assert_eq!(b.turns[0].steps[1].text, "Greyhaven: AI.");
    let a = h.get(&agent2);
    assert_eq!(a.summary.parent_tool_call_id.as_deref(), Some("toolu_A"));
    assert_eq!(a.turns[0].call_ids, [3, 5]);

    let kids = h
        .store
        .list_conversations(
            &ConversationFilter {
                parent: Some(main.into()),
                ..Default::default()
            },
            10,
            None,
        )
        .unwrap();
    assert_eq!(kids.items.len(), 2);
}

fn child_result(id: &str, session: &str) -> Message {
    Message {
        role: Role::User,
        blocks: vec![Block::ToolResult(ToolResult {
            tool_use_id: id.into(),
            preview: format!("task_id: {session}\n\n<task_result>done</task_result>"),
            is_error: false,
            child_session: Some(session.into()),
        })],
    }
}

#[test]
fn opencode_child_sessions_are_linked_through_the_parents_tool_result() {
    let mut h = Harness::new();
    let mut p = Spec::new(LlmClient::Opencode, Some("ses_parent"), "openai");
    p.model = Some("gpt-5.1".into());
    let first = vec![user(&["Research Monadical with a subagent"])];
    let r1 = answer(
        "",
        vec![tool(
            "call_t",
            "task",
            "research",
            Some("Research Monadical."),
        )],
    );
    h.call(
        &p,
        &call(Decoder::OpenAiResponses, first.clone(), r1.clone()),
    );
    // openai_1166's shape: the child has a session of its own.
    let mut child = Spec::new(LlmClient::Opencode, Some("ses_child"), "openai").at(1);
    child.thread = LlmThread::Subagent;
    let a = h.call(
        &child,
        &call(
            Decoder::OpenAiResponses,
            vec![user(&["Research Monadical."])],
            answer("A consultancy.", vec![]),
        ),
    );
    assert_eq!(a.conversation_id.as_deref(), Some("opencode:ses_child"));
    assert_eq!(a.summary.unwrap().thread, LlmThread::Subagent);

    let mut second = first;
    second.extend([echo(&r1), child_result("call_t", "ses_child")]);
    let a = h.call(
        &p.at(2),
        &call(Decoder::OpenAiResponses, second, answer("Done.", vec![])),
    );
    let linked = a.changed_child.unwrap();
    assert_eq!(linked.id, "opencode:ses_child");
    assert_eq!(linked.parent_id.as_deref(), Some("opencode:ses_parent"));
    assert_eq!(linked.parent_tool_call_id.as_deref(), Some("call_t"));
    let c = h.get("opencode:ses_parent");
    let tc = &c.turns[0].steps[0].tool_calls[0];
    assert_eq!(
        tc.linked_conversation_id.as_deref(),
        Some("opencode:ses_child")
    );
    assert!(
        tc.result_preview
            .as_deref()
            .unwrap()
            .starts_with("task_id: ses_child")
    );
    assert_eq!(c.subagents, ["opencode:ses_child"]);
    assert_eq!(
        h.get("opencode:ses_child").summary.parent_id.as_deref(),
        Some("opencode:ses_parent")
    );

    // A child named before any of its calls was seen gets its parent when it starts.
    let r3 = answer("", vec![tool("call_u", "task", "more", None)]);
    let third = vec![user(&["Another one"])];
    h.call(
        &p.at(3),
        &call(Decoder::OpenAiResponses, third.clone(), r3.clone()),
    );
    let mut fourth = third;
    fourth.extend([echo(&r3), child_result("call_u", "ses_late")]);
    h.call(
        &p.at(4),
        &call(Decoder::OpenAiResponses, fourth, answer("ok", vec![])),
    );
    let late = Spec::new(LlmClient::Opencode, Some("ses_late"), "openai").at(5);
    let a = h.call(
        &late.thread(LlmThread::Subagent),
        &call(
            Decoder::OpenAiResponses,
            vec![user(&["x"])],
            answer("y", vec![]),
        ),
    );
    assert_eq!(
        a.summary.unwrap().parent_id.as_deref(),
        Some("opencode:ses_parent")
    );
}

#[test]
fn a_restarted_assembler_continues_the_same_conversation_and_its_links() {
    let mut h = Harness::new();
    let s = Spec::claude("r");
    let main = "claude-code:r";
    let history = vec![cc_first("Spawn a helper")];
    let r1 = answer(
        "",
        vec![tool("toolu_s", "Agent", "helper", Some("Count the files."))],
    );
    h.call(&s, &call(Decoder::Anthropic, history.clone(), r1.clone()));

    // The spawn prompt was remembered in the store.
    let mut h = h.restart();
    let sub = s.at(1).thread(LlmThread::Subagent);
    let a = h.call(
        &sub,
        &call(
            Decoder::Anthropic,
            vec![cc_first("Count the files.")],
            answer("12 files.", vec![]),
        ),
    );
    assert_eq!(a.conversation_id.as_deref(), Some("claude-code:r/agent-1"));
    assert_eq!(a.changed_parent.unwrap().id, main);

    // The history seen and the tool call waiting were remembered too.
    let mut h = h.restart();
    let mut m = history;
    m.extend([echo(&r1), results(&[("toolu_s", "12 files.", false)])]);
    let r2 = answer("There are 12 files.", vec![]);
    let a = h.call(&s.at(2), &call(Decoder::Anthropic, m.clone(), r2.clone()));
    assert_eq!(a.turn, Some(1));
    let mut h = h.restart();
    m.extend([echo(&r2), user(&["And directories?"])]);
    let a = h.call(&s.at(3), &call(Decoder::Anthropic, m, answer("3.", vec![])));
    assert_eq!(a.turn, Some(2));
    // A second invocation after a restart is numbered on.
    let a = h.call(
        &sub.at(4),
        &call(
            Decoder::Anthropic,
            vec![cc_first("Other task")],
            answer("ok", vec![]),
        ),
    );
    assert_eq!(a.conversation_id.as_deref(), Some("claude-code:r/agent-2"));

    let c = h.get(main);
    assert_eq!(c.turns.len(), 2);
    assert_eq!(c.turns[1].user_prompt, "And directories?");
    let tc = &c.turns[0].steps[0].tool_calls[0];
    assert_eq!(tc.result_preview.as_deref(), Some("12 files."));
    assert_eq!(
        tc.linked_conversation_id.as_deref(),
        Some("claude-code:r/agent-1")
    );
    assert_eq!(c.summary.totals.calls, 3);
}

#[test]
fn clearing_and_replaying_rebuilds_the_same_conversations_and_prune_removes_them() {
    let mut h = Harness::new();
    let s = Spec::claude("b");
    let first = vec![cc_first("Plan it")];
    let r1 = answer(
        "",
        vec![tool("toolu_p", "Agent", "plan", Some("Write a plan."))],
    );
    let mut second = first.clone();
    second.extend([echo(&r1), results(&[("toolu_p", "the plan", false)])]);
    let calls: Vec<(Spec, Dissected)> = vec![
        (s.clone(), call(Decoder::Anthropic, first, r1)),
        (
            s.at(1).thread(LlmThread::Subagent),
            call(
                Decoder::Anthropic,
                vec![cc_first("Write a plan.")],
                answer("the plan", vec![]),
            ),
        ),
        (
            s.at(2),
            call(Decoder::Anthropic, second, answer("Planned.", vec![])),
        ),
        (
            s.at(3).thread(LlmThread::Utility),
            call(
                Decoder::Anthropic,
                vec![user(&["title"])],
                answer("Plan", vec![]),
            ),
        ),
    ];
    for (spec, d) in &calls {
        h.call(spec, d);
    }
    let before = (h.get("claude-code:b"), h.get("claude-code:b/agent-1"));

    h.store.clear_conversations().unwrap();
    h.asm.reset();
    assert!(h.store.get_conversation("claude-code:b").unwrap().is_none());
    h.next_call = 1;
    for (spec, d) in &calls {
        h.call(spec, d);
    }
    assert_eq!(
        (h.get("claude-code:b"), h.get("claude-code:b/agent-1")),
        before
    );

    let all = ConversationFilter::default();
    let listed = h.store.list_conversations(&all, 10, None).unwrap();
    let ids: Vec<&str> = listed.items.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["claude-code:b", "claude-code:b/agent-1"]);
    // The subagent's last call was at +1 s, the main conversation's at +3 s.
    assert_eq!(
        h.store
            .prune_conversations(super::harness::T0 + 2_000, 0)
            .unwrap(),
        1
    );
    assert_eq!(
        h.store
            .list_conversations(&all, 10, None)
            .unwrap()
            .items
            .len(),
        1
    );
}

#[test]
fn sessionless_clients_get_inferred_sessions_split_by_a_quiet_gap() {
    let mut h = Harness::new();
    let mut s = Spec::new(LlmClient::Aider, None, "openrouter");
    s.model = Some("anthropic/claude-sonnet-4".into());
    let example = user(&["Change get_factorial() to use math.factorial"]);
    let first = vec![
        example.clone(),
        Message {
            role: Role::Assistant,
            blocks: vec![Block::Text("To make this change".into())],
        },
        user(&["Say hello world.\n\n# *SEARCH/REPLACE block* Rules:\n\nEvery block"]),
    ];
    let r = answer("hello world", vec![]);
    let a1 = h.call(&s, &call(Decoder::OpenAiChat, first.clone(), r.clone()));
    let mut second = first;
    second.extend([echo(&r), user(&["again"])]);
    let a2 = h.call(
        &s.at(60),
        &call(Decoder::OpenAiChat, second, answer("hello world", vec![])),
    );
    // Another container is another session.
    let mut elsewhere = s.at(90);
    elsewhere.container = "aider-2".into();
    let a3 = h.call(
        &elsewhere,
        &call(
            Decoder::OpenAiChat,
            vec![user(&["hi"])],
            answer("hi", vec![]),
        ),
    );
    // Seven quiet minutes: a new session.
    let a4 = h.call(
        &s.at(60 + 7 * 60),
        &call(
            Decoder::OpenAiChat,
            vec![user(&["later"])],
            answer("ok", vec![]),
        ),
    );

    let id = |a: &Assembled| a.conversation_id.clone().unwrap();
    assert_eq!(id(&a1), "aider:inferred-1");
    assert_eq!(id(&a2), "aider:inferred-1");
    assert_eq!(id(&a3), "aider:inferred-3");
    assert_eq!(id(&a4), "aider:inferred-4");
    let c = h.get("aider:inferred-1");
    assert_eq!(c.summary.session_source, SessionSource::Inferred);
    assert_eq!(c.summary.session_id, "inferred-1");
    assert_eq!(
        prompts(&c),
        ["Say hello world.", "again"],
        "aider's example is not a turn"
    );

    // The inferred session outlives a restart.
    let mut h = h.restart();
    let a5 = h.call(
        &s.at(60 + 8 * 60),
        &call(
            Decoder::OpenAiChat,
            vec![user(&["more"])],
            answer("ok", vec![]),
        ),
    );
    assert_eq!(id(&a5), "aider:inferred-4");
}
