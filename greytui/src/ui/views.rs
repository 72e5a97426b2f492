//! The list views (pending, activity, rules) and the frame of the activity detail. Only the
//! visible rows are turned into widgets, so a frame costs the same with 100 rows loaded or 10 000.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Span;
use ratatui::widgets::{Cell, Paragraph, Wrap};

use greyproxy_protocol::{ActivityItem, Decision, RequestLog};

use super::widgets::{DIM, Window, badge_span, fit, table};
use super::{conversations, detail, ws};
use crate::app::detail::Detail;
use crate::app::lists::container_of;
use crate::app::{App, Hosted};
use crate::format::{age, clock, expiry, pending_destination};

/// The pending view: one row per pending request, newest first.
pub(super) fn pending(f: &mut Frame, area: Rect, app: &App) {
    // A request with an LLM context takes a second line: its why.
    let lines = area.height.saturating_sub(1) as usize;
    let (nav, fit_rows) = conversations::pending_rows(&app.pending.nav, &app.pending, lines);
    let win = Window::new(&nav, app.pending.len(), fit_rows);
    let visible = &app.pending[win.range.clone()];
    let cw = fit(
        "CONTAINER",
        visible.iter().map(|p| p.container_name.as_str()),
        9,
        20,
    );
    let fleet = app.is_fleet();
    let hw = fit("HOST", visible.iter().map(|p| app.host_name(p.host)), 4, 16);
    let rows = win.rows(visible, |p| {
        let mut cells = vec![
            Cell::from(p.id.to_string()),
            Cell::from(p.container_name.clone()),
            Cell::from(pending_destination(p)),
            Cell::from(p.destination_port.to_string()),
            Cell::from(p.attempt_count.to_string()),
            Cell::from(p.waiting_count.to_string()),
            Cell::from(age(&p.first_seen, app.now)),
        ];
        if fleet {
            cells.insert(0, Cell::from(app.host_name(p.host).to_string()));
        }
        // A secret on its way where it may not go stands out from everything else; a
        // request with connections held open is someone waiting right now.
        let base = if p.kind == greyproxy_protocol::PendingKind::Credential {
            super::credentials::EGRESS
        } else if p.waiting_count > 0 {
            Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD)
        } else {
            Style::new()
        };
        (cells, base)
    });
    let rows = conversations::pending_heights(rows, visible);
    let mut widths = vec![
        Constraint::Length(5),
        Constraint::Length(cw),
        Constraint::Fill(1),
        Constraint::Length(5),
        Constraint::Length(8),
        Constraint::Length(7),
        Constraint::Length(4),
    ];
    let mut header = vec![
        "ID",
        "CONTAINER",
        "DESTINATION",
        "PORT",
        "ATTEMPTS",
        "WAITING",
        "AGE",
    ];
    // The why lines start under CONTAINER: after ID, and HOST when shown.
    let mut lead = 5;
    if fleet {
        header.insert(0, "HOST");
        widths.insert(0, Constraint::Length(hw));
        lead += hw + 1;
    }
    table(
        f,
        area,
        &header,
        widths,
        rows,
        "No pending requests. New ones appear here at once, with a bell.",
    );
    conversations::pending_whys(f, area, visible, lead);
}

fn destination(r: &RequestLog) -> String {
    let host = match r.resolved_hostname.as_deref().filter(|h| !h.is_empty()) {
        Some(h) if h != r.destination_host => format!("{h} ({})", r.destination_host),
        _ => r.destination_host.clone(),
    };
    match r.destination_port {
        Some(p) => format!("{host}:{p}"),
        None => host,
    }
}

/// The cells of one activity row, for either kind.
fn activity_cells(item: &ActivityItem, wide: bool) -> Vec<Cell<'static>> {
    let (time, result, container, what, method, info, ms, rule) = match item {
        ActivityItem::Connection(r) => (
            clock(&r.timestamp).to_string(),
            match r.result {
                Decision::Allowed => Span::styled("allowed", Style::new().fg(Color::Green)),
                Decision::Blocked => Span::styled("blocked", Style::new().fg(Color::Red)),
                other => Span::raw(format!("{other:?}").to_lowercase()),
            },
            r.container_name.clone(),
            destination(r),
            r.method.clone().unwrap_or_default(),
            r.reason.clone().unwrap_or_default(),
            r.response_time_ms,
            r.rule_summary.clone().unwrap_or_default(),
        ),
        ActivityItem::Transaction(t) => (
            clock(&t.timestamp).to_string(),
            match (t.status_code, t.result.as_str()) {
                (_, "denied") => Span::styled("denied", Style::new().fg(Color::Red)),
                (Some(s), _) if s >= 400 => {
                    Span::styled(s.to_string(), Style::new().fg(Color::Yellow))
                }
                (Some(s), _) => Span::styled(s.to_string(), Style::new().fg(Color::Green)),
                (None, r) => Span::styled(r.to_string(), Style::new().fg(Color::Red)),
            },
            t.container_name.clone(),
            t.url.clone(),
            t.method.clone(),
            t.response_content_type.clone().unwrap_or_default(),
            t.duration_ms,
            t.rule_id.map(|r| format!("rule {r}")).unwrap_or_default(),
        ),
        // A kind of row this build does not know (a newer daemon): shown, but blank.
        _ => (
            String::new(),
            Span::raw("?"),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            None,
            String::new(),
        ),
    };
    // The strongest middleware decision on the exchange, in a one-column gutter.
    let badge = match item {
        ActivityItem::Transaction(t) => crate::middlewares::strongest(&t.middleware_events)
            .map(badge_span)
            .unwrap_or_default(),
        _ => Span::raw(""),
    };
    let mut cells = vec![
        Cell::from(badge),
        Cell::from(time),
        Cell::from(result),
        Cell::from(container),
        Cell::from(what),
        Cell::from(method),
        Cell::from(info),
        Cell::from(ms.map(|m| m.to_string()).unwrap_or_default()),
    ];
    if wide {
        cells.push(Cell::from(rule));
    }
    cells
}

/// The activity view: the feed window, newest first.
pub(super) fn activity(f: &mut Frame, area: Rect, app: &App) {
    let a = &app.activity;
    let win = Window::under_header(&a.nav, a.items.len(), area);
    let visible: Vec<&Hosted<ActivityItem>> = a.items.range(win.range.clone()).collect();
    let cw = fit("CONTAINER", visible.iter().map(|i| container_of(i)), 9, 16);
    let wide = area.width >= 110;
    let fleet = app.is_fleet();
    let hw = fit("HOST", visible.iter().map(|i| app.host_name(i.host)), 4, 16);
    let rows = win.rows(&visible, |item| {
        let mut cells = activity_cells(item, wide);
        if fleet {
            // After the marker column.
            cells.insert(1, Cell::from(app.host_name(item.host).to_string()));
        }
        (cells, Style::new())
    });
    let mut widths = vec![
        Constraint::Length(1),
        Constraint::Length(8),
        Constraint::Length(7),
        Constraint::Length(cw),
        Constraint::Fill(2),
        Constraint::Length(7),
        Constraint::Length(12),
        Constraint::Length(6),
    ];
    let mut header = vec![
        "",
        "TIME",
        "RESULT",
        "CONTAINER",
        "DESTINATION",
        "METHOD",
        "REASON",
        "MS",
    ];
    if wide {
        widths.push(Constraint::Fill(1));
        header.push("RULE");
    }
    if fleet {
        widths.insert(1, Constraint::Length(hw));
        header.insert(1, "HOST");
    }
    let empty = if a.is_loading() {
        "Loading…"
    } else if a.filter.is_active() {
        "No activity matches the filter (/ to change it)."
    } else {
        "No activity yet."
    };
    table(f, area, &header, widths, rows, empty);
}

/// The rules view.
pub(super) fn rules(f: &mut Frame, area: Rect, app: &App) {
    let win = Window::under_header(&app.rules.nav, app.rules.len(), area);
    let visible = &app.rules[win.range.clone()];
    let cw = fit(
        "CONTAINER",
        visible.iter().map(|r| r.container_pattern.as_str()),
        9,
        16,
    );
    let pw = fit(
        "PORT",
        visible.iter().map(|r| r.port_pattern.as_str()),
        4,
        11,
    );
    let fleet = app.is_fleet();
    let hw = fit("HOST", visible.iter().map(|r| app.host_name(r.host)), 4, 16);
    let rows = win.rows(visible, |r| {
        let action = match r.action {
            greyproxy_protocol::Action::Allow => {
                Span::styled("allow", Style::new().fg(Color::Green))
            }
            greyproxy_protocol::Action::Deny => Span::styled("deny", Style::new().fg(Color::Red)),
            other => Span::raw(format!("{other:?}").to_lowercase()),
        };
        let mut cells = vec![
            Cell::from(r.id.to_string()),
            Cell::from(action),
            Cell::from(r.container_pattern.clone()),
            Cell::from(r.destination_pattern.clone()),
            Cell::from(r.port_pattern.clone()),
            Cell::from(expiry(r.expires_at.as_deref(), app.now)),
            Cell::from(format!("{:?}", r.source).to_lowercase()),
            Cell::from(r.notes.clone().unwrap_or_default()),
        ];
        if fleet {
            cells.insert(0, Cell::from(app.host_name(r.host).to_string()));
        }
        let base = if r.is_active { Style::new() } else { DIM };
        (cells, base)
    });
    let mut widths = vec![
        Constraint::Length(4),
        Constraint::Length(6),
        Constraint::Length(cw),
        Constraint::Fill(2),
        Constraint::Length(pw),
        Constraint::Length(9),
        Constraint::Length(7),
        Constraint::Fill(1),
    ];
    let mut header = crate::format::RULE_COLUMNS.to_vec();
    if fleet {
        header.insert(0, "HOST");
        widths.insert(0, Constraint::Length(hw));
    }
    table(
        f,
        area,
        &header,
        widths,
        rows,
        "No rules. n creates one; a on a pending request creates one too.",
    );
}

/// The detail of one activity row.
pub(super) fn detail(f: &mut Frame, area: Rect, d: &Detail) {
    if let (ActivityItem::Transaction(u), Some(ws)) = (&d.item, &d.ws)
        && !ws.headers
    {
        match &ws.open {
            Some(m) => detail(f, area, m),
            None => ws::draw(f, area, u, ws),
        }
        return;
    }
    let lines = match &d.item {
        ActivityItem::Connection(r) => detail::connection(r),
        ActivityItem::Transaction(t) => detail::transaction(t, d.full.as_ref()),
        _ => Vec::new(),
    };
    let max = (lines.len() as u16).saturating_sub(area.height);
    let p = Paragraph::new(lines)
        .wrap(Wrap { trim: false })
        .scroll((d.scroll.min(max), 0));
    f.render_widget(p, area);
}
