//! TLS interception of an allowed tunnel whose client spoke TLS first (the sniffing and
//! dispatch happen in `proxy::dispatch`): the upstream handshake first with the client's SNI
//! and ALPN offer, then the client handshake offering exactly what the origin chose, then
//! every exchange through the recorder. Hosts on the bypass list are relayed raw.
//!
//! The outcome is written on the connection's request_logs row (`mitm`).

use std::collections::HashSet;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use greyproxy_protocol::MitmOutcome;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::server::Acceptor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::LazyConfigAcceptor;
use tokio_util::sync::CancellationToken;

use super::reload::MitmCerts;
use super::upstream::UpstreamTls;
use crate::capture::exchange::{CaptureCtx, ExchangeMeta};
use crate::capture::serve::{serve_h1, serve_h2};
use crate::capture::upstream::Upstream;
use crate::glob::Dialect;
use crate::http::text_response;
use crate::live::LiveCell;
use crate::net::{HostMap, Prefixed, boxed_io, connect_upstream, dial_fn, relay, server_name};
use crate::policy::Verdict;

const H2: &[u8] = b"h2";
const H1: &[u8] = b"http/1.1";

/// Interception settings and state shared by all tunnels.
pub(crate) struct MitmCtx {
    /// Off with `--no-mitm`.
    pub(crate) enabled: bool,
    /// The CA and leaf issuer (absent when no CA could be loaded).
    pub(crate) certs: Arc<MitmCerts>,
    /// Verified TLS towards origins.
    pub(crate) upstream_tls: UpstreamTls,
    /// The reloadable settings, for the host globs never intercepted (pinned clients).
    live: Arc<LiveCell>,
    /// How long to wait for the client's first bytes before assuming a server-speaks-first
    /// protocol and relaying raw.
    pub(crate) sniff_timeout: Duration,
    /// Recording.
    pub(crate) capture: Arc<CaptureCtx>,
    /// Hosts whose clients rejected our certificate (warned once each).
    rejected: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for MitmCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MitmCtx")
            .field("enabled", &self.enabled)
            .field("bypass", &self.live.load().bypass)
            .finish()
    }
}

impl MitmCtx {
    /// Builds the context.
    pub(crate) fn new(
        enabled: bool,
        certs: Arc<MitmCerts>,
        upstream_tls: UpstreamTls,
        live: Arc<LiveCell>,
        sniff_timeout: Duration,
        capture: Arc<CaptureCtx>,
    ) -> MitmCtx {
        MitmCtx {
            enabled,
            certs,
            upstream_tls,
            live,
            sniff_timeout,
            capture,
            rejected: Mutex::new(HashSet::new()),
        }
    }

    /// `*.example.com` (any depth, not the apex), `**.example.com` (apex too), `*` or an exact
    /// host, ASCII case-insensitive — the same forms as rule destinations, except that `*.` and
    /// `**.` alone are read literally ([`Dialect::BYPASS`]). The list is the one in force when
    /// the tunnel is dispatched: a reload applies to tunnels opened after it.
    fn bypassed(&self, host: &str) -> bool {
        self.live
            .load()
            .bypass
            .iter()
            .any(|g| Dialect::BYPASS.matches(g.trim(), host))
    }

    /// The host map in force now, for a tunnel or connection about to dial its origin (every
    /// front end shares this context); a reload applies to dials that take it afterwards.
    pub(crate) fn hosts(&self) -> Arc<HostMap> {
        self.live.load().hosts.clone()
    }
}

/// Facts about the tunnel.
#[derive(Debug, Clone)]
pub(crate) struct Tunnel {
    /// Client identity.
    pub(crate) container: String,
    /// Destination host as asked (CONNECT/SOCKS target).
    pub(crate) host: String,
    /// Destination port.
    pub(crate) port: u16,
}

/// Reads the ClientHello from a copy of the client's bytes (reading more if the hello spans
/// several segments), returning SNI and ALPN offer; `None` if it is not a valid hello.
async fn peek_hello(
    client: &mut TcpStream,
    early: &mut Vec<u8>,
    wait: Duration,
) -> io::Result<Option<(Option<String>, Vec<Vec<u8>>)>> {
    let mut acceptor = Acceptor::default();
    let mut fed = 0;
    loop {
        let mut rd = &early[fed..];
        while !rd.is_empty() {
            match acceptor.read_tls(&mut rd) {
                Ok(0) => break,
                Ok(_) => {}
                Err(_) => return Ok(None),
            }
        }
        fed = early.len();
        match acceptor.accept() {
            Ok(Some(accepted)) => {
                let hello = accepted.client_hello();
                let sni = hello.server_name().map(str::to_string);
                let alpn = hello
                    .alpn()
                    .map(|it| it.map(<[u8]>::to_vec).collect())
                    .unwrap_or_default();
                return Ok(Some((sni, alpn)));
            }
            Ok(None) => {}
            Err(_) => return Ok(None),
        }
        if early.len() > 64 * 1024 {
            return Ok(None);
        }
        let mut buf = vec![0u8; 16 * 1024];
        let n = tokio::time::timeout(wait, client.read(&mut buf))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "incomplete TLS ClientHello"))??;
        if n == 0 {
            return Ok(None);
        }
        early.extend_from_slice(&buf[..n]);
    }
}

/// Intercepts a tunnel whose client spoke TLS first: the upstream handshake with the
/// client's SNI and ALPN offer, then the client handshake offering exactly what the origin
/// chose, then every exchange through the recorder. Bypassed hosts, clients without a valid
/// ClientHello and failed handshakes are relayed raw or refused; the outcome is logged on
/// `verdict`.
pub(crate) async fn intercept_tls(
    ctx: &Arc<MitmCtx>,
    mut client: TcpStream,
    upstream: TcpStream,
    mut early: Vec<u8>,
    tunnel: &Tunnel,
    rule_id: Option<u64>,
    verdict: &mut Verdict,
) -> io::Result<()> {
    let Some((sni, offer)) = peek_hello(&mut client, &mut early, Duration::from_secs(10)).await?
    else {
        verdict.log_mitm(MitmOutcome::NonTls);
        return relay(client, upstream, &early, None, CancellationToken::new())
            .await
            .map(|_| ());
    };
    // Clients without SNI (IP literals) get the CONNECT host.
    let name = sni.clone().unwrap_or_else(|| tunnel.host.clone());
    if ctx.bypassed(&name) || ctx.bypassed(&tunnel.host) {
        verdict.log_mitm(MitmOutcome::MitmBypass);
        return relay(client, upstream, &early, None, CancellationToken::new())
            .await
            .map(|_| ());
    }
    let alpn: Vec<Vec<u8>> = offer
        .iter()
        .filter(|p| p.as_slice() == H2 || p.as_slice() == H1)
        .cloned()
        .collect();
    if !offer.is_empty() && alpn.is_empty() {
        // Some other protocol over TLS (not HTTP): nothing to record.
        verdict.log_mitm(MitmOutcome::NonHttp);
        return relay(client, upstream, &early, None, CancellationToken::new())
            .await
            .map(|_| ());
    }
    let Some(issuer) = ctx.certs.current() else {
        verdict.log_mitm(MitmOutcome::NoCert);
        return relay(client, upstream, &early, None, CancellationToken::new())
            .await
            .map(|_| ());
    };
    let Some(server) = server_name(&name) else {
        verdict.log_mitm(MitmOutcome::NonTls);
        return relay(client, upstream, &early, None, CancellationToken::new())
            .await
            .map(|_| ());
    };

    // Upstream first: its certificate is verified, and it chooses the protocol.
    let up = tokio::time::timeout(
        Duration::from_secs(15),
        ctx.upstream_tls
            .connect(server.clone(), alpn.clone(), upstream),
    )
    .await;
    let client_io = Prefixed::new(early, client);
    let up_tls = match up {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            verdict.log_mitm(MitmOutcome::UpstreamTlsError);
            let reason = format!("greyproxy: TLS to {name}:{} failed: {e}\n", tunnel.port);
            return refuse_over_tls(&issuer, &name, &offer, client_io, &reason).await;
        }
        Err(_) => {
            verdict.log_mitm(MitmOutcome::UpstreamTlsError);
            let reason = format!("greyproxy: TLS to {name}:{} timed out\n", tunnel.port);
            return refuse_over_tls(&issuer, &name, &offer, client_io, &reason).await;
        }
    };
    let chosen = up_tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    let h2 = chosen.as_deref() == Some(H2);
    let client_alpn: Vec<Vec<u8>> = chosen.into_iter().collect();
    let config = issuer
        .server_config(&name, &client_alpn)
        .map_err(io::Error::other)?;
    let start = LazyConfigAcceptor::new(Acceptor::default(), client_io).await?;
    let client_tls = match start.into_stream(config).await {
        Ok(s) => s,
        Err(e) => {
            verdict.log_mitm(MitmOutcome::MitmError);
            let first = ctx
                .rejected
                .lock()
                .map(|mut r| r.insert(name.clone()))
                .unwrap_or(false);
            if first {
                tracing::warn!(
                    host = %name, error = %e,
                    "the client rejected greyproxy's certificate (pinned, or the CA is not trusted); add the host to mitm.bypass to tunnel it raw"
                );
            }
            return Ok(());
        }
    };
    verdict.log_mitm(MitmOutcome::Intercepted);
    let meta = Arc::new(ExchangeMeta {
        container: tunnel.container.clone(),
        host: name.clone(),
        port: tunnel.port,
        scheme: "https",
        rule_id,
        plain_proxy: false,
    });
    let (host, port) = (tunnel.host.clone(), tunnel.port);
    let tls = ctx.upstream_tls.clone();
    let proto = client_alpn.clone();
    let hosts = ctx.hosts();
    let dial = dial_fn(move || {
        let (host, tls, server, proto) = (host.clone(), tls.clone(), server.clone(), proto.clone());
        let hosts = hosts.clone();
        async move {
            let tcp = connect_upstream(&hosts, &host, port, Duration::from_secs(10)).await?;
            Ok(boxed_io(tls.connect(server, proto, tcp).await?))
        }
    });
    let up = Arc::new(Upstream::new(boxed_io(up_tls), h2, dial).await?);
    if h2 {
        serve_h2(ctx.capture.clone(), up, meta, client_tls).await
    } else {
        serve_h1(ctx.capture.clone(), up, meta, client_tls).await
    }
}

/// Completes the client handshake with our certificate and answers 502 with `reason` in plain
/// text, so the user sees why (an HTTP client would otherwise only see a reset).
async fn refuse_over_tls(
    issuer: &super::leaf::LeafIssuer,
    name: &str,
    offer: &[Vec<u8>],
    client_io: Prefixed<TcpStream>,
    reason: &str,
) -> io::Result<()> {
    tracing::info!(host = name, "{}", reason.trim());
    // Answer in a protocol the client speaks: HTTP/1.1 when offered (or nothing was), else h2.
    let h2_only =
        !offer.is_empty() && !offer.iter().any(|p| p == H1) && offer.iter().any(|p| p == H2);
    let alpn: Vec<Vec<u8>> = if h2_only {
        vec![H2.to_vec()]
    } else if offer.is_empty() {
        vec![]
    } else {
        vec![H1.to_vec()]
    };
    let config = issuer
        .server_config(name, &alpn)
        .map_err(io::Error::other)?;
    let start = LazyConfigAcceptor::new(Acceptor::default(), client_io).await?;
    let mut tls = start.into_stream(config).await?;
    if h2_only {
        let reason = reason.to_string();
        let svc = service_fn(move |_req| {
            let r = text_response(http::StatusCode::BAD_GATEWAY, reason.clone());
            async move { Ok::<_, hyper::Error>(r) }
        });
        let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(TokioIo::new(tls), svc);
        let _ = tokio::time::timeout(Duration::from_secs(10), conn).await;
        return Ok(());
    }
    // Read the request head (best effort) so that closing does not reset it away.
    let mut buf = vec![0u8; 8192];
    let _ = tokio::time::timeout(Duration::from_secs(2), tls.read(&mut buf)).await;
    let resp = format!(
        "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reason}",
        reason.len()
    );
    tls.write_all(resp.as_bytes()).await?;
    let _ = tls.shutdown().await;
    Ok(())
}
