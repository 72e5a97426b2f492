//! The request and response cascades: each matching step's middleware is asked in order, its
//! decision applied to the working message (greyproxy's action × hook matrix, header denylist,
//! Content-Encoding rule), and the decisions worth a row become [`MiddlewareEvent`]s.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use greyproxy_protocol::middleware::{
    Decision, DecisionAction, EventAction, HttpRequestMessage, HttpResponseMessage,
    MiddlewareEvent, WireHeaders,
};
use http::{HeaderMap, HeaderName, HeaderValue, header};

use super::client::{Outcome, message_id};
use super::filter::FilterInput;
use super::{Middlewares, Step};
use crate::http::decode::decode_body;
use crate::http::header::canonical;
use crate::live::Live;
use crate::time::now_rfc3339;

/// Headers a rewrite may never set: hop-by-hop, credentials and identity (canonical names).
pub(crate) const DENYLIST: [&str; 12] = [
    "Connection",
    "Keep-Alive",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Te",
    "Trailer",
    "Transfer-Encoding",
    "Upgrade",
    "Authorization",
    "Cookie",
    "Set-Cookie",
    "Host",
];

/// A header map as the wire shows it: canonical names, values in order, without `Host`.
pub(crate) fn wire_headers(h: &HeaderMap) -> WireHeaders {
    let mut out = WireHeaders::new();
    for (name, value) in h {
        if name == header::HOST {
            continue;
        }
        out.entry(canonical(name.as_str()))
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    out
}

/// Applies a rewrite's headers: each listed header's values are replaced (an empty list removes
/// it), denylisted names are refused. Returns (changed names, refused names).
pub(crate) fn merge_headers(
    h: &mut HeaderMap,
    set: &BTreeMap<String, Vec<String>>,
) -> (Vec<String>, Vec<String>) {
    let mut changed = Vec::new();
    let mut refused = Vec::new();
    for (name, values) in set {
        let canon = canonical(name);
        if DENYLIST.contains(&canon.as_str()) {
            refused.push(canon);
            continue;
        }
        let Ok(hn) = HeaderName::from_bytes(canon.as_bytes()) else {
            refused.push(canon);
            continue;
        };
        let new: Vec<HeaderValue> = values
            .iter()
            .filter_map(|v| HeaderValue::from_str(v).ok())
            .collect();
        let old: Vec<&HeaderValue> = h.get_all(&hn).iter().collect();
        let differs = old.len() != new.len() || old.iter().zip(&new).any(|(a, b)| *a != b);
        h.remove(&hn);
        for v in new {
            h.append(hn.clone(), v);
        }
        if differs {
            changed.push(canon);
        }
    }
    (changed, refused)
}

/// Where a cascade runs: the facts every message of one exchange shares.
#[derive(Debug, Clone)]
pub(crate) struct Context {
    /// Host header / `:authority`.
    pub(crate) host: String,
    /// Decoded path without query (request filters and the registry).
    pub(crate) path: String,
    /// Request target as the wire message shows it.
    pub(crate) uri: String,
    /// Method.
    pub(crate) method: String,
    /// `HTTP/1.1`, `HTTP/1.0`, `HTTP/2.0`.
    pub(crate) proto: String,
    /// Client identity.
    pub(crate) container: String,
    /// Intercepted (MITM) pipeline.
    pub(crate) tls: bool,
    /// `http` (plain proxy) or `mitm`: prefix of the hook labels.
    pub(crate) pipeline: &'static str,
    /// The reloadable settings this exchange runs with (the LLM endpoint registry).
    pub(crate) live: Arc<Live>,
}

impl Context {
    /// Whether the LLM endpoint registry recognises this exchange (requests look up the
    /// decoded path, responses the raw URI, as greyproxy does).
    pub(crate) fn is_llm(&self, response: bool) -> bool {
        let path = if response { &self.uri } else { &self.path };
        self.live
            .llm
            .lookup(&self.host, path, &self.method)
            .is_some()
    }

    /// The filter input of a request (or response) hook with this content type.
    pub(crate) fn filter_input<'a>(
        &'a self,
        response: bool,
        llm: bool,
        content_type: Option<&'a str>,
    ) -> FilterInput<'a> {
        FilterInput {
            tls: self.tls,
            llm,
            host: &self.host,
            path: if response { &self.uri } else { &self.path },
            method: &self.method,
            content_type,
            container: &self.container,
        }
    }
}

/// Working state of a request.
#[derive(Debug)]
pub(crate) struct RequestWork {
    /// Current headers.
    pub(crate) headers: HeaderMap,
    /// Current body when it is fully known and within the limit.
    pub(crate) body: Option<Bytes>,
    /// A step replaced the body.
    pub(crate) body_replaced: bool,
}

/// Working state of a response.
#[derive(Debug)]
pub(crate) struct ResponseWork {
    /// Current status.
    pub(crate) status: u16,
    /// Current headers.
    pub(crate) headers: HeaderMap,
    /// Current raw (still encoded) body when fully known and within the limit.
    pub(crate) body: Option<Bytes>,
    /// Some step rewrote something.
    pub(crate) rewritten: bool,
    /// A step replaced the body.
    pub(crate) body_replaced: bool,
    /// Upstream round trip to the response head, milliseconds.
    pub(crate) duration_ms: i64,
}

/// A cascade that ended the exchange.
#[derive(Debug)]
pub(crate) struct Stop {
    /// Status to answer with.
    pub(crate) status: u16,
    /// Body to answer with (`None` = none supplied).
    pub(crate) body: Option<Vec<u8>>,
    /// Who stopped it, for the default body.
    pub(crate) by: String,
    /// Set when the proxy decided on the middleware's behalf.
    pub(crate) fallback: Option<&'static str>,
}

fn label(step: &Step) -> (String, String) {
    let name = step
        .client
        .declared()
        .map(|d| d.name.clone())
        .unwrap_or_default();
    let url = step.client.config.endpoint.event_url().to_string();
    (name, url)
}

fn event(
    step: &Step,
    seq: u32,
    hook: &str,
    action: EventAction,
    status: i64,
    out: &Outcome,
    waited: u64,
) -> MiddlewareEvent {
    let (middleware_name, middleware_url) = label(step);
    MiddlewareEvent {
        sequence: seq,
        middleware_name,
        middleware_url,
        hook: hook.into(),
        action,
        status_code: status,
        headers_changed: Vec::new(),
        body_rewritten: false,
        tags: out.decision.tags.clone(),
        duration_ms: waited,
        fallback: out.fallback.map(str::to_string),
        created_at: now_rfc3339(),
    }
}

fn tagged(
    step: &Step,
    seq: u32,
    hook: &str,
    out: &Outcome,
    waited: u64,
) -> Option<MiddlewareEvent> {
    if out.decision.tags.is_empty() {
        return None;
    }
    let action = if out.decision.action == DecisionAction::Passthrough {
        EventAction::TaggedPassthrough
    } else {
        EventAction::TaggedAllow
    };
    Some(event(step, seq, hook, action, 0, out, waited))
}

fn log_outcome(step: &Step, hook: &str, out: &Outcome, response: bool) {
    let url = step.client.config.endpoint.display();
    if let Some(reason) = out.fallback {
        tracing::warn!(
            "middleware {url} ({hook}): {reason} fallback action={:?}",
            out.decision.action.as_str()
        );
    } else if !out.decision.action.is_known() {
        let treat = if response { "passthrough" } else { "allow" };
        tracing::warn!(
            "middleware {url} ({hook}): unknown action {:?}, treating as {treat}",
            out.decision.action.as_str()
        );
    }
}

fn view(body: &Option<Bytes>, limit: usize) -> Option<Vec<u8>> {
    body.as_ref()
        .filter(|b| b.len() <= limit)
        .map(|b| b.to_vec())
}

fn header_str(h: &HeaderMap, name: header::HeaderName) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Sends one message (its JSON, or why it could not be encoded) to a step's middleware and logs
/// a fallback or unknown action; returns the outcome and the milliseconds waited.
async fn ask(
    step: &Step,
    hook: &str,
    id: &str,
    json: serde_json::Result<String>,
    response: bool,
) -> (Outcome, u64) {
    let started = Instant::now();
    let out = match json {
        Ok(j) => step.client.send(id, j, response).await,
        Err(_) => step.client.fallback(id, response, "marshal_error"),
    };
    let waited = started.elapsed().as_millis() as u64;
    log_outcome(step, hook, &out, response);
    (out, waited)
}

/// A decision status usable on the wire.
fn http_status(code: i64) -> Option<u16> {
    u16::try_from(code).ok().filter(|s| (100..=999).contains(s))
}

/// A deny (request) or block (response): its event, and how the exchange ends. A missing or
/// unusable status becomes `default` (403 / 502).
#[allow(clippy::too_many_arguments)]
fn stop(
    step: &Step,
    seq: u32,
    hook: &str,
    action: EventAction,
    default: u16,
    out: &Outcome,
    waited: u64,
    events: &mut Vec<MiddlewareEvent>,
) -> Stop {
    let d = &out.decision;
    let status = if d.status_code == 0 {
        i64::from(default)
    } else {
        d.status_code
    };
    events.push(event(step, seq, hook, action, status, out, waited));
    Stop {
        status: http_status(status).unwrap_or(default),
        body: d.body.clone(),
        by: step.client.config.endpoint.display(),
        fallback: out.fallback,
    }
}

/// [`merge_headers`], warning about refused names; returns the changed names.
fn merge_logged(
    step: &Step,
    hook: &str,
    headers: &mut HeaderMap,
    set: &BTreeMap<String, Vec<String>>,
) -> Vec<String> {
    let (changed, refused) = merge_headers(headers, set);
    if !refused.is_empty() {
        tracing::warn!(
            "middleware {} ({hook}): rejected header rewrite for {refused:?} (hop-by-hop or auth)",
            step.client.config.endpoint.display()
        );
    }
    changed
}

/// Runs the request cascade over `work`; `Some(stop)` when a step denied.
pub(crate) async fn run_request(
    mw: &Middlewares,
    steps: &[Step],
    cx: &Context,
    llm: bool,
    work: &mut RequestWork,
    events: &mut Vec<MiddlewareEvent>,
) -> Option<Stop> {
    let hook = format!("{}-request", cx.pipeline);
    let mut seq = 0u32;
    for step in steps {
        let ct = header_str(&work.headers, header::CONTENT_TYPE);
        if !step
            .filter
            .matches(&cx.filter_input(false, llm, ct.as_deref()))
        {
            continue;
        }
        let id = message_id();
        let msg = HttpRequestMessage {
            kind: "http-request".into(),
            id: id.clone(),
            host: cx.host.clone(),
            method: cx.method.clone(),
            uri: cx.uri.clone(),
            proto: cx.proto.clone(),
            headers: wire_headers(&work.headers),
            body: view(&work.body, mw.body_limit()),
            container: cx.container.clone(),
            tls: cx.tls,
        };
        let (out, waited) = ask(step, &hook, &id, serde_json::to_string(&msg), false).await;
        let d: &Decision = &out.decision;
        match d.action {
            DecisionAction::Deny => {
                let deny = EventAction::Deny;
                return Some(stop(step, seq, &hook, deny, 403, &out, waited, events));
            }
            DecisionAction::Rewrite => {
                let rewrite = EventAction::Rewrite;
                let mut e = event(step, seq, &hook, rewrite, d.status_code, &out, waited);
                if let Some(b) = &d.body {
                    e.body_rewritten = work.body.as_deref() != Some(b.as_slice());
                    work.body = Some(Bytes::from(b.clone()));
                    work.body_replaced = true;
                }
                e.headers_changed = merge_logged(step, &hook, &mut work.headers, &d.headers);
                events.push(e);
            }
            _ => events.extend(tagged(step, seq, &hook, &out, waited)),
        }
        seq += 1;
    }
    None
}

/// Request facts a response message repeats.
#[derive(Debug, Clone)]
pub(crate) struct RequestSide {
    /// Request headers after the request cascade.
    pub(crate) headers: WireHeaders,
    /// The request body before the request cascade, when it was buffered.
    pub(crate) body: Option<Bytes>,
}

/// Runs the response cascade over `work`; `Some(stop)` when a step blocked.
pub(crate) async fn run_response(
    mw: &Middlewares,
    steps: &[Step],
    cx: &Context,
    llm: bool,
    req: &RequestSide,
    work: &mut ResponseWork,
    events: &mut Vec<MiddlewareEvent>,
) -> Option<Stop> {
    let hook = format!("{}-response", cx.pipeline);
    let mut seq = 0u32;
    for step in steps {
        let ct = header_str(&work.headers, header::CONTENT_TYPE);
        if !step
            .filter
            .matches(&cx.filter_input(true, llm, ct.as_deref()))
        {
            continue;
        }
        let limit = mw.body_limit();
        let ce = header_str(&work.headers, header::CONTENT_ENCODING);
        let body = view(&work.body, limit).map(|raw| {
            // A body that fails to decode is shown raw; a bomb is cut at a few times the cap.
            decode_body(
                &raw,
                ce.as_deref(),
                false,
                super::MAX_BUFFER.saturating_mul(4),
            )
            .bytes
        });
        let id = message_id();
        let msg = HttpResponseMessage {
            kind: "http-response".into(),
            id: id.clone(),
            host: cx.host.clone(),
            method: cx.method.clone(),
            uri: cx.uri.clone(),
            status_code: work.status,
            request_headers: req.headers.clone(),
            request_body: view(&req.body, limit),
            response_headers: wire_headers(&work.headers),
            response_body: body.clone(),
            container: cx.container.clone(),
            duration_ms: work.duration_ms,
        };
        let (out, waited) = ask(step, &hook, &id, serde_json::to_string(&msg), true).await;
        let d: &Decision = &out.decision;
        match d.action {
            DecisionAction::Block => {
                let block = EventAction::Block;
                return Some(stop(step, seq, &hook, block, 502, &out, waited, events));
            }
            DecisionAction::Rewrite => {
                let rewrite = EventAction::Rewrite;
                let mut e = event(step, seq, &hook, rewrite, d.status_code, &out, waited);
                work.rewritten = true;
                if let Some(s) = http_status(d.status_code) {
                    work.status = s;
                }
                if let Some(b) = &d.body {
                    // Compare with what the middleware saw (the decoded view).
                    e.body_rewritten = body.as_deref() != Some(b.as_slice());
                    work.body = Some(Bytes::from(b.clone()));
                    work.body_replaced = true;
                    work.headers.remove(header::CONTENT_ENCODING);
                }
                e.headers_changed = merge_logged(step, &hook, &mut work.headers, &d.headers);
                if d.body.is_some()
                    && ce.is_some()
                    && !e.headers_changed.iter().any(|h| h == "Content-Encoding")
                {
                    e.headers_changed.push("Content-Encoding".into());
                }
                events.push(e);
            }
            _ => events.extend(tagged(step, seq, &hook, &out, waited)),
        }
        seq += 1;
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn merge_replaces_removes_and_refuses_the_denylist() {
        let mut h = HeaderMap::new();
        h.append("x-existing", HeaderValue::from_static("old"));
        h.append("x-keep", HeaderValue::from_static("k"));
        h.append("x-gone", HeaderValue::from_static("g"));
        h.append("authorization", HeaderValue::from_static("secret"));
        let mut set = BTreeMap::new();
        set.insert("x-new".to_string(), vec!["1".to_string()]);
        set.insert("X-Existing".to_string(), vec!["new".to_string()]);
        set.insert("X-Gone".to_string(), vec![]);
        for d in [
            "authorization",
            "Host",
            "Cookie",
            "Set-Cookie",
            "Proxy-Authorization",
            "Connection",
            "Transfer-Encoding",
            "Keep-Alive",
            "Te",
            "Trailer",
            "Upgrade",
            "Proxy-Authenticate",
        ] {
            set.insert(d.to_string(), vec!["x".to_string()]);
        }
        let (changed, refused) = merge_headers(&mut h, &set);
        assert_eq!(refused.len(), 12);
        assert_eq!(h["x-new"], "1");
        assert_eq!(h["x-existing"], "new");
        assert_eq!(h["x-keep"], "k");
        assert!(!h.contains_key("x-gone"));
        assert_eq!(h["authorization"], "secret");
        assert!(!h.contains_key("host"));
        let mut changed = changed;
        changed.sort();
        assert_eq!(changed, vec!["X-Existing", "X-Gone", "X-New"]);
    }

    #[test]
    fn wire_headers_are_canonical_without_host_and_keep_duplicates() {
        let mut h = HeaderMap::new();
        h.append("host", HeaderValue::from_static("a"));
        h.append("x-a", HeaderValue::from_static("1"));
        h.append("x-a", HeaderValue::from_static("2"));
        let w = wire_headers(&h);
        assert_eq!(w.len(), 1);
        assert_eq!(w["X-A"], vec!["1", "2"]);
    }
}
