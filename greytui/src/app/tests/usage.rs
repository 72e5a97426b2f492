//! State-machine tests of the Usage view: which `usage_summary` is sent when (opening, keys,
//! throttled `llm_call.new`, resync), what replies and events do to the board, and a daemon
//! without the LLM layer.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use greyproxy_protocol::command::UsageSummaryArgs;

use super::*;
use crate::app::usage::{Column, Span};
use crate::app::usage_live::Group;
use crate::sample::usage::{answer, call, summary};

fn summary_cmd(group: &str, since: &str) -> Command {
    Command::UsageSummary(UsageSummaryArgs {
        group_by: Some(group.into()),
        since: Some(since.into()),
        ..UsageSummaryArgs::default()
    })
}

fn keys(app: &App) -> Vec<String> {
    app.usage.rows().iter().map(|r| r.key.clone()).collect()
}

fn tick(app: &mut App, after: Duration) -> Vec<Effect> {
    let now = app.now + after;
    app.update(Msg::Tick(now))
}

/// The sample board: on the view, today's answer by container applied.
fn board() -> App {
    let mut app = demo_app(80, 24);
    assert_eq!(
        commands(&typing(&mut app, "6")),
        [summary_cmd("container", "today")]
    );
    answer(&mut app);
    app
}

fn llm_event(app: &mut App, seq: u64) -> Vec<Effect> {
    let c = call(
        "claude-code",
        "claude-sonnet-4-5-20250929",
        9_000,
        1_000,
        20_000,
    );
    event(app, Event::LlmCallNew(c), seq)
}

#[test]
fn opening_the_view_asks_for_today_by_container_costliest_first() {
    let mut app = demo_app(80, 24);
    let fx = typing(&mut app, "6");
    assert_eq!(app.view, View::Usage);
    assert_eq!(commands(&fx), [summary_cmd("container", "today")]);
    assert!(!app.usage.in_flight.is_empty());
    // Pressed again while shown: nothing more.
    assert!(typing(&mut app, "6").is_empty());
    answer(&mut app);
    assert!(app.usage.in_flight.is_empty());
    // Cost first; the two that cost nothing by name.
    assert_eq!(keys(&app), ["claude-code", "codex", "aider", "opencode"]);
    assert_eq!(app.usage.total.as_ref().unwrap().totals.calls, 70);
    // Tab order: Conversations → Usage → Credentials.
    typing(&mut app, "5");
    typing(&mut app, "\t");
    assert_eq!(app.view, View::Usage);
    typing(&mut app, "\t");
    assert_eq!(app.view, View::Credentials);
}

#[test]
fn b_and_w_change_grouping_and_window_and_old_answers_are_ignored() {
    let mut app = board();
    let fx = typing(&mut app, "b");
    assert_eq!(app.usage.group, Group::Client);
    assert_eq!(commands(&fx), [summary_cmd("client", "today")]);
    assert!(
        app.usage.rows().is_empty(),
        "the old grouping's rows are gone"
    );
    // The answer to the container query, late: ignored.
    reply(
        &mut app,
        Tag::Usage { generation: 0 },
        Ok(result(summary("container"))),
    );
    assert!(app.usage.rows().is_empty());
    answer(&mut app);
    assert_eq!(keys(&app), ["claude-code", "codex", "opencode"]);
    // A second key press before the answer asks again at once for the newest choice.
    assert_eq!(
        commands(&typing(&mut app, "b")),
        [summary_cmd("model", "today")]
    );
    assert_eq!(
        commands(&typing(&mut app, "b")),
        [summary_cmd("container", "today")]
    );
    let mut windows = Vec::new();
    for _ in 0..4 {
        let fx = typing(&mut app, "w");
        windows.push(app.usage.span);
        assert_eq!(
            commands(&fx),
            [summary_cmd("container", app.usage.span.wire())]
        );
    }
    assert_eq!(windows, [Span::Week, Span::Start, Span::Hour, Span::Today]);
}

#[test]
fn s_cycles_the_sort_column_r_reverses_and_the_selection_follows_its_row() {
    let mut app = board();
    typing(&mut app, "j"); // codex
    assert_eq!(app.usage.rows.selected().unwrap().key, "codex");
    // COST → TOK/MIN → $/H → HIT → TTFT → the key.
    typing(&mut app, "sss");
    assert_eq!(app.usage.sort, Column::CacheHit);
    assert_eq!(keys(&app), ["claude-code", "codex", "opencode", "aider"]);
    typing(&mut app, "s");
    assert_eq!(app.usage.sort, Column::Ttft);
    assert_eq!(keys(&app), ["opencode", "claude-code", "codex", "aider"]);
    typing(&mut app, "s");
    assert_eq!(app.usage.sort, Column::Key);
    assert_eq!(keys(&app), ["aider", "claude-code", "codex", "opencode"]);
    typing(&mut app, "r");
    assert_eq!(keys(&app), ["opencode", "codex", "claude-code", "aider"]);
    assert_eq!(app.usage.rows.selected().unwrap().key, "codex");
    // Sorting sends nothing.
    assert!(typing(&mut app, "sr").is_empty());
    assert_eq!(app.usage.sort, Column::Calls);
    assert!(app.usage.reverse);
    assert_eq!(keys(&app), ["aider", "codex", "opencode", "claude-code"]);
}

#[test]
fn live_columns_sort_by_the_calls_seen() {
    let mut app = board();
    typing(&mut app, "s"); // COST → TOK/MIN
    assert_eq!(app.usage.sort, Column::TokensPerMin);
    let c = call("aider", "mock-frontier-9-preview", 50_000, 0, 0);
    event(&mut app, Event::LlmCallNew(c), 1);
    llm_event(&mut app, 2);
    assert_eq!(keys(&app)[..2], ["aider", "claude-code"]);
    let r = app.usage.rate(Some("aider"), app.now);
    assert_eq!(r.tokens_per_min, 50_000.0);
    assert_eq!(r.spark[9], 50_000);
    assert_eq!(app.usage.rate(None, app.now).spark[9], 60_000);
}

#[test]
fn llm_calls_refresh_the_board_at_most_every_2s_and_only_while_shown() {
    let mut app = board();
    // Just answered: a call marks the board stale, the clock refreshes it 2 s after the ask.
    assert!(commands(&llm_event(&mut app, 1)).is_empty());
    assert!(app.usage.stale);
    assert!(commands(&tick(&mut app, Duration::from_secs(1))).is_empty());
    assert_eq!(
        commands(&tick(&mut app, Duration::from_secs(1))),
        [summary_cmd("container", "today")]
    );
    // Calls while it is awaited send nothing; its answer does not clear what they changed.
    assert!(commands(&llm_event(&mut app, 2)).is_empty());
    assert!(commands(&tick(&mut app, Duration::from_secs(3))).is_empty());
    answer(&mut app);
    assert_eq!(
        commands(&tick(&mut app, Duration::from_secs(1))),
        [summary_cmd("container", "today")]
    );
    answer(&mut app);
    // Quiet: the clock asks for nothing.
    assert!(commands(&tick(&mut app, Duration::from_secs(10))).is_empty());
    // Long after the last ask, a call refreshes at once.
    assert_eq!(
        commands(&llm_event(&mut app, 3)),
        [summary_cmd("container", "today")]
    );
    answer(&mut app);
    // Another view: calls feed the live figures and send nothing; coming back asks.
    typing(&mut app, "1");
    assert!(commands(&llm_event(&mut app, 4)).is_empty());
    assert!(commands(&tick(&mut app, Duration::from_secs(60))).is_empty());
    // All four calls arrived in the minute before this one.
    assert_eq!(app.usage.rate(None, app.now).spark[8], 40_000);
    assert_eq!(
        commands(&typing(&mut app, "6")),
        [summary_cmd("container", "today")]
    );
}

#[test]
fn a_daemon_without_the_llm_layer_is_said_so_and_not_asked_again_on_calls() {
    let mut app = demo_app(80, 24);
    typing(&mut app, "6");
    reply(
        &mut app,
        Tag::Usage { generation: 0 },
        Err("the LLM layer is off (llm.enabled = false)".into()),
    );
    let why = app.usage.unavailable.clone().unwrap();
    assert!(why.contains("LLM layer is off"), "{why}");
    assert!(commands(&tick(&mut app, Duration::from_secs(5))).is_empty());
    // R asks again (the daemon may have been restarted with the layer on): an older build.
    let fx = typing(&mut app, "R");
    assert!(commands(&fx).contains(&summary_cmd("container", "today")));
    reply(
        &mut app,
        Tag::Usage { generation: 0 },
        Err("unknown command: usage_summary".into()),
    );
    assert!(app.usage.unavailable.as_ref().unwrap().contains("predates"));
    // Calls cannot come from such a daemon, but if they did nothing would be asked.
    assert!(commands(&llm_event(&mut app, 1)).is_empty());
}

#[test]
fn other_errors_keep_the_rows_and_say_why() {
    let mut app = board();
    typing(&mut app, "R");
    reply(
        &mut app,
        Tag::Usage { generation: 0 },
        Err("too many commands in flight; try again".into()),
    );
    assert_eq!(app.usage.rows().len(), 4);
    assert!(app.usage.unavailable.is_none());
    assert_eq!(
        app.usage.error.as_deref(),
        Some("too many commands in flight; try again")
    );
    answer(&mut app);
    assert!(app.usage.error.is_none());
}

#[test]
fn a_lost_link_frees_the_refresh_and_reconnecting_asks_again() {
    let mut app = board();
    typing(&mut app, "w");
    assert!(!app.usage.in_flight.is_empty());
    app.update(Msg::Link(LinkEvent::Disconnected {
        reason: "gone".into(),
        unauthorized: false,
        retry_in: Duration::from_secs(1),
    }));
    assert!(app.usage.in_flight.is_empty());
    assert!(commands(&typing(&mut app, "w")).is_empty(), "not connected");
    let fx = app.update(Msg::Link(LinkEvent::Connected {
        server_version: "0.1.0".into(),
        url: "ws://x/ws".into(),
    }));
    assert!(commands(&fx).contains(&summary_cmd("container", "start")));
}
