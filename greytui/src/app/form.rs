//! Forms: the rule editor, the activity and conversations filters, silent mode and the
//! credential forms (`form_credentials.rs`). Fields are text, a secret (shown as dots) or a
//! choice; keys come from the keymap's form context, anything else types into the
//! focused field. The [`super::App`] validates a submitted form and turns it into a command.

use crossterm::event::{KeyCode, KeyEvent};
use greyproxy_protocol::credentials::{CredentialInfo, WireSecret};
use greyproxy_protocol::{Decision, Rule};

use super::Hosted;

use super::lists::ActivityFilter;
use super::modal::{Outcome, typed_char};
use crate::keymap::{Action, Ctx, action_in};

/// A form field's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FieldKind {
    /// Free text.
    Text(String),
    /// A secret: drawn as dots, `Debug` prints `<secret>`.
    Secret(WireSecret),
    /// One of fixed options.
    Choice {
        /// The options.
        options: &'static [&'static str],
        /// The chosen one.
        idx: usize,
    },
}

/// One form field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Field {
    /// Label.
    pub(crate) label: &'static str,
    /// Value.
    pub(crate) kind: FieldKind,
    /// One-line explanation shown under the fields when focused.
    pub(crate) help: &'static str,
}

pub(super) fn text(label: &'static str, value: &str, help: &'static str) -> Field {
    Field {
        label,
        kind: FieldKind::Text(value.to_string()),
        help,
    }
}

pub(super) fn choice(
    label: &'static str,
    options: &'static [&'static str],
    idx: usize,
    help: &'static str,
) -> Field {
    Field {
        label,
        kind: FieldKind::Choice { options, idx },
        help,
    }
}

/// What a form is for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FormPurpose {
    /// Create a rule.
    NewRule,
    /// Edit this rule (as it was when the form opened) of its host.
    EditRule(Box<Hosted<Rule>>),
    /// Activity filter.
    Filter,
    /// Switch silent mode on.
    Silent,
    /// Conversations filter.
    ConversationFilter,
    /// Create a credential.
    NewCredential,
    /// Edit this credential (as it was when the form opened).
    EditCredential(Box<CredentialInfo>),
}

/// A form.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Form {
    /// What it is for.
    pub(crate) purpose: FormPurpose,
    /// Title.
    pub(crate) title: String,
    /// Fields.
    pub(crate) fields: Vec<Field>,
    /// Focused field.
    pub(crate) focus: usize,
    /// Validation error of the last save attempt.
    pub(crate) error: Option<String>,
}

const ACTIONS: &[&str] = &["allow", "deny"];
/// Where a new rule goes over a fleet.
pub(crate) const HOST_SCOPES: &[&str] = &["all hosts", "focused host"];
const RESULTS: &[&str] = &["any", "allowed", "blocked"];
const KINDS: &[&str] = &["any", "connection", "transaction"];
const CLIENTS: &[&str] = &[
    "any",
    "claude-code",
    "codex",
    "opencode",
    "aider",
    "gemini-cli",
    "other",
];

impl Form {
    /// An empty rule; over a fleet with a `hosts` choice (all hosts, or the focused one).
    pub(crate) fn new_rule(fleet: bool) -> Form {
        let mut f = Form::new_rule_fields();
        if fleet {
            f.fields.push(choice(
                "hosts",
                HOST_SCOPES,
                0,
                "←/→: every connected host, or the focused one (Hosts view)",
            ));
        }
        f
    }

    fn new_rule_fields() -> Form {
        Form {
            purpose: FormPurpose::NewRule,
            title: "New rule".into(),
            fields: vec![
                text("container", "*", "glob over container names; * = all"),
                text(
                    "destination",
                    "",
                    "host, *.domain, **.domain (with apex), CIDR or *",
                ),
                text("port", "*", "*, 443, 8000-8100 or 80,443"),
                choice("action", ACTIONS, 0, "←/→ or space to change"),
                text("notes", "", "free text"),
                text("expires", "", "empty = permanent, or 1h, 12h, 7d, 30m…"),
            ],
            focus: 1,
            error: None,
        }
    }

    /// A rule's fields, to edit.
    pub(crate) fn edit_rule(r: &Hosted<Rule>) -> Form {
        let action = ACTIONS.iter().position(|a| *a == r.action.as_str());
        Form {
            purpose: FormPurpose::EditRule(Box::new(r.clone())),
            title: format!("Edit rule {}", r.id),
            fields: vec![
                text(
                    "container",
                    &r.container_pattern,
                    "glob over container names; * = all",
                ),
                text(
                    "destination",
                    &r.destination_pattern,
                    "host, *.domain, **.domain (with apex), CIDR or *",
                ),
                text("port", &r.port_pattern, "*, 443, 8000-8100 or 80,443"),
                choice(
                    "action",
                    ACTIONS,
                    action.unwrap_or(0),
                    "←/→ or space to change",
                ),
                text(
                    "notes",
                    r.notes.as_deref().unwrap_or(""),
                    "free text; empty clears",
                ),
                text(
                    "expires",
                    "",
                    "empty = unchanged, permanent = never, or 1h, 7d… from now",
                ),
            ],
            focus: 0,
            error: None,
        }
    }

    /// The activity filter.
    pub(crate) fn filter(f: &ActivityFilter) -> Form {
        let result = match f.result {
            None => 0,
            Some(Decision::Allowed) => 1,
            Some(Decision::Blocked) => 2,
            // A result this build does not know filters nothing it can show.
            Some(_) => 0,
        };
        let kind = f
            .kind
            .as_deref()
            .and_then(|k| KINDS.iter().position(|x| *x == k))
            .unwrap_or(0);
        Form {
            purpose: FormPurpose::Filter,
            title: "Filter activity".into(),
            fields: vec![
                text("container", &f.container, "substring of the container name"),
                text(
                    "destination",
                    &f.destination,
                    "substring of the host or resolved name",
                ),
                choice("result", RESULTS, result, "←/→ or space to change"),
                choice("kind", KINDS, kind, "←/→ or space to change"),
            ],
            focus: 0,
            error: None,
        }
    }

    /// The conversations filter.
    pub(crate) fn conversation_filter(f: &super::conversations::ConvFilter) -> Form {
        let client = f
            .client
            .as_deref()
            .and_then(|c| CLIENTS.iter().position(|x| *x == c))
            .unwrap_or(0);
        Form {
            purpose: FormPurpose::ConversationFilter,
            title: "Filter conversations".into(),
            fields: vec![
                text("container", &f.container, "substring of the container name"),
                choice("client", CLIENTS, client, "←/→ or space to change"),
                text("model", &f.model, "substring of a model answered"),
            ],
            focus: 0,
            error: None,
        }
    }

    /// Silent mode.
    pub(crate) fn silent() -> Form {
        Form {
            purpose: FormPurpose::Silent,
            title: "Silent mode".into(),
            fields: vec![
                choice(
                    "mode",
                    ACTIONS,
                    0,
                    "allow = everything passes, deny = everything is blocked",
                ),
                text(
                    "duration",
                    "",
                    "empty = until the daemon restarts, or 30m, 2h…",
                ),
            ],
            focus: 1,
            error: None,
        }
    }

    /// The trimmed text of field `i` (empty for a choice).
    pub(crate) fn text(&self, i: usize) -> &str {
        match self.fields.get(i).map(|f| &f.kind) {
            Some(FieldKind::Text(t)) => t.trim(),
            _ => "",
        }
    }

    /// The chosen option of field `i` (empty for text).
    pub(crate) fn choice(&self, i: usize) -> &'static str {
        match self.fields.get(i).map(|f| &f.kind) {
            Some(FieldKind::Choice { options, idx }) => options.get(*idx).copied().unwrap_or(""),
            _ => "",
        }
    }

    /// Handles a key; `Submit(())` asks the app to validate and act.
    pub(crate) fn key(&mut self, k: KeyEvent) -> Outcome<()> {
        let n = self.fields.len().max(1);
        let field = self.fields.get_mut(self.focus);
        match (action_in(Ctx::Form, k), field) {
            (Some(Action::Select), _) => return Outcome::Submit(()),
            (Some(Action::Cancel), _) => return Outcome::Close,
            (Some(Action::NextField), _) => self.focus = (self.focus + 1) % n,
            (Some(Action::PrevField), _) => self.focus = (self.focus + n - 1) % n,
            (Some(Action::ChoiceNext), Some(f)) => cycle(f, 1),
            (Some(Action::ChoicePrev), Some(f)) => cycle(f, -1),
            (Some(Action::ClearField), Some(f)) => match &mut f.kind {
                FieldKind::Text(t) | FieldKind::Secret(WireSecret(t)) => t.clear(),
                FieldKind::Choice { .. } => {}
            },
            (_, Some(f)) => match (&mut f.kind, k.code, typed_char(k)) {
                (FieldKind::Text(t) | FieldKind::Secret(WireSecret(t)), KeyCode::Backspace, _) => {
                    t.pop();
                }
                (FieldKind::Text(t) | FieldKind::Secret(WireSecret(t)), _, Some(c)) => t.push(c),
                (FieldKind::Choice { .. }, _, Some(' ')) => cycle(f, 1),
                _ => {}
            },
            _ => {}
        }
        Outcome::Stay
    }
}

fn cycle(f: &mut Field, delta: isize) {
    if let FieldKind::Choice { options, idx } = &mut f.kind {
        let n = options.len().max(1) as isize;
        *idx = ((*idx as isize + delta).rem_euclid(n)) as usize;
    }
}
