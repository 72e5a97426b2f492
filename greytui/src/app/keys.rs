//! How the [`App`] answers keys: the keymap gives an action for the current context, modals
//! take their own keys, actions become state changes and commands (a submitted form is
//! validated and turned into its command in `submit.rs`).

use crossterm::event::KeyEvent;
use greyproxy_protocol::command::{
    DecideArgs, PendingIdArgs, RuleIdArgs, Scope, TransactionIdArgs,
};
use greyproxy_protocol::credentials::{
    CredentialDecision, CredentialLabelArgs, DecideCredentialArgs, SessionIdArgs,
};
use greyproxy_protocol::{ActivityItem, Command, PendingKind, PendingRequest};

use super::credential_picker::{self, EgressChoice, EgressPicker};
use super::detail::{Detail, WsMessages, is_upgrade};
use super::form::Form;
use super::listed::Nav;
use super::modal::{Confirm, Outcome, Picker, PickerStep, Verb};
use super::{App, Effect, Modal, Tag, View, send};
use crate::format::describe_pending;
use crate::keymap::{Action, Ctx, action_for};

impl App {
    pub(super) fn on_key(&mut self, k: KeyEvent) -> Vec<Effect> {
        if crate::keymap::action_in(Ctx::Global, k) == Some(Action::Quit) {
            self.quit = true;
            return vec![Effect::Quit];
        }
        if let Some(m) = self.modal.take() {
            return self.modal_key(m, k);
        }
        let ctx = self.ctx();
        if ctx == Ctx::Detail
            && let Some(d) = &self.activity.detail
        {
            // What an open detail asks for (its WebSocket messages, their payloads) goes to
            // the host its row came from.
            self.route = d.host;
        }
        match action_for(ctx, k) {
            Some(a) => self.act(a),
            None => {
                self.dirty = false;
                Vec::new()
            }
        }
    }

    fn modal_key(&mut self, m: Modal, k: KeyEvent) -> Vec<Effect> {
        match m {
            Modal::Help(scroll) => {
                match crate::keymap::action_in(Ctx::Help, k) {
                    Some(Action::Down) => self.modal = Some(Modal::Help(scroll.saturating_add(1))),
                    Some(Action::Up) => self.modal = Some(Modal::Help(scroll.saturating_sub(1))),
                    Some(Action::Cancel) => {}
                    _ => self.modal = Some(Modal::Help(scroll)),
                }
                Vec::new()
            }
            Modal::Picker(p)
                if p.step != PickerStep::Typed
                    && crate::keymap::action_in(Ctx::Picker, k) == Some(Action::OpenWhy) =>
            {
                match p.pending.llm_context.clone() {
                    Some(ctx) => self.why_open(p.pending.host, &ctx),
                    None => {
                        self.modal = Some(Modal::Picker(p));
                        self.no_why()
                    }
                }
            }
            Modal::Picker(mut p) => match p.key(k) {
                Outcome::Stay => {
                    self.modal = Some(Modal::Picker(p));
                    Vec::new()
                }
                Outcome::Close => Vec::new(),
                Outcome::Submit((scope, duration)) => {
                    self.route = p.pending.host;
                    self.decide(p.verb, &p.pending, scope, Some(duration))
                }
            },
            Modal::Egress(mut e) => match e.key(k) {
                Outcome::Stay => {
                    self.modal = Some(Modal::Egress(e));
                    Vec::new()
                }
                Outcome::Close => Vec::new(),
                Outcome::Submit(EgressChoice::Bind) => {
                    self.modal = Some(Modal::Picker(Picker::new(Verb::Bind, e.pending)));
                    Vec::new()
                }
                Outcome::Submit(choice) => {
                    self.route = e.pending.host;
                    let args = credential_picker::decision(e.pending.id, choice);
                    let tag = Tag::DecideCredential {
                        done: credential_picker::done(choice),
                        what: describe_pending(&e.pending),
                    };
                    vec![send(tag, Command::DecideCredential(args))]
                }
            },
            Modal::Form(mut f) => match f.key(k) {
                Outcome::Stay => {
                    self.modal = Some(Modal::Form(f));
                    Vec::new()
                }
                Outcome::Close => Vec::new(),
                Outcome::Submit(()) => self.submit_form(f),
            },
            Modal::Confirm(c) => match c.key(k) {
                Outcome::Stay => {
                    self.modal = Some(Modal::Confirm(c));
                    Vec::new()
                }
                Outcome::Close => Vec::new(),
                Outcome::Submit(()) => match c {
                    Confirm::DeleteRule(id, _, host) => {
                        self.route = host;
                        vec![send(
                            Tag::DeleteRule(id),
                            Command::DeleteRule(RuleIdArgs { rule_id: id }),
                        )]
                    }
                    Confirm::DeleteCredential(label) => vec![send(
                        Tag::DeleteCredential(label.clone()),
                        Command::DeleteCredential(CredentialLabelArgs { label }),
                    )],
                    Confirm::EndSession(id, _) => vec![send(
                        Tag::DeleteSession(id.clone()),
                        Command::DeleteSession(SessionIdArgs { session_id: id }),
                    )],
                },
            },
        }
    }

    fn switch(&mut self, v: View) -> Vec<Effect> {
        let opened = self.view != v;
        self.view = v;
        if opened && v == View::Middlewares {
            return self.middlewares_fetch();
        }
        if opened && v == View::Conversations {
            return self.conversations_opened();
        }
        if opened && v == View::Usage {
            return self.usage_open();
        }
        if opened && v == View::Credentials {
            return self.credentials_fetch();
        }
        Vec::new()
    }

    fn act(&mut self, a: Action) -> Vec<Effect> {
        let rows = self.list_rows();
        let half = (rows / 2).max(1) as isize;
        if self.view == View::Conversations {
            let detail = !self.conversations.stack.is_empty();
            match a {
                Action::Up
                | Action::Down
                | Action::PageUp
                | Action::PageDown
                | Action::Top
                | Action::Bottom
                | Action::Open
                | Action::Back
                | Action::ToTransaction
                | Action::NextTurn
                | Action::PrevTurn
                    if detail =>
                {
                    return self.conversation_act(a);
                }
                Action::Open => {
                    let sel = self
                        .conversations
                        .selected()
                        .map(|c| (c.host, c.id.clone()));
                    return match sel {
                        Some((host, id)) => self.conversation_open(host, id, None, None),
                        None => self.nothing_selected(),
                    };
                }
                Action::Filter => {
                    let f = Form::conversation_filter(&self.conversations.filter);
                    self.modal = Some(Modal::Form(f));
                    return Vec::new();
                }
                Action::Follow => {
                    self.conversations_follow();
                    return Vec::new();
                }
                _ => {}
            }
        }
        match a {
            Action::Quit => {
                self.quit = true;
                vec![Effect::Quit]
            }
            Action::Back => {
                if self.view == View::Activity && (self.ws_close() || self.back_to_conversation()) {
                    Vec::new()
                } else if self.view == View::Activity && self.activity.detail.is_some() {
                    self.activity.detail = None;
                    Vec::new()
                } else {
                    self.quit = true;
                    vec![Effect::Quit]
                }
            }
            Action::Help => {
                self.modal = Some(Modal::Help(0));
                Vec::new()
            }
            Action::NextView | Action::PrevView => {
                let views = View::all(self.is_fleet());
                let i = views.iter().position(|v| *v == self.view).unwrap_or(0);
                let n = views.len();
                let j = if a == Action::NextView {
                    i + 1
                } else {
                    i + n - 1
                } % n;
                self.switch(views[j])
            }
            Action::ShowHosts if self.is_fleet() => self.switch(View::Hosts),
            Action::ShowHosts => Vec::new(),
            Action::FocusHost => {
                let h = self.hosts_nav.selected;
                self.focus_host(h)
            }
            Action::ShowPending => self.switch(View::Pending),
            Action::ShowActivity => self.switch(View::Activity),
            Action::ShowRules => self.switch(View::Rules),
            Action::ShowMiddlewares => self.switch(View::Middlewares),
            Action::ShowConversations => self.switch(View::Conversations),
            Action::OpenWhy => match (self.pending.selected())
                .and_then(|p| Some((p.host, p.llm_context.clone()?)))
            {
                Some((host, ctx)) => self.why_open(host, &ctx),
                None => self.no_why(),
            },
            Action::ShowUsage => self.switch(View::Usage),
            Action::ShowCredentials => self.switch(View::Credentials),
            Action::NewCredential => {
                self.modal = Some(Modal::Form(Form::new_credential()));
                Vec::new()
            }
            Action::EditCredential => match self.credentials.selected_credential() {
                Some(c) => {
                    self.modal = Some(Modal::Form(Form::edit_credential(c)));
                    Vec::new()
                }
                None => self.nothing_selected(),
            },
            Action::DeleteCredential => {
                let c = &self.credentials;
                let confirm = match (c.selected_credential(), c.selected_session()) {
                    (Some(cr), _) => Confirm::DeleteCredential(cr.label.clone()),
                    (_, Some(s)) => Confirm::EndSession(s.session_id.clone(), s.container.clone()),
                    _ => return self.nothing_selected(),
                };
                self.modal = Some(Modal::Confirm(confirm));
                Vec::new()
            }
            Action::SwitchPane => {
                self.credentials_switch_pane();
                Vec::new()
            }
            Action::UsageGroup | Action::UsageWindow | Action::UsageSort | Action::UsageReverse => {
                self.usage_key(a)
            }
            Action::Refresh if self.conn != super::ConnState::Connected => {
                self.say("not connected to the daemon", true);
                Vec::new()
            }
            Action::Refresh if self.view == View::Credentials => self.credentials_fetch(),
            Action::Refresh => self.middlewares_fetch(),
            Action::Up => self.step(-1),
            Action::Down => self.step(1),
            Action::PageUp => self.step(-half),
            Action::PageDown => self.step(half),
            Action::Top => self.step(isize::MIN / 2),
            Action::Bottom => self.step(isize::MAX / 2),
            Action::AllowExact | Action::AllowPick | Action::DenyPick
                if self
                    .pending
                    .selected()
                    .is_some_and(|p| p.kind == PendingKind::Credential) =>
            {
                // Secret egress: never a one-key send; the choices, refusal first.
                if let Some(p) = self.pending.selected().cloned() {
                    self.modal = Some(Modal::Egress(EgressPicker::new(p)));
                }
                Vec::new()
            }
            Action::AllowExact => match self.pending.selected().cloned() {
                Some(p) => {
                    self.route = p.host;
                    self.decide(Verb::Allow, &p, Scope::Exact, Some("permanent".into()))
                }
                None => self.nothing_selected(),
            },
            Action::AllowPick | Action::DenyPick => match self.pending.selected().cloned() {
                Some(p) => {
                    let verb = if a == Action::AllowPick {
                        Verb::Allow
                    } else {
                        Verb::Deny
                    };
                    self.modal = Some(Modal::Picker(Picker::new(verb, p)));
                    Vec::new()
                }
                None => self.nothing_selected(),
            },
            Action::Dismiss => match self.pending.selected().cloned() {
                Some(p) => {
                    self.route = p.host;
                    vec![send(
                        Tag::Decide {
                            done: "dismissed",
                            what: describe_pending(&p),
                        },
                        Command::Dismiss(PendingIdArgs { pending_id: p.id }),
                    )]
                }
                None => self.nothing_selected(),
            },
            Action::Open if self.activity.detail.is_some() => self.ws_open(),
            Action::ExportHar => self.har_start(),
            Action::CopyCurl => self.copy_curl(),
            Action::UpgradeHeaders => {
                self.ws_toggle_headers();
                Vec::new()
            }
            Action::Open => {
                let Some(item) = self.activity.items.get(self.activity.nav.selected).cloned()
                else {
                    return self.nothing_selected();
                };
                // The detail asks the host the row came from.
                self.route = item.host;
                let host = item.host;
                let item = item.item;
                let mut fetch = Vec::new();
                let mut ws = None;
                if let ActivityItem::Transaction(t) = &item {
                    fetch.push(send(
                        Tag::Transaction(t.id),
                        Command::GetTransaction(TransactionIdArgs {
                            transaction_id: t.id,
                        }),
                    ));
                    if is_upgrade(t) {
                        fetch.push(App::ws_list(t.id));
                        ws = Some(WsMessages {
                            loading: true,
                            ..Default::default()
                        });
                    }
                }
                self.activity.detail = Some(Detail {
                    host,
                    item,
                    full: None,
                    scroll: 0,
                    ws,
                });
                fetch
            }
            Action::Filter => {
                self.modal = Some(Modal::Form(Form::filter(&self.activity.filter)));
                Vec::new()
            }
            Action::Follow => {
                self.activity.follow = !self.activity.follow;
                if self.activity.follow {
                    self.activity.unseen = 0;
                    self.activity.nav = Nav::default();
                    if self.activity.stale_top {
                        return self.activity_page(false);
                    }
                }
                Vec::new()
            }
            Action::NewRule => {
                self.modal = Some(Modal::Form(Form::new_rule(self.is_fleet())));
                Vec::new()
            }
            Action::EditRule => match self.rules.selected() {
                Some(r) => {
                    self.modal = Some(Modal::Form(Form::edit_rule(r)));
                    Vec::new()
                }
                None => self.nothing_selected(),
            },
            Action::DeleteRule => match self.rules.selected() {
                Some(r) => {
                    let c = Confirm::DeleteRule(r.id, crate::format::rule_summary(r), r.host);
                    self.modal = Some(Modal::Confirm(c));
                    Vec::new()
                }
                None => self.nothing_selected(),
            },
            Action::ToggleSilent => {
                if self.allow_all.active {
                    vec![send(Tag::Silent, Command::ClearAllowAll)]
                } else {
                    self.modal = Some(Modal::Form(Form::silent()));
                    Vec::new()
                }
            }
            Action::Resync => self.resync_all(),
            // Modal-only actions never reach here (modals handle their own keys).
            _ => Vec::new(),
        }
    }

    fn nothing_selected(&mut self) -> Vec<Effect> {
        self.say("nothing selected", true);
        Vec::new()
    }

    fn no_why(&mut self) -> Vec<Effect> {
        self.say(
            "no LLM context: no tool call of this container shortly before the request",
            true,
        );
        Vec::new()
    }

    fn step(&mut self, delta: isize) -> Vec<Effect> {
        let rows = self.list_rows();
        match self.view {
            View::Pending => self.pending.step(delta, rows),
            View::Hosts => self.hosts_nav.step(delta, self.hosts.len(), rows),
            View::Rules => self.rules.step(delta, rows),
            View::Middlewares => self.middlewares.list.step(delta, rows),
            View::Conversations => return self.conversations_step(delta),
            View::Usage => {
                let rows = self.usage_rows();
                self.usage.rows.step(delta, rows)
            }
            View::Credentials => self.credentials_step(delta),
            View::Activity => {
                if let Some(fx) = self.ws_step(delta) {
                    return fx;
                }
                if let Some(d) = &mut self.activity.detail {
                    let delta = delta.clamp(-10_000, 10_000) as i32;
                    d.scroll = (d.scroll as i32 + delta).clamp(0, u16::MAX as i32) as u16;
                    return Vec::new();
                }
                let a = &mut self.activity;
                a.nav.step(delta, a.items.len(), rows);
                // Scrolling away from the newest row leaves follow mode, as in `tail -f` viewers.
                if a.nav.selected > 0 {
                    a.follow = false;
                }
                if a.nav.selected == 0 && a.stale_top {
                    // Newer rows were dropped while reading deep down: fetch them again.
                    return self.activity_page(false);
                }
                if a.wants_more() {
                    return self.activity_page(true);
                }
            }
        }
        Vec::new()
    }

    fn decide(
        &mut self,
        verb: Verb,
        p: &PendingRequest,
        scope: Scope,
        duration: Option<String>,
    ) -> Vec<Effect> {
        let what = describe_pending(p);
        if verb == Verb::Bind {
            let args = DecideCredentialArgs {
                pending_id: p.id,
                decision: CredentialDecision::Bind,
                scope: Some(scope),
                duration,
                reason: None,
                end_session: None,
            };
            let tag = Tag::DecideCredential {
                done: credential_picker::done(EgressChoice::Bind),
                what,
            };
            return vec![send(tag, Command::DecideCredential(args))];
        }
        let args = DecideArgs {
            pending_id: p.id,
            scope: Some(scope),
            duration,
            notes: None,
        };
        let (done, command) = match verb {
            Verb::Deny => ("denied", Command::Deny(args)),
            _ => ("allowed", Command::Allow(args)),
        };
        vec![send(Tag::Decide { done, what }, command)]
    }
}
