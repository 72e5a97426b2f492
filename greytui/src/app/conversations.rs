//! The Conversations view's list: the conversations the daemon assembled from LLM calls
//! (`list_conversations`), newest activity first, kept current by `conversation.updated`
//! events (upserted by id and moved to their place), paged as the selection nears the end of
//! what is loaded, bounded at [`MAX_CONVERSATIONS`]. The filter (container, client, model) is
//! applied by the daemon to pages and by [`ConvFilter::matches`] to live rows, with the
//! daemon's semantics. The list is loaded the first time the view is opened, and again on
//! every resync after that.
//!
//! Over a fleet every host's conversations are listed, each with its host ([`Hosted`]): each
//! host keeps its own place in its list (`next_before`, one per host), and its pages and live
//! summaries are merged by last activity, so the list reads newest first across hosts. With
//! one daemon the list is that daemon's, as it pages it.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use greyproxy_protocol::command::ListConversationsArgs;
use greyproxy_protocol::llm::ConversationSummary;
use greyproxy_protocol::{Command, Reply};
use serde::Deserialize;

use super::conversation::ConvDetail;
use super::hosted::{HostId, Hosted};
use super::listed::Nav;
use super::{App, Effect, Tag};

/// Most conversations kept in the list; further pages are not fetched (the filter narrows).
pub(crate) const MAX_CONVERSATIONS: usize = 10_000;

/// Conversations asked for per page.
pub(crate) const CONVERSATION_PAGE: usize = 500;

/// Fetch the next page when the selection is this close to the end of the list.
const PREFETCH: usize = 100;

/// Filters of the list: a case-insensitive substring of the container name, one client, a
/// case-insensitive substring of one of the models (as the daemon filters).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ConvFilter {
    /// Substring of the container name.
    pub(crate) container: String,
    /// Only this client (`claude-code`, `codex`…).
    pub(crate) client: Option<String>,
    /// Substring of a model.
    pub(crate) model: String,
}

impl ConvFilter {
    /// Whether a live conversation belongs in the filtered list.
    pub(crate) fn matches(&self, s: &ConversationSummary) -> bool {
        let has = |hay: &str, needle: &str| hay.to_lowercase().contains(&needle.to_lowercase());
        has(&s.container_name, &self.container)
            && self
                .client
                .as_deref()
                .is_none_or(|c| c == s.client.as_str())
            && (self.model.is_empty() || s.models.iter().any(|m| has(m, &self.model)))
    }

    /// Whether anything is filtered.
    pub(crate) fn is_active(&self) -> bool {
        !self.container.is_empty() || self.client.is_some() || !self.model.is_empty()
    }

    /// `container~x client=codex model~gpt`.
    pub(crate) fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.container.is_empty() {
            parts.push(format!("container~{}", self.container));
        }
        if let Some(c) = &self.client {
            parts.push(format!("client={c}"));
        }
        if !self.model.is_empty() {
            parts.push(format!("model~{}", self.model));
        }
        parts.join(" ")
    }
}

/// The Conversations view: its list and the stack of opened conversations.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Conversations {
    /// Every host's, newest activity first.
    pub(crate) items: Vec<Hosted<ConversationSummary>>,
    /// Selection.
    pub(crate) nav: Nav,
    /// The filter.
    pub(crate) filter: ConvFilter,
    /// Bumped when the filter changes: answers for an older filter are dropped.
    pub(crate) generation: u64,
    /// The view was opened: the list is kept loaded (and reloaded on resync).
    pub(crate) wanted: bool,
    /// Hosts whose first page was asked for and not answered yet.
    pub(crate) loading: BTreeSet<HostId>,
    /// Hosts whose older page was asked for and not answered yet.
    pub(crate) loading_more: BTreeSet<HostId>,
    /// Where each host's next (older) page starts (`before`); a host absent is at its end.
    pub(crate) next_before: BTreeMap<HostId, String>,
    /// Why the list could not be loaded (the LLM layer is off, an older daemon).
    pub(crate) error: Option<String>,
    /// Selection pinned to the newest activity.
    pub(crate) follow: bool,
    /// Conversations that moved above the selection while not following.
    pub(crate) unseen: usize,
    /// Opened conversations: a subagent opened from its parent sits above it.
    pub(crate) stack: Vec<ConvDetail>,
    /// A transaction detail opened from a conversation (its id): going back returns here.
    pub(crate) back_to: Option<u64>,
}

impl Default for Conversations {
    fn default() -> Self {
        Conversations {
            items: Vec::new(),
            nav: Nav::default(),
            filter: ConvFilter::default(),
            generation: 0,
            wanted: false,
            loading: BTreeSet::new(),
            loading_more: BTreeSet::new(),
            next_before: BTreeMap::new(),
            error: None,
            follow: true,
            unseen: 0,
            stack: Vec::new(),
            back_to: None,
        }
    }
}

/// The reply to `list_conversations`.
#[derive(Debug, Deserialize)]
struct Page {
    conversations: Vec<ConversationSummary>,
    #[serde(default)]
    next_before: Option<String>,
}

/// Identity of a listed conversation across hosts.
type ConvKey = (HostId, String);

fn conv_key(c: &Hosted<ConversationSummary>) -> ConvKey {
    (c.host, c.id.clone())
}

/// Merges `new` (newest activity first) into `old` (newest first) by last activity; at equal
/// times `old` rows come first. Each side keeps its own order.
fn merge(
    old: Vec<Hosted<ConversationSummary>>,
    new: Vec<Hosted<ConversationSummary>>,
) -> Vec<Hosted<ConversationSummary>> {
    let mut out = Vec::with_capacity(old.len() + new.len());
    let mut old = old.into_iter().peekable();
    let mut new = new.into_iter().peekable();
    loop {
        let take_new = match (old.peek(), new.peek()) {
            (Some(o), Some(n)) => n.last_activity.as_str() > o.last_activity.as_str(),
            (None, Some(_)) => true,
            (_, None) => false,
        };
        let next = if take_new { new.next() } else { old.next() };
        match next {
            Some(c) => out.push(c),
            None => return out,
        }
    }
}

impl Conversations {
    /// The selected conversation.
    pub(crate) fn selected(&self) -> Option<&Hosted<ConversationSummary>> {
        self.items.get(self.nav.selected)
    }

    /// Whether a first page is awaited from any host.
    pub(crate) fn is_loading(&self) -> bool {
        !self.loading.is_empty()
    }

    /// Puts the selection back on conversation `key` when it is still listed.
    fn reselect(&mut self, key: Option<ConvKey>, rows: usize) {
        if let Some(i) = key.and_then(|k| self.items.iter().position(|c| conv_key(c) == k)) {
            self.nav.selected = i;
        }
        self.nav.clamp(self.items.len(), rows);
    }

    /// Records where `host`'s next page starts (nowhere: it is at its end).
    fn set_next(&mut self, host: HostId, next: Option<String>) {
        match next {
            Some(b) => {
                self.next_before.insert(host, b);
            }
            None => {
                self.next_before.remove(&host);
            }
        }
    }

    /// `host`'s first page: replaces that host's conversations (the selection stays on its
    /// conversation); with one daemon the list becomes the page.
    pub(crate) fn set_first_page(
        &mut self,
        host: HostId,
        items: Vec<ConversationSummary>,
        next: Option<String>,
        rows: usize,
    ) {
        let keep = (!self.follow).then(|| self.selected().map(conv_key));
        let mut seen = HashSet::new();
        let mut page: Vec<_> = items
            .into_iter()
            .filter(|c| seen.insert(c.id.clone()))
            .map(|c| Hosted::new(host, c))
            .collect();
        page.truncate(MAX_CONVERSATIONS);
        let old: Vec<_> = std::mem::take(&mut self.items)
            .into_iter()
            .filter(|c| c.host != host)
            .collect();
        self.items = merge(old, page);
        self.set_next(host, next);
        self.trim();
        self.unseen = 0;
        if self.follow {
            self.nav = Nav::default();
        }
        self.reselect(keep.flatten(), rows);
    }

    /// Appends an older page of `host`, skipping conversations already listed; over a fleet
    /// its rows slot in by last activity among the other hosts'.
    pub(crate) fn append_page(
        &mut self,
        host: HostId,
        items: Vec<ConversationSummary>,
        next: Option<String>,
        rows: usize,
    ) {
        let keep = self.selected().map(conv_key);
        let listed: HashSet<&str> = self
            .items
            .iter()
            .filter(|c| c.host == host)
            .map(|c| c.id.as_str())
            .collect();
        let fresh: Vec<_> = items
            .into_iter()
            .filter(|c| !listed.contains(c.id.as_str()))
            .map(|c| Hosted::new(host, c))
            .collect();
        let old = std::mem::take(&mut self.items);
        self.items = merge(old, fresh);
        self.set_next(host, next);
        if self.items.len() >= MAX_CONVERSATIONS {
            self.items.truncate(MAX_CONVERSATIONS);
            self.next_before.clear();
        }
        self.reselect(keep, rows);
    }

    /// Keeps the list within [`MAX_CONVERSATIONS`]; a host that lost rows pages on below the
    /// last row it keeps (same moment included).
    fn trim(&mut self) {
        if self.items.len() <= MAX_CONVERSATIONS {
            return;
        }
        for c in self.items.split_off(MAX_CONVERSATIONS) {
            let last = self.items.iter().rev().find(|k| k.host == c.host);
            let at = last.map_or(c.last_activity.as_str(), |k| k.last_activity.as_str());
            let b = just_after(at);
            self.next_before.insert(c.host, b);
        }
    }

    /// A live summary of `s.host`: replaced and moved to its place by last activity (inserted
    /// when new); removed when it no longer matches the filter. Older than everything loaded
    /// of its host while that host has more pages, it is left for its page. Returns whether
    /// the list changed.
    pub(crate) fn upsert(&mut self, s: Hosted<ConversationSummary>, rows: usize) -> bool {
        let key = conv_key(&s);
        let was = self.items.iter().position(|c| conv_key(c) == key);
        let keep = self.selected().map(conv_key);
        if !self.filter.matches(&s) {
            let Some(i) = was else { return false };
            self.items.remove(i);
            self.reselect(keep, rows);
            return true;
        }
        if let Some(i) = was {
            self.items.remove(i);
        }
        let below_its_end = self
            .items
            .iter()
            .filter(|c| c.host == s.host)
            .all(|c| c.last_activity.as_str() >= s.last_activity.as_str());
        if below_its_end && self.next_before.contains_key(&s.host) && was.is_none() {
            return false;
        }
        let at = self
            .items
            .iter()
            .position(|c| c.last_activity.as_str() < s.last_activity.as_str())
            .unwrap_or(self.items.len());
        let old_sel = self.nav.selected;
        self.items.insert(at, s);
        if self.items.len() > MAX_CONVERSATIONS
            && let Some(last) = self.items.pop()
        {
            // Pages below ask for what was older than the dropped row, same moment included.
            self.next_before
                .insert(last.host, just_after(&last.last_activity));
        }
        if self.follow {
            self.nav = Nav::default();
            self.nav.clamp(self.items.len(), rows);
            return true;
        }
        // Not following: the selected conversation stays where it is on screen.
        let now = keep.and_then(|k| self.items.iter().position(|c| conv_key(c) == k));
        if let Some(ni) = now {
            if ni > old_sel {
                self.nav.offset += ni - old_sel;
                self.unseen += 1;
            }
            self.nav.selected = ni;
        }
        self.nav.clamp(self.items.len(), rows);
        true
    }

    /// Whether the next pages should be requested now.
    pub(crate) fn wants_more(&self) -> bool {
        !self.next_before.is_empty()
            && self.loading.is_empty()
            && self.loading_more.is_empty()
            && self.nav.selected + PREFETCH >= self.items.len()
    }
}

/// One millisecond after an RFC 3339 time (the daemon's `before` is exclusive); the time
/// itself when it does not parse.
fn just_after(ts: &str) -> String {
    match crate::format::parse_time(ts) {
        Some(t) => {
            humantime::format_rfc3339_millis(t + std::time::Duration::from_millis(1)).to_string()
        }
        None => ts.to_string(),
    }
}

impl App {
    /// Opening the view the first time loads the list.
    pub(super) fn conversations_opened(&mut self) -> Vec<Effect> {
        if self.conversations.wanted {
            return Vec::new();
        }
        self.conversations.wanted = true;
        self.conversations_page(false)
    }

    /// What a resync of host `self.route` asks for: its list (once the view was opened) and
    /// the open conversation when it is that host's.
    pub(super) fn conversations_resync(&mut self) -> Vec<Effect> {
        let mut fx = Vec::new();
        if self.conversations.wanted {
            fx.extend(self.conversations_page_of(self.route, false));
        }
        let open_here = (self.conversations.stack.last()).is_some_and(|d| d.host == self.route);
        if open_here {
            fx.extend(self.conversation_refetch());
        }
        fx
    }

    /// Asks every host for its first page (`more == false`), or each host that has more for
    /// its next older one.
    pub(super) fn conversations_page(&mut self, more: bool) -> Vec<Effect> {
        let hosts = if more {
            self.conversations.next_before.keys().copied().collect()
        } else {
            self.live_hosts()
        };
        hosts
            .into_iter()
            .flat_map(|h| self.conversations_page_of(h, more))
            .collect()
    }

    /// Asks `host` for its first page (`more == false`) or its next older one, with the
    /// filter.
    pub(super) fn conversations_page_of(&mut self, host: HostId, more: bool) -> Vec<Effect> {
        if !self.host_connected(host) {
            return Vec::new();
        }
        let c = &mut self.conversations;
        let before = match (more, c.next_before.get(&host)) {
            (false, _) => None,
            (true, Some(b)) => Some(b.clone()),
            (true, None) => return Vec::new(),
        };
        if more {
            c.loading_more.insert(host);
        } else {
            c.loading.insert(host);
            c.loading_more.remove(&host);
        }
        let f = &c.filter;
        let args = ListConversationsArgs {
            container: Some(f.container.clone()).filter(|s| !s.is_empty()),
            client: f.client.clone(),
            model: Some(f.model.clone()).filter(|s| !s.is_empty()),
            parent_id: None,
            before,
            limit: Some(CONVERSATION_PAGE),
        };
        let tag = Tag::Conversations {
            generation: c.generation,
            more,
        };
        vec![self.send_on(host, tag, Command::ListConversations(args))]
    }

    /// The answer to a page of host `self.route`.
    pub(super) fn conversations_listed(
        &mut self,
        generation: u64,
        more: bool,
        outcome: Result<Reply, String>,
    ) {
        let rows = self.list_rows();
        let host = self.route;
        let fleet = self.is_fleet();
        let name = self.host_name(host).to_string();
        let c = &mut self.conversations;
        if generation != c.generation {
            return; // an answer for a filter that is gone
        }
        if more {
            c.loading_more.remove(&host);
        } else {
            c.loading.remove(&host);
        }
        match outcome.and_then(super::daemon::data::<Page>) {
            Ok(p) if more => c.append_page(host, p.conversations, p.next_before, rows),
            Ok(p) => {
                c.error = None;
                c.set_first_page(host, p.conversations, p.next_before, rows);
            }
            // Over a fleet, which host could not answer.
            Err(e) if fleet => c.error = Some(format!("{name}: {e}")),
            Err(e) => c.error = Some(e),
        }
    }

    /// `conversation.updated` of host `self.route`: the list row, and the open conversation
    /// when it is this one.
    pub(super) fn conversation_updated(&mut self, s: ConversationSummary) -> Vec<Effect> {
        let host = self.route;
        let fx = self.conversation_changed(host, &s.id);
        let rows = self.list_rows();
        let c = &mut self.conversations;
        // While its first page is loading it will contain this state (or a newer one).
        if c.wanted && !c.loading.contains(&host) {
            c.upsert(Hosted::new(host, s), rows);
        }
        fx
    }

    /// A new filter: the list is asked for again from the top, in follow mode.
    pub(super) fn conversations_filter(&mut self, f: ConvFilter) -> Vec<Effect> {
        let c = &mut self.conversations;
        c.filter = f;
        c.generation += 1;
        c.items.clear();
        c.nav = Nav::default();
        c.next_before.clear();
        c.follow = true;
        c.unseen = 0;
        c.wanted = true;
        self.conversations_page(false)
    }

    /// Moves the list's selection; leaves follow mode when moving off the top, pages on.
    pub(super) fn conversations_step(&mut self, delta: isize) -> Vec<Effect> {
        let rows = self.list_rows();
        let c = &mut self.conversations;
        c.nav.step(delta, c.items.len(), rows);
        c.follow = c.nav.selected == 0 && c.follow;
        if c.nav.selected == 0 {
            c.unseen = 0;
        }
        if c.wants_more() {
            return self.conversations_page(true);
        }
        Vec::new()
    }

    /// `F`: follow mode on (selection on the newest) or off.
    pub(super) fn conversations_follow(&mut self) {
        let c = &mut self.conversations;
        c.follow = !c.follow;
        if c.follow {
            c.unseen = 0;
            c.nav = Nav::default();
        }
    }
}
