//! The fleet: which daemons greytui talks to when it talks to more than the local one. Hosts
//! come from `--ssh [user@]host` (each runs `ssh -T -o BatchMode=yes HOST greyproxyd attach`,
//! or the `--ssh-command` program instead of `ssh`), from repeated `--url` (each with the
//! `--token-file` of the same position) and from `--host NAME` entries of
//! `~/.config/greytui/hosts.toml` (docs/fleet.md):
//!
//! ```toml
//! [[host]]
//! name = "build1"
//! ssh = "alice@build1.example"      # or: url = "ws://10.0.0.5:43080/ws" + token_file = "…"
//! ssh_command = "ssh -p 2222"       # optional, instead of `ssh`
//! remote_command = "greyproxyd attach --socket /run/greyproxy/control.sock"   # optional
//! ```
//!
//! With none of these flags (or a single `--url`) greytui is the single-daemon client it always
//! was, and this module is not involved.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::cli::Cli;
use crate::client::{Endpoint, Target};
use crate::stdio::StdioCommand;

/// The remote command run over ssh.
pub const REMOTE_COMMAND: &str = "greyproxyd attach";

/// One daemon of the fleet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    /// Shown in the HOST column and used in `HOST:ID`.
    pub name: String,
    /// How to reach it.
    pub target: Target,
}

/// Why the fleet cannot be assembled.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// hosts.toml is unreadable or invalid.
    #[error("{path}: {detail}")]
    HostsFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// `--host NAME` not in hosts.toml.
    #[error("no host {name:?} in {path}")]
    UnknownHost {
        /// The name.
        name: String,
        /// The file searched.
        path: PathBuf,
    },
    /// Two hosts with one name.
    #[error("host name {0:?} is given twice; name them apart in hosts.toml")]
    Duplicate(String),
    /// An entry with neither or both of `ssh` and `url`, or an empty ssh command.
    #[error("host {0:?}: {1}")]
    Invalid(String, String),
    /// A token file that cannot be read.
    #[error("host {0:?}: {1}")]
    Token(String, crate::paths::TokenError),
}

/// `hosts.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostsFile {
    #[serde(default)]
    host: Vec<HostEntry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostEntry {
    name: String,
    ssh: Option<String>,
    url: Option<String>,
    token_file: Option<PathBuf>,
    ssh_command: Option<String>,
    remote_command: Option<String>,
}

/// `$XDG_CONFIG_HOME/greytui/hosts.toml`, else `~/.config/greytui/hosts.toml`.
pub fn hosts_file(env: &dyn Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let var = |k: &str| env(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    var("XDG_CONFIG_HOME")
        .or_else(|| var("HOME").map(|h| h.join(".config")))
        .map(|d| d.join("greytui/hosts.toml"))
}

/// The name a `[user@]host` target is shown under: the host alone.
fn ssh_name(target: &str) -> String {
    target.rsplit('@').next().unwrap_or(target).to_string()
}

/// `host:port` of a URL, for its name.
fn url_name(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest).to_string()
}

/// The argv that runs the remote attach over ssh: `ssh -T -o BatchMode=yes TARGET greyproxyd
/// attach` (batch mode: a host that would ask for a password fails instead of hanging).
pub fn ssh_argv(
    ssh_command: Option<&str>,
    target: &str,
    remote: Option<&str>,
) -> Result<Vec<String>, String> {
    let mut argv: Vec<String> = ssh_command
        .unwrap_or("ssh")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if argv.is_empty() {
        return Err("empty ssh command".into());
    }
    argv.extend(["-T", "-o", "BatchMode=yes"].map(String::from));
    // `--` keeps a target starting with '-' from being read as an option.
    argv.push("--".into());
    argv.push(target.to_string());
    argv.extend(
        remote
            .unwrap_or(REMOTE_COMMAND)
            .split_whitespace()
            .map(str::to_string),
    );
    Ok(argv)
}

fn ssh_host(
    name: String,
    target: &str,
    ssh_command: Option<&str>,
    remote: Option<&str>,
) -> Result<HostSpec, FleetError> {
    let argv =
        ssh_argv(ssh_command, target, remote).map_err(|e| FleetError::Invalid(name.clone(), e))?;
    Ok(HostSpec {
        target: Target::Stdio(StdioCommand {
            argv,
            label: format!("ssh {target}"),
        }),
        name,
    })
}

fn url_host(
    name: String,
    url: &str,
    token_file: Option<&Path>,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<HostSpec, FleetError> {
    let (token, _) = crate::paths::token(token_file, None, env)
        .map_err(|e| FleetError::Token(name.clone(), e))?;
    Ok(HostSpec {
        target: Target::Ws(Endpoint {
            url: url.to_string(),
            token,
        }),
        name,
    })
}

/// Whether the flags ask for the fleet (any `--ssh` or `--host`, or more than one `--url`).
pub fn is_fleet(cli: &Cli) -> bool {
    !cli.ssh.is_empty() || !cli.host.is_empty() || cli.url.len() > 1
}

/// The fleet the flags describe, in the order given: `--host`s, then `--ssh`s, then `--url`s.
pub fn from_cli(
    cli: &Cli,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<Vec<HostSpec>, FleetError> {
    let mut out: Vec<HostSpec> = Vec::new();
    if !cli.host.is_empty() {
        let path = cli
            .hosts_file
            .clone()
            .or_else(|| hosts_file(env))
            .unwrap_or_else(|| PathBuf::from("hosts.toml"));
        let text = std::fs::read_to_string(&path).map_err(|e| FleetError::HostsFile {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        let file: HostsFile = toml::from_str(&text).map_err(|e| FleetError::HostsFile {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        for name in &cli.host {
            let Some(e) = file.host.iter().find(|h| &h.name == name) else {
                return Err(FleetError::UnknownHost {
                    name: name.clone(),
                    path,
                });
            };
            out.push(entry_host(e, cli, env)?);
        }
    }
    for t in &cli.ssh {
        out.push(ssh_host(ssh_name(t), t, cli.ssh_command.as_deref(), None)?);
    }
    for (i, u) in cli.url.iter().enumerate() {
        out.push(url_host(
            url_name(u),
            u,
            cli.token_file.get(i).map(PathBuf::as_path),
            env,
        )?);
    }
    for (i, h) in out.iter().enumerate() {
        if out[..i].iter().any(|o| o.name == h.name) {
            return Err(FleetError::Duplicate(h.name.clone()));
        }
    }
    Ok(out)
}

fn entry_host(
    e: &HostEntry,
    cli: &Cli,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<HostSpec, FleetError> {
    match (&e.ssh, &e.url) {
        (Some(t), None) => ssh_host(
            e.name.clone(),
            t,
            e.ssh_command.as_deref().or(cli.ssh_command.as_deref()),
            e.remote_command.as_deref(),
        ),
        (None, Some(u)) => url_host(e.name.clone(), u, e.token_file.as_deref(), env),
        _ => Err(FleetError::Invalid(
            e.name.clone(),
            "give exactly one of `ssh` and `url`".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use clap::Parser;

    use super::*;

    fn no_env(_: &str) -> Option<OsString> {
        None
    }

    #[test]
    fn ssh_targets_become_batch_mode_ssh_commands() {
        assert_eq!(
            ssh_argv(None, "alice@b1", None).unwrap(),
            [
                "ssh",
                "-T",
                "-o",
                "BatchMode=yes",
                "--",
                "alice@b1",
                "greyproxyd",
                "attach"
            ]
        );
        let a = ssh_argv(Some("ssh -p 2222"), "b1", Some("gp attach --socket /s")).unwrap();
        assert_eq!(a[..3], ["ssh", "-p", "2222"]);
        assert_eq!(a[a.len() - 4..], ["gp", "attach", "--socket", "/s"]);
        assert!(ssh_argv(Some("  "), "b1", None).is_err());
    }

    #[test]
    fn flags_make_a_fleet_in_order_with_unique_names() {
        let cli = Cli::try_parse_from([
            "greytui",
            "--ssh",
            "alice@b1",
            "--ssh",
            "b2",
            "--url",
            "ws://127.0.0.1:9/ws",
        ])
        .unwrap();
        assert!(is_fleet(&cli));
        let f = from_cli(&cli, &no_env).unwrap();
        let names: Vec<_> = f.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["b1", "b2", "127.0.0.1:9"]);
        assert_eq!(f[0].target.label(), "ssh alice@b1");

        let cli = Cli::try_parse_from(["greytui", "--ssh", "a@b1", "--ssh", "c@b1"]).unwrap();
        assert!(matches!(
            from_cli(&cli, &no_env),
            Err(FleetError::Duplicate(_))
        ));
        let single = Cli::try_parse_from(["greytui", "--url", "ws://x/ws"]).unwrap();
        assert!(!is_fleet(&single));
    }

    #[test]
    fn hosts_toml_entries_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hosts.toml");
        std::fs::write(
            &file,
            "[[host]]\nname = \"lab\"\nssh = \"ops@lab.example\"\nssh_command = \"ssh -p 2200\"\n\
             [[host]]\nname = \"bad\"\n",
        )
        .unwrap();
        let f = file.display().to_string();
        let cli = Cli::try_parse_from(["greytui", "--hosts-file", &f, "--host", "lab"]).unwrap();
        let hosts = from_cli(&cli, &no_env).unwrap();
        let Target::Stdio(c) = &hosts[0].target else {
            panic!("{hosts:?}")
        };
        assert_eq!(c.argv[..3], ["ssh", "-p", "2200"]);
        assert!(c.argv.contains(&"ops@lab.example".to_string()));

        let cli = Cli::try_parse_from(["greytui", "--hosts-file", &f, "--host", "bad"]).unwrap();
        let e = from_cli(&cli, &no_env).unwrap_err().to_string();
        assert!(e.contains("exactly one of `ssh` and `url`"), "{e}");
        let cli = Cli::try_parse_from(["greytui", "--hosts-file", &f, "--host", "nope"]).unwrap();
        let e = from_cli(&cli, &no_env).unwrap_err().to_string();
        assert!(e.contains("no host \"nope\""), "{e}");
        assert_eq!(
            hosts_file(&|k| (k == "HOME").then(|| "/home/a".into())),
            Some(PathBuf::from("/home/a/.config/greytui/hosts.toml"))
        );
    }
}
