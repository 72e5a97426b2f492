//! The dashboard over a fleet: merged pending requests and rules with their host, commands
//! addressed to the owning host, a new request on any host rings, a rule for all hosts, the
//! Hosts view's state per host, focus; activity merged by time with a detail asked of its
//! owner; conversations merged by time, each opened on (and followed from) its owner; usage
//! and today's cost summed over hosts.

use super::*;

fn fleet() -> App {
    let names = ["alpha".to_string(), "beta".to_string()];
    let mut app = App::new(sample::now(), (120, 40), false).with_hosts(&names);
    for (h, name) in names.iter().enumerate() {
        app.update(Msg::Host(
            h,
            LinkEvent::Connected {
                server_version: format!("0.{h}.0"),
                url: name.clone(),
            },
        ));
    }
    app
}

fn host_event(app: &mut App, h: HostId, ev: Event, seq: u64) -> Vec<Effect> {
    app.update(Msg::Host(h, LinkEvent::Event(envelope(&ev, seq))))
}

/// `(host, command name)` of every command sent.
fn sent(fx: &[Effect]) -> Vec<(HostId, &'static str)> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::SendTo(h, r) => Some((*h, r.command.name())),
            Effect::Send(r) => panic!("unaddressed {r:?} in a fleet"),
            _ => None,
        })
        .collect()
}

#[test]
fn each_host_is_loaded_for_the_merged_views() {
    let names = ["alpha".to_string(), "beta".to_string()];
    let mut app = App::new(sample::now(), (120, 40), false).with_hosts(&names);
    let connected = |h: usize| LinkEvent::Connected {
        server_version: "0.1.0".into(),
        url: names[h].clone(),
    };
    let fx = app.update(Msg::Host(1, connected(1)));
    assert_eq!(
        sent(&fx),
        [
            (1, "claim_notifications"),
            (1, "status"),
            (1, "list_pending"),
            (1, "list_rules"),
            (1, "list_activity"),
            (1, "usage_summary")
        ]
    );
    let fx = app.update(Msg::Host(0, connected(0)));
    assert!(sent(&fx).iter().all(|(h, _)| *h == 0));
    assert!(sent(&fx).contains(&(0, "list_activity")));
    assert_eq!(app.hosts[1].state_word(), "connected");
}

#[test]
fn the_same_id_on_two_hosts_is_two_requests_and_a_decision_goes_to_its_owner() {
    let mut app = fleet();
    let fx = host_event(
        &mut app,
        0,
        Event::PendingCreated(pending(5, "a", "x.example", 443, 0)),
        1,
    );
    assert!(fx.contains(&Effect::Bell));
    let fx = host_event(
        &mut app,
        1,
        Event::PendingCreated(pending(5, "b", "y.example", 443, 0)),
        1,
    );
    assert!(fx.contains(&Effect::Bell), "a request on any host rings");
    assert_eq!(app.pending.len(), 2);
    assert_eq!(
        app.pending
            .iter()
            .map(|p| (p.host, p.id))
            .collect::<Vec<_>>(),
        [(0, 5), (1, 5)]
    );
    assert_eq!(app.pending_on(1), 1);

    // Select beta's request and allow it: the allow goes to beta only.
    app.update(key(KeyCode::Char('j')));
    let fx = app.update(key(KeyCode::Char('a')));
    assert_eq!(sent(&fx), [(1, "allow")]);
    // Beta reports it allowed: alpha's request 5 stays.
    let d = PendingDecided {
        pending_id: 5,
        rule: None,
    };
    host_event(&mut app, 1, Event::PendingAllowed(d), 2);
    assert_eq!(app.pending.len(), 1);
    assert_eq!((app.pending[0].host, app.pending[0].id), (0, 5));
}

#[test]
fn a_hosts_page_replaces_only_its_own_items() {
    let mut app = fleet();
    host_event(
        &mut app,
        0,
        Event::PendingCreated(pending(1, "a", "x", 1, 0)),
        1,
    );
    host_event(
        &mut app,
        1,
        Event::PendingCreated(pending(2, "b", "y", 1, 0)),
        1,
    );
    let page = json!({"items": [serde_json::to_value(pending(7, "b", "z", 1, 0)).unwrap()], "total": 1, "next_cursor": null});
    app.update(Msg::Host(
        1,
        LinkEvent::Reply {
            tag: Tag::Pending { append: false },
            outcome: Ok(result(page)),
        },
    ));
    assert_eq!(
        app.pending
            .iter()
            .map(|p| (p.host, p.id))
            .collect::<Vec<_>>(),
        [(0, 1), (1, 7)]
    );
}

#[test]
fn a_seq_gap_on_one_host_resyncs_that_host_only() {
    let mut app = fleet();
    host_event(
        &mut app,
        1,
        Event::PendingCreated(pending(1, "b", "y", 1, 0)),
        10,
    );
    let fx = host_event(
        &mut app,
        1,
        Event::PendingCreated(pending(2, "b", "y", 2, 0)),
        12,
    );
    let s = sent(&fx);
    assert!(s.contains(&(1, "list_pending")), "{s:?}");
    assert!(s.iter().all(|(h, _)| *h == 1), "{s:?}");
    // Interleaved hosts are no gap.
    let fx = host_event(
        &mut app,
        0,
        Event::PendingCreated(pending(1, "a", "x", 1, 0)),
        1,
    );
    let fx2 = host_event(
        &mut app,
        1,
        Event::PendingCreated(pending(3, "b", "y", 3, 0)),
        13,
    );
    assert!(sent(&fx).is_empty() && sent(&fx2).is_empty());
}

#[test]
fn a_new_rule_goes_to_every_connected_host_by_default() {
    let mut app = fleet();
    app.update(key(KeyCode::Char('3')));
    app.update(key(KeyCode::Char('n')));
    let fx = typing(&mut app, "api.example\n");
    assert_eq!(sent(&fx), [(0, "create_rule"), (1, "create_rule")]);

    // Beta goes away: the next rule reaches alpha and says beta was skipped.
    app.update(Msg::Host(
        1,
        LinkEvent::Disconnected {
            reason: "ssh beta: connection refused".into(),
            unauthorized: false,
            retry_in: std::time::Duration::from_secs(1),
        },
    ));
    assert_eq!(app.hosts[1].state_word(), "reconnecting");
    app.update(key(KeyCode::Char('n')));
    let fx = typing(&mut app, "b.example\n");
    assert_eq!(sent(&fx), [(0, "create_rule")]);
    assert!(app.message.as_ref().unwrap().text.contains("beta"));
}

#[test]
fn rules_are_deleted_on_their_host_and_focus_moves_the_single_host_views() {
    let mut app = fleet();
    host_event(
        &mut app,
        1,
        Event::RuleCreated(rule(4, "*", "b.example", "*", RuleAction::Allow)),
        1,
    );
    app.update(key(KeyCode::Char('3')));
    assert_eq!(app.rules[0].host, 1);
    app.update(key(KeyCode::Char('d')));
    let fx = app.update(key(KeyCode::Char('y')));
    assert_eq!(sent(&fx), [(1, "delete_rule")]);

    app.update(key(KeyCode::Char('8')));
    assert_eq!(app.view, View::Hosts);
    app.update(key(KeyCode::Char('j')));
    let fx = app.update(key(KeyCode::Enter));
    assert_eq!(app.focus, 1);
    let s = sent(&fx);
    assert!(s.contains(&(1, "list_activity")), "{s:?}");
    assert!(s.iter().all(|(h, _)| *h == 1), "{s:?}");
    // Keys now address beta; R reloads beta fully and alpha's merged lists.
    app.update(key(KeyCode::Char('1')));
    let fx = app.update(key(KeyCode::Char('R')));
    let s = sent(&fx);
    assert!(s.contains(&(1, "list_activity")), "{s:?}");
    assert!(s.contains(&(0, "list_pending")), "{s:?}");
    assert!(s.contains(&(0, "list_activity")), "{s:?}");
}

#[test]
fn one_daemon_keeps_plain_sends_and_no_hosts_view() {
    let mut app = App::new(sample::now(), (80, 24), false);
    assert!(!app.is_fleet());
    let fx = app.update(Msg::Link(LinkEvent::Connected {
        server_version: "0.1.0".into(),
        url: "ws://x/ws".into(),
    }));
    assert!(fx.iter().all(|e| !matches!(e, Effect::SendTo(..))));
    app.update(key(KeyCode::Char('8')));
    assert_eq!(app.view, View::Pending);
}

#[test]
fn the_hosts_view_records_rtt_and_refusals() {
    let mut app = fleet();
    app.update(Msg::Host(
        0,
        LinkEvent::Rtt(std::time::Duration::from_millis(3)),
    ));
    assert_eq!(app.hosts[0].rtt, Some(std::time::Duration::from_millis(3)));
    app.update(Msg::Host(
        1,
        LinkEvent::Disconnected {
            reason: "ssh beta: greyproxyd there is too old for `attach`".into(),
            unauthorized: true,
            retry_in: std::time::Duration::from_secs(5),
        },
    ));
    assert_eq!(app.hosts[1].state_word(), "refused");
    assert!(app.hosts[1].reason().unwrap().contains("too old"));
    assert_eq!(app.hosts[0].version.as_deref(), Some("0.0.0"));
}

fn host_reply(app: &mut App, h: HostId, tag: Tag, data: serde_json::Value) -> Vec<Effect> {
    app.update(Msg::Host(
        h,
        LinkEvent::Reply {
            tag,
            outcome: Ok(result(data)),
        },
    ))
}

#[test]
fn activity_of_every_host_is_merged_by_time_and_a_detail_asks_its_owner() {
    let mut app = fleet();
    let generation = app.activity.generation;
    let tag = Tag::Activity {
        generation,
        more: None,
    };
    let conn = |id, time| {
        greyproxy_protocol::ActivityItem::Connection(sample::request_log(
            id,
            time,
            "agent",
            "x.example",
            443,
            true,
        ))
    };
    let tx = greyproxy_protocol::ActivityItem::Transaction(greyproxy_protocol::Transaction {
        id: 7,
        timestamp: "2026-11-22T09:59:30Z".into(),
        container_name: "agent".into(),
        ..Default::default()
    });
    let page = |items: Vec<greyproxy_protocol::ActivityItem>| json!({"items": items, "total": items.len(), "next_cursor": null});
    host_reply(
        &mut app,
        0,
        tag.clone(),
        page(vec![conn(2, "09:59:50"), conn(1, "09:59:10")]),
    );
    host_reply(&mut app, 1, tag, page(vec![tx]));
    let rows: Vec<_> = app
        .activity
        .items
        .iter()
        .map(|i| (i.host, super::lists::item_key(i)))
        .collect();
    assert_eq!(
        rows,
        [
            (0, ("connection", 2)),
            (1, ("transaction", 7)),
            (0, ("connection", 1))
        ]
    );
    assert_eq!(app.activity.total, 3);
    // A live row of beta goes on top, with its host.
    host_event(&mut app, 1, log_new(3, "10:00:00"), 1);
    assert_eq!(app.activity.items[0].host, 1);
    // Opening beta's transaction asks beta.
    app.update(key(KeyCode::Char('2')));
    app.update(key(KeyCode::Char('j')));
    app.update(key(KeyCode::Char('j')));
    let fx = app.update(key(KeyCode::Enter));
    assert_eq!(sent(&fx), [(1, "get_transaction")]);
    // alpha's answer about its own transaction 7 is not beta's.
    app.update(Msg::Host(
        0,
        LinkEvent::Reply {
            tag: Tag::Transaction(7),
            outcome: Ok(result(json!({"id": 7}))),
        },
    ));
    assert!(app.activity.detail.as_ref().unwrap().full.is_none());
}

fn log_new(id: u64, time: &str) -> Event {
    Event::RequestLogNew(sample::request_log(
        id,
        time,
        "agent",
        "y.example",
        443,
        true,
    ))
}

#[test]
fn usage_and_todays_cost_are_summed_over_hosts() {
    let mut app = fleet();
    // Today's cost: one answer per host, summed.
    for (h, cost) in [(0, 1_000_000u64), (1, 250_000)] {
        host_reply(
            &mut app,
            h,
            Tag::CostToday,
            json!({"total": {"cost_micro_usd": cost, "unpriced_calls": h}}),
        );
    }
    assert_eq!(app.cost.micro_usd, Some(1_250_000));
    assert_eq!(app.cost.unpriced, 1);
    let fx = app.update(key(KeyCode::Char('6')));
    assert_eq!(sent(&fx), [(0, "usage_summary"), (1, "usage_summary")]);
    let generation = app.usage.generation;
    for h in 0..2 {
        host_reply(
            &mut app,
            h,
            Tag::Usage { generation },
            sample::usage::summary("container"),
        );
    }
    let claude = app
        .usage
        .rows()
        .iter()
        .find(|r| r.key == "claude-code")
        .unwrap();
    assert_eq!(claude.totals.calls, 84);
    assert_eq!(claude.totals.cost_micro_usd, 2 * 3_214_999);
    assert_eq!(app.usage.total.as_ref().unwrap().totals.calls, 140);
    assert_eq!(app.usage.rows().len(), 4);
}

/// A conversation summary with this id and last activity (the sample's main one otherwise).
fn conv(id: &str, at: &str) -> greyproxy_protocol::llm::ConversationSummary {
    let mut s = crate::sample_llm::summaries()
        .into_iter()
        .find(|s| s.id == crate::sample_llm::main_id())
        .unwrap();
    s.id = id.into();
    s.last_activity = at.into();
    s
}

fn conv_rows(app: &App) -> Vec<(HostId, String)> {
    let c = &app.conversations.items;
    c.iter().map(|c| (c.host, c.id.clone())).collect()
}

#[test]
fn conversations_of_every_host_are_merged_by_time_and_open_on_their_owner() {
    let mut app = fleet();
    // Opening the view asks every host, each with the filter.
    let fx = app.update(key(KeyCode::Char('5')));
    assert_eq!(
        sent(&fx),
        [(0, "list_conversations"), (1, "list_conversations")]
    );
    let generation = app.conversations.generation;
    let tag = Tag::Conversations {
        generation,
        more: false,
    };
    let main = crate::sample_llm::main_id();
    let page = |items: Vec<greyproxy_protocol::llm::ConversationSummary>, next: Option<&str>| json!({"conversations": items, "next_before": next});
    host_reply(
        &mut app,
        0,
        tag.clone(),
        page(
            vec![
                conv("c:2", "2026-11-22T09:59:50.000Z"),
                conv(&main, "2026-11-22T09:59:10.000Z"),
            ],
            Some("2026-11-22T09:59:10.000Z"),
        ),
    );
    // Beta's conversation has the same id as one of alpha's: it is another conversation.
    host_reply(
        &mut app,
        1,
        tag,
        page(vec![conv(&main, "2026-11-22T09:59:30.000Z")], None),
    );
    assert_eq!(
        conv_rows(&app),
        [(0, "c:2".into()), (1, main.clone()), (0, main.clone())]
    );
    // Only alpha has older conversations: paging on asks alpha only.
    assert_eq!(
        app.conversations
            .next_before
            .keys()
            .copied()
            .collect::<Vec<_>>(),
        [0]
    );

    // Beta's updates are followed though alpha is focused: its conversation moves up,
    // alpha's of the same id stays where it was.
    let mut moved = conv(&main, "2026-11-22T10:00:01.000Z");
    moved.turns = 9;
    host_event(&mut app, 1, Event::ConversationUpdated(moved.into()), 1);
    assert_eq!(
        conv_rows(&app),
        [(1, main.clone()), (0, "c:2".into()), (0, main.clone())]
    );
    assert_eq!(app.conversations.items[0].turns, 9);
    assert_ne!(app.conversations.items[2].turns, 9);

    // Enter on beta's row asks beta only.
    let fx = app.update(key(KeyCode::Enter));
    assert_eq!(sent(&fx), [(1, "get_conversation")]);
    // Alpha's answer about its own conversation of that id is not the one opened.
    host_reply(
        &mut app,
        0,
        Tag::Conversation(main.clone()),
        serde_json::to_value(crate::sample_llm::conversation()).unwrap(),
    );
    let open = app.conversations.stack.last().unwrap();
    assert!(open.conv.is_none());
    host_reply(
        &mut app,
        1,
        Tag::Conversation(main.clone()),
        serde_json::to_value(crate::sample_llm::conversation()).unwrap(),
    );
    let open = app.conversations.stack.last().unwrap();
    assert_eq!(open.host, 1);
    assert!(open.conv.is_some());
    // `t` on a step asks beta for the call of its transaction.
    app.update(key(KeyCode::Char('G')));
    let fx = app.update(key(KeyCode::Char('t')));
    assert_eq!(sent(&fx), [(1, "list_llm_calls")]);
}

#[test]
fn why_opens_the_conversation_on_the_pending_requests_host() {
    let mut app = fleet();
    let mut p = pending(5, "agent", "x.example", 443, 0);
    p.llm_context = Some(crate::sample_llm::llm_context());
    host_event(&mut app, 1, Event::PendingCreated(p), 1);
    let fx = app.update(key(KeyCode::Char('w')));
    assert_eq!(app.view, View::Conversations);
    let s = sent(&fx);
    assert!(s.contains(&(1, "get_conversation")), "{s:?}");
    assert!(!s.contains(&(0, "get_conversation")), "{s:?}");
    assert_eq!(app.conversations.stack.last().unwrap().host, 1);
}
