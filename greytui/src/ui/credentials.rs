//! The Credentials view: the credentials (label, a preview of the secret, where it may go,
//! from which containers, where it is substituted, how often it was) over the live launcher
//! sessions (container, credentials, time left before the next heartbeat is due, substitutions
//! by credential); the table with the selection has its header underlined. Also the
//! secret-egress lines of the pending view and the picker that decides them.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph};

use greyproxy_protocol::credentials::{CredentialEgress, CredentialInfo, FoundIn, SessionInfo};

use super::widgets::{DIM, HEADER, SELECTED, Window, fit, table};
use crate::app::App;
use crate::app::credential_picker::{CHOICES, EgressPicker};
use crate::app::credentials::Pane;
use crate::format::{ellipsize, expiry, parse_time, short_span};

/// How secret-egress rows and lines stand out in the pending view.
pub(crate) const EGRESS: Style = Style::new()
    .fg(Color::LightMagenta)
    .add_modifier(Modifier::BOLD);

/// `headers, query, JSON` — where a credential is substituted.
fn places(c: &CredentialInfo) -> String {
    let p = &c.places;
    let mut out = Vec::new();
    for (on, name) in [
        (p.headers, "headers"),
        (p.query, "query"),
        (p.json_body, "JSON"),
        (p.form_body, "form"),
    ] {
        if on {
            out.push(name);
        }
    }
    if c.allow_plaintext {
        out.push("+HTTP");
    }
    out.join(", ")
}

fn destinations(c: &CredentialInfo) -> String {
    let d: Vec<String> = c
        .destinations
        .iter()
        .map(|d| match &d.expires_at {
            Some(_) => format!("{} (timed)", d.pattern),
            None => d.pattern.clone(),
        })
        .collect();
    d.join(", ")
}

fn containers(list: &[String]) -> String {
    if list.is_empty() {
        "*".into()
    } else {
        list.join(", ")
    }
}

/// Seconds left of a session at `now` (its `expires_at`; the reported figure when unreadable).
fn remaining(s: &SessionInfo, now: std::time::SystemTime) -> String {
    let left = parse_time(&s.expires_at)
        .map(|t| t.duration_since(now).unwrap_or_default())
        .unwrap_or(std::time::Duration::from_secs(s.remaining_seconds));
    format!(
        "{} / {}",
        short_span(left),
        short_span(std::time::Duration::from_secs(s.ttl_seconds))
    )
}

fn counts(s: &SessionInfo) -> String {
    let n: Vec<String> = s
        .substitutions
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(l, n)| format!("{l} {n}"))
        .collect();
    if n.is_empty() {
        "0".into()
    } else {
        n.join(", ")
    }
}

/// The `tab` line: `2 credentials · 1 session` or why they are unavailable.
pub(super) fn info(app: &App) -> String {
    let c = &app.credentials;
    if !c.loaded {
        return if c.in_flight > 0 {
            "loading… ".into()
        } else {
            String::new()
        };
    }
    if !c.available && c.error.is_none() {
        return "unavailable ".into();
    }
    format!(
        "{} credential{} · {} session{} ",
        c.creds.len(),
        if c.creds.len() == 1 { "" } else { "s" },
        c.sessions.len(),
        if c.sessions.len() == 1 { "" } else { "s" }
    )
}

/// Draws the view.
pub(super) fn draw(f: &mut Frame, area: Rect, app: &App) {
    let c = &app.credentials;
    let [note, top, gap, bottom] = Layout::vertical([
        Constraint::Length(u16::from(!c.available || c.error.is_some())),
        Constraint::Fill(1),
        Constraint::Length(1),
        Constraint::Fill(1),
    ])
    .areas(area);
    let red = Style::new().fg(Color::Red);
    if let Some(e) = &c.error {
        f.render_widget(
            Paragraph::new(Span::styled(format!(" cannot list: {e}"), red)),
            note,
        );
    } else if c.loaded && !c.available {
        let why = c
            .unavailable
            .as_deref()
            .unwrap_or("the key file cannot be used");
        let text = format!(" Credentials are unavailable: {why}. Every placeholder is held.");
        f.render_widget(Paragraph::new(Span::styled(text, red)), note);
    }
    credentials_table(f, top, app);
    let sessions_title = Line::from(vec![
        Span::styled(" Sessions", pane_style(c.pane == Pane::Sessions)),
        Span::styled("  (s switches the selection)", DIM),
    ]);
    f.render_widget(Paragraph::new(sessions_title), gap);
    sessions_table(f, bottom, app);
}

fn pane_style(active: bool) -> Style {
    if active {
        HEADER.add_modifier(Modifier::UNDERLINED)
    } else {
        DIM
    }
}

fn credentials_table(f: &mut Frame, area: Rect, app: &App) {
    let c = &app.credentials;
    let active = c.pane == Pane::Credentials;
    let win = Window::under_header(&c.creds.nav, c.creds.len(), area);
    let visible = &c.creds[win.range.clone()];
    let lw = fit("LABEL", visible.iter().map(|x| x.label.as_str()), 5, 28);
    let pw = fit("SECRET", visible.iter().map(|x| x.preview.as_str()), 6, 24);
    let wide = area.width >= 100;
    let rows = win.rows(visible, |x| {
        let mut cells = vec![
            Cell::from(x.label.clone()),
            Cell::from(x.preview.clone()),
            Cell::from(destinations(x)),
            Cell::from(containers(&x.containers)),
            Cell::from(places(x)),
            Cell::from(x.substitutions.to_string()),
            Cell::from(expiry(x.expires_at.as_deref(), app.now)),
        ];
        if !wide {
            cells.remove(4);
        }
        (cells, Style::new())
    });
    // Without the selection, no row is highlighted here.
    let rows = if active {
        rows
    } else {
        rows.into_iter().map(|r| r.style(Style::new())).collect()
    };
    let mut widths = vec![
        Constraint::Length(lw),
        Constraint::Length(pw),
        Constraint::Fill(2),
        Constraint::Fill(1),
        Constraint::Length(22),
        Constraint::Length(5),
        Constraint::Length(9),
    ];
    let mut header = vec![
        "LABEL",
        "SECRET",
        "DESTINATIONS",
        "CONTAINERS",
        "SUBSTITUTED IN",
        "USED",
        "EXPIRES",
    ];
    if !wide {
        widths.remove(4);
        header.remove(4);
    }
    let empty = if c.loaded {
        "No credentials. n adds one: agents then get a placeholder, and the secret goes only \
         where you bind it (docs/credentials.md)."
    } else {
        "Loading…"
    };
    table(f, area, &header, widths, rows, empty);
    if active {
        underline_header(f, area);
    }
}

fn sessions_table(f: &mut Frame, area: Rect, app: &App) {
    let c = &app.credentials;
    let active = c.pane == Pane::Sessions;
    let win = Window::under_header(&c.sessions.nav, c.sessions.len(), area);
    let visible = &c.sessions[win.range.clone()];
    let iw = fit(
        "SESSION",
        visible.iter().map(|s| s.session_id.as_str()),
        7,
        24,
    );
    let cw = fit(
        "CONTAINER",
        visible.iter().map(|s| s.container.as_str()),
        9,
        20,
    );
    let rows = win.rows(visible, |s| {
        let mut creds = s.credentials.join(", ");
        if s.allow_all {
            creds.push_str(" (allow-all)");
        }
        let cells = vec![
            Cell::from(s.session_id.clone()),
            Cell::from(s.container.clone()),
            Cell::from(creds),
            Cell::from(remaining(s, app.now)),
            Cell::from(counts(s)),
        ];
        (cells, Style::new())
    });
    let rows = if active {
        rows
    } else {
        rows.into_iter().map(|r| r.style(Style::new())).collect()
    };
    let widths = vec![
        Constraint::Length(iw),
        Constraint::Length(cw),
        Constraint::Fill(1),
        Constraint::Length(13),
        Constraint::Fill(1),
    ];
    let header = [
        "SESSION",
        "CONTAINER",
        "CREDENTIALS",
        "LEFT / TTL",
        "SUBSTITUTIONS",
    ];
    let empty = "No live session. A launcher registers one per sandbox (greytui --once session \
                 create … --env) and heartbeats it.";
    table(f, area, &header, widths, rows, empty);
    if active {
        underline_header(f, area);
    }
}

fn underline_header(f: &mut Frame, area: Rect) {
    let head = Rect {
        height: 1.min(area.height),
        ..area
    };
    f.buffer_mut()
        .set_style(head, Style::new().add_modifier(Modifier::UNDERLINED));
}

/// `header authorization`, `query key`, `JSON body`.
pub(crate) fn found_in(e: &CredentialEgress) -> String {
    let place = match e.found_in {
        FoundIn::Header => "header",
        FoundIn::Query => "query",
        FoundIn::JsonBody => "JSON body",
        FoundIn::FormBody => "form body",
        _ => "request",
    };
    if e.name.is_empty() {
        place.to_string()
    } else {
        format!("{place} {}", e.name)
    }
}

/// One line about a secret-egress request: what, where found, why held.
pub(crate) fn egress_text(e: &CredentialEgress) -> String {
    format!(
        "⚠ secret {} in {} — held: {}",
        e.label.as_deref().unwrap_or("(unknown placeholder)"),
        found_in(e),
        e.reason.replace('_', " ")
    )
}

/// Draws the secret-egress line at `rect`.
pub(super) fn egress_line(f: &mut Frame, rect: Rect, e: &CredentialEgress) {
    let text = ellipsize(&egress_text(e), rect.width as usize);
    f.render_widget(Paragraph::new(Span::styled(text, EGRESS)), rect);
}

/// The picker deciding a secret-egress request.
pub(super) fn picker_lines(p: &EgressPicker) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    if let Some(e) = &p.pending.credential {
        let label = e.label.as_deref().unwrap_or("(unknown placeholder)");
        lines.push(Line::styled(
            format!(" ⚠ secret {label} in {}", found_in(e)),
            EGRESS,
        ));
        lines.push(Line::styled(
            format!(" held: {}", e.reason.replace('_', " ")),
            EGRESS,
        ));
        lines.push(Line::styled(format!(" {}", e.request), DIM));
        if let Some(s) = &e.session_id {
            lines.push(Line::styled(format!(" session {s}"), DIM));
        }
    }
    lines.push(Line::raw(""));
    for (i, (_, label)) in CHOICES.iter().enumerate() {
        let text = format!(" {} {label}", i + 1);
        lines.push(if i == p.idx {
            Line::styled(text, SELECTED)
        } else {
            Line::raw(text)
        });
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        " j/k move · enter or 1-5 choose · esc close",
        DIM,
    ));
    lines
}
