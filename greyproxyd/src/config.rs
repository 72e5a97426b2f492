//! Serve configuration: defaults, the TOML config file, command-line flags (which win), and
//! the state directory.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;

use crate::control::auth::{ControlAuth, ControlAuthError};
use crate::net::HostMap;
use crate::net::hosts::HostMapError;

pub mod check;

/// Default control address (path `/ws`).
pub const DEFAULT_CONTROL_ADDR: &str = "127.0.0.1:43080";
/// Default HTTP proxy address.
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:43051";
/// Default SOCKS5 proxy address.
pub const DEFAULT_SOCKS_ADDR: &str = "127.0.0.1:43052";
/// Default DNS forwarder address (UDP and TCP).
pub const DEFAULT_DNS_ADDR: &str = crate::proxy::dns::DEFAULT_DNS_ADDR;
/// Default hold timeout in seconds.
pub const DEFAULT_HOLD_TIMEOUT: u64 = 30;
/// Default number of request_logs rows kept.
pub const DEFAULT_LOG_RETENTION: u64 = 200_000;
/// Default stored copy per body.
pub const DEFAULT_BODY_CAP: usize = 2 * 1024 * 1024;
/// Default transactions kept.
pub const DEFAULT_MAX_TRANSACTIONS: u64 = 50_000;
/// Default stored body bytes kept.
pub const DEFAULT_MAX_STORED_BYTES: u64 = 1024 * 1024 * 1024;
/// Default origin response-head timeout, seconds.
pub const DEFAULT_RESPONSE_TIMEOUT: u64 = 300;
/// Default sniff wait, milliseconds.
pub const DEFAULT_SNIFF_TIMEOUT_MS: u64 = 500;
/// Default seconds open tunnels may take to finish at shutdown before they are cut.
pub const DEFAULT_SHUTDOWN_GRACE: u64 = 10;

/// The config file (`--config FILE`); every key is optional. Unknown keys are errors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// State directory.
    pub state_dir: Option<PathBuf>,
    /// Control WebSocket address.
    pub control_addr: Option<String>,
    /// HTTP proxy address or `off`.
    pub http_addr: Option<String>,
    /// SOCKS5 proxy address or `off`.
    pub socks_addr: Option<String>,
    /// DNS forwarder address (UDP and TCP) or `off`.
    pub dns_addr: Option<String>,
    /// DNS upstreams (`IP` or `IP:PORT`); default: the system's resolvers.
    pub dns_upstream: Option<Vec<String>>,
    /// Seconds a connection is held waiting for a decision.
    pub hold_timeout: Option<u64>,
    /// Start in silent allow mode until restart.
    pub silent_allow: Option<bool>,
    /// Tunnel everything raw (MITM arrives later; today every tunnel is raw).
    pub no_mitm: Option<bool>,
    /// Control-connection settings.
    pub control: Option<ControlConfig>,
    /// request_logs rows kept (oldest evicted).
    pub log_retention: Option<u64>,
    /// Extra CA certificates (PEM files) trusted for origins, besides the system's.
    pub upstream_ca: Option<Vec<PathBuf>>,
    /// `[mitm]` table.
    pub mitm: Option<MitmConfig>,
    /// `[capture]` table.
    pub capture: Option<CaptureConfig>,
    /// Seconds open tunnels may take to finish at shutdown before they are cut (default 10).
    pub shutdown_grace: Option<u64>,
    /// `[[middleware]]` tables: external middlewares, after those given on the command line.
    pub middleware: Option<Vec<crate::middleware::MiddlewareEntry>>,
    /// `[[llm_endpoint]]` tables: user rules of the LLM endpoint registry (the `llm` filter).
    pub llm_endpoint: Option<Vec<crate::endpoints::LlmRule>>,
    /// `[hosts]` table: host name → IP address dialled instead of resolving the name.
    pub hosts: Option<BTreeMap<String, String>>,
    /// `[[endpoint_rule]]` tables: the same rules under the LLM layer's name (both are read,
    /// `llm_endpoint` ones first).
    pub endpoint_rule: Option<Vec<crate::endpoints::LlmRule>>,
    /// `[llm]` table.
    pub llm: Option<LlmFileConfig>,
    /// `[export]` table (`[export.otlp]`: the OTLP exporter).
    pub export: Option<crate::export::ExportFileConfig>,
}

impl FileConfig {
    /// The configured endpoint rules of both spellings.
    pub fn endpoint_rules(&self) -> Vec<crate::endpoints::LlmRule> {
        let mut v = self.llm_endpoint.clone().unwrap_or_default();
        v.extend(self.endpoint_rule.clone().unwrap_or_default());
        v
    }
}

/// `[llm]` table: the LLM layer (docs/llm.md).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmFileConfig {
    /// Dissect LLM calls and assemble conversations (default true).
    pub enabled: Option<bool>,
    /// How long after an LLM call its tool calls explain a held request (humantime, default
    /// `120s`).
    pub context_window: Option<String>,
    /// LLM calls kept (default 200 000).
    pub max_calls: Option<u64>,
    /// Conversations kept (default 20 000).
    pub max_conversations: Option<u64>,
    /// Calls and conversations older than this go (humantime, default `90d`).
    pub max_age: Option<String>,
    /// `[[llm.price]]` tables: prices that override or extend the vendored table.
    pub price: Option<Vec<toml::Value>>,
}

/// Settings of the LLM layer.
#[derive(Debug, Clone)]
pub struct LlmSettings {
    /// Dissection on.
    pub enabled: bool,
    /// Window of `llm_context`.
    pub context_window: Duration,
    /// Calls kept.
    pub max_calls: u64,
    /// Conversations kept.
    pub max_conversations: u64,
    /// Age limit of calls and conversations.
    pub max_age: Duration,
    /// `[[llm.price]]` tables, checked when the daemon starts.
    pub prices: Vec<toml::Value>,
}

impl Default for LlmSettings {
    fn default() -> Self {
        LlmSettings {
            enabled: true,
            context_window: Duration::from_secs(120),
            max_calls: 200_000,
            max_conversations: 20_000,
            max_age: Duration::from_secs(90 * 86_400),
            prices: Vec::new(),
        }
    }
}

impl LlmSettings {
    /// From the `[llm]` table (defaults for what it leaves out).
    pub fn from_file(f: Option<&LlmFileConfig>) -> anyhow::Result<LlmSettings> {
        let d = LlmSettings::default();
        let Some(f) = f else {
            return Ok(d);
        };
        let span = |v: &Option<String>, key: &str, default: Duration| -> anyhow::Result<Duration> {
            match v {
                Some(s) => humantime::parse_duration(s)
                    .map_err(|e| anyhow::anyhow!("llm.{key}: invalid duration {s:?}: {e}")),
                None => Ok(default),
            }
        };
        Ok(LlmSettings {
            enabled: f.enabled.unwrap_or(true),
            context_window: span(&f.context_window, "context_window", d.context_window)?,
            max_calls: f.max_calls.unwrap_or(d.max_calls),
            max_conversations: f.max_conversations.unwrap_or(d.max_conversations),
            max_age: span(&f.max_age, "max_age", d.max_age)?,
            prices: f.price.clone().unwrap_or_default(),
        })
    }
}

/// `[mitm]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MitmConfig {
    /// Host globs (`*.apple.com`, `**.example.com`, `pinned.example`) tunnelled raw.
    pub bypass: Option<Vec<String>>,
    /// Milliseconds to wait for a client's first bytes before relaying raw (server-speaks-first
    /// protocols such as SMTP); default 500.
    pub sniff_timeout_ms: Option<u64>,
}

/// `[capture]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureConfig {
    /// Stored copy per body, bytes (default 2 MiB).
    pub max_body_bytes: Option<usize>,
    /// Extra header-name patterns to redact (`x-my-secret`, `*session*`).
    pub redact_headers: Option<Vec<String>>,
    /// Transactions kept (default 50 000).
    pub max_transactions: Option<u64>,
    /// Stored body bytes kept (default 1 GiB).
    pub max_stored_bytes: Option<u64>,
    /// Seconds an origin may take to start answering (default 300: LLM calls are slow).
    pub response_timeout: Option<u64>,
}

/// `[control]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlConfig {
    /// `token` (default) or `none` (no authentication; loopback-only setups).
    pub auth: Option<String>,
    /// Seconds between server pings (default 30).
    pub ping_interval: Option<u64>,
    /// Seconds a ping may go unanswered before the connection is closed (default 10).
    pub pong_timeout: Option<u64>,
    /// Control unix socket path, or `off` (default `<state dir>/control.sock`).
    pub socket: Option<String>,
    /// `0600` (default: the daemon's user) or `0660` (its group too).
    pub socket_mode: Option<String>,
}

/// Parses `control.socket_mode`: whether the socket's group is admitted.
pub fn parse_socket_mode(s: &str) -> anyhow::Result<bool> {
    match s.trim() {
        "0600" | "600" => Ok(false),
        "0660" | "660" => Ok(true),
        other => anyhow::bail!(
            "invalid control socket mode {other:?}: use 0600 (the daemon's user) or 0660 (its group too)"
        ),
    }
}

/// The control socket's path: `off` disables it; unset means `<state dir>/control.sock`.
pub fn control_socket_path(value: Option<&str>, state_dir: &Path) -> Option<PathBuf> {
    match value.map(str::trim) {
        Some(v) if v.eq_ignore_ascii_case("off") => None,
        Some(v) if !v.is_empty() => Some(PathBuf::from(v)),
        _ => Some(state_dir.join(crate::control::unix::SOCKET_FILE)),
    }
}

impl FileConfig {
    /// `control.auth`, [`ControlAuth::Token`] when unset.
    pub fn control_auth(&self) -> Result<ControlAuth, ControlAuthError> {
        match self.control.as_ref().and_then(|c| c.auth.as_deref()) {
            None => Ok(ControlAuth::Token),
            Some(s) => s.parse(),
        }
    }

    /// The `[hosts]` table as a host map (empty when absent).
    pub fn host_map(&self) -> Result<HostMap, HostMapError> {
        self.hosts
            .as_ref()
            .map_or_else(|| Ok(HostMap::new()), HostMap::from_table)
    }

    /// Reads, parses and validates a config file; errors name the file and the offending
    /// key and line.
    pub fn load(path: &Path) -> anyhow::Result<FileConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let invalid = || format!("invalid config file {}", path.display());
        let cfg: FileConfig = toml::from_str(&text).with_context(invalid)?;
        cfg.validate(&text).with_context(invalid)?;
        Ok(cfg)
    }
}

/// Fully resolved settings of `greyproxyd serve`.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// State directory (created 0700 if missing).
    pub state_dir: PathBuf,
    /// Control WebSocket address.
    pub control_addr: SocketAddr,
    /// Control unix socket; `None` = off.
    pub control_socket: Option<PathBuf>,
    /// The control socket is 0660 and admits its group's members.
    pub control_socket_group: bool,
    /// HTTP proxy address; `None` = off.
    pub http_addr: Option<SocketAddr>,
    /// SOCKS5 proxy address; `None` = off.
    pub socks_addr: Option<SocketAddr>,
    /// DNS forwarder address; `None` = off.
    pub dns_addr: Option<SocketAddr>,
    /// DNS upstreams; empty = the system's resolvers.
    pub dns_upstreams: Vec<SocketAddr>,
    /// Hold timeout.
    pub hold_timeout: Duration,
    /// Start in silent allow mode.
    pub silent_allow: bool,
    /// No TLS interception.
    pub no_mitm: bool,
    /// Whether control clients must present the token.
    pub control_auth: ControlAuth,
    /// request_logs rows kept.
    pub log_retention: u64,
    /// Control heartbeat.
    pub heartbeat: crate::control::session::Heartbeat,
    /// Extra CAs for origins.
    pub upstream_ca: Vec<PathBuf>,
    /// Hosts never intercepted.
    pub mitm_bypass: Vec<String>,
    /// Wait for the client's first bytes.
    pub sniff_timeout: Duration,
    /// Stored copy per body.
    pub body_cap: usize,
    /// Extra redaction patterns.
    pub redact_headers: Vec<String>,
    /// Transaction retention.
    pub tx_retention: crate::store::TxRetention,
    /// Origin response-head timeout.
    pub response_timeout: Duration,
    /// The config file, re-read on SIGHUP.
    pub config_file: Option<PathBuf>,
    /// The hold timeout came from the command line, so a reload keeps it.
    pub hold_timeout_pinned: bool,
    /// How long open tunnels may take to finish at shutdown before they are cut.
    pub shutdown_grace: Duration,
    /// External middlewares in cascade order.
    pub middlewares: Vec<crate::middleware::client::ClientConfig>,
    /// User rules of the LLM endpoint registry.
    pub llm_rules: Vec<crate::endpoints::LlmRule>,
    /// The LLM layer.
    pub llm: LlmSettings,
    /// Names dialled at a fixed address: the file's `[hosts]` merged with `--map-host`.
    pub host_map: HostMap,
    /// The `--map-host` entries alone, which win over the file's again at every reload.
    pub host_map_pinned: HostMap,
    /// The OTLP exporter (`[export.otlp]`), off when `None`.
    pub export: Option<crate::export::OtlpSettings>,
}

impl ServeConfig {
    /// The defaults of `greyproxyd serve` with a given state dir, every listener on
    /// `127.0.0.1:0` (the system picks the ports; [`crate::daemon::Daemon::listeners`] has
    /// them) and the DNS forwarder off: a daemon that can run beside any other, as an
    /// in-process test does.
    pub fn ephemeral(state_dir: PathBuf) -> ServeConfig {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        ServeConfig {
            control_socket: Some(state_dir.join(crate::control::unix::SOCKET_FILE)),
            control_socket_group: false,
            state_dir,
            control_addr: any,
            http_addr: Some(any),
            socks_addr: Some(any),
            dns_addr: None,
            dns_upstreams: Vec::new(),
            hold_timeout: Duration::from_secs(DEFAULT_HOLD_TIMEOUT),
            silent_allow: false,
            no_mitm: false,
            control_auth: ControlAuth::Token,
            log_retention: DEFAULT_LOG_RETENTION,
            heartbeat: crate::control::session::Heartbeat::default(),
            upstream_ca: Vec::new(),
            mitm_bypass: Vec::new(),
            sniff_timeout: Duration::from_millis(DEFAULT_SNIFF_TIMEOUT_MS),
            body_cap: DEFAULT_BODY_CAP,
            redact_headers: Vec::new(),
            tx_retention: crate::store::TxRetention {
                max_rows: DEFAULT_MAX_TRANSACTIONS,
                max_body_bytes: DEFAULT_MAX_STORED_BYTES,
            },
            response_timeout: Duration::from_secs(DEFAULT_RESPONSE_TIMEOUT),
            config_file: None,
            hold_timeout_pinned: false,
            shutdown_grace: Duration::from_secs(DEFAULT_SHUTDOWN_GRACE),
            middlewares: Vec::new(),
            llm_rules: Vec::new(),
            llm: LlmSettings::default(),
            host_map: HostMap::new(),
            host_map_pinned: HostMap::new(),
            export: None,
        }
    }
}

/// Parses a listen address; `off` (for the proxies) disables the listener.
pub fn parse_addr(s: &str, what: &str, allow_off: bool) -> anyhow::Result<Option<SocketAddr>> {
    let s = s.trim();
    if allow_off && s.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    s.parse::<SocketAddr>().map(Some).with_context(|| {
        format!(
            "invalid {what} address {s:?}: expected IP:PORT like 127.0.0.1:43051{}",
            if allow_off { " or off" } else { "" }
        )
    })
}

/// Resolves the state directory: flag > `$GREYPROXY_STATE_DIR` > `$STATE_DIRECTORY`
/// (systemd) > `$XDG_STATE_HOME/greyproxy` > `~/.local/state/greyproxy`.
pub fn resolve_state_dir(flag: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = flag {
        return Ok(p.to_path_buf());
    }
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(p) = env("GREYPROXY_STATE_DIR") {
        return Ok(p);
    }
    if let Some(p) = env("STATE_DIRECTORY") {
        // systemd may pass several colon-separated directories; the first is ours.
        let s = p
            .to_string_lossy()
            .split(':')
            .next()
            .unwrap_or_default()
            .to_string();
        return Ok(PathBuf::from(s));
    }
    if let Some(p) = env("XDG_STATE_HOME") {
        return Ok(p.join("greyproxy"));
    }
    let home = env("HOME").context("cannot find a state directory: set --state-dir or HOME")?;
    Ok(home.join(".local/state/greyproxy"))
}

/// Creates the state directory (0700) if needed.
pub fn ensure_state_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if !dir.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create state directory {}", dir.display()))?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            parse_addr("127.0.0.1:0", "http", true).unwrap(),
            Some("127.0.0.1:0".parse().unwrap())
        );
        assert_eq!(parse_addr("off", "http", true).unwrap(), None);
        assert!(parse_addr("off", "control", false).is_err());
        let e = parse_addr("localhost", "socks", true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("socks"), "{e}");
        assert!(parse_addr("[::1]:43051", "http", true).unwrap().is_some());
    }

    #[test]
    fn config_file_rejects_unknown_keys_with_location() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "hold_timeout = 5\nhttp_adr = \"x\"\n").unwrap();
        let e = format!("{:#}", FileConfig::load(&p).unwrap_err());
        assert!(e.contains("http_adr") && e.contains("line 2"), "{e}");
        std::fs::write(&p, "hold_timeout = 5\n[control]\nauth = \"none\"\n").unwrap();
        let c = FileConfig::load(&p).unwrap();
        assert_eq!(c.hold_timeout, Some(5));
        assert_eq!(c.control.unwrap().auth.as_deref(), Some("none"));
    }

    #[test]
    fn control_socket_path_and_mode() {
        let dir = Path::new("/s");
        assert_eq!(
            control_socket_path(None, dir),
            Some(PathBuf::from("/s/control.sock"))
        );
        assert_eq!(control_socket_path(Some("OFF"), dir), None);
        assert_eq!(
            control_socket_path(Some("/run/g/c.sock"), dir),
            Some(PathBuf::from("/run/g/c.sock"))
        );
        assert!(!parse_socket_mode("0600").unwrap());
        assert!(parse_socket_mode("660").unwrap());
        let e = parse_socket_mode("0666").unwrap_err().to_string();
        assert!(e.contains("0600") && e.contains("0660"), "{e}");
        let c = FileConfig {
            control: Some(ControlConfig {
                socket_mode: Some("777".into()),
                ..ControlConfig::default()
            }),
            ..FileConfig::default()
        };
        let e = c
            .validate("[control]\nsocket_mode = \"777\"\n")
            .unwrap_err();
        assert_eq!(e.key, "control.socket_mode");
    }

    #[test]
    fn state_dir_flag_wins() {
        assert_eq!(
            resolve_state_dir(Some(Path::new("/x"))).unwrap(),
            PathBuf::from("/x")
        );
    }
}
