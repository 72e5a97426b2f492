//! Command line of `greytui` (docs/greytui.md): the dashboard by default, `--once COMMAND` for
//! scripts. Connection flags are global so that they may follow the command.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use greyproxy_protocol::command::Scope;

/// Keyboard-driven dashboard for greyproxyd; `--once COMMAND` runs one command for scripts.
#[derive(Debug, Parser)]
#[command(name = "greytui", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    /// Control WebSocket URL [default: from daemon.json in the state dir, else
    /// ws://127.0.0.1:43080/ws]; repeat it for several daemons
    #[arg(long, global = true, value_name = "URL")]
    pub(crate) url: Vec<String>,
    /// File holding the control token [default: $GREYPROXY_TOKEN, else control.token in the state
    /// dir]; with several --url, the one in the same position
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) token_file: Vec<PathBuf>,
    /// A daemon reached by ssh (`[USER@]HOST`; runs `ssh -T -o BatchMode=yes HOST greyproxyd
    /// attach`, authenticated by the SSH login); repeatable
    #[arg(long, global = true, value_name = "[USER@]HOST")]
    pub(crate) ssh: Vec<String>,
    /// The program (and options) run instead of `ssh` for --ssh hosts, e.g. "ssh -p 2222"
    #[arg(long, global = true, value_name = "COMMAND")]
    pub(crate) ssh_command: Option<String>,
    /// A daemon named in ~/.config/greytui/hosts.toml; repeatable
    #[arg(long, global = true, value_name = "NAME")]
    pub(crate) host: Vec<String>,
    /// The hosts file read by --host [default: $XDG_CONFIG_HOME/greytui/hosts.toml, else
    /// ~/.config/greytui/hosts.toml]
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) hosts_file: Option<PathBuf>,
    /// The daemon's state directory [default: $GREYPROXY_STATE_DIR, $STATE_DIRECTORY,
    /// $XDG_STATE_HOME/greyproxy, ~/.local/state/greyproxy]
    #[arg(long, global = true, value_name = "DIR")]
    pub(crate) state_dir: Option<PathBuf>,
    /// Run one command and exit (see the commands below)
    #[arg(long)]
    pub once: bool,
    /// With --once: print JSON instead of a table (watch always prints JSON lines)
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Dashboard: do not send desktop notifications (the terminal bell still rings)
    #[arg(long)]
    pub(crate) no_notify: bool,
    /// The command to run with --once.
    #[command(subcommand)]
    pub command: Option<OnceCmd>,
}

/// Shown after `--help`.
const EXIT_CODES: &str = "Exit codes with --once: 0 done; 1 the daemon refused (unknown id, \
bad scope or duration…); 2 usage; 3 cannot connect or unauthorized.";

/// Commands of `--once`.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum OnceCmd {
    /// Allow a pending request (creates an allow rule, releases its held connections)
    Allow(DecideOpts),
    /// Deny a pending request (creates a deny rule, ends its held connections)
    Deny(DecideOpts),
    /// Dismiss a pending request without a rule
    Dismiss {
        /// Pending request id (HOST:ID with several hosts)
        id: PendingRef,
    },
    /// List pending requests
    Pending,
    /// List rules
    Rules,
    /// Show daemon status
    Status,
    /// List the configured external middlewares and their state
    Middlewares,
    /// List LLM conversations, latest activity first
    Conversations {
        /// Only this container (exact name)
        #[arg(long, value_name = "NAME")]
        container: Option<String>,
        /// At most this many
        #[arg(long, value_name = "N", default_value_t = 100)]
        limit: usize,
    },
    /// Show one LLM conversation turn by turn
    Conversation {
        /// Conversation id (as `conversations` lists it)
        id: String,
    },
    /// List LLM calls, newest first
    Calls {
        /// Only the calls of this conversation
        #[arg(long, value_name = "ID")]
        conversation: Option<String>,
        /// At most this many
        #[arg(long, value_name = "N", default_value_t = 100)]
        limit: usize,
    },
    /// LLM tokens and cost grouped by container, client, model or day
    Usage {
        /// Group rows by
        #[arg(long, value_enum, value_name = "GROUP", default_value_t = UsageBy::Container)]
        by: UsageBy,
        /// Window start: a span back from now (1h, 24h, 7d), today (UTC), start (the daemon's)
        /// or an RFC 3339 time [default: everything stored]
        #[arg(long, value_name = "SINCE")]
        since: Option<String>,
    },
    /// Credentials: add (the secret is read from standard input, never from the command line),
    /// rotate, delete, list, decide a held secret egress
    #[command(subcommand)]
    Credential(CredentialCmd),
    /// Launcher sessions: create (prints the placeholders), heartbeat, delete, list
    #[command(subcommand)]
    Session(SessionCmd),
    /// Export recorded traffic: a HAR 1.2 file, or one request as a curl command
    Export {
        /// What to export
        #[command(subcommand)]
        what: ExportCmd,
    },
    /// Print events as JSON lines until interrupted
    Watch {
        /// Only this event type (repeatable), e.g. pending_request.created
        #[arg(long = "event", value_name = "TYPE")]
        events: Vec<String>,
    },
    /// Print a shell completion script (needs no daemon)
    Completions {
        /// bash, zsh, fish, elvish or powershell
        shell: clap_complete::Shell,
    },
    /// Print the man page (needs no daemon)
    Man,
}

/// `--once credential …`.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum CredentialCmd {
    /// Add a credential; its secret is read from standard input (typed without echo on a
    /// terminal)
    Add {
        /// The label: the variable name agents get (OPENAI_API_KEY)
        label: String,
        /// Where it may go: `host[:port][/path-prefix]`, *.x or **.x (repeatable, at least one;
        /// `--dest`, since `--host` names a daemon of a fleet)
        #[arg(
            long = "dest",
            visible_alias = "destination",
            value_name = "PATTERN",
            required = true
        )]
        hosts: Vec<String>,
        /// Container glob it may be used from (repeatable) [default: any]
        #[arg(long = "container", value_name = "GLOB")]
        containers: Vec<String>,
        /// Also substitute in request bodies
        #[arg(long, value_enum, value_name = "KIND")]
        body: Option<BodyKind>,
        /// Also substitute over plain HTTP (not advised)
        #[arg(long)]
        plaintext: bool,
        /// Valid for this long (30d, 12h) [default: no expiry]
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
    },
    /// Replace a credential's secret (read from standard input); its placeholders stay valid
    Rotate {
        /// The credential's label
        label: String,
    },
    /// Delete a credential; its placeholders are held from then on
    Delete {
        /// The credential's label
        label: String,
    },
    /// List credentials (a preview of each secret, never the secret)
    List,
    /// Decide a held secret egress (a pending request of kind credential)
    Decide {
        /// Pending request id
        id: u64,
        /// What to do
        #[arg(value_enum)]
        decision: EgressDecision,
        /// bind: exact (default), any_port, subdomain_wildcard, all_containers
        #[arg(long, value_name = "SCOPE")]
        scope: Option<String>,
        /// bind: once, 1h, 7d, permanent (default)…
        #[arg(long, value_name = "DURATION")]
        duration: Option<String>,
        /// refuse: the reason in the 403 body
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
}

/// Which request bodies a credential is substituted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BodyKind {
    /// JSON bodies
    Json,
    /// application/x-www-form-urlencoded bodies
    Form,
    /// Both
    Both,
}

/// The decisions on a held secret egress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EgressDecision {
    /// 403; the session lives on
    Refuse,
    /// 403, and the placeholder's session ends
    RefuseEnd,
    /// Forward it with the placeholder (the origin never sees the secret)
    SendUnchanged,
    /// Substitute the secret this once
    SendOnce,
    /// Bind the destination to the credential (--scope, --duration), then send
    Bind,
}

/// `--once session …`.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum SessionCmd {
    /// Register a session: one placeholder per credential, printed (with --env as export
    /// lines for a launcher script)
    Create {
        /// The container name the sandbox's requests carry (proxy user name)
        #[arg(long, value_name = "NAME")]
        container: String,
        /// A credential's label (repeatable)
        #[arg(long = "credential", value_name = "LABEL")]
        credentials: Vec<String>,
        /// Lifetime after the last heartbeat (at most 1h) [default: 15m]
        #[arg(long, value_name = "DURATION")]
        ttl: Option<String>,
        /// Your own session id ([A-Za-z0-9_-], at most 64) [default: minted]
        #[arg(long, value_name = "ID")]
        id: Option<String>,
        /// Learning mode: every destination allowed for the container while the session lives
        #[arg(long)]
        allow_all: bool,
        /// Print `export LABEL='placeholder'` lines and GREYPROXY_SESSION_ID
        #[arg(long)]
        env: bool,
    },
    /// Keep a session alive for another TTL
    Heartbeat {
        /// Session id
        id: String,
    },
    /// End a session; its placeholders stop working
    Delete {
        /// Session id
        id: String,
    },
    /// List live sessions
    List,
}

/// What `--once export` writes.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum ExportCmd {
    /// Recorded transactions as HAR 1.2 on stdout (WebSocket messages as _webSocketMessages)
    Har(HarOpts),
    /// One recorded request as a runnable curl command (redacted headers stay redacted)
    Curl {
        /// Transaction id (as the Activity view and `export har` show it)
        id: u64,
    },
}

/// Filters of `--once export har`; they combine, none exports everything stored.
#[derive(Debug, Clone, PartialEq, Eq, Default, Args)]
pub struct HarOpts {
    /// Container name (case-insensitive substring)
    #[arg(long, value_name = "NAME")]
    pub container: Option<String>,
    /// Host or URL (case-insensitive substring)
    #[arg(long, value_name = "TEXT")]
    pub destination: Option<String>,
    /// Window start: a span back from now (1h, 7d) or an RFC 3339 time
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Window end (exclusive): a span back from now or an RFC 3339 time
    #[arg(long, value_name = "WHEN")]
    pub until: Option<String>,
    /// Only the transactions of this LLM conversation
    #[arg(long, value_name = "ID")]
    pub conversation: Option<String>,
}

/// What `--once usage` groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum UsageBy {
    /// Container name
    Container,
    /// Agent program
    Client,
    /// Model answered
    Model,
    /// UTC day
    Day,
}

impl UsageBy {
    /// `usage_summary`'s `group_by`.
    pub(crate) fn wire(self) -> &'static str {
        match self {
            UsageBy::Container => "container",
            UsageBy::Client => "client",
            UsageBy::Model => "model",
            UsageBy::Day => "day",
        }
    }
}

/// Arguments of `allow` and `deny`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct DecideOpts {
    /// Pending request id (HOST:ID with several hosts)
    pub(crate) id: PendingRef,
    /// exact (default), any_port, subdomain_wildcard, all_containers
    #[arg(long, value_name = "SCOPE")]
    pub(crate) scope: Option<String>,
    /// once, 1h, 12h, 24h, 7d, 30d, permanent (default) or a span such as 30m
    #[arg(long, value_name = "DURATION")]
    pub(crate) duration: Option<String>,
    /// Free text stored on the rule
    #[arg(long, value_name = "TEXT")]
    pub(crate) notes: Option<String>,
}

/// A pending request named on the command line: `ID`, or `HOST:ID` in a fleet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRef {
    /// The host's name, when given.
    pub host: Option<String>,
    /// The id on that host.
    pub id: u64,
}

impl std::str::FromStr for PendingRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (host, id) = match s.rsplit_once(':') {
            Some((h, id)) if !h.is_empty() => (Some(h.to_string()), id),
            _ => (None, s),
        };
        let id = id
            .parse()
            .map_err(|_| format!("invalid pending id {s:?}: use ID or HOST:ID"))?;
        Ok(PendingRef { host, id })
    }
}

impl From<u64> for PendingRef {
    fn from(id: u64) -> Self {
        PendingRef { host: None, id }
    }
}

impl Cli {
    /// The single `--url`, when not in fleet mode.
    pub(crate) fn single_url(&self) -> Option<&str> {
        self.url.first().map(String::as_str)
    }

    /// The single `--token-file`, when not in fleet mode.
    pub(crate) fn single_token_file(&self) -> Option<&std::path::Path> {
        self.token_file.first().map(PathBuf::as_path)
    }
}

/// Parses a scope name; the wire names and the short forms `any-port`/`port`, `subdomain`,
/// `all-containers`/`all` are accepted.
pub(crate) fn parse_scope(s: &str) -> Result<Scope, String> {
    match s.to_ascii_lowercase().replace('-', "_").as_str() {
        "exact" => Ok(Scope::Exact),
        "any_port" | "port" => Ok(Scope::AnyPort),
        "subdomain_wildcard" | "subdomain" => Ok(Scope::SubdomainWildcard),
        "all_containers" | "all" => Ok(Scope::AllContainers),
        _ => Err(format!(
            "unknown scope {s:?}: use exact, any_port, subdomain_wildcard or all_containers"
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn once_commands_parse_with_flags_anywhere() {
        let c = Cli::try_parse_from([
            "greytui",
            "--once",
            "allow",
            "12",
            "--scope",
            "any_port",
            "--duration",
            "1h",
            "--state-dir",
            "/s",
        ])
        .unwrap();
        assert!(c.once);
        assert_eq!(c.state_dir, Some(PathBuf::from("/s")));
        assert_eq!(
            c.command,
            Some(OnceCmd::Allow(DecideOpts {
                id: 12.into(),
                scope: Some("any_port".into()),
                duration: Some("1h".into()),
                notes: None
            }))
        );
        let c = Cli::try_parse_from(["greytui", "--once", "pending", "--json"]).unwrap();
        assert!(c.json);
        let c = Cli::try_parse_from(["greytui", "--once", "middlewares", "--json"]).unwrap();
        assert!(c.json);
        assert_eq!(c.command, Some(OnceCmd::Middlewares));
        let c = Cli::try_parse_from([
            "greytui", "--once", "watch", "--event", "a.b", "--event", "c",
        ])
        .unwrap();
        assert_eq!(
            c.command,
            Some(OnceCmd::Watch {
                events: vec!["a.b".into(), "c".into()]
            })
        );
        let c = Cli::try_parse_from([
            "greytui", "--once", "usage", "--by", "model", "--since", "24h", "--json",
        ])
        .unwrap();
        assert!(c.json);
        assert_eq!(
            c.command,
            Some(OnceCmd::Usage {
                by: UsageBy::Model,
                since: Some("24h".into())
            })
        );
        let c =
            Cli::try_parse_from(["greytui", "--once", "calls", "--conversation", "x:y"]).unwrap();
        assert_eq!(
            c.command,
            Some(OnceCmd::Calls {
                conversation: Some("x:y".into()),
                limit: 100
            })
        );
        assert!(Cli::try_parse_from(["greytui", "--once", "usage", "--by", "galaxy"]).is_err());
        assert!(Cli::try_parse_from(["greytui", "--once", "conversation"]).is_err());
        assert!(Cli::try_parse_from(["greytui", "--once", "allow", "x"]).is_err());
        assert!(Cli::try_parse_from(["greytui", "--bogus"]).is_err());
        let c = Cli::try_parse_from(["greytui", "--ssh", "a", "--once", "allow", "a:7"]).unwrap();
        let Some(OnceCmd::Allow(o)) = c.command else {
            panic!()
        };
        assert_eq!(
            o.id,
            PendingRef {
                host: Some("a".into()),
                id: 7
            }
        );
        assert!(Cli::try_parse_from(["greytui", "--once", "dismiss", "a:"]).is_err());
    }

    #[test]
    fn scopes() {
        assert_eq!(parse_scope("exact"), Ok(Scope::Exact));
        assert_eq!(parse_scope("any-port"), Ok(Scope::AnyPort));
        assert_eq!(parse_scope("subdomain"), Ok(Scope::SubdomainWildcard));
        assert_eq!(parse_scope("ALL_CONTAINERS"), Ok(Scope::AllContainers));
        assert!(parse_scope("galaxy").is_err());
    }
}
