//! The keymap's tests: lookups, hints, the help overlay and the documented tables.
use super::*;

fn press(code: KeyCode, mods: KeyModifiers) -> KeyEvent {
    KeyEvent::new(code, mods)
}

#[test]
fn no_key_is_bound_twice_in_one_context() {
    for ctx in Ctx::ALL {
        let mut seen = Vec::new();
        for b in BINDINGS.iter().filter(|b| b.ctx == ctx) {
            for k in b.keys {
                assert!(!seen.contains(k), "{k:?} bound twice in {ctx:?}");
                seen.push(*k);
            }
        }
    }
}

#[test]
fn view_keys_win_over_global_ones_and_shift_is_folded() {
    let d = press(KeyCode::Char('d'), KeyModifiers::NONE);
    assert_eq!(action_for(Ctx::Pending, d), Some(Action::Dismiss));
    assert_eq!(action_for(Ctx::Rules, d), Some(Action::DeleteRule));
    assert_eq!(
        action_for(Ctx::Pending, press(KeyCode::Char('A'), KeyModifiers::SHIFT)),
        Some(Action::AllowPick)
    );
    assert_eq!(
        action_for(Ctx::Pending, press(KeyCode::BackTab, KeyModifiers::SHIFT)),
        Some(Action::PrevView)
    );
    assert_eq!(
        action_for(Ctx::Rules, press(KeyCode::Char('C'), KeyModifiers::CONTROL)),
        Some(Action::Quit)
    );
    // Modal contexts are searched alone: `1` types into a form instead of switching views.
    assert_eq!(
        action_in(Ctx::Form, press(KeyCode::Char('1'), KeyModifiers::NONE)),
        None
    );
}

#[test]
fn hints_and_help_come_from_the_table() {
    let h = hints(Ctx::Pending);
    assert_eq!(h.first(), Some(&("a".to_string(), "allow")));
    assert!(h.contains(&("?".to_string(), "help")));
    let help = help_lines();
    assert!(
        help.iter()
            .any(|(_, k, d)| k == "A" && d.contains("picker"))
    );
    assert!(help.iter().any(|(_, k, _)| k == "ctrl-d pgdn"));
}

#[test]
fn the_documented_keymap_is_the_table() {
    let doc = include_str!("../../../docs/greytui.md");
    assert!(
        doc.contains(&markdown()),
        "docs/greytui.md's key tables differ from keymap::BINDINGS; paste keymap::markdown():\n{}",
        markdown()
    );
}
