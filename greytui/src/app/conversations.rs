//! The Conversations view's list: the conversations the daemon assembled from LLM calls
//! (`list_conversations`), newest activity first, kept current by `conversation.updated`
//! events (upserted by id and moved to their place), paged as the selection nears the end of
//! what is loaded, bounded at [`MAX_CONVERSATIONS`]. The filter (container, client, model) is
//! applied by the daemon to pages and by [`ConvFilter::matches`] to live rows, with the
//! daemon's semantics. The list is loaded the first time the view is opened, and again on
//! every resync after that.

use std::collections::HashSet;

use greyproxy_protocol::command::ListConversationsArgs;
use greyproxy_protocol::llm::ConversationSummary;
use greyproxy_protocol::{Command, Reply};
use serde::Deserialize;

use super::conversation::ConvDetail;
use super::listed::Nav;
use super::{App, ConnState, Effect, Tag, send};

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
    /// Newest activity first.
    pub(crate) items: Vec<ConversationSummary>,
    /// Selection.
    pub(crate) nav: Nav,
    /// The filter.
    pub(crate) filter: ConvFilter,
    /// Bumped when the filter changes: answers for an older filter are dropped.
    pub(crate) generation: u64,
    /// The view was opened: the list is kept loaded (and reloaded on resync).
    pub(crate) wanted: bool,
    /// The first page was asked for and not answered yet.
    pub(crate) loading: bool,
    /// An older page was asked for and not answered yet.
    pub(crate) loading_more: bool,
    /// Where the next (older) page starts (`before`), when there is one.
    pub(crate) next_before: Option<String>,
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
            loading: false,
            loading_more: false,
            next_before: None,
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

impl Conversations {
    /// The selected conversation.
    pub(crate) fn selected(&self) -> Option<&ConversationSummary> {
        self.items.get(self.nav.selected)
    }

    /// Puts the selection back on conversation `id` when it is still listed.
    fn reselect(&mut self, id: Option<String>, rows: usize) {
        if let Some(i) = id.and_then(|id| self.items.iter().position(|c| c.id == id)) {
            self.nav.selected = i;
        }
        self.nav.clamp(self.items.len(), rows);
    }

    /// Replaces the list with a first page (the selection stays on its conversation).
    pub(crate) fn set_first_page(
        &mut self,
        mut items: Vec<ConversationSummary>,
        next: Option<String>,
        rows: usize,
    ) {
        let keep = (!self.follow).then(|| self.selected().map(|c| c.id.clone()));
        let mut seen = HashSet::new();
        items.retain(|c| seen.insert(c.id.clone()));
        items.truncate(MAX_CONVERSATIONS);
        self.items = items;
        self.next_before = next;
        self.unseen = 0;
        if self.follow {
            self.nav = Nav::default();
        }
        self.reselect(keep.flatten(), rows);
    }

    /// Appends an older page, skipping conversations already listed.
    pub(crate) fn append_page(
        &mut self,
        items: Vec<ConversationSummary>,
        next: Option<String>,
        rows: usize,
    ) {
        let listed: HashSet<&str> = self.items.iter().map(|c| c.id.as_str()).collect();
        let fresh: Vec<ConversationSummary> = items
            .into_iter()
            .filter(|c| !listed.contains(c.id.as_str()))
            .collect();
        self.items.extend(fresh);
        self.next_before = next;
        if self.items.len() >= MAX_CONVERSATIONS {
            self.items.truncate(MAX_CONVERSATIONS);
            self.next_before = None;
        }
        self.nav.clamp(self.items.len(), rows);
    }

    /// A live summary: replaced and moved to its place by last activity (inserted when new);
    /// removed when it no longer matches the filter. Older than everything loaded while more
    /// pages exist, it is left for its page. Returns whether the list changed.
    pub(crate) fn upsert(&mut self, s: ConversationSummary, rows: usize) -> bool {
        let was = self.items.iter().position(|c| c.id == s.id);
        let keep = self.selected().map(|c| c.id.clone());
        if !self.filter.matches(&s) {
            let Some(i) = was else { return false };
            self.items.remove(i);
            self.reselect(keep, rows);
            return true;
        }
        if let Some(i) = was {
            self.items.remove(i);
        }
        let at = self
            .items
            .iter()
            .position(|c| c.last_activity.as_str() < s.last_activity.as_str())
            .unwrap_or(self.items.len());
        if at == self.items.len() && self.next_before.is_some() && was.is_none() {
            return false;
        }
        let old_sel = self.nav.selected;
        self.items.insert(at, s);
        if self.items.len() > MAX_CONVERSATIONS
            && let Some(last) = self.items.pop()
        {
            // Pages below ask for what was older than the dropped row, same moment included.
            self.next_before = Some(just_after(&last.last_activity));
        }
        if self.follow {
            self.nav = Nav::default();
            self.nav.clamp(self.items.len(), rows);
            return true;
        }
        // Not following: the selected conversation stays where it is on screen.
        let now = keep.and_then(|id| self.items.iter().position(|c| c.id == id));
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

    /// Whether the next page should be requested now.
    pub(crate) fn wants_more(&self) -> bool {
        self.next_before.is_some()
            && !self.loading
            && !self.loading_more
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

    /// What a resync asks for: the list (once the view was opened) and the open conversation.
    pub(super) fn conversations_resync(&mut self) -> Vec<Effect> {
        let mut fx = Vec::new();
        if self.conversations.wanted {
            fx.extend(self.conversations_page(false));
        }
        fx.extend(self.conversation_refetch());
        fx
    }

    /// Asks for the first page (`more == false`) or the next older one.
    pub(super) fn conversations_page(&mut self, more: bool) -> Vec<Effect> {
        if self.conn != ConnState::Connected {
            return Vec::new();
        }
        let c = &mut self.conversations;
        let before = match (more, &c.next_before) {
            (false, _) => None,
            (true, Some(b)) => Some(b.clone()),
            (true, None) => return Vec::new(),
        };
        if more {
            c.loading_more = true;
        } else {
            c.loading = true;
            c.loading_more = false;
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
        vec![send(tag, Command::ListConversations(args))]
    }

    /// The answer to a page.
    pub(super) fn conversations_listed(
        &mut self,
        generation: u64,
        more: bool,
        outcome: Result<Reply, String>,
    ) {
        let rows = self.list_rows();
        let c = &mut self.conversations;
        if generation != c.generation {
            return; // an answer for a filter that is gone
        }
        if more {
            c.loading_more = false;
        } else {
            c.loading = false;
        }
        match outcome.and_then(super::daemon::data::<Page>) {
            Ok(p) if more => c.append_page(p.conversations, p.next_before, rows),
            Ok(p) => {
                c.error = None;
                c.set_first_page(p.conversations, p.next_before, rows);
            }
            Err(e) => c.error = Some(e),
        }
    }

    /// `conversation.updated`: the list row, and the open conversation when it is this one.
    pub(super) fn conversation_updated(&mut self, s: ConversationSummary) -> Vec<Effect> {
        let fx = self.conversation_changed(&s.id);
        let rows = self.list_rows();
        let c = &mut self.conversations;
        // While the first page is loading it will contain this state (or a newer one).
        if c.wanted && !c.loading {
            c.upsert(s, rows);
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
        c.next_before = None;
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
