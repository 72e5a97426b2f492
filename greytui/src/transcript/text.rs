//! Measuring and wording for the transcript: display widths (as the drawing measures them),
//! word wrapping that escapes control characters and loses nothing, the kind and glyph of a
//! tool, the context-window bar, a conversation's status and cost.

use greyproxy_protocol::llm::{ConversationSummary, LlmTotals};
use ratatui::text::Span;

use super::Tone;
use crate::format::{clean, usd};

/// The kind of tool a call is, from its name, for its glyph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ToolKind {
    /// Runs a command.
    Shell,
    /// Reads a file.
    Read,
    /// Writes or edits a file.
    Edit,
    /// Searches files.
    Search,
    /// Fetches or searches the web.
    Web,
    /// Spawns a subagent.
    Agent,
    /// Anything else.
    Other,
}

impl ToolKind {
    /// Recognised from the tool names of the agents greyproxy knows (Claude Code, codex,
    /// opencode, aider, gemini-cli), case-insensitively.
    pub(crate) fn of(name: &str) -> ToolKind {
        let n = name.to_ascii_lowercase();
        let n = n.as_str();
        let has = |parts: &[&str]| parts.iter().any(|p| n.contains(p));
        let is = |names: &[&str]| names.contains(&n);
        if is(&["task", "agent", "dispatch_agent", "spawn_agent"]) || has(&["subagent"]) {
            ToolKind::Agent
        } else if has(&["web", "fetch", "browse", "http"]) {
            ToolKind::Web
        } else if has(&["bash", "shell", "exec", "command", "terminal"]) {
            ToolKind::Shell
        } else if has(&["grep", "glob", "search", "find", "list_dir"]) || is(&["ls", "list"]) {
            ToolKind::Search
        } else if has(&["edit", "write", "patch", "replace", "create", "todo"]) {
            ToolKind::Edit
        } else if has(&["read", "view", "open"]) || is(&["cat"]) {
            ToolKind::Read
        } else {
            ToolKind::Other
        }
    }

    /// One-column glyph.
    pub(crate) fn glyph(self) -> &'static str {
        match self {
            ToolKind::Shell => "$",
            ToolKind::Read => "≡",
            ToolKind::Edit => "✎",
            ToolKind::Search => "⌕",
            ToolKind::Web => "◎",
            ToolKind::Agent => "⑂",
            ToolKind::Other => "⚙",
        }
    }
}

/// Display width of a character, as the terminal drawing measures it.
fn char_width(c: char) -> usize {
    let mut buf = [0u8; 4];
    Span::raw(&*c.encode_utf8(&mut buf)).width()
}

/// Display width of a string.
pub(crate) fn text_width(s: &str) -> usize {
    Span::raw(s).width()
}

/// Word-wraps `text` at `width` columns: paragraphs at `\n`, words at spaces, a word longer
/// than a line cut where the line ends. Tabs become spaces, other control characters are
/// escaped ([`clean`]). Every character of the text is on some line.
pub(crate) fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut out = Vec::new();
    for para in text.split('\n') {
        let para = para
            .strip_suffix('\r')
            .unwrap_or(para)
            .replace('\t', "    ");
        let para = clean(&para);
        wrap_line(&para, width, &mut out);
    }
    out
}

fn wrap_line(line: &str, width: usize, out: &mut Vec<String>) {
    let mut cur = String::new();
    let mut cur_w = 0;
    let mut pushed = false;
    for token in line.split_inclusive(' ') {
        let word = token.trim_end_matches(' ');
        let word_w = text_width(word);
        if cur_w + word_w <= width {
            cur.push_str(token);
            cur_w += word_w + (token.len() - word.len());
            continue;
        }
        if !cur.trim_end().is_empty() {
            out.push(cur.trim_end().to_string());
            pushed = true;
            cur.clear();
            cur_w = 0;
        }
        if word_w <= width {
            cur.push_str(token);
            cur_w = word_w + (token.len() - word.len());
            continue;
        }
        for c in token.chars() {
            let w = char_width(c);
            if cur_w + w > width && !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
                pushed = true;
                cur_w = 0;
            }
            cur.push(c);
            cur_w += w;
        }
    }
    let rest = cur.trim_end();
    if !rest.is_empty() || !pushed {
        out.push(rest.to_string());
    }
}

/// `1 turn`, `2 turns`.
pub(super) fn plural(n: u64, what: &str) -> String {
    match n {
        1 => format!("1 {what}"),
        n => format!("{n} {what}s"),
    }
}

/// `12s`, `3m 05s`, `1h 02m`.
pub(super) fn duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{:.1}s", ms as f64 / 1000.0),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// `[████████░░░░░░░░░░░░] 41%`, its tone by how full.
pub(crate) fn context_bar(used: u64, window: u64, cells: usize) -> (String, Tone) {
    let pct = if window == 0 {
        0.0
    } else {
        used as f64 * 100.0 / window as f64
    };
    let filled = ((pct / 100.0 * cells as f64).round() as usize).min(cells);
    let tone = match pct {
        p if p >= 85.0 => Tone::Error,
        p if p >= 60.0 => Tone::Warn,
        _ => Tone::Good,
    };
    let bar = format!("{}{}", "█".repeat(filled), "░".repeat(cells - filled));
    (format!("[{bar}] {pct:.0}%"), tone)
}

/// The status as a word and its tone.
pub(crate) fn status(s: &ConversationSummary) -> (&'static str, Tone) {
    use greyproxy_protocol::llm::ConversationStatus as S;
    match s.status {
        S::InProgress => ("in progress", Tone::Warn),
        S::Answered => ("answered", Tone::Good),
        S::Incomplete => ("incomplete", Tone::Error),
        _ => ("?", Tone::Dim),
    }
}

/// Cost of a conversation or of totals: `$0.42`, `$0.42+` when some calls have no price,
/// `?` when none has.
pub(crate) fn cost(t: &LlmTotals) -> String {
    match (t.cost_micro_usd, t.unpriced_calls) {
        (0, n) if n > 0 => "?".into(),
        (c, 0) => usd(c),
        (c, _) => format!("{}+", usd(c)),
    }
}
