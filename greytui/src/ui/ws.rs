//! The detail of a WebSocket upgrade: a summary of the connection (extensions, close code and
//! reason, whether capture stopped) above the list of its messages; an opened message is drawn
//! as an ordinary transaction detail.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use greyproxy_protocol::Transaction;

use super::widgets::{DIM, HEADER, SELECTED, Window, field};
use crate::app::detail::WsMessages;
use crate::format::{clock, ellipsize, ws_direction};
use crate::layout::WS_HEAD_ROWS;

/// `1834 B`, `12.5 KiB`, `3.0 MiB`.
fn size(n: u64) -> String {
    match n {
        n if n < 1024 => format!("{n} B"),
        n if n < 1024 * 1024 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{:.1} MiB", n as f64 / (1024.0 * 1024.0)),
    }
}

/// `1000 (done)`, or `—` while the connection is open.
fn close(u: &Transaction) -> String {
    match (u.ws_close_code, u.ws_close_reason.as_deref()) {
        (None, None) => "— (open, or closed without a close frame)".into(),
        (code, reason) => {
            let code = code.map(|c| c.to_string()).unwrap_or_else(|| "—".into());
            match reason.filter(|r| !r.is_empty()) {
                Some(r) => format!("{code} {r}"),
                None => code,
            }
        }
    }
}

/// The summary lines of the upgrade (exactly `WS_HEAD_ROWS - 1` of them).
fn summary(u: &Transaction, ws: &WsMessages) -> Vec<Line<'static>> {
    let status = u
        .status_code
        .map(|s| s.to_string())
        .unwrap_or_else(|| u.result.to_string());
    let count = if ws.loading {
        "loading…".to_string()
    } else if let Some(e) = &ws.error {
        format!("cannot load: {e}")
    } else {
        let recorded = u
            .ws_messages
            .map(|n| format!(" of {n} recorded"))
            .unwrap_or_default();
        format!("{} listed{recorded}", ws.items.len())
    };
    let capture = match &u.ws_capture_stopped {
        Some(why) => field(
            "capture",
            Span::styled(format!("stopped: {why}"), Style::new().fg(Color::Red)),
        ),
        None => field("capture", "every message"),
    };
    vec![
        Line::styled(format!(" {} {} → {status}", u.method, u.url), HEADER),
        field(
            "upgrade",
            format!("#{} · {} · {}", u.id, u.timestamp, u.container_name),
        ),
        field(
            "extensions",
            u.ws_extensions.clone().unwrap_or_else(|| "none".into()),
        ),
        field("messages", count),
        field("close", close(u)),
        capture,
        Line::raw(""),
    ]
}

/// One message row: direction, time, decoded and wire size, opcode, first line.
fn row(m: &Transaction, preview: Option<&String>, width: usize) -> String {
    let decoded = m.request_body_size.map(size).unwrap_or_else(|| "—".into());
    let mut wire = m.wire_size.map(size).unwrap_or_else(|| "—".into());
    if m.compressed {
        wire.push_str(" z");
    }
    if m.request_body_truncated {
        wire.push_str(" cut");
    }
    let first = preview.map(String::as_str).unwrap_or("…");
    let text = format!(
        " {} {:<8} {:>9} {:>12} {:<6} {first}",
        ws_direction(m),
        clock(&m.timestamp),
        decoded,
        wire,
        m.opcode.as_deref().unwrap_or("?"),
    );
    ellipsize(&text, width)
}

/// Draws the summary and the visible messages.
pub(super) fn draw(f: &mut Frame, area: Rect, u: &Transaction, ws: &WsMessages) {
    let [head, list] =
        Layout::vertical([Constraint::Length(WS_HEAD_ROWS), Constraint::Min(0)]).areas(area);
    let mut lines = summary(u, ws);
    lines.push(Line::styled(
        format!(
            " {} {:<8} {:>9} {:>12} {:<6} {}",
            "⇄", "TIME", "SIZE", "WIRE", "OPCODE", "FIRST LINE (enter opens, h headers)"
        ),
        HEADER,
    ));
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), head);
    let width = list.width as usize;
    let rows = list.height as usize;
    let win = Window::new(&ws.nav, ws.items.len(), rows);
    let mut out: Vec<Line> = ws.items[win.range.clone()]
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let text = row(m, ws.previews.get(&m.id), width);
            if win.is_selected(i) {
                Line::styled(format!("{text:<width$}"), SELECTED)
            } else {
                Line::raw(text)
            }
        })
        .collect();
    if ws.items.is_empty() && !ws.loading {
        out.push(Line::styled(" No messages recorded.", DIM));
    }
    f.render_widget(Paragraph::new(out), list);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_rows() {
        assert_eq!(size(212), "212 B");
        assert_eq!(size(1834), "1.8 KiB");
        assert_eq!(size(5 * 1024 * 1024), "5.0 MiB");
        let m = Transaction {
            method: "WS_REQ".into(),
            timestamp: "2026-11-22T10:00:01Z".into(),
            request_body_size: Some(1834),
            wire_size: Some(212),
            compressed: true,
            opcode: Some("text".into()),
            ..Transaction::default()
        };
        let r = row(&m, Some(&"{\"a\":1}".to_string()), 80);
        assert!(r.starts_with(" → 10:00:01"), "{r}");
        assert!(
            r.contains("1.8 KiB") && r.contains("212 B z") && r.ends_with("{\"a\":1}"),
            "{r}"
        );
    }
}
