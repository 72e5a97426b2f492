//! The drawing pieces every view shares: the styles, the ` label   value` line of the detail
//! panes, the badge of middleware decisions, and the list table (its visible window, fitted
//! columns, the selected row, the message of an empty list).

use std::ops::Range;

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, Wrap};

use crate::app::listed::Nav;
use crate::middlewares::Badge;

/// Style of the selected row.
pub(crate) const SELECTED: Style = Style::new().add_modifier(Modifier::REVERSED);
/// Style of headings and table headers.
pub(crate) const HEADER: Style = Style::new().add_modifier(Modifier::BOLD);
/// Style of keys in hints.
pub(crate) const KEY: Style = Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD);
/// Style of dim text.
pub(crate) const DIM: Style = Style::new().fg(Color::DarkGray);

/// A rectangle of at most `w`×`h` centred in `area`.
pub(crate) fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

/// One field of a detail pane: the name dim in a 15-column gutter, then the value.
pub(crate) fn field(k: &str, v: impl Into<Span<'static>>) -> Line<'static> {
    Line::from(vec![Span::styled(format!(" {k:<15}"), DIM), v.into()])
}

/// The colour of a badge: red for deny/block, amber for rewrite, blue for tags.
pub(crate) fn badge_style(b: Badge) -> Style {
    match b {
        Badge::Deny => Style::new().fg(Color::Red),
        Badge::Rewrite => Style::new().fg(Color::Yellow),
        Badge::Tagged => Style::new().fg(Color::Blue),
    }
}

/// A badge as a coloured span.
pub(crate) fn badge_span(b: Badge) -> Span<'static> {
    Span::styled(b.symbol(), badge_style(b))
}

/// Width for a column: the longest value (or the header), between `min` and `max`.
pub(crate) fn fit<'a>(
    header: &str,
    values: impl Iterator<Item = &'a str>,
    min: u16,
    max: u16,
) -> u16 {
    let w = values
        .map(|v| v.chars().count())
        .chain(std::iter::once(header.len()))
        .max()
        .unwrap_or(0);
    (w as u16).clamp(min, max)
}

/// The part of a list on screen: the items `nav` shows and which of them is selected. Only
/// these are turned into widgets, so a frame costs the same with 100 items loaded or 10 000.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Window {
    /// Indices of the visible items, `[offset, offset + rows)` within the list.
    pub(crate) range: Range<usize>,
    selected: usize,
}

impl Window {
    /// The visible part of a list of `len` items shown in `rows` rows.
    pub(crate) fn new(nav: &Nav, len: usize, rows: usize) -> Window {
        let start = nav.offset.min(len);
        Window {
            range: start..(start + rows).min(len),
            selected: nav.selected,
        }
    }

    /// The visible part of a list drawn as a table in `area` (one row goes to the header).
    pub(crate) fn under_header(nav: &Nav, len: usize, area: Rect) -> Window {
        Window::new(nav, len, area.height.saturating_sub(1) as usize)
    }

    /// Whether the `i`th visible item is the selected one.
    pub(crate) fn is_selected(&self, i: usize) -> bool {
        self.range.start + i == self.selected
    }

    /// One table row per visible item (`visible` in list order): `row` gives its cells and
    /// base style, the selected row is reversed over it.
    pub(crate) fn rows<'a, T>(
        &self,
        visible: impl IntoIterator<Item = T>,
        row: impl Fn(T) -> (Vec<Cell<'a>>, Style),
    ) -> Vec<Row<'a>> {
        visible
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                let (cells, base) = row(item);
                let style = if self.is_selected(i) {
                    base.patch(SELECTED)
                } else {
                    base
                };
                Row::new(cells).style(style)
            })
            .collect()
    }
}

/// Draws a table: a bold header over `rows`, one space between columns; when there are no
/// rows, `empty` dim and centred below the header.
pub(crate) fn table<'a>(
    f: &mut Frame,
    area: Rect,
    header: &[&'a str],
    widths: Vec<Constraint>,
    rows: Vec<Row<'a>>,
    empty: &str,
) {
    let is_empty = rows.is_empty();
    let head = Row::new(header.iter().map(|h| Cell::from(*h))).style(HEADER);
    f.render_widget(
        Table::new(rows, widths).header(head).column_spacing(1),
        area,
    );
    if is_empty && area.height > 2 {
        let msg_area = Rect {
            y: area.y + 2,
            height: area.height - 2,
            ..area
        };
        let p = Paragraph::new(Span::styled(empty.to_string(), DIM))
            .wrap(Wrap { trim: true })
            .centered();
        f.render_widget(p, msg_area);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_fit_their_longest_value_within_bounds() {
        assert_eq!(fit("CONTAINER", ["a", "bb"].into_iter(), 9, 20), 9);
        assert_eq!(fit("ID", ["opencode-agent"].into_iter(), 2, 20), 14);
        assert_eq!(fit("ID", ["é".repeat(30).as_str()].into_iter(), 2, 20), 20);
    }

    #[test]
    fn the_window_is_the_visible_slice_and_knows_the_selected_row() {
        let nav = Nav {
            selected: 4,
            offset: 3,
        };
        let w = Window::new(&nav, 10, 3);
        assert_eq!(w.range, 3..6);
        assert!(w.is_selected(1) && !w.is_selected(0));
        assert_eq!(Window::new(&nav, 4, 3).range, 3..4, "cut at the end");
        assert_eq!(
            Window::new(&nav, 2, 3).range,
            2..2,
            "offset past a shrunk list"
        );
        let area = Rect::new(0, 0, 10, 4);
        assert_eq!(Window::under_header(&nav, 10, area).range, 3..6);
        let rows = w.rows(["a", "b", "c"], |s| (vec![Cell::from(s)], Style::new()));
        assert_eq!(rows.len(), 3);
    }
}
