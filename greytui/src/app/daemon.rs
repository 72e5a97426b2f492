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
use super::{App, ConnState, Effect, HostId, Hosted, Tag, send};
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
                self.activity.loading.remove(&self.route);
                self.activity.loading_more.remove(&self.route);
                self.conversations.loading.remove(&self.route);
                self.conversations.loading_more.remove(&self.route);
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
        fx.extend(self.activity_page_of(self.route, false));
        if self.view == super::View::Middlewares {
            fx.extend(self.middlewares_fetch());
        }
        fx.extend(self.cost_fetch_from(&[self.route]));
        fx.extend(self.conversations_resync());
        if self.view == super::View::Usage {
            self.usage.unavailable = None;
            fx.extend(self.usage_fetch_from(&[self.route]));
        }
        if self.view == super::View::Credentials {
            fx.extend(self.credentials_fetch());
        }
        fx
    }

    /// The hosts to ask now: every connected host of a fleet, or the only daemon.
    pub(super) fn live_hosts(&self) -> Vec<HostId> {
        if !self.is_fleet() {
            return vec![self.focus];
        }
        (0..self.hosts.len())
            .filter(|h| self.hosts[*h].conn == ConnState::Connected)
            .collect()
    }

    /// Whether `host`'s link is up (the only daemon's, with one).
    pub(super) fn host_connected(&self, host: HostId) -> bool {
        if self.is_fleet() {
            self.hosts
                .get(host)
                .is_some_and(|h| h.conn == ConnState::Connected)
        } else {
            self.conn == ConnState::Connected
        }
    }

    /// `command` for `host`: addressed to it over a fleet, plain with one daemon.
    pub(super) fn send_on(&self, host: HostId, tag: Tag, command: Command) -> Effect {
        if self.is_fleet() {
            Effect::SendTo(host, crate::link::Request { tag, command })
        } else {
            send(tag, command)
        }
    }

    /// Requests the first pages (`more == false`) or the next pages of the activity feed, of
    /// every host (each asked with the filter).
    pub(super) fn activity_page(&mut self, more: bool) -> Vec<Effect> {
        let hosts = if more {
            self.activity.next.keys().copied().collect()
        } else {
            self.live_hosts()
        };
        hosts
            .into_iter()
            .flat_map(|h| self.activity_page_of(h, more))
            .collect()
    }

    /// Requests `host`'s first page (`more == false`) or next page of the activity feed.
    pub(super) fn activity_page_of(&mut self, host: HostId, more: bool) -> Vec<Effect> {
        let a = &mut self.activity;
        let next = if more {
            match a.next.get(&host).cloned() {
                Some(n) => n,
                None => return Vec::new(),
            }
        } else {
            NextPage::default()
        };
        if more {
            a.loading_more.insert(host);
        } else {
            a.loading.insert(host);
            a.loading_more.remove(&host);
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
        vec![self.send_on(host, tag, Command::ListActivity(args))]
    }

    fn on_event(&mut self, env: EventEnvelope) -> Vec<Effect> {
        let gap = self.last_seq.is_some_and(|last| env.seq != last + 1);
        self.last_seq = Some(env.seq);
        let mut fx = match env.event() {
            Some(e) => self.host_event(e, true),
            None => Vec::new(),
        };
        if gap {
            self.say("missed events; reloading", true);
            fx.extend(self.resync());
        }
        fx
    }

    /// An event of host `self.route`: what the merged views show is followed on every host;
    /// the focused host's own settings (silent mode, claims, credentials) only on it.
    pub(super) fn host_event(&mut self, e: Event, focused: bool) -> Vec<Effect> {
        let mut fx = Vec::new();
        match e {
            e @ (Event::PendingCreated(_)
            | Event::PendingUpdated(_)
            | Event::PendingAllowed(_)
            | Event::PendingDismissed(_)
            | Event::WaitersChanged(_)
            | Event::RuleCreated(_)
            | Event::RuleUpdated(_)
            | Event::RuleDeleted(_)) => fx.extend(self.queue_event(e)),
            Event::RequestLogNew(r) => self.push_activity(ActivityItem::Connection(r)),
            Event::TransactionNew(t) => {
                fx.extend(self.ws_live(&t));
                self.push_activity(ActivityItem::Transaction(t));
            }
            Event::TransactionUpdated(t) => fx.extend(self.update_transaction(t)),
            Event::LlmCallNew(c) => {
                fx.extend(self.cost_poke(true));
                fx.extend(self.usage_call(&c));
            }
            Event::ConversationUpdated(s) => fx.extend(self.conversation_updated(s.summary)),
            _ if !focused => {}
            Event::AllowAllChanged(s) => self.allow_all = s,
            Event::ClaimsChanged(c) => self.claims = c.active_claims,
            Event::CredentialCreated(_)
            | Event::CredentialUpdated(_)
            | Event::CredentialDeleted(_)
            | Event::SessionCreated(_)
            | Event::SessionExpired(_)
            | Event::SessionDeleted(_) => fx.extend(self.credentials_changed()),
            Event::CredentialSubstitutions(c) => self.credentials_counted(&c),
            // Types newer than this build are not shown yet.
            _ => {}
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
        // While the host's first page is loading it will contain this row (or a newer state).
        let h = self.route;
        if !self.activity.loading.contains(&h) {
            let rows = self.list_rows();
            self.activity.push_live(Hosted::new(h, item), rows);
        }
    }

    /// A recorded exchange changed (a WebSocket upgrade completed at close): the row is
    /// replaced where it is, and an open detail of it is fetched again.
    fn update_transaction(&mut self, t: Transaction) -> Vec<Effect> {
        let id = t.id;
        let h = self.route;
        let item = ActivityItem::Transaction(t);
        let key = lists::item_key(&item);
        if let Some(row) = self
            .activity
            .items
            .iter_mut()
            .find(|i| i.host == h && lists::item_key(i) == key)
        {
            row.item = item.clone();
        }
        match &mut self.activity.detail {
            Some(d) if d.host == h && lists::item_key(&d.item) == key => {
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
                let h = self.route;
                if more.is_some() {
                    self.activity.loading_more.remove(&h);
                } else {
                    self.activity.loading.remove(&h);
                }
                match (outcome.and_then(data::<Page<ActivityItem>>), more) {
                    (Ok(p), Some(asked)) => {
                        self.activity.append_page(h, p.items, &asked, p.next_cursor)
                    }
                    (Ok(p), None) => {
                        self.activity
                            .set_first_page(h, p.items, p.total, p.next_cursor)
                    }
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
                    && d.host == self.route
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
