//! Render snapshots of the Usage view at 80×24 and 120×40 from the sample board (fixed clock,
//! ten minutes of live calls): by container, by model with a name carrying an escape sequence,
//! sorted by another column, empty, and a daemon without the LLM layer.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use greytui::app::{App, Msg, Tag};
use greytui::link::LinkEvent;
use greytui::sample::usage::{answer, usage_app};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const SIZES: [(u16, u16); 2] = [(80, 24), (120, 40)];

fn keys(app: &mut App, s: &str) {
    for c in s.chars() {
        app.update(Msg::Key(KeyEvent::new(
            KeyCode::Char(c),
            KeyModifiers::NONE,
        )));
    }
}

fn render(app: &App) -> TestBackend {
    let mut t = Terminal::new(TestBackend::new(app.size.0, app.size.1)).unwrap();
    t.draw(|f| greytui::ui::draw(f, app)).unwrap();
    t.backend().clone()
}

/// Snapshots `setup` applied to the sample board, at both sizes.
fn snap(name: &str, setup: impl Fn(&mut App)) {
    for (w, h) in SIZES {
        let mut app = usage_app(w, h);
        setup(&mut app);
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), render(&app));
    }
}

#[test]
fn usage_board_by_container() {
    snap("usage", |_| {});
}

#[test]
fn usage_board_by_model_sorted_by_time_to_first_token() {
    snap("usage_by_model", |app| {
        keys(app, "bb");
        answer(app);
        keys(app, "ssssjj");
    });
}

#[test]
fn usage_board_by_client_over_the_last_hour_with_nothing_in_it() {
    snap("usage_empty", |app| {
        keys(app, "bwww");
        let generation = app.usage.generation;
        app.update(Msg::Link(LinkEvent::Reply {
            tag: Tag::Usage { generation },
            outcome: Ok(greytui::sample::result_reply(serde_json::json!({
                "group_by": "client", "since": "2026-11-22T09:00:00.000Z", "until": null,
                "rows": [], "total": {"key": "total", "calls": 0, "usage": {
                    "input_tokens": 0, "cache_read_tokens": 0, "cache_write_tokens": 0,
                    "output_tokens": 0, "reasoning_tokens": 0},
                    "cost_micro_usd": 0, "unpriced_calls": 0, "duration_ms": 0,
                    "cache_hit_ratio": 0.0}
            }))),
        }));
    });
}

#[test]
fn usage_board_of_a_daemon_without_the_llm_layer() {
    for (w, h) in SIZES {
        let mut app = greytui::sample::demo_app(w, h);
        keys(&mut app, "6");
        app.update(Msg::Link(LinkEvent::Reply {
            tag: Tag::Usage { generation: 0 },
            outcome: Err("the LLM layer is off (llm.enabled = false)".into()),
        }));
        insta::assert_snapshot!(format!("usage_llm_off_{w}x{h}"), render(&app));
    }
}

#[test]
fn tiny_terminals_do_not_panic() {
    for (w, h) in [(1, 1), (20, 5), (40, 10), (300, 100)] {
        let mut app = usage_app(w, h);
        for k in ["", "b", "s", "r", "j", "G"] {
            keys(&mut app, k);
            answer(&mut app);
            assert_eq!(render(&app).buffer().area.width, w);
        }
    }
}
