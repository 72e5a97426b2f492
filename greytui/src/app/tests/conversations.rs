//! State-machine tests of the Conversations view: the list (loading, paging, live updates,
//! filter, follow, a daemon without the LLM layer) and the opened-conversation stack
//! (subagents, transaction, refresh, scrolling through tall entries, resize). `why.rs`: the
//! why of held requests and today's cost.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use greyproxy_protocol::command::{ConversationIdArgs, ListConversationsArgs, ListLlmCallsArgs};
use greyproxy_protocol::llm::ConversationSummary;

use super::*;
use crate::app::conversations::CONVERSATION_PAGE;
use crate::sample_llm::{conversation, main_id, subagent, subagent_id, summaries};

pub(super) fn names(fx: &[Effect]) -> Vec<&'static str> {
    commands(fx).iter().map(|c| c.name()).collect()
}

fn ids(app: &App) -> Vec<String> {
    app.conversations
        .items
        .iter()
        .map(|c| c.id.clone())
        .collect()
}

fn page(items: &[ConversationSummary], next_before: Option<&str>) -> Reply {
    result(
        json!({"conversations": items, "has_more": next_before.is_some(), "next_before": next_before}),
    )
}

fn listed(app: &mut App, items: &[ConversationSummary], next_before: Option<&str>) {
    let generation = app.conversations.generation;
    let tag = Tag::Conversations {
        generation,
        more: false,
    };
    reply(app, tag, Ok(page(items, next_before)));
}

pub(super) fn loaded(app: &mut App, c: &greyproxy_protocol::llm::Conversation) -> Vec<Effect> {
    let data = serde_json::to_value(c).unwrap();
    reply(
        app,
        Tag::Conversation(c.summary.id.clone()),
        Ok(result(data)),
    )
}

/// The dashboard on the Conversations view with the sample list loaded.
fn on_list() -> App {
    let mut app = demo_app(80, 24);
    typing(&mut app, "5");
    listed(&mut app, &summaries(), None);
    app
}

/// The main sample conversation opened.
fn opened() -> App {
    let mut app = on_list();
    typing(&mut app, "\n");
    loaded(&mut app, &conversation());
    app
}

pub(super) fn top(app: &App) -> &crate::app::conversation::ConvDetail {
    app.conversations.stack.last().unwrap()
}

pub(super) fn selected_tool(app: &App) -> Option<String> {
    let d = top(app);
    d.doc.entry(d.selected).and_then(|e| e.tool.clone())
}

fn updated(app: &mut App, s: ConversationSummary, seq: u64) -> Vec<Effect> {
    event(app, Event::ConversationUpdated(s.into()), seq)
}

pub(super) fn tick(app: &mut App, after: Duration) -> Vec<Effect> {
    let now = app.now + after;
    app.update(Msg::Tick(now))
}

#[test]
fn opening_the_view_lists_once_then_pages_on_near_the_end() {
    let mut app = demo_app(80, 24);
    let fx = typing(&mut app, "5");
    assert_eq!(app.view, View::Conversations);
    assert_eq!(
        commands(&fx),
        [Command::ListConversations(ListConversationsArgs {
            limit: Some(CONVERSATION_PAGE),
            ..ListConversationsArgs::default()
        })]
    );
    assert!(typing(&mut app, "1").is_empty() && typing(&mut app, "5").is_empty());
    listed(&mut app, &summaries(), Some("2026-11-22T07:12:44.000Z"));
    assert_eq!(ids(&app)[0], main_id());
    assert_eq!(app.conversations.items.len(), 5);
    // Near the end of what is loaded (all of it here): the next page, from where it stopped.
    let fx = typing(&mut app, "j");
    assert_eq!(
        commands(&fx),
        [Command::ListConversations(ListConversationsArgs {
            before: Some("2026-11-22T07:12:44.000Z".into()),
            limit: Some(CONVERSATION_PAGE),
            ..ListConversationsArgs::default()
        })]
    );
    assert!(typing(&mut app, "j").is_empty(), "one page at a time");
    let mut older = summaries().remove(4);
    older.id = "aider:inferred-aider-0001".into();
    older.last_activity = "2026-11-21T23:00:00.000Z".into();
    // The page repeats a conversation already listed: kept once.
    let more = Tag::Conversations {
        generation: 0,
        more: true,
    };
    reply(
        &mut app,
        more,
        Ok(page(&[summaries()[4].clone(), older], None)),
    );
    assert_eq!(app.conversations.items.len(), 6);
    assert_eq!(ids(&app)[5], "aider:inferred-aider-0001");
    assert!(typing(&mut app, "G").is_empty(), "no more pages");
    // A resync lists again; the view was opened, so it stays loaded.
    let fx = typing(&mut app, "R");
    assert!(names(&fx).contains(&"list_conversations"), "{fx:?}");
}

#[test]
fn live_updates_move_a_conversation_up_and_insert_new_ones_in_place() {
    let mut app = on_list();
    // The codex conversation gets a new call: it moves to the top; the selection follows.
    let mut codex = summaries()[2].clone();
    codex.last_activity = "2026-11-22T10:00:01.000Z".into();
    codex.turns = 2;
    updated(&mut app, codex, 1);
    assert_eq!(ids(&app)[0], "codex:0199a7c2-5e1b-7d30-8c44-2f9e61b0d5aa");
    assert_eq!(app.conversations.items[0].turns, 2);
    assert_eq!(app.conversations.items.len(), 5, "replaced, not added");
    assert_eq!(app.conversations.nav.selected, 0, "following");
    // Not following: the selected conversation stays selected as others move above it.
    typing(&mut app, "jj");
    assert!(!app.conversations.follow);
    let sel = app.conversations.selected().unwrap().id.clone();
    let mut new = summaries()[0].clone();
    new.id = "claude-code:ffff".into();
    new.last_activity = "2026-11-22T10:00:02.000Z".into();
    updated(&mut app, new, 2);
    assert_eq!(app.conversations.selected().unwrap().id, sel);
    assert_eq!(app.conversations.unseen, 1);
    // A new conversation older than the others lands in its place.
    let mut old = summaries()[4].clone();
    old.id = "aider:old".into();
    old.last_activity = "2026-11-22T08:00:00.000Z".into();
    updated(&mut app, old, 3);
    let i = ids(&app).iter().position(|i| i == "aider:old").unwrap();
    assert_eq!(ids(&app)[i + 1], "aider:inferred-aider-0003");
    // F: back to the newest.
    typing(&mut app, "F");
    assert_eq!(app.conversations.nav.selected, 0);
    assert_eq!(app.conversations.unseen, 0);
}

#[test]
fn the_filter_is_asked_of_the_daemon_and_applied_to_live_rows() {
    let mut app = on_list();
    typing(&mut app, "/cod\t");
    // client: any → claude-code → codex.
    typing(&mut app, "  \tgpt");
    let fx = typing(&mut app, "\n");
    assert_eq!(
        commands(&fx),
        [Command::ListConversations(ListConversationsArgs {
            container: Some("cod".into()),
            client: Some("codex".into()),
            model: Some("gpt".into()),
            limit: Some(CONVERSATION_PAGE),
            ..ListConversationsArgs::default()
        })]
    );
    assert!(app.conversations.items.is_empty());
    // The answer for the old filter, arriving late, is dropped.
    reply(
        &mut app,
        Tag::Conversations {
            generation: 0,
            more: false,
        },
        Ok(page(&summaries(), None)),
    );
    assert!(app.conversations.items.is_empty());
    listed(&mut app, &summaries()[2..3], None);
    assert_eq!(app.conversations.items.len(), 1);
    // Live rows: a Claude Code conversation does not match, a codex one does.
    let mut claude = summaries()[0].clone();
    claude.last_activity = "2026-11-22T10:00:05.000Z".into();
    updated(&mut app, claude, 1);
    let mut codex = summaries()[2].clone();
    codex.id = "codex:new".into();
    codex.last_activity = "2026-11-22T10:00:06.000Z".into();
    updated(&mut app, codex, 2);
    assert_eq!(
        ids(&app),
        ["codex:new", "codex:0199a7c2-5e1b-7d30-8c44-2f9e61b0d5aa"]
    );
}

#[test]
fn enter_opens_a_conversation_subagents_stack_and_back_returns() {
    let mut app = on_list();
    let fx = typing(&mut app, "\n");
    assert_eq!(
        commands(&fx),
        [Command::GetConversation(ConversationIdArgs {
            conversation_id: main_id()
        })]
    );
    assert_eq!(app.ctx(), Ctx::Conversation);
    loaded(&mut app, &conversation());
    assert_eq!(top(&app).doc.turn_of(top(&app).selected), Some(1));
    // Prompt → thinking → text → the Task call that spawned the subagent.
    typing(&mut app, "jjj");
    assert_eq!(selected_tool(&app).as_deref(), Some("Task"));
    let fx = typing(&mut app, "\n");
    assert_eq!(
        commands(&fx),
        [Command::GetConversation(ConversationIdArgs {
            conversation_id: subagent_id()
        })]
    );
    assert_eq!(app.conversations.stack.len(), 2);
    loaded(&mut app, &subagent());
    assert_eq!(top(&app).conv.as_ref().unwrap().summary.id, subagent_id());
    // Enter on a step without a subagent says so.
    assert!(typing(&mut app, "\n").is_empty());
    assert!(app.message.as_ref().unwrap().error);
    // Esc: back to the parent, on the same tool call; Backspace: back to the list.
    typing(&mut app, "\x1b");
    assert_eq!(app.conversations.stack.len(), 1);
    assert_eq!(selected_tool(&app).as_deref(), Some("Task"));
    typing(&mut app, "\x08");
    assert!(app.conversations.stack.is_empty());
    assert_eq!(
        (app.view, app.ctx()),
        (View::Conversations, Ctx::Conversations)
    );
    // q in the list quits, as in every view.
    assert_eq!(typing(&mut app, "q"), [Effect::Quit]);
}

#[test]
fn t_opens_the_transaction_of_the_selected_step_and_back_returns() {
    let mut app = opened();
    typing(&mut app, "jjjj"); // the Read call, in call 52
    assert_eq!(selected_tool(&app).as_deref(), Some("Read"));
    let fx = typing(&mut app, "t");
    assert_eq!(
        commands(&fx),
        [Command::ListLlmCalls(ListLlmCallsArgs {
            conversation_id: Some(main_id()),
            before_id: Some(53),
            limit: Some(1),
            ..ListLlmCallsArgs::default()
        })]
    );
    let call = json!({"id":52,"transaction_id":5012,"timestamp":"2026-11-22T09:59:40.120Z",
        "container_name":"claude","client":"claude-code","provider":"anthropic","operation":"chat",
        "decoder":"anthropic","host":"api.anthropic.com","session_source":"wire","thread":"main",
        "stream":true,"status_code":200,
        "cost":{"state":"priced","micro_usd":22233,"table_version":"t"}});
    let fx = reply(
        &mut app,
        Tag::LlmCall(52),
        Ok(result(json!({"calls":[call],"has_more":true}))),
    );
    assert_eq!(
        commands(&fx),
        [Command::GetTransaction(TransactionIdArgs {
            transaction_id: 5012
        })]
    );
    assert_eq!((app.view, app.ctx()), (View::Activity, Ctx::Detail));
    // Back: to the conversation, where it was.
    typing(&mut app, "\x1b");
    assert_eq!(app.view, View::Conversations);
    assert_eq!(selected_tool(&app).as_deref(), Some("Read"));
    assert!(app.activity.detail.is_none());
    // A call the daemon no longer has is said so.
    typing(&mut app, "t");
    reply(&mut app, Tag::LlmCall(52), Ok(result(json!({"calls":[]}))));
    assert_eq!(app.view, View::Conversations);
    assert!(
        app.message
            .as_ref()
            .unwrap()
            .text
            .contains("no longer stored")
    );
}

#[test]
fn the_open_conversation_is_fetched_again_at_most_every_2s_and_followed_at_its_end() {
    let mut app = opened();
    typing(&mut app, "G");
    let before = top(&app).doc.entries();
    // An update right after the fetch waits for the clock.
    assert!(updated(&mut app, summaries()[0].clone(), 1).is_empty());
    assert!(updated(&mut app, summaries()[0].clone(), 2).is_empty());
    assert!(tick(&mut app, Duration::from_secs(1)).is_empty());
    let fx = tick(&mut app, Duration::from_secs(1));
    assert_eq!(names(&fx), ["get_conversation"]);
    assert!(
        tick(&mut app, Duration::from_secs(2)).is_empty(),
        "in flight"
    );
    // The answer has a new step: the selection, at the end before, is at the new end.
    let mut c = conversation();
    c.turns[1].steps[0].tool_calls[0].result_preview = Some("added 1 package".into());
    c.turns[1].steps.push(greyproxy_protocol::llm::Step {
        call_id: 58,
        text: "Installed.".into(),
        thinking_preview: String::new(),
        tool_calls: Vec::new(),
    });
    loaded(&mut app, &c);
    let d = top(&app);
    assert_eq!(d.doc.entries(), before + 1);
    assert_eq!(d.selected, before);
    assert_eq!(d.scroll + app.doc_rows(), d.doc.lines());
    // Updates of other conversations fetch nothing.
    let now = app.now;
    tick(&mut app, Duration::from_secs(10));
    assert!(updated(&mut app, summaries()[2].clone(), 3).is_empty());
    assert!(app.now > now);
    // Nor while the list is shown.
    typing(&mut app, "\x1b");
    assert!(updated(&mut app, summaries()[0].clone(), 4).is_empty());
}

#[test]
fn a_tall_entry_is_read_line_by_line_before_the_next() {
    let mut c = conversation();
    c.turns[0].steps[0].text = (1..=60).map(|i| format!("line {i}\n")).collect();
    let mut app = on_list();
    typing(&mut app, "\n");
    loaded(&mut app, &c);
    typing(&mut app, "jj"); // the 60-line text
    let rows = app.doc_rows();
    let d = top(&app);
    let (text, s0) = (d.selected, d.scroll);
    let span = d.doc.span(text).unwrap();
    assert_eq!(
        span.len, 61,
        "60 lines and the empty one after the last newline"
    );
    let below = span.end() - (s0 + rows);
    // Each j scrolls one line while the entry goes on below the screen, then moves on.
    for i in 1..=below {
        typing(&mut app, "j");
        assert_eq!((top(&app).selected, top(&app).scroll), (text, s0 + i));
    }
    typing(&mut app, "j");
    assert_eq!(top(&app).selected, text + 1);
    // k comes back to it, then up through it line by line to its first line.
    typing(&mut app, "k");
    assert_eq!(top(&app).selected, text);
    let mut last = top(&app).scroll;
    while top(&app).scroll > span.start {
        typing(&mut app, "k");
        assert_eq!(top(&app).scroll, last - 1);
        assert_eq!(top(&app).selected, text);
        last = top(&app).scroll;
    }
    typing(&mut app, "k");
    assert_eq!(top(&app).selected, text - 1);
}

#[test]
fn without_the_llm_layer_the_list_keeps_the_error_and_nothing_breaks() {
    let mut app = demo_app(80, 24);
    typing(&mut app, "5");
    reply(
        &mut app,
        Tag::Conversations {
            generation: 0,
            more: false,
        },
        Err("unknown command list_conversations".into()),
    );
    let c = &app.conversations;
    assert!(!c.is_loading() && c.items.is_empty());
    assert_eq!(
        c.error.as_deref(),
        Some("unknown command list_conversations")
    );
    // Enter on nothing, j, F: no command, no panic.
    assert!(typing(&mut app, "\njkFgG").is_empty());
}

#[test]
fn a_resize_lays_the_open_conversation_out_again() {
    let mut app = opened();
    typing(&mut app, "jjjjj");
    let tool = selected_tool(&app);
    let narrow = top(&app).doc.lines();
    app.update(Msg::Resize(160, 50));
    assert_eq!(top(&app).doc.width(), 158);
    assert!(top(&app).doc.lines() < narrow);
    assert_eq!(selected_tool(&app), tool, "the same entry stays selected");
}
