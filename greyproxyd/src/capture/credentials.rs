//! The exchange's credentials stage (docs/credentials.md), between the middlewares' request
//! cascade and the upstream: find the placeholders a request carries, substitute the ones
//! whose binding holds, and hold the request for a human when one does not (secret egress).
//!
//! Substitution applies only to the copy that goes upstream ([`Injection::apply`], called by
//! the upstream stage after it took the record's copy of the headers and while it tees the
//! body), so captures, logs and events keep the placeholder. The response to a request with
//! secrets in it is scrubbed on its way back ([`super::scrub`]).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use greyproxy_protocol::credentials::CredentialEgress;
use http::{HeaderValue, Request, StatusCode, Uri, header, request::Parts};
use http_body_util::BodyExt;

use super::exchange::ExchangeMeta;
use crate::credentials::bind::{Target, Transport};
use crate::credentials::holds::{HeldRequest, Resolution};
use crate::credentials::plan::Plan;
use crate::credentials::scan::{PlaceKind, Scan};
use crate::credentials::service::Service;
use crate::credentials::substitute::{self, Scrubber};
use crate::credentials::wire::found_in;
use crate::http::{Body, full};
use crate::time::now_secs;

/// What the upstream stage does to the request: the substitutions, and the body they apply
/// to when one is substituted.
#[derive(Debug)]
pub(crate) struct Injection {
    plan: Plan,
    /// The whole request body, read for a body substitution.
    body: Option<Bytes>,
    service: Arc<Service>,
}

/// Why the stage answered itself instead of letting the request go.
pub(crate) struct Refused {
    /// The proxy's answer (403).
    pub(crate) status: StatusCode,
    /// Its text.
    pub(crate) message: String,
}

/// Is a body of this content type one a credential can be substituted in?
fn body_kind(req: &Request<Body>) -> Option<PlaceKind> {
    let ct = req.headers().get(header::CONTENT_TYPE)?.to_str().ok()?;
    let ct = ct.to_ascii_lowercase();
    if ct.starts_with("application/json") || ct.contains("+json") {
        Some(PlaceKind::JsonBody)
    } else if ct.starts_with("application/x-www-form-urlencoded") {
        Some(PlaceKind::FormBody)
    } else {
        None
    }
}

/// The declared length, when it is at most `cap`.
fn small_length(req: &Request<Body>, cap: usize) -> bool {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n <= cap)
}

/// Runs the stage. `Ok` is the request to send with what to inject into it (`None`: no
/// placeholder, or none to substitute); `Err` is the proxy's refusal.
pub(crate) async fn stage(
    service: &Arc<Service>,
    meta: &ExchangeMeta,
    req: Request<Body>,
    body_cap: usize,
    hold_timeout: Duration,
) -> Result<(Request<Body>, Option<Injection>), (Request<Body>, Refused)> {
    let mut scan = Scan::default();
    scan.headers(req.headers());
    if let Some(q) = req.uri().query() {
        scan.query(q);
    }
    // Bodies are read only when a credential substitutes in them, and only when they are
    // small enough to hold (declared length within the capture cap): a placeholder in any
    // other body goes out unchanged, which sends no secret anywhere.
    let mut body = None;
    let mut req = req;
    if service.any_body_places()
        && let Some(kind) = body_kind(&req)
        && small_length(&req, body_cap)
    {
        let (parts, b) = req.into_parts();
        let bytes = match b.collect().await {
            Ok(c) => c.to_bytes(),
            Err(e) => {
                let req = Request::from_parts(parts, full(Bytes::new()));
                return Err((
                    req,
                    Refused {
                        status: StatusCode::BAD_REQUEST,
                        message: format!("greyproxy: cannot read the request body: {e}\n"),
                    },
                ));
            }
        };
        match kind {
            PlaceKind::JsonBody => scan.json_body(&bytes, body_cap),
            _ => scan.form_body(&bytes, body_cap),
        }
        req = Request::from_parts(parts, full(bytes.clone()));
        body = Some(bytes);
    }
    if scan.is_empty() {
        return Ok((req, None));
    }
    let path = req.uri().path().to_string();
    let method = req.method().as_str().to_string();
    let target = Target {
        host: &meta.host,
        port: meta.port,
        path: &path,
        method: &method,
        container: &meta.container,
        transport: if meta.scheme == "https" {
            Transport::InterceptedTls
        } else {
            Transport::PlainHttp
        },
    };
    let mut plan = service.plan(&scan, &target, now_secs());
    if !plan.egress.is_empty() {
        match hold(service, meta, &plan, &method, &path, hold_timeout).await {
            Some(Resolution::Send { with_secret: true }) => {
                // A `bind` may have made the destination a bound one: decide again, then
                // send what is still held with its secret this once.
                plan = service.plan(&scan, &target, now_secs());
                service.force(&mut plan);
                plan.egress.clear();
            }
            Some(Resolution::Send { with_secret: false }) => plan.egress.clear(),
            Some(Resolution::Refuse { reason }) => {
                return Err((
                    req,
                    Refused {
                        status: StatusCode::FORBIDDEN,
                        message: format!("greyproxy: credential refused: {reason}\n"),
                    },
                ));
            }
            None => {
                return Err((
                    req,
                    Refused {
                        status: StatusCode::FORBIDDEN,
                        message: format!(
                            "greyproxy: credential refused: a placeholder was held for a \
                             decision that did not come within {} s (or the daemon is \
                             stopping)\n",
                            hold_timeout.as_secs()
                        ),
                    },
                ));
            }
        }
    }
    if plan.subs.is_empty() {
        return Ok((req, None));
    }
    Ok((
        req,
        Some(Injection {
            plan,
            body,
            service: service.clone(),
        }),
    ))
}

/// Holds the request as secret egress and waits for the decision.
async fn hold(
    service: &Arc<Service>,
    meta: &ExchangeMeta,
    plan: &Plan,
    method: &str,
    path: &str,
    timeout: Duration,
) -> Option<Resolution> {
    let first = plan.egress.first()?;
    let mut credentials: Vec<String> = plan
        .egress
        .iter()
        .filter_map(|e| e.credential.clone())
        .collect();
    credentials.dedup();
    let mut sessions: Vec<String> = plan
        .egress
        .iter()
        .filter_map(|e| e.session.clone())
        .collect();
    sessions.dedup();
    let egress = CredentialEgress {
        label: first.label.clone(),
        session_id: first.session.clone(),
        request: format!(
            "{method} {}://{}:{}{path}",
            meta.scheme, meta.host, meta.port
        ),
        found_in: found_in(first.place),
        name: first.name.clone(),
        reason: first.reason.to_string(),
    };
    let request = HeldRequest {
        container: meta.container.clone(),
        host: meta.host.clone(),
        port: meta.port,
        credentials,
        sessions,
        reason: first.reason.to_string(),
    };
    let mut ticket = service.hold(request, egress);
    ticket.wait(timeout).await
}

impl Injection {
    /// Substitutes into the head that goes upstream (headers, query), and returns the body to
    /// send instead of the original when a body substitution applies. Asks the origin for an
    /// identity response (so that an echo can be scrubbed) and counts the substitutions.
    pub(crate) fn apply(&self, parts: &mut Parts) -> Option<Bytes> {
        let pairs = self.plan.pairs(PlaceKind::Header);
        if !pairs.is_empty() {
            substitute::headers(&mut parts.headers, &pairs);
        }
        let pairs = self.plan.pairs(PlaceKind::Query);
        if !pairs.is_empty()
            && let Some(q) = parts.uri.query()
            && let Some(new) = substitute::query(q, &pairs)
        {
            let pq = format!("{}?{new}", parts.uri.path());
            let mut uri = parts.uri.clone().into_parts();
            if let Ok(pq) = pq.parse() {
                uri.path_and_query = Some(pq);
                if let Ok(u) = Uri::from_parts(uri) {
                    parts.uri = u;
                }
            }
        }
        parts.headers.remove(header::ACCEPT_ENCODING);
        let mut new_body = None;
        if let Some(body) = &self.body {
            let json = self.plan.pairs(PlaceKind::JsonBody);
            let form = self.plan.pairs(PlaceKind::FormBody);
            let out = if !json.is_empty() {
                substitute::json_body(body, &json)
            } else if !form.is_empty() {
                substitute::form_body(body, &form)
            } else {
                None
            };
            if let Some(out) = out {
                parts
                    .headers
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(out.len()));
                new_body = Some(Bytes::from(out));
            }
        }
        for s in &self.plan.subs {
            self.service.count(&s.session, &s.credential);
        }
        new_body
    }

    /// The echo scrub of the response: every substituted secret back to its placeholder.
    pub(crate) fn scrubber(&self) -> Scrubber {
        let pairs: Vec<_> = self
            .plan
            .subs
            .iter()
            .map(|s| (s.placeholder.as_str(), &s.secret))
            .collect();
        Scrubber::new(&pairs)
    }
}
