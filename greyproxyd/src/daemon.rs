//! `greyproxyd serve`: opens the state, binds the listeners, runs the front ends, the control
//! server and the notifier, tells the service manager when it is ready, reloads its config on
//! SIGHUP, and shuts down gracefully on SIGINT/SIGTERM (holds end blocked, open tunnels get
//! `shutdown_grace` to finish, the store is flushed).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use greyproxy_protocol::{AllowAllMode, Event, Listeners};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::capture::forward::CaptureCtx;
use crate::capture::redact::Redactor;
use crate::config::{ServeConfig, ensure_state_dir};
use crate::control::auth::{ControlAuth, ensure_token, token_path};
use crate::control::server::{self, AuthMode};
use crate::control::{Claims, Handler};
use crate::events::EventBus;
use crate::lifecycle::{self, Request, Signals};
use crate::mitm::ca;
use crate::mitm::intercept::MitmCtx;
use crate::mitm::reload::MitmCerts;
use crate::mitm::upstream::UpstreamTls;
use crate::policy::Policy;
use crate::proxy::tunnel::ProxyCtx;
use crate::proxy::{http, socks};
use crate::reload::Reloader;
use crate::store::{Store, spawn_log_writer, spawn_transaction_writer};

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

/// Runs the daemon until SIGINT/SIGTERM.
pub async fn run(cfg: ServeConfig) -> anyhow::Result<()> {
    lifecycle::raise_fd_limit();
    let started = Instant::now();
    let mut signals = Signals::install().context("cannot install signal handlers")?;
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
    let policy = Policy::new(store.clone(), events.clone(), logs, cfg.hold_timeout)?;
    // `shutdown` stops accepting and ends holds and background tasks; `cut` ends the tunnels
    // still open once the grace period is over.
    let shutdown = CancellationToken::new();
    let cut = CancellationToken::new();
    let conns = tokio_util::task::TaskTracker::new();
    let mitm = build_mitm(&cfg, &store, &events, &policy, &shutdown)?;
    // Middlewares outlive the connections that use them: they stop after the last one.
    let mw_stop = CancellationToken::new();
    let middlewares = mitm.capture.middlewares.clone();
    middlewares.start(&mw_stop);
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
    let http_l = match cfg.http_addr {
        Some(a) => {
            warn_if_public(a, "HTTP proxy");
            Some(bind(a, "HTTP proxy").await?)
        }
        None => None,
    };
    let socks_l = match cfg.socks_addr {
        Some(a) => {
            warn_if_public(a, "SOCKS5 proxy");
            Some(bind(a, "SOCKS5 proxy").await?)
        }
        None => None,
    };
    if let Some(a) = cfg.dns_addr {
        warn_if_public(a, "DNS forwarder");
    }
    let (dns_cache, dns_l) =
        crate::proxy::dns::start(store.clone(), cfg.dns_addr, &cfg.dns_upstreams).await?;
    let listeners = Listeners {
        control: control.local_addr()?.to_string(),
        http: http_l
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map(|a| a.to_string()),
        socks5: socks_l
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map(|a| a.to_string()),
        dns: dns_l
            .as_ref()
            .and_then(|(l, _)| l.local_addr().ok())
            .map(|a| a.to_string()),
    };

    let claims = Claims::new(events.clone());
    let handler = Arc::new(Handler {
        policy: policy.clone(),
        claims: claims.clone(),
        store: store.clone(),
        capture: mitm.capture.clone(),
        started,
        listeners: listeners.clone(),
        state_dir: cfg.state_dir.display().to_string(),
        heartbeat: cfg.heartbeat,
        middlewares: middlewares.clone(),
    });
    let ctx = ProxyCtx {
        policy: policy.clone(),
        handshake_timeout: Duration::from_secs(30),
        connect_timeout: Duration::from_secs(10),
        shutdown: cut.clone(),
        stop_accepting: shutdown.clone(),
        conns: conns.clone(),
        mitm: mitm.clone(),
        dns: dns_cache.clone(),
    };
    mitm.certs
        .clone()
        .spawn_watcher(Duration::from_secs(2), shutdown.clone());
    if !middlewares.is_empty() {
        // Traffic that arrives meanwhile waits in the listen backlog rather than being failed
        // closed by a middleware that is still starting.
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
    tasks.spawn(server::serve(control, handler, auth, shutdown.clone()));
    if let Some(l) = http_l {
        tasks.spawn(http::serve(l, ctx.clone()));
    }
    if let Some(l) = socks_l {
        tasks.spawn(socks::serve(l, ctx.clone()));
    }
    if let Some((l, fwd)) = dns_l {
        let cache = dns_cache.clone();
        tasks.spawn(crate::proxy::dns::serve(l, fwd, cache, shutdown.clone()));
    }
    tokio::spawn(crate::notify::run(events.clone(), claims, shutdown.clone()));
    let flusher = policy.clone();
    let flush_stop = shutdown.clone();
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
        state_dir = %cfg.state_dir.display(),
        "greyproxyd {} listening",
        env!("CARGO_PKG_VERSION")
    );

    lifecycle::notify_ready(&listeners);
    lifecycle::spawn_watchdog(shutdown.clone());

    let reloader = Reloader {
        file: cfg.config_file.clone(),
        hold_timeout_pinned: cfg.hold_timeout_pinned,
        policy: policy.clone(),
        mitm: mitm.clone(),
    };
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

    tracing::info!("shutting down");
    lifecycle::notify_stopping();
    shutdown.cancel();
    policy.stop_holds();
    conns.close();
    while tasks.join_next().await.is_some() {}
    if !conns.is_empty() {
        tracing::info!(
            open = conns.len(),
            grace = ?cfg.shutdown_grace,
            "waiting for open connections to finish"
        );
    }
    if tokio::time::timeout(cfg.shutdown_grace, conns.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = conns.len(),
            "grace period over: cutting open connections"
        );
    }
    cut.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(2), conns.wait()).await;
    mw_stop.cancel();
    middlewares
        .join(crate::middleware::stdio::CLOSE_GRACE + Duration::from_secs(1))
        .await;
    policy.flush_last_used().await;
    policy.flush_logs().await;
    mitm.capture.sink.flush().await;
    dns_cache.flush().await;
    let _ = std::fs::remove_file(cfg.state_dir.join(RUNTIME_FILE));
    tracing::info!("stopped");
    Ok(())
}

/// The CA (generated on first start), origin TLS, redaction and the transaction writer.
fn build_mitm(
    cfg: &ServeConfig,
    store: &Arc<Store>,
    events: &Arc<EventBus>,
    policy: &Arc<Policy>,
    stopping: &CancellationToken,
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
    let redactor = std::sync::RwLock::new(Arc::new(
        Redactor::new(&cfg.redact_headers).context("invalid capture.redact_headers")?,
    ));
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
        cfg.llm_rules.clone(),
        upstream_tls.config(vec![b"http/1.1".to_vec()]),
    ));
    let capture = Arc::new(CaptureCtx {
        policy: policy.clone(),
        store: store.clone(),
        sink,
        redactor,
        body_cap: cfg.body_cap,
        response_timeout: cfg.response_timeout,
        stopping: stopping.clone(),
        queued_bytes,
        max_queued_bytes: TX_QUEUE_BYTES,
        middlewares,
    });
    Ok(Arc::new(MitmCtx::new(
        !cfg.no_mitm,
        certs,
        upstream_tls,
        cfg.mitm_bypass.clone(),
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
