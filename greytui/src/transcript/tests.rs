//! Tests of the transcript layout: wrapping (widths, long words, escapes, nothing lost), tool
//! kinds, the header, entries and turns, the visible window, and a relayout that reuses
//! unchanged turns giving exactly what a fresh layout gives.
#![allow(clippy::unwrap_used)]

use super::text::{context_bar, text_width};
use super::*;
use crate::sample_llm::{conversation, subagent_id};

fn text(l: &DocLine) -> String {
    l.segs.iter().map(|s| s.text.as_str()).collect()
}

fn all_text(t: &Transcript) -> Vec<String> {
    t.visible(0, t.lines())
        .iter()
        .map(|(l, _)| text(l))
        .collect()
}

#[test]
fn wrapping_breaks_at_spaces_within_the_width_and_keeps_every_character() {
    assert_eq!(wrap("one two three four", 9), ["one two", "three", "four"]);
    assert_eq!(wrap("abcdefghij", 4), ["abcd", "efgh", "ij"]);
    assert_eq!(wrap("a\n\nb", 10), ["a", "", "b"]);
    assert_eq!(wrap("", 10), [""]);
    // Wide characters count two columns.
    assert_eq!(wrap("准备好了吗", 4), ["准备", "好了", "吗"]);
    // Escapes, tabs and CRLF: nothing reaches the terminal raw.
    assert_eq!(wrap("a\tb\x1b[2J\r\nc", 40), ["a    b␛[2J", "c"]);
    let long = "lorem ipsum dolor sit amet, consectetur adipiscing elit ".repeat(40);
    let lines = wrap(&long, 37);
    assert!(lines.iter().all(|l| text_width(l) <= 37));
    let joined: String = lines.concat().split_whitespace().collect();
    let orig: String = long.split_whitespace().collect();
    assert_eq!(joined, orig);
}

#[test]
fn tools_get_the_glyph_of_their_kind() {
    let k = |n| ToolKind::of(n);
    assert_eq!(k("Bash"), ToolKind::Shell);
    assert_eq!(k("exec_command"), ToolKind::Shell);
    assert_eq!(k("run_shell_command"), ToolKind::Shell);
    assert_eq!(k("Read"), ToolKind::Read);
    assert_eq!(k("read_file"), ToolKind::Read);
    assert_eq!(k("Edit"), ToolKind::Edit);
    assert_eq!(k("apply_patch"), ToolKind::Edit);
    assert_eq!(k("write_file"), ToolKind::Edit);
    assert_eq!(k("Grep"), ToolKind::Search);
    assert_eq!(k("Glob"), ToolKind::Search);
    assert_eq!(k("ls"), ToolKind::Search);
    assert_eq!(k("WebFetch"), ToolKind::Web);
    assert_eq!(k("google_web_search"), ToolKind::Web);
    assert_eq!(k("Task"), ToolKind::Agent);
    assert_eq!(k("Agent"), ToolKind::Agent);
    assert_eq!(k("update_plan"), ToolKind::Other);
    assert_eq!(k("location"), ToolKind::Other, "not `cat`");
    assert_eq!(ToolKind::Shell.glyph(), "$");
}

#[test]
fn the_header_says_where_the_context_stands() {
    let t = Transcript::build(&conversation(), 78, None);
    let lines = all_text(&t);
    let ctx = lines.iter().find(|l| l.contains("context")).unwrap();
    assert!(
        ctx.contains("[████████░░░░░░░░░░░░] 41% 82.3k of 200k"),
        "{ctx}"
    );
    assert!(lines.iter().any(|l| l.contains("$0.41")), "{lines:?}");
    assert_eq!(context_bar(170_000, 200_000, 10).1, Tone::Error);
    assert_eq!(context_bar(130_000, 200_000, 10).1, Tone::Warn);
    assert_eq!(context_bar(0, 0, 4).0, "[░░░░] 0%");
    // Unknown window: the tokens alone.
    let mut c = conversation();
    c.summary.context_window = None;
    let lines = all_text(&Transcript::build(&c, 78, None));
    assert!(
        lines
            .iter()
            .any(|l| l.contains("82.3k tokens (window unknown)"))
    );
}

#[test]
fn entries_turns_and_calls_are_found() {
    let t = Transcript::build(&conversation(), 78, None);
    // Turn 1: prompt, thinking, text, Task, Read, Grep, text; turn 2: prompt, text, Bash.
    assert_eq!(t.entries(), 10);
    let kinds: Vec<EntryKind> = (0..10).map(|e| t.entry(e).unwrap().kind).collect();
    assert_eq!(kinds[0], EntryKind::Prompt);
    assert_eq!(kinds[1], EntryKind::Thinking);
    assert_eq!(kinds[3], EntryKind::Tool);
    assert_eq!(
        t.entry(3).unwrap().link.as_deref(),
        Some(subagent_id().as_str())
    );
    let (e, heading) = t.turn(2).unwrap();
    assert_eq!(e, 7);
    assert!(text(t.visible(heading, 1)[0].0).contains("Turn 2"));
    assert_eq!(t.turn_of(9), Some(2));
    assert_eq!(t.find_call(57, "Bash"), Some(9));
    assert_eq!(
        t.find_call(57, "Nope"),
        Some(7),
        "the first entry of the call: its prompt"
    );
    assert_eq!(t.find_call(999, "Bash"), None);
    // The Grep result is an error, marked so.
    let grep = t.span(5).unwrap();
    let lines: Vec<String> = t
        .visible(grep.start, grep.len)
        .iter()
        .map(|(l, _)| text(l))
        .collect();
    assert!(lines[1].contains("✗ rg: src: No such file"), "{lines:?}");
    // Model output with an escape sequence is shown escaped.
    let joined = all_text(&t).join("\n");
    assert!(joined.contains("␛[31mnothing␛[0m") && !joined.contains('\x1b'));
    // Every line carries the entry it belongs to.
    let owners: Vec<Option<usize>> = t
        .visible(grep.start, grep.len)
        .iter()
        .map(|(_, e)| *e)
        .collect();
    assert!(owners.iter().all(|o| *o == Some(5)));
    assert_eq!(t.entry_at_or_after(0), Some(0));
    assert_eq!(t.entry_at_or_after(grep.start), Some(5));
    assert_eq!(t.entry_at_or_after(t.lines() + 10), Some(9));
}

#[test]
fn the_visible_window_crosses_blocks_and_stops_at_the_end() {
    let t = Transcript::build(&conversation(), 60, None);
    let all = all_text(&t);
    assert_eq!(all.len(), t.lines());
    let (_, heading) = t.turn(2).unwrap();
    let w: Vec<String> = t
        .visible(heading - 3, 6)
        .iter()
        .map(|(l, _)| text(l))
        .collect();
    assert_eq!(w, all[heading - 3..heading + 3]);
    assert_eq!(t.visible(t.lines() - 2, 10).len(), 2);
    assert!(t.visible(t.lines() + 5, 10).is_empty());
    assert!(all.iter().all(|l| text_width(l) <= 60), "{all:?}");
}

#[test]
fn a_relayout_reusing_unchanged_turns_equals_a_fresh_one() {
    let old = conversation();
    let first = Transcript::build(&old, 70, None);
    let mut new = old.clone();
    new.turns[1].steps[0].tool_calls[0].result_preview = Some("added 1 package".into());
    new.summary.totals.calls += 1;
    let reused = Transcript::build(&new, 70, Some((&old, first.clone())));
    assert_eq!(reused, Transcript::build(&new, 70, None));
    // At another width nothing is reused.
    let wider = Transcript::build(&new, 100, Some((&old, first)));
    assert_eq!(wider, Transcript::build(&new, 100, None));
}
