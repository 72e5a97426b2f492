//! How the [`App`] follows the daemon: connection changes, resyncs (on connect, on a `seq` gap,
//! on `lagged`, on `R`), broadcast events and the replies to its own commands.

use greyproxy_protocol::command::{ListArgs, TransactionIdArgs};
use greyproxy_protocol::{
    ActivityItem, AllowAllStatus, Command, Event, EventEnvelope, Page, PendingKind, PendingRequest,
    Reply, Rule, Status, Transaction,
};
use serde::de::DeserializeOwned;

use super::hosted::hkey;
use super::lists::{self, ACTIVITY_PAGE, NextPage};
use super::{App, ConnState, Effect, Hosted, Tag, send};
use crate::format::allow_all_label;
use crate::link::LinkEvent;

/// Page size of the pending and rules lists (the daemon's maximum).
const LIST_PAGE: u32 = 1000;

fn list(cursor: Option<String>, limit: u32) -> ListArgs {
    ListArgs {
        limit: Some(limit),
        cursor,
        ..ListArgs::default()
    }
}

pub(super) fn data<T: DeserializeOwned>(r: Reply) -> Result<T, String> {
    match r {
        Reply::Result { data, .. } => {
            serde_json::from_value(data).map_err(|e| format!("unexpected result: {e}"))
        }
        other => Err(format!("unexpected reply {other:?}")),
    }
}

impl App {
    pub(super) fn on_link(&mut self, ev: LinkEvent<Tag>) -> Vec<Effect> {
        match ev {
            LinkEvent::Connecting { attempt, url } => {
                self.url = url;
                if !matches!(self.conn, ConnState::Disconnected { .. }) || attempt == 1 {
                    self.conn = ConnState::Connecting(attempt);
                }
                Vec::new()
            }
            LinkEvent::Connected {
                server_version,
                url,
            } => {
                self.conn = ConnState::Connected;
                self.url = url;
                self.server_version = Some(server_version);
                self.claimed = false;
                let mut fx = vec![send(Tag::Claim, Command::ClaimNotifications)];
                fx.extend(self.resync());
                fx
            }
            LinkEvent::Disconnected {
                reason,
                unauthorized,
                retry_in,
            } => {
                self.conn = ConnState::Disconnected {
                    reason,
                    unauthorized,
                    retry_in,
                };
                self.claimed = false;
                self.last_seq = None;
                // Its reply, if any, is an error now; the resync on connect asks again.
                self.middlewares.in_flight = false;
                self.credentials_disconnected();
                self.cost_disconnected();
                self.usage_disconnected();
                Vec::new()
            }
            LinkEvent::Lagged(missed) => {
                self.say(format!("missed {missed} events; reloading"), true);
                self.resync()
            }
            LinkEvent::Event(env) => self.on_event(env),
            LinkEvent::Reply { tag, outcome } => self.on_reply(tag, outcome),
            // Kept for the Hosts view by `note_host`.
            LinkEvent::Rtt(_) => Vec::new(),
        }
    }

    /// Reloads everything the dashboard shows from the daemon's list commands.
    pub(crate) fn resync(&mut self) -> Vec<Effect> {
        self.resyncs += 1;
        // The next event sets the baseline again: replies describe the state at least as new
        // as any event before them.
        self.last_seq = None;
        let mut fx = vec![
            send(Tag::Status, Command::Status),
            send(
                Tag::Pending { append: false },
                Command::ListPending(list(None, LIST_PAGE)),
            ),
            send(
                Tag::Rules { append: false },
                Command::ListRules(list(None, LIST_PAGE)),
            ),
        ];
        fx.extend(self.activity_page(false));
        if self.view == super::View::Middlewares {
            fx.extend(self.middlewares_fetch());
        }
        fx.extend(self.cost_fetch());
        fx.extend(self.conversations_resync());
        if self.view == super::View::Usage {
            fx.extend(self.usage_open());
        }
        if self.view == super::View::Credentials {
            fx.extend(self.credentials_fetch());
        }
        fx
    }

    /// Requests the first page (`more == false`) or the next page of the activity feed.
    pub(super) fn activity_page(&mut self, more: bool) -> Vec<Effect> {
        let a = &mut self.activity;
        let next = if more {
            match a.next.clone() {
                Some(n) => n,
                None => return Vec::new(),
            }
        } else {
            NextPage::default()
        };
        if more {
            a.loading_more = true;
        } else {
            a.loading = true;
            a.loading_more = false;
        }
        let f = &a.filter;
        let args = ListArgs {
            container: Some(f.container.clone()).filter(|s| !s.is_empty()),
            destination: Some(f.destination.clone()).filter(|s| !s.is_empty()),
            result: f.result.map(|d| d.as_str().to_string()),
            kind: f.kind.clone(),
            limit: Some(ACTIVITY_PAGE),
            cursor: next.cursor.clone(),
            until: next.until.clone(),
            ..ListArgs::default()
        };
        let tag = Tag::Activity {
            generation: a.generation,
            more: more.then_some(next),
        };
        vec![send(tag, Command::ListActivity(args))]
    }

    fn on_event(&mut self, env: EventEnvelope) -> Vec<Effect> {
        let mut fx = Vec::new();
        let gap = self.last_seq.is_some_and(|last| env.seq != last + 1);
        self.last_seq = Some(env.seq);
        match env.event() {
            Some(
                e @ (Event::PendingCreated(_)
                | Event::PendingUpdated(_)
                | Event::PendingAllowed(_)
                | Event::PendingDismissed(_)
                | Event::WaitersChanged(_)
                | Event::RuleCreated(_)
                | Event::RuleUpdated(_)
                | Event::RuleDeleted(_)),
            ) => fx.extend(self.queue_event(e)),
            Some(Event::AllowAllChanged(s)) => self.allow_all = s,
            Some(Event::ClaimsChanged(c)) => self.claims = c.active_claims,
            Some(Event::RequestLogNew(r)) => self.push_activity(ActivityItem::Connection(r)),
            Some(Event::TransactionNew(t)) => {
                fx.extend(self.ws_live(&t));
                self.push_activity(ActivityItem::Transaction(t));
            }
            Some(Event::TransactionUpdated(t)) => fx.extend(self.update_transaction(t)),
            Some(Event::LlmCallNew(c)) => {
                fx.extend(self.cost_poke(true));
                fx.extend(self.usage_call(&c));
            }
            Some(Event::ConversationUpdated(s)) => fx.extend(self.conversation_updated(s.summary)),
            Some(
                Event::CredentialCreated(_)
                | Event::CredentialUpdated(_)
                | Event::CredentialDeleted(_)
                | Event::SessionCreated(_)
                | Event::SessionExpired(_)
                | Event::SessionDeleted(_),
            ) => fx.extend(self.credentials_changed()),
            Some(Event::CredentialSubstitutions(c)) => self.credentials_counted(&c),
            // Types newer than this build (transaction.new, …) are not shown yet.
            Some(_) | None => {}
        }
        if gap {
            self.say("missed events; reloading", true);
            fx.extend(self.resync());
        }
        fx
    }

    /// The events of the merged lists (pending requests, rules) from host `self.route`: any
    /// host's new request rings the bell and notifies.
    pub(super) fn queue_event(&mut self, e: Event) -> Vec<Effect> {
        let mut fx = Vec::new();
        let rows = self.list_rows();
        let h = self.route;
        match e {
            Event::PendingCreated(p) => {
                if !self.pending.contains_key(&hkey(h, p.id)) {
                    fx.push(Effect::Bell);
                    if self.desktop_notify {
                        let on = if self.is_fleet() {
                            format!(" on {}", self.host_name(h))
                        } else {
                            String::new()
                        };
                        // Secret egress says so, with the credential's label.
                        let (summary, what) = match (&p.kind, &p.credential) {
                            (PendingKind::Credential, c) => (
                                "greyproxy: a secret is heading where it may not go",
                                format!(
                                    "{} from ",
                                    c.as_ref()
                                        .and_then(|c| c.label.as_deref())
                                        .unwrap_or("a placeholder")
                                ),
                            ),
                            _ => ("greyproxy: request waiting", String::new()),
                        };
                        fx.push(Effect::Notify {
                            summary: summary.into(),
                            body: format!(
                                "{what}{} → {}:{} (#{}){on}",
                                p.container_name,
                                p.display_host(),
                                p.destination_port,
                                p.id
                            ),
                        });
                    }
                }
                self.pending.upsert(Hosted::new(h, p), rows);
            }
            Event::PendingUpdated(p) => self.pending.upsert(Hosted::new(h, p), rows),
            Event::PendingAllowed(d) | Event::PendingDismissed(d) => {
                self.pending.remove(&hkey(h, d.pending_id), rows)
            }
            Event::WaitersChanged(w) => {
                if let Some(p) = w
                    .pending_id
                    .and_then(|id| self.pending.find_mut(&hkey(h, id)))
                {
                    p.waiting_count = w.current_count;
                }
            }
            Event::RuleCreated(r) | Event::RuleUpdated(r) => {
                self.rules.upsert(Hosted::new(h, r), rows)
            }
            Event::RuleDeleted(d) => self.rules.remove(&hkey(h, d.rule_id), rows),
            _ => {}
        }
        fx
    }

    fn push_activity(&mut self, item: ActivityItem) {
        // While the first page is loading it will contain this row (or a newer state).
        if !self.activity.loading {
            let rows = self.list_rows();
            self.activity.push_live(item, rows);
        }
    }

    /// A recorded exchange changed (a WebSocket upgrade completed at close): the row is
    /// replaced where it is, and an open detail of it is fetched again.
    fn update_transaction(&mut self, t: Transaction) -> Vec<Effect> {
        let id = t.id;
        let item = ActivityItem::Transaction(t);
        let key = lists::item_key(&item);
        if let Some(row) = self
            .activity
            .items
            .iter_mut()
            .find(|i| lists::item_key(i) == key)
        {
            *row = item.clone();
        }
        match &mut self.activity.detail {
            Some(d) if lists::item_key(&d.item) == key => {
                d.item = item;
                d.full = None;
                let args = TransactionIdArgs { transaction_id: id };
                vec![send(Tag::Transaction(id), Command::GetTransaction(args))]
            }
            _ => Vec::new(),
        }
    }

    pub(super) fn on_reply(&mut self, tag: Tag, outcome: Result<Reply, String>) -> Vec<Effect> {
        let rows = self.list_rows();
        match (tag, outcome) {
            (Tag::Claim, Ok(Reply::NotificationClaimed { active_claims, .. })) => {
                self.claimed = true;
                self.claims = active_claims;
            }
            (Tag::Claim, _) => {}
            (Tag::Status, Ok(r)) => match data::<Status>(r) {
                Ok(s) => {
                    if let Some(h) = self.hosts.get_mut(self.route) {
                        h.version = Some(s.version.clone());
                    }
                    self.server_version = Some(s.version);
                    self.allow_all = s.allow_all;
                    self.claims = s.active_claims;
                    self.export = s.export;
                }
                Err(e) => self.say(format!("status: {e}"), true),
            },
            (Tag::Pending { append }, Ok(r)) => match data::<Page<PendingRequest>>(r) {
                Ok(page) => {
                    let h = self.route;
                    let items = page.items.into_iter().map(|p| Hosted::new(h, p)).collect();
                    let block = |x: &Hosted<PendingRequest>| x.host.cmp(&h);
                    if append {
                        self.pending.extend_block(block, items, rows);
                    } else {
                        self.pending.replace_block(block, items, rows);
                    }
                    if let Some(c) = page.next_cursor {
                        let next = Command::ListPending(list(Some(c), LIST_PAGE));
                        return vec![send(Tag::Pending { append: true }, next)];
                    }
                }
                Err(e) => self.say(format!("pending: {e}"), true),
            },
            (Tag::Rules { append }, Ok(r)) => match data::<Page<Rule>>(r) {
                Ok(page) => {
                    let h = self.route;
                    let items = page.items.into_iter().map(|r| Hosted::new(h, r)).collect();
                    let block = |x: &Hosted<Rule>| x.host.cmp(&h);
                    if append {
                        self.rules.extend_block(block, items, rows);
                    } else {
                        self.rules.replace_block(block, items, rows);
                    }
                    if let Some(c) = page.next_cursor {
                        let next = Command::ListRules(list(Some(c), LIST_PAGE));
                        return vec![send(Tag::Rules { append: true }, next)];
                    }
                }
                Err(e) => self.say(format!("rules: {e}"), true),
            },
            (Tag::Activity { generation, more }, outcome) => {
                if generation != self.activity.generation {
                    return Vec::new(); // an answer for a filter that is gone
                }
                if more.is_some() {
                    self.activity.loading_more = false;
                } else {
                    self.activity.loading = false;
                }
                match (outcome.and_then(data::<Page<ActivityItem>>), more) {
                    (Ok(p), Some(asked)) => {
                        self.activity.append_page(p.items, &asked, p.next_cursor)
                    }
                    (Ok(p), None) => self
                        .activity
                        .set_first_page(p.items, p.total, p.next_cursor),
                    (Err(e), _) => self.say(format!("activity: {e}"), true),
                }
                let n = self.activity.items.len();
                self.activity.nav.clamp(n, rows);
            }
            (Tag::Decide { done, what }, Ok(r)) => {
                let rule = match r {
                    Reply::CommandSuccess {
                        rule_id: Some(id), ..
                    } => format!(" (rule {id})"),
                    _ => String::new(),
                };
                self.say(format!("{done} {what}{rule}"), false);
            }
            (Tag::Decide { done, what }, Err(e)) => {
                let verb = match done {
                    "allowed" => "allow",
                    "denied" => "deny",
                    _ => "dismiss",
                };
                self.say(format!("{verb} {what} failed: {e}"), true);
            }
            (Tag::CreateRule, Ok(r)) => {
                let id = match r {
                    Reply::CommandSuccess { rule_id, .. } => rule_id,
                    _ => None,
                };
                let id = id.map(|i| format!(" {i}")).unwrap_or_default();
                self.say(format!("created rule{id}"), false);
            }
            (Tag::UpdateRule(id), Ok(_)) => self.say(format!("updated rule {id}"), false),
            (Tag::DeleteRule(id), Ok(_)) => self.say(format!("deleted rule {id}"), false),
            (Tag::Silent, Ok(r)) => match data::<AllowAllStatus>(r) {
                Ok(s) => {
                    self.say(format!("silent mode: {}", allow_all_label(&s)), false);
                    self.allow_all = s;
                }
                Err(e) => self.say(format!("silent mode: {e}"), true),
            },
            (Tag::CreateRule, Err(e)) => self.say(format!("create rule failed: {e}"), true),
            (Tag::UpdateRule(id), Err(e)) => {
                self.say(format!("update rule {id} failed: {e}"), true)
            }
            (Tag::DeleteRule(id), Err(e)) => {
                self.say(format!("delete rule {id} failed: {e}"), true)
            }
            (Tag::Silent, Err(e)) => self.say(format!("silent mode failed: {e}"), true),
            (Tag::Transaction(id), outcome) => {
                if let Some(d) = &mut self.activity.detail
                    && lists::item_key(&d.item) == ("transaction", id)
                {
                    d.full = Some(outcome.and_then(|r| match r {
                        Reply::Result { data, .. } => Ok(data),
                        other => Err(format!("unexpected reply {other:?}")),
                    }));
                }
            }
            (Tag::WsMessages(id), outcome) => return self.ws_listed(id, outcome),
            (Tag::ExportHar, outcome) => return self.har_page(outcome),
            (Tag::WsBody(id), outcome) => self.ws_body(id, outcome),
            (Tag::Middlewares, outcome) => self.middlewares_listed(outcome),
            (Tag::Conversations { generation, more }, outcome) => {
                self.conversations_listed(generation, more, outcome)
            }
            (Tag::Conversation(id), outcome) => self.conversation_loaded(&id, outcome),
            (Tag::LlmCall(call), outcome) => return self.llm_call_found(call, outcome),
            (Tag::CostToday, outcome) => self.cost_reply(outcome),
            (Tag::Usage { generation }, outcome) => self.usage_listed(generation, outcome),
            (Tag::Credentials, outcome) => self.credentials_listed(outcome),
            (Tag::Sessions, outcome) => self.sessions_listed(outcome),
            (Tag::CreateCredential(label), Ok(_)) => {
                self.say(format!("created credential {label}"), false)
            }
            (Tag::UpdateCredential(label), Ok(_)) => {
                self.say(format!("updated credential {label}"), false)
            }
            (Tag::DeleteCredential(label), Ok(_)) => {
                self.say(format!("deleted credential {label}"), false)
            }
            (Tag::DeleteSession(id), Ok(_)) => self.say(format!("ended session {id}"), false),
            (Tag::CreateCredential(label), Err(e)) => {
                self.say(format!("create credential {label} failed: {e}"), true)
            }
            (Tag::UpdateCredential(label), Err(e)) => {
                self.say(format!("update credential {label} failed: {e}"), true)
            }
            (Tag::DeleteCredential(label), Err(e)) => {
                self.say(format!("delete credential {label} failed: {e}"), true)
            }
            (Tag::DeleteSession(id), Err(e)) => {
                self.say(format!("end session {id} failed: {e}"), true)
            }
            (Tag::DecideCredential { done, what }, Ok(_)) => {
                self.say(format!("{done} {what}"), false)
            }
            (Tag::DecideCredential { what, .. }, Err(e)) => {
                self.say(format!("decision on {what} failed: {e}"), true)
            }
            (Tag::Status | Tag::Pending { .. } | Tag::Rules { .. }, Err(e)) => {
                self.say(format!("reload failed: {e}"), true)
            }
        }
        Vec::new()
    }
}
