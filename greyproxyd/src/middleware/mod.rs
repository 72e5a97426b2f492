//! External middlewares (greyproxy protocol v1 over stdio or WebSocket): the pure matching
//! logic ([`filter`], matching with [`crate::glob`]), command-line splitting ([`split`]), the transports
//! ([`stdio`], [`wsdial`], [`link`]), the per-middleware connection ([`client`]), the cascade
//! rules ([`cascade`]) and their application to HTTP messages in the forwarder ([`hook`]).
//!
//! [`Middlewares`] is the configured set, in cascade order. The LLM endpoint registry the `llm`
//! filter consults ([`crate::endpoints`]) comes with each exchange's [`crate::live`] snapshot
//! ([`cascade::Context`]).

pub(crate) mod cascade;
pub mod client;
pub(crate) mod filter;
pub(crate) mod hook;
pub(crate) mod link;
pub mod split;
pub(crate) mod stdio;
pub(crate) mod wsdial;

use std::sync::Arc;
use std::time::Duration;

use greyproxy_protocol::middleware::{MiddlewareStatus, OnDisconnect};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use client::{Client, ClientConfig, DEFAULT_TIMEOUT_MS, Endpoint};
use filter::CompiledFilter;

/// Largest body buffered for middlewares when none of them sets `max_body_bytes`: beyond it
/// the body is sent as `null` and streamed on (greyproxy buffers without any bound).
pub(crate) const MAX_BUFFER: usize = 32 << 20;
/// How long startup waits for the middlewares' first hellos.
pub(crate) const STARTUP_WAIT: Duration = Duration::from_secs(5);

/// A `[[middleware]]` table of the config file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MiddlewareEntry {
    /// WebSocket URL (`ws://`, `wss://`).
    pub(crate) url: Option<String>,
    /// Program and arguments for a stdio middleware.
    pub(crate) command: Option<Vec<String>>,
    /// Log label for the child's stderr.
    pub(crate) name: Option<String>,
    /// Per-message timeout; ≤ 0 = the default 10 000.
    pub(crate) timeout_ms: Option<i64>,
    /// `allow` fails open; anything else (default `deny`) fails closed, as in greyproxy: read
    /// with [`OnDisconnect::from_config`].
    pub(crate) on_disconnect: Option<String>,
    /// `Name: value` added to the WebSocket upgrade.
    pub(crate) auth_header: Option<String>,
}

/// Why a middleware setting is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `[[middleware]]` with both `url` and `command`.
    #[error("middleware entry has both url and command ({0})")]
    Both(String),
    /// Neither.
    #[error("middleware entry has neither url nor command")]
    Neither,
    /// A `--middleware-cmd` that does not split.
    #[error("middleware command {0:?}: {1}")]
    Command(String, split::SplitError),
    /// A URL that is not `ws://`/`wss://`.
    #[error("middleware url {0:?}: want ws://, wss://, http:// or https://")]
    Url(String),
    /// Empty argv.
    #[error("middleware command is empty")]
    EmptyCommand,
}

/// `--middleware URL`: `http://` becomes `ws://`, `https://` becomes `wss://`.
pub(crate) fn normalise_url(url: &str) -> String {
    if let Some(rest) = url.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if let Some(rest) = url.strip_prefix("https://") {
        format!("wss://{rest}")
    } else {
        url.to_string()
    }
}

fn check_url(url: &str) -> Result<(), ConfigError> {
    if url.starts_with("ws://") || url.starts_with("wss://") {
        Ok(())
    } else {
        Err(ConfigError::Url(url.into()))
    }
}

/// The cascade order: every `--middleware`, then every `--middleware-cmd`, then the config
/// file's entries. Errors name the offending entry; nothing is silently skipped.
pub fn build_configs(
    cli_urls: &[String],
    cli_cmds: &[String],
    file: &[MiddlewareEntry],
) -> Result<Vec<ClientConfig>, ConfigError> {
    let mut out = Vec::new();
    let defaults = |endpoint| ClientConfig {
        endpoint,
        timeout: Duration::from_millis(DEFAULT_TIMEOUT_MS),
        on_disconnect: OnDisconnect::Deny,
    };
    for u in cli_urls.iter().filter(|u| !u.trim().is_empty()) {
        let url = normalise_url(u.trim());
        check_url(&url)?;
        out.push(defaults(Endpoint::Ws {
            url,
            auth_header: None,
        }));
    }
    for c in cli_cmds.iter().filter(|c| !c.trim().is_empty()) {
        let argv = split::split_command(c).map_err(|e| ConfigError::Command(c.clone(), e))?;
        let label = stdio_label(&argv, None);
        out.push(defaults(Endpoint::Stdio { argv, label }));
    }
    for e in file {
        let endpoint = match (&e.url, &e.command) {
            (Some(u), Some(c)) => return Err(ConfigError::Both(format!("{u} / {c:?}"))),
            (None, None) => return Err(ConfigError::Neither),
            (Some(u), None) => {
                check_url(u)?;
                Endpoint::Ws {
                    url: u.clone(),
                    auth_header: e.auth_header.as_deref().and_then(wsdial::parse_auth_header),
                }
            }
            (None, Some(argv)) => {
                if argv.first().is_none_or(|p| p.is_empty()) {
                    return Err(ConfigError::EmptyCommand);
                }
                Endpoint::Stdio {
                    argv: argv.clone(),
                    label: stdio_label(argv, e.name.as_deref()),
                }
            }
        };
        let timeout = match e.timeout_ms {
            Some(t) if t > 0 => t as u64,
            _ => DEFAULT_TIMEOUT_MS,
        };
        out.push(ClientConfig {
            endpoint,
            timeout: Duration::from_millis(timeout),
            on_disconnect: e
                .on_disconnect
                .as_deref()
                .map_or(OnDisconnect::Deny, OnDisconnect::from_config),
        });
    }
    Ok(out)
}

/// The stderr label: the configured name, else the program's basename, else `?`.
fn stdio_label(argv: &[String], name: Option<&str>) -> String {
    if let Some(n) = name.filter(|n| !n.is_empty()) {
        return n.to_string();
    }
    argv.first()
        .and_then(|p| std::path::Path::new(p).file_name())
        .map(|b| b.to_string_lossy().into_owned())
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| "?".into())
}

/// One cascade step: a middleware and the filter of one of its hooks.
#[derive(Debug, Clone)]
pub(crate) struct Step {
    /// The middleware.
    pub(crate) client: Arc<Client>,
    /// The hook's filter.
    pub(crate) filter: Arc<CompiledFilter>,
}

/// The configured middlewares, in cascade order.
#[derive(Debug)]
pub(crate) struct Middlewares {
    clients: Vec<Arc<Client>>,
    loops: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
    match_all: Arc<CompiledFilter>,
}

impl Middlewares {
    /// Clients for `configs` (not started yet).
    pub(crate) fn new(configs: Vec<ClientConfig>, tls: Arc<rustls::ClientConfig>) -> Middlewares {
        Middlewares {
            clients: configs
                .into_iter()
                .map(|c| Client::new(c, tls.clone()))
                .collect(),
            loops: std::sync::Mutex::new(Vec::new()),
            match_all: Arc::new(CompiledFilter::new(None)),
        }
    }

    /// No middleware configured: the forwarder skips every hook.
    pub(crate) fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// Starts every connection loop; they end when `stop` is cancelled.
    pub(crate) fn start(&self, stop: &CancellationToken) {
        let mut loops = self.loops.lock().unwrap_or_else(|p| p.into_inner());
        for c in &self.clients {
            loops.push(tokio::spawn(c.clone().run(stop.clone())));
        }
    }

    /// After `stop` was cancelled: waits (at most `limit`) for every connection to close and
    /// every child process group to be gone.
    pub(crate) async fn join(&self, limit: Duration) {
        let loops: Vec<_> =
            std::mem::take(&mut *self.loops.lock().unwrap_or_else(|p| p.into_inner()));
        let _ = tokio::time::timeout(limit, futures_util::future::join_all(loops)).await;
    }

    /// Waits (all at once) up to `limit` for every middleware's first hello; returns the
    /// endpoints that are still not ready.
    pub(crate) async fn wait_ready(&self, limit: Duration) -> Vec<String> {
        let waits = self.clients.iter().map(|c| async move {
            (!c.wait_ready(limit).await).then(|| c.config.endpoint.display())
        });
        futures_util::future::join_all(waits)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// Live state of each middleware.
    pub(crate) fn statuses(&self) -> Vec<MiddlewareStatus> {
        self.clients.iter().map(|c| c.status()).collect()
    }

    /// The request (or response) cascade as of now. A middleware that never said hello fails
    /// closed: it becomes a match-all request step whose sends fall back at once (unless it
    /// fails open, in which case it has nothing to say and is left out).
    pub(crate) fn steps(&self, response: bool) -> Vec<Step> {
        let mut out = Vec::new();
        for c in &self.clients {
            match c.declared() {
                Some(d) => {
                    let hooks = if response { &d.response } else { &d.request };
                    out.extend(hooks.iter().map(|f| Step {
                        client: c.clone(),
                        filter: f.clone(),
                    }));
                }
                None if !response && !c.config.fails_open() => out.push(Step {
                    client: c.clone(),
                    filter: self.match_all.clone(),
                }),
                None => {}
            }
        }
        out
    }

    /// Bodies larger than this go to middlewares as `null`: the smallest positive
    /// `max_body_bytes` any middleware declared, capped by [`MAX_BUFFER`].
    pub(crate) fn body_limit(&self) -> usize {
        self.clients
            .iter()
            .filter_map(|c| c.declared())
            .map(|d| d.max_body_bytes)
            .filter(|m| *m > 0)
            .min()
            .map_or(MAX_BUFFER, |m| {
                usize::try_from(m).unwrap_or(MAX_BUFFER).min(MAX_BUFFER)
            })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cli_urls_are_normalised_and_order_is_by_kind() {
        let file = vec![MiddlewareEntry {
            command: Some(vec!["/usr/bin/python3".into(), "x.py".into()]),
            name: Some("scanner".into()),
            timeout_ms: Some(-5),
            on_disconnect: Some("allow".into()),
            ..Default::default()
        }];
        let c = build_configs(
            &["http://h:1/p".into(), "https://h/p".into()],
            &["uv run 'a b.py'".into()],
            &file,
        )
        .unwrap();
        assert_eq!(c.len(), 4);
        assert_eq!(c[0].endpoint.display(), "ws://h:1/p");
        assert_eq!(c[1].endpoint.display(), "wss://h/p");
        assert_eq!(
            c[2].endpoint,
            Endpoint::Stdio {
                argv: vec!["uv".into(), "run".into(), "a b.py".into()],
                label: "uv".into()
            }
        );
        assert_eq!(c[3].endpoint.display(), "stdio:/usr/bin/python3");
        assert!(matches!(&c[3].endpoint, Endpoint::Stdio { label, .. } if label == "scanner"));
        assert_eq!(c[3].timeout, Duration::from_millis(10_000));
        assert!(c[3].fails_open());
        assert!(!c[0].fails_open());
    }

    #[test]
    fn bad_entries_are_errors() {
        let both = MiddlewareEntry {
            url: Some("ws://a".into()),
            command: Some(vec!["b".into()]),
            ..Default::default()
        };
        assert!(matches!(
            build_configs(&[], &[], &[both]),
            Err(ConfigError::Both(_))
        ));
        assert!(matches!(
            build_configs(&[], &[], &[MiddlewareEntry::default()]),
            Err(ConfigError::Neither)
        ));
        assert!(build_configs(&["ftp://x".into()], &[], &[]).is_err());
        assert!(build_configs(&[], &["'open".into()], &[]).is_err());
        let c = ClientConfig {
            endpoint: Endpoint::Ws {
                url: "ws://x".into(),
                auth_header: None,
            },
            timeout: Duration::from_secs(1),
            on_disconnect: OnDisconnect::from_config("Allow"),
        };
        assert!(!c.fails_open());
    }
}
