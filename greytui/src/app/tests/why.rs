//! State-machine tests of the why of held requests (the `w` key in the Pending view and in the
//! picker, a why arriving with a later update) and of today's cost in the status bar.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use super::conversations::{loaded, names, selected_tool, tick, top};
use super::*;
use crate::sample_llm::{conversation, demo_llm_app, llm_context};

#[test]
fn w_opens_the_why_at_its_tool_call_and_back_returns_to_pending() {
    let mut app = demo_llm_app(80, 24);
    app.conversations.wanted = false;
    let fx = typing(&mut app, "w");
    assert_eq!(app.view, View::Conversations);
    assert_eq!(
        names(&fx),
        ["list_conversations", "get_conversation"],
        "the list behind it is loaded too"
    );
    loaded(&mut app, &conversation());
    let d = top(&app);
    assert_eq!(d.doc.turn_of(d.selected), Some(2));
    assert_eq!(selected_tool(&app).as_deref(), Some("Bash"));
    typing(&mut app, "q");
    assert_eq!(app.view, View::Pending);
    assert!(app.conversations.stack.is_empty());
    // A request without a why says so.
    typing(&mut app, "j");
    assert!(typing(&mut app, "w").is_empty());
    assert!(
        app.message
            .as_ref()
            .unwrap()
            .text
            .contains("no LLM context")
    );
    assert_eq!(app.view, View::Pending);
}

#[test]
fn w_in_the_picker_opens_the_why_when_there_is_one() {
    let mut app = demo_llm_app(80, 24);
    typing(&mut app, "A");
    let fx = typing(&mut app, "w");
    assert_eq!(names(&fx), ["get_conversation"]);
    assert!(app.modal.is_none());
    assert_eq!(app.view, View::Conversations);
    // Without a why the picker stays open; in its typed-duration step `w` is typed.
    typing(&mut app, "\x1b1jA");
    assert!(typing(&mut app, "w").is_empty());
    assert!(matches!(app.modal, Some(Modal::Picker(_))));
    typing(&mut app, "\x1b");
    typing(&mut app, "kA\n8");
    typing(&mut app, "w");
    let Some(Modal::Picker(p)) = &app.modal else {
        panic!("{:?}", app.modal)
    };
    assert_eq!(p.typed, "w");
}

#[test]
fn a_pending_update_may_bring_the_why_later() {
    let mut app = demo_app(80, 24);
    let mut p = pending(30, "claude", "pkg.example", 443, 0);
    event(&mut app, Event::PendingCreated(p.clone()), 1);
    assert!(app.pending[0].llm_context.is_none());
    p.llm_context = Some(llm_context());
    event(&mut app, Event::PendingUpdated(p), 2);
    assert_eq!(app.pending[0].llm_context, Some(llm_context()));
    // And waiter changes keep it.
    let w = WaitersChanged {
        container_name: "claude".into(),
        host: "pkg.example".into(),
        port: 443,
        previous_count: 1,
        current_count: 2,
        pending_id: Some(30),
    };
    event(&mut app, Event::WaitersChanged(w), 3);
    assert_eq!(app.pending[0].waiting_count, 2);
    assert!(app.pending[0].llm_context.is_some());
}

#[test]
fn todays_cost_is_asked_at_start_and_at_most_every_2s_on_new_calls() {
    let mut app = App::new(sample::now(), (80, 24), false);
    let fx = app.update(Msg::Link(LinkEvent::Connected {
        server_version: "0.1.0".into(),
        url: "ws://x/ws".into(),
    }));
    let usage: Vec<Command> = commands(&fx)
        .into_iter()
        .filter(|c| c.name() == "usage_summary")
        .collect();
    assert_eq!(
        usage,
        [Command::UsageSummary(
            greyproxy_protocol::command::UsageSummaryArgs {
                group_by: Some("container".into()),
                since: Some("today".into()),
                ..Default::default()
            }
        )]
    );
    let total = json!({"group_by":"container","since":"x","until":"y","rows":[],
        "total":{"key":"total","calls":3,"usage":{"input_tokens":1,"cache_read_tokens":0,
        "cache_write_tokens":0,"output_tokens":1,"reasoning_tokens":0},"cost_micro_usd":1234567,
        "unpriced_calls":0,"duration_ms":1,"cache_hit_ratio":0.0}});
    reply(&mut app, Tag::CostToday, Ok(result(total.clone())));
    assert_eq!(app.cost.micro_usd, Some(1_234_567));
    // A burst of calls within 2 s: nothing now, one request when the clock allows.
    let call: greyproxy_protocol::llm::LlmCall = serde_json::from_value(json!({"id":1,
        "transaction_id":1,"timestamp":"t","container_name":"c","client":"claude-code",
        "provider":"anthropic","operation":"chat","decoder":"anthropic","host":"h",
        "session_source":"wire","thread":"main","stream":false,
        "cost":{"state":"priced","micro_usd":1,"table_version":"t"}}))
    .unwrap();
    for seq in 1..=50 {
        assert!(event(&mut app, Event::LlmCallNew(call.clone()), seq).is_empty());
    }
    assert!(tick(&mut app, Duration::from_secs(1)).is_empty());
    let fx = tick(&mut app, Duration::from_secs(1));
    assert_eq!(names(&fx), ["usage_summary"]);
    assert!(
        tick(&mut app, Duration::from_secs(5)).is_empty(),
        "no call since"
    );
    reply(&mut app, Tag::CostToday, Ok(result(total)));
    // Long after: the next call asks at once.
    tick(&mut app, Duration::from_secs(5));
    let fx = event(&mut app, Event::LlmCallNew(call), 51);
    assert_eq!(names(&fx), ["usage_summary"]);
    // A daemon without the LLM layer: no cost shown.
    reply(&mut app, Tag::CostToday, Err("the LLM layer is off".into()));
    assert_eq!(app.cost.micro_usd, None);
}
