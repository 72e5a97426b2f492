//! The one keymap table: it decides what a key does ([`action_for`]) and it generates the help
//! overlay and the footer hints, so the three can never disagree.
//!
//! Bindings are grouped by [`Ctx`]. A view's own context is searched before the global one, so
//! a view may give a key its own meaning; modal contexts (picker, form, confirmation, help) are
//! searched alone, so that typing into a form never switches views.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// Where a binding applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ctx {
    /// Every view (searched after the view's own context).
    Global,
    /// The pending-requests view.
    Pending,
    /// The activity view.
    Activity,
    /// The rules view.
    Rules,
    /// The middlewares view.
    Middlewares,
    /// The conversations list.
    Conversations,
    /// An opened conversation.
    Conversation,
    /// The usage view.
    Usage,
    /// The credentials view.
    Credentials,
    /// The Hosts view of a fleet.
    Hosts,
    /// The detail of one activity row.
    Detail,
    /// The scope / duration picker of `A` and `D`.
    Picker,
    /// Forms: rule editor, activity filter, silent mode, typed duration.
    Form,
    /// A yes/no confirmation.
    Confirm,
    /// The help overlay.
    Help,
}

impl Ctx {
    /// Heading in the help overlay.
    pub(crate) fn title(self) -> &'static str {
        match self {
            Ctx::Global => "Everywhere",
            Ctx::Pending => "Pending",
            Ctx::Activity => "Activity",
            Ctx::Rules => "Rules",
            Ctx::Middlewares => "Middlewares",
            Ctx::Conversations => "Conversations",
            Ctx::Conversation => "Conversation (opened)",
            Ctx::Usage => "Usage",
            Ctx::Credentials => "Credentials",
            Ctx::Hosts => "Hosts (fleet)",
            Ctx::Detail => "Activity detail",
            Ctx::Picker => "Scope / duration picker",
            Ctx::Form => "Forms (type to edit the focused field)",
            Ctx::Confirm => "Confirmation",
            Ctx::Help => "This help",
        }
    }

    /// Order of the sections in the help overlay.
    pub(crate) const ALL: [Ctx; 15] = [
        Ctx::Global,
        Ctx::Pending,
        Ctx::Activity,
        Ctx::Rules,
        Ctx::Middlewares,
        Ctx::Conversations,
        Ctx::Conversation,
        Ctx::Usage,
        Ctx::Credentials,
        Ctx::Hosts,
        Ctx::Detail,
        Ctx::Picker,
        Ctx::Form,
        Ctx::Confirm,
        Ctx::Help,
    ];
}

/// What a key asks for. The dashboard's state machine interprets it in its current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Leave the program.
    Quit,
    /// Close the current detail or overlay; quit from a top-level view.
    Back,
    /// Open the help overlay.
    Help,
    /// Next view.
    NextView,
    /// Previous view.
    PrevView,
    /// Pending view.
    ShowPending,
    /// Activity view.
    ShowActivity,
    /// Rules view.
    ShowRules,
    /// Middlewares view.
    ShowMiddlewares,
    /// Conversations view.
    ShowConversations,
    /// Open the conversation behind a held request, at the turn of its tool call.
    OpenWhy,
    /// In a conversation: the HTTP transaction of the selected step.
    ToTransaction,
    /// In a conversation: the next turn.
    NextTurn,
    /// In a conversation: the previous turn.
    PrevTurn,
    /// Usage view.
    ShowUsage,
    /// Hosts view (fleet only).
    ShowHosts,
    /// Hosts view: the single-host views follow the selected host.
    FocusHost,
    /// Usage: next grouping (container, client, model).
    UsageGroup,
    /// Usage: next time window.
    UsageWindow,
    /// Usage: sort by the next column.
    UsageSort,
    /// Usage: reverse the sort order.
    UsageReverse,
    /// Credentials view.
    ShowCredentials,
    /// New credential (form; the secret is typed without echo).
    NewCredential,
    /// Edit the selected credential's bindings, or rotate its secret.
    EditCredential,
    /// Delete the selected credential or end the selected session (asks).
    DeleteCredential,
    /// Move the selection between the credentials and the sessions.
    SwitchPane,
    /// Selection up.
    Up,
    /// Selection down.
    Down,
    /// First row.
    Top,
    /// Last row.
    Bottom,
    /// Half a page down.
    PageDown,
    /// Half a page up.
    PageUp,
    /// Allow the selected pending request: exact scope, permanent.
    AllowExact,
    /// Allow with the scope / duration picker.
    AllowPick,
    /// Deny with the scope / duration picker.
    DenyPick,
    /// Dismiss the selected pending request.
    Dismiss,
    /// Open the selected row (activity detail, rule editor).
    Open,
    /// Edit the activity filter.
    Filter,
    /// In a WebSocket upgrade's detail: switch between its messages and its own headers.
    UpgradeHeaders,
    /// Activity: write the transactions of the filter as a HAR file.
    ExportHar,
    /// Detail: copy the transaction's curl command (OSC 52).
    CopyCurl,
    /// Toggle follow mode (selection pinned to the newest row).
    Follow,
    /// New rule.
    NewRule,
    /// Edit the selected rule.
    EditRule,
    /// Delete the selected rule (asks first).
    DeleteRule,
    /// Silent mode: switch on (asks mode and duration) or off.
    ToggleSilent,
    /// Reload everything from the daemon.
    Resync,
    /// Fetch the current view's list again now (middlewares).
    Refresh,
    /// Choose the highlighted option / save the form.
    Select,
    /// Close the picker, form or confirmation without acting (picker: one step back).
    Cancel,
    /// Next form field.
    NextField,
    /// Previous form field.
    PrevField,
    /// Next choice of the focused choice field.
    ChoiceNext,
    /// Previous choice of the focused choice field.
    ChoicePrev,
    /// Empty the focused text field.
    ClearField,
    /// Confirm.
    Yes,
    /// Refuse.
    No,
}

/// One key: a code and modifiers (Shift is folded into the character).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeySpec {
    /// Key code.
    pub(crate) code: KeyCode,
    /// Modifiers other than Shift.
    pub(crate) mods: KeyModifiers,
}

/// One entry of the keymap table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Binding {
    /// Where it applies.
    pub(crate) ctx: Ctx,
    /// The keys (the first one is shown in footer hints).
    pub(crate) keys: &'static [KeySpec],
    /// What they do.
    pub(crate) action: Action,
    /// Help text.
    pub(crate) desc: &'static str,
    /// Short footer hint, when the binding deserves one.
    pub(crate) hint: Option<&'static str>,
}

const fn ch(c: char) -> KeySpec {
    KeySpec {
        code: KeyCode::Char(c),
        mods: KeyModifiers::NONE,
    }
}

const fn ctrl(c: char) -> KeySpec {
    KeySpec {
        code: KeyCode::Char(c),
        mods: KeyModifiers::CONTROL,
    }
}

const fn key(code: KeyCode) -> KeySpec {
    KeySpec {
        code,
        mods: KeyModifiers::NONE,
    }
}

const fn b(
    ctx: Ctx,
    keys: &'static [KeySpec],
    action: Action,
    desc: &'static str,
    hint: Option<&'static str>,
) -> Binding {
    Binding {
        ctx,
        keys,
        action,
        desc,
        hint,
    }
}

use Action as A;
use Ctx as C;

/// The keymap.
#[rustfmt::skip] // one binding per line reads as the table it is
pub(crate) static BINDINGS: &[Binding] = &[
    b(C::Global, &[ctrl('c')], A::Quit, "quit", None),
    b(C::Global, &[ch('q')], A::Back, "back / quit", Some("quit")),
    b(C::Global, &[ch('?')], A::Help, "help", Some("help")),
    b(C::Global, &[key(KeyCode::Tab)], A::NextView, "next view", None),
    b(C::Global, &[key(KeyCode::BackTab)], A::PrevView, "previous view", None),
    b(C::Global, &[ch('1')], A::ShowPending, "pending view", None),
    b(C::Global, &[ch('2')], A::ShowActivity, "activity view", None),
    b(C::Global, &[ch('3')], A::ShowRules, "rules view", None),
    b(C::Global, &[ch('4')], A::ShowMiddlewares, "middlewares view", None),
    b(C::Global, &[ch('5')], A::ShowConversations, "conversations view", None),
    b(C::Global, &[ch('6')], A::ShowUsage, "usage view", None),
    b(C::Global, &[ch('7')], A::ShowCredentials, "credentials view", None),
    b(C::Global, &[ch('8')], A::ShowHosts, "hosts view (with several daemons)", None),
    b(C::Global, &[ch('j'), key(KeyCode::Down)], A::Down, "down", None),
    b(C::Global, &[ch('k'), key(KeyCode::Up)], A::Up, "up", None),
    b(C::Global, &[ch('g'), key(KeyCode::Home)], A::Top, "first row", None),
    b(C::Global, &[ch('G'), key(KeyCode::End)], A::Bottom, "last row", None),
    b(C::Global, &[ctrl('d'), key(KeyCode::PageDown)], A::PageDown, "half page down", None),
    b(C::Global, &[ctrl('u'), key(KeyCode::PageUp)], A::PageUp, "half page up", None),
    b(C::Global, &[ch('S')], A::ToggleSilent, "silent mode on (asks) / off", None),
    b(C::Global, &[ch('R')], A::Resync, "reload everything from the daemon", None),
    b(C::Pending, &[ch('a')], A::AllowExact, "allow (exact, permanent); secret egress: the choices", Some("allow")),
    b(C::Pending, &[ch('A')], A::AllowPick, "allow with scope / duration picker", Some("allow…")),
    b(C::Pending, &[ch('d')], A::Dismiss, "dismiss", Some("dismiss")),
    b(C::Pending, &[ch('D')], A::DenyPick, "deny with scope / duration picker", Some("deny…")),
    b(C::Pending, &[ch('w')], A::OpenWhy, "why: open the asking conversation at its turn", Some("why")),
    b(C::Activity, &[key(KeyCode::Enter)], A::Open, "details of the row", Some("details")),
    b(C::Activity, &[ch('/')], A::Filter, "filter (container, destination, result, kind)", Some("filter")),
    b(C::Activity, &[ch('F')], A::Follow, "follow newest on / off", Some("follow")),
    b(C::Activity, &[ch('E')], A::ExportHar, "write the filter's transactions as a HAR file", None),
    b(C::Rules, &[ch('n')], A::NewRule, "new rule", Some("new")),
    b(C::Rules, &[ch('e'), key(KeyCode::Enter)], A::EditRule, "edit rule", Some("edit")),
    b(C::Rules, &[ch('d'), key(KeyCode::Delete)], A::DeleteRule, "delete rule (asks)", Some("delete")),
    b(C::Middlewares, &[ch('r')], A::Refresh, "refresh now (every 2 s while shown)", Some("refresh")),
    b(C::Conversations, &[key(KeyCode::Enter)], A::Open, "open the conversation", Some("open")),
    b(C::Conversations, &[ch('/')], A::Filter, "filter (container, client, model)", Some("filter")),
    b(C::Conversations, &[ch('F')], A::Follow, "follow newest activity on / off", Some("follow")),
    b(C::Conversation, &[key(KeyCode::Esc), key(KeyCode::Backspace)], A::Back, "back (to the parent conversation, then the list)", Some("back")),
    b(C::Conversation, &[key(KeyCode::Enter)], A::Open, "open the subagent of the selected tool call", Some("subagent")),
    b(C::Conversation, &[ch('t')], A::ToTransaction, "HTTP transaction of the selected step", Some("transaction")),
    b(C::Conversation, &[ch(']')], A::NextTurn, "next turn", Some("turn")),
    b(C::Conversation, &[ch('[')], A::PrevTurn, "previous turn", None),
    b(C::Hosts, &[key(KeyCode::Enter)], A::FocusHost, "focus: activity, conversations, usage and middlewares follow this host", Some("focus")),
    b(C::Usage, &[ch('b')], A::UsageGroup, "group by container / client / model", Some("group")),
    b(C::Usage, &[ch('w')], A::UsageWindow, "window: last hour / today / 7 days / since the daemon started", Some("window")),
    b(C::Usage, &[ch('s')], A::UsageSort, "sort by the next column", Some("sort")),
    b(C::Usage, &[ch('r')], A::UsageReverse, "reverse the sort order", Some("reverse")),
    b(C::Credentials, &[ch('n')], A::NewCredential, "new credential (the secret is typed without echo)", Some("new")),
    b(C::Credentials, &[ch('e'), key(KeyCode::Enter)], A::EditCredential, "edit the credential's bindings / rotate its secret", Some("edit")),
    b(C::Credentials, &[ch('d'), key(KeyCode::Delete)], A::DeleteCredential, "delete the credential / end the session (asks)", Some("delete")),
    b(C::Credentials, &[ch('s')], A::SwitchPane, "select in credentials / sessions", Some("sessions")),
    b(C::Credentials, &[ch('r')], A::Refresh, "refresh now (every 5 s while shown)", None),
    b(C::Detail, &[key(KeyCode::Esc)], A::Back, "back to the list (from a message: to its upgrade)", Some("back")),
    b(C::Detail, &[key(KeyCode::Enter)], A::Open, "open the selected WebSocket message", None),
    b(C::Detail, &[ch('h')], A::UpgradeHeaders, "WebSocket upgrade: its headers / its messages", None),
    b(C::Detail, &[ch('y')], A::CopyCurl, "copy the request as a curl command (OSC 52)", None),
    b(C::Picker, &[ch('j'), key(KeyCode::Down)], A::Down, "next option", None),
    b(C::Picker, &[ch('k'), key(KeyCode::Up)], A::Up, "previous option", None),
    b(C::Picker, &[key(KeyCode::Enter)], A::Select, "choose (1-9 choose directly)", Some("choose")),
    b(C::Picker, &[key(KeyCode::Esc), ch('q')], A::Cancel, "one step back / close", Some("back")),
    b(C::Picker, &[ch('w')], A::OpenWhy, "why: open the conversation that asked", None),
    b(C::Form, &[key(KeyCode::Tab), key(KeyCode::Down)], A::NextField, "next field", Some("next field")),
    b(C::Form, &[key(KeyCode::BackTab), key(KeyCode::Up)], A::PrevField, "previous field", None),
    b(C::Form, &[key(KeyCode::Right)], A::ChoiceNext, "next choice (also space)", None),
    b(C::Form, &[key(KeyCode::Left)], A::ChoicePrev, "previous choice", None),
    b(C::Form, &[ctrl('u')], A::ClearField, "clear the field", None),
    b(C::Form, &[key(KeyCode::Enter)], A::Select, "save", Some("save")),
    b(C::Form, &[key(KeyCode::Esc)], A::Cancel, "cancel", Some("cancel")),
    b(C::Confirm, &[ch('y'), key(KeyCode::Enter)], A::Yes, "yes", Some("yes")),
    b(C::Confirm, &[ch('n'), key(KeyCode::Esc), ch('q')], A::No, "no", Some("no")),
    b(C::Help, &[ch('j'), key(KeyCode::Down)], A::Down, "scroll down", None),
    b(C::Help, &[ch('k'), key(KeyCode::Up)], A::Up, "scroll up", None),
    b(C::Help, &[ch('?'), ch('q'), key(KeyCode::Esc)], A::Cancel, "close help", Some("close")),
];

/// Folds Shift into the key: terminals report `A` as `Char('A')` with or without SHIFT, and
/// Shift-Tab as `BackTab` with SHIFT.
pub(crate) fn normalize(k: KeyEvent) -> KeySpec {
    let mut mods = k.modifiers - KeyModifiers::SHIFT;
    if let KeyCode::Char(c) = k.code
        && mods.contains(KeyModifiers::CONTROL)
    {
        // Some terminals send ctrl-C with SHIFT or as uppercase.
        mods = KeyModifiers::CONTROL | (mods & KeyModifiers::ALT);
        return KeySpec {
            code: KeyCode::Char(c.to_ascii_lowercase()),
            mods,
        };
    }
    KeySpec { code: k.code, mods }
}

/// The action bound to `k` in `ctx` alone.
pub(crate) fn action_in(ctx: Ctx, k: KeyEvent) -> Option<Action> {
    let k = normalize(k);
    BINDINGS
        .iter()
        .find(|b| b.ctx == ctx && b.keys.contains(&k))
        .map(|b| b.action)
}

/// The action of `k` in a view's context: the view's own bindings, then the global ones.
pub(crate) fn action_for(ctx: Ctx, k: KeyEvent) -> Option<Action> {
    action_in(ctx, k).or_else(|| action_in(Ctx::Global, k))
}

/// How a key is written in help and hints: `a`, `A`, `ctrl-c`, `enter`, `tab`, `↑`.
pub(crate) fn label(k: &KeySpec) -> String {
    let base = match k.code {
        KeyCode::Char(' ') => "space".to_string(),
        KeyCode::Char(c) => c.to_string(),
        KeyCode::Enter => "enter".into(),
        KeyCode::Esc => "esc".into(),
        KeyCode::Tab => "tab".into(),
        KeyCode::BackTab => "shift-tab".into(),
        KeyCode::Up => "↑".into(),
        KeyCode::Down => "↓".into(),
        KeyCode::Left => "←".into(),
        KeyCode::Right => "→".into(),
        KeyCode::Home => "home".into(),
        KeyCode::End => "end".into(),
        KeyCode::PageUp => "pgup".into(),
        KeyCode::PageDown => "pgdn".into(),
        KeyCode::Delete => "del".into(),
        KeyCode::Backspace => "backspace".into(),
        other => format!("{other:?}").to_lowercase(),
    };
    if k.mods.contains(KeyModifiers::CONTROL) {
        format!("ctrl-{base}")
    } else {
        base
    }
}

/// Footer hints of a context: `key label` pairs, the context's own first, then `? help` and
/// `q quit` (or the context's own back key).
pub(crate) fn hints(ctx: Ctx) -> Vec<(String, &'static str)> {
    let mut out: Vec<(String, &'static str)> = BINDINGS
        .iter()
        .filter(|b| b.ctx == ctx)
        .filter_map(|b| Some((label(b.keys.first()?), b.hint?)))
        .collect();
    if matches!(
        ctx,
        Ctx::Pending
            | Ctx::Activity
            | Ctx::Rules
            | Ctx::Middlewares
            | Ctx::Conversations
            | Ctx::Conversation
            | Ctx::Usage
            | Ctx::Credentials
            | Ctx::Hosts
            | Ctx::Detail
    ) {
        out.extend(
            BINDINGS
                .iter()
                .filter(|b| b.ctx == Ctx::Global)
                .filter_map(|b| Some((label(b.keys.first()?), b.hint?))),
        );
    }
    out
}

/// The help overlay's lines: one heading per context, then `keys  description` rows.
pub(crate) fn help_lines() -> Vec<(Option<&'static str>, String, &'static str)> {
    let mut out = Vec::new();
    for ctx in Ctx::ALL {
        out.push((Some(ctx.title()), String::new(), ""));
        for b in BINDINGS.iter().filter(|b| b.ctx == ctx) {
            let keys: Vec<String> = b.keys.iter().map(label).collect();
            out.push((None, keys.join(" "), b.desc));
        }
    }
    out
}

/// The keymap as Markdown, one table per context: the "Keys" section of docs/greytui.md is
/// this text (a test keeps them equal, and prints it when they differ).
#[cfg(test)]
pub(crate) fn markdown() -> String {
    let mut out = String::new();
    for ctx in Ctx::ALL {
        out.push_str(&format!(
            "**{}**\n\n| keys | action |\n|---|---|\n",
            ctx.title()
        ));
        for b in BINDINGS.iter().filter(|b| b.ctx == ctx) {
            let keys: Vec<String> = b.keys.iter().map(|k| format!("`{}`", label(k))).collect();
            out.push_str(&format!("| {} | {} |\n", keys.join(" "), b.desc));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests;
