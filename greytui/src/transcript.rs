//! One conversation laid out as lines for the terminal: a header (session, container, client,
//! models, totals, context-window fill) and, turn by turn, the user's prompt and the steps
//! (assistant text, thinking, tool calls with their results), word-wrapped at the screen's
//! width. Both halves of the dashboard use it: the state machine moves the selection and
//! scrolls by these lines, the drawing shows the lines on screen — and only those, so a frame
//! costs the same for a conversation of 5 000 turns or a 1 MiB tool result.
//!
//! Lines are kept per block (the header, then one block per turn) so that a refreshed
//! conversation lays out again only the turns that changed (one in progress changes at its
//! end). Everything a model or a tool wrote goes through [`clean`] before it is measured.

use std::borrow::Cow;

use greyproxy_protocol::llm::{Conversation, ConversationSummary, StepToolCall, Turn};
use ratatui::text::Span;

use crate::format::{clean, tokens, usd};

/// What a piece of text is; the drawing gives each its style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tone {
    /// Ordinary text.
    Plain,
    /// Secondary text: labels, results, hints.
    Dim,
    /// Headings (the conversation, turns).
    Heading,
    /// The user's prompt.
    Prompt,
    /// Thinking.
    Thinking,
    /// A tool's glyph and name.
    Tool,
    /// A link to a subagent conversation.
    Link,
    /// An error (tool error, incomplete conversation).
    Error,
    /// Good state (answered, a context far from full).
    Good,
    /// Attention (in progress, a context filling up).
    Warn,
}

/// A run of text in one tone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Seg {
    /// Its tone.
    pub(crate) tone: Tone,
    /// The text (already escaped, at most the width).
    pub(crate) text: String,
}

fn seg(tone: Tone, text: impl Into<String>) -> Seg {
    Seg {
        tone,
        text: text.into(),
    }
}

/// One screen line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DocLine {
    /// The entry it belongs to (index within its block), if any.
    pub(crate) entry: Option<usize>,
    /// Its runs of text.
    pub(crate) segs: Vec<Seg>,
}

/// What an entry shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryKind {
    /// The user's prompt opening a turn.
    Prompt,
    /// Assistant text.
    Text,
    /// A thinking preview.
    Thinking,
    /// A tool call and its result.
    Tool,
}

/// A selectable part of the transcript (the selection moves between entries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// What it is.
    pub(crate) kind: EntryKind,
    /// First line, within its block.
    pub(crate) first: usize,
    /// Number of lines.
    pub(crate) len: usize,
    /// The LLM call it came from.
    pub(crate) call_id: Option<u64>,
    /// For a tool call: its name.
    pub(crate) tool: Option<String>,
    /// For a tool call that spawned a subagent: that conversation.
    pub(crate) link: Option<String>,
}

/// The lines of the header or of one turn.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Block {
    turn: Option<u32>,
    lines: Vec<DocLine>,
    entries: Vec<Entry>,
}

/// A laid-out conversation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Transcript {
    width: usize,
    blocks: Vec<Block>,
    /// First line of each block, and the total at the end.
    line_start: Vec<usize>,
    /// First entry of each block, and the total at the end.
    entry_start: Vec<usize>,
}

/// Where an entry is, in the whole transcript.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span2 {
    /// First line.
    pub(crate) start: usize,
    /// Number of lines.
    pub(crate) len: usize,
}

impl Span2 {
    /// One past the last line.
    pub(crate) fn end(self) -> usize {
        self.start + self.len
    }
}

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

/// Builds one block's lines and entries.
struct Builder {
    width: usize,
    block: Block,
}

impl Builder {
    fn new(width: usize, turn: Option<u32>) -> Builder {
        Builder {
            width,
            block: Block {
                turn,
                lines: Vec::new(),
                entries: Vec::new(),
            },
        }
    }

    fn line(&mut self, entry: Option<usize>, segs: Vec<Seg>) {
        self.block.lines.push(DocLine { entry, segs });
    }

    /// `text` wrapped after `lead` (first line) and `indent` spaces (the others), in `tone`.
    fn wrapped(
        &mut self,
        entry: Option<usize>,
        lead: Vec<Seg>,
        indent: usize,
        tone: Tone,
        text: &str,
    ) {
        let lead_w: usize = lead.iter().map(|s| text_width(&s.text)).sum();
        let avail = self.width.saturating_sub(lead_w.max(indent)).max(8);
        let mut lead = Some(lead);
        for l in wrap(text, avail) {
            let mut segs = match lead.take() {
                Some(lead) => lead,
                None => vec![seg(Tone::Plain, " ".repeat(indent))],
            };
            segs.push(seg(tone, l));
            self.line(entry, segs);
        }
    }

    /// A `label   value` line of the header (the value wrapped under itself).
    fn field(&mut self, label: &str, tone: Tone, value: &str) {
        let lead = vec![seg(Tone::Dim, format!(" {label:<12}"))];
        self.wrapped(None, lead, 13, tone, value);
    }

    /// Starts an entry; returns its index.
    fn entry(&mut self, kind: EntryKind, call_id: Option<u64>) -> usize {
        self.block.entries.push(Entry {
            kind,
            first: self.block.lines.len(),
            len: 0,
            call_id,
            tool: None,
            link: None,
        });
        self.block.entries.len() - 1
    }

    /// Ends entry `e` at the current line.
    fn close(&mut self, e: usize) {
        let n = self.block.lines.len();
        if let Some(en) = self.block.entries.get_mut(e) {
            en.len = n - en.first;
        }
    }
}

/// `1 turn`, `2 turns`.
fn plural(n: u64, what: &str) -> String {
    match n {
        1 => format!("1 {what}"),
        n => format!("{n} {what}s"),
    }
}

/// `12s`, `3m 05s`, `1h 02m`.
fn duration(ms: u64) -> String {
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
pub(crate) fn cost(t: &greyproxy_protocol::llm::LlmTotals) -> String {
    match (t.cost_micro_usd, t.unpriced_calls) {
        (0, n) if n > 0 => "?".into(),
        (c, 0) => usd(c),
        (c, _) => format!("{}+", usd(c)),
    }
}

fn header(c: &Conversation, width: usize) -> Block {
    let s = &c.summary;
    let mut b = Builder::new(width, None);
    b.wrapped(
        None,
        vec![seg(Tone::Heading, " Conversation ")],
        1,
        Tone::Heading,
        &s.id,
    );
    let (word, tone) = status(s);
    b.field("status", tone, word);
    if !s.title.is_empty() {
        b.field("title", Tone::Plain, &s.title);
    }
    b.field(
        "session",
        Tone::Plain,
        &format!(
            "{} ({}) · {} thread",
            s.session_id, s.session_source, s.thread
        ),
    );
    if let Some(p) = &s.parent_id {
        let via = s
            .parent_tool_call_id
            .as_deref()
            .map(|t| format!(" (tool call {t})"))
            .unwrap_or_default();
        b.field("spawned by", Tone::Link, &format!("{p}{via}"));
    }
    b.field(
        "container",
        Tone::Plain,
        &format!(
            "{} · client {} · provider {}",
            s.container_name, s.client, s.provider
        ),
    );
    b.field("models", Tone::Plain, &s.models.join(", "));
    let t = &s.totals;
    b.field(
        "calls",
        Tone::Plain,
        &format!(
            "{} · {} · {}",
            t.calls,
            plural(u64::from(s.turns), "turn"),
            duration(t.duration_ms)
        ),
    );
    let u = &t.usage;
    b.field(
        "tokens",
        Tone::Plain,
        &format!(
            "in {} ({} cache read, {} cache write) · out {} ({} reasoning)",
            tokens(u.input_tokens),
            tokens(u.cache_read_tokens),
            tokens(u.cache_write_tokens),
            tokens(u.output_tokens),
            tokens(u.reasoning_tokens)
        ),
    );
    let unpriced = match t.unpriced_calls {
        0 => String::new(),
        n => format!(" ({n} calls without a price)"),
    };
    b.field("cost", Tone::Plain, &format!("{}{unpriced}", cost(t)));
    match s.context_window {
        Some(w) if w > 0 => {
            let (bar, tone) = context_bar(s.context_tokens, w, 20);
            let lead = vec![seg(Tone::Dim, format!(" {:<12}", "context"))];
            let mut segs = lead;
            segs.push(seg(tone, bar));
            segs.push(seg(
                Tone::Dim,
                format!(" {} of {}", tokens(s.context_tokens), tokens(w)),
            ));
            b.line(None, segs);
        }
        _ => b.field(
            "context",
            Tone::Dim,
            &format!("{} tokens (window unknown)", tokens(s.context_tokens)),
        ),
    }
    b.field(
        "activity",
        Tone::Plain,
        &format!("{} → {}", s.started_at, s.last_activity),
    );
    if !c.subagents.is_empty() {
        b.field("subagents", Tone::Link, &c.subagents.len().to_string());
    }
    b.block
}

fn tool_call(b: &mut Builder, call_id: u64, t: &StepToolCall) {
    let e = b.entry(EntryKind::Tool, Some(call_id));
    let kind = ToolKind::of(&t.call.name);
    let name = clean(&t.call.name).into_owned();
    let lead = vec![
        seg(Tone::Plain, "   "),
        seg(Tone::Tool, format!("{} {name}", kind.glyph())),
        seg(Tone::Plain, "  "),
    ];
    let summary: Cow<str> = if t.call.summary.is_empty() {
        Cow::Borrowed(t.call.input_preview.as_str())
    } else {
        Cow::Borrowed(t.call.summary.as_str())
    };
    b.wrapped(Some(e), lead, 5, Tone::Plain, &summary);
    if let Some(link) = &t.linked_conversation_id {
        let lead = vec![seg(Tone::Plain, "     "), seg(Tone::Link, "↳ ")];
        let text = format!("subagent {link} · enter opens it");
        b.wrapped(Some(e), lead, 7, Tone::Link, &text);
    }
    if let Some(r) = &t.result_preview {
        let (mark, tone) = if t.is_error {
            ("✗ ", Tone::Error)
        } else {
            ("⎿ ", Tone::Dim)
        };
        let lead = vec![seg(Tone::Plain, "     "), seg(tone, mark)];
        let text = if r.is_empty() { "(empty)" } else { r.as_str() };
        b.wrapped(Some(e), lead, 7, tone, text);
    }
    if let Some(en) = b.block.entries.get_mut(e) {
        en.tool = Some(t.call.name.clone());
        en.link = t.linked_conversation_id.clone();
    }
    b.close(e);
}

fn turn_block(t: &Turn, width: usize) -> Block {
    let mut b = Builder::new(width, Some(t.number));
    b.line(None, Vec::new());
    let time = crate::format::clock(&t.started_at);
    let calls = plural(t.call_ids.len() as u64, "call");
    let title = format!(" Turn {} · {time} · {calls} ", t.number);
    let rule = width.saturating_sub(text_width(&title) + 2);
    b.line(
        None,
        vec![seg(Tone::Heading, format!("──{title}{}", "─".repeat(rule)))],
    );
    let e = b.entry(EntryKind::Prompt, t.call_ids.first().copied());
    let prompt = if t.user_prompt.is_empty() {
        "(no prompt text)"
    } else {
        t.user_prompt.as_str()
    };
    b.wrapped(
        Some(e),
        vec![seg(Tone::Prompt, " ❯ ")],
        3,
        Tone::Prompt,
        prompt,
    );
    b.close(e);
    for step in &t.steps {
        if !step.thinking_preview.is_empty() {
            let e = b.entry(EntryKind::Thinking, Some(step.call_id));
            let lead = vec![seg(Tone::Plain, "   "), seg(Tone::Thinking, "∴ ")];
            b.wrapped(Some(e), lead, 5, Tone::Thinking, &step.thinking_preview);
            b.close(e);
        }
        if !step.text.is_empty() {
            let e = b.entry(EntryKind::Text, Some(step.call_id));
            let lead = vec![seg(Tone::Plain, "   "), seg(Tone::Plain, "● ")];
            b.wrapped(Some(e), lead, 5, Tone::Plain, &step.text);
            b.close(e);
        }
        for t in &step.tool_calls {
            tool_call(&mut b, step.call_id, t);
        }
    }
    b.block
}

impl Transcript {
    /// Lays out `conv` at `width` columns. With the previous layout of the same conversation
    /// (`prev`, laid out from `old`), turns equal to their old selves keep their lines.
    pub(crate) fn build(
        conv: &Conversation,
        width: usize,
        prev: Option<(&Conversation, Transcript)>,
    ) -> Transcript {
        let width = width.max(20);
        let mut old: Vec<Option<Block>> = Vec::new();
        let mut old_turns: &[Turn] = &[];
        if let Some((o, t)) = prev
            && t.width == width
        {
            old_turns = &o.turns;
            old = t.blocks.into_iter().skip(1).map(Some).collect();
        }
        let mut blocks = vec![header(conv, width)];
        for (i, t) in conv.turns.iter().enumerate() {
            let reuse = match (old_turns.get(i), old.get_mut(i)) {
                (Some(o), Some(slot)) if o == t => slot.take(),
                _ => None,
            };
            blocks.push(reuse.unwrap_or_else(|| turn_block(t, width)));
        }
        let mut line_start = Vec::with_capacity(blocks.len() + 1);
        let mut entry_start = Vec::with_capacity(blocks.len() + 1);
        let (mut l, mut e) = (0, 0);
        for b in &blocks {
            line_start.push(l);
            entry_start.push(e);
            l += b.lines.len();
            e += b.entries.len();
        }
        line_start.push(l);
        entry_start.push(e);
        Transcript {
            width,
            blocks,
            line_start,
            entry_start,
        }
    }

    /// The width it was laid out at.
    pub(crate) fn width(&self) -> usize {
        self.width
    }

    /// Number of lines.
    pub(crate) fn lines(&self) -> usize {
        self.line_start.last().copied().unwrap_or(0)
    }

    /// Number of entries.
    pub(crate) fn entries(&self) -> usize {
        self.entry_start.last().copied().unwrap_or(0)
    }

    /// The block holding entry `e`, and `e` within it.
    fn entry_block(&self, e: usize) -> Option<(usize, usize)> {
        if e >= self.entries() {
            return None;
        }
        let b = self
            .entry_start
            .partition_point(|&s| s <= e)
            .checked_sub(1)?;
        Some((b, e - self.entry_start[b]))
    }

    /// Entry `e`.
    pub(crate) fn entry(&self, e: usize) -> Option<&Entry> {
        let (b, i) = self.entry_block(e)?;
        self.blocks.get(b)?.entries.get(i)
    }

    /// Where entry `e` is.
    pub(crate) fn span(&self, e: usize) -> Option<Span2> {
        let (b, i) = self.entry_block(e)?;
        let en = self.blocks.get(b)?.entries.get(i)?;
        Some(Span2 {
            start: self.line_start[b] + en.first,
            len: en.len,
        })
    }

    /// The turn entry `e` belongs to.
    pub(crate) fn turn_of(&self, e: usize) -> Option<u32> {
        let (b, _) = self.entry_block(e)?;
        self.blocks.get(b)?.turn
    }

    /// The prompt entry of turn `n`, and the line of the turn's heading.
    pub(crate) fn turn(&self, n: u32) -> Option<(usize, usize)> {
        let b = self.blocks.iter().position(|b| b.turn == Some(n))?;
        let first = self.blocks[b].entries.first()?;
        // The heading is the line above the prompt.
        let start = self.line_start[b] + first.first;
        Some((self.entry_start[b], start.saturating_sub(1)))
    }

    /// The entry of call `call_id`: its tool call named `tool` when there is one, else the
    /// first entry of that call.
    pub(crate) fn find_call(&self, call_id: u64, tool: &str) -> Option<usize> {
        let mut first = None;
        for (b, block) in self.blocks.iter().enumerate() {
            for (i, en) in block.entries.iter().enumerate() {
                if en.call_id != Some(call_id) {
                    continue;
                }
                let g = self.entry_start[b] + i;
                if en.kind == EntryKind::Tool && en.tool.as_deref() == Some(tool) {
                    return Some(g);
                }
                first.get_or_insert(g);
            }
        }
        first
    }

    /// The first entry whose lines reach line `line` or below.
    pub(crate) fn entry_at_or_after(&self, line: usize) -> Option<usize> {
        let total = self.entries();
        let b = self
            .line_start
            .partition_point(|&s| s <= line)
            .checked_sub(1)?;
        for bi in b..self.blocks.len() {
            for (i, en) in self.blocks[bi].entries.iter().enumerate() {
                if self.line_start[bi] + en.first + en.len > line {
                    return Some(self.entry_start[bi] + i);
                }
            }
        }
        total.checked_sub(1)
    }

    /// Lines `[start, start + n)` with the global entry each belongs to.
    pub(crate) fn visible(&self, start: usize, n: usize) -> Vec<(&DocLine, Option<usize>)> {
        let mut out = Vec::with_capacity(n);
        let Some(mut b) = self
            .line_start
            .partition_point(|&s| s <= start)
            .checked_sub(1)
        else {
            return out;
        };
        let mut i = start - self.line_start[b];
        while out.len() < n && b < self.blocks.len() {
            match self.blocks[b].lines.get(i) {
                Some(l) => {
                    out.push((l, l.entry.map(|e| self.entry_start[b] + e)));
                    i += 1;
                }
                None => {
                    b += 1;
                    i = 0;
                }
            }
        }
        out
    }
}

#[cfg(test)]
#[path = "transcript_tests.rs"]
mod tests;
