//! A submitted form, validated and turned into its command: a new rule (on the focused host or,
//! over a fleet, on every connected host), a rule's changes (on its host), the activity and
//! conversations filters, silent mode. An invalid form stays open with its error.

use greyproxy_protocol::command::{CreateRuleArgs, SetAllowAllArgs, UpdateRuleArgs};
use greyproxy_protocol::{Action as RuleAction, AllowAllMode, Command, Decision};

use super::form::{Form, FormPurpose, HOST_SCOPES};
use super::listed::Nav;
use super::lists::ActivityFilter;
use super::{App, Effect, Modal, Tag, send};

impl App {
    /// Validates a submitted form and turns it into a command; an invalid form stays open with
    /// its error.
    pub(super) fn submit_form(&mut self, mut f: Form) -> Vec<Effect> {
        match self.form_command(&f) {
            Ok(fx) => fx,
            Err(e) => {
                f.error = Some(e);
                self.modal = Some(Modal::Form(f));
                Vec::new()
            }
        }
    }

    fn form_command(&mut self, f: &Form) -> Result<Vec<Effect>, String> {
        let opt = |s: &str| Some(s.to_string()).filter(|s| !s.is_empty());
        let action = || match f.choice(3) {
            "deny" => RuleAction::Deny,
            _ => RuleAction::Allow,
        };
        match &f.purpose {
            FormPurpose::NewRule => {
                if f.text(0).is_empty() || f.text(1).is_empty() {
                    return Err("container and destination are required".into());
                }
                let args = CreateRuleArgs {
                    container_pattern: f.text(0).into(),
                    destination_pattern: f.text(1).into(),
                    port_pattern: opt(f.text(2)),
                    action: Some(action()),
                    notes: opt(f.text(4)),
                    expires_at: None,
                    duration: opt(f.text(5)),
                };
                if self.is_fleet() && f.fields.len() > 6 && f.choice(6) == HOST_SCOPES[0] {
                    return Ok(self.send_to_all_hosts(Tag::CreateRule, Command::CreateRule(args)));
                }
                Ok(vec![send(Tag::CreateRule, Command::CreateRule(args))])
            }
            FormPurpose::EditRule(r) => {
                if f.text(0).is_empty() || f.text(1).is_empty() || f.text(2).is_empty() {
                    return Err("container, destination and port are required".into());
                }
                let changed = |new: &str, old: &str| (new != old).then(|| new.to_string());
                let notes = f.text(4);
                let args = UpdateRuleArgs {
                    rule_id: r.id,
                    container_pattern: changed(f.text(0), &r.container_pattern),
                    destination_pattern: changed(f.text(1), &r.destination_pattern),
                    port_pattern: changed(f.text(2), &r.port_pattern),
                    action: Some(action()).filter(|a| *a != r.action),
                    notes: (notes != r.notes.as_deref().unwrap_or("")).then(|| opt(notes)),
                    expires_at: None,
                    duration: opt(f.text(5)),
                };
                self.route = r.host;
                Ok(vec![send(Tag::UpdateRule(r.id), Command::UpdateRule(args))])
            }
            FormPurpose::Filter => {
                let a = &mut self.activity;
                a.filter = ActivityFilter {
                    container: f.text(0).into(),
                    destination: f.text(1).into(),
                    result: match f.choice(2) {
                        "allowed" => Some(Decision::Allowed),
                        "blocked" => Some(Decision::Blocked),
                        _ => None,
                    },
                    kind: Some(f.choice(3).to_string()).filter(|k| k != "any"),
                };
                a.generation += 1;
                a.items.clear();
                a.nav = Nav::default();
                a.follow = true;
                a.unseen = 0;
                Ok(self.activity_page(false))
            }
            FormPurpose::ConversationFilter => {
                let f = super::conversations::ConvFilter {
                    container: f.text(0).into(),
                    client: Some(f.choice(1).to_string()).filter(|c| c != "any"),
                    model: f.text(2).into(),
                };
                Ok(self.conversations_filter(f))
            }
            FormPurpose::NewCredential => {
                let args = super::form_credentials::create_args(f)?;
                let tag = Tag::CreateCredential(args.label.clone());
                Ok(vec![send(tag, Command::CreateCredential(args))])
            }
            FormPurpose::EditCredential(c) => {
                let args = super::form_credentials::update_args(f, c)?;
                let tag = Tag::UpdateCredential(args.label.clone());
                Ok(vec![send(tag, Command::UpdateCredential(args))])
            }
            FormPurpose::Silent => {
                let mode = match f.choice(0) {
                    "deny" => AllowAllMode::Deny,
                    _ => AllowAllMode::Allow,
                };
                let args = SetAllowAllArgs {
                    mode: Some(mode),
                    duration: opt(f.text(1)),
                };
                Ok(vec![send(Tag::Silent, Command::SetAllowAll(args))])
            }
        }
    }
}
