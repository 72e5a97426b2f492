//! The one way the daemon replaces a file on disk: [`write_atomic`]. Readers (greytui reading
//! `daemon.json`, a client reading the control token, the reload watcher reading the CA) see
//! either the old content or the new, never a torn or empty file, and a secret is never
//! readable by others, not even for the instant between creating and chmod-ing a file.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Distinguishes the temporary files of concurrent writers within this process; the pid
/// distinguishes processes.
static NEXT_TMP: AtomicU64 = AtomicU64::new(0);

/// How many temporary names are tried when one is taken (a file left by a crashed process
/// whose pid has been reused).
const TMP_ATTEMPTS: u32 = 16;

/// Replaces `path` with `bytes`, leaving the file with exactly `mode` (e.g. `0o600`).
///
/// The bytes go to a fresh temporary file in the same directory, created with `mode` and
/// set to it explicitly before anything is written (the umask may have narrowed it, and a
/// certificate must stay readable); the file is synced, renamed over `path`, and the
/// directory synced so the rename survives a crash. On failure the temporary file is removed
/// and `path` keeps its old content.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let (tmp, mut file) = create_tmp(dir, path, mode)?;
    let written = (|| {
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    // The new content is visible already; a failed directory sync only weakens durability.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Creates `.<name>.<pid>.<n>.tmp` next to `path`, with `mode`, failing rather than reusing
/// an existing file.
fn create_tmp(dir: &Path, path: &Path, mode: u32) -> io::Result<(PathBuf, fs::File)> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let pid = std::process::id();
    let mut last = None;
    for _ in 0..TMP_ATTEMPTS {
        let n = NEXT_TMP.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.{pid}.{n}.tmp"));
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no free temporary file name")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn mode_of(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    /// Names in `dir` other than `keep`.
    fn others(dir: &Path, keep: &str) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != keep)
            .collect()
    }

    #[test]
    fn creates_with_the_requested_mode_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        for (name, mode) in [("secret", 0o600), ("public", 0o644)] {
            let p = dir.path().join(name);
            write_atomic(&p, b"one", mode).unwrap();
            assert_eq!(fs::read(&p).unwrap(), b"one");
            assert_eq!(mode_of(&p), mode, "{name}");
        }
        let mut names = others(dir.path(), "");
        names.sort();
        assert_eq!(names, ["public", "secret"]);
    }

    #[test]
    fn replaces_content_and_mode_of_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        fs::write(&p, b"old content, longer than the new one").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o666)).unwrap();
        write_atomic(&p, b"new", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new");
        assert_eq!(mode_of(&p), 0o600);
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        write_atomic(&p, b"cert", 0o644).unwrap();
        assert_eq!(mode_of(&p), 0o644);
        assert_eq!(others(dir.path(), "token"), Vec::<String>::new());
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("gone").join("daemon.json");
        let e = write_atomic(&p, b"{}", 0o644).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(!p.exists());
    }

    #[test]
    fn a_failed_write_keeps_the_old_file_and_removes_the_temporary_one() {
        let dir = tempfile::tempdir().unwrap();
        // The rename fails: the target is a non-empty directory.
        let target = dir.path().join("taken");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("inside"), b"old").unwrap();
        assert!(write_atomic(&target, b"new", 0o600).is_err());
        assert_eq!(fs::read(target.join("inside")).unwrap(), b"old");
        assert_eq!(others(dir.path(), "taken"), Vec::<String>::new());
        // The temporary file cannot be created: its name would be too long.
        let long = dir.path().join("x".repeat(250));
        fs::write(&long, b"old").unwrap();
        assert!(write_atomic(&long, b"new", 0o600).is_err());
        assert_eq!(fs::read(&long).unwrap(), b"old");
    }
}
