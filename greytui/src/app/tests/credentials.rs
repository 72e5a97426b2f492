//! State-machine tests of the Credentials view and of secret-egress requests in Pending: what
//! is sent when, what replies and events do, and that a secret typed into a form goes only
//! into its command.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use greyproxy_protocol::credentials::{
    CredentialDecision, CredentialLabelArgs, SessionIdArgs, SubstitutionCount, SubstitutionCounts,
};

use super::*;
use crate::sample::credentials::{credentials, credentials_app, egress_pending, sessions};

fn names(fx: &[Effect]) -> Vec<&'static str> {
    commands(fx).iter().map(|c| c.name()).collect()
}

fn listed(app: &mut App) {
    reply(
        app,
        Tag::Credentials,
        Ok(result(serde_json::to_value(credentials()).unwrap())),
    );
    reply(
        app,
        Tag::Sessions,
        Ok(result(serde_json::to_value(sessions()).unwrap())),
    );
}

#[test]
fn opening_the_view_lists_credentials_and_sessions_and_refreshes_while_shown() {
    let mut app = demo_app(120, 40);
    let fx = typing(&mut app, "7");
    assert_eq!(app.view, View::Credentials);
    assert_eq!(names(&fx), ["list_credentials", "list_sessions"]);
    // Awaiting the answers: nothing more.
    assert!(typing(&mut app, "r").is_empty());
    listed(&mut app);
    assert_eq!(app.credentials.creds.len(), 2);
    assert_eq!(app.credentials.sessions.len(), 1);
    assert!(app.credentials.available && app.credentials.loaded);
    // r: now; the clock: every 5 s while shown.
    assert_eq!(
        names(&typing(&mut app, "r")),
        ["list_credentials", "list_sessions"]
    );
    listed(&mut app);
    let later = app.now + Duration::from_secs(2);
    assert!(app.update(Msg::Tick(later)).is_empty());
    let later = app.now + Duration::from_secs(3);
    assert_eq!(
        names(&app.update(Msg::Tick(later))),
        ["list_credentials", "list_sessions"]
    );
    listed(&mut app);
    // A session event while shown fetches again; while another view is shown it does not.
    let ended = greyproxy_protocol::credentials::SessionEnded {
        session_id: "gw-5f0c8c1e2b7a4d38".into(),
        container: "claude".into(),
    };
    let fx = event(&mut app, Event::SessionExpired(ended.clone()), 1);
    assert_eq!(names(&fx), ["list_credentials", "list_sessions"]);
    listed(&mut app);
    typing(&mut app, "1");
    assert!(event(&mut app, Event::SessionDeleted(ended), 2).is_empty());
}

#[test]
fn substitution_counts_move_in_place() {
    let mut app = credentials_app(120, 40);
    let counts = SubstitutionCounts {
        counts: vec![SubstitutionCount {
            session_id: "gw-5f0c8c1e2b7a4d38".into(),
            label: "GITHUB_TOKEN".into(),
            total: 5,
            added: 5,
        }],
    };
    let fx = event(&mut app, Event::CredentialSubstitutions(counts), 1);
    assert!(fx.is_empty());
    let c = &app.credentials;
    assert_eq!(c.creds[1].label, "GITHUB_TOKEN");
    assert_eq!(c.creds[1].substitutions, 3 + 5);
    assert_eq!(c.sessions[0].substitutions["GITHUB_TOKEN"], 5);
    assert_eq!(c.sessions[0].substitutions["ANTHROPIC_API_KEY"], 42);
}

#[test]
fn a_new_credential_sends_its_secret_in_the_command_only() {
    let mut app = credentials_app(120, 40);
    // Missing destination: the form stays open with its error, nothing is sent.
    let fx = typing(&mut app, "nOPENAI_API_KEY\tsk-proj-123\n");
    assert!(fx.is_empty());
    assert!(matches!(&app.modal, Some(Modal::Form(f)) if f.error.is_some()));
    assert!(
        !format!("{:?}", app).contains("sk-proj-123"),
        "Debug shows no secret"
    );
    let fx = typing(&mut app, "\tapi.openai.com, *.openai.azure.com\tci-*\t \n");
    let cmds = commands(&fx);
    let [Command::CreateCredential(args)] = cmds.as_slice() else {
        panic!("{cmds:?}");
    };
    assert_eq!(args.label, "OPENAI_API_KEY");
    assert_eq!(args.secret.0, "sk-proj-123");
    assert_eq!(args.destinations, ["api.openai.com", "*.openai.azure.com"]);
    assert_eq!(args.containers, ["ci-*"]);
    assert!(args.places.unwrap().json_body);
    assert_eq!(args.allow_plaintext, Some(false));
    assert!(app.modal.is_none());
    reply(
        &mut app,
        Tag::CreateCredential("OPENAI_API_KEY".into()),
        Ok(result(json!({}))),
    );
    assert_eq!(
        app.message.as_ref().unwrap().text,
        "created credential OPENAI_API_KEY"
    );
}

#[test]
fn editing_sends_what_changed_and_a_typed_secret_rotates() {
    let mut app = credentials_app(120, 40);
    // GITHUB_TOKEN: keep the destinations, drop the containers, type a new secret.
    let fx = typing(&mut app, "je\t");
    assert!(fx.is_empty());
    let mut fx = app.update(Msg::Key(KeyEvent::new(
        KeyCode::Char('u'),
        KeyModifiers::CONTROL,
    )));
    fx.extend(typing(&mut app, "\t\t\tghp_new\n"));
    let cmds = commands(&fx);
    let [Command::UpdateCredential(args)] = cmds.as_slice() else {
        panic!("{cmds:?}");
    };
    assert_eq!(args.label, "GITHUB_TOKEN");
    assert_eq!(args.destinations, None);
    assert_eq!(args.containers, Some(vec![]));
    assert_eq!(args.places, None);
    assert_eq!(args.secret.as_ref().unwrap().0, "ghp_new");
}

#[test]
fn delete_asks_then_deletes_the_credential_or_ends_the_session() {
    let mut app = credentials_app(120, 40);
    assert!(typing(&mut app, "d").is_empty());
    assert!(matches!(app.modal, Some(Modal::Confirm(_))));
    let fx = typing(&mut app, "y");
    assert_eq!(
        commands(&fx),
        [Command::DeleteCredential(CredentialLabelArgs {
            label: "ANTHROPIC_API_KEY".into()
        })]
    );
    let fx = typing(&mut app, "sdy");
    assert_eq!(
        commands(&fx),
        [Command::DeleteSession(SessionIdArgs {
            session_id: "gw-5f0c8c1e2b7a4d38".into()
        })]
    );
    // e with the sessions selected edits nothing.
    assert!(typing(&mut app, "e").is_empty());
    assert_eq!(app.message.as_ref().unwrap().text, "nothing selected");
}

#[test]
fn secret_egress_is_never_a_one_key_send() {
    let mut app = credentials_app(120, 40);
    typing(&mut app, "1");
    assert_eq!(app.pending[0].id, 18);
    // a, A and D open the egress choices; none sends anything by itself.
    for k in ["a", "A", "D"] {
        assert!(typing(&mut app, k).is_empty(), "{k}");
        assert!(matches!(app.modal, Some(Modal::Egress(_))), "{k}");
        typing(&mut app, "\x1b");
        assert!(app.modal.is_none());
    }
    // Enter chooses the preselected refusal.
    let fx = typing(&mut app, "a\n");
    let cmds = commands(&fx);
    let [Command::DecideCredential(d)] = cmds.as_slice() else {
        panic!("{cmds:?}");
    };
    assert_eq!(
        (d.pending_id, d.decision, d.end_session),
        (18, CredentialDecision::Refuse, None)
    );
    // 2: refuse and end the session.
    let fx = typing(&mut app, "a2");
    let cmds = commands(&fx);
    let [Command::DecideCredential(d)] = cmds.as_slice() else {
        panic!("{cmds:?}");
    };
    assert_eq!(
        (d.decision, d.end_session),
        (CredentialDecision::Refuse, Some(true))
    );
    // 5: bind, through the scope and duration picker.
    let fx = typing(&mut app, "a52");
    assert!(fx.is_empty());
    let fx = typing(&mut app, "2");
    let cmds = commands(&fx);
    let [Command::DecideCredential(d)] = cmds.as_slice() else {
        panic!("{cmds:?}");
    };
    assert_eq!(d.decision, CredentialDecision::Bind);
    assert_eq!(d.scope, Some(Scope::AnyPort));
    assert_eq!(d.duration.as_deref(), Some("1h"));
    reply(
        &mut app,
        Tag::DecideCredential {
            done: "bound and sent",
            what: "#18".into(),
        },
        Ok(success(None)),
    );
    assert_eq!(app.message.as_ref().unwrap().text, "bound and sent #18");
    // A connection request still allows with a.
    typing(&mut app, "j");
    let fx = typing(&mut app, "a");
    assert_eq!(names(&fx), ["allow"]);
}

#[test]
fn secret_egress_notifies_as_such() {
    let mut app = App::new(sample::now(), (80, 24), true);
    let fx = event(&mut app, Event::PendingCreated(egress_pending(4)), 1);
    assert_eq!(fx.first(), Some(&Effect::Bell));
    assert!(matches!(&fx[1], Effect::Notify { summary, body }
        if summary.contains("secret") && body.contains("ANTHROPIC_API_KEY")
            && body.contains("echo.example.net:443")));
}
