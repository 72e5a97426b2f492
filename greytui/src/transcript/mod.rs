//! One conversation laid out as lines for the terminal: a header (session, container, client,
//! models, totals, context-window fill) and, turn by turn, the user's prompt and the steps
//! (assistant text, thinking, tool calls with their results), word-wrapped at the screen's
//! width. Both halves of the dashboard use it: the state machine moves the selection and
//! scrolls by these lines, the drawing shows the lines on screen — and only those, so a frame
//! costs the same for a conversation of 5 000 turns or a 1 MiB tool result.
//!
//! Lines are kept per block (the header, then one block per turn) so that a refreshed
//! conversation lays out again only the turns that changed (one in progress changes at its
//! end). Everything a model or a tool wrote goes through [`crate::format::clean`] before it is
//! measured. `text` holds the measuring, wrapping and wording, `layout` builds the blocks.

mod layout;
mod text;

use greyproxy_protocol::llm::{Conversation, Turn};

pub(crate) use text::{ToolKind, cost, status, wrap};

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
pub(crate) struct Extent {
    /// First line.
    pub(crate) start: usize,
    /// Number of lines.
    pub(crate) len: usize,
}

impl Extent {
    /// One past the last line.
    pub(crate) fn end(self) -> usize {
        self.start + self.len
    }
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
        let mut blocks = vec![layout::header(conv, width)];
        for (i, t) in conv.turns.iter().enumerate() {
            let reuse = match (old_turns.get(i), old.get_mut(i)) {
                (Some(o), Some(slot)) if o == t => slot.take(),
                _ => None,
            };
            blocks.push(reuse.unwrap_or_else(|| layout::turn_block(t, width)));
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
    pub(crate) fn span(&self, e: usize) -> Option<Extent> {
        let (b, i) = self.entry_block(e)?;
        let en = self.blocks.get(b)?.entries.get(i)?;
        Some(Extent {
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
mod tests;
