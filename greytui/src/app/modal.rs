//! Modal state: the scope / duration picker of `A` and `D`, forms (rule editor, activity
//! filter, silent mode) and the yes/no confirmation. Each one turns keys into an outcome; the
//! [`super::App`] turns outcomes into commands.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use greyproxy_protocol::PendingRequest;
use greyproxy_protocol::command::Scope;

use super::{HostId, Hosted};
use crate::keymap::{Action, Ctx, action_in};

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verb {
    /// `allow`.
    Allow,
    /// `deny`.
    Deny,
    /// Bind a secret-egress request's destination to its credential (`decide_credential`).
    Bind,
}

/// Scopes offered by the picker, with their labels.
pub(crate) const SCOPES: [(Scope, &str); 4] = [
    (Scope::Exact, "exact"),
    (Scope::AnyPort, "any port"),
    (Scope::SubdomainWildcard, "subdomain"),
    (Scope::AllContainers, "all containers"),
];

/// Durations offered by the picker; the last entry asks for a typed one.
pub(crate) const DURATIONS: [&str; 8] = [
    "once",
    "1h",
    "12h",
    "24h",
    "7d",
    "30d",
    "permanent",
    "other…",
];

/// Index of `permanent` in [`DURATIONS`], the preselected duration.
const PERMANENT: usize = 6;

/// Where the picker is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PickerStep {
    /// Choosing the scope.
    Scope,
    /// Choosing the duration.
    Duration,
    /// Typing a duration.
    Typed,
}

/// The scope / duration picker for one pending request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Picker {
    /// Allow or deny.
    pub(crate) verb: Verb,
    /// The request being decided (a copy: it may disappear meanwhile).
    pub(crate) pending: Hosted<PendingRequest>,
    /// Current step.
    pub(crate) step: PickerStep,
    /// Highlighted scope.
    pub(crate) scope: usize,
    /// Highlighted duration.
    pub(crate) duration: usize,
    /// Typed duration.
    pub(crate) typed: String,
}

/// What a key did to a modal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome<T> {
    /// Still open.
    Stay,
    /// Closed without acting.
    Close,
    /// Act.
    Submit(T),
}

/// A typed character, if `k` is one (no Ctrl/Alt).
pub(super) fn typed_char(k: KeyEvent) -> Option<char> {
    match k.code {
        KeyCode::Char(c)
            if !k
                .modifiers
                .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT) =>
        {
            Some(c)
        }
        _ => None,
    }
}

impl Picker {
    /// A picker at its first step, `permanent` preselected.
    pub(crate) fn new(verb: Verb, pending: Hosted<PendingRequest>) -> Picker {
        Picker {
            verb,
            pending,
            step: PickerStep::Scope,
            scope: 0,
            duration: PERMANENT,
            typed: String::new(),
        }
    }

    /// What a scope would create, e.g. `opencode → **.example.com:*`.
    pub(crate) fn preview(&self, scope: Scope) -> String {
        let p = &self.pending;
        let host = p.display_host();
        match scope {
            Scope::Exact => format!("{} → {host}:{}", p.container_name, p.destination_port),
            Scope::AnyPort => format!("{} → {host}:*", p.container_name),
            Scope::SubdomainWildcard => match guess_domain(host) {
                Some(d) => format!("{} → **.{d}:*", p.container_name),
                None => format!(
                    "{} → {host}:{} (stays exact)",
                    p.container_name, p.destination_port
                ),
            },
            Scope::AllContainers => format!("* → {host}:{}", p.destination_port),
            other => format!(
                "{} → {host}:{} ({other:?})",
                p.container_name, p.destination_port
            ),
        }
    }

    /// Handles a key.
    pub(crate) fn key(&mut self, k: KeyEvent) -> Outcome<(Scope, String)> {
        if self.step == PickerStep::Typed {
            match action_in(Ctx::Form, k) {
                Some(Action::Select) => {
                    let d = self.typed.trim();
                    if d.is_empty() {
                        return Outcome::Stay;
                    }
                    return Outcome::Submit((self.chosen_scope(), d.to_string()));
                }
                Some(Action::Cancel) => self.step = PickerStep::Duration,
                Some(Action::ClearField) => self.typed.clear(),
                _ if k.code == KeyCode::Backspace => {
                    self.typed.pop();
                }
                _ => {
                    if let Some(c) = typed_char(k) {
                        self.typed.push(c);
                    }
                }
            }
            return Outcome::Stay;
        }
        let len = match self.step {
            PickerStep::Scope => SCOPES.len(),
            _ => DURATIONS.len(),
        };
        let cur = match self.step {
            PickerStep::Scope => &mut self.scope,
            _ => &mut self.duration,
        };
        let digit = typed_char(k)
            .and_then(|c| c.to_digit(10))
            .filter(|d| (1..=len as u32).contains(d));
        match (action_in(Ctx::Picker, k), digit) {
            (_, Some(d)) => {
                *cur = d as usize - 1;
                self.advance()
            }
            (Some(Action::Down), _) => {
                *cur = (*cur + 1) % len;
                Outcome::Stay
            }
            (Some(Action::Up), _) => {
                *cur = (*cur + len - 1) % len;
                Outcome::Stay
            }
            (Some(Action::Select), _) => self.advance(),
            (Some(Action::Cancel), _) => match self.step {
                PickerStep::Scope => Outcome::Close,
                _ => {
                    self.step = PickerStep::Scope;
                    Outcome::Stay
                }
            },
            _ => Outcome::Stay,
        }
    }

    fn chosen_scope(&self) -> Scope {
        SCOPES.get(self.scope).map(|s| s.0).unwrap_or_default()
    }

    fn advance(&mut self) -> Outcome<(Scope, String)> {
        match self.step {
            PickerStep::Scope => {
                self.step = PickerStep::Duration;
                Outcome::Stay
            }
            _ if self.duration + 1 == DURATIONS.len() => {
                self.step = PickerStep::Typed;
                Outcome::Stay
            }
            _ => {
                let d = DURATIONS.get(self.duration).copied().unwrap_or("permanent");
                Outcome::Submit((self.chosen_scope(), d.to_string()))
            }
        }
    }
}

/// The registrable domain the daemon will most likely pick for `host`, for the picker's
/// preview only: the daemon decides with the Public Suffix List. Two labels, three when the
/// second-level label is a short public one (`co.uk`, `com.au`); `None` for IP literals.
pub(crate) fn guess_domain(host: &str) -> Option<String> {
    if host.parse::<std::net::IpAddr>().is_ok() || !host.contains('.') {
        return None;
    }
    let labels: Vec<&str> = host.trim_end_matches('.').split('.').collect();
    let n = labels.len();
    let second = labels.get(n.wrapping_sub(2)).copied().unwrap_or("");
    let take = if n >= 3 && ["co", "com", "net", "org", "gov", "ac", "edu"].contains(&second) {
        3
    } else {
        2
    };
    Some(labels[n.saturating_sub(take)..].join("."))
}

/// What a confirmation confirms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Confirm {
    /// Delete this rule (id, summary) of this host.
    DeleteRule(u64, String, HostId),
    /// Delete this credential (label).
    DeleteCredential(String),
    /// End this launcher session (id, container).
    EndSession(String, String),
}

impl Confirm {
    /// The question.
    pub(crate) fn question(&self) -> String {
        match self {
            Confirm::DeleteRule(id, s, _) => format!("Delete rule {id} ({s})?"),
            Confirm::DeleteCredential(label) => format!(
                "Delete credential {label}? Its placeholders are held as secret egress from then on."
            ),
            Confirm::EndSession(id, container) => {
                format!("End session {id} of {container}? Its placeholders stop working.")
            }
        }
    }

    /// Handles a key: `Submit` on yes.
    pub(crate) fn key(&self, k: KeyEvent) -> Outcome<()> {
        match action_in(Ctx::Confirm, k) {
            Some(Action::Yes) => Outcome::Submit(()),
            Some(Action::No) => Outcome::Close,
            _ => Outcome::Stay,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_guesses_for_the_preview() {
        assert_eq!(
            guess_domain("registry.npmjs.org").as_deref(),
            Some("npmjs.org")
        );
        assert_eq!(guess_domain("api.foo.co.uk").as_deref(), Some("foo.co.uk"));
        assert_eq!(guess_domain("npmjs.org").as_deref(), Some("npmjs.org"));
        assert_eq!(guess_domain("10.0.0.1"), None);
        assert_eq!(guess_domain("::1"), None);
        assert_eq!(guess_domain("localhost"), None);
    }
}
