//! Drawing: a pure function of the [`App`] into a ratatui frame. The frame is the view tabs,
//! the current view, the footer hints (from the keymap table), the message line and the status
//! bar, with an overlay on top when a modal is open.

mod conversations;
pub(crate) mod credentials;
mod detail;
mod hosts;
mod middlewares;
mod overlays;
mod usage;
mod views;
mod widgets;
mod ws;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::app::{App, ConnState, View};
use crate::format::{allow_all_label, short_span, usd};
use greyproxy_protocol::export::ExportState;

/// Records behind from which the status bar shows the exporter even when it is fine.
const EXPORT_LAG_SHOWN: u64 = 1000;
use crate::keymap;
use widgets::{HEADER, KEY, SELECTED};

/// Draws the whole dashboard.
pub fn draw(f: &mut Frame, app: &App) {
    let [tabs, body, hints, message, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(f.area());
    draw_tabs(f, tabs, app);
    match app.view {
        View::Pending => views::pending(f, body, app),
        View::Activity => match &app.activity.detail {
            Some(d) => views::detail(f, body, d),
            None => views::activity(f, body, app),
        },
        View::Rules => views::rules(f, body, app),
        View::Middlewares => middlewares::draw(f, body, app),
        View::Conversations => conversations::draw(f, body, app),
        View::Usage => usage::draw(f, body, app),
        View::Credentials => credentials::draw(f, body, app),
        View::Hosts => hosts::draw(f, body, app),
    }
    draw_hints(f, hints, app);
    draw_message(f, message, app);
    draw_status(f, status, app);
    overlays::draw(f, app);
}

fn draw_tabs(f: &mut Frame, area: Rect, app: &App) {
    let mut right = match app.view {
        View::Activity => activity_info(app),
        View::Middlewares => middlewares::info(app),
        View::Conversations => conversations::info(app),
        View::Credentials => credentials::info(app),
        _ => String::new(),
    };
    // Over a fleet these views show the focused host alone (the others merge every host's):
    // say which.
    if app.is_fleet() && matches!(app.view, View::Middlewares | View::Credentials) {
        let host = format!("on {}", app.host_name(app.focus));
        right = if right.is_empty() {
            format!("{host} ")
        } else {
            format!("{host} · {right}")
        };
    }
    let right_w = right.chars().count();
    let width = area.width as usize;
    // Too many tabs for the width beside the view's state line: the other views' titles
    // shorten, then shrink to their number and count (requests waiting must show).
    let mut spans = Vec::new();
    for mode in [TabMode::Full, TabMode::Short, TabMode::Compact] {
        spans = tab_spans(app, mode);
        if spans.iter().map(Span::width).sum::<usize>() + right_w <= width {
            break;
        }
    }
    let brand = Span::styled(" greytui ", HEADER);
    // The name gives way first.
    let tabs_w: usize = spans.iter().map(Span::width).sum();
    if tabs_w + brand.width() + right_w <= width {
        spans.insert(0, brand);
    }
    let left = Line::from(spans);
    let [l, r] = Layout::horizontal([Constraint::Length(left.width() as u16), Constraint::Min(0)])
        .areas(area);
    f.render_widget(Paragraph::new(left), l);
    f.render_widget(Paragraph::new(Line::from(right).right_aligned()), r);
}

/// How much of the other views' tabs shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TabMode {
    /// Number, title, count.
    Full,
    /// Number, short title, count.
    Short,
    /// Number and count.
    Compact,
}

/// The view tabs; the current one always has its full title.
fn tab_spans(app: &App, mode: TabMode) -> Vec<Span<'static>> {
    let mut spans = Vec::new();
    for &v in View::all(app.is_fleet()) {
        let count = match v {
            View::Pending => format!(" ({})", app.pending.len()),
            View::Rules => format!(" ({})", app.rules.len()),
            _ => String::new(),
        };
        let current = v == app.view;
        let text = match mode {
            _ if current => format!(" {} {}{count} ", v.number(), v.title()),
            TabMode::Full => format!(" {} {}{count} ", v.number(), v.title()),
            TabMode::Short => format!(" {} {}{count} ", v.number(), v.short_title()),
            TabMode::Compact => format!(" {}{count} ", v.number()),
        };
        let style = if current {
            SELECTED.add_modifier(Modifier::BOLD)
        } else {
            Style::new()
        };
        spans.push(Span::raw(" "));
        spans.push(Span::styled(text, style));
    }
    spans
}

/// `follow · 1234 of 100000 · container~x` for the activity tab line.
fn activity_info(app: &App) -> String {
    let a = &app.activity;
    let mut parts = Vec::new();
    if a.is_loading() {
        parts.push("loading…".to_string());
    }
    parts.push(if a.follow {
        "following".to_string()
    } else if a.unseen > 0 {
        format!("paused, {} new", a.unseen)
    } else {
        "paused".to_string()
    });
    parts.push(format!("{} of {}", a.items.len(), a.total));
    if a.filter.is_active() {
        parts.push(a.filter.describe());
    }
    format!("{} ", parts.join(" · "))
}

fn draw_hints(f: &mut Frame, area: Rect, app: &App) {
    let mut spans = vec![Span::raw(" ")];
    for (k, hint) in keymap::hints(app.ctx()) {
        spans.push(Span::styled(k, KEY));
        spans.push(Span::raw(format!(" {hint}  ")));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_message(f: &mut Frame, area: Rect, app: &App) {
    let Some(m) = &app.message else { return };
    let style = if m.error {
        Style::new().fg(Color::Red)
    } else {
        Style::new().fg(Color::Green)
    };
    f.render_widget(
        Paragraph::new(Span::styled(format!(" {}", m.text), style)),
        area,
    );
}

fn draw_status(f: &mut Frame, area: Rect, app: &App) {
    let bar = Style::new().bg(Color::DarkGray).fg(Color::White);
    let (dot, state, state_style) = match &app.conn {
        ConnState::Connected => ("●", "connected".to_string(), bar.fg(Color::LightGreen)),
        ConnState::Connecting(n) if *n <= 1 => {
            ("○", "connecting".to_string(), bar.fg(Color::Yellow))
        }
        ConnState::Connecting(n) => (
            "○",
            format!("reconnecting (attempt {n})"),
            bar.fg(Color::Yellow),
        ),
        ConnState::Disconnected {
            unauthorized: true, ..
        } => (
            "✗",
            "unauthorized: wrong token".to_string(),
            bar.fg(Color::LightRed),
        ),
        ConnState::Disconnected { retry_in, .. } => (
            "○",
            format!("reconnecting in {}", short_span(*retry_in)),
            bar.fg(Color::LightRed),
        ),
    };
    let version = app
        .server_version
        .as_deref()
        .map(|v| format!("greyproxyd {v}"))
        .unwrap_or_else(|| "greyproxyd ?".into());
    let claims = if app.claimed {
        format!("claims {} (ours)", app.claims)
    } else {
        format!("claims {}", app.claims)
    };
    let fleet = (app.is_fleet()).then(|| {
        let up = app
            .hosts
            .iter()
            .filter(|h| h.conn == ConnState::Connected)
            .count();
        let style = if up == app.hosts.len() {
            bar.fg(Color::LightGreen)
        } else {
            bar.fg(Color::LightRed)
        };
        let focus = app.host_name(app.focus);
        Span::styled(
            format!(" {up}/{} hosts │ focus {focus} │", app.hosts.len()),
            style,
        )
    });
    let mut spans = vec![
        Span::styled(format!(" {dot} {state} "), state_style),
        Span::styled(format!("│ {version} │ "), bar),
        Span::styled(format!("{} pending", app.pending.len()), bar),
    ];
    if let Some(f) = fleet {
        spans.insert(0, f);
    }
    if let Some(micro) = app.cost.micro_usd {
        spans.push(Span::styled(format!(" │ {} today", usd(micro)), bar));
    }
    spans.push(Span::styled(" │ silent: ", bar));
    let silent = allow_all_label(&app.allow_all);
    let silent_style = if app.allow_all.active {
        bar.fg(Color::LightYellow).add_modifier(Modifier::BOLD)
    } else {
        bar
    };
    spans.push(Span::styled(silent, silent_style));
    if let Some(e) = &app.export
        && (e.state != ExportState::Ok || e.lag >= EXPORT_LAG_SHOWN)
    {
        spans.push(Span::styled(" │ ", bar));
        spans.push(Span::styled(
            format!("export {}, {} behind", e.state, e.lag),
            bar.fg(Color::LightYellow).add_modifier(Modifier::BOLD),
        ));
    }
    spans.push(Span::styled(format!(" │ {claims} │ {}", app.url), bar));
    if let ConnState::Disconnected { reason, .. } = &app.conn {
        spans.push(Span::styled(format!(" │ {reason}"), bar));
    }
    f.render_widget(Paragraph::new(Line::from(spans)).style(bar), area);
}
