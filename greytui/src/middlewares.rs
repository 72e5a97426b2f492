//! External middlewares as the dashboard and `--once middlewares` show them: the state of a
//! configured middleware (`list_middlewares`), the label of a middleware decision recorded on a
//! transaction, and the badge that sums a transaction's decisions up in the activity list.
//! Pure text; colours are the UI's business.

use greyproxy_protocol::middleware::{MiddlewareEvent, MiddlewareStatus};
use serde::Deserialize;

/// The `data` of the `list_middlewares` reply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub(crate) struct MiddlewareList {
    /// Configured middlewares, in configuration order.
    #[serde(default)]
    pub(crate) middlewares: Vec<MiddlewareStatus>,
}

/// Column titles of the middleware table, shared by the Middlewares view and `--once`.
pub(crate) const COLUMNS: [&str; 8] = [
    "MIDDLEWARE",
    "KIND",
    "STATE",
    "PROTO",
    "HOOKS",
    "TIMEOUT",
    "ON DISCONNECT",
    "CONNECTS",
];

/// What the dashboard says when no middleware is configured.
pub(crate) const EMPTY_HELP: &str = "No middlewares configured. Add one when starting the daemon: \
greyproxyd serve --middleware-cmd '/path/to/program --flag' (stdio) or --middleware \
ws://127.0.0.1:9000/ (WebSocket), or a [[middleware]] table in the config file; see \
docs/middleware.md.";

/// The badge of a middleware decision in the activity list and the transaction detail.
/// Ordered from weakest to strongest, so the strongest of several is their maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Badge {
    /// `tagged-allow`, `tagged-passthrough`: the exchange went on, with tags.
    Tagged,
    /// `rewrite`: headers or body changed.
    Rewrite,
    /// `deny`, `block`: the middleware stopped the exchange.
    Deny,
}

impl Badge {
    /// The badge of one decision's `action`; `None` for an action this build does not know.
    pub(crate) fn of(action: &str) -> Option<Badge> {
        match action {
            "deny" | "block" => Some(Badge::Deny),
            "rewrite" => Some(Badge::Rewrite),
            a if a.starts_with("tagged") => Some(Badge::Tagged),
            _ => None,
        }
    }

    /// `✗`, `✎` or `♯` (one column wide).
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            Badge::Deny => "✗",
            Badge::Rewrite => "✎",
            Badge::Tagged => "♯",
        }
    }
}

/// The strongest badge among a transaction's middleware decisions (`✗` > `✎` > `♯`).
pub(crate) fn strongest(events: &[MiddlewareEvent]) -> Option<Badge> {
    events
        .iter()
        .filter_map(|e| Badge::of(e.action.as_str()))
        .max()
}

/// Who decided: the middleware's name, else its URL, else `stdio`.
pub(crate) fn event_label(e: &MiddlewareEvent) -> &str {
    if !e.middleware_name.is_empty() {
        &e.middleware_name
    } else if !e.middleware_url.is_empty() {
        &e.middleware_url
    } else {
        "stdio"
    }
}

/// How a configured middleware is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Handshake done, connection up: traffic is sent to it.
    Ready,
    /// Being dialled or spawned, or the handshake is under way.
    Connecting,
    /// Not connected (its `on_disconnect` policy applies).
    Down,
}

impl State {
    /// `ready`, `connecting`, `down`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            State::Ready => "ready",
            State::Connecting => "connecting",
            State::Down => "down",
        }
    }
}

/// The state of a configured middleware.
pub(crate) fn state(m: &MiddlewareStatus) -> State {
    if m.ready {
        State::Ready
    } else if m.connected || (m.connects == 0 && m.last_error.is_none()) {
        // A transport is up without a finished handshake, or nothing was tried yet.
        State::Connecting
    } else {
        State::Down
    }
}

/// The state, with the last error when down: `ready`, `down: connection refused`.
pub(crate) fn state_text(m: &MiddlewareStatus) -> String {
    let s = state(m);
    match (&m.last_error, s) {
        (Some(e), State::Down) if !e.is_empty() => format!("down: {e}"),
        _ => s.as_str().to_string(),
    }
}

/// The name from the middleware's hello, else its endpoint.
pub(crate) fn label(m: &MiddlewareStatus) -> &str {
    if m.name.is_empty() { &m.url } else { &m.name }
}

/// `v1`, or `—` before the first handshake.
pub(crate) fn protocol(m: &MiddlewareStatus) -> String {
    match m.protocol_version {
        0 => "—".into(),
        v => format!("v{v}"),
    }
}

/// The hooks of the latest hello, or `—`.
pub(crate) fn hooks(m: &MiddlewareStatus) -> String {
    if m.hooks.is_empty() {
        "—".into()
    } else {
        m.hooks.join(", ")
    }
}

/// `5s`, `1500ms`.
pub(crate) fn timeout(ms: u64) -> String {
    if ms > 0 && ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// `1048576 bytes`, `no limit`, or `—` before the first handshake.
pub(crate) fn max_body(m: &MiddlewareStatus) -> String {
    match m.max_body_bytes {
        n if n > 0 => format!("{n} bytes"),
        _ if m.protocol_version == 0 => "—".into(),
        _ => "no limit".into(),
    }
}

/// A stdio middleware's argv as a shell would read it (arguments with blanks or quotes are
/// single-quoted).
pub(crate) fn argv(command: &[String]) -> String {
    command
        .iter()
        .map(|a| {
            let plain = !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
            if plain {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// One row of the middleware table, in [`COLUMNS`] order.
pub(crate) fn row(m: &MiddlewareStatus) -> Vec<String> {
    vec![
        label(m).to_string(),
        m.kind.clone(),
        state_text(m),
        protocol(m),
        hooks(m),
        timeout(m.timeout_ms),
        m.on_disconnect.to_string(),
        m.connects.to_string(),
    ]
}

/// The decision of one event, as read in the detail: `deny 403`, `rewrite`, `tagged-allow`.
pub(crate) fn event_action(e: &MiddlewareEvent) -> String {
    if e.status_code != 0 {
        format!("{} {}", e.action, e.status_code)
    } else {
        e.action.to_string()
    }
}

/// An event's tags as compact JSON (`{"pii":true}`), or `None` without tags.
pub(crate) fn tags(e: &MiddlewareEvent) -> Option<String> {
    (!e.tags.is_empty()).then(|| serde_json::to_string(&e.tags).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ev(action: &str) -> MiddlewareEvent {
        MiddlewareEvent {
            action: action.parse().unwrap(),
            ..MiddlewareEvent::default()
        }
    }

    #[test]
    fn each_action_has_its_badge() {
        assert_eq!(Badge::of("deny"), Some(Badge::Deny));
        assert_eq!(Badge::of("block"), Some(Badge::Deny));
        assert_eq!(Badge::of("rewrite"), Some(Badge::Rewrite));
        assert_eq!(Badge::of("tagged-allow"), Some(Badge::Tagged));
        assert_eq!(Badge::of("tagged-passthrough"), Some(Badge::Tagged));
        assert_eq!(Badge::of("something-new"), None);
        assert_eq!(Badge::Deny.symbol(), "✗");
        assert_eq!(Badge::Rewrite.symbol(), "✎");
        assert_eq!(Badge::Tagged.symbol(), "♯");
    }

    #[test]
    fn the_strongest_badge_wins() {
        assert_eq!(strongest(&[]), None);
        assert_eq!(strongest(&[ev("tagged-allow")]), Some(Badge::Tagged));
        assert_eq!(
            strongest(&[ev("tagged-allow"), ev("rewrite"), ev("tagged-passthrough")]),
            Some(Badge::Rewrite)
        );
        assert_eq!(
            strongest(&[ev("rewrite"), ev("block"), ev("tagged-allow")]),
            Some(Badge::Deny)
        );
        assert_eq!(
            strongest(&[ev("deny"), ev("rewrite")]),
            Some(Badge::Deny),
            "order does not matter"
        );
    }

    #[test]
    fn labels_fall_back_from_name_to_url_to_stdio() {
        let mut e = ev("deny");
        assert_eq!(event_label(&e), "stdio");
        e.middleware_url = "ws://127.0.0.1:9000/".into();
        assert_eq!(event_label(&e), "ws://127.0.0.1:9000/");
        e.middleware_name = "redactor".into();
        assert_eq!(event_label(&e), "redactor");
        e.status_code = 403;
        assert_eq!(event_action(&e), "deny 403");
        assert_eq!(tags(&e), None);
        e.tags.insert("pii".into(), serde_json::json!(true));
        assert_eq!(tags(&e).as_deref(), Some("{\"pii\":true}"));
    }

    #[test]
    fn states_and_cells() {
        let mut m = MiddlewareStatus {
            url: "ws://127.0.0.1:9000/".into(),
            kind: "ws".into(),
            timeout_ms: 5000,
            on_disconnect: greyproxy_protocol::middleware::OnDisconnect::Deny,
            ..MiddlewareStatus::default()
        };
        assert_eq!(state(&m), State::Connecting);
        assert_eq!(label(&m), "ws://127.0.0.1:9000/");
        assert_eq!(
            (protocol(&m), hooks(&m), max_body(&m)),
            ("—".into(), "—".into(), "—".into())
        );
        m.last_error = Some("connection refused".into());
        assert_eq!(state_text(&m), "down: connection refused");
        m.connected = true;
        assert_eq!(state_text(&m), "connecting");
        m.ready = true;
        m.name = "guard".into();
        m.protocol_version = 1;
        m.hooks = vec!["http-request".into(), "http-response".into()];
        m.connects = 2;
        assert_eq!(state_text(&m), "ready");
        assert_eq!(
            row(&m),
            [
                "guard",
                "ws",
                "ready",
                "v1",
                "http-request, http-response",
                "5s",
                "deny",
                "2"
            ]
        );
        assert_eq!(max_body(&m), "no limit");
        assert_eq!(timeout(1500), "1500ms");
        assert_eq!(
            argv(&["python3".into(), "-c".into(), "print('x y')".into()]),
            r"python3 -c 'print('\''x y'\'')'"
        );
    }
}
