//! Render snapshots of the LLM parts of the dashboard at 80×24 and 120×40, from the sample
//! dashboard with the LLM layer (`sample_llm`): the conversations list, an opened
//! conversation (a subagent link, an error result, escaped control characters), the subagent
//! opened from it, the Pending view and the picker with the why of a held request, today's
//! cost in the status bar, and a daemon without the LLM layer. Plus a conversation of 5 000
//! turns with a 1 MiB tool result, which must draw as fast as a small one.

use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use greytui::app::{App, Msg, Tag};
use greytui::link::LinkEvent;
use greytui::sample::result_reply;
use greytui::sample_llm::{conversation, demo_llm_app, main_id, subagent, subagent_id};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const SIZES: [(u16, u16); 2] = [(80, 24), (120, 40)];

fn keys(app: &mut App, s: &str) {
    for c in s.chars() {
        let code = match c {
            '\n' => KeyCode::Enter,
            '\x1b' => KeyCode::Esc,
            '\x08' => KeyCode::Backspace,
            c => KeyCode::Char(c),
        };
        app.update(Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)));
    }
}

fn render(app: &App) -> TestBackend {
    let mut t = Terminal::new(TestBackend::new(app.size.0, app.size.1)).unwrap();
    t.draw(|f| greytui::ui::draw(f, app)).unwrap();
    t.backend().clone()
}

fn snap(name: &str, setup: impl Fn(&mut App)) {
    for (w, h) in SIZES {
        let mut app = demo_llm_app(w, h);
        setup(&mut app);
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), render(&app));
    }
}

/// The daemon's answer to `get_conversation`.
fn loaded(app: &mut App, c: &greyproxy_protocol::llm::Conversation) {
    app.update(Msg::Link(LinkEvent::Reply {
        tag: Tag::Conversation(c.summary.id.clone()),
        outcome: Ok(result_reply(serde_json::to_value(c).unwrap())),
    }));
}

/// The main sample conversation opened from the list.
fn opened(app: &mut App) {
    keys(app, "5\n");
    loaded(app, &conversation());
}

#[test]
fn conversations_list() {
    snap("conversations", |app| keys(app, "5"));
}

#[test]
fn conversations_list_without_the_llm_layer() {
    // A daemon with the LLM layer off answers every LLM command with an error: no cost in the
    // status bar, and the view says why it is empty.
    for (w, h) in SIZES {
        let mut app = greytui::sample::demo_app(w, h);
        let off = || Err("the LLM layer is off (llm.enabled = false)".to_string());
        app.update(Msg::Link(LinkEvent::Reply {
            tag: Tag::CostToday,
            outcome: off(),
        }));
        keys(&mut app, "5");
        app.update(Msg::Link(LinkEvent::Reply {
            tag: Tag::Conversations {
                generation: 0,
                more: false,
            },
            outcome: off(),
        }));
        insta::assert_snapshot!(format!("conversations_unavailable_{w}x{h}"), render(&app));
    }
}

#[test]
fn conversation_detail_header_and_first_turn() {
    snap("conversation", opened);
}

#[test]
fn conversation_detail_subagent_link_and_error_result() {
    // Down to the Grep call (prompt, thinking, text, Task, Read, Grep): its result is an error.
    snap("conversation_steps", |app| {
        opened(app);
        keys(app, "jjjjj");
    });
}

#[test]
fn conversation_subagent_opened_from_its_tool_call() {
    snap("conversation_subagent", |app| {
        opened(app);
        keys(app, "jjj\n");
        loaded(app, &subagent());
    });
}

#[test]
fn pending_rows_show_their_why() {
    snap("pending_why", |_| {});
}

#[test]
fn picker_shows_the_why_above_the_scopes() {
    snap("picker_why", |app| keys(app, "A"));
}

/// A conversation nobody could read in one screen: 5 000 turns, a 1 MiB tool result in the
/// middle, control characters. Laying it out happens once per fetch; a frame draws only the
/// lines on screen, so frames cost the same as for a small conversation.
#[test]
fn a_huge_conversation_stays_responsive() {
    let mut c = conversation();
    let template = c.turns[0].clone();
    c.turns = (1..=5000)
        .map(|n| {
            let mut t = template.clone();
            t.number = n;
            t
        })
        .collect();
    let huge = "x\x1b[2J".repeat(1024 * 1024 / 5);
    c.turns[2500].steps[1].tool_calls[0].result_preview = Some(huge);
    let mut app = demo_llm_app(120, 40);
    keys(&mut app, "5\n");
    let t0 = Instant::now();
    loaded(&mut app, &c);
    let layout = t0.elapsed();
    // Small conversation for comparison.
    let mut small = demo_llm_app(120, 40);
    opened(&mut small);
    let frame = |app: &App| {
        let t = Instant::now();
        for _ in 0..20 {
            render(app);
        }
        t.elapsed() / 20
    };
    let (f_small, f_huge) = (frame(&small), frame(&app));
    // Jump into the 1 MiB result and draw there too.
    keys(&mut app, "G");
    let f_end = frame(&app);
    eprintln!("layout {layout:?}; frame small {f_small:?}, huge {f_huge:?}, at the end {f_end:?}");
    let bound = f_small * 5 + Duration::from_millis(20);
    assert!(
        f_huge < bound && f_end < bound,
        "{f_huge:?} {f_end:?} vs {f_small:?}"
    );
    assert!(layout < Duration::from_secs(20), "{layout:?}");
    let screen = format!("{}", render(&app));
    assert!(
        !screen.contains('\x1b'),
        "control characters reach the terminal"
    );
    assert!(screen.contains("Turn 5000"), "{screen}");
}

#[test]
fn the_subagent_id_is_linked_from_the_main_conversation() {
    // The samples the snapshots rely on: the Task call of turn 1 links the subagent.
    let c = conversation();
    let link = c.turns[0].steps[0].tool_calls[0]
        .linked_conversation_id
        .clone();
    assert_eq!(link, Some(subagent_id()));
    assert_eq!(c.summary.id, main_id());
}
