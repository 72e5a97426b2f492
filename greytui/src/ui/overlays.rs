//! Overlays drawn over the view: the help (generated from the keymap table), the scope /
//! duration picker, forms and confirmations.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Clear, Paragraph, Wrap};

use super::widgets::{DIM, HEADER, KEY, SELECTED, centered};
use crate::app::form::{FieldKind, Form};
use crate::app::modal::{Confirm, DURATIONS, Picker, PickerStep, SCOPES, Verb};
use crate::app::{App, Modal};
use crate::keymap;

/// Draws the open modal, if any.
pub(super) fn draw(f: &mut Frame, app: &App) {
    match &app.modal {
        None => {}
        Some(Modal::Help(scroll)) => help(f, *scroll),
        Some(Modal::Picker(p)) => picker(f, p),
        Some(Modal::Form(form)) => form_box(f, form),
        Some(Modal::Confirm(c)) => confirm(f, c),
        Some(Modal::Egress(p)) => {
            let title = format!(
                "Secret egress #{} {} → {}:{}",
                p.pending.id,
                p.pending.container_name,
                p.pending.display_host(),
                p.pending.destination_port
            );
            let lines = super::credentials::picker_lines(p);
            let area = centered(f.area(), 72, lines.len() as u16 + 2);
            let inner = boxed(f, area, &title);
            f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
        }
    }
}

fn boxed(f: &mut Frame, area: Rect, title: &str) -> Rect {
    f.render_widget(Clear, area);
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .title(Span::styled(format!(" {title} "), HEADER));
    let inner = block.inner(area);
    f.render_widget(block, area);
    inner
}

fn help(f: &mut Frame, scroll: u16) {
    let full = f.area();
    let area = centered(full, 76, full.height.saturating_sub(2));
    let inner = boxed(f, area, "Keys — j/k scroll, ? or esc closes");
    let mut lines = Vec::new();
    for (heading, keys, desc) in keymap::help_lines() {
        match heading {
            Some(h) => {
                if !lines.is_empty() {
                    lines.push(Line::raw(""));
                }
                lines.push(Line::styled(h, HEADER));
            }
            None => lines.push(Line::from(vec![
                Span::styled(format!("  {keys:<18}"), KEY),
                Span::raw(desc),
            ])),
        }
    }
    let max = (lines.len() as u16).saturating_sub(inner.height);
    f.render_widget(Paragraph::new(lines).scroll((scroll.min(max), 0)), inner);
}

fn options<'a>(items: impl Iterator<Item = (String, String)>, selected: usize) -> Vec<Line<'a>> {
    items
        .enumerate()
        .map(|(i, (label, extra))| {
            let text = format!(" {} {label:<15}{extra}", i + 1);
            if i == selected {
                Line::styled(text, SELECTED)
            } else {
                Line::raw(text)
            }
        })
        .collect()
}

fn picker(f: &mut Frame, p: &Picker) {
    let title = format!(
        "{} #{} {} → {}:{}",
        match p.verb {
            Verb::Allow => "Allow",
            Verb::Deny => "Deny",
            Verb::Bind => "Bind to its credential",
        },
        p.pending.id,
        p.pending.container_name,
        p.pending.display_host(),
        p.pending.destination_port
    );
    let scope_label = SCOPES.get(p.scope).map(|s| s.1).unwrap_or("");
    // Why the connection was asked for, above the choices.
    let mut lines = match &p.pending.llm_context {
        Some(c) => super::conversations::picker_why(c, 70),
        None => Vec::new(),
    };
    lines.extend(match p.step {
        PickerStep::Scope => {
            let mut l = vec![Line::styled(" Scope:", HEADER)];
            l.extend(options(
                SCOPES
                    .iter()
                    .map(|(s, label)| (label.to_string(), p.preview(*s))),
                p.scope,
            ));
            l
        }
        PickerStep::Duration => {
            let mut l = vec![Line::styled(
                format!(" Scope: {scope_label}. Duration:"),
                HEADER,
            )];
            l.extend(options(
                DURATIONS.iter().map(|d| (d.to_string(), String::new())),
                p.duration,
            ));
            l
        }
        PickerStep::Typed => vec![
            Line::styled(format!(" Scope: {scope_label}. Duration:"), HEADER),
            Line::raw(""),
            Line::from(vec![
                Span::raw(" > "),
                Span::raw(p.typed.clone()),
                Span::styled("█", DIM),
            ]),
            Line::raw(""),
            Line::styled(" e.g. 30m, 2h30m, 3d — enter applies, esc goes back", DIM),
        ],
    });
    lines.push(Line::raw(""));
    let hint = match p.step {
        PickerStep::Typed => "",
        _ => " j/k move · enter or 1-9 choose · esc back",
    };
    lines.push(Line::styled(hint, DIM));
    let area = centered(f.area(), 72, lines.len() as u16 + 2);
    let inner = boxed(f, area, &title);
    f.render_widget(Paragraph::new(lines), inner);
}

fn form_box(f: &mut Frame, form: &Form) {
    let h = form.fields.len() as u16 + 6;
    let area = centered(f.area(), 72, h);
    let inner = boxed(f, area, &form.title);
    let mut lines = Vec::new();
    for (i, field) in form.fields.iter().enumerate() {
        let focused = i == form.focus;
        let value = match &field.kind {
            FieldKind::Text(t) if focused => format!("{t}█"),
            FieldKind::Text(t) => t.clone(),
            // Only how many characters were typed, never what.
            FieldKind::Secret(s) if focused => format!("{}█", "•".repeat(s.0.chars().count())),
            FieldKind::Secret(s) => "•".repeat(s.0.chars().count()),
            FieldKind::Choice { options, idx } => options
                .iter()
                .enumerate()
                .map(|(j, o)| {
                    if j == *idx {
                        format!("[{o}]")
                    } else {
                        format!(" {o} ")
                    }
                })
                .collect::<Vec<_>>()
                .join(" "),
        };
        let label = Span::styled(
            format!(" {:<12} ", field.label),
            if focused { KEY } else { HEADER },
        );
        lines.push(Line::from(vec![label, Span::raw(value)]));
    }
    lines.push(Line::raw(""));
    if let Some(field) = form.fields.get(form.focus) {
        lines.push(Line::styled(format!(" {}", field.help), DIM));
    }
    match &form.error {
        Some(e) => lines.push(Line::styled(format!(" {e}"), Style::new().fg(Color::Red))),
        None => lines.push(Line::styled(
            " tab next field · enter save · esc cancel",
            DIM,
        )),
    }
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
}

fn confirm(f: &mut Frame, c: &Confirm) {
    let area = centered(f.area(), 60, 5);
    let inner = boxed(f, area, "Confirm");
    let lines = vec![
        Line::raw(format!(" {}", c.question())),
        Line::raw(""),
        Line::from(vec![
            Span::styled(" y", KEY),
            Span::raw(" yes   "),
            Span::styled("n", KEY),
            Span::raw(" no"),
        ]),
    ];
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
}
