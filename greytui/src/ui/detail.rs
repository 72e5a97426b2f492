//! The lines of the activity detail: every field of a connection decision, or a transaction's
//! request and response (headers, decoded body, pretty-printed JSON) once `get_transaction`
//! answered. Whatever the daemon returns is shown: a record that does not decode as a
//! transaction is printed as pretty JSON.

use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};

use greyproxy_protocol::{HeaderMapJson, RequestLog, Transaction};

use super::widgets::{DIM, HEADER, badge_style, field};
use crate::format::ws_direction;
use crate::middlewares::{Badge, event_action, event_label};

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "—".into())
}

/// Lines for a connection decision.
pub(super) fn connection(r: &RequestLog) -> Vec<Line<'static>> {
    let mut lines = vec![
        Line::styled(
            format!(
                " Connection {} — {}:{}",
                r.id,
                r.destination_host,
                opt(r.destination_port)
            ),
            HEADER,
        ),
        Line::raw(""),
        field("time", r.timestamp.clone()),
        field("container", r.container_name.clone()),
        field("container id", opt(r.container_id.clone())),
        field("destination", r.destination_host.clone()),
        field("port", opt(r.destination_port)),
        field("resolved host", opt(r.resolved_hostname.clone())),
        field("front end", opt(r.method.clone())),
        field("result", r.result.as_str()),
        field("reason", opt(r.reason.clone())),
        field("rule", opt(r.rule_id)),
        field("rule summary", opt(r.rule_summary.clone())),
        field(
            "response time",
            opt(r.response_time_ms.map(|m| format!("{m} ms"))),
        ),
        field("capture", opt(r.mitm)),
    ];
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        " A connection decision has no HTTP exchange of its own; recorded exchanges are the \
         transaction rows of the feed.",
        DIM,
    ));
    lines
}

/// Lines for a transaction: the listed head at once, headers and bodies once fetched.
pub(super) fn transaction(
    t: &Transaction,
    full: Option<&Result<serde_json::Value, String>>,
) -> Vec<Line<'static>> {
    let full_t = match full {
        Some(Ok(v)) => serde_json::from_value::<Transaction>(v.clone()).ok(),
        _ => None,
    };
    let t = full_t.as_ref().unwrap_or(t);
    let status = t
        .status_code
        .map(|s| s.to_string())
        .unwrap_or_else(|| t.result.to_string());
    let head = match t.upgrade_id {
        Some(_) => format!(
            " {} {} {} · message {}",
            ws_direction(t),
            t.method,
            t.url,
            opt(t.message_index)
        ),
        None => format!(" {} {} → {status}", t.method, t.url),
    };
    let mut lines = vec![
        Line::styled(head, HEADER),
        Line::raw(""),
        field("transaction", t.id.to_string()),
        field("time", t.timestamp.clone()),
        field("container", t.container_name.clone()),
        field(
            "destination",
            format!("{}:{}", t.destination_host, t.destination_port),
        ),
    ];
    if t.upgrade_id.is_some() {
        // A WebSocket message: no HTTP exchange of its own.
        ws_fields(&mut lines, t);
    } else {
        lines.extend([
            field("http version", opt(t.http_version.clone())),
            field("result", t.result.to_string()),
            field("error", opt(t.error.clone())),
            field("rule", opt(t.rule_id)),
            field("duration", opt(t.duration_ms.map(|m| format!("{m} ms")))),
            field("first byte", opt(t.ttfb_ms.map(|m| format!("{m} ms")))),
        ]);
        ws_fields(&mut lines, t);
    }
    middleware_events(&mut lines, t);
    match full {
        None => lines.push(Line::styled(" loading headers and bodies…", DIM)),
        Some(Err(e)) => lines.push(Line::styled(
            format!(" cannot load the transaction: {e}"),
            Style::new().fg(Color::Red),
        )),
        Some(Ok(v)) if full_t.is_none() => {
            lines.push(Line::raw(""));
            lines.push(Line::styled(" Record (as the daemon sent it)", HEADER));
            let text = serde_json::to_string_pretty(v).unwrap_or_default();
            lines.extend(text.lines().map(|l| Line::raw(format!(" {l}"))));
        }
        Some(Ok(_)) if t.upgrade_id.is_some() => message_body(&mut lines, t),
        Some(Ok(_)) => {
            section(
                &mut lines,
                "Request",
                t.request_headers.as_ref(),
                Body {
                    text: t.request_body.as_deref(),
                    encoding: t.request_body_encoding.as_deref(),
                    content_type: t.request_content_type.as_deref(),
                    size: t.request_body_size,
                    truncated: t.request_body_truncated,
                    decoding: t.request_body_decoding.as_deref(),
                },
            );
            section(
                &mut lines,
                "Response",
                t.response_headers.as_ref(),
                Body {
                    text: t.response_body.as_deref(),
                    encoding: t.response_body_encoding.as_deref(),
                    content_type: t.response_content_type.as_deref(),
                    size: t.response_body_size,
                    truncated: t.response_body_truncated,
                    decoding: t.response_body_decoding.as_deref(),
                },
            );
        }
    }
    lines
}

/// WebSocket fields: of a message row (direction, opcode, sizes) or of an upgrade row
/// (extensions, close, capture).
fn ws_fields(lines: &mut Vec<Line<'static>>, t: &Transaction) {
    if let Some(up) = t.upgrade_id {
        let dir = if t.method.eq_ignore_ascii_case("WS_REQ") {
            "→ client to server"
        } else {
            "← server to client"
        };
        lines.push(field("direction", dir));
        lines.push(field("upgrade", format!("transaction {up}")));
        lines.push(field("message index", opt(t.message_index)));
        lines.push(field("opcode", opt(t.opcode.clone())));
        let wire = opt(t.wire_size.map(|w| format!("{w} bytes")));
        let z = if t.compressed {
            " (permessage-deflate)"
        } else {
            ""
        };
        lines.push(field("wire size", format!("{wire}{z}")));
        return;
    }
    if t.ws_extensions.is_some() || t.ws_messages.is_some() || t.ws_close_code.is_some() {
        lines.push(field("ws extensions", opt(t.ws_extensions.clone())));
        lines.push(field("ws messages", opt(t.ws_messages)));
        lines.push(field("ws close", opt(t.ws_close_code)));
        lines.push(field("close reason", opt(t.ws_close_reason.clone())));
    }
    if let Some(why) = &t.ws_capture_stopped {
        lines.push(field("capture stopped", why.clone()));
    }
}

/// The decisions of external middlewares on the exchange, in cascade order: one line each
/// (badge, decision and status, hook and step, middleware, time taken), then what it changed,
/// its fallback reason and its tags.
fn middleware_events(lines: &mut Vec<Line<'static>>, t: &Transaction) {
    if t.middleware_events.is_empty() {
        return;
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled(" Middlewares", HEADER));
    for e in &t.middleware_events {
        let badge = Badge::of(e.action.as_str());
        let style = badge.map(badge_style).unwrap_or_default();
        let symbol = badge.map(|b| b.symbol()).unwrap_or("·");
        lines.push(Line::from(vec![
            Span::styled(format!("   {symbol} "), style),
            Span::styled(event_action(e), style.patch(HEADER)),
            Span::raw(format!(
                "  {} #{} · {} · {} ms",
                e.hook,
                e.sequence,
                event_label(e),
                e.duration_ms
            )),
        ]));
        let sub = |k: &str, v: String| {
            Line::from(vec![
                Span::styled(format!("     {k:<16}"), DIM),
                Span::raw(v),
            ])
        };
        if !e.headers_changed.is_empty() {
            lines.push(sub("headers changed", e.headers_changed.join(", ")));
        }
        if e.body_rewritten {
            lines.push(sub("body", "rewritten".into()));
        }
        if let Some(f) = &e.fallback {
            lines.push(sub("fallback", f.clone()));
        }
        if let Some(tags) = crate::middlewares::tags(e) {
            lines.push(sub("tags", tags));
        }
    }
}

/// A WebSocket message's payload (kept in the request body for both directions).
fn message_body(lines: &mut Vec<Line<'static>>, t: &Transaction) {
    let b = Body {
        text: t.request_body.as_deref(),
        encoding: t.request_body_encoding.as_deref(),
        content_type: None,
        size: t.request_body_size,
        truncated: t.request_body_truncated,
        decoding: None,
    };
    lines.push(Line::raw(""));
    let mut notes: Vec<String> = b.size.map(|s| format!("{s} bytes")).into_iter().collect();
    if b.truncated {
        notes.push("truncated".into());
    }
    if b.encoding == Some("base64") {
        notes.push("binary, base64".into());
    }
    lines.push(Line::styled(
        format!(" Message payload ({})", notes.join(", ")),
        HEADER,
    ));
    match b.text.filter(|t| !t.is_empty()) {
        None => lines.push(Line::styled("   (empty)", DIM)),
        Some(text) => lines.extend(body_lines(text, b.encoding)),
    }
}

/// One side's body and what is known about it.
struct Body<'a> {
    text: Option<&'a str>,
    encoding: Option<&'a str>,
    content_type: Option<&'a str>,
    size: Option<u64>,
    truncated: bool,
    decoding: Option<&'a str>,
}

fn section(lines: &mut Vec<Line<'static>>, title: &str, headers: Option<&HeaderMapJson>, b: Body) {
    lines.push(Line::raw(""));
    lines.push(Line::styled(format!(" {title} headers"), HEADER));
    match headers {
        Some(h) if !h.is_empty() => {
            for (name, values) in h {
                for v in values {
                    lines.push(Line::from(vec![
                        Span::styled(format!("   {name}: "), DIM),
                        Span::raw(v.clone()),
                    ]));
                }
            }
        }
        _ => lines.push(Line::styled("   (none)", DIM)),
    }
    let mut notes: Vec<String> = b.size.map(|s| format!("{s} bytes")).into_iter().collect();
    if let Some(c) = b.content_type {
        notes.push(c.to_string());
    }
    if let Some(d) = b.decoding.filter(|d| *d != "identity") {
        notes.push(d.to_string());
    }
    if b.truncated {
        notes.push("truncated".into());
    }
    if b.encoding == Some("base64") {
        notes.push("binary, base64".into());
    }
    let notes = if notes.is_empty() {
        String::new()
    } else {
        format!(" ({})", notes.join(", "))
    };
    lines.push(Line::styled(format!(" {title} body{notes}"), HEADER));
    match b.text.filter(|t| !t.is_empty()) {
        None => lines.push(Line::styled("   (empty)", DIM)),
        Some(text) => lines.extend(body_lines(text, b.encoding)),
    }
}

/// A body's lines: pretty-printed when it is JSON, as is otherwise.
fn body_lines(text: &str, encoding: Option<&str>) -> Vec<Line<'static>> {
    let pretty = (encoding != Some("base64"))
        .then(|| serde_json::from_str::<serde_json::Value>(text).ok())
        .flatten()
        .and_then(|v| serde_json::to_string_pretty(&v).ok());
    pretty
        .as_deref()
        .unwrap_or(text)
        .lines()
        .map(|l| Line::raw(format!("   {l}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(lines: &[Line]) -> String {
        lines
            .iter()
            .map(|l| {
                l.spans
                    .iter()
                    .map(|s| s.content.as_ref())
                    .collect::<String>()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn json_bodies_are_pretty_printed_and_unknown_records_shown_raw() {
        let t = Transaction {
            id: 7,
            method: "POST".into(),
            url: "https://api.example.com/v1".into(),
            result: greyproxy_protocol::TransactionResult::Auto,
            status_code: Some(200),
            ..Transaction::default()
        };
        let mut full = serde_json::to_value(&t).unwrap_or_default();
        full["response_body"] = serde_json::json!("{\"ok\":true}");
        let out = text(&transaction(&t, Some(&Ok(full))));
        assert!(
            out.contains("POST https://api.example.com/v1 → 200"),
            "{out}"
        );
        assert!(out.contains("\"ok\": true"), "{out}");
        let odd = serde_json::json!({"something": "else"});
        let out = text(&transaction(&t, Some(&Ok(odd))));
        assert!(out.contains("\"something\": \"else\""), "{out}");
        let out = text(&transaction(&t, None));
        assert!(out.contains("loading"), "{out}");
    }
}
