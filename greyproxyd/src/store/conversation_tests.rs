//! Tests of the conversation tables: one-transaction writes, the activity index behind lists,
//! whole conversations read back, retention and clearing, on real redb files.

#![allow(clippy::unwrap_used)]

use greyproxy_protocol::llm::{
    ConversationStatus, ConversationSummary, LlmClient, LlmThread, LlmTotals, SessionSource, Step,
    StepToolCall, ToolCallInfo,
};

use super::tests::temp_store;
use super::*;

fn summary(id: &str, container: &str, client: LlmClient, model: &str) -> ConversationSummary {
    ConversationSummary {
        id: id.into(),
        session_id: "s".into(),
        session_source: SessionSource::Wire,
        thread: LlmThread::Main,
        parent_id: None,
        parent_tool_call_id: None,
        container_name: container.into(),
        client,
        provider: "anthropic".into(),
        models: vec![model.into()],
        status: ConversationStatus::Answered,
        started_at: "2026-03-13T10:00:00.000Z".into(),
        last_activity: "2026-03-13T10:00:00.000Z".into(),
        turns: 1,
        title: "hello".into(),
        totals: LlmTotals::default(),
        context_tokens: 0,
        context_window: None,
    }
}

fn record(id: &str, ms: u64) -> ConversationRecord {
    ConversationRecord {
        summary: summary(id, "claude", LlmClient::ClaudeCode, "claude-opus-4-6"),
        state: serde_json::json!({"seen": 3}),
        last_activity_ms: ms,
        system_prompt_preview: String::new(),
    }
}

fn head(n: u32, prompt: &str) -> TurnHead {
    TurnHead {
        number: n,
        user_prompt: prompt.into(),
        started_at: "2026-03-13T10:00:00.000Z".into(),
        ended_at: "2026-03-13T10:00:01.000Z".into(),
    }
}

fn step(call_id: u64, text: &str) -> Step {
    Step {
        call_id,
        text: text.into(),
        thinking_preview: String::new(),
        tool_calls: vec![StepToolCall {
            call: ToolCallInfo {
                id: format!("toolu_{call_id}"),
                name: "Bash".into(),
                summary: "ls".into(),
                input_preview: String::new(),
            },
            result_preview: None,
            is_error: false,
            linked_conversation_id: None,
        }],
    }
}

fn write_one(store: &Store, id: &str, ms: u64) {
    let w = ConversationWrite {
        records: vec![record(id, ms)],
        turns: vec![(id.into(), head(1, "first"))],
        steps: vec![(id.into(), 1, 0, step(ms, "a"))],
        durable: true,
        ..Default::default()
    };
    store.write_conversation(&w).unwrap();
}

fn ids(page: &ConversationPage) -> Vec<&str> {
    page.items.iter().map(|s| s.id.as_str()).collect()
}

#[test]
fn a_written_conversation_reads_back_with_turns_steps_and_subagents() {
    let (_dir, _path, store) = temp_store();
    let id = "claude-code:s";
    let mut r = record(id, 1_000);
    r.summary.turns = 2;
    r.system_prompt_preview = "You are Claude Code".into();
    let w = ConversationWrite {
        records: vec![r.clone()],
        turns: vec![
            (id.into(), head(1, "first")),
            (id.into(), head(2, "second")),
        ],
        steps: vec![
            (id.into(), 1, 0, step(1, "one")),
            (id.into(), 1, 1, step(2, "two")),
            (id.into(), 2, 0, step(3, "three")),
        ],
        children: vec![(id.into(), format!("{id}/agent-1"))],
        sessions: vec![(format!("{SESSION_ROW_PREFIX}{id}"), b"{}".to_vec())],
        durable: true,
    };
    let stats = store.write_conversation(&w).unwrap();
    // 1 record + 1 index entry + 2 heads + 3 steps + 1 link + 1 session row.
    assert_eq!(stats.rows, 9);
    assert!(stats.bytes > 100, "{stats:?}");

    let (loaded, current) = store.load_conversation_state(id).unwrap().unwrap();
    assert_eq!(loaded, r);
    assert_eq!(current.unwrap().user_prompt, "second");
    assert_eq!(
        store.get_conversation_step(id, 1, 1).unwrap().unwrap().text,
        "two"
    );
    assert!(store.get_conversation_step(id, 3, 0).unwrap().is_none());

    let c = store.get_conversation(id).unwrap().unwrap();
    assert_eq!(c.system_prompt_preview, "You are Claude Code");
    assert_eq!(c.turns.len(), 2);
    assert_eq!(c.turns[0].call_ids, vec![1, 2]);
    assert_eq!(c.turns[0].steps[1].text, "two");
    assert_eq!(c.turns[1].call_ids, vec![3]);
    assert_eq!(c.subagents, vec![format!("{id}/agent-1")]);
    assert!(store.get_conversation("nope").unwrap().is_none());
    assert!(store.load_conversation_state("nope").unwrap().is_none());
}

#[test]
fn lists_are_newest_activity_first_filtered_and_paged() {
    let (_dir, _path, store) = temp_store();
    write_one(&store, "a", 1_000);
    write_one(&store, "b", 2_000);
    write_one(&store, "c", 3_000);
    // Activity moves "a" to the top; its old index entry goes away.
    write_one(&store, "a", 4_000);
    let all = store
        .list_conversations(&ConversationFilter::default(), 10, None)
        .unwrap();
    assert_eq!(ids(&all), ["a", "c", "b"]);
    assert_eq!(all.next_before, None);

    let first = store
        .list_conversations(&ConversationFilter::default(), 2, None)
        .unwrap();
    assert_eq!(ids(&first), ["a", "c"]);
    assert_eq!(first.next_before, Some(3_000));
    let rest = store
        .list_conversations(&ConversationFilter::default(), 2, first.next_before)
        .unwrap();
    assert_eq!(ids(&rest), ["b"]);

    // A tie at the page boundary is not cut in two.
    write_one(&store, "d", 3_000);
    let tie = store
        .list_conversations(&ConversationFilter::default(), 2, None)
        .unwrap();
    assert_eq!(ids(&tie), ["a", "d", "c"]);

    let mut other = record("x", 5_000);
    other.summary = summary(
        "x",
        "aider-box",
        LlmClient::Aider,
        "anthropic/claude-sonnet-4",
    );
    other.summary.parent_id = Some("a".into());
    store
        .write_conversation(&ConversationWrite {
            records: vec![other],
            ..Default::default()
        })
        .unwrap();
    let q = |f: ConversationFilter| ids(&store.list_conversations(&f, 10, None).unwrap()).len();
    let one = |f: ConversationFilter| {
        store.list_conversations(&f, 10, None).unwrap().items[0]
            .id
            .clone()
    };
    assert_eq!(
        one(ConversationFilter {
            container: Some("AIDER".into()),
            ..Default::default()
        }),
        "x"
    );
    assert_eq!(
        q(ConversationFilter {
            client: Some(LlmClient::ClaudeCode),
            ..Default::default()
        }),
        4
    );
    assert_eq!(
        one(ConversationFilter {
            model: Some("sonnet".into()),
            ..Default::default()
        }),
        "x"
    );
    assert_eq!(
        one(ConversationFilter {
            parent: Some("a".into()),
            ..Default::default()
        }),
        "x"
    );
    assert_eq!(
        q(ConversationFilter {
            model: Some("gpt".into()),
            ..Default::default()
        }),
        0
    );
}

#[test]
fn prune_removes_old_then_least_recent_with_their_rows_and_clear_removes_all() {
    let (_dir, path, store) = temp_store();
    for (i, id) in ["a", "b", "c", "d"].iter().enumerate() {
        write_one(&store, id, 1_000 * (i as u64 + 1));
    }
    store
        .write_conversation(&ConversationWrite {
            sessions: vec![(format!("{SESSION_ROW_PREFIX}a"), b"{}".to_vec())],
            children: vec![("a".into(), "b".into())],
            ..Default::default()
        })
        .unwrap();
    // "a" is older than 1 500 ms; then only 2 of the 3 left may stay: "b" goes too.
    assert_eq!(store.prune_conversations(1_500, 2).unwrap(), 2);
    let left = store
        .list_conversations(&ConversationFilter::default(), 10, None)
        .unwrap();
    assert_eq!(ids(&left), ["d", "c"]);
    assert!(store.get_conversation("a").unwrap().is_none());
    assert!(store.get_conversation_step("a", 1, 0).unwrap().is_none());
    assert!(
        store
            .get_conversation_session(&format!("{SESSION_ROW_PREFIX}a"))
            .unwrap()
            .is_none()
    );
    assert_eq!(store.prune_conversations(0, 0).unwrap(), 0, "nothing to do");

    // Survives a reopen; then clear empties everything.
    drop(store);
    let store = Store::open(&path).unwrap();
    assert_eq!(store.get_conversation("c").unwrap().unwrap().turns.len(), 1);
    store.clear_conversations().unwrap();
    assert!(
        store
            .list_conversations(&ConversationFilter::default(), 10, None)
            .unwrap()
            .items
            .is_empty()
    );
    assert!(store.get_conversation_step("c", 1, 0).unwrap().is_none());
    // Writable again after the clear.
    write_one(&store, "e", 9_000);
    assert_eq!(store.get_conversation("e").unwrap().unwrap().turns.len(), 1);
}
