//! Building the blocks of a transcript: the header of a conversation and one block per turn
//! (the heading, the prompt, then each step's thinking, text and tool calls with their
//! results and subagent links), each entry recording the lines it spans.

use std::borrow::Cow;

use greyproxy_protocol::llm::{Conversation, StepToolCall, Turn};

use super::text::{context_bar, cost, duration, plural, status, text_width, wrap};
use super::{Block, DocLine, Entry, EntryKind, Seg, Tone, ToolKind, seg};
use crate::format::{clean, tokens};

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

pub(super) fn header(c: &Conversation, width: usize) -> Block {
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

pub(super) fn turn_block(t: &Turn, width: usize) -> Block {
    let mut b = Builder::new(width, Some(t.number));
    b.line(None, Vec::new());
    let time = clean(crate::format::clock(&t.started_at));
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
