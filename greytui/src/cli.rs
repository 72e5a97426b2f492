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
