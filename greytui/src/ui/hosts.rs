//! The Hosts view of a fleet: one row per daemon with its link state (connected, connecting,
//! reconnecting, refused), daemon version, pending count, round-trip time and, when it is not
//! connected, why. The focused host (the one activity, conversations, usage and middlewares
//! follow) is marked `*`.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Style};
use ratatui::widgets::Cell;

use super::widgets::{Window, fit, table};
use crate::app::{App, ConnState};

/// Draws the view.
pub(super) fn draw(f: &mut Frame, area: Rect, app: &App) {
    let win = Window::under_header(&app.hosts_nav, app.hosts.len(), area);
    let visible: Vec<(usize, &crate::app::HostView)> = app
        .hosts
        .iter()
        .enumerate()
        .skip(win.range.start)
        .take(win.range.len())
        .collect();
    let nw = fit("HOST", visible.iter().map(|(_, h)| h.name.as_str()), 4, 24);
    let rows = win.rows(visible, |(i, h)| {
        let state_style = match &h.conn {
            ConnState::Connected => Style::new().fg(Color::Green),
            ConnState::Connecting(_) => Style::new().fg(Color::Yellow),
            ConnState::Disconnected { .. } => Style::new().fg(Color::Red),
        };
        let mark = if i == app.focus { "*" } else { " " };
        let cells = vec![
            Cell::from(mark),
            Cell::from(h.name.clone()),
            Cell::from(h.state_word()).style(state_style),
            Cell::from(h.version.clone().unwrap_or_else(|| "?".into())),
            Cell::from(app.pending_on(i).to_string()),
            Cell::from(
                h.rtt
                    .map(|d| format!("{:.1} ms", d.as_secs_f64() * 1000.0))
                    .unwrap_or_else(|| "-".into()),
            ),
            Cell::from(h.reason().unwrap_or("").to_string()),
        ];
        (cells, Style::new())
    });
    let widths = vec![
        Constraint::Length(1),
        Constraint::Length(nw),
        Constraint::Length(12),
        Constraint::Length(9),
        Constraint::Length(7),
        Constraint::Length(9),
        Constraint::Fill(1),
    ];
    let header = ["", "HOST", "STATE", "VERSION", "PENDING", "RTT", "ERROR"];
    table(f, area, &header, widths, rows, "No hosts.");
}
