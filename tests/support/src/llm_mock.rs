//! A mock LLM origin for the agent tests: real TLS (a leaf from a test CA it generates, for
//! `api.anthropic.com`, `api.openai.com`, `openrouter.ai`, its IP and any extra name) on one
//! loopback IP, answering what the real agent CLIs call:
//!
//! * Anthropic `POST /v1/messages` (query ignored): SSE when `stream` is true (message_start
//!   with usage, thinking / text / tool_use blocks with `input_json_delta` chunks,
//!   message_delta with the stop reason and cumulative usage, message_stop), JSON otherwise;
//!   `POST /v1/messages/count_tokens`.
//! * OpenAI Responses over the WebSocket at `/v1/responses` (`response.create` → events, one
//!   message each; `generate: false` warm-ups get created + completed and no script call) and
//!   over HTTPS (`POST /v1/responses`, SSE or JSON). With [`LlmMockBuilder::websocket`] off,
//!   upgrades are refused with 426 and clients fall back to HTTPS.
//! * Chat Completions `POST /v1/chat/completions` (or any path ending so, like OpenRouter's
//!   `/api/v1/chat/completions`), JSON or SSE (usage chunk when
//!   `stream_options.include_usage`).
//! * `GET /v1/models`: an empty list. Anything else, Claude Code's side calls
//!   (`GET /api/claude_code/settings`, `GET /api/claude_code/policy_limits`) included: 404 with
//!   an Anthropic-style error body. Claude Code proceeds after a 404 and asks each once; after
//!   a 200 `{}` it asks `policy_limits` again and again.
//!
//! A [`Script`] decides each answer; every request (and every WebSocket message from the
//! client) is recorded ([`LlmMock::requests`]) with its headers and body, and every answered
//! call with its answer ([`LlmMock::answered`]).
//!
//! The mock listens on port 443 when it may (agents dial the API host on 443 and the daemon's
//! host map only changes the address); where binding 443 is refused it takes a free port, and
//! tests must then point the agents at it ([`LlmMock::port`]).

mod anthropic;
mod openai;
pub mod script;
pub mod through;
mod ws;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::net::TcpListener;

pub use script::{
    Answer, Api, CLAUDE_MODEL, Call, MockUsage, OPENAI_MODEL, Script, ToolCall, Transport,
    UNKNOWN_MODEL, always, tool_then_text,
};

use crate::tls::{TestCa, server_config};

/// The API host names the mock's certificate always covers.
pub const API_HOSTS: [&str; 3] = ["api.anthropic.com", "api.openai.com", "openrouter.ai"];

/// Largest request body the mock reads (agents send whole conversations, never this much).
const MAX_BODY: usize = 32 * 1024 * 1024;

/// One request (or client WebSocket message) as the mock received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Method (`WS` for a WebSocket message).
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The host the client named (`:authority` over HTTP/2, else `Host`).
    pub authority: String,
    /// Headers in arrival order, names lower case (for a WebSocket message: its upgrade's).
    pub headers: Vec<(String, String)>,
    /// The body (a WebSocket message's text).
    pub body: Vec<u8>,
    /// HTTP request or WebSocket message.
    pub transport: Transport,
}

impl Recorded {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// One SSE event or WebSocket message: `event:` name (none for Chat Completions) and data.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    name: Option<&'static str>,
    data: Value,
}

impl Event {
    fn sse(&self) -> String {
        match self.name {
            Some(n) => format!("event: {n}\ndata: {}\n\n", self.data),
            None => format!("data: {}\n\n", self.data),
        }
    }
}

/// `s` cut into at most `n` non-empty pieces on char boundaries (none for an empty `s`).
pub(crate) fn pieces(s: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    if chars.is_empty() {
        return Vec::new();
    }
    let size = chars.len().div_ceil(n.max(1));
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

/// How to start a mock.
pub struct LlmMockBuilder {
    ip: String,
    names: Vec<String>,
    websocket: bool,
    script: Script,
}

impl std::fmt::Debug for LlmMockBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmMockBuilder")
            .field("ip", &self.ip)
            .field("names", &self.names)
            .field("websocket", &self.websocket)
            .finish()
    }
}

impl LlmMockBuilder {
    /// Extra names for the certificate.
    pub fn names(mut self, names: &[&str]) -> LlmMockBuilder {
        self.names.extend(names.iter().map(|s| s.to_string()));
        self
    }

    /// Whether `/v1/responses` accepts WebSocket upgrades (default true).
    pub fn websocket(mut self, on: bool) -> LlmMockBuilder {
        self.websocket = on;
        self
    }

    /// The script deciding the answers (default: a short text).
    pub fn script(mut self, script: Script) -> LlmMockBuilder {
        self.script = script;
        self
    }

    /// Starts listening (port 443 when allowed, else a free port).
    pub async fn start(self) -> LlmMock {
        let listener = match TcpListener::bind((self.ip.as_str(), 443)).await {
            Ok(l) => l,
            Err(_) => TcpListener::bind((self.ip.as_str(), 0)).await.unwrap(),
        };
        let addr = listener.local_addr().unwrap();
        let ca = TestCa::new("greyproxy test LLM origin CA");
        let mut names: Vec<&str> = API_HOSTS.to_vec();
        names.push(&self.ip);
        names.extend(self.names.iter().map(String::as_str));
        let tls =
            tokio_rustls::TlsAcceptor::from(server_config(&ca.leaf(&names), &[b"h2", b"http/1.1"]));
        let shared = Arc::new(Shared {
            script: self.script,
            websocket: self.websocket,
            recorded: Mutex::default(),
            answered: Mutex::default(),
            seq: AtomicU64::new(1),
        });
        let me = shared.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (tls, me) = (tls.clone(), me.clone());
                tokio::spawn(async move {
                    let Ok(Ok(s)) =
                        tokio::time::timeout(Duration::from_secs(10), tls.accept(tcp)).await
                    else {
                        return;
                    };
                    let h2 = s.get_ref().1.alpn_protocol() == Some(b"h2");
                    let svc = service_fn(move |req| {
                        let me = me.clone();
                        async move { Ok::<_, Infallible>(me.handle(req).await) }
                    });
                    let io = TokioIo::new(s);
                    if h2 {
                        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                            .serve_connection(io, svc)
                            .await;
                    } else {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, svc)
                            .with_upgrades()
                            .await;
                    }
                });
            }
        });
        LlmMock { addr, ca, shared }
    }
}

/// What the connections share.
pub(crate) struct Shared {
    script: Script,
    websocket: bool,
    recorded: Mutex<Vec<Recorded>>,
    answered: Mutex<Vec<(Call, Answer)>>,
    seq: AtomicU64,
}

/// A response body: whole, or streamed event by event.
pub(crate) type Body = BoxBody<Bytes, Infallible>;

fn full(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .body(Full::new(body.into()).boxed())
        .unwrap()
}

fn json_response(status: StatusCode, v: &Value) -> Response<Body> {
    full(status, "application/json", v.to_string())
}

/// Streams `events` as SSE, `delay` apart, closing with `tail` (Chat's `data: [DONE]`).
fn sse_response(events: Vec<Event>, delay: Duration, tail: Option<&'static str>) -> Response<Body> {
    let mut chunks: Vec<String> = events.iter().map(Event::sse).collect();
    chunks.extend(tail.map(str::to_string));
    let stream = futures_util::stream::unfold(
        (chunks.into_iter(), true),
        move |(mut it, first)| async move {
            let next = it.next()?;
            if !first && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Some((
                Ok::<_, Infallible>(Frame::data(Bytes::from(next))),
                (it, false),
            ))
        },
    );
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(BodyExt::boxed(StreamBody::new(stream)))
        .unwrap()
}

impl Shared {
    fn record(&self, r: Recorded) {
        self.recorded.lock().unwrap().push(r);
    }

    /// Asks the script for the answer to a call of `api` and remembers both; returns the
    /// answer and the call's sequence number (for ids).
    pub(crate) fn answer(
        &self,
        api: Api,
        transport: Transport,
        body: Value,
    ) -> (Call, Answer, u64) {
        let seq = self.seq.fetch_add(1, Ordering::SeqCst);
        let index = self
            .answered
            .lock()
            .unwrap()
            .iter()
            .filter(|(c, _)| c.api == api)
            .count();
        let call = Call {
            api,
            transport,
            body,
            index,
        };
        let answer = (self.script)(&call);
        self.answered
            .lock()
            .unwrap()
            .push((call.clone(), answer.clone()));
        (call, answer, seq)
    }

    pub(crate) fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::SeqCst)
    }

    async fn handle(self: Arc<Self>, mut req: Request<Incoming>) -> Response<Body> {
        let method = req.method().as_str().to_string();
        let path_q = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default();
        let path = req.uri().path().to_string();
        let authority = req
            .uri()
            .authority()
            .map(|a| a.as_str().to_string())
            .or_else(|| {
                req.headers()
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_string)
            })
            .unwrap_or_default();
        let headers: Vec<(String, String)> = req
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let is_upgrade = req
            .headers()
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
        if is_upgrade {
            self.record(Recorded {
                method,
                path: path_q,
                authority: authority.clone(),
                headers: headers.clone(),
                body: Vec::new(),
                transport: Transport::Http,
            });
            if path != "/v1/responses" || !self.websocket {
                return json_response(
                    StatusCode::UPGRADE_REQUIRED,
                    &json!({"error":{"type":"invalid_request_error",
                                     "message":"mock: WebSocket not offered here"}}),
                );
            }
            return ws::accept(self.clone(), &mut req, authority, headers);
        }
        let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
            Ok(b) => b.to_bytes().to_vec(),
            Err(_) => return full(StatusCode::PAYLOAD_TOO_LARGE, "text/plain", "too large"),
        };
        self.record(Recorded {
            method: method.clone(),
            path: path_q,
            authority,
            headers,
            body: body.clone(),
            transport: Transport::Http,
        });
        let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        match (method.as_str(), path.as_str()) {
            ("POST", "/v1/messages") => {
                let (call, a, seq) = self.answer(Api::AnthropicMessages, Transport::Http, parsed);
                if call.stream() {
                    sse_response(anthropic::sse_events(&call, &a, seq), a.chunk_delay, None)
                } else {
                    json_response(StatusCode::OK, &anthropic::json_body(&call, &a, seq))
                }
            }
            ("POST", "/v1/messages/count_tokens") => {
                json_response(StatusCode::OK, &json!({"input_tokens": 42}))
            }
            ("POST", "/v1/responses") => {
                let (call, a, seq) = self.answer(Api::OpenAiResponses, Transport::Http, parsed);
                if call.stream() {
                    sse_response(openai::response_events(&call, &a, seq), a.chunk_delay, None)
                } else {
                    json_response(StatusCode::OK, &openai::response_json(&call, &a, seq))
                }
            }
            ("POST", p) if p.ends_with("/chat/completions") => {
                let (call, a, seq) = self.answer(Api::ChatCompletions, Transport::Http, parsed);
                if call.stream() {
                    let chunks = openai::chat_chunks(&call, &a, seq);
                    sse_response(chunks, a.chunk_delay, Some("data: [DONE]\n\n"))
                } else {
                    json_response(StatusCode::OK, &openai::chat_json(&call, &a, seq))
                }
            }
            ("GET", "/v1/models") => json_response(
                StatusCode::OK,
                &json!({"object":"list","data":[],"models":[]}),
            ),
            _ => json_response(
                StatusCode::NOT_FOUND,
                &json!({"error":{"type":"not_found_error","message":"mock: no such route"}}),
            ),
        }
    }
}

/// A running mock; it stops with the test's runtime.
pub struct LlmMock {
    /// Where it listens.
    pub addr: SocketAddr,
    ca: TestCa,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for LlmMock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmMock").field("addr", &self.addr).finish()
    }
}

impl LlmMock {
    /// A mock on `ip` (a loopback address of the test's own) answering with a short text,
    /// WebSocket on.
    pub fn builder(ip: &str) -> LlmMockBuilder {
        LlmMockBuilder {
            ip: ip.to_string(),
            names: Vec::new(),
            websocket: true,
            script: always(Answer::text("Hello from the mock.")),
        }
    }

    /// The IP it listens on.
    pub fn ip(&self) -> String {
        self.addr.ip().to_string()
    }

    /// The port: 443 unless binding it was refused.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The CA its certificate comes from (PEM file, for the daemon's `--upstream-ca`).
    pub fn ca_pem(&self) -> &Path {
        self.ca.pem_path()
    }

    /// Every request and client WebSocket message so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.recorded.lock().unwrap().clone()
    }

    /// Every call the script answered, with its answer.
    pub fn answered(&self) -> Vec<(Call, Answer)> {
        self.shared.answered.lock().unwrap().clone()
    }
}

#[cfg(test)]
mod tests;
