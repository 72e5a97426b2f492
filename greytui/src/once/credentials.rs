//! `--once credential …` and `--once session …` (docs/credentials.md): what a launcher script
//! and an operator at a shell need. A secret is read from standard input only (never from the
//! command line, where `ps` and shell history would show it): a terminal is asked without echo,
//! a pipe is read to its end (one trailing newline dropped). Nothing printed here contains a
//! secret; `session create --env` prints the placeholders, which are not secrets.

use std::io::{IsTerminal, Read, Write};
use std::time::{Duration, SystemTime};

use greyproxy_protocol::Command;
use greyproxy_protocol::credentials::{
    CreateCredentialArgs, CreateSessionArgs, CredentialDecision, CredentialInfo,
    CredentialLabelArgs, CredentialList, CredentialPlaces, DecideCredentialArgs, SessionCreated,
    SessionIdArgs, SessionInfo, SessionList, UpdateCredentialArgs, WireSecret,
};

use super::{ExitCode, Failure, io_failure, print_json, query, request};
use crate::cli::{BodyKind, CredentialCmd, EgressDecision, SessionCmd, parse_scope};
use crate::client::Connection;
use crate::format::{expiry, short_span, text_table};

/// The daemon refuses longer secrets; reading stops a little after.
const MAX_SECRET: u64 = 8192;

fn usage(m: impl Into<String>) -> Failure {
    Failure::new(ExitCode::Usage, m)
}

/// Reads a secret for `label` from standard input.
pub(super) fn read_secret(label: &str) -> Result<WireSecret, Failure> {
    let stdin = std::io::stdin();
    let secret = if stdin.is_terminal() {
        read_without_echo(label)?
    } else {
        let mut buf = Vec::new();
        stdin
            .lock()
            .take(MAX_SECRET + 3)
            .read_to_end(&mut buf)
            .map_err(|e| usage(format!("cannot read the secret from standard input: {e}")))?;
        let mut s = String::from_utf8(buf)
            .map_err(|_| usage("the secret on standard input is not UTF-8 text"))?;
        if s.ends_with('\n') {
            s.pop();
            if s.ends_with('\r') {
                s.pop();
            }
        }
        s
    };
    if secret.is_empty() {
        return Err(usage(
            "no secret on standard input (pipe it in, e.g. `greytui --once credential add \
             LABEL --dest H < keyfile`)",
        ));
    }
    Ok(WireSecret(secret))
}

/// Asks on the terminal with echo off (raw mode), one line.
fn read_without_echo(label: &str) -> Result<String, Failure> {
    use crossterm::event::{Event, KeyCode, KeyEventKind, KeyModifiers, read};
    let mut err = std::io::stderr();
    let _ = write!(err, "secret for {label} (not shown): ");
    let _ = err.flush();
    crossterm::terminal::enable_raw_mode()
        .map_err(|e| usage(format!("cannot switch the terminal's echo off: {e}")))?;
    let mut s = String::new();
    let outcome = loop {
        match read() {
            Ok(Event::Key(k)) if k.kind != KeyEventKind::Release => match k.code {
                KeyCode::Enter => break Ok(()),
                KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                    break Err(usage("interrupted"));
                }
                KeyCode::Backspace => {
                    s.pop();
                }
                KeyCode::Char(c) if s.len() as u64 <= MAX_SECRET => s.push(c),
                _ => {}
            },
            Ok(_) => {}
            Err(e) => break Err(usage(format!("cannot read the terminal: {e}"))),
        }
    };
    let _ = crossterm::terminal::disable_raw_mode();
    let _ = writeln!(err);
    outcome.map(|()| s)
}

fn places(body: Option<BodyKind>) -> Option<CredentialPlaces> {
    let body = body?;
    Some(CredentialPlaces {
        json_body: matches!(body, BodyKind::Json | BodyKind::Both),
        form_body: matches!(body, BodyKind::Form | BodyKind::Both),
        ..CredentialPlaces::default()
    })
}

/// Checks what can be checked and reads the secret before connecting, so that a typo or a
/// missing secret does not depend on whether the daemon is up.
pub(super) fn credential_command(c: &CredentialCmd) -> Result<Option<Command>, Failure> {
    Ok(Some(match c {
        CredentialCmd::Add {
            label,
            hosts,
            containers,
            body,
            plaintext,
            expires,
        } => Command::CreateCredential(CreateCredentialArgs {
            label: label.clone(),
            secret: read_secret(label)?,
            destinations: hosts.clone(),
            containers: containers.clone(),
            places: places(*body),
            allow_plaintext: plaintext.then_some(true),
            expires_at: None,
            duration: expires.clone(),
        }),
        CredentialCmd::Rotate { label } => Command::UpdateCredential(UpdateCredentialArgs {
            label: label.clone(),
            secret: Some(read_secret(label)?),
            ..UpdateCredentialArgs::default()
        }),
        CredentialCmd::Delete { label } => Command::DeleteCredential(CredentialLabelArgs {
            label: label.clone(),
        }),
        CredentialCmd::List => Command::ListCredentials,
        CredentialCmd::Decide {
            id,
            decision,
            scope,
            duration,
            reason,
        } => {
            let scope = match scope {
                Some(s) => Some(parse_scope(s).map_err(usage)?),
                None => None,
            };
            let (d, end) = match decision {
                EgressDecision::Refuse => (CredentialDecision::Refuse, None),
                EgressDecision::RefuseEnd => (CredentialDecision::Refuse, Some(true)),
                EgressDecision::SendUnchanged => (CredentialDecision::SendUnchanged, None),
                EgressDecision::SendOnce => (CredentialDecision::SendOnce, None),
                EgressDecision::Bind => (CredentialDecision::Bind, None),
            };
            Command::DecideCredential(DecideCredentialArgs {
                pending_id: *id,
                decision: d,
                scope,
                duration: duration.clone(),
                reason: reason.clone(),
                end_session: end,
            })
        }
    }))
}

/// `session …`'s command, checked before connecting.
pub(super) fn session_command(c: &SessionCmd) -> Result<Command, Failure> {
    Ok(match c {
        SessionCmd::Create {
            container,
            credentials,
            ttl,
            id,
            allow_all,
            ..
        } => {
            let ttl_seconds = match ttl {
                Some(t) => Some(
                    humantime::parse_duration(t)
                        .map_err(|e| usage(format!("--ttl {t:?}: {e}")))?
                        .as_secs(),
                ),
                None => None,
            };
            Command::CreateSession(CreateSessionArgs {
                session_id: id.clone(),
                container: container.clone(),
                credentials: credentials.clone(),
                ttl_seconds,
                allow_all: allow_all.then_some(true),
            })
        }
        SessionCmd::Heartbeat { id } => Command::HeartbeatSession(SessionIdArgs {
            session_id: id.clone(),
        }),
        SessionCmd::Delete { id } => Command::DeleteSession(SessionIdArgs {
            session_id: id.clone(),
        }),
        SessionCmd::List => Command::ListSessions,
    })
}

/// Runs a `credential` command.
pub(super) async fn credential(
    conn: &mut Connection,
    cmd: &CredentialCmd,
    command: Command,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    match cmd {
        CredentialCmd::List => {
            let list: CredentialList = query(conn, command).await?;
            if json {
                return print_json(out, &list);
            }
            print_credentials(out, &list, SystemTime::now())
        }
        CredentialCmd::Add { .. } | CredentialCmd::Rotate { .. } => {
            let info: CredentialInfo = query(conn, command).await?;
            if json {
                return print_json(out, &info);
            }
            let verb = if matches!(cmd, CredentialCmd::Add { .. }) {
                "added"
            } else {
                "rotated"
            };
            writeln!(out, "{verb} credential {} ({})", info.label, info.preview).map_err(io_failure)
        }
        CredentialCmd::Delete { label } => {
            request(conn, command).await?;
            if json {
                return print_json(out, &serde_json::json!({ "deleted": label }));
            }
            writeln!(out, "deleted credential {label}").map_err(io_failure)
        }
        CredentialCmd::Decide { id, decision, .. } => {
            request(conn, command).await?;
            if json {
                return print_json(out, &serde_json::json!({ "pending_id": id }));
            }
            let done = match decision {
                EgressDecision::Refuse => "refused",
                EgressDecision::RefuseEnd => "refused (session ended)",
                EgressDecision::SendUnchanged => "sent unchanged",
                EgressDecision::SendOnce => "sent once with the secret",
                EgressDecision::Bind => "bound and sent",
            };
            writeln!(out, "{done} pending request {id}").map_err(io_failure)
        }
    }
}

/// Runs a `session` command.
pub(super) async fn session(
    conn: &mut Connection,
    cmd: &SessionCmd,
    command: Command,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    match cmd {
        SessionCmd::Create { env, .. } => {
            let created: SessionCreated = query(conn, command).await?;
            if *env {
                return print_env(out, &created);
            }
            if json {
                return print_json(out, &created);
            }
            print_sessions(
                out,
                std::slice::from_ref(&created.session),
                SystemTime::now(),
            )?;
            writeln!(out).map_err(io_failure)?;
            let rows: Vec<Vec<String>> = created
                .placeholders
                .iter()
                .map(|(l, p)| vec![l.clone(), p.clone()])
                .collect();
            write!(out, "{}", text_table(&["LABEL", "PLACEHOLDER"], &rows)).map_err(io_failure)
        }
        SessionCmd::Heartbeat { .. } => {
            let s: SessionInfo = query(conn, command).await?;
            if json {
                return print_json(out, &s);
            }
            writeln!(
                out,
                "session {} lives {} more",
                s.session_id,
                short_span(Duration::from_secs(s.remaining_seconds))
            )
            .map_err(io_failure)
        }
        SessionCmd::Delete { id } => {
            request(conn, command).await?;
            if json {
                return print_json(out, &serde_json::json!({ "deleted": id }));
            }
            writeln!(out, "ended session {id}").map_err(io_failure)
        }
        SessionCmd::List => {
            let list: SessionList = query(conn, command).await?;
            if json {
                return print_json(out, &list);
            }
            print_sessions(out, &list.sessions, SystemTime::now())
        }
    }
}

/// `export LABEL='placeholder'` lines and the session id, for `eval` in a launcher script.
pub(crate) fn print_env(out: &mut dyn Write, c: &SessionCreated) -> Result<(), Failure> {
    writeln!(
        out,
        "export GREYPROXY_SESSION_ID={}",
        shell_quote(&c.session.session_id)
    )
    .map_err(io_failure)?;
    for (label, placeholder) in &c.placeholders {
        // The daemon checks labels to be variable names; one that is not is skipped loudly
        // rather than printed into a script.
        if !label
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
            || label.starts_with(|ch: char| ch.is_ascii_digit())
        {
            eprintln!("greytui: {label:?} is not a shell variable name; not exported");
            continue;
        }
        writeln!(out, "export {label}={}", shell_quote(placeholder)).map_err(io_failure)?;
    }
    Ok(())
}

/// `'text'` with single quotes escaped for a POSIX shell.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn print_credentials(
    out: &mut dyn Write,
    list: &CredentialList,
    now: SystemTime,
) -> Result<(), Failure> {
    if !list.available {
        let why = list.unavailable_reason.as_deref().unwrap_or("unknown");
        writeln!(out, "credentials are unavailable: {why}").map_err(io_failure)?;
    }
    if list.credentials.is_empty() {
        return writeln!(out, "no credentials").map_err(io_failure);
    }
    let rows: Vec<Vec<String>> = list
        .credentials
        .iter()
        .map(|c| {
            let dest: Vec<&str> = c.destinations.iter().map(|d| d.pattern.as_str()).collect();
            vec![
                c.label.clone(),
                c.preview.clone(),
                dest.join(","),
                if c.containers.is_empty() {
                    "*".into()
                } else {
                    c.containers.join(",")
                },
                c.substitutions.to_string(),
                expiry(c.expires_at.as_deref(), now),
            ]
        })
        .collect();
    let header = [
        "LABEL",
        "SECRET",
        "DESTINATIONS",
        "CONTAINERS",
        "USED",
        "EXPIRES",
    ];
    write!(out, "{}", text_table(&header, &rows)).map_err(io_failure)
}

fn print_sessions(
    out: &mut dyn Write,
    sessions: &[SessionInfo],
    now: SystemTime,
) -> Result<(), Failure> {
    if sessions.is_empty() {
        return writeln!(out, "no sessions").map_err(io_failure);
    }
    let rows: Vec<Vec<String>> = sessions
        .iter()
        .map(|s| {
            let used: u64 = s.substitutions.values().sum();
            vec![
                s.session_id.clone(),
                s.container.clone(),
                s.credentials.join(","),
                expiry(Some(&s.expires_at), now),
                used.to_string(),
            ]
        })
        .collect();
    let header = [
        "SESSION",
        "CONTAINER",
        "CREDENTIALS",
        "EXPIRES",
        "SUBSTITUTIONS",
    ];
    write!(out, "{}", text_table(&header, &rows)).map_err(io_failure)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn env_lines_quote_and_skip_what_a_shell_cannot_take() {
        let mut placeholders = BTreeMap::new();
        placeholders.insert(
            "OPENAI_API_KEY".to_string(),
            "greyproxy:credential:v1:s1:ab".into(),
        );
        placeholders.insert("bad-name".to_string(), "x".into());
        let c = SessionCreated {
            session: SessionInfo {
                session_id: "s1".into(),
                container: "agent".into(),
                credentials: vec!["OPENAI_API_KEY".into()],
                ttl_seconds: 900,
                created_at: "2026-11-22T10:00:00Z".into(),
                last_heartbeat: "2026-11-22T10:00:00Z".into(),
                expires_at: "2026-11-22T10:15:00Z".into(),
                remaining_seconds: 900,
                allow_all: false,
                substitutions: BTreeMap::new(),
            },
            placeholders,
        };
        let mut out = Vec::new();
        print_env(&mut out, &c).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "export GREYPROXY_SESSION_ID='s1'\n\
             export OPENAI_API_KEY='greyproxy:credential:v1:s1:ab'\n"
        );
        assert_eq!(shell_quote("a'b"), r"'a'\''b'");
    }
}
