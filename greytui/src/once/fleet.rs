//! `--once` over a fleet (`--ssh`, `--host`, several `--url`): `pending` and `rules` merge every
//! host's items (JSON items carry `host`, tables get a HOST column), `status` reports each
//! host, and `allow`/`deny`/`dismiss HOST:ID` go to the host that owns the request. Hosts are
//! asked concurrently; one that cannot be reached gets a line `greytui: HOST: why` on stderr
//! while the others still answer, and the exit code is then 3. `watch` prints every host's
//! events with `host` added; `middlewares`, `conversations`, `calls` and `usage` print one
//! block per host (JSON: the items with `host` added). `conversation ID` needs one host.

use std::io::Write;
use std::time::SystemTime;

use greyproxy_protocol::{Command, PendingRequest, Rule, Status};
use serde::Serialize;
use serde_json::{Value, json};

use super::{
    ExitCode, Failure, PENDING_COLUMNS, decide_on, io_failure, list_all, on_connection,
    pending_row, print_json, print_status, query, rule_row,
};
use crate::cli::{Cli, DecideOpts, OnceCmd};
use crate::client::{self, Connection};
use crate::format::{RULE_COLUMNS, text_table};
use crate::hosts::{self, HostSpec};
use crate::paths;

/// Connects to `host` and runs `f` on the connection; any failure is worded for that host.
async fn on_host<T, F>(host: &HostSpec, f: F) -> Result<T, Failure>
where
    F: for<'c> AsyncFnOnce(&'c mut Connection) -> Result<T, Failure>,
{
    let mut conn = client::connect_to(&host.target)
        .await
        .map_err(|e| Failure::new(ExitCode::Unreachable, e.to_string()))?;
    let r = f(&mut conn).await;
    conn.close().await;
    r
}

/// Prints each failed host's reason to stderr; the failure to return when any failed.
fn report<T>(results: &[(&HostSpec, Result<T, Failure>)]) -> Result<(), Failure> {
    let failed: Vec<&str> = results
        .iter()
        .filter_map(|(h, r)| {
            r.as_ref().err().map(|f| {
                eprintln!("greytui: {}: {}", h.name, f.message);
                h.name.as_str()
            })
        })
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Failure::new(
            ExitCode::Unreachable,
            format!(
                "{} of {} hosts did not answer ({})",
                failed.len(),
                results.len(),
                failed.join(", ")
            ),
        ))
    }
}

/// Every host's answer to `f`, asked concurrently, in the hosts' order.
async fn ask_all<'h, T, F>(hosts: &'h [HostSpec], f: F) -> Vec<(&'h HostSpec, Result<T, Failure>)>
where
    F: for<'c> AsyncFn(&'c mut Connection) -> Result<T, Failure>,
{
    let f = &f;
    let asks = hosts
        .iter()
        .map(|h| async move { (h, on_host(h, f).await) });
    futures_util::future::join_all(asks).await
}

/// `item` as a JSON object with `host` added.
fn with_host<T: Serialize>(host: &str, item: &T) -> Value {
    let mut v = serde_json::to_value(item).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.insert("host".into(), json!(host));
    }
    v
}

/// Runs `cmd` over the fleet the flags describe.
pub(super) async fn run(
    cli: &Cli,
    cmd: &OnceCmd,
    decision: Option<Command>,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let hosts = hosts::from_cli(cli, &paths::process_env)
        .map_err(|e| Failure::new(ExitCode::Usage, e.to_string()))?;
    let now = SystemTime::now();
    match (cmd, decision) {
        (
            OnceCmd::Allow(DecideOpts { id, .. })
            | OnceCmd::Deny(DecideOpts { id, .. })
            | OnceCmd::Dismiss { id },
            Some(c),
        ) => {
            let host = owner(&hosts, id.host.as_deref(), id.id)?;
            let json = cli.json;
            let name = (hosts.len() > 1).then_some(host.name.as_str());
            let mut buf = Vec::new();
            on_host(host, async |conn| {
                decide_on(conn, c, json, name, &mut buf).await
            })
            .await
            .map_err(|f| Failure::new(f.code, format!("{}: {}", host.name, f.message)))?;
            out.write_all(&buf).map_err(io_failure)
        }
        (OnceCmd::Pending, None) => {
            let results = ask_all(&hosts, async |conn| {
                list_all::<PendingRequest>(conn, Command::ListPending).await
            })
            .await;
            let row = |p: &PendingRequest| pending_row(p, now);
            let table = (&PENDING_COLUMNS[..], "no pending requests");
            print_merged(out, cli.json, &results, row, table)?;
            report(&results)
        }
        (OnceCmd::Rules, None) => {
            let results = ask_all(&hosts, async |conn| {
                list_all::<Rule>(conn, Command::ListRules).await
            })
            .await;
            let row = |r: &Rule| rule_row(r, now);
            print_merged(
                out,
                cli.json,
                &results,
                row,
                (&RULE_COLUMNS[..], "no rules"),
            )?;
            report(&results)
        }
        (OnceCmd::Status, None) => {
            let results = ask_all(&hosts, async |conn| {
                query::<Status>(conn, Command::Status).await
            })
            .await;
            if cli.json {
                let all: Vec<Value> = results
                    .iter()
                    .map(|(h, r)| match r {
                        Ok(s) => json!({ "host": h.name, "status": s }),
                        Err(f) => json!({ "host": h.name, "error": f.message }),
                    })
                    .collect();
                print_json(out, &all)?;
            } else {
                for (i, (h, r)) in results.iter().enumerate() {
                    if i > 0 {
                        writeln!(out).map_err(io_failure)?;
                    }
                    writeln!(out, "{:<20} {}", "host:", h.name).map_err(io_failure)?;
                    match r {
                        Ok(s) => print_status(out, s, h.target.label())?,
                        Err(f) => {
                            writeln!(out, "{:<20} {}", "error:", f.message).map_err(io_failure)?
                        }
                    }
                }
            }
            report(&results)
        }
        (OnceCmd::Watch { events }, None) if hosts.len() > 1 => {
            watch_all(&hosts, events, out).await
        }
        (
            c @ (OnceCmd::Middlewares
            | OnceCmd::Conversations { .. }
            | OnceCmd::Calls { .. }
            | OnceCmd::Usage { .. }),
            None,
        ) if hosts.len() > 1 => {
            let results = ask_all(&hosts, async |conn| {
                let mut buf = Vec::new();
                on_connection(conn, cli, c, None, "", None, &mut buf).await?;
                Ok(buf)
            })
            .await;
            if cli.json {
                let mut all = Vec::new();
                for (h, r) in &results {
                    let Ok(buf) = r else { continue };
                    match serde_json::from_slice::<Value>(buf) {
                        Ok(Value::Array(items)) => {
                            all.extend(items.iter().map(|i| with_host(&h.name, i)))
                        }
                        Ok(v) => all.push(json!({ "host": h.name, "result": v })),
                        Err(_) => {}
                    }
                }
                print_json(out, &all)?;
            } else {
                let mut first = true;
                for (h, r) in &results {
                    let Ok(buf) = r else { continue };
                    if !first {
                        writeln!(out).map_err(io_failure)?;
                    }
                    first = false;
                    writeln!(out, "{:<20} {}", "host:", h.name).map_err(io_failure)?;
                    out.write_all(buf).map_err(io_failure)?;
                }
            }
            report(&results)
        }
        (_, decision) => match hosts.as_slice() {
            [one] => {
                on_host(one, async |conn| {
                    on_connection(conn, cli, cmd, decision, one.target.label(), None, out).await
                })
                .await
            }
            _ => Err(Failure::new(
                ExitCode::Usage,
                "this command runs against one host: name one with --host NAME or a single --ssh/--url",
            )),
        },
    }
}

/// `watch` over several hosts: every host's events as JSON lines with `"host"` added, until
/// SIGINT/SIGTERM (exit 0). A host lost on the way is reported on stderr and the others go
/// on; when none is left the exit code is 3.
async fn watch_all(
    hosts: &[HostSpec],
    events: &[String],
    out: &mut dyn Write,
) -> Result<(), Failure> {
    use greyproxy_protocol::command::EventTypeArgs;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(usize, Result<Value, String>)>(1024);
    let connects = hosts.iter().map(|h| async move {
        let mut conn = client::connect_to(&h.target)
            .await
            .map_err(|e| e.to_string())?;
        for t in events {
            let c = Command::Subscribe(EventTypeArgs {
                event_type: Some(t.clone()),
            });
            super::request(&mut conn, c).await.map_err(|f| f.message)?;
        }
        Ok::<_, String>(conn)
    });
    let mut live = 0;
    for (i, r) in futures_util::future::join_all(connects)
        .await
        .into_iter()
        .enumerate()
    {
        match r {
            Err(e) => eprintln!("greytui: {}: {e}", hosts[i].name),
            Ok(mut conn) => {
                live += 1;
                let tx = tx.clone();
                tokio::spawn(async move {
                    loop {
                        let m = match conn.recv().await {
                            Ok(client::Incoming::Event(e)) => serde_json::to_value(e),
                            Ok(client::Incoming::Reply(
                                r @ greyproxy_protocol::Reply::Lagged { .. },
                            )) => serde_json::to_value(r),
                            Ok(client::Incoming::Reply(_)) => continue,
                            Err(e) => {
                                let _ = tx.send((i, Err(e.to_string()))).await;
                                return;
                            }
                        };
                        let Ok(v) = m else { continue };
                        if tx.send((i, Ok(v))).await.is_err() {
                            return;
                        }
                    }
                });
            }
        }
    }
    drop(tx);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Failure::new(ExitCode::Refused, format!("cannot watch signals: {e}")))?;
    while live > 0 {
        let (i, m) = tokio::select! {
            m = rx.recv() => match m { Some(m) => m, None => break },
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = term.recv() => return Ok(()),
        };
        match m {
            Ok(mut v) => {
                if let Some(o) = v.as_object_mut() {
                    o.insert("host".into(), json!(hosts[i].name));
                }
                // A closed stdout (`| head`) ends watching quietly.
                if writeln!(out, "{v}").and_then(|_| out.flush()).is_err() {
                    return Ok(());
                }
            }
            Err(e) => {
                eprintln!("greytui: {}: {e}", hosts[i].name);
                live -= 1;
            }
        }
    }
    Err(Failure::new(ExitCode::Unreachable, "no host left to watch"))
}

/// The host that owns a pending id: the named one, else the only one.
fn owner<'h>(hosts: &'h [HostSpec], name: Option<&str>, id: u64) -> Result<&'h HostSpec, Failure> {
    let names = || {
        hosts
            .iter()
            .map(|h| h.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (name, hosts) {
        (Some(n), _) => hosts.iter().find(|h| h.name == n).ok_or_else(|| {
            Failure::new(ExitCode::Usage, format!("no host {n:?} among {}", names()))
        }),
        (None, [one]) => Ok(one),
        (None, _) => Err(Failure::new(
            ExitCode::Usage,
            format!(
                "several hosts: say which one owns {id} as HOST:{id} ({})",
                names()
            ),
        )),
    }
}

/// Every answering host's items: one JSON array of objects with `host`, or one table with a
/// HOST column (`table`: the columns and what to print when there is no row).
fn print_merged<T: Serialize>(
    out: &mut dyn Write,
    json: bool,
    results: &[(&HostSpec, Result<Vec<T>, Failure>)],
    row: impl Fn(&T) -> Vec<String>,
    table: (&[&str], &str),
) -> Result<(), Failure> {
    let items = results
        .iter()
        .filter_map(|(h, r)| r.as_ref().ok().map(|v| (h, v)));
    if json {
        let all: Vec<Value> = items
            .flat_map(|(h, v)| v.iter().map(|x| with_host(&h.name, x)))
            .collect();
        return print_json(out, &all);
    }
    let rows: Vec<Vec<String>> = items
        .flat_map(|(h, v)| v.iter().map(|x| hosted(&h.name, row(x))))
        .collect();
    if rows.is_empty() {
        return writeln!(out, "{}", table.1).map_err(io_failure);
    }
    let header = hosted_header(table.0);
    write!(out, "{}", text_table(&header, &rows)).map_err(io_failure)
}

fn hosted(host: &str, mut row: Vec<String>) -> Vec<String> {
    row.insert(0, host.to_string());
    row
}

fn hosted_header<'a>(cols: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["HOST"];
    v.extend_from_slice(cols);
    v
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::client::{Endpoint, Target};

    fn host(name: &str) -> HostSpec {
        HostSpec {
            name: name.into(),
            target: Target::Ws(Endpoint {
                url: "ws://127.0.0.1:9/ws".into(),
                token: None,
            }),
        }
    }

    #[test]
    fn a_decision_goes_to_the_named_or_only_host() {
        let two = [host("a"), host("b")];
        assert_eq!(owner(&two, Some("b"), 3).unwrap().name, "b");
        let e = owner(&two, None, 3).unwrap_err();
        assert_eq!(e.code, ExitCode::Usage);
        assert!(e.message.contains("HOST:3 (a, b)"), "{}", e.message);
        assert!(owner(&two, Some("c"), 3).is_err());
        assert_eq!(owner(&two[..1], None, 3).unwrap().name, "a");
    }

    #[test]
    fn json_items_carry_their_host() {
        let v = with_host("b1", &json!({"id": 4}));
        assert_eq!(v, json!({"id": 4, "host": "b1"}));
    }
}
