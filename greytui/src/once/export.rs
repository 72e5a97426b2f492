//! `--once export har [filters]` and `--once export curl TX_ID` (docs/export.md).
//!
//! `har` asks the daemon's `export` command page by page and writes the HAR 1.2 document as
//! the pages arrive (memory holds one page, whatever the window). `curl` reads one
//! transaction and prints a command that repeats its request: headers as recorded (a
//! redacted value stays `[REDACTED]`, and a comment line says which), the stored body
//! ([`crate::curl`]).

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use greyproxy_protocol::command::TransactionIdArgs;
use greyproxy_protocol::export::{ExportArgs, ExportPage};
use greyproxy_protocol::{Command, Transaction};

use crate::curl::curl_command;
use serde_json::json;

use super::{ExitCode, Failure, io_failure, query};
use crate::cli::{ExportCmd, HarOpts};
use crate::client::Connection;

/// Entries asked per page (the daemon's maximum).
const PAGE: usize = 500;

/// Runs `export har` or `export curl`.
pub(super) async fn run(
    conn: &mut Connection,
    cmd: &ExportCmd,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    match cmd {
        ExportCmd::Har(o) => har(conn, o, out).await,
        ExportCmd::Curl { id } => {
            let t: Transaction = query(
                conn,
                Command::GetTransaction(TransactionIdArgs {
                    transaction_id: *id,
                }),
            )
            .await?;
            writeln!(out, "{}", curl_command(&t)).map_err(io_failure)
        }
    }
}

/// `WHEN` of `--since`/`--until`: a span back from `now` (`1h`, `7d`) or an RFC 3339 time, as
/// Unix seconds.
pub(crate) fn parse_when(s: &str, now: SystemTime) -> Result<u64, String> {
    let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    if let Ok(d) = humantime::parse_duration(s.trim()) {
        return Ok(secs(now.checked_sub(d).unwrap_or(UNIX_EPOCH)));
    }
    humantime::parse_rfc3339_weak(s.trim())
        .map(secs)
        .map_err(|_| format!("{s:?} is neither a span back from now (1h, 7d) nor an RFC 3339 time"))
}

async fn har(conn: &mut Connection, o: &HarOpts, out: &mut dyn Write) -> Result<(), Failure> {
    let now = SystemTime::now();
    let when = |v: &Option<String>| -> Result<Option<u64>, Failure> {
        v.as_deref()
            .map(|s| parse_when(s, now).map_err(|m| Failure::new(ExitCode::Usage, m)))
            .transpose()
    };
    let mut args = ExportArgs {
        format: "har".into(),
        container: o.container.clone(),
        destination: o.destination.clone(),
        since: when(&o.since)?,
        until: when(&o.until)?,
        conversation_id: o.conversation.clone(),
        before_id: None,
        limit: Some(PAGE),
    };
    // The first page before any output: a refusal leaves stdout empty.
    let mut page: ExportPage = query(conn, Command::Export(args.clone())).await?;
    let creator = json!({"name": "greytui", "version": env!("CARGO_PKG_VERSION")});
    write!(
        out,
        "{{\"log\":{{\"version\":\"1.2\",\"creator\":{creator},\"pages\":[],\"entries\":["
    )
    .map_err(io_failure)?;
    let mut first = true;
    loop {
        for e in &page.entries {
            let sep = if first { "\n" } else { ",\n" };
            first = false;
            write!(out, "{sep}{e}").map_err(io_failure)?;
        }
        match page.next_before_id {
            Some(b) => {
                args.before_id = Some(b);
                page = query(conn, Command::Export(args.clone())).await?;
            }
            None => break,
        }
    }
    writeln!(out, "\n]}}}}").map_err(io_failure)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn when_is_a_span_back_or_a_time() {
        let now = UNIX_EPOCH + Duration::from_secs(10_000);
        assert_eq!(parse_when("1h", now).unwrap(), 10_000 - 3600);
        assert_eq!(parse_when("1970-01-01T00:01:00Z", now).unwrap(), 60);
        assert!(parse_when("yesterday", now).is_err());
    }
}
