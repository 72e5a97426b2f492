//! Render snapshots of the Credentials view, the credential forms (the secret shown as dots),
//! a secret-egress request in Pending and its picker, at 80×24 and 120×40 from the samples
//! (fixed clock). The `.snap` files live in tests/snapshots.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use greytui::app::{App, Msg};
use greytui::sample::credentials::credentials_app;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const SIZES: [(u16, u16); 2] = [(80, 24), (120, 40)];

fn keys(app: &mut App, s: &str) {
    for c in s.chars() {
        let code = match c {
            '\n' => KeyCode::Enter,
            '\t' => KeyCode::Tab,
            c => KeyCode::Char(c),
        };
        app.update(Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)));
    }
}

fn render(app: &App) -> String {
    let mut t = Terminal::new(TestBackend::new(app.size.0, app.size.1)).unwrap();
    t.draw(|f| greytui::ui::draw(f, app)).unwrap();
    format!("{}", t.backend())
}

/// Snapshots `setup` applied to the sample Credentials view, at both sizes.
fn snap(name: &str, setup: impl Fn(&mut App)) {
    for (w, h) in SIZES {
        let mut app = credentials_app(w, h);
        setup(&mut app);
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), render(&app));
    }
}

#[test]
fn credentials_and_sessions() {
    snap("credentials", |_| {});
}

#[test]
fn sessions_selected() {
    snap("credentials_sessions", |app| keys(app, "s"));
}

#[test]
fn new_credential_form_hides_the_secret() {
    snap("credential_new", |app| {
        keys(app, "nOPENAI_API_KEY\tsk-proj-do-not-show\t")
    });
    let mut app = credentials_app(120, 40);
    keys(&mut app, "nOPENAI_API_KEY\tsk-proj-do-not-show");
    let screen = render(&app);
    assert!(!screen.contains("do-not-show"), "{screen}");
    assert!(screen.contains(&"•".repeat(19)), "{screen}");
}

#[test]
fn edit_credential_form() {
    snap("credential_edit", |app| keys(app, "je"));
}

#[test]
fn delete_asks_first() {
    snap("credential_delete", |app| keys(app, "d"));
}

#[test]
fn secret_egress_in_pending_and_its_picker() {
    snap("pending_egress", |app| keys(app, "1"));
    snap("egress_picker", |app| keys(app, "1a"));
    snap("egress_bind", |app| keys(app, "1a5"));
}
