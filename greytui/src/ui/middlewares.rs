//! The Middlewares view: the configured external middlewares (one row each, state coloured),
//! with every field of the selected one under the table.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Wrap};

use greyproxy_protocol::middleware::MiddlewareStatus;

use super::widgets::{HEADER, Window, field, fit, table};
use crate::app::App;
use crate::middlewares::{self as mw, State};

/// Width from which the ON DISCONNECT and CONNECTS columns are shown (the detail under the
/// table always has them).
const WIDE: u16 = 100;

fn state_style(s: State) -> Style {
    match s {
        State::Ready => Style::new().fg(Color::Green),
        State::Connecting => Style::new().fg(Color::Yellow),
        State::Down => Style::new().fg(Color::Red),
    }
}

/// `3/4 ready` for the tab line (nothing before the first list or when none is configured).
pub(super) fn info(app: &App) -> String {
    let m = &app.middlewares;
    if !m.loaded {
        return if m.in_flight {
            "loading… ".into()
        } else {
            String::new()
        };
    }
    if m.list.is_empty() {
        return String::new();
    }
    let ready = m
        .list
        .iter()
        .filter(|s| mw::state(s) == State::Ready)
        .count();
    format!("{ready}/{} ready ", m.list.len())
}

/// Draws the view.
pub(super) fn draw(f: &mut Frame, area: Rect, app: &App) {
    let m = &app.middlewares;
    if m.list.is_empty() {
        let empty = match (&m.error, m.loaded) {
            (Some(e), _) => format!("Cannot list the middlewares: {e}"),
            (None, true) => mw::EMPTY_HELP.to_string(),
            (None, false) => "Loading…".to_string(),
        };
        table(
            f,
            area,
            &mw::COLUMNS[..6],
            narrow_widths(10),
            Vec::new(),
            &empty,
        );
        return;
    }
    // The table takes what its rows need, up to half the view; the detail gets the rest.
    let want = m.list.len() as u16 + 1;
    let table_h = want.min((area.height / 2).max(2));
    let [list, _, detail] = Layout::vertical([
        Constraint::Length(table_h),
        Constraint::Length(1),
        Constraint::Min(0),
    ])
    .areas(area);
    let rows_n = list.height.saturating_sub(1) as usize;
    let mut nav = m.list.nav;
    nav.clamp(m.list.len(), rows_n);
    let win = Window::new(&nav, m.list.len(), rows_n);
    let visible = &m.list[win.range.clone()];
    let wide = area.width >= WIDE;
    let lw = fit("MIDDLEWARE", visible.iter().map(mw::label), 10, 32);
    let rows = win.rows(visible, |s| {
        let mut cells = mw::row(s);
        if !wide {
            cells.truncate(6);
        }
        let state = mw::state(s);
        let cells: Vec<Cell> = cells
            .into_iter()
            .enumerate()
            .map(|(c, text)| match c {
                2 => Cell::from(Span::styled(text, state_style(state))),
                _ => Cell::from(text),
            })
            .collect();
        (cells, Style::new())
    });
    let (header, widths) = if wide {
        let mut w = narrow_widths(lw);
        w.extend([Constraint::Length(13), Constraint::Length(8)]);
        (&mw::COLUMNS[..], w)
    } else {
        (&mw::COLUMNS[..6], narrow_widths(lw))
    };
    table(f, list, header, widths, rows, "");
    let mut lines = Vec::new();
    if let Some(e) = &m.error {
        lines.push(Line::styled(
            format!(" cannot refresh: {e}"),
            Style::new().fg(Color::Red),
        ));
    }
    if let Some(s) = m.list.get(nav.selected) {
        lines.extend(details(s));
    }
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), detail);
}

fn narrow_widths(label: u16) -> Vec<Constraint> {
    vec![
        Constraint::Length(label),
        Constraint::Length(5),
        Constraint::Fill(1),
        Constraint::Length(5),
        Constraint::Fill(1),
        Constraint::Length(7),
    ]
}

/// Every field of one middleware.
fn details(s: &MiddlewareStatus) -> Vec<Line<'static>> {
    let state = mw::state(s);
    let command = if s.command.is_empty() {
        "—".to_string()
    } else {
        mw::argv(&s.command)
    };
    let on_disconnect = match s.on_disconnect.as_str() {
        "deny" => "deny (while it is down, its steps deny or block)".to_string(),
        "allow" => "allow (while it is down, its steps let traffic through)".to_string(),
        other => other.to_string(),
    };
    let last_error = match &s.last_error {
        Some(e) => Span::styled(e.clone(), Style::new().fg(Color::Red)),
        None => Span::raw("—"),
    };
    vec![
        Line::styled(format!(" {} — {}", mw::label(s), state.as_str()), HEADER),
        field("endpoint", s.url.clone()),
        field("command", command),
        field(
            "process",
            s.pid
                .map(|p| format!("pid {p}"))
                .unwrap_or_else(|| "—".into()),
        ),
        field("kind", s.kind.clone()),
        field(
            "state",
            Span::styled(state.as_str().to_string(), state_style(state)),
        ),
        field("protocol", mw::protocol(s)),
        field("hooks", mw::hooks(s)),
        field("max body", mw::max_body(s)),
        field("timeout", mw::timeout(s.timeout_ms)),
        field("on disconnect", on_disconnect),
        field("connects", s.connects.to_string()),
        field("last error", last_error),
    ]
}
