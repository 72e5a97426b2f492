//! `greyproxyd`: the command line. Parsing and error reporting live here; everything else is
//! in the library.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};
use greyproxyd::config::{
    DEFAULT_BODY_CAP, DEFAULT_MAX_STORED_BYTES, DEFAULT_MAX_TRANSACTIONS, DEFAULT_RESPONSE_TIMEOUT,
    DEFAULT_SHUTDOWN_GRACE, DEFAULT_SNIFF_TIMEOUT_MS,
};
use greyproxyd::config::{
    DEFAULT_CONTROL_ADDR, DEFAULT_HOLD_TIMEOUT, DEFAULT_HTTP_ADDR, DEFAULT_LOG_RETENTION,
    DEFAULT_SOCKS_ADDR, FileConfig, ServeConfig, ensure_state_dir, parse_addr, resolve_state_dir,
};
use greyproxyd::control::auth::{ensure_token, rotate_token, token_path};
use greyproxyd::control::session::Heartbeat;
use greyproxyd::mitm;
use greyproxyd::net::HostMap;
use greyproxyd::store::TxRetention;

// The allocator is ours, not the operator's (docs/performance.md#allocator). glibc's malloc
// keeps up to 8 arenas per core and returns little of them: a soak grew to 255–275 MiB without
// `MALLOC_ARENA_MAX=2`, and stayed there when idle. jemalloc (with a background thread that
// returns freed pages) held the lowest plateau and was the only one to give memory back within
// a minute of idleness; its options are below. `--no-default-features
// --features mimalloc` selects mimalloc instead, for comparison.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, compiled into the binary (jemalloc reads the C symbol `malloc_conf`,
/// `_rjem_malloc_conf` in this build, before the first allocation; `_RJEM_MALLOC_CONF` in the
/// environment still overrides it). Measured side by side in one soak
/// (docs/performance.md#allocator): one arena instead of jemalloc's four per core lets a buffer
/// freed by one worker thread be reused by the next, which halved the plateau under the mixed
/// load (108 → 51 MiB); freed pages are returned after 1 s instead of 10 s. The background
/// thread does the returning, so an idle daemon shrinks without an allocation to trigger it.
#[cfg(feature = "jemalloc")]
#[allow(unsafe_code)] // Defining a C symbol; nothing is called, read or written through it.
#[unsafe(export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: MallocConf =
    MallocConf(c"background_thread:true,narenas:1,dirty_decay_ms:1000,muzzy_decay_ms:0".as_ptr());

/// A `const char *` jemalloc reads once at start-up.
#[cfg(feature = "jemalloc")]
#[repr(transparent)]
struct MallocConf(*const std::ffi::c_char);
// SAFETY: the pointer is to a `'static` C string literal that nothing writes; sharing it
// between threads is sound.
#[cfg(feature = "jemalloc")]
#[allow(unsafe_code)]
unsafe impl Sync for MallocConf {}
#[cfg(all(feature = "mimalloc", not(feature = "jemalloc")))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Network gatekeeper for AI coding agents: HTTP and SOCKS5 proxy that holds unknown
/// destinations until a human decides over the control WebSocket.
#[derive(Debug, Parser)]
#[command(name = "greyproxyd", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the daemon.
    #[command(args_override_self = true)]
    Serve(Box<ServeArgs>),
    /// Show or rotate the control token.
    Token {
        #[command(subcommand)]
        action: TokenCmd,
        /// State directory (default: $GREYPROXY_STATE_DIR, $STATE_DIRECTORY,
        /// $XDG_STATE_HOME/greyproxy, ~/.local/state/greyproxy).
        #[arg(long, global = true, value_name = "DIR")]
        state_dir: Option<PathBuf>,
    },
    /// Create, locate or show the CA used to intercept TLS.
    Cert {
        #[command(subcommand)]
        action: CertCmd,
        /// State directory (default: $GREYPROXY_STATE_DIR, $STATE_DIRECTORY,
        /// $XDG_STATE_HOME/greyproxy, ~/.local/state/greyproxy).
        #[arg(long, global = true, value_name = "DIR")]
        state_dir: Option<PathBuf>,
    },
    /// Bridge stdin/stdout to the local control socket: `ssh HOST greyproxyd attach` is a
    /// control connection authenticated by the SSH login (greytui --ssh runs it).
    Attach {
        /// State directory whose daemon to attach to (default: $GREYPROXY_STATE_DIR,
        /// $STATE_DIRECTORY, $XDG_STATE_HOME/greyproxy, ~/.local/state/greyproxy, then the
        /// system service's /run/greyproxy/control.sock).
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
        /// The control socket itself (wins over --state-dir).
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
    },
    /// Check a config file.
    Config {
        #[command(subcommand)]
        action: ConfigCmd,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// Target shell.
        shell: clap_complete::Shell,
    },
    /// Write the man pages: to stdout (greyproxyd.1), or one file per command into DIR.
    Man {
        /// Directory for greyproxyd.1, greyproxyd-serve.1, ...
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCmd {
    /// Parse and validate FILE; prints "ok", or names the offending key and line and exits 1.
    Check {
        /// The TOML config file.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum CertCmd {
    /// Create the MITM CA (ca-cert.pem, ca-key.pem); refuses to replace one without --force.
    Generate {
        /// Replace an existing CA (clients must then trust the new one).
        #[arg(long)]
        force: bool,
    },
    /// Print the CA certificate's path.
    Path,
    /// Show the CA (subject, fingerprint, validity) and how to trust it.
    Show,
}

#[derive(Debug, Subcommand)]
enum TokenCmd {
    /// Print the token file's path.
    Path,
    /// Print the token (created if missing).
    Show,
    /// Replace the token; a running daemon accepts only the new one from now on.
    Rotate,
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// TOML config file; flags override its keys.
    #[arg(long, value_name = "FILE", env = "GREYPROXY_CONFIG")]
    config: Option<PathBuf>,
    /// State directory (token, store, CA).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Control WebSocket address (path /ws) [default: 127.0.0.1:43080].
    #[arg(long, value_name = "ADDR")]
    control_addr: Option<String>,
    /// Control unix socket (same protocol as /ws; the daemon's user, and with mode 0660 its
    /// group, need no token), or `off` [default: <state dir>/control.sock].
    #[arg(long, value_name = "PATH")]
    control_socket: Option<String>,
    /// Control socket mode: 0600 (the daemon's user only) or 0660 (its group too) [default:
    /// 0600].
    #[arg(long, value_name = "MODE")]
    control_socket_mode: Option<String>,
    /// HTTP proxy address, or `off` [default: 127.0.0.1:43051].
    #[arg(long, value_name = "ADDR")]
    http_addr: Option<String>,
    /// SOCKS5 proxy address, or `off` [default: 127.0.0.1:43052].
    #[arg(long, value_name = "ADDR")]
    socks_addr: Option<String>,
    /// DNS forwarder address (UDP and TCP), or `off` [default: 127.0.0.1:43053].
    #[arg(long, value_name = "ADDR")]
    dns_addr: Option<String>,
    /// DNS upstream (`IP` or `IP:PORT`), repeatable; replaces the config file's list
    /// [default: the system's resolvers].
    #[arg(long, value_name = "ADDR")]
    dns_upstream: Vec<String>,
    /// Seconds a connection to an undecided destination is held [default: 30].
    #[arg(long, value_name = "SECS")]
    hold_timeout: Option<u64>,
    /// Allow everything silently until restart (no prompts, no rules).
    #[arg(long)]
    silent_allow: bool,
    /// Do not intercept TLS: tunnel every connection raw (nothing is recorded).
    #[arg(long)]
    no_mitm: bool,
    /// Extra CA certificate (PEM) trusted for origins, besides the system's; repeatable.
    #[arg(long, value_name = "PEM")]
    upstream_ca: Vec<PathBuf>,
    /// Dial NAME at IP instead of resolving it (`api.example.com=127.0.0.5`); repeatable, wins
    /// over the config file's `[hosts]`. Policy and recording still see NAME.
    #[arg(long = "map-host", value_name = "NAME=IP")]
    map_host: Vec<String>,
    /// External middleware reached over WebSocket (`ws://`, `wss://`; `http(s)://` is
    /// rewritten); repeatable, consulted in order before `--middleware-cmd` ones.
    #[arg(long = "middleware", value_name = "URL")]
    middleware: Vec<String>,
    /// External middleware spawned as a child speaking NDJSON on stdio; the command line is
    /// split like a shell would (quotes, backslashes) but never run by one; repeatable.
    #[arg(long = "middleware-cmd", value_name = "CMD")]
    middleware_cmd: Vec<String>,
}

fn serve_config(a: ServeArgs) -> anyhow::Result<ServeConfig> {
    let file = match &a.config {
        Some(p) => FileConfig::load(p)?,
        None => FileConfig::default(),
    };
    let llm_rules = file.endpoint_rules();
    let llm = greyproxyd::config::LlmSettings::from_file(file.llm.as_ref())?;
    let control_auth = file
        .control_auth()
        .map_err(|e| anyhow::anyhow!("control.auth: {e}"))?;
    let host_map_pinned =
        HostMap::from_flags(&a.map_host).map_err(|e| anyhow::anyhow!("--map-host: {e}"))?;
    let host_map = file
        .host_map()
        .map_err(|e| anyhow::anyhow!("hosts: {e}"))?
        .merged(&host_map_pinned);
    let state_dir = resolve_state_dir(a.state_dir.as_deref().or(file.state_dir.as_deref()))?;
    let pick = |flag: Option<String>, key: Option<String>, def: &str| {
        flag.or(key).unwrap_or_else(|| def.to_string())
    };
    let control = pick(a.control_addr, file.control_addr, DEFAULT_CONTROL_ADDR);
    let file_control = file.control.as_ref();
    let control_socket = greyproxyd::config::control_socket_path(
        a.control_socket
            .as_deref()
            .or(file_control.and_then(|c| c.socket.as_deref())),
        &state_dir,
    );
    let control_socket_group = match a
        .control_socket_mode
        .as_deref()
        .or(file_control.and_then(|c| c.socket_mode.as_deref()))
    {
        Some(m) => greyproxyd::config::parse_socket_mode(m)?,
        None => false,
    };
    let http = pick(a.http_addr, file.http_addr, DEFAULT_HTTP_ADDR);
    let socks = pick(a.socks_addr, file.socks_addr, DEFAULT_SOCKS_ADDR);
    let dns = pick(
        a.dns_addr,
        file.dns_addr,
        greyproxyd::config::DEFAULT_DNS_ADDR,
    );
    let dns_upstreams = if a.dns_upstream.is_empty() {
        file.dns_upstream.unwrap_or_default()
    } else {
        a.dns_upstream
    }
    .iter()
    .map(|u| greyproxyd::proxy::dns::upstream::parse_upstream(u))
    .collect::<Result<Vec<_>, _>>()?;
    let hold_timeout_pinned = a.hold_timeout.is_some();
    let hold = a
        .hold_timeout
        .or(file.hold_timeout)
        .unwrap_or(DEFAULT_HOLD_TIMEOUT);
    if hold == 0 {
        anyhow::bail!("hold_timeout must be at least 1 second");
    }
    let mut heartbeat = Heartbeat::default();
    if let Some(c) = &file.control {
        if let Some(s) = c.ping_interval.filter(|s| *s > 0) {
            heartbeat.ping_every = Duration::from_secs(s);
        }
        if let Some(s) = c.pong_timeout.filter(|s| *s > 0) {
            heartbeat.pong_within = Duration::from_secs(s);
        }
    }
    let middlewares = greyproxyd::middleware::build_configs(
        &a.middleware,
        &a.middleware_cmd,
        file.middleware.as_deref().unwrap_or_default(),
    )?;
    greyproxyd::endpoints::validate(&llm_rules)
        .map_err(|e| anyhow::anyhow!("llm_endpoint: {e}"))?;
    let mitm = file.mitm.unwrap_or_default();
    let capture = file.capture.unwrap_or_default();
    let mut upstream_ca = file.upstream_ca.unwrap_or_default();
    upstream_ca.extend(a.upstream_ca);
    Ok(ServeConfig {
        upstream_ca,
        mitm_bypass: mitm.bypass.unwrap_or_default(),
        sniff_timeout: Duration::from_millis(
            mitm.sniff_timeout_ms.unwrap_or(DEFAULT_SNIFF_TIMEOUT_MS),
        ),
        body_cap: capture.max_body_bytes.unwrap_or(DEFAULT_BODY_CAP),
        redact_headers: capture.redact_headers.unwrap_or_default(),
        tx_retention: TxRetention {
            max_rows: capture.max_transactions.unwrap_or(DEFAULT_MAX_TRANSACTIONS),
            max_body_bytes: capture.max_stored_bytes.unwrap_or(DEFAULT_MAX_STORED_BYTES),
        },
        response_timeout: Duration::from_secs(
            capture
                .response_timeout
                .unwrap_or(DEFAULT_RESPONSE_TIMEOUT)
                .max(1),
        ),
        state_dir,
        control_socket,
        control_socket_group,
        control_addr: parse_addr(&control, "control", false)?
            .context("control address required")?,
        http_addr: parse_addr(&http, "HTTP proxy", true)?,
        socks_addr: parse_addr(&socks, "SOCKS5 proxy", true)?,
        dns_addr: parse_addr(&dns, "DNS", true)?,
        dns_upstreams,
        hold_timeout: Duration::from_secs(hold),
        silent_allow: a.silent_allow || file.silent_allow.unwrap_or(false),
        no_mitm: a.no_mitm || file.no_mitm.unwrap_or(false),
        control_auth,
        log_retention: file.log_retention.unwrap_or(DEFAULT_LOG_RETENTION),
        heartbeat,
        config_file: a.config,
        hold_timeout_pinned,
        shutdown_grace: Duration::from_secs(file.shutdown_grace.unwrap_or(DEFAULT_SHUTDOWN_GRACE)),
        middlewares,
        llm_rules,
        llm,
        host_map,
        host_map_pinned,
        export: greyproxyd::export::OtlpSettings::from_file(file.export.as_ref())?,
    })
}

fn init_tracing() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("JOURNAL_STREAM").is_none())
        .init();
}

/// `greyproxyd attach`: stdout carries the protocol, so errors go to stderr only.
fn attach(state_dir: Option<PathBuf>, socket: Option<PathBuf>) -> anyhow::Result<()> {
    use greyproxyd::control::attach;
    let explicit = state_dir.is_some();
    // No HOME: only an explicit socket or the system one can be meant.
    let dir = resolve_state_dir(state_dir.as_deref()).ok();
    let candidates = attach::candidates(socket.as_deref(), dir.as_deref(), explicit);
    let stream = attach::connect(&candidates)?;
    attach::bridge(stream).context("the control connection failed")?;
    // The stdin thread may still be blocked reading: end the process without waiting for it.
    std::process::exit(0)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Serve(a) => {
            init_tracing();
            // One crypto provider for the whole process (aws-lc-rs), chosen before any TLS use.
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
            let cfg = serve_config(*a)?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            rt.block_on(greyproxyd::daemon::run(cfg))
        }
        Cmd::Token { action, state_dir } => {
            let dir = resolve_state_dir(state_dir.as_deref())?;
            match action {
                TokenCmd::Path => println!("{}", token_path(&dir).display()),
                TokenCmd::Show => {
                    ensure_state_dir(&dir)?;
                    println!(
                        "{}",
                        ensure_token(&dir).context("cannot read the control token")?
                    );
                }
                TokenCmd::Rotate => {
                    ensure_state_dir(&dir)?;
                    println!(
                        "{}",
                        rotate_token(&dir).context("cannot rotate the control token")?
                    );
                }
            }
            Ok(())
        }
        Cmd::Attach { state_dir, socket } => {
            // One line on stderr (whatever RUST_BACKTRACE says): over ssh it is what the
            // client shows for this host.
            if let Err(e) = attach(state_dir, socket) {
                eprintln!("greyproxyd attach: {e:#}");
                std::process::exit(1);
            }
            Ok(())
        }
        Cmd::Config {
            action: ConfigCmd::Check { file },
        } => {
            FileConfig::load(&file)?;
            println!("ok");
            Ok(())
        }
        Cmd::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "greyproxyd",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Cmd::Man { dir } => {
            let cmd = Cli::command();
            match dir {
                Some(d) => {
                    std::fs::create_dir_all(&d)
                        .with_context(|| format!("cannot create {}", d.display()))?;
                    clap_mangen::generate_to(cmd, &d)
                        .with_context(|| format!("cannot write man pages to {}", d.display()))?;
                }
                None => clap_mangen::Man::new(cmd)
                    .render(&mut std::io::stdout())
                    .context("cannot write the man page")?,
            }
            Ok(())
        }
        Cmd::Cert { action, state_dir } => {
            // Warnings (a key file tightened to 0600) go to stderr.
            init_tracing();
            let dir = resolve_state_dir(state_dir.as_deref())?;
            let out = match action {
                CertCmd::Generate { force } => {
                    ensure_state_dir(&dir)?;
                    mitm::cli::generate(&dir, force)?
                }
                CertCmd::Path => mitm::cli::path(&dir),
                CertCmd::Show => mitm::cli::show(&dir)?,
            };
            print!("{out}");
            Ok(())
        }
    }
}
