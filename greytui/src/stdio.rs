//! A control connection carried by a child process's stdin/stdout: `ssh -T -o BatchMode=yes
//! HOST greyproxyd attach` (or the `--ssh-command` stand-in). The child is killed when the
//! stream is dropped; the tail of its stderr is kept so that a failed connection says why in
//! one line (unknown host, authentication refused, greyproxyd missing or too old, no daemon).

use std::pin::Pin;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// Bytes of the child's stderr kept (its last lines).
const STDERR_TAIL: usize = 4096;

/// A program and its arguments whose stdio is a control connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StdioCommand {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// How messages name it, e.g. `ssh build1`.
    pub label: String,
}

/// The child's stdout and stdin as one stream.
pub(crate) struct ChildStream {
    /// Kept so that dropping the stream kills the child (`kill_on_drop`).
    _child: Child,
    out: ChildStdout,
    inp: ChildStdin,
    stderr: Arc<Mutex<String>>,
}

impl std::fmt::Debug for ChildStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildStream").finish_non_exhaustive()
    }
}

/// The child could not even start.
#[derive(Debug, thiserror::Error)]
#[error("cannot run {program}: {source}")]
pub(crate) struct SpawnError {
    program: String,
    source: std::io::Error,
}

impl ChildStream {
    /// Starts the command with piped stdio.
    pub(crate) fn spawn(cmd: &StdioCommand) -> Result<ChildStream, SpawnError> {
        let program = cmd.argv.first().cloned().unwrap_or_default();
        let err = |source| SpawnError {
            program: program.clone(),
            source,
        };
        let mut child = Command::new(&program)
            .args(cmd.argv.iter().skip(1))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(err)?;
        let missing = || err(std::io::Error::other("no pipe"));
        let out = child.stdout.take().ok_or_else(missing)?;
        let inp = child.stdin.take().ok_or_else(missing)?;
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(mut e) = child.stderr.take() {
            let tail = stderr.clone();
            // Chunks, not lines: a peer writing one endless line must not grow memory.
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n) = e.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    let Ok(mut t) = tail.lock() else { return };
                    t.push_str(&String::from_utf8_lossy(&buf[..n]));
                    if t.len() > STDERR_TAIL {
                        let cut = t.len() - STDERR_TAIL;
                        let cut = (cut..t.len()).find(|i| t.is_char_boundary(*i)).unwrap_or(0);
                        t.drain(..cut);
                    }
                }
            });
        }
        Ok(ChildStream {
            _child: child,
            out,
            inp,
            stderr,
        })
    }

    /// A handle on the stderr tail, readable after the stream is gone.
    pub(crate) fn stderr(&self) -> Arc<Mutex<String>> {
        self.stderr.clone()
    }
}

impl AsyncRead for ChildStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.out).poll_read(cx, buf)
    }
}

impl AsyncWrite for ChildStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inp).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inp).poll_shutdown(cx)
    }
}

/// One line saying why the command did not yield a control connection, from its stderr.
pub(crate) fn explain(stderr: &str, label: &str) -> String {
    let lines = || stderr.lines().map(str::trim);
    // greyproxyd attach's own one-line error, else the last line.
    let last = lines()
        .rfind(|l| l.starts_with("greyproxyd attach: "))
        .or_else(|| lines().rfind(|l| !l.is_empty()))
        .unwrap_or("")
        .trim_start_matches("greyproxyd attach: ")
        .trim_start_matches("Error: ");
    let has = |s: &str| stderr.contains(s);
    if has("unrecognized subcommand") && has("attach") {
        format!("{label}: greyproxyd there is too old for `attach`; upgrade it")
    } else if (has("command not found") || has("No such file or directory")) && has("greyproxyd") {
        format!(
            "{label}: greyproxyd is not installed there (or not in the PATH of a non-interactive ssh session)"
        )
    } else if has("Permission denied (") {
        format!(
            "{label}: ssh authentication refused (batch mode asks for no password: load a key into ssh-agent) — {last}"
        )
    } else if last.is_empty() {
        format!("{label}: the command ended without a control connection")
    } else {
        format!("{label}: {last}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_is_worded_per_cause() {
        let e = explain(
            "error: unrecognized subcommand 'attach'\n\nUsage: greyproxyd <COMMAND>\n",
            "ssh a",
        );
        assert!(e.contains("too old for `attach`"), "{e}");
        let e = explain("bash: line 1: greyproxyd: command not found\n", "ssh a");
        assert!(e.contains("not installed"), "{e}");
        let e = explain("alice@a: Permission denied (publickey).\n", "ssh a");
        assert!(e.contains("authentication refused"), "{e}");
        let e = explain(
            "ssh: Could not resolve hostname nowhere: Name or service not known\n",
            "ssh nowhere",
        );
        assert_eq!(
            e,
            "ssh nowhere: ssh: Could not resolve hostname nowhere: Name or service not known"
        );
        let e = explain(
            "greyproxyd attach: no greyproxyd control socket here (…)\nnoise\n",
            "ssh a",
        );
        assert_eq!(e, "ssh a: no greyproxyd control socket here (…)");
        assert!(explain("", "ssh a").contains("ended without"));
    }
}
