//! The Conversations view (the list, or the opened conversation's transcript) and the "why"
//! of held requests: the second line of a Pending row and the lines above the picker's
//! choices. Only what is on screen is turned into widgets: the visible rows of the list, the
//! visible lines of the transcript.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Wrap};

use greyproxy_protocol::PendingRequest;
use greyproxy_protocol::llm::{ConversationSummary, LlmContext};

use super::widgets::{DIM, HEADER, KEY, Window, fit, table};
use crate::app::App;
use crate::app::Hosted;
use crate::app::conversation::ConvDetail;
use crate::app::listed::Nav;
use crate::format::{age, clean, ellipsize, tokens};
use crate::transcript::{Tone, ToolKind, cost, status, wrap};

/// Width from which the list shows each conversation's title (its first prompt).
const WIDE: u16 = 110;

/// The style of a tone.
pub(super) fn tone_style(t: Tone) -> Style {
    match t {
        Tone::Plain => Style::new(),
        Tone::Dim => DIM,
        Tone::Heading => HEADER,
        Tone::Prompt => Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD),
        Tone::Thinking => DIM.add_modifier(Modifier::ITALIC),
        Tone::Tool => Style::new()
            .fg(Color::LightBlue)
            .add_modifier(Modifier::BOLD),
        Tone::Link => Style::new().fg(Color::Magenta),
        Tone::Error => Style::new().fg(Color::Red),
        Tone::Good => Style::new().fg(Color::Green),
        Tone::Warn => Style::new().fg(Color::Yellow),
    }
}

/// Peer text for one cell: line breaks and tabs become spaces, other controls are escaped.
fn one_line(s: &str) -> String {
    let flat: String = s
        .chars()
        .map(|c| {
            if matches!(c, '\n' | '\r' | '\t') {
                ' '
            } else {
                c
            }
        })
        .collect();
    clean(&flat).into_owned()
}

/// Draws the view.
pub(super) fn draw(f: &mut Frame, area: Rect, app: &App) {
    match app.conversations.stack.last() {
        Some(d) => detail(f, area, d),
        None => list(f, area, app),
    }
}

/// The right side of the tab line: follow state, count, filter; or, with a conversation
/// open, where the screen is in it.
pub(super) fn info(app: &App) -> String {
    let c = &app.conversations;
    if let Some(d) = c.stack.last() {
        let depth = if c.stack.len() > 1 {
            "subagent "
        } else {
            "lines "
        };
        let lines = d.doc.lines();
        if lines == 0 {
            return format!("{depth}… ");
        }
        let end = (d.scroll + app.doc_rows()).min(lines);
        return format!("{depth}{}-{end}/{lines} ", d.scroll + 1);
    }
    let mut parts = Vec::new();
    if c.is_loading() {
        parts.push("loading…".to_string());
    }
    parts.push(if c.follow {
        "following".to_string()
    } else if c.unseen > 0 {
        format!("paused, {} moved up", c.unseen)
    } else {
        "paused".to_string()
    });
    let more = if c.next_before.is_empty() { "" } else { "+" };
    parts.push(format!("{}{more} listed", c.items.len()));
    if c.filter.is_active() {
        parts.push(c.filter.describe());
    }
    format!("{} ", parts.join(" · "))
}

fn status_glyph(s: &ConversationSummary) -> Span<'static> {
    let (_, tone) = status(s);
    let glyph = match tone {
        Tone::Warn => "●",
        Tone::Good => "✓",
        Tone::Error => "✗",
        _ => "?",
    };
    Span::styled(glyph, tone_style(tone))
}

fn list(f: &mut Frame, area: Rect, app: &App) {
    let c = &app.conversations;
    let win = Window::under_header(&c.nav, c.items.len(), area);
    let visible = &c.items[win.range.clone()];
    let wide = area.width >= WIDE;
    let containers: Vec<String> = visible
        .iter()
        .map(|s| one_line(&s.container_name))
        .collect();
    let models: Vec<String> = visible
        .iter()
        .map(|s| one_line(s.models.first().map(String::as_str).unwrap_or("?")))
        .collect();
    let cw = fit("CONTAINER", containers.iter().map(String::as_str), 9, 16);
    let mw = fit("MODEL", models.iter().map(String::as_str), 10, 28);
    let fleet = app.is_fleet();
    let hw = fit("HOST", visible.iter().map(|s| app.host_name(s.host)), 4, 16);
    let rows = win.rows(visible.iter().enumerate(), |(i, s)| {
        let t = &s.totals;
        let mut cells = vec![
            Cell::from(status_glyph(s)),
            Cell::from(containers[i].clone()),
            Cell::from(s.client.as_str()),
            Cell::from(models[i].clone()),
            Cell::from(s.turns.to_string()),
            Cell::from(t.calls.to_string()),
            Cell::from(tokens(t.usage.input_tokens)),
            Cell::from(tokens(t.usage.output_tokens)),
            Cell::from(cost(t)),
            Cell::from(age(&s.last_activity, app.now)),
        ];
        if wide {
            cells.push(Cell::from(one_line(&s.title)));
        }
        if fleet {
            // After the status glyph.
            cells.insert(1, Cell::from(app.host_name(s.host).to_string()));
        }
        (cells, Style::new())
    });
    let mut widths = vec![
        Constraint::Length(1),
        Constraint::Length(cw),
        Constraint::Length(11),
        if wide {
            Constraint::Length(mw)
        } else {
            Constraint::Fill(1)
        },
        Constraint::Length(5),
        Constraint::Length(5),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(8),
        Constraint::Length(4),
    ];
    let mut header = vec![
        "",
        "CONTAINER",
        "CLIENT",
        "MODEL",
        "TURNS",
        "CALLS",
        "IN",
        "OUT",
        "COST",
        "LAST",
    ];
    if wide {
        widths.push(Constraint::Fill(1));
        header.push("TITLE");
    }
    if fleet {
        widths.insert(1, Constraint::Length(hw));
        header.insert(1, "HOST");
    }
    let empty = match &c.error {
        _ if c.is_loading() => "Loading…".to_string(),
        Some(e) => format!("Conversations are unavailable: {e}"),
        None if c.filter.is_active() => {
            "No conversation matches the filter (/ to change it).".into()
        }
        None => "No conversations yet. They appear here as agents call LLM APIs through the \
                 proxy (docs/llm.md)."
            .into(),
    };
    table(f, area, &header, widths, rows, &empty);
}

fn detail(f: &mut Frame, area: Rect, d: &ConvDetail) {
    if d.conv.is_none() {
        let text = match &d.error {
            Some(e) => Line::styled(
                format!(" cannot load conversation {}: {e}", one_line(&d.id)),
                Style::new().fg(Color::Red),
            ),
            None => Line::styled(format!(" loading conversation {}…", one_line(&d.id)), DIM),
        };
        let hint = Line::styled(" esc or backspace goes back", DIM);
        f.render_widget(
            Paragraph::new(vec![text, Line::raw(""), hint]).wrap(Wrap { trim: false }),
            area,
        );
        return;
    }
    let lines: Vec<Line> = d
        .doc
        .visible(d.scroll, area.height as usize)
        .into_iter()
        .map(|(l, entry)| {
            let gutter = if entry.is_some() && entry == Some(d.selected) {
                Span::styled("▌", KEY)
            } else {
                Span::raw(" ")
            };
            let mut spans = vec![gutter];
            spans.extend(
                l.segs
                    .iter()
                    .map(|s| Span::styled(s.text.as_str(), tone_style(s.tone))),
            );
            Line::from(spans)
        })
        .collect();
    f.render_widget(Paragraph::new(lines), area);
}

/// `$ Bash: npm install left-pad`: the tool call behind a held request, one line.
pub(super) fn why_text(c: &LlmContext) -> String {
    let glyph = ToolKind::of(&c.tool).glyph();
    format!("{glyph} {}: {}", one_line(&c.tool), one_line(&c.summary))
}

/// The rows of the pending table when a row with a why takes two lines: the first row on
/// screen (the selected one always is) and how many fit in `lines` lines.
pub(super) fn pending_rows(
    nav: &Nav,
    items: &[Hosted<PendingRequest>],
    lines: usize,
) -> (Nav, usize) {
    if items.is_empty() {
        return (*nav, lines.max(1));
    }
    let h = |p: &Hosted<PendingRequest>| 1 + extra_lines(p) as usize;
    let sel = nav.selected.min(items.len() - 1);
    let mut start = nav.offset.min(sel);
    while start < sel && items[start..=sel].iter().map(h).sum::<usize>() > lines {
        start += 1;
    }
    let (mut used, mut n) = (0, 0);
    for p in &items[start..] {
        if used + h(p) > lines {
            break;
        }
        used += h(p);
        n += 1;
    }
    let nav = Nav {
        selected: nav.selected,
        offset: start,
    };
    (nav, n.max(1))
}

/// Lines under a pending row: its secret-egress line, its why line.
fn extra_lines(p: &PendingRequest) -> u16 {
    u16::from(p.credential.is_some()) + u16::from(p.llm_context.is_some())
}

/// Row heights of the visible pending rows.
pub(super) fn pending_heights<'a>(
    rows: Vec<Row<'a>>,
    visible: &[Hosted<PendingRequest>],
) -> Vec<Row<'a>> {
    rows.into_iter()
        .zip(visible)
        .map(|(r, p)| r.height(1 + extra_lines(p)))
        .collect()
}

/// Draws the why lines under the visible pending rows that have one: from the CONTAINER
/// column to the right edge, dim, cut with `…` (the picker and `w` show all of it).
pub(super) fn pending_whys(
    f: &mut Frame,
    area: Rect,
    visible: &[Hosted<PendingRequest>],
    id_w: u16,
) {
    let x = area.x + id_w + 1;
    let width = area.width.saturating_sub(id_w + 1);
    let mut y = area.y + 1; // the header
    for p in visible {
        if y >= area.y + area.height {
            break;
        }
        let mut line = y + 1;
        if let Some(e) = &p.credential
            && line < area.y + area.height
        {
            super::credentials::egress_line(f, Rect::new(x, line, width, 1), e);
            line += 1;
        }
        if let Some(c) = &p.llm_context
            && line < area.y + area.height
        {
            let text = ellipsize(&format!("↳ {}", why_text(c)), width as usize);
            let rect = Rect::new(x, line, width, 1);
            f.render_widget(Paragraph::new(Span::styled(text, DIM)), rect);
        }
        y += 1 + extra_lines(p);
    }
}

/// The picker's lines about the why: the tool call, the model's last line of text, how to
/// open the conversation; wrapped at `width`.
pub(super) fn picker_why(c: &LlmContext, width: usize) -> Vec<Line<'static>> {
    let mut out = Vec::new();
    let w = width.saturating_sub(6).max(10);
    for (i, l) in wrap(&why_text(c), w).into_iter().enumerate() {
        let lead = if i == 0 { " Why: " } else { "      " };
        out.push(Line::from(vec![
            Span::styled(lead, HEADER),
            Span::styled(l, tone_style(Tone::Tool)),
        ]));
    }
    if let Some(t) = c.last_text.as_deref().filter(|t| !t.trim().is_empty()) {
        for l in wrap(&format!("“{}”", t.trim()), w) {
            out.push(Line::styled(
                format!("      {l}"),
                tone_style(Tone::Thinking),
            ));
        }
    }
    out.push(Line::styled(
        format!(
            "      w opens the conversation at turn {} ({}s before the request)",
            c.turn, c.age_secs
        ),
        DIM,
    ));
    out.push(Line::raw(""));
    out
}
