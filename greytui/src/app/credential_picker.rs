//! The decision on a held `credential` pending request (secret egress: a placeholder on its
//! way where its secret may not go). The safe choice comes first and is preselected; binding
//! the destination goes on to the scope / duration picker.

use crossterm::event::KeyEvent;
use greyproxy_protocol::PendingRequest;
use greyproxy_protocol::credentials::{CredentialDecision, DecideCredentialArgs};

use super::hosted::Hosted;
use super::modal::{Outcome, typed_char};
use crate::keymap::{Action, Ctx, action_in};

/// One choice of the picker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EgressChoice {
    /// 403, the session lives on.
    Refuse,
    /// 403 and the placeholder's session ends.
    RefuseAndEnd,
    /// Forward it as it is: the origin gets the placeholder, never the secret.
    SendUnchanged,
    /// Substitute this once.
    SendOnce,
    /// Add the destination to the credential (scope and duration asked next), then send.
    Bind,
}

/// The choices in order, with their labels.
pub(crate) const CHOICES: [(EgressChoice, &str); 5] = [
    (EgressChoice::Refuse, "refuse (403)"),
    (
        EgressChoice::RefuseAndEnd,
        "refuse (403) and end the agent's session",
    ),
    (
        EgressChoice::SendUnchanged,
        "send unchanged (the placeholder, not the secret)",
    ),
    (EgressChoice::SendOnce, "send once with the secret"),
    (
        EgressChoice::Bind,
        "bind this destination to the credential (scope, duration)…",
    ),
];

/// The picker for one `credential` pending request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EgressPicker {
    /// The request (a copy: it may disappear meanwhile).
    pub(crate) pending: Hosted<PendingRequest>,
    /// Highlighted choice.
    pub(crate) idx: usize,
}

impl EgressPicker {
    /// A picker with "refuse" highlighted.
    pub(crate) fn new(pending: Hosted<PendingRequest>) -> EgressPicker {
        EgressPicker { pending, idx: 0 }
    }

    /// Handles a key: digits choose at once, enter the highlighted one.
    pub(crate) fn key(&mut self, k: KeyEvent) -> Outcome<EgressChoice> {
        let len = CHOICES.len();
        let digit = typed_char(k)
            .and_then(|c| c.to_digit(10))
            .filter(|d| (1..=len as u32).contains(d));
        if let Some(d) = digit {
            self.idx = d as usize - 1;
            return Outcome::Submit(CHOICES[self.idx].0);
        }
        match action_in(Ctx::Picker, k) {
            Some(Action::Down) => self.idx = (self.idx + 1) % len,
            Some(Action::Up) => self.idx = (self.idx + len - 1) % len,
            Some(Action::Select) => return Outcome::Submit(CHOICES[self.idx].0),
            Some(Action::Cancel) => return Outcome::Close,
            _ => {}
        }
        Outcome::Stay
    }
}

/// `decide_credential`'s arguments for a choice other than [`EgressChoice::Bind`] (which asks
/// for a scope and a duration first).
pub(crate) fn decision(pending_id: u64, choice: EgressChoice) -> DecideCredentialArgs {
    let (decision, end_session) = match choice {
        EgressChoice::Refuse => (CredentialDecision::Refuse, None),
        EgressChoice::RefuseAndEnd => (CredentialDecision::Refuse, Some(true)),
        EgressChoice::SendUnchanged => (CredentialDecision::SendUnchanged, None),
        EgressChoice::SendOnce => (CredentialDecision::SendOnce, None),
        EgressChoice::Bind => (CredentialDecision::Bind, None),
    };
    DecideCredentialArgs {
        pending_id,
        decision,
        scope: None,
        duration: None,
        reason: None,
        end_session,
    }
}

/// What the message line says after a decision: `refused`, `sent unchanged`…
pub(crate) fn done(choice: EgressChoice) -> &'static str {
    match choice {
        EgressChoice::Refuse => "refused",
        EgressChoice::RefuseAndEnd => "refused (session ended)",
        EgressChoice::SendUnchanged => "sent unchanged",
        EgressChoice::SendOnce => "sent once with the secret",
        EgressChoice::Bind => "bound and sent",
    }
}
