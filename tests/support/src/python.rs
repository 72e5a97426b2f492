//! The one Python interpreter every test runs (WebSocket origins and clients, the example
//! middlewares, the fake middleware's stdio relay): one that can import `websockets`.
//!
//! A fresh machine needs only `python3`: when the system interpreter lacks `websockets`, the
//! kit makes a virtualenv once under the Cargo target dir (`target/test-venv`) and installs it
//! there. Test binaries run in parallel, so the venv is built under an exclusive file lock in a
//! scratch dir and renamed into place only once it works; a reader that sees `test-venv` sees
//! a complete one.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// What the test scripts import (`greyproxyd/tests/it/ws/*.py` need the `asyncio` API of
/// websockets ≥ 13); an interpreter that can run this serves every test.
const PROBE: &str = "import sys, websockets.asyncio.client, websockets.asyncio.server; \
                     print(sys.executable)";

/// The venv's directory name under the target dir.
const VENV: &str = "test-venv";

/// Absolute path of a Python interpreter that can import `websockets`, provisioning a venv
/// on first use (see the module docs). Panics with what to install when that is impossible.
pub fn python() -> &'static str {
    static PY: OnceLock<String> = OnceLock::new();
    PY.get_or_init(|| match resolve() {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    })
}

fn resolve() -> Result<String, String> {
    // The system interpreter itself (sys.executable, not a version-manager shim, which would
    // add hundreds of milliseconds to every spawn) when it already has websockets.
    if let Some(p) = probe(Path::new("python3")) {
        return Ok(p);
    }
    let target = target_dir();
    let venv = target.join(VENV);
    let venv_python = venv.join("bin").join("python3");
    if probe(&venv_python).is_some() {
        return Ok(venv_python.display().to_string());
    }
    std::fs::create_dir_all(&target).map_err(|e| format!("{}: {e}", target.display()))?;
    let lock_path = target.join(format!("{VENV}.lock"));
    let lock = File::create(&lock_path).map_err(|e| format!("{}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("locking {}: {e}", lock_path.display()))?;
    // Another test binary may have built it while this one waited for the lock.
    if probe(&venv_python).is_none() {
        let scratch = target.join(format!("{VENV}.tmp-{}", std::process::id()));
        let built = build(&scratch, &venv);
        // A failed attempt (e.g. Debian's python3 without python3-venv leaves a venv without
        // pip behind) must not litter the target dir.
        let _ = std::fs::remove_dir_all(&scratch);
        built?;
    }
    drop(lock);
    // The venv's `python3` keeps its name so that labels derived from the command
    // (`mw[python3]`) read the same as with the system interpreter.
    probe(&venv_python)
        .map(|_| venv_python.display().to_string())
        .ok_or_else(|| format!("{} cannot import websockets after install", venv.display()))
}

/// The interpreter's `sys.executable` when it runs [`PROBE`]. For the venv the path itself is
/// returned by the caller: the venv's `bin/python3` is what activates it.
fn probe(python: &Path) -> Option<String> {
    let out = Command::new(python)
        .args(["-c", PROBE])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !p.is_empty()).then_some(p)
}

/// Creates the venv in `scratch`, installs websockets, then renames it to `venv`. Called
/// with the lock held.
fn build(scratch: &Path, venv: &Path) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(scratch);
    eprintln!(
        "python3 has no `websockets`: creating {} for the tests (once)",
        venv.display()
    );
    run(
        Command::new("python3").arg("-m").arg("venv").arg(scratch),
        "python3 cannot create a virtualenv, which the tests need to install `websockets`. \
         Install the venv module (Debian/Ubuntu: `apt-get install python3-venv`), or install \
         `websockets` for python3 yourself (`python3 -m pip install websockets`)",
    )?;
    run(
        Command::new(scratch.join("bin").join("python3")).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "websockets",
        ]),
        "`pip install websockets` into the test virtualenv failed (no network or no package \
         index?). Install `websockets` for python3 yourself (`python3 -m pip install \
         websockets`), then run the tests again",
    )?;
    let _ = std::fs::remove_dir_all(venv);
    std::fs::rename(scratch, venv)
        .map_err(|e| format!("renaming {} to {}: {e}", scratch.display(), venv.display()))
}

fn run(cmd: &mut Command, hint: &str) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{hint}.\n{cmd:?}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{hint}.\n{cmd:?} exited with {}:\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// Cargo's target dir: the parent of `<profile>/` holding `deps/` and this test executable,
/// also under `CARGO_TARGET_DIR` or a `--target` triple.
pub(crate) fn target_dir() -> PathBuf {
    if let Ok(exe) = std::env::current_exe()
        && let Some(deps) = exe
            .ancestors()
            .find(|p| p.file_name() == Some("deps".as_ref()))
        && let Some(target) = deps.parent().and_then(Path::parent)
    {
        return target.to_path_buf();
    }
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interpreter_imports_websockets() {
        let py = python();
        assert!(Path::new(py).is_absolute(), "{py}");
        assert!(
            probe(Path::new(py)).is_some(),
            "{py} cannot import websockets"
        );
    }
}
