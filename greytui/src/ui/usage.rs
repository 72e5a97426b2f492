//! The Usage view: a title line (window, grouping, sort), one row per container, client or
//! model with its calls, tokens, cost, live rates, cache-hit ratio and time to first token, the
//! total row, the live figures of every call and a note on unpriced calls (or the error).
//! Keys and model names come from peers: they are escaped before they are drawn.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, Wrap};

use greyproxy_protocol::llm::UsageRow;

use super::widgets::{DIM, HEADER, Window, fit};
use crate::app::usage::{Column, UsageBoard};
use crate::app::usage_live::{LIVE_MINUTES, RATE_MINUTES, Rate, sparkline};
use crate::app::{App, ConnState};
use crate::format::ellipsize;
use crate::llm_text::{dollars_short, escape_line, millis, percent, tokens_short};

/// Width from which the per-row TREND sparkline is shown.
const WIDE: u16 = 110;

const WARN: Style = Style::new().fg(Color::Yellow);

/// Fixed widths of the columns after the key, in table order (TREND apart): their headers
/// and their widest values (`$123.45*`, `612ms`, `12.4k`).
fn width(c: Column) -> u16 {
    match c {
        Column::Key => 0,
        Column::Calls | Column::Input | Column::Ttft => 5,
        Column::Cached | Column::Output => 6,
        Column::TokensPerMin | Column::UsdPerHour => 7,
        Column::Cost => 8,
        Column::CacheHit => 4,
    }
}

/// Calls: exact up to 99 999, then short.
fn count(n: u64) -> String {
    if n < 100_000 {
        n.to_string()
    } else {
        tokens_short(n)
    }
}

fn right(text: String) -> Cell<'static> {
    Cell::from(Line::from(text).right_aligned())
}

fn right_styled(text: String, style: Style) -> Cell<'static> {
    Cell::from(Line::styled(text, style).right_aligned())
}

/// The cells of one row after the key (TREND last when `wide`).
fn cells(r: &UsageRow, live: &Rate, wide: bool) -> Vec<Cell<'static>> {
    let t = &r.totals;
    let cost = if t.unpriced_calls > 0 {
        right_styled(format!("{}*", dollars_short(t.cost_micro_usd)), WARN)
    } else {
        right(dollars_short(t.cost_micro_usd))
    };
    let lively = live.tokens_per_min > 0.0 || live.usd_per_hour > 0.0;
    let (tpm, usdh) = if lively {
        (
            right(tokens_short(live.tokens_per_min.round() as u64)),
            right(dollars_short((live.usd_per_hour * 1e6).round() as u64)),
        )
    } else {
        (right_styled("—".into(), DIM), right_styled("—".into(), DIM))
    };
    let mut out = vec![
        right(count(t.calls)),
        right(tokens_short(t.usage.input_tokens)),
        right(tokens_short(t.usage.cache_read_tokens)),
        right(tokens_short(t.usage.output_tokens)),
        cost,
        tpm,
        usdh,
        right(percent(r.cache_hit_ratio, t.usage.input_tokens > 0)),
        right(millis(r.ttft_p50_ms)),
    ];
    if wide {
        let style = if live.spark.iter().all(|v| *v == 0) {
            DIM
        } else {
            Style::new().fg(Color::Cyan)
        };
        out.push(Cell::from(Span::styled(sparkline(&live.spark), style)));
    }
    out
}

/// The column widths: the key takes what the numbers leave, within its longest value.
fn widths(key: u16, area: Rect, wide: bool) -> (Vec<Constraint>, u16) {
    let numbers: u16 = Column::ALL[1..].iter().map(|c| width(*c) + 1).sum();
    let trend = if wide { LIVE_MINUTES as u16 + 1 } else { 0 };
    let key = key.min(area.width.saturating_sub(numbers + trend)).max(5);
    let mut w = vec![Constraint::Length(key)];
    w.extend(
        Column::ALL[1..]
            .iter()
            .map(|c| Constraint::Length(width(*c))),
    );
    if wide {
        w.push(Constraint::Length(LIVE_MINUTES as u16));
    }
    (w, key)
}

/// The header; the sort column's title is underlined (the title line names it and its order).
fn header(u: &UsageBoard, wide: bool) -> Row<'static> {
    let mut cells: Vec<Cell> = Column::ALL
        .iter()
        .map(|c| {
            let t = c.title(u.group).to_string();
            let style = if *c == u.sort {
                Style::new().add_modifier(Modifier::UNDERLINED)
            } else {
                Style::new()
            };
            if *c == Column::Key {
                Cell::from(Span::styled(t, style))
            } else {
                right_styled(t, style)
            }
        })
        .collect();
    if wide {
        cells.push(Cell::from(format!("TREND {LIVE_MINUTES}m")));
    }
    Row::new(cells).style(HEADER)
}

/// `2026-11-22 00:00 UTC` from the daemon's RFC 3339 window start.
fn since_label(since: &str) -> String {
    match (since.get(..10), since.get(11..16)) {
        (Some(d), Some(t)) => format!("from {d} {t} UTC"),
        _ => String::new(),
    }
}

fn title(u: &UsageBoard) -> Line<'static> {
    // Numbers read largest first, names A to Z, unless reversed.
    let dir = match (u.sort == Column::Key, u.reverse) {
        (true, false) | (false, true) => "↑",
        _ => "↓",
    };
    let mut spans = vec![
        Span::styled(format!(" {}", u.span.label()), HEADER),
        Span::raw(format!(
            " · by {} · sorted by {} {dir}",
            u.group.wire(),
            u.sort.title(u.group).to_lowercase()
        )),
    ];
    if let Some(s) = u
        .since
        .as_deref()
        .map(since_label)
        .filter(|s| !s.is_empty())
    {
        spans.push(Span::styled(format!(" · {s}"), DIM));
    }
    Line::from(spans)
}

/// What the table area says when it has no rows.
fn empty_text(app: &App) -> Option<(String, Style)> {
    let u = &app.usage;
    if let Some(why) = &u.unavailable {
        return Some((why.clone(), WARN));
    }
    if !u.rows.is_empty() {
        return None;
    }
    Some(match (&u.total, &u.error) {
        (Some(_), _) => (
            format!(
                "No LLM calls {}. Calls through the proxy to a known LLM API appear here with their tokens and cost (docs/llm.md).",
                u.span.phrase()
            ),
            DIM,
        ),
        (None, Some(e)) => (
            format!("Cannot load the usage: {}", escape_line(e)),
            Style::new().fg(Color::Red),
        ),
        (None, None) if app.conn != ConnState::Connected => {
            ("Not connected to the daemon.".into(), DIM)
        }
        (None, None) => ("Loading…".into(), DIM),
    })
}

/// Draws the view.
pub(super) fn draw(f: &mut Frame, area: Rect, app: &App) {
    let u = &app.usage;
    // The total and the live figures follow the rows; an empty table keeps the room for its
    // message.
    let table_h = if u.rows.is_empty() {
        area.height.saturating_sub(4)
    } else {
        (u.rows.len() as u16 + 1).min(area.height.saturating_sub(4))
    };
    let [title_area, table_area, total_area, live_area, note_area, _] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(table_h),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(0),
    ])
    .areas(area);
    f.render_widget(Paragraph::new(title(u)), title_area);
    let wide = area.width >= WIDE;
    let keys: Vec<String> = u.rows.iter().map(|r| escape_line(&r.key)).collect();
    let fitted = fit(
        u.sort.title(u.group),
        keys.iter().map(String::as_str).chain(["TOTAL"]),
        9,
        if wide { 40 } else { 28 },
    ) + 1;
    let (widths, key_w) = widths(fitted, area, wide);
    // The selection as the app keeps it, made visible in the rows this frame has.
    let rows_n = table_area.height.saturating_sub(1) as usize;
    let mut nav = u.rows.nav;
    nav.clamp(u.rows.len(), rows_n);
    let win = Window::new(&nav, u.rows.len(), rows_n);
    let visible = win.range.clone().map(|i| (&u.rows[i], &keys[i]));
    let rows = win.rows(visible, |(r, key)| {
        let mut c = vec![Cell::from(ellipsize(key, key_w as usize))];
        c.extend(cells(r, &u.rate(Some(&r.key), app.now), wide));
        (c, Style::new())
    });
    f.render_widget(
        Table::new(rows, widths.clone())
            .header(header(u, wide))
            .column_spacing(1),
        table_area,
    );
    if let Some((text, style)) = empty_text(app)
        && table_area.height > 2
    {
        let msg = Rect {
            y: table_area.y + 2,
            height: table_area.height - 2,
            ..table_area
        };
        let p = Paragraph::new(Span::styled(text, style))
            .wrap(Wrap { trim: true })
            .centered();
        f.render_widget(p, msg);
    }
    let all = u.rate(None, app.now);
    if let Some(t) = &u.total {
        let mut c = vec![Cell::from("TOTAL")];
        c.extend(cells(t, &all, wide));
        let row = Row::new(c).style(Style::new().add_modifier(Modifier::BOLD));
        f.render_widget(Table::new([row], widths).column_spacing(1), total_area);
    }
    f.render_widget(Paragraph::new(live_line(u, &all)), live_area);
    f.render_widget(Paragraph::new(note_line(u)), note_area);
}

/// The live figures of every call this dashboard saw in the last minutes.
fn live_line(u: &UsageBoard, all: &Rate) -> Line<'static> {
    if u.unavailable.is_some() {
        return Line::default();
    }
    if u.live.is_empty() {
        return Line::styled(
            format!(" live: no LLM call seen in the last {LIVE_MINUTES} minutes"),
            DIM,
        );
    }
    Line::from(vec![
        Span::styled(" live ", HEADER),
        Span::styled(sparkline(&all.spark), Style::new().fg(Color::Cyan)),
        Span::raw(format!(
            " {} tok/min · {}/h",
            tokens_short(all.tokens_per_min.round() as u64),
            dollars_short((all.usd_per_hour * 1e6).round() as u64),
        )),
        Span::styled(format!(" (last {RATE_MINUTES} min; a bar per minute)"), DIM),
    ])
}

/// The error of the last refresh (unless the table area says it), else the unpriced calls,
/// else nothing.
fn note_line(u: &UsageBoard) -> Line<'static> {
    let shown_above = u.total.is_none() && u.rows.is_empty();
    if let (Some(e), false) = (&u.error, shown_above) {
        return Line::styled(
            format!(" cannot refresh: {}", escape_line(e)),
            Style::new().fg(Color::Red),
        );
    }
    match &u.total {
        Some(t) if t.totals.unpriced_calls > 0 => {
            let n = t.totals.unpriced_calls;
            let calls = if n == 1 { "call" } else { "calls" };
            Line::styled(
                format!(
                    " * {n} unpriced {calls}: no price known for the model; tokens counted, cost not"
                ),
                WARN,
            )
        }
        _ => Line::default(),
    }
}
