//! The dashboard's state machine: a plain [`App`] changed only by [`App::update`], which takes
//! a [`Msg`] (a key, a resize, a clock tick, something from the daemon link) and returns the
//! [`Effect`]s to carry out (commands to send, bell, desktop notification, quit). No I/O
//! happens here, so every behaviour is tested without a terminal or a daemon.

pub(crate) mod activity;
pub(crate) mod conversation;
mod conversation_keys;
pub(crate) mod conversations;
pub(crate) mod cost;
pub(crate) mod credential_picker;
pub(crate) mod credentials;
mod daemon;
pub(crate) mod detail;
mod export;
pub(crate) mod form;
mod form_credentials;
pub mod hosted;
mod keys;
pub(crate) mod listed;
pub mod lists;
pub(crate) mod middlewares;
pub(crate) mod modal;
mod submit;
pub mod usage;
pub mod usage_live;
mod ws;

use std::time::{Duration, SystemTime};

use crossterm::event::KeyEvent;
use greyproxy_protocol::{AllowAllStatus, Command, PendingRequest, Rule};

use crate::keymap::Ctx;
use crate::layout;
use crate::link::{LinkEvent, Request};
use form::Form;
pub use hosted::{HostId, HostView, Hosted};
use listed::{Listed, Nav};
use lists::Activity;
use modal::{Confirm, Picker};

/// How often `status` is asked while the daemon exports (status bar).
pub(crate) const EXPORT_POLL: Duration = Duration::from_secs(10);
/// How long a command's result stays on the message line.
pub(crate) const MESSAGE_TTL: Duration = Duration::from_secs(10);

/// The views.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Pending requests (default).
    Pending,
    /// Activity feed.
    Activity,
    /// Rules.
    Rules,
    /// Configured external middlewares.
    Middlewares,
    /// LLM conversations, and the one opened.
    Conversations,
    /// LLM usage and cost by container, client or model, with live rates.
    Usage,
    /// Credentials and launcher sessions.
    Credentials,
    /// The daemons of a fleet: state, version, pending count, round-trip time.
    Hosts,
}

impl View {
    /// In tab order (the number keys follow it).
    pub(crate) const ALL: [View; 8] = [
        View::Pending,
        View::Activity,
        View::Rules,
        View::Middlewares,
        View::Conversations,
        View::Usage,
        View::Credentials,
        View::Hosts,
    ];

    /// The views of this dashboard: the Hosts view only over a fleet.
    pub(crate) fn all(fleet: bool) -> &'static [View] {
        if fleet { &View::ALL } else { &View::ALL[..7] }
    }

    /// Tab title.
    pub(crate) fn title(self) -> &'static str {
        match self {
            View::Pending => "Pending",
            View::Activity => "Activity",
            View::Rules => "Rules",
            View::Middlewares => "Middlewares",
            View::Conversations => "Conversations",
            View::Usage => "Usage",
            View::Credentials => "Credentials",
            View::Hosts => "Hosts",
        }
    }

    /// Tab title when the full titles do not fit.
    pub(crate) fn short_title(self) -> &'static str {
        match self {
            View::Pending => "Pend",
            View::Activity => "Act",
            View::Rules => "Rules",
            View::Middlewares => "Mw",
            View::Conversations => "Conv",
            View::Usage => "Usage",
            View::Credentials => "Cred",
            View::Hosts => "Hosts",
        }
    }

    /// The number key that shows it (also shown in its tab).
    pub(crate) fn number(self) -> char {
        match self {
            View::Pending => '1',
            View::Activity => '2',
            View::Rules => '3',
            View::Middlewares => '4',
            View::Conversations => '5',
            View::Usage => '6',
            View::Credentials => '7',
            View::Hosts => '8',
        }
    }
}

/// State of the link to the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnState {
    /// Trying (attempt number).
    Connecting(u32),
    /// Connected.
    Connected,
    /// Lost or refused; next attempt after the delay.
    Disconnected {
        /// Why.
        reason: String,
        /// The token was refused.
        unauthorized: bool,
        /// Delay before the next attempt.
        retry_in: Duration,
    },
}

/// What each command sent was for, returned with its reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tag {
    /// `claim_notifications` on connect.
    Claim,
    /// `status` during a resync.
    Status,
    /// A page of `list_pending` (`append` for pages after the first).
    Pending {
        /// Append to the list rather than replace it.
        append: bool,
    },
    /// A page of `list_rules`.
    Rules {
        /// Append to the list rather than replace it.
        append: bool,
    },
    /// A page of `list_activity` for the filter generation `generation`.
    Activity {
        /// Filter generation the query was made for.
        generation: u64,
        /// For an older page: where it was asked to start (`None` for the first page).
        more: Option<lists::NextPage>,
    },
    /// `allow` / `deny` / `dismiss` of a pending request, with a description for the message.
    Decide {
        /// `allowed`, `denied`, `dismissed`.
        done: &'static str,
        /// `#12 opencode → host:443`.
        what: String,
    },
    /// `create_rule`.
    CreateRule,
    /// `update_rule`.
    UpdateRule(u64),
    /// `delete_rule`.
    DeleteRule(u64),
    /// `set_allow_all` / `clear_allow_all`.
    Silent,
    /// `get_transaction` for the detail view.
    Transaction(u64),
    /// A page of `export` for a HAR file.
    ExportHar,
    /// `list_activity` of the messages of a WebSocket upgrade (its id).
    WsMessages(u64),
    /// `get_transaction` of one WebSocket message (preview or opened message).
    WsBody(u64),
    /// `list_middlewares` for the Middlewares view.
    Middlewares,
    /// A page of `list_conversations` for the filter generation `generation` (`more`: an
    /// older page).
    Conversations {
        /// Filter generation the query was made for.
        generation: u64,
        /// An older page (appended).
        more: bool,
    },
    /// `get_conversation` of this conversation.
    Conversation(String),
    /// `list_llm_calls` finding the transaction of this call.
    LlmCall(u64),
    /// `usage_summary` of today, for the status bar.
    CostToday,
    /// `usage_summary` for the Usage view, for the window and grouping of `generation`.
    Usage {
        /// Window and grouping generation the query was made for.
        generation: u64,
    },
    /// `list_credentials` for the Credentials view.
    Credentials,
    /// `list_sessions` for the Credentials view.
    Sessions,
    /// `create_credential` of this label.
    CreateCredential(String),
    /// `update_credential` of this label.
    UpdateCredential(String),
    /// `delete_credential` of this label.
    DeleteCredential(String),
    /// `delete_session` of this id.
    DeleteSession(String),
    /// `decide_credential` of a secret-egress request, with a description for the message.
    DecideCredential {
        /// `refused`, `sent unchanged`…
        done: &'static str,
        /// `#12 opencode → host:443`.
        what: String,
    },
}

/// Input to [`App::update`].
#[derive(Debug, Clone, PartialEq)]
pub enum Msg {
    /// A key press.
    Key(KeyEvent),
    /// The terminal's new size (columns, rows).
    Resize(u16, u16),
    /// The clock (ages, expiries, message timeout).
    Tick(SystemTime),
    /// Something from the daemon link (the focused host's, or the only one's).
    Link(LinkEvent<Tag>),
    /// A [`Effect::WriteFile`] was carried out (or failed).
    Wrote {
        /// Path.
        path: String,
        /// The error, if any.
        result: Result<(), String>,
    },
    /// Something from one host's link in a fleet.
    Host(HostId, LinkEvent<Tag>),
}

/// Output of [`App::update`], carried out by the runtime.
// A command is a few hundred bytes and an update yields a handful of effects that live for one
// loop turn: boxing would only add allocations.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Send a command (to the only daemon).
    Send(Request<Tag>),
    /// Send a command to one host of a fleet.
    SendTo(HostId, Request<Tag>),
    /// Ring the terminal bell.
    Bell,
    /// Desktop notification (only when a session bus exists; never fails).
    Notify {
        /// Title.
        summary: String,
        /// Body.
        body: String,
    },
    /// Leave.
    Quit,
    /// Write a file (a HAR export); the runtime answers with [`Msg::Wrote`].
    WriteFile {
        /// Path.
        path: String,
        /// Contents.
        contents: String,
    },
    /// Put text on the terminal's clipboard (OSC 52).
    Clipboard(String),
}

/// Every modal. It lives here, above the modules of its kinds, so that a form can reopen
/// itself without [`modal`] and [`form`] importing each other.
#[derive(Debug, Clone, PartialEq)]
// One modal at a time lives in the app: its size does not matter, boxing would only add noise.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Modal {
    /// Help overlay, scrolled by this many lines.
    Help(u16),
    /// Picker.
    Picker(Picker),
    /// Form.
    Form(Form),
    /// Confirmation.
    Confirm(Confirm),
    /// The decision on a secret-egress request.
    Egress(credential_picker::EgressPicker),
}

/// A line on the message bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Text.
    pub text: String,
    /// Shown as an error.
    pub error: bool,
    /// When it was set (it disappears after [`MESSAGE_TTL`]).
    pub(crate) at: SystemTime,
}

/// Everything the dashboard shows.
#[derive(Debug, Clone)]
pub struct App {
    /// Current time (from [`Msg::Tick`]; fixed in tests).
    pub now: SystemTime,
    /// Terminal size (columns, rows).
    pub size: (u16, u16),
    /// Current view.
    pub view: View,
    /// Open modal, if any.
    pub(crate) modal: Option<Modal>,
    /// Link state.
    pub conn: ConnState,
    /// Control URL of the current or last attempt.
    pub url: String,
    /// Daemon version (greeting / status).
    pub server_version: Option<String>,
    /// `seq` of the last event seen on this connection.
    pub(crate) last_seq: Option<u64>,
    /// Pending requests of every host, newest first per host, and the selection.
    pub pending: Listed<Hosted<PendingRequest>>,
    /// Rules of every host, newest first per host, and the selection.
    pub rules: Listed<Hosted<Rule>>,
    /// The daemons (one entry with a single daemon).
    pub hosts: Vec<HostView>,
    /// The host the single-host views (activity, conversations, usage, middlewares) follow.
    pub focus: HostId,
    /// The host the current update is about: commands it yields go there.
    pub(crate) route: HostId,
    /// Selection in the Hosts view.
    pub(crate) hosts_nav: Nav,
    /// The activity window.
    pub activity: Activity,
    /// The Middlewares view.
    pub(crate) middlewares: lists::Middlewares,
    /// The Conversations view.
    pub(crate) conversations: conversations::Conversations,
    /// Today's LLM cost (status bar).
    pub(crate) cost: cost::CostToday,
    /// The Usage view.
    pub usage: usage::UsageBoard,
    /// The Credentials view.
    pub(crate) credentials: credentials::Credentials,
    /// Silent mode.
    pub allow_all: AllowAllStatus,
    /// Notification claims held across all clients.
    pub(crate) claims: u64,
    /// This client holds a claim.
    pub claimed: bool,
    /// Message line.
    pub message: Option<Message>,
    /// Send desktop notifications.
    pub(crate) desktop_notify: bool,
    /// Something changed since the last frame.
    pub dirty: bool,
    /// Quit was asked.
    pub(crate) quit: bool,
    /// Resyncs done (connects, gaps, lags, `R`), for the status bar and tests.
    pub resyncs: u64,
    /// The daemon's OTLP exporter (status bar), from the latest `status`.
    pub export: Option<greyproxy_protocol::export::ExportStatus>,
    /// When `status` was last asked for the exporter's state.
    pub(crate) export_asked: Option<SystemTime>,
    /// A HAR file being gathered (`E`).
    pub(crate) har: Option<export::HarJob>,
}

impl App {
    /// A fresh dashboard, not connected yet.
    pub fn new(now: SystemTime, size: (u16, u16), desktop_notify: bool) -> App {
        App {
            now,
            size,
            view: View::Pending,
            modal: None,
            conn: ConnState::Connecting(1),
            url: String::new(),
            server_version: None,
            last_seq: None,
            pending: Listed::default(),
            rules: Listed::default(),
            hosts: vec![HostView::new("local")],
            focus: 0,
            route: 0,
            hosts_nav: Nav::default(),
            activity: Activity::new(),
            middlewares: lists::Middlewares::default(),
            conversations: conversations::Conversations::default(),
            cost: cost::CostToday::default(),
            usage: usage::UsageBoard::new(now),
            credentials: credentials::Credentials::default(),
            allow_all: AllowAllStatus::default(),
            claims: 0,
            claimed: false,
            message: None,
            desktop_notify,
            dirty: true,
            quit: false,
            resyncs: 0,
            export: None,
            export_asked: None,
            har: None,
        }
    }

    /// Visible rows of a list at the current size.
    pub fn list_rows(&self) -> usize {
        layout::list_rows(self.size.1)
    }

    /// The keymap context of what has the keyboard now.
    pub(crate) fn ctx(&self) -> Ctx {
        match (&self.modal, self.view) {
            (Some(Modal::Help(_)), _) => Ctx::Help,
            (Some(Modal::Picker(_) | Modal::Egress(_)), _) => Ctx::Picker,
            (Some(Modal::Form(_)), _) => Ctx::Form,
            (Some(Modal::Confirm(_)), _) => Ctx::Confirm,
            (None, View::Activity) if self.activity.detail.is_some() => Ctx::Detail,
            (None, View::Pending) => Ctx::Pending,
            (None, View::Activity) => Ctx::Activity,
            (None, View::Rules) => Ctx::Rules,
            (None, View::Middlewares) => Ctx::Middlewares,
            (None, View::Conversations) if !self.conversations.stack.is_empty() => {
                Ctx::Conversation
            }
            (None, View::Conversations) => Ctx::Conversations,
            (None, View::Usage) => Ctx::Usage,
            (None, View::Credentials) => Ctx::Credentials,
            (None, View::Hosts) => Ctx::Hosts,
        }
    }

    fn say(&mut self, text: impl Into<String>, error: bool) {
        self.message = Some(Message {
            text: text.into(),
            error,
            at: self.now,
        });
    }

    /// Applies one message; returns what to do.
    pub fn update(&mut self, msg: Msg) -> Vec<Effect> {
        self.dirty = true;
        self.route = self.focus;
        let fx = match msg {
            Msg::Link(ev) => return self.on_host_link(self.focus, ev),
            Msg::Host(h, ev) => return self.on_host_link(h, ev),
            other => self.on_input(other),
        };
        self.routed(fx)
    }

    /// One host's link event: noted for the Hosts view, then followed fully (the focused host)
    /// or for the merged lists only (the others).
    fn on_host_link(&mut self, host: HostId, ev: LinkEvent<Tag>) -> Vec<Effect> {
        self.route = host;
        self.note_host(host, &ev);
        let fx = if host == self.focus {
            self.on_link(ev)
        } else {
            self.on_other_host(host, ev)
        };
        self.routed(fx)
    }

    fn on_input(&mut self, msg: Msg) -> Vec<Effect> {
        match msg {
            Msg::Key(k) => self.on_key(k),
            Msg::Resize(w, h) => {
                self.size = (w, h);
                self.clamp_all();
                Vec::new()
            }
            Msg::Tick(now) => {
                self.now = now;
                if let Some(m) = &self.message
                    && now.duration_since(m.at).unwrap_or_default() >= MESSAGE_TTL
                {
                    self.message = None;
                }
                let mut fx = self.middlewares_tick();
                fx.extend(self.conversation_tick());
                fx.extend(self.cost_poke(false));
                fx.extend(self.usage_tick());
                fx.extend(self.credentials_tick());
                fx.extend(self.export_tick());
                fx
            }
            Msg::Wrote { path, result } => {
                self.wrote(&path, result);
                Vec::new()
            }
            Msg::Link(_) | Msg::Host(..) => Vec::new(),
        }
    }

    /// Asks `status` every [`EXPORT_POLL`] while the daemon has an exporter, so that the
    /// status bar shows a lagging or failing one.
    fn export_tick(&mut self) -> Vec<Effect> {
        if self.export.is_none() || self.conn != ConnState::Connected {
            return Vec::new();
        }
        let due = self
            .export_asked
            .is_none_or(|at| self.now.duration_since(at).unwrap_or_default() >= EXPORT_POLL);
        if !due {
            return Vec::new();
        }
        self.export_asked = Some(self.now);
        vec![send(Tag::Status, Command::Status)]
    }

    fn clamp_all(&mut self) {
        let rows = self.list_rows();
        self.pending.clamp(rows);
        self.rules.clamp(rows);
        self.hosts_nav.clamp(self.hosts.len(), rows);
        self.middlewares.list.clamp(rows);
        let usage_rows = self.usage_rows();
        self.usage.rows.clamp(usage_rows);
        let n = self.activity.items.len();
        self.activity.nav.clamp(n, rows);
        let ws_rows = self.ws_rows();
        if let Some(ws) = self.activity.detail.as_mut().and_then(|d| d.ws.as_mut()) {
            ws.nav.clamp(ws.items.len(), ws_rows);
        }
        let cred_rows = self.credential_rows();
        self.credentials.creds.clamp(cred_rows);
        self.credentials.sessions.clamp(cred_rows);
        let c = &mut self.conversations;
        c.nav.clamp(c.items.len(), rows);
        self.conversation_reflow();
    }
}

fn send(tag: Tag, command: Command) -> Effect {
    Effect::Send(Request { tag, command })
}

#[cfg(test)]
mod tests;
