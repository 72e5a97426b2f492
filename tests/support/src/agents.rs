//! The real agent CLIs for the agent tests: Claude Code (`@anthropic-ai/claude-code`, a native
//! binary inside the npm package) and codex (`@openai/codex`, a Node launcher for the native
//! binary of its platform package), at pinned versions, installed with npm once into the
//! Cargo target dir (`target/test-agents`).
//!
//! Like the Python venv ([`mod@crate::python`]), the install happens under an exclusive file lock
//! in a scratch dir renamed into place only once both CLIs answer `--version`; a complete
//! install is reused without asking the registry, so the tests run offline once it exists.
//! Without npm (or when the install fails) the agent tests are skipped with a message — except
//! under `CI=true`, where that is a failure.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The Claude Code release the tests run.
pub const CLAUDE_CODE_VERSION: &str = "2.1.332";
/// The codex release the tests run.
pub const CODEX_VERSION: &str = "0.171.0";

/// The install's directory name under the target dir; the versions are part of it, so that a
/// version bump installs afresh beside (not over) the old one.
fn dir_name() -> String {
    format!("test-agents/claude-{CLAUDE_CODE_VERSION}-codex-{CODEX_VERSION}")
}

/// The installed CLIs.
#[derive(Debug, Clone)]
pub struct Agents {
    /// `claude` (the native binary).
    pub claude: PathBuf,
    /// `codex` (the Node launcher; `node` must be on PATH, as it is wherever npm is).
    pub codex: PathBuf,
}

/// The installed CLIs, installing them on first use; `None` when they cannot be had outside
/// CI (the caller skips its test; the reason was printed). Panics under `CI=true`.
pub fn agents() -> Option<&'static Agents> {
    static AGENTS: OnceLock<Result<Agents, String>> = OnceLock::new();
    match AGENTS.get_or_init(resolve) {
        Ok(a) => Some(a),
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("the agent tests need the real agent CLIs under CI: {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED: the agent tests need the real agent CLIs: {e}");
            None
        }
    }
}

fn bins(root: &Path) -> Agents {
    let bin = root.join("node_modules").join(".bin");
    Agents {
        claude: bin.join("claude"),
        codex: bin.join("codex"),
    }
}

/// Whether both CLIs in `root` run and report the pinned versions.
fn works(root: &Path) -> bool {
    let a = bins(root);
    let version = |p: &Path| {
        Command::new(p)
            .arg("--version")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    version(&a.claude).contains(CLAUDE_CODE_VERSION) && version(&a.codex).contains(CODEX_VERSION)
}

fn resolve() -> Result<Agents, String> {
    let target = crate::python::target_dir();
    let root = target.join(dir_name());
    if works(&root) {
        return Ok(bins(&root));
    }
    let parent = root.parent().unwrap_or(&target).to_path_buf();
    std::fs::create_dir_all(&parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    let lock_path = parent.join("install.lock");
    let lock = File::create(&lock_path).map_err(|e| format!("{}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("locking {}: {e}", lock_path.display()))?;
    // Another test binary may have installed them while this one waited for the lock.
    if !works(&root) {
        let scratch = parent.join(format!("tmp-{}", std::process::id()));
        let built = install(&scratch, &root);
        let _ = std::fs::remove_dir_all(&scratch);
        built?;
    }
    drop(lock);
    if works(&root) {
        Ok(bins(&root))
    } else {
        Err(format!("{} does not run after the install", root.display()))
    }
}

/// `npm install` into `scratch`, checked, then renamed to `root`. Called with the lock held.
fn install(scratch: &Path, root: &Path) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(scratch);
    std::fs::create_dir_all(scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    eprintln!(
        "installing Claude Code {CLAUDE_CODE_VERSION} and codex {CODEX_VERSION} with npm into {} \
         (once, about 800 MB)",
        root.display()
    );
    let out = Command::new("npm")
        .arg("install")
        .arg("--prefix")
        .arg(scratch)
        .args([
            "--no-audit",
            "--no-fund",
            "--no-save",
            "--loglevel=error",
            &format!("@anthropic-ai/claude-code@{CLAUDE_CODE_VERSION}"),
            &format!("@openai/codex@{CODEX_VERSION}"),
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("npm is not available ({e}); install Node.js and npm"))?;
    if !out.status.success() {
        return Err(format!(
            "`npm install` failed (no network or no registry?) with {}:\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    if !works(scratch) {
        return Err(format!(
            "the CLIs installed into {} do not answer --version",
            scratch.display()
        ));
    }
    let _ = std::fs::remove_dir_all(root);
    std::fs::rename(scratch, root)
        .map_err(|e| format!("renaming {} to {}: {e}", scratch.display(), root.display()))
}
