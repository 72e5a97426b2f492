//! Recorded transactions as HAR 1.2 entries (the control `export` command, docs/export.md).
//! Bodies are the stored copies (decoded, possibly cut at the capture cap: `_truncated`);
//! redacted headers stay redacted. An upgrade (101) entry carries its WebSocket messages under
//! `_webSocketMessages`, the field Chrome's devtools write.

use std::collections::BTreeSet;

use greyproxy_protocol::Transaction;
use greyproxy_protocol::export::{ExportArgs, ExportPage};
use serde_json::{Value, json};

use crate::store::{CallQuery, Store, StoreError, TxQuery};

/// Default entries per page.
const PAGE: usize = 100;
/// Most entries per page.
const PAGE_MAX: usize = 500;
/// Most WebSocket messages put under one upgrade entry.
const WS_MESSAGES_MAX: usize = 10_000;
/// Most calls of one conversation followed to its transactions.
const CONVERSATION_CALLS_MAX: usize = 100_000;

/// Why an `export` command is refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HarError {
    /// Another format than `har`.
    #[error("unknown export format {0:?} (supported: har)")]
    Format(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One page of entries, newest first. Blocks on the store: run it on the blocking pool.
pub(crate) fn page(store: &Store, a: &ExportArgs) -> Result<ExportPage, HarError> {
    if !a.format.is_empty() && a.format != "har" {
        return Err(HarError::Format(a.format.clone()));
    }
    let limit = a.limit.unwrap_or(PAGE).clamp(1, PAGE_MAX);
    let before = a.before_id.unwrap_or(u64::MAX);
    let query = TxQuery {
        container: a.container.clone(),
        destination: a.destination.clone(),
        since: a.since,
        until: a.until,
        ..Default::default()
    };
    let mut heads = Vec::new();
    let mut next = None;
    if let Some(conv) = &a.conversation_id {
        // The conversation's transactions: its calls' request rows, their upgrades.
        let (calls, _) = store.list_llm_calls(&CallQuery {
            conversation_id: Some(conv.clone()),
            limit: CONVERSATION_CALLS_MAX,
            ..Default::default()
        })?;
        let ids: BTreeSet<u64> = calls
            .iter()
            .flat_map(|c| c.upgrade_id.into_iter().chain([c.transaction_id]))
            .filter(|id| *id < before)
            .collect();
        for id in ids.iter().rev() {
            if heads.len() == limit {
                next = heads.last().map(|t: &Transaction| t.id);
                break;
            }
            if let Some(t) = store.get_transaction(*id)?
                && t.upgrade_id.is_none()
                && query_matches(&query, &t)
            {
                heads.push(t);
            }
        }
    } else {
        let p = store.query_transactions(&TxQuery {
            limit,
            before_id: a.before_id,
            ..query
        })?;
        next = p.next_before_id;
        for h in p.items {
            // WebSocket message rows go under their upgrade entry.
            if h.upgrade_id.is_some() {
                continue;
            }
            if let Some(t) = store.get_transaction(h.id)? {
                heads.push(t);
            }
        }
    }
    let mut entries = Vec::with_capacity(heads.len());
    for t in &heads {
        let mut e = entry(t);
        if t.status_code == Some(101) {
            e["_webSocketMessages"] = Value::Array(ws_messages(store, t)?);
        }
        entries.push(e);
    }
    Ok(ExportPage {
        entries,
        next_before_id: next,
    })
}

fn query_matches(q: &TxQuery, t: &Transaction) -> bool {
    let lc = |s: &str| s.to_lowercase();
    let has = |f: &Option<String>, hay: &[&str]| {
        f.as_deref()
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .is_none_or(|f| hay.iter().any(|h| lc(h).contains(&lc(f))))
    };
    let ts = crate::time::parse_timestamp(&t.timestamp).unwrap_or(0);
    has(&q.container, &[&t.container_name])
        && has(&q.destination, &[&t.destination_host, &t.url])
        && q.since.is_none_or(|s| ts >= s)
        && q.until.is_none_or(|u| ts < u)
}

fn headers(h: &Option<greyproxy_protocol::HeaderMapJson>) -> Vec<Value> {
    h.iter()
        .flatten()
        .flat_map(|(k, vs)| vs.iter().map(move |v| json!({"name": k, "value": v})))
        .collect()
}

fn query_string(url: &str) -> Vec<Value> {
    let Some((_, q)) = url.split_once('?') else {
        return Vec::new();
    };
    q.split('#')
        .next()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            json!({"name": k, "value": v})
        })
        .collect()
}

/// The recorded URL with the destination port when the URL leaves out a port that is not the
/// scheme's default (an intercepted origin on a non-standard port is recorded without it).
fn url_with_port(t: &Transaction) -> String {
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

fn version(t: &Transaction) -> &str {
    t.http_version.as_deref().unwrap_or("HTTP/1.1")
}

/// One HAR entry (without WebSocket messages).
pub(crate) fn entry(t: &Transaction) -> Value {
    let total = t.duration_ms.unwrap_or(0);
    let wait = t.ttfb_ms.unwrap_or(0).min(total);
    let mut request = json!({
        "method": t.method,
        "url": url_with_port(t),
        "httpVersion": version(t),
        "cookies": [],
        "headers": headers(&t.request_headers),
        "queryString": query_string(&t.url),
        "headersSize": -1,
        "bodySize": t.request_body_size.map_or(-1, |n| n as i64),
    });
    if let Some(body) = &t.request_body {
        let mime = t.request_content_type.clone().unwrap_or_default();
        let mut pd = json!({"mimeType": mime, "text": body});
        if t.request_body_encoding.as_deref() == Some("base64") {
            pd["_encoding"] = json!("base64");
        }
        request["postData"] = pd;
    }
    let mut content = json!({
        "size": t.response_body_size.unwrap_or(0),
        "mimeType": t.response_content_type.clone().unwrap_or_default(),
    });
    if let Some(body) = &t.response_body {
        content["text"] = json!(body);
        if t.response_body_encoding.as_deref() == Some("base64") {
            content["encoding"] = json!("base64");
        }
    }
    let mut e = json!({
        "startedDateTime": t.timestamp,
        "time": total,
        "request": request,
        "response": {
            "status": t.status_code.unwrap_or(0),
            "statusText": "",
            "httpVersion": version(t),
            "cookies": [],
            "headers": headers(&t.response_headers),
            "content": content,
            "redirectURL": "",
            "headersSize": -1,
            "bodySize": t.response_body_size.map_or(-1, |n| n as i64),
        },
        "cache": {},
        "timings": {"send": 0, "wait": wait, "receive": total - wait},
        "_greyproxy": {
            "transaction_id": t.id,
            "container": t.container_name,
            "result": t.result.as_str(),
        },
    });
    if let Some(err) = &t.error {
        e["response"]["_error"] = json!(err);
    }
    if t.request_body_truncated || t.response_body_truncated {
        e["_truncated"] = json!({"request": t.request_body_truncated,
            "response": t.response_body_truncated});
    }
    e
}

/// The messages of an upgrade, oldest first, as Chrome writes them: `type` send/receive,
/// `time` in Unix seconds, `opcode` 1 (text) or 2 (binary), `data`.
fn ws_messages(store: &Store, up: &Transaction) -> Result<Vec<Value>, StoreError> {
    let mut out = Vec::new();
    let mut before = None;
    loop {
        let p = store.query_transactions(&TxQuery {
            upgrade_id: Some(up.id),
            limit: 500,
            before_id: before,
            ..Default::default()
        })?;
        for h in &p.items {
            if out.len() >= WS_MESSAGES_MAX {
                break;
            }
            let Some(m) = store.get_transaction(h.id)? else {
                continue;
            };
            let binary = m.opcode.as_deref() == Some("binary");
            let data = m.request_body.clone().unwrap_or_default();
            let ms = crate::time::parse_timestamp_ms(&m.timestamp).unwrap_or(0);
            out.push(json!({
                "type": if m.method == "WS_REQ" { "send" } else { "receive" },
                "time": ms as f64 / 1000.0,
                "opcode": if binary { 2 } else { 1 },
                "data": data,
            }));
        }
        match p.next_before_id {
            Some(b) if out.len() < WS_MESSAGES_MAX && !p.items.is_empty() => before = Some(b),
            _ => break,
        }
    }
    out.reverse();
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn entries_keep_the_port_split_the_query_and_mark_base64_and_errors() {
        let t = Transaction {
            id: 4,
            timestamp: "2026-01-01T00:00:00Z".into(),
            destination_host: "api.example.com".into(),
            destination_port: 8443,
            method: "POST".into(),
            url: "https://api.example.com/v1/x?a=1&b=".into(),
            request_body: Some("AAEC".into()),
            request_body_encoding: Some("base64".into()),
            response_body: Some("AQI=".into()),
            response_body_encoding: Some("base64".into()),
            error: Some("origin reset".into()),
            duration_ms: Some(30),
            ttfb_ms: Some(50),
            ..Default::default()
        };
        let e = entry(&t);
        assert_eq!(
            e["request"]["url"],
            "https://api.example.com:8443/v1/x?a=1&b="
        );
        assert_eq!(
            e["request"]["queryString"],
            json!([{"name":"a","value":"1"},{"name":"b","value":""}])
        );
        assert_eq!(e["request"]["postData"]["_encoding"], "base64");
        assert_eq!(e["response"]["content"]["encoding"], "base64");
        assert_eq!(e["response"]["status"], 0);
        assert_eq!(e["response"]["_error"], "origin reset");
        // The wait never exceeds the whole time.
        assert_eq!(e["timings"], json!({"send": 0, "wait": 30, "receive": 0}));
        let mut plain = t.clone();
        plain.url = "https://api.example.com:8443/".into();
        assert_eq!(
            entry(&plain)["request"]["url"],
            "https://api.example.com:8443/"
        );
        plain.destination_port = 443;
        plain.url = "https://api.example.com/".into();
        assert_eq!(entry(&plain)["request"]["url"], "https://api.example.com/");
    }

    #[test]
    fn another_format_is_refused_and_an_empty_store_gives_an_empty_page() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let bad = ExportArgs {
            format: "pcap".into(),
            ..Default::default()
        };
        assert!(page(&store, &bad).unwrap_err().to_string().contains("pcap"));
        let p = page(&store, &ExportArgs::default()).unwrap();
        assert!(p.entries.is_empty() && p.next_before_id.is_none());
        let p = page(
            &store,
            &ExportArgs {
                conversation_id: Some("nope".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert!(p.entries.is_empty());
    }
}
