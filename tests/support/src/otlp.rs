//! A test OTLP/HTTP receiver: a hyper server that decodes `POST /v1/traces` bodies (gzip or
//! not) with the same `opentelemetry-proto` message types the daemon encodes with, keeps every
//! span it accepted, and can answer a scripted list of statuses first (503, 503, then 200).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
pub use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use tokio::net::TcpListener;

/// One span as received, with its resource's attributes.
#[derive(Debug, Clone)]
pub struct Received {
    /// The span.
    pub span: Span,
    /// `service.name`, `host.name`… of its resource.
    pub resource: Vec<(String, Value)>,
}

impl Received {
    /// A span attribute.
    pub fn attr(&self, key: &str) -> Option<&Value> {
        self.span
            .attributes
            .iter()
            .find(|k| k.key == key)
            .and_then(|k| k.value.as_ref())
            .and_then(|v| v.value.as_ref())
    }

    /// A string attribute (`None` when absent or not a string).
    pub fn str(&self, key: &str) -> Option<&str> {
        match self.attr(key) {
            Some(Value::StringValue(s)) => Some(s),
            _ => None,
        }
    }

    /// An integer attribute.
    pub fn int(&self, key: &str) -> Option<i64> {
        match self.attr(key) {
            Some(Value::IntValue(i)) => Some(*i),
            _ => None,
        }
    }

    /// A float attribute.
    pub fn double(&self, key: &str) -> Option<f64> {
        match self.attr(key) {
            Some(Value::DoubleValue(f)) => Some(*f),
            _ => None,
        }
    }
}

#[derive(Default)]
struct State {
    script: VecDeque<u16>,
    /// Counting only (benchmarks): spans are counted, not kept.
    count_only: bool,
    counted: u64,
    /// Answer 503 to everything (a collector that is down).
    down: bool,
    /// When the first and the latest accepted request since [`OtlpReceiver::mark`] arrived.
    accepted: Option<(std::time::Instant, std::time::Instant)>,
    spans: Vec<Received>,
    requests: Vec<(u16, Vec<(String, String)>)>,
}

/// A running receiver.
#[derive(Clone)]
pub struct OtlpReceiver {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl OtlpReceiver {
    /// Starts on `ip:0`, answering `script` (statuses, in order) before answering 200.
    pub async fn start(ip: &str, script: &[u16]) -> OtlpReceiver {
        OtlpReceiver::start_with(ip, script, false).await
    }

    /// A receiver that only counts the spans it accepts (benchmarks: memory stays flat).
    pub async fn counting(ip: &str) -> OtlpReceiver {
        OtlpReceiver::start_with(ip, &[], true).await
    }

    async fn start_with(ip: &str, script: &[u16], count_only: bool) -> OtlpReceiver {
        let l = TcpListener::bind((ip, 0)).await.unwrap();
        let addr = l.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            script: script.iter().copied().collect(),
            count_only,
            ..Default::default()
        }));
        let st = state.clone();
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| handle(st.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(s), svc)
                        .await;
                });
            }
        });
        OtlpReceiver { addr, state }
    }

    /// `http://ADDR/v1/traces`.
    pub fn endpoint(&self) -> String {
        format!("http://{}/v1/traces", self.addr)
    }

    /// Every span accepted so far (duplicates included).
    pub fn spans(&self) -> Vec<Received> {
        self.state.lock().unwrap().spans.clone()
    }

    /// Spans accepted so far (duplicates included), in either mode.
    pub fn count(&self) -> u64 {
        self.state.lock().unwrap().counted
    }

    /// Answer 503 to every request (`true`) or serve again.
    pub fn set_down(&self, down: bool) {
        self.state.lock().unwrap().down = down;
    }

    /// Forgets when requests were accepted, so that [`OtlpReceiver::accepted_span`] covers
    /// what comes next.
    pub fn mark(&self) {
        self.state.lock().unwrap().accepted = None;
    }

    /// Time from the first to the latest request accepted since [`OtlpReceiver::mark`].
    pub fn accepted_span(&self) -> std::time::Duration {
        self.state
            .lock()
            .unwrap()
            .accepted
            .map_or(std::time::Duration::ZERO, |(a, b)| b - a)
    }

    /// Every request: the status answered and its headers.
    pub fn requests(&self) -> Vec<(u16, Vec<(String, String)>)> {
        self.state.lock().unwrap().requests.clone()
    }
}

async fn handle(
    st: Arc<Mutex<State>>,
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let gz = req
        .headers()
        .get("content-encoding")
        .is_some_and(|v| v == "gzip");
    let path_ok = req.uri().path() == "/v1/traces" && req.method() == hyper::Method::POST;
    let body = req.into_body().collect().await.map(|b| b.to_bytes());
    let answer = |status: u16, text: &str| {
        let mut r = hyper::Response::new(Full::new(Bytes::from(text.to_string())));
        *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
        r
    };
    let Ok(body) = body else {
        return Ok(answer(400, "cannot read body"));
    };
    let scripted = {
        let mut s = st.lock().unwrap();
        if s.down {
            Some(503)
        } else {
            s.script.pop_front()
        }
    };
    if let Some(code) = scripted {
        st.lock().unwrap().requests.push((code, headers));
        return Ok(answer(code, "scripted"));
    }
    if !path_ok {
        st.lock().unwrap().requests.push((404, headers));
        return Ok(answer(404, "not /v1/traces"));
    }
    let raw = if gz {
        let mut out = Vec::new();
        if flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .is_err()
        {
            return Ok(answer(400, "bad gzip"));
        }
        out
    } else {
        body.to_vec()
    };
    let Ok(decoded) = ExportTraceServiceRequest::decode(&raw[..]) else {
        st.lock().unwrap().requests.push((400, headers));
        return Ok(answer(400, "bad protobuf"));
    };
    let mut s = st.lock().unwrap();
    let now = std::time::Instant::now();
    s.accepted = Some(s.accepted.map_or((now, now), |(a, _)| (a, now)));
    if s.count_only {
        s.counted += decoded
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|ss| ss.spans.len() as u64)
            .sum::<u64>();
        return Ok(answer(200, ""));
    }
    for rs in decoded.resource_spans {
        let resource: Vec<(String, Value)> = rs
            .resource
            .iter()
            .flat_map(|r| r.attributes.iter())
            .filter_map(|k| Some((k.key.clone(), k.value.clone()?.value?)))
            .collect();
        for ss in rs.scope_spans {
            for span in ss.spans {
                s.counted += 1;
                s.spans.push(Received {
                    span,
                    resource: resource.clone(),
                });
            }
        }
    }
    s.requests.push((200, headers));
    Ok(answer(200, ""))
}
