//! A recorded request as a runnable curl command (`--once export curl`, and `y` in the
//! Activity detail, which copies it with OSC 52): the recorded headers (a redacted value
//! stays `[REDACTED]` and a `# note:` line names it), the stored body, the URL with its port.

use greyproxy_protocol::Transaction;

/// What the capture writes in place of a secret header value.
const REDACTED: &str = "[REDACTED]";

/// The recorded URL with the destination port when the URL leaves out a port that is not the
/// scheme's default (an intercepted origin on a non-standard port is recorded without it).
pub fn url_with_port(t: &Transaction) -> String {
    let Some((scheme, rest)) = t.url.split_once("://") else {
        return t.url.clone();
    };
    let default = if scheme == "https" { 443 } else { 80 };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let has_port = !authority.ends_with(']')
        && authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if has_port || t.destination_port == 0 || t.destination_port == default {
        return t.url.clone();
    }
    format!(
        "{scheme}://{authority}:{}{}",
        t.destination_port,
        &rest[end..]
    )
}

/// `s` in single quotes for a POSIX shell.
fn sh(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Headers curl sets itself or that belong to the recorded connection, not the request.
fn skipped(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "host"
            | "content-length"
            | "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "proxy-connection"
            | "proxy-authorization"
            | "upgrade"
            | "te"
    )
}

/// A runnable curl command repeating `t`'s request (a comment line first when something could
/// not be kept: redacted headers, a cut body).
pub fn curl_command(t: &Transaction) -> String {
    let mut notes = Vec::new();
    let mut parts = vec!["curl".to_owned()];
    if t.method != "GET" || t.request_body.is_some() {
        parts.push(format!("-X {}", sh(&t.method)));
    }
    let mut redacted = Vec::new();
    let mut compressed = false;
    for (name, values) in t.request_headers.iter().flatten() {
        if skipped(name) {
            continue;
        }
        if name.eq_ignore_ascii_case("accept-encoding") {
            // Let curl decode what it asks for, so the output reads like the recording.
            compressed = true;
            continue;
        }
        for v in values {
            if v == REDACTED {
                redacted.push(name.clone());
            }
            parts.push(format!("-H {}", sh(&format!("{name}: {v}"))));
        }
    }
    if compressed {
        parts.push("--compressed".into());
    }
    if !redacted.is_empty() {
        redacted.dedup();
        notes.push(format!(
            "# note: {} redacted in the recording; put the real value in place of {REDACTED}",
            redacted.join(", ")
        ));
    }
    if t.request_body_truncated {
        notes.push("# note: the recorded request body was cut at the capture limit".into());
    }
    let mut pipe = String::new();
    if let Some(body) = &t.request_body {
        if t.request_body_encoding.as_deref() == Some("base64") {
            pipe = format!("printf %s {} | base64 -d | ", sh(body));
            parts.push("--data-binary @-".into());
        } else {
            parts.push(format!("--data-binary {}", sh(body)));
        }
    }
    parts.push(sh(&url_with_port(t)));
    let mut out = notes.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(&pipe);
    out.push_str(&parts.join(" "));
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn curl_keeps_headers_and_body_quotes_for_the_shell_and_notes_redactions() {
        let mut t = Transaction {
            method: "POST".into(),
            url: "https://api.example.com/v1/x?a=1".into(),
            request_body: Some("{\"q\":\"it's\"}".into()),
            ..Default::default()
        };
        let mut h = greyproxy_protocol::HeaderMapJson::new();
        h.insert("authorization".into(), vec![REDACTED.into()]);
        h.insert("content-type".into(), vec!["application/json".into()]);
        h.insert("host".into(), vec!["api.example.com".into()]);
        h.insert("accept-encoding".into(), vec!["gzip".into()]);
        t.request_headers = Some(h);
        let c = curl_command(&t);
        let lines: Vec<&str> = c.lines().collect();
        assert_eq!(lines.len(), 2, "{c}");
        assert!(
            lines[0].starts_with("# note: authorization redacted"),
            "{c}"
        );
        assert_eq!(
            lines[1],
            "curl -X 'POST' -H 'authorization: [REDACTED]' -H 'content-type: application/json' \
             --compressed --data-binary '{\"q\":\"it'\\''s\"}' 'https://api.example.com/v1/x?a=1'"
        );
        t.request_body = Some("AAEC".into());
        t.request_body_encoding = Some("base64".into());
        t.request_headers = None;
        assert_eq!(
            curl_command(&t),
            "printf %s 'AAEC' | base64 -d | curl -X 'POST' --data-binary @- \
             'https://api.example.com/v1/x?a=1'"
        );
    }
}
