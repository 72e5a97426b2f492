//! The stdio transport: the middleware is a child process spawned without a shell, in its own
//! process group, speaking NDJSON on stdin/stdout; its stderr goes to the log as
//! `mw[<label>] …`.
//!
//! Closing is polite first (stdin EOF), then forceful: after [`CLOSE_GRACE`] the whole process
//! group is killed, so wrappers such as `uv run` leave no worker holding a port. The group is
//! killed even when the child exits by itself, for the same reason.

use std::io;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::link::{Ended, IN_QUEUE, Inbound, Link, OUT_QUEUE};

/// Longest stdout line (one message) accepted; longer drops the connection.
pub(crate) const MAX_LINE: usize = 32 << 20;
/// Longest stderr line logged; the rest of the line is discarded, reading never stops.
pub(crate) const MAX_STDERR_LINE: usize = 64 << 10;
/// How long a child may take to exit after its stdin closes before its group is killed.
pub(crate) const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Spawns `argv` and wires it up as a [`Link`].
pub(crate) fn spawn(argv: &[String], label: &str) -> io::Result<Link> {
    let Some((prog, args)) = argv.split_first() else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty command"));
    };
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .env("GREYPROXY_TRANSPORT", "stdio")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn()?;
    let pid = child.id();
    let (Some(mut stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(io::Error::other("child pipes missing"));
    };
    let close = CancellationToken::new();
    let (out_tx, mut out_rx) = mpsc::channel::<String>(OUT_QUEUE);
    let (in_tx, in_rx) = mpsc::channel::<Inbound>(IN_QUEUE);

    // Writer: one line per message; ends (closing stdin = EOF for the child) on close.
    let wclose = close.clone();
    let writer = tokio::spawn(async move {
        loop {
            tokio::select! {
                m = out_rx.recv() => {
                    let Some(mut m) = m else { break };
                    m.push('\n');
                    if stdin.write_all(m.as_bytes()).await.is_err() || stdin.flush().await.is_err() {
                        break;
                    }
                }
                _ = wclose.cancelled() => break,
            }
        }
        drop(stdin);
    });

    // Reader: stdout lines, CRLF tolerated, capped.
    let rclose = close.clone();
    tokio::spawn(async move {
        let mut r = BufReader::with_capacity(64 * 1024, stdout);
        let end = loop {
            let mut line = Vec::new();
            let got = tokio::select! {
                g = read_line_capped(&mut r, &mut line, MAX_LINE) => g,
                _ = rclose.cancelled() => break Ended::Closed,
            };
            match got {
                Ok(true) => {
                    if in_tx.send(Ok(line)).await.is_err() {
                        break Ended::Closed;
                    }
                }
                Ok(false) => break Ended::StdoutClosed,
                Err(e) => break Ended::Stdout(e),
            }
        };
        let _ = in_tx.send(Err(end)).await;
        rclose.cancel();
    });

    // stderr: logged line by line, never allowed to back up into the child.
    let label = label.to_string();
    tokio::spawn(async move {
        let mut r = BufReader::with_capacity(8 * 1024, stderr);
        loop {
            let mut line = Vec::new();
            match read_line_truncated(&mut r, &mut line, MAX_STDERR_LINE).await {
                Ok(None) | Err(_) => break,
                Ok(Some(truncated)) => {
                    if line.is_empty() {
                        continue;
                    }
                    let text = String::from_utf8_lossy(&line);
                    let more = if truncated { " …(truncated)" } else { "" };
                    tracing::info!("mw[{label}] {text}{more}");
                }
            }
        }
    });

    let reaper = tokio::spawn(reap(child, pid, close.clone(), writer));
    Ok(Link::new(out_tx, in_rx, pid, close, reaper))
}

/// Waits for the close signal or the child's own exit, then makes sure the child and its
/// process group are gone.
async fn reap(
    mut child: Child,
    pid: Option<u32>,
    close: CancellationToken,
    writer: tokio::task::JoinHandle<()>,
) {
    tokio::select! {
        _ = close.cancelled() => {}
        _ = child.wait() => close.cancel(),
    }
    // stdin is closed once the writer has ended.
    let _ = writer.await;
    let exited = tokio::time::timeout(CLOSE_GRACE, child.wait())
        .await
        .is_ok();
    kill_group(pid);
    if !exited {
        let _ = child.start_kill();
    }
    let _ = child.wait().await;
}

/// SIGKILL to the whole process group (grandchildren included); a group already gone is fine.
pub(crate) fn kill_group(pid: Option<u32>) {
    let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) else {
        return;
    };
    if let Some(pid) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

/// Reads one `\n`-terminated line without the terminator (and a `\r` before it). Returns false
/// at end of input with nothing read; a partial last line is returned as a line. A line longer
/// than `max` is an error.
pub(crate) async fn read_line_capped<R: AsyncBufRead + Unpin>(
    r: &mut R,
    line: &mut Vec<u8>,
    max: usize,
) -> io::Result<bool> {
    loop {
        let avail = r.fill_buf().await?;
        if avail.is_empty() {
            return Ok(!line.is_empty());
        }
        if let Some(i) = avail.iter().position(|b| *b == b'\n') {
            line.extend_from_slice(&avail[..i]);
            r.consume(i + 1);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if line.len() > max {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("line longer than {max} bytes"),
                ));
            }
            return Ok(true);
        }
        let n = avail.len();
        line.extend_from_slice(avail);
        r.consume(n);
        if line.len() > max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("line longer than {max} bytes"),
            ));
        }
    }
}

/// Reads one line keeping at most `max` bytes of it; `Some(truncated)` per line, `None` at end.
async fn read_line_truncated<R: AsyncBufRead + Unpin>(
    r: &mut R,
    line: &mut Vec<u8>,
    max: usize,
) -> io::Result<Option<bool>> {
    let mut truncated = false;
    loop {
        let avail = r.fill_buf().await?;
        if avail.is_empty() {
            return Ok((!line.is_empty() || truncated).then_some(truncated));
        }
        let (chunk, done) = match avail.iter().position(|b| *b == b'\n') {
            Some(i) => (&avail[..i], Some(i + 1)),
            None => (avail, None),
        };
        let room = max.saturating_sub(line.len());
        if chunk.len() > room {
            truncated = true;
        }
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = done.unwrap_or(avail.len());
        r.consume(used);
        if done.is_some() {
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(Some(truncated));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_crlf_blank_partial_and_cap() {
        let data: &[u8] = b"{\"a\":1}\r\n\nlast";
        let mut r = BufReader::with_capacity(4, data);
        let mut out = Vec::new();
        loop {
            let mut l = Vec::new();
            if !read_line_capped(&mut r, &mut l, 100).await.unwrap() {
                break;
            }
            out.push(String::from_utf8(l).unwrap());
        }
        assert_eq!(out, vec!["{\"a\":1}", "", "last"]);
        let long = [b'x'; 50];
        let mut r = BufReader::with_capacity(8, &long[..]);
        let mut l = Vec::new();
        assert!(read_line_capped(&mut r, &mut l, 10).await.is_err());
    }

    /// Whether `pid` still exists (a zombie counts: it is not reaped yet).
    fn exists(pid: u32) -> bool {
        let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
        rustix::process::test_kill_process(pid).is_ok()
    }

    /// Closing a child that ignores stdin EOF (`sleep` never reads it): it lives through the
    /// whole grace and is killed and reaped exactly at its end.
    #[tokio::test(start_paused = true)]
    async fn a_child_ignoring_eof_is_killed_exactly_after_the_grace() {
        let link = spawn(&["sleep".into(), "1000".into()], "sleeper").unwrap();
        let pid = link.pid.unwrap();
        let t0 = tokio::time::Instant::now();
        let closing = tokio::spawn(link.shutdown());
        tokio::time::sleep(CLOSE_GRACE - Duration::from_millis(1)).await;
        assert!(exists(pid), "killed before the grace was over");
        assert!(!closing.is_finished());
        closing.await.unwrap();
        assert_eq!(t0.elapsed(), CLOSE_GRACE);
        assert!(!exists(pid), "{pid} left behind");
    }

    #[tokio::test]
    async fn stderr_lines_are_truncated_and_reading_goes_on() {
        let mut data = vec![b'y'; 100];
        data.extend_from_slice(b"\nnext\n");
        let mut r = BufReader::with_capacity(16, &data[..]);
        let mut l = Vec::new();
        assert_eq!(
            read_line_truncated(&mut r, &mut l, 10).await.unwrap(),
            Some(true)
        );
        assert_eq!(l.len(), 10);
        let mut l = Vec::new();
        assert_eq!(
            read_line_truncated(&mut r, &mut l, 10).await.unwrap(),
            Some(false)
        );
        assert_eq!(l, b"next");
        let mut l = Vec::new();
        assert_eq!(read_line_truncated(&mut r, &mut l, 10).await.unwrap(), None);
    }
}
