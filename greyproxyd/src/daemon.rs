//! `greyproxyd serve`: opens the state, binds the listeners, runs the front ends, the control
//! server and the notifier, tells the service manager when it is ready, reloads its config on
//! SIGHUP, and shuts down gracefully on SIGINT/SIGTERM (holds end blocked, open tunnels get
//! `shutdown_grace` to finish, the store is flushed).

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use greyproxy_protocol::{AllowAllMode, Event, Listeners};
use serde::Serialize;
use tokio::net::TcpListener;

use crate::capture::exchange::{CaptureCtx, ExchangeEnv};
use crate::capture::recorder::Recorder;
use crate::config::{ServeConfig, ensure_state_dir};
use crate::control::auth::{ControlAuth, ensure_token, token_path};
use crate::control::server::{self, AuthMode};
use crate::control::{Claims, Handler};
use crate::events::EventBus;
use crate::lifecycle::{self, Request, Signals};
use crate::live::{Live, LiveCell};
use crate::middleware::Middlewares;
use crate::mitm::ca;
use crate::mitm::intercept::MitmCtx;
use crate::mitm::reload::MitmCerts;
use crate::mitm::upstream::UpstreamTls;
use crate::policy::Policy;
use crate::proxy::dns::{DnsCache, DnsListener, Forwarder};
use crate::proxy::tunnel::ProxyCtx;
use crate::proxy::{http, socks};
use crate::reload::Reloader;
use crate::shutdown::Shutdown;
use crate::store::{Store, spawn_log_writer, spawn_transaction_writer};

mod llm;

/// File in the state dir describing the running daemon (addresses, pid), so that clients and
/// tests find it even when it listens on non-default or `0` ports. Removed on clean exit.
pub const RUNTIME_FILE: &str = "daemon.json";

/// Contents of [`RUNTIME_FILE`].
#[derive(Debug, Serialize)]
struct Runtime<'a> {
    pid: u32,
    version: &'a str,
    listeners: &'a Listeners,
}

/// Transactions queued for the writer at most (WebSocket bursts are many small rows).
const TX_QUEUE_ROWS: usize = 16_384;
/// Body bytes queued for the writer at most; beyond it rows are stored without bodies.
const TX_QUEUE_BYTES: u64 = 256 * 1024 * 1024;

/// Name of the redb file in the state dir.
pub const STORE_FILE: &str = "greyproxy.redb";

async fn bind(addr: std::net::SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} ({what})"))
}

fn warn_if_public(addr: std::net::SocketAddr, what: &str) {
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "{what} listens beyond loopback: anyone who can reach it can use it");
    }
}

/// Runs the daemon until SIGINT/SIGTERM, reloading its config on SIGHUP.
pub async fn run(cfg: ServeConfig) -> anyhow::Result<()> {
    lifecycle::raise_fd_limit();
    let mut signals = Signals::install().context("cannot install signal handlers")?;
    let daemon = build(cfg).await?;
    let reloader = daemon.reloader();
    let listeners = daemon.listeners.clone();
    let until = async move {
        while signals.next().await == Request::Reload {
            lifecycle::notify_reloading();
            match reloader.reload() {
                Ok(summary) => {
                    tracing::info!("{summary}");
                    lifecycle::notify_reloaded(&lifecycle::status_line(&listeners));
                }
                Err(e) => {
                    let error = format!("{e:#}");
                    tracing::error!(%error, "config reload failed; keeping the previous settings");
                    lifecycle::notify_reloaded("config reload failed; previous settings kept");
                }
            }
        }
    };
    daemon.serve(until).await
}

/// A daemon whose state is open and whose listeners are bound, not serving yet: what
/// [`build`] returns and [`Daemon::serve`] runs. Tests run one in-process with port 0 and read
/// the real addresses from [`Daemon::listeners`].
pub struct Daemon {
    cfg: ServeConfig,
    /// Where it listens (the real ports when 0 was asked).
    pub listeners: Listeners,
    shutdown: Shutdown,
    policy: Arc<Policy>,
    events: Arc<EventBus>,
    mitm: Arc<MitmCtx>,
    middlewares: Arc<Middlewares>,
    dns_cache: Arc<DnsCache>,
    claims: Claims,
    handler: Arc<Handler>,
    auth: AuthMode,
    control: TcpListener,
    control_socket: Option<crate::control::unix::ControlSocket>,
    http: Option<TcpListener>,
    socks: Option<TcpListener>,
    dns: Option<(DnsListener, Arc<Forwarder>)>,
    endpoint_rules: Option<Arc<crate::dissect::rules::EndpointRules>>,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("listeners", &self.listeners)
            .finish_non_exhaustive()
    }
}

/// Opens the state (token, store, CA), binds every listener and wires the parts together.
/// Nothing is served until [`Daemon::serve`].
pub async fn build(cfg: ServeConfig) -> anyhow::Result<Daemon> {
    let started = Instant::now();
    ensure_state_dir(&cfg.state_dir)?;
    let auth = if cfg.control_auth == ControlAuth::Token {
        ensure_token(&cfg.state_dir).with_context(|| {
            format!("cannot create control token in {}", cfg.state_dir.display())
        })?;
        AuthMode::Token(token_path(&cfg.state_dir))
    } else {
        tracing::warn!("control.auth = \"none\": any local process can drive the daemon");
        AuthMode::None
    };
    let store_path = cfg.state_dir.join(STORE_FILE);
    let store = Arc::new(
        tokio::task::spawn_blocking(move || Store::open(&store_path))
            .await
            .context("store task")??,
    );
    let events = Arc::new(EventBus::new());
    let log_events = events.clone();
    let logs = spawn_log_writer(
        store.clone(),
        8192,
        cfg.log_retention,
        Box::new(move |r| log_events.publish(Event::RequestLogNew(r.to_wire()))),
    );
    let live = LiveCell::new(
        Live::new(
            cfg.mitm_bypass.clone(),
            cfg.redact_headers.clone(),
            cfg.llm_rules.clone(),
            cfg.hold_timeout,
        )?
        .with_hosts(cfg.host_map.clone()),
    );
    if !cfg.host_map.is_empty() {
        tracing::info!(
            names = cfg.host_map.len(),
            "host map: mapped names are dialled at their fixed address"
        );
    }
    let policy = Policy::new(store.clone(), events.clone(), logs, live.clone())?;
    let credentials = {
        let (store, events, dir) = (store.clone(), events.clone(), cfg.state_dir.clone());
        Arc::new(
            tokio::task::spawn_blocking(move || {
                crate::credentials::service::Service::open(store, events, &dir)
            })
            .await
            .context("credentials task")?,
        )
    };
    policy.set_credentials(credentials.clone());
    let shutdown = Shutdown::new();
    let llm = llm::start(&cfg, &store, &events, &policy, &live)?;
    let mitm = build_mitm(
        &cfg,
        &store,
        &events,
        (&policy, &credentials),
        &shutdown,
        live,
        llm.as_ref().map(|l| l.queue.clone()),
    )?;
    let middlewares = mitm.capture.middlewares().clone();
    // Middlewares outlive the connections that use them: they stop at the shutdown's end.
    middlewares.start(&shutdown.done_token());
    policy.seed_builtins().await?;
    policy.schedule_allow_all_expiry();
    if cfg.silent_allow {
        policy.set_allow_all(AllowAllMode::Allow, None).await?;
        tracing::warn!("silent allow mode: every connection is allowed until restart");
    }
    if cfg.no_mitm {
        tracing::info!("--no-mitm: connections are tunnelled without interception");
    }

    let control = bind(cfg.control_addr, "control").await?;
    warn_if_public(cfg.control_addr, "control WebSocket");
    let control_socket = match &cfg.control_socket {
        Some(p) => Some(crate::control::unix::bind(p, cfg.control_socket_group)?),
        None => None,
    };
    let http = match cfg.http_addr {
        Some(a) => {
            warn_if_public(a, "HTTP proxy");
            Some(bind(a, "HTTP proxy").await?)
        }
        None => None,
    };
    let socks = match cfg.socks_addr {
        Some(a) => {
            warn_if_public(a, "SOCKS5 proxy");
            Some(bind(a, "SOCKS5 proxy").await?)
        }
        None => None,
    };
    if let Some(a) = cfg.dns_addr {
        warn_if_public(a, "DNS forwarder");
    }
    let (dns_cache, dns) =
        crate::proxy::dns::start(store.clone(), cfg.dns_addr, &cfg.dns_upstreams).await?;
    let listeners = Listeners {
        control: control.local_addr()?.to_string(),
        http: http
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map(|a| a.to_string()),
        socks5: socks
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map(|a| a.to_string()),
        dns: dns
            .as_ref()
            .and_then(|(l, _)| l.local_addr().ok())
            .map(|a| a.to_string()),
        control_socket: control_socket
            .as_ref()
            .map(|s| s.path().display().to_string()),
    };

    // The daemon never proxies to itself (wildcard binds expand to every local address).
    let mut own: Vec<std::net::SocketAddr> = vec![control.local_addr()?];
    own.extend(http.as_ref().and_then(|l| l.local_addr().ok()));
    own.extend(socks.as_ref().and_then(|l| l.local_addr().ok()));
    own.extend(dns.as_ref().and_then(|(l, _)| l.local_addr().ok()));
    policy.set_self_addrs(&own);
    let exporter = match &cfg.export {
        Some(s) => {
            let tls = UpstreamTls::new(&cfg.upstream_ca)?.config(vec![b"http/1.1".to_vec()]);
            Some(crate::export::spawn(
                s.clone(),
                store.clone(),
                tls,
                cfg.host_map.clone(),
                shutdown.begun_token(),
            ))
        }
        None => None,
    };
    let claims = Claims::new(events.clone());
    let handler = Arc::new(Handler {
        policy: policy.clone(),
        claims: claims.clone(),
        store: store.clone(),
        transactions: mitm.capture.recorder().sink().clone(),
        started,
        listeners: listeners.clone(),
        state_dir: cfg.state_dir.display().to_string(),
        heartbeat: cfg.heartbeat,
        middlewares: middlewares.clone(),
        llm: llm.as_ref().map(|l| l.handles.clone()),
        credentials: credentials.clone(),
        exporter,
    });
    Ok(Daemon {
        endpoint_rules: llm.map(|l| l.rules),
        cfg,
        listeners,
        shutdown,
        policy,
        events,
        mitm,
        middlewares,
        dns_cache,
        claims,
        handler,
        auth,
        control,
        control_socket,
        http,
        socks,
        dns,
    })
}

impl Daemon {
    /// What SIGHUP re-reads, wired to this daemon's parts.
    pub fn reloader(&self) -> Reloader {
        Reloader {
            file: self.cfg.config_file.clone(),
            hold_timeout_pinned: self.cfg.hold_timeout_pinned,
            host_map_pinned: self.cfg.host_map_pinned.clone(),
            live: self.mitm.capture.live().clone(),
            endpoint_rules: self.endpoint_rules.clone(),
        }
    }

    /// Serves every listener until `until` completes (or the shutdown begins some other way),
    /// then drains: holds end, open connections get the grace period, the store is flushed.
    pub async fn serve(self, until: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Daemon {
            cfg,
            listeners,
            shutdown,
            policy,
            events,
            mitm,
            middlewares,
            dns_cache,
            claims,
            handler,
            auth,
            control,
            control_socket,
            http,
            socks,
            dns,
            endpoint_rules: _,
        } = self;
        let begun = shutdown.begun_token();
        handler.credentials.clone().spawn_background(begun.clone());
        let ctx = ProxyCtx {
            policy: policy.clone(),
            handshake_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            shutdown: shutdown.clone(),
            mitm: mitm.clone(),
            dns: dns_cache.clone(),
        };
        mitm.certs
            .clone()
            .spawn_watcher(Duration::from_secs(2), begun.clone());
        if !middlewares.is_empty() {
            // Traffic that arrives meanwhile waits in the listen backlog rather than being
            // failed closed by a middleware that is still starting.
            let late = middlewares
                .wait_ready(crate::middleware::STARTUP_WAIT)
                .await;
            for m in late {
                tracing::warn!(
                    "middleware {m} not ready after 5 s: requests it would see fail closed until it is"
                );
            }
        }
        let mut tasks = tokio::task::JoinSet::new();
        if let Some(sock) = control_socket {
            let unix =
                crate::control::unix::serve(sock, handler.clone(), auth.clone(), begun.clone());
            tasks.spawn(unix);
        }
        tasks.spawn(server::serve(control, handler, auth, begun.clone()));
        if let Some(l) = http {
            tasks.spawn(http::serve(l, ctx.clone()));
        }
        if let Some(l) = socks {
            tasks.spawn(socks::serve(l, ctx.clone()));
        }
        if let Some((l, fwd)) = dns {
            let cache = dns_cache.clone();
            tasks.spawn(crate::proxy::dns::serve(l, fwd, cache, begun.clone()));
        }
        tokio::spawn(crate::notify::run(events.clone(), claims, begun.clone()));
        let flusher = policy.clone();
        let flush_stop = begun.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tokio::select! {
                    _ = tick.tick() => flusher.flush_last_used().await,
                    _ = flush_stop.cancelled() => return,
                }
            }
        });

        write_runtime(&cfg.state_dir, &listeners);
        tracing::info!(
            control = %listeners.control,
            http = listeners.http.as_deref().unwrap_or("off"),
            socks5 = listeners.socks5.as_deref().unwrap_or("off"),
            dns = listeners.dns.as_deref().unwrap_or("off"),
            control_socket = listeners.control_socket.as_deref().unwrap_or("off"),
            state_dir = %cfg.state_dir.display(),
            "greyproxyd {} listening",
            env!("CARGO_PKG_VERSION")
        );
        lifecycle::notify_ready(&listeners);
        lifecycle::spawn_watchdog(begun.clone());

        tokio::select! {
            () = until => {}
            () = begun.cancelled() => {}
        }

        tracing::info!("shutting down");
        lifecycle::notify_stopping();
        shutdown.begin();
        policy.stop_holds();
        while tasks.join_next().await.is_some() {}
        shutdown.drain(cfg.shutdown_grace).await;
        middlewares
            .join(crate::middleware::stdio::CLOSE_GRACE + Duration::from_secs(1))
            .await;
        policy.flush_last_used().await;
        policy.flush_logs().await;
        mitm.capture.recorder().sink().flush().await;
        dns_cache.flush().await;
        let _ = std::fs::remove_file(cfg.state_dir.join(RUNTIME_FILE));
        tracing::info!("stopped");
        Ok(())
    }
}

/// The data plane's wiring: the handles every exchange consults, built here and handed down
/// to the interception and the front ends as the capture's [`ExchangeEnv`].
#[derive(Debug)]
struct DataPlane {
    policy: Arc<Policy>,
    credentials: Arc<crate::credentials::service::Service>,
    recorder: Arc<Recorder>,
    response_timeout: Duration,
    shutdown: Shutdown,
    middlewares: Arc<Middlewares>,
    live: Arc<LiveCell>,
}

impl ExchangeEnv for DataPlane {
    fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    fn recorder(&self) -> &Arc<Recorder> {
        &self.recorder
    }

    fn response_timeout(&self) -> Duration {
        self.response_timeout
    }

    fn shutdown(&self) -> &Shutdown {
        &self.shutdown
    }

    fn middlewares(&self) -> &Arc<Middlewares> {
        &self.middlewares
    }

    fn live(&self) -> &Arc<LiveCell> {
        &self.live
    }

    fn credentials(&self) -> Option<&Arc<crate::credentials::service::Service>> {
        Some(&self.credentials)
    }
}

/// The CA (generated on first start), origin TLS, redaction and the transaction writer.
fn build_mitm(
    cfg: &ServeConfig,
    store: &Arc<Store>,
    events: &Arc<EventBus>,
    // What each exchange consults: the policy (deny rules) and the credentials service.
    (policy, credentials): (&Arc<Policy>, &Arc<crate::credentials::service::Service>),
    shutdown: &Shutdown,
    live: Arc<LiveCell>,
    dissect: Option<Arc<crate::dissect::queue::DissectQueue>>,
) -> anyhow::Result<Arc<MitmCtx>> {
    if !cfg.no_mitm {
        match ca::ensure(&cfg.state_dir) {
            Ok((ca, true)) => tracing::info!(
                cert = %ca.cert_path().display(),
                fingerprint = ca.fingerprint(),
                "generated the interception CA; trust it in your agents (greyproxyd cert show)"
            ),
            Ok((_, false)) => {}
            Err(e) => tracing::error!(error = %e, "no interception CA: TLS is tunnelled raw"),
        }
    }
    let certs = Arc::new(MitmCerts::new(cfg.state_dir.clone(), 1024));
    let upstream_tls = UpstreamTls::new(&cfg.upstream_ca)?;
    tracing::debug!(roots = upstream_tls.roots, "origin TLS roots loaded");
    let tx_events = events.clone();
    let queued_bytes = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sink = spawn_transaction_writer(
        store.clone(),
        TX_QUEUE_ROWS,
        cfg.tx_retention,
        queued_bytes.clone(),
        Box::new(move |t| {
            tx_events.publish(if t.is_update {
                Event::TransactionUpdated(t.clone())
            } else {
                Event::TransactionNew(t.clone())
            })
        }),
    );
    let middlewares = Arc::new(crate::middleware::Middlewares::new(
        cfg.middlewares.clone(),
        upstream_tls.config(vec![b"http/1.1".to_vec()]),
    ));
    let mut recorder = Recorder::new(
        store.clone(),
        sink,
        cfg.body_cap,
        queued_bytes,
        TX_QUEUE_BYTES,
    );
    if let Some(q) = dissect {
        recorder = recorder.with_dissect(q);
    }
    let recorder = Arc::new(recorder);
    let capture: Arc<CaptureCtx> = Arc::new(DataPlane {
        policy: policy.clone(),
        credentials: credentials.clone(),
        recorder,
        response_timeout: cfg.response_timeout,
        shutdown: shutdown.clone(),
        middlewares,
        live: live.clone(),
    });
    Ok(Arc::new(MitmCtx::new(
        !cfg.no_mitm,
        certs,
        upstream_tls,
        live,
        cfg.sniff_timeout,
        capture,
    )))
}

fn write_runtime(dir: &Path, listeners: &Listeners) {
    let rt = Runtime {
        pid: std::process::id(),
        version: env!("CARGO_PKG_VERSION"),
        listeners,
    };
    let path = dir.join(RUNTIME_FILE);
    let res = serde_json::to_vec_pretty(&rt)
        .map_err(std::io::Error::other)
        .and_then(|b| crate::atomic::write_atomic(&path, &b, 0o644));
    if let Err(e) = res {
        tracing::warn!(path = %path.display(), error = %e, "cannot write runtime file");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;

    /// An origin on 127.0.0.1 (allowed by the built-in rules) answering one request.
    async fn origin() -> std::net::SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let mut got = Vec::new();
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf).await.unwrap();
                assert!(n > 0, "client closed before its head ended");
                got.extend_from_slice(&buf[..n]);
            }
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nin-proc\n")
                .await
                .unwrap();
        });
        addr
    }

    #[tokio::test]
    async fn a_daemon_runs_in_process_on_port_0_and_drains() {
        let dir = tempfile::tempdir().unwrap();
        let daemon = build(ServeConfig::ephemeral(dir.path().to_path_buf()))
            .await
            .unwrap();
        let http = daemon.listeners.http.clone().unwrap();
        assert!(!http.ends_with(":0"), "{http}");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(daemon.serve(async {
            let _ = stopped.await;
        }));

        let origin = origin().await;
        let mut c = TcpStream::connect(&http).await.unwrap();
        let req = format!(
            "GET http://{origin}/x HTTP/1.1\r\nHost: {origin}\r\nConnection: close\r\n\r\n"
        );
        c.write_all(req.as_bytes()).await.unwrap();
        let mut resp = Vec::new();
        c.read_to_end(&mut resp).await.unwrap();
        let resp = String::from_utf8_lossy(&resp);
        assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
        assert!(resp.ends_with("in-proc\n"), "{resp}");

        let runtime: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join(RUNTIME_FILE)).unwrap()).unwrap();
        assert_eq!(runtime["listeners"]["http"], http.as_str());

        stop.send(()).unwrap();
        served.await.unwrap().unwrap();
        assert!(
            !dir.path().join(RUNTIME_FILE).exists(),
            "a clean stop removes daemon.json"
        );
        assert!(
            TcpStream::connect(&http).await.is_err(),
            "the listener is closed"
        );
    }
}
