//! `greytui --once COMMAND`: one command against the daemon, a tidy table or stable JSON on
//! stdout, a one-line message on stderr, and exit codes 0 (done), 1 (the daemon refused), 2
//! (usage) and 3 (cannot connect or unauthorized), as docs/greytui.md#--once-for-scripts lists.
//!
//! JSON output (documented in docs/greytui.md): `pending` and `rules` print one array of the
//! protocol's objects (every page), `status` the status object, `allow`/`deny`
//! `{"pending_id":N,"rule_id":M}`, `dismiss` `{"pending_id":N}`, `middlewares` an array of
//! MiddlewareStatus; `watch` prints each event envelope (and `lagged` notices) as one JSON line.
//! The LLM layer's commands (`conversations`, `conversation`, `calls`, `usage`) are in
//! `once/llm.rs`; `credential` and `session` in `once/credentials.rs`.

mod credentials;
mod export;
mod fleet;
mod llm;

use std::io::Write;
use std::time::SystemTime;

use greyproxy_protocol::command::{DecideArgs, EventTypeArgs, ListArgs, PendingIdArgs};
use greyproxy_protocol::middleware::MiddlewareStatus;
use greyproxy_protocol::{Command, Page, PendingRequest, Reply, Rule, Status};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::cli::{Cli, DecideOpts, OnceCmd, parse_scope};
use crate::client::{self, ClientError, Connection, Incoming};
use crate::format::{age, allow_all_label, expiry, pending_destination, text_table};
use crate::middlewares::MiddlewareList;
use crate::paths::{self, TokenSource};

/// Exit codes of `--once`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// Done.
    Ok = 0,
    /// The daemon refused (unknown id, bad scope or duration…).
    Refused = 1,
    /// Usage error.
    Usage = 2,
    /// Cannot connect, or unauthorized.
    Unreachable = 3,
}

/// A failed `--once` run: the exit code and the one-line message for stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Exit code.
    pub code: ExitCode,
    /// One line, without the program name.
    pub message: String,
}

impl Failure {
    fn new(code: ExitCode, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }
}

pub(super) fn io_failure(e: std::io::Error) -> Failure {
    Failure::new(ExitCode::Refused, format!("cannot write output: {e}"))
}

fn client_failure(e: ClientError, source: &TokenSource) -> Failure {
    match e {
        ClientError::Unauthorized(_) => {
            Failure::new(ExitCode::Unreachable, format!("{e} ({source})"))
        }
        ClientError::Unreachable { .. } | ClientError::Closed(_) => {
            Failure::new(ExitCode::Unreachable, e.to_string())
        }
        ClientError::Protocol(_) | ClientError::Refused(_) => {
            Failure::new(ExitCode::Unreachable, e.to_string())
        }
    }
}

/// Runs one command, writing its output to `out`.
pub async fn run(cli: &Cli, cmd: &OnceCmd, out: &mut dyn Write) -> Result<(), Failure> {
    // Validate what can be validated before connecting, so that a typo does not depend on
    // whether the daemon is up.
    let decide = |o: &DecideOpts| -> Result<DecideArgs, Failure> {
        let scope = match &o.scope {
            Some(s) => Some(parse_scope(s).map_err(|m| Failure::new(ExitCode::Refused, m))?),
            None => None,
        };
        Ok(DecideArgs {
            pending_id: o.id.id,
            scope,
            duration: o.duration.clone(),
            notes: o.notes.clone(),
        })
    };
    let command = match cmd {
        OnceCmd::Allow(o) => Some(Command::Allow(decide(o)?)),
        OnceCmd::Deny(o) => Some(Command::Deny(decide(o)?)),
        OnceCmd::Dismiss { id } => Some(Command::Dismiss(PendingIdArgs { pending_id: id.id })),
        _ => None,
    };
    let credential_cmd = match cmd {
        OnceCmd::Credential(c) => credentials::credential_command(c)?,
        OnceCmd::Session(s) => Some(credentials::session_command(s)?),
        _ => None,
    };
    if crate::hosts::is_fleet(cli) {
        if credential_cmd.is_some() {
            return Err(Failure::new(
                ExitCode::Usage,
                "credentials and sessions are per daemon: name one (--url, --ssh or --host once)",
            ));
        }
        return fleet::run(cli, cmd, command, out).await;
    }
    if let OnceCmd::Allow(DecideOpts { id, .. })
    | OnceCmd::Deny(DecideOpts { id, .. })
    | OnceCmd::Dismiss { id } = cmd
        && let Some(h) = &id.host
    {
        return Err(Failure::new(
            ExitCode::Usage,
            format!(
                "{h}:{}: HOST:ID names a host of a fleet (--ssh, --host, several --url)",
                id.id
            ),
        ));
    }
    let (ep, source) = paths::endpoint(
        cli.single_url(),
        cli.single_token_file(),
        cli.state_dir.as_deref(),
        &paths::process_env,
    )
    .map_err(|e| Failure::new(ExitCode::Unreachable, e.to_string()))?;
    let mut conn = client::connect(&ep)
        .await
        .map_err(|e| client_failure(e, &source))?;
    let result = match (cmd, credential_cmd) {
        (OnceCmd::Credential(c), Some(cc)) => {
            credentials::credential(&mut conn, c, cc, cli.json, out).await
        }
        (OnceCmd::Session(s), Some(cc)) => {
            credentials::session(&mut conn, s, cc, cli.json, out).await
        }
        _ => on_connection(&mut conn, cli, cmd, command, &ep.url, Some(&source), out).await,
    };
    conn.close().await;
    result
}

/// Runs `cmd` on an open connection (`command`: the decision, already built); `label` names
/// the daemon in `status`, `source` the token in a lost `watch`.
pub(super) async fn on_connection(
    conn: &mut Connection,
    cli: &Cli,
    cmd: &OnceCmd,
    command: Option<Command>,
    label: &str,
    source: Option<&TokenSource>,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    match (cmd, command) {
        (_, Some(c)) => decide_cmd(conn, c, cli.json, out).await,
        (OnceCmd::Pending, None) => {
            let items: Vec<PendingRequest> = list_all(conn, Command::ListPending).await?;
            if cli.json {
                print_json(out, &items)
            } else {
                print_pending(out, &items, SystemTime::now())
            }
        }
        (OnceCmd::Rules, None) => {
            let items: Vec<Rule> = list_all(conn, Command::ListRules).await?;
            if cli.json {
                print_json(out, &items)
            } else {
                print_rules(out, &items, SystemTime::now())
            }
        }
        (OnceCmd::Status, None) => {
            let st: Status = query(conn, Command::Status).await?;
            if cli.json {
                print_json(out, &st)
            } else {
                print_status(out, &st, label)
            }
        }
        (OnceCmd::Middlewares, None) => {
            let list: MiddlewareList = query(conn, Command::ListMiddlewares).await?;
            if cli.json {
                print_json(out, &list.middlewares)
            } else {
                print_middlewares(out, &list.middlewares)
            }
        }
        (
            c @ (OnceCmd::Conversations { .. }
            | OnceCmd::Conversation { .. }
            | OnceCmd::Calls { .. }
            | OnceCmd::Usage { .. }),
            None,
        ) => llm::run(conn, c, cli.json, out).await,
        (OnceCmd::Export { what }, None) => export::run(conn, what, out).await,
        (OnceCmd::Watch { events }, None) => watch(conn, events, out).await.map_err(|e| {
            if e.code == ExitCode::Unreachable {
                match source {
                    Some(source) => Failure::new(e.code, format!("{} ({source})", e.message)),
                    None => e,
                }
            } else {
                e
            }
        }),
        _ => Err(Failure::new(ExitCode::Usage, "unsupported command")),
    }
}

/// Sends a command; `Err` with exit code 1 for the daemon's `error` reply, 3 for a lost link.
pub(super) async fn request(conn: &mut Connection, c: Command) -> Result<Reply, Failure> {
    match conn.request(c).await {
        Ok(Reply::Error { error, .. }) => Err(Failure::new(ExitCode::Refused, error)),
        Ok(r) => Ok(r),
        Err(e) => Err(Failure::new(ExitCode::Unreachable, e.to_string())),
    }
}

/// A query command's `data`, decoded.
pub(super) async fn query<T: DeserializeOwned>(
    conn: &mut Connection,
    c: Command,
) -> Result<T, Failure> {
    match request(conn, c).await? {
        Reply::Result { data, .. } => serde_json::from_value(data)
            .map_err(|e| Failure::new(ExitCode::Refused, format!("unexpected result: {e}"))),
        other => Err(Failure::new(
            ExitCode::Refused,
            format!("unexpected reply {other:?}"),
        )),
    }
}

/// Every page of a list command.
pub(super) async fn list_all<T: DeserializeOwned>(
    conn: &mut Connection,
    make: fn(ListArgs) -> Command,
) -> Result<Vec<T>, Failure> {
    let mut all = Vec::new();
    let mut cursor = None;
    loop {
        let args = ListArgs {
            limit: Some(1000),
            cursor: cursor.take(),
            ..ListArgs::default()
        };
        let page: Page<T> = query(conn, make(args)).await?;
        all.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return Ok(all),
        }
    }
}

async fn decide_cmd(
    conn: &mut Connection,
    c: Command,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    decide_on(conn, c, json, None, out).await
}

/// A decision; `host` (in a fleet) is named in the output.
pub(super) async fn decide_on(
    conn: &mut Connection,
    c: Command,
    json: bool,
    host: Option<&str>,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let verb = match &c {
        Command::Allow(_) => "allowed",
        Command::Deny(_) => "denied",
        _ => "dismissed",
    };
    let Reply::CommandSuccess {
        pending_id,
        rule_id,
        ..
    } = request(conn, c).await?
    else {
        return Err(Failure::new(ExitCode::Refused, "unexpected reply"));
    };
    if json {
        let mut v = json!({ "pending_id": pending_id });
        if let Some(r) = rule_id {
            v["rule_id"] = json!(r);
        }
        if let Some(h) = host {
            v["host"] = json!(h);
        }
        return print_json(out, &v);
    }
    let id = pending_id.map(|i| i.to_string()).unwrap_or_default();
    let rule = rule_id.map(|r| format!(" (rule {r})")).unwrap_or_default();
    let on = host.map(|h| format!(" on {h}")).unwrap_or_default();
    writeln!(out, "{verb} pending request {id}{on}{rule}").map_err(io_failure)
}

pub(super) fn print_json<T: serde::Serialize>(out: &mut dyn Write, v: &T) -> Result<(), Failure> {
    let text = serde_json::to_string(v)
        .map_err(|e| Failure::new(ExitCode::Refused, format!("cannot encode JSON: {e}")))?;
    writeln!(out, "{text}").map_err(io_failure)
}

/// The human table of `--once pending`.
pub(crate) fn print_pending(
    out: &mut dyn Write,
    items: &[PendingRequest],
    now: SystemTime,
) -> Result<(), Failure> {
    if items.is_empty() {
        return writeln!(out, "no pending requests").map_err(io_failure);
    }
    let rows: Vec<Vec<String>> = items.iter().map(|p| pending_row(p, now)).collect();
    write!(out, "{}", text_table(&PENDING_COLUMNS, &rows)).map_err(io_failure)
}

/// Columns of the `--once pending` table.
pub(crate) const PENDING_COLUMNS: [&str; 7] = [
    "ID",
    "CONTAINER",
    "DESTINATION",
    "PORT",
    "ATTEMPTS",
    "WAITING",
    "AGE",
];

/// One row of the `--once pending` table.
pub(crate) fn pending_row(p: &PendingRequest, now: SystemTime) -> Vec<String> {
    vec![
        p.id.to_string(),
        p.container_name.clone(),
        pending_destination(p),
        p.destination_port.to_string(),
        p.attempt_count.to_string(),
        p.waiting_count.to_string(),
        age(&p.first_seen, now),
    ]
}

/// The human table of `--once rules`.
pub(crate) fn print_rules(
    out: &mut dyn Write,
    items: &[Rule],
    now: SystemTime,
) -> Result<(), Failure> {
    if items.is_empty() {
        return writeln!(out, "no rules").map_err(io_failure);
    }
    let rows: Vec<Vec<String>> = items.iter().map(|r| rule_row(r, now)).collect();
    let header = crate::format::RULE_COLUMNS;
    write!(out, "{}", text_table(&header, &rows)).map_err(io_failure)
}

/// One row of the `--once rules` table.
pub(crate) fn rule_row(r: &Rule, now: SystemTime) -> Vec<String> {
    vec![
        r.id.to_string(),
        r.action.as_str().to_string(),
        r.container_pattern.clone(),
        r.destination_pattern.clone(),
        r.port_pattern.clone(),
        expiry(r.expires_at.as_deref(), now),
        format!("{:?}", r.source).to_lowercase(),
        r.notes.clone().unwrap_or_default(),
    ]
}

/// The human table of `--once middlewares` (a stopped middleware's state carries its last
/// error).
pub(crate) fn print_middlewares(
    out: &mut dyn Write,
    items: &[MiddlewareStatus],
) -> Result<(), Failure> {
    if items.is_empty() {
        return writeln!(
            out,
            "no middlewares (greyproxyd serve --middleware-cmd CMD or --middleware URL adds one)"
        )
        .map_err(io_failure);
    }
    let rows: Vec<Vec<String>> = items.iter().map(crate::middlewares::row).collect();
    write!(out, "{}", text_table(&crate::middlewares::COLUMNS, &rows)).map_err(io_failure)
}

/// The human form of `--once status`.
pub(crate) fn print_status(out: &mut dyn Write, s: &Status, url: &str) -> Result<(), Failure> {
    let allow_all = allow_all_label(&s.allow_all);
    let mut rows = vec![
        vec!["daemon".into(), format!("{} {}", s.service, s.version)],
        vec!["control".into(), url.to_string()],
        vec![
            "control socket".into(),
            s.listeners
                .control_socket
                .clone()
                .unwrap_or_else(|| "off".into()),
        ],
        vec![
            "http proxy".into(),
            s.listeners.http.clone().unwrap_or_else(|| "off".into()),
        ],
        vec![
            "socks5 proxy".into(),
            s.listeners.socks5.clone().unwrap_or_else(|| "off".into()),
        ],
        vec!["uptime".into(), humantime_secs(s.uptime_seconds)],
        vec!["pending".into(), s.pending_count.to_string()],
        vec!["held connections".into(), s.held_connections.to_string()],
        vec!["runtime tasks".into(), s.alive_tasks.to_string()],
        vec!["rules".into(), s.rule_count.to_string()],
        vec!["silent mode".into(), allow_all],
        vec!["notification claims".into(), s.active_claims.to_string()],
        vec![
            "hold timeout".into(),
            format!("{}s", s.hold_timeout_seconds),
        ],
        vec!["state dir".into(), s.state_dir.clone()],
    ];
    if let Some(e) = &s.export {
        let mut line = format!(
            "{} → {} ({}), {} behind, {} spans sent",
            e.state, e.endpoint, e.what, e.lag, e.exported_spans
        );
        if let Some(err) = &e.last_error {
            line.push_str(&format!(", last error: {err}"));
        }
        rows.push(vec!["export".into(), line]);
    }
    for r in rows {
        writeln!(out, "{:<20} {}", format!("{}:", r[0]), r[1]).map_err(io_failure)?;
    }
    Ok(())
}

fn humantime_secs(s: u64) -> String {
    humantime::format_duration(std::time::Duration::from_secs(s)).to_string()
}

/// `--once watch`: subscribe (when types are given), then print every event as a JSON line
/// until SIGINT/SIGTERM (exit 0) or the connection is lost (exit 3).
async fn watch(
    conn: &mut Connection,
    events: &[String],
    out: &mut dyn Write,
) -> Result<(), Failure> {
    for t in events {
        let c = Command::Subscribe(EventTypeArgs {
            event_type: Some(t.clone()),
        });
        request(conn, c).await?;
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Failure::new(ExitCode::Refused, format!("cannot watch signals: {e}")))?;
    loop {
        let m = tokio::select! {
            m = conn.recv() => m,
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = term.recv() => return Ok(()),
        };
        let line = match m {
            Ok(Incoming::Event(e)) => serde_json::to_string(&e),
            Ok(Incoming::Reply(r @ Reply::Lagged { .. })) => serde_json::to_string(&r),
            Ok(Incoming::Reply(_)) => continue,
            Err(e) => return Err(Failure::new(ExitCode::Unreachable, e.to_string())),
        };
        let Ok(line) = line else { continue };
        // A closed stdout (`| head`) ends watching quietly, like other Unix filters.
        if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn empty_lists_say_so() {
        let mut out = Vec::new();
        print_pending(&mut out, &[], SystemTime::now()).unwrap();
        print_rules(&mut out, &[], SystemTime::now()).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "no pending requests\nno rules\n"
        );
        let mut out = Vec::new();
        print_middlewares(&mut out, &[]).unwrap();
        assert!(
            String::from_utf8(out)
                .unwrap()
                .starts_with("no middlewares (")
        );
    }

    #[test]
    fn middlewares_table() {
        let mut out = Vec::new();
        print_middlewares(&mut out, &crate::sample::middlewares()).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\
MIDDLEWARE              KIND   STATE                     PROTO  HOOKS                        TIMEOUT  ON DISCONNECT  CONNECTS
redactor                stdio  ready                     v1     http-request, http-response  5s       deny           1
ws://127.0.0.1:9000/mw  ws     down: connection refused  —      —                            1500ms   allow          3
"
        );
    }
}
