//! One configured middleware: its connection loop (dial or spawn, hello, read decisions,
//! reconnect with jittered backoff) and [`Client::send`], which always comes back with a
//! decision — the middleware's, or a fallback chosen by `on_disconnect`.
//!
//! Hooks and filters come from the latest successful hello and are replaced by each new one
//! (greyproxy freezes them at startup). Until a first hello the client is "not ready" and the
//! cascade fails closed on its behalf (see `super::Middlewares::steps`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use greyproxy_protocol::middleware::{
    Decision, DecisionAction, DecodeError, MiddlewareHello, MiddlewareStatus, OnDisconnect,
    ProxyHello, VersionError, negotiate_version,
};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::filter::CompiledFilter;
use super::link::Link;

/// Malformed frames per connection logged as warnings before the rest go to debug.
const MALFORMED_LOGGED: u64 = 5;
/// After that, one warning with the count every this many.
const MALFORMED_EVERY: u64 = 10_000;

/// How long a middleware has to answer the proxy hello.
pub(crate) const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// Per-message timeout when none (or a non-positive one) is configured.
pub(crate) const DEFAULT_TIMEOUT_MS: u64 = 10_000;
/// First reconnect wait; doubled per failure up to [`BACKOFF_MAX`].
pub(crate) const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest reconnect wait (before jitter).
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// A connection that lived this long resets the backoff.
pub(crate) const HEALTHY: Duration = Duration::from_secs(5);

/// Opens one transport to the middleware (dials or spawns it); the error is what `last_error`
/// and the log show. A seam: tests put an in-process fake here.
pub(crate) type Dial = Arc<dyn Fn() -> BoxFuture<'static, Result<Link, String>> + Send + Sync>;
/// Random bits for the reconnect jitter (see [`jitter`]); tests make them fixed.
pub(crate) type Rand = fn() -> u64;

/// How the middleware is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// The daemon dials a WebSocket.
    Ws {
        /// `ws://` or `wss://` URL.
        url: String,
        /// One extra upgrade header.
        auth_header: Option<(String, String)>,
    },
    /// The daemon spawns a child and speaks NDJSON on its stdin/stdout.
    Stdio {
        /// Program and arguments (no shell).
        argv: Vec<String>,
        /// stderr log label: the configured name, else the program's basename.
        label: String,
    },
}

impl Endpoint {
    /// `ws` or `stdio`.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Endpoint::Ws { .. } => "ws",
            Endpoint::Stdio { .. } => "stdio",
        }
    }

    /// The endpoint string of logs and `list_middlewares`: the URL, or `stdio:<program>`.
    pub(crate) fn display(&self) -> String {
        match self {
            Endpoint::Ws { url, .. } => url.clone(),
            Endpoint::Stdio { argv, .. } => {
                format!("stdio:{}", argv.first().map_or("", String::as_str))
            }
        }
    }

    /// The URL stored on Activity events (empty for stdio, as greyproxy does).
    pub(crate) fn event_url(&self) -> &str {
        match self {
            Endpoint::Ws { url, .. } => url,
            Endpoint::Stdio { .. } => "",
        }
    }
}

/// Settings of one middleware.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Where it is.
    pub(crate) endpoint: Endpoint,
    /// Per-message timeout.
    pub(crate) timeout: Duration,
    /// What the proxy decides while the middleware cannot.
    pub(crate) on_disconnect: OnDisconnect,
}

impl ClientConfig {
    /// Whether the middleware fails open.
    pub(crate) fn fails_open(&self) -> bool {
        self.on_disconnect == OnDisconnect::Allow
    }
}

/// What the latest hello declared, compiled.
#[derive(Debug)]
pub(crate) struct Declared {
    /// Friendly name.
    pub(crate) name: String,
    /// Agreed protocol version.
    pub(crate) version: u32,
    /// `max_body_bytes` (≤ 0 = no limit).
    pub(crate) max_body_bytes: i64,
    /// Hook types as declared (shown in status).
    pub(crate) hook_types: Vec<String>,
    /// Request hooks with their filters, in declaration order.
    pub(crate) request: Vec<Arc<CompiledFilter>>,
    /// Response hooks with their filters.
    pub(crate) response: Vec<Arc<CompiledFilter>>,
}

/// The live part of one connection.
struct Conn {
    out: tokio::sync::mpsc::Sender<String>,
    pending: Mutex<HashMap<String, oneshot::Sender<Decision>>>,
    /// Frames that were not decisions, for rate-limited logging (a middleware flooding its
    /// stdout must not flood the daemon's log too).
    malformed: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
struct State {
    declared: Option<Arc<Declared>>,
    conn: Option<Arc<Conn>>,
    connected: bool,
    last_error: Option<String>,
    connects: u64,
    pid: Option<u32>,
}

/// Why the proxy decided on a middleware's behalf.
pub(crate) type FallbackReason = &'static str;

/// A decision and, when it is a fallback, why.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// The decision to apply.
    pub(crate) decision: Decision,
    /// `disconnected`, `write_error`, `timeout`, `marshal_error` — or `None` for a real one.
    pub(crate) fallback: Option<FallbackReason>,
}

/// One configured middleware.
pub(crate) struct Client {
    /// Settings.
    pub(crate) config: ClientConfig,
    state: Mutex<State>,
    ready_tx: watch::Sender<bool>,
    dial: Dial,
    rand: Rand,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.config.endpoint)
            .finish()
    }
}

/// Removes a pending entry when the waiting request goes away (cancelled or timed out).
struct PendingGuard<'a> {
    conn: &'a Conn,
    id: &'a str,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.conn
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(self.id);
    }
}

impl Client {
    /// A client that is not connected yet; [`Client::run`] connects it.
    pub(crate) fn new(config: ClientConfig, tls: Arc<rustls::ClientConfig>) -> Arc<Client> {
        let dial = transport(config.endpoint.clone(), tls);
        Client::with_transport(config, dial, random_u64)
    }

    /// A client whose transport and jitter come from the caller.
    fn with_transport(config: ClientConfig, dial: Dial, rand: Rand) -> Arc<Client> {
        let (ready_tx, _) = watch::channel(false);
        Arc::new(Client {
            config,
            state: Mutex::new(State::default()),
            ready_tx,
            dial,
            rand,
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What the latest hello declared (kept while disconnected), `None` before any hello.
    pub(crate) fn declared(&self) -> Option<Arc<Declared>> {
        self.state().declared.clone()
    }

    /// Waits until the client is ready or `limit` passes; returns readiness.
    pub(crate) async fn wait_ready(&self, limit: Duration) -> bool {
        let mut rx = self.ready_tx.subscribe();
        tokio::time::timeout(limit, rx.wait_for(|r| *r))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The fallback for a message when the middleware cannot answer.
    pub(crate) fn fallback(&self, id: &str, response: bool, reason: FallbackReason) -> Outcome {
        let open = self.config.fails_open();
        let (action, status) = match (response, open) {
            (false, true) => (DecisionAction::Allow, 0),
            (true, true) => (DecisionAction::Passthrough, 0),
            (false, false) => (DecisionAction::Deny, 403),
            (true, false) => (DecisionAction::Block, 502),
        };
        Outcome {
            decision: Decision {
                kind: "decision".into(),
                id: id.into(),
                action,
                status_code: status,
                ..Decision::default()
            },
            fallback: Some(reason),
        }
    }

    /// Sends one message (already JSON) and waits for its decision; never fails.
    pub(crate) async fn send(&self, id: &str, json: String, response: bool) -> Outcome {
        let Some(conn) = self.state().conn.clone() else {
            return self.fallback(id, response, "disconnected");
        };
        let (tx, rx) = oneshot::channel();
        conn.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string(), tx);
        let _guard = PendingGuard { conn: &conn, id };
        let timeout = self.config.timeout;
        match tokio::time::timeout(timeout, conn.out.send(json)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return self.fallback(id, response, "write_error"),
            Err(_) => return self.fallback(id, response, "timeout"),
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(decision)) => Outcome {
                decision,
                fallback: None,
            },
            Ok(Err(_)) => self.fallback(id, response, "disconnected"),
            Err(_) => self.fallback(id, response, "timeout"),
        }
    }

    /// The live status for `list_middlewares`.
    pub(crate) fn status(&self) -> MiddlewareStatus {
        let st = self.state();
        let d = st.declared.as_ref();
        MiddlewareStatus {
            url: self.config.endpoint.display(),
            kind: self.config.endpoint.kind().into(),
            command: match &self.config.endpoint {
                Endpoint::Stdio { argv, .. } => argv.clone(),
                Endpoint::Ws { .. } => Vec::new(),
            },
            name: d.map(|d| d.name.clone()).unwrap_or_default(),
            connected: st.connected,
            ready: st.conn.is_some(),
            protocol_version: d.map_or(0, |d| d.version),
            hooks: d.map(|d| d.hook_types.clone()).unwrap_or_default(),
            max_body_bytes: d.map_or(0, |d| d.max_body_bytes),
            timeout_ms: self.config.timeout.as_millis() as u64,
            on_disconnect: self.config.on_disconnect,
            last_error: st.last_error.clone(),
            connects: st.connects,
            pid: st.pid,
        }
    }

    /// Connects and reconnects until `stop`.
    pub(crate) async fn run(self: Arc<Self>, stop: CancellationToken) {
        // Connections in a row that ended before they were healthy.
        let mut failures = 0u32;
        let endpoint = self.config.endpoint.display();
        loop {
            let started = Instant::now();
            let err = self.connect_once(&stop).await;
            self.disconnected(err.clone());
            if stop.is_cancelled() {
                break;
            }
            let up = started.elapsed();
            if resets_backoff(up) {
                failures = 0;
            }
            let wait = jitter(backoff(failures), (self.rand)());
            tracing::warn!(
                "middleware {endpoint} disconnected (up {}): {} — reconnecting in {}",
                humantime::format_duration(Duration::from_millis(up.as_millis() as u64)),
                err.as_deref().unwrap_or("closed"),
                humantime::format_duration(Duration::from_millis(wait.as_millis() as u64)),
            );
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.cancelled() => break,
            }
            failures = failures.saturating_add(1);
        }
    }

    fn disconnected(&self, err: Option<String>) {
        let mut st = self.state();
        // Waiters hold the connection too: dropping their senders is what makes them fall
        // back at once (`disconnected`) instead of waiting out their timeout.
        if let Some(conn) = st.conn.take() {
            conn.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clear();
        }
        st.connected = false;
        st.pid = None;
        if err.is_some() {
            st.last_error = err;
        }
        drop(st);
        self.ready_tx.send_replace(false);
    }

    /// One connection: dial/spawn, hello, then decisions until the transport ends. Returns why
    /// it ended.
    async fn connect_once(&self, stop: &CancellationToken) -> Option<String> {
        let dialled = tokio::select! {
            l = (self.dial)() => l,
            _ = stop.cancelled() => return None,
        };
        let link = match dialled {
            Ok(l) => l,
            Err(e) => return Some(e),
        };
        {
            let mut st = self.state();
            st.connected = true;
            st.pid = link.pid;
        }
        let mut link = link;
        let end = tokio::select! {
            e = self.converse(&mut link) => e,
            _ = stop.cancelled() => "shutting down".into(),
        };
        // Waiters must not sit on a dead connection while the child is reaped.
        self.disconnected(Some(end.clone()));
        link.shutdown().await;
        Some(end)
    }

    async fn converse(&self, link: &mut Link) -> String {
        let hello = match serde_json::to_string(&ProxyHello::default()) {
            Ok(h) => h,
            Err(e) => return format!("hello encode: {e}"),
        };
        if link.out.send(hello).await.is_err() {
            return "transport closed before hello".into();
        }
        let first = match tokio::time::timeout(HELLO_TIMEOUT, link.inbound.recv()).await {
            Err(_) => return "no hello within 5 s".into(),
            Ok(None) => return "transport closed".into(),
            Ok(Some(Err(e))) => return e.to_string(),
            Ok(Some(Ok(frame))) => frame,
        };
        let declared = match self.accept_hello(&first) {
            Ok(d) => Arc::new(d),
            Err(e) => return e.to_string(),
        };
        tracing::info!(
            "middleware hello: name={} endpoint={} transport={} protocol=v{} hooks={} max_body_bytes={}",
            declared.name,
            self.config.endpoint.display(),
            self.config.endpoint.kind(),
            declared.version,
            declared.request.len() + declared.response.len(),
            declared.max_body_bytes,
        );
        let conn = Arc::new(Conn {
            out: link.out.clone(),
            pending: Mutex::new(HashMap::new()),
            malformed: std::sync::atomic::AtomicU64::new(0),
        });
        {
            let mut st = self.state();
            st.declared = Some(declared);
            st.conn = Some(conn.clone());
            st.connects += 1;
            st.last_error = None;
        }
        self.ready_tx.send_replace(true);
        loop {
            match link.inbound.recv().await {
                None => return "transport closed".into(),
                Some(Err(e)) => return e.to_string(),
                Some(Ok(frame)) => deliver(&conn, &frame, &self.config.endpoint),
            }
        }
    }

    fn accept_hello(&self, frame: &[u8]) -> Result<Declared, HelloError> {
        let h = MiddlewareHello::decode(frame).map_err(HelloError::Parse)?;
        if h.kind != "hello" {
            return Err(HelloError::Type(h.kind));
        }
        let version = negotiate_version(h.min_version, h.max_version)?;
        let mut request = Vec::new();
        let mut response = Vec::new();
        for hook in &h.hooks {
            let f = Arc::new(CompiledFilter::new(hook.filters.as_ref()));
            match hook.kind.as_str() {
                "http-request" => request.push(f),
                "http-response" => response.push(f),
                other => tracing::debug!("middleware hook type {other:?} ignored"),
            }
        }
        Ok(Declared {
            name: h.name,
            version,
            max_body_bytes: h.max_body_bytes,
            hook_types: h.hooks.iter().map(|h| h.kind.clone()).collect(),
            request,
            response,
        })
    }
}

/// Why a middleware's hello was refused.
#[derive(Debug, thiserror::Error)]
enum HelloError {
    /// Not a decodable hello.
    #[error("hello parse: {0}")]
    Parse(DecodeError),
    /// `type` other than `hello`.
    #[error("hello: unexpected type {0:?}")]
    Type(String),
    /// No common protocol version.
    #[error(transparent)]
    Version(#[from] VersionError),
}

/// Routes one inbound frame to its waiter.
fn deliver(conn: &Conn, frame: &[u8], endpoint: &Endpoint) {
    let d = match Decision::decode(frame) {
        Ok(d) => d,
        Err(e) => {
            let n = conn
                .malformed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                + 1;
            let ep = endpoint.display();
            if n <= MALFORMED_LOGGED {
                tracing::warn!("middleware {ep}: malformed frame, skipping: {e}");
                if n == MALFORMED_LOGGED {
                    tracing::warn!(
                        "middleware {ep}: further malformed frames are logged at debug, with a count every {MALFORMED_EVERY}"
                    );
                }
            } else if n.is_multiple_of(MALFORMED_EVERY) {
                tracing::warn!("middleware {ep}: {n} malformed frames skipped so far");
            } else {
                tracing::debug!("middleware {ep}: malformed frame, skipping: {e}");
            }
            return;
        }
    };
    let waiter = conn
        .pending
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&d.id);
    match waiter {
        Some(w) => {
            let _ = w.send(d);
        }
        None => tracing::debug!(
            "middleware {}: decision for unknown id {:?} (late response or duplicate)",
            endpoint.display(),
            d.id
        ),
    }
}

/// The real transports: a WebSocket dial or a child spawn, per `endpoint`.
fn transport(endpoint: Endpoint, tls: Arc<rustls::ClientConfig>) -> Dial {
    Arc::new(move || {
        let (endpoint, tls) = (endpoint.clone(), tls.clone());
        Box::pin(async move {
            match &endpoint {
                Endpoint::Ws { url, auth_header } => {
                    super::wsdial::dial(url, auth_header.as_ref(), tls)
                        .await
                        .map_err(|e| e.to_string())
                }
                Endpoint::Stdio { argv, label } => super::stdio::spawn(argv, label)
                    .map_err(|e| format!("spawn {}: {e}", argv.join(" "))),
            }
        })
    })
}

/// The reconnect wait (before jitter) after `failures` connections in a row that ended
/// before they were healthy: [`BACKOFF_MIN`], doubled per failure, at most [`BACKOFF_MAX`].
pub(crate) fn backoff(failures: u32) -> Duration {
    BACKOFF_MIN
        .saturating_mul(2u32.saturating_pow(failures))
        .min(BACKOFF_MAX)
}

/// Whether a connection that stayed up for `up` starts the backoff over.
pub(crate) fn resets_backoff(up: Duration) -> bool {
    up >= HEALTHY
}

/// `b` ± up to 20 % (greyproxy's jitter), chosen by the random bits `r`: the lowest bit picks
/// the sign, the others the amount, so uniformly random `r` gives a uniform jitter.
pub(crate) fn jitter(b: Duration, r: u64) -> Duration {
    let ms = b.as_millis() as u64;
    if ms == 0 {
        return b;
    }
    let span = (ms / 5).max(1);
    let j = (r >> 1) % span;
    let out = if r & 1 == 0 { ms - j } else { ms + j };
    Duration::from_millis(out)
}

/// Uniformly random bits for [`jitter`].
fn random_u64() -> u64 {
    let mut r = [0u8; 8];
    let _ = getrandom::fill(&mut r);
    u64::from_le_bytes(r)
}

/// A fresh message id: 16 random bytes as 32 lowercase hex characters.
pub(crate) fn message_id() -> String {
    let mut b = [0u8; 16];
    let _ = getrandom::fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod timing_tests;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn jitter_is_twenty_percent_either_way_chosen_by_the_random_bits() {
        let s = Duration::from_millis(1000);
        // Lowest bit: sign; the rest: amount modulo a fifth of the wait.
        assert_eq!(jitter(s, 0), s);
        assert_eq!(jitter(s, 1), s);
        assert_eq!(jitter(s, 199 << 1), Duration::from_millis(801));
        assert_eq!(jitter(s, (199 << 1) | 1), Duration::from_millis(1199));
        assert_eq!(jitter(s, 200 << 1), s);
        assert_eq!(jitter(Duration::from_millis(100), 19 << 1).as_millis(), 81);
        assert_eq!(jitter(Duration::from_millis(3), u64::MAX).as_millis(), 3);
        assert_eq!(jitter(Duration::ZERO, u64::MAX), Duration::ZERO);
        for _ in 0..200 {
            let j = jitter(s, random_u64()).as_millis();
            assert!((801..=1199).contains(&j), "{j}");
        }
    }

    #[test]
    fn backoff_doubles_from_100_ms_to_2_s_and_resets_after_5_s_up() {
        let ms: Vec<u128> = (0..8).map(|f| backoff(f).as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1600, 2000, 2000, 2000]);
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
        assert!(!resets_backoff(Duration::from_millis(4999)));
        assert!(resets_backoff(Duration::from_secs(5)));
        assert!(resets_backoff(Duration::from_secs(60)));
    }

    #[test]
    fn ids_are_32_lowercase_hex_and_unique() {
        let ids: std::collections::HashSet<String> = (0..100).map(|_| message_id()).collect();
        assert_eq!(ids.len(), 100);
        assert!(ids.iter().all(|i| {
            i.len() == 32
                && i.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        }));
    }
}
